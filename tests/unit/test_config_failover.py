"""replication.failover: defaults, the --etcd-endpoints / --group flags, and validation
messages that name the key (synap/config.py, synap/server_cli.py)."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from synap.config import ConfigError, load_config
from synap.server_cli import main


def failover(**values: Any) -> dict[str, dict[str, Any]]:
    return {"replication": {"role": "master", "failover": values}}


def error_for(**values: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(None, failover(**values))
    return str(info.value)


def test_defaults_are_manual() -> None:
    cfg = load_config(None, {}).replication.failover
    assert cfg.mode == "manual"
    assert cfg.group == "synap"
    assert (cfg.lease_ttl_secs, cfg.priority) == (3, 100)
    assert cfg.etcd_endpoints == []


def test_endpoints_imply_etcd_mode_and_split_commas() -> None:
    cfg = load_config(None, failover(etcd_endpoints="http://127.0.0.1:2379, 127.0.0.1:2380"))
    fo = cfg.replication.failover
    assert fo.mode == "etcd"
    assert fo.etcd_endpoints == ["http://127.0.0.1:2379", "http://127.0.0.1:2380"]


def test_explicit_manual_mode_wins_over_endpoints() -> None:
    cfg = load_config(None, failover(mode="manual", etcd_endpoints=["http://127.0.0.1:2379"]))
    assert cfg.replication.failover.mode == "manual"


def test_etcd_mode_needs_endpoints() -> None:
    assert "etcd_endpoints is required" in error_for(mode="etcd")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"etcd_endpoints": "ftp://127.0.0.1:1"}, "must be an http:// or https:// URL"),
        ({"etcd_endpoints": "http://127.0.0.1:99999"}, "out of range"),
        ({"lease_ttl_secs": 1}, "replication.failover.lease_ttl_secs"),
        ({"priority": -1}, "replication.failover.priority"),
        ({"max_lag_on_failover": -5}, "replication.failover.max_lag_on_failover"),
        ({"group": "a/b"}, "replication.failover.group: 'a/b'"),
        ({"mode": "zookeeper"}, "replication.failover.mode"),
        ({"colour": "red"}, "replication.failover.colour: unknown configuration key"),
    ],
)
def test_bad_values_name_the_key(values: dict[str, Any], expected: str) -> None:
    assert expected in error_for(**values)


def test_etcd_mode_needs_master_or_replica_role() -> None:
    with pytest.raises(ConfigError, match="needs replication.role master"):
        load_config(None, {"replication": {"failover": {"etcd_endpoints": "127.0.0.1:2379"}}})


def test_etcd_replica_needs_no_master_address() -> None:
    raw = {"replication": {"role": "replica", "failover": {"etcd_endpoints": "127.0.0.1:2379"}}}
    assert load_config(None, raw).replication.master_address is None


def test_flags_merge_with_the_file(tmp_path: Any) -> None:
    path = tmp_path / "c.yml"
    path.write_text("replication:\n  role: master\n  failover:\n    priority: 7\n")
    overrides = {"replication": {"failover": {"etcd_endpoints": "127.0.0.1:2379", "group": "g"}}}
    fo = load_config(path, overrides).replication.failover
    assert (fo.priority, fo.group, fo.mode) == (7, "g", "etcd")


def test_cli_rejects_bad_endpoint_with_exit_2() -> None:
    result = CliRunner().invoke(main, ["--role", "master", "--etcd-endpoints", "nohost"])
    assert result.exit_code == 2
    assert "replication.failover.etcd_endpoints" in result.output
