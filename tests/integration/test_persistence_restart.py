"""Persistence across restarts: WAL + snapshots in the node's data directory.

* ``kill -9`` under ``fsync_mode: always`` loses nothing that was acknowledged (over RESP,
  pipelined or not, and over HTTP).
* SIGTERM shuts down cleanly within a few seconds, with a final snapshot; the data is
  back after a restart without replaying the WAL.
* every fsync mode restarts with its data.

The harness starts every node with ``--data-dir <tmp>/<name>``, which turns persistence on."""

from __future__ import annotations

import re
import signal
import time

from tests.support.server import NodeFactory, SynapProcess, wait_for


def write_workload(node: SynapProcess, count: int) -> dict[bytes, bytes]:
    """Acknowledged writes of every kind; returns what the keyspace must hold."""
    client = node.redis()
    expected: dict[bytes, bytes] = {}
    for i in range(count):  # one at a time: each reply is an acknowledgement
        key, value = f"single:{i}".encode(), f"value-{i}".encode() * 3
        assert client.set(key, value) is True
        expected[key] = value
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.set(f"piped:{i}", i)
    assert all(pipe.execute())
    expected.update({f"piped:{i}".encode(): str(i).encode() for i in range(count)})
    for _ in range(25):
        client.incr("counter")
    expected[b"counter"] = b"25"
    client.set(b"bin\x00key", b"\x00\xff\r\n")
    expected[b"bin\x00key"] = b"\x00\xff\r\n"
    client.set("with-ttl", "v", ex=3600)
    expected[b"with-ttl"] = b"v"
    client.set("deleted", "v")
    client.delete("deleted")
    client.set("expired", "v", px=1)
    for i in range(20):
        response = node.http.post("/kv/set", json={"key": f"http:{i}", "value": {"n": i}})
        assert response.status_code == 200
        expected[f"http:{i}".encode()] = b'{"n":%d}' % i
    return expected


def assert_holds(node: SynapProcess, expected: dict[bytes, bytes]) -> None:
    client = node.redis()
    keys = list(expected)
    got = client.mget(keys)
    missing = [k for k, v in zip(keys, got, strict=True) if v != expected[k]]
    assert not missing, f"{len(missing)} acknowledged keys lost or wrong, e.g. {missing[:5]}"
    assert client.exists("deleted", "expired") == 0
    assert 3500 < client.ttl("with-ttl") <= 3600
    assert client.dbsize() == len(expected)


def test_kill_9_under_fsync_always_loses_nothing_acknowledged(node_factory: NodeFactory) -> None:
    node = node_factory(config={"persistence": {"fsync_mode": "always"}})
    expected = write_workload(node, 300)
    assert node.kill(signal.SIGKILL) == -signal.SIGKILL
    node.start()
    assert_holds(node, expected)
    # Acknowledged writes after the restart survive the next crash too.
    node.redis().set("after-restart", "yes")
    node.kill(signal.SIGKILL)
    node.start()
    assert node.redis().get("after-restart") == b"yes"


def test_sigterm_shuts_down_cleanly_with_a_final_snapshot(node_factory: NodeFactory) -> None:
    node = node_factory(config={"persistence": {"fsync_mode": "periodic"}})
    expected = write_workload(node, 200)
    # Touch the 1 ms key: lazy expiry removes it now, so the final snapshot holds exactly
    # the expected keys (otherwise it depends on whether an active-expiry cycle ran yet).
    assert node.redis().exists("expired") == 0
    before = {p.name for p in node.data_dir.glob("snapshot-*.snap")}
    started = time.monotonic()
    assert node.terminate(timeout=10) == 0
    assert time.monotonic() - started < 5
    log = node.log_text()
    assert "shutdown complete" in log
    assert "Traceback" not in log
    after = {p.name for p in node.data_dir.glob("snapshot-*.snap")}
    assert after - before, "no final snapshot was written"
    node.start()
    assert_holds(node, expected)
    # Everything came from the final snapshot: no WAL record had to be replayed.
    recovered = re.findall(
        r"recovered (\d+) keys \(snapshot (\S+), (\d+) WAL records", node.log_text()
    )
    assert recovered[-1][0] == str(len(expected))
    assert recovered[-1][2] == "0"


def test_periodic_snapshots_and_restart_in_every_mode(node_factory: NodeFactory) -> None:
    modes = ("always", "periodic", "never")
    nodes = {
        mode: node_factory(
            name=f"node-{mode}",
            wait=False,
            config={"persistence": {"fsync_mode": mode, "snapshot_interval_secs": 1}},
        )
        for mode in modes
    }
    for node in nodes.values():
        node.wait_ready()
    for mode, node in nodes.items():
        client = node.redis()
        client.mset({f"{mode}:{i}": i for i in range(100)})
        # A periodic snapshot is taken while serving...
        wait_for(
            lambda c=client: int(c.info("persistence").get("synap_snapshots_written", 0)) >= 1,
            10,
            0.1,
            "no periodic snapshot within 10 s",
        )
        client.set(f"{mode}:after-snapshot", "x")
        assert node.terminate() == 0
        node.start(wait=False)
    for mode, node in nodes.items():
        node.wait_ready()
        client = node.redis()
        assert client.dbsize() == 101
        assert client.get(f"{mode}:after-snapshot") == b"x"
        assert (
            client.config_get("appendfsync")["appendfsync"]
            == {
                "always": "always",
                "periodic": "everysec",
                "never": "no",
            }[mode]
        )


def test_save_command_writes_a_snapshot(node_factory: NodeFactory) -> None:
    node = node_factory()
    client = node.redis()
    client.set("k", "v")
    before = set(node.data_dir.glob("snapshot-*.snap"))
    assert client.execute_command("SAVE") in (b"OK", True)
    assert set(node.data_dir.glob("snapshot-*.snap")) - before
