"""topology.json (synap/persistence/topology.py) and the start-up precedence between it,
the config file and explicit command-line flags (synap/node.py ``_apply_topology``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from synap.config import Config, build_config
from synap.node import StartupError, _apply_topology
from synap.persistence import topology
from synap.persistence.topology import Topology, TopologyError


def _config(tmp_path: Path, **replication: object) -> Config:
    return build_config(
        {
            "persistence": {"enabled": True, "data_dir": str(tmp_path)},
            "replication": replication,
        }
    )


def test_save_then_load_round_trips_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    state = Topology("replica", "127.0.0.1:15502", "127.0.0.1:15503", "HTTP replicaof", 5.0)
    path = topology.save(tmp_path, state)
    assert path == tmp_path / "topology.json"
    assert topology.load(tmp_path) == state
    assert sorted(p.name for p in tmp_path.iterdir()) == ["topology.json"]
    assert "replica of 127.0.0.1:15502" in state.describe()


def test_no_file_is_no_topology(tmp_path: Path) -> None:
    assert topology.load(tmp_path) is None


@pytest.mark.parametrize(
    "text",
    [
        "{bad",
        "[]",
        '{"role": "boss"}',
        '{"role": "replica"}',
        '{"role": "master", "master_address": 5}',
    ],
)
def test_a_bad_file_is_an_error_naming_it(tmp_path: Path, text: str) -> None:
    (tmp_path / "topology.json").write_text(text)
    with pytest.raises(TopologyError, match="topology.json"):
        topology.load(tmp_path)


def test_persisted_role_wins_over_the_config_file(tmp_path: Path) -> None:
    topology.save(tmp_path, Topology("replica", "10.0.0.2:15501", None, "REPLICAOF"))
    config = _config(tmp_path, enabled=True, role="master")
    out = _apply_topology(config, frozenset())
    assert out.replication.role == "replica"
    assert out.replication.master_address == "10.0.0.2:15501"
    assert out.replication.enabled


def test_persisted_master_keeps_its_listener_unless_the_flag_says_otherwise(
    tmp_path: Path,
) -> None:
    topology.save(tmp_path, Topology("master", None, "127.0.0.1:15502", "HTTP promote"))
    config = _config(tmp_path, enabled=True, role="replica", master_address="127.0.0.1:15501")
    out = _apply_topology(config, frozenset())
    assert out.replication.role == "master" and out.replication.master_address is None
    assert out.replication.replica_listen_address == "127.0.0.1:15502"
    assert "replica_listen_address" in out.replication.model_fields_set
    given = _config(tmp_path, replica_listen_address="127.0.0.1:16000")
    out = _apply_topology(given, frozenset({"replica_listen_address"}))
    assert out.replication.role == "master"
    assert out.replication.replica_listen_address == "127.0.0.1:16000"


@pytest.mark.parametrize("flag", ["role", "master_address"])
def test_explicit_role_flags_win(tmp_path: Path, flag: str) -> None:
    topology.save(tmp_path, Topology("master", None, None, "HTTP promote"))
    config = _config(tmp_path, enabled=True, role="replica", master_address="127.0.0.1:15501")
    out = _apply_topology(config, frozenset({flag}))
    assert out.replication.role == "replica"


def test_a_damaged_file_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "topology.json").write_text('{"role": "replica", "master_address": "x"}')
    with pytest.raises(StartupError, match="topology.json"):
        _apply_topology(_config(tmp_path), frozenset())


def test_last_role_round_trips_is_unknown_when_missing_or_bad_and_never_sets_the_role(
    tmp_path: Path,
) -> None:
    assert topology.load_last_role(tmp_path) is None
    topology.save_last_role(tmp_path, "replica", "4d31", 26)
    assert topology.load_last_role(tmp_path) == "replica"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["role.json"]
    # role.json takes no part in the start-up precedence (topology.json does).
    cfg = _config(tmp_path, role="master")
    assert _apply_topology(cfg, frozenset()).replication.role == "master"
    (tmp_path / "role.json").write_text('{"role": "boss"}')
    assert topology.load_last_role(tmp_path) is None
    (tmp_path / "role.json").write_text("{not json")
    assert topology.load_last_role(tmp_path) is None
