"""Planned switchover, ``synap-cli failover`` (synap/failover.py): zero acknowledged
writes lost, clients see a retryable error while writes are paused, every node
continues by partial sync, and a target that cannot catch up aborts cleanly."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from synap.failover import run_failover
from tests.integration.failover_support import (
    FAST,
    Writer,
    assert_has_all,
    full_syncs,
    ready,
    replicaof,
    wait_converged,
)
from tests.support.ports import HOST, release_port, reserve_port
from tests.support.server import NodeFactory, wait_caught_up, wait_for

SYNAP_CLI = shutil.which("synap-cli", path=str(Path(sys.executable).parent)) or "synap-cli"


def test_planned_failover_loses_no_acknowledged_write(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=FAST, wait=False)
    target = node_factory.replica(master, replica_listen=True, config=FAST, wait=False)
    other = node_factory.replica(master, config=FAST, wait=False)
    ready(*node_factory.nodes)
    c = master.redis()
    for i in range(300):
        c.set(f"seed:{i}", i)
    wait_caught_up(master, [target, other])
    before = full_syncs(master, target, other)

    writer = Writer(master, find_master=lambda: target)
    writer.start()
    wait_for(lambda: len(writer.acked) > 200, 10)  # the load is on
    lines: list[str] = []
    ok = run_failover(master.http_url, target.http_url, 10.0, None, lines.append)
    wait_for(lambda: writer.switches, 10, message="the writer never moved to the new master")
    acked_at_switch = len(writer.acked)
    wait_for(lambda: len(writer.acked) > acked_at_switch + 200, 10)  # new master takes writes
    writer.stop()
    log = "\n".join(lines)
    assert ok, log

    wait_converged(target, [master, other])
    assert_has_all(target, writer.acked)
    assert_has_all(master, writer.acked)  # the old master, now a replica, has them too
    assert full_syncs(master, target, other) == before, log
    assert master.stats()["master_address"] == target.replica_address
    assert other.stats()["master_address"] == target.replica_address
    # The old master refused writes with READONLY once demoted; TRYAGAIN while paused
    # (the pause may be too short for the writer to hit it, so that one is not required).
    assert writer.errors.get("READONLY", 0) >= 1, writer.errors
    assert set(writer.errors) <= {"READONLY", "TRYAGAIN"}, writer.errors
    for step in ("paused writes", "caught up", "promoted", "old master", "by partial sync"):
        assert step in log, log


def test_failover_cli_picks_the_most_up_to_date_replica(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=FAST, wait=False)
    r1 = node_factory.replica(master, replica_listen=True, config=FAST, wait=False)
    proxy = node_factory.proxy(master)
    r2 = node_factory.replica(proxy, replica_listen=True, config=FAST, wait=False)
    ready(*node_factory.nodes)
    master.redis().set("a", "1")
    wait_caught_up(master, [r1, r2])
    proxy.pause()  # r2 stops acknowledging
    master.redis().set("b", "2")
    wait_for(lambda: r1.stats()["replica_offset"] == master.stats()["master_offset"], 10)

    result = subprocess.run(
        [SYNAP_CLI, "failover", "--node", master.http_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"promoted {r1.http_url}" in result.stdout, result.stdout
    assert r1.stats()["role"] == "master"
    proxy.resume()  # r2 was repointed to r1 directly; the stale link is gone
    wait_converged(r1, [master, r2])


def test_failover_aborts_on_timeout_and_the_master_keeps_serving(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=FAST, wait=False)
    proxy = node_factory.proxy(master)
    target = node_factory.replica(proxy, replica_listen=True, config=FAST, wait=False)
    ready(*node_factory.nodes)
    master.redis().set("a", "1")
    wait_caught_up(master, [target])
    proxy.pause()  # the target cannot catch up
    master.redis().set("b", "2")

    lines: list[str] = []
    assert not run_failover(master.http_url, target.http_url, 0.5, None, lines.append)
    log = "\n".join(lines)
    assert "ABORTED" in log and "writes resumed" in log, log
    s = master.stats()
    assert s["role"] == "master" and s["writes_paused"] is False
    master.redis().set("c", "3")  # still serving writes
    assert target.stats()["role"] == "replica"
    proxy.resume()
    wait_converged(master, [target])


def test_failover_to_a_replica_without_a_listener_opens_the_given_one(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=FAST, wait=False)
    target = node_factory.replica(master, config=FAST, wait=False)  # no --replica-listen
    ready(*node_factory.nodes)
    master.redis().set("a", "1")
    wait_caught_up(master, [target])
    port = reserve_port()
    try:
        listen = f"{HOST}:{port}"
        lines: list[str] = []
        assert run_failover(
            master.http_url, target.http_url, 5.0, None, lines.append, replica_listen=listen
        ), "\n".join(lines)
        assert target.stats()["replica_listen_address"] == listen
        assert master.stats()["master_address"] == listen
        target.redis().set("b", "2")
        wait_converged(target, [master])
    finally:
        release_port(port)


def test_failover_refuses_a_node_that_is_not_a_master(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=FAST, wait=False)
    replica = node_factory.replica(master, config=FAST, wait=False)
    ready(*node_factory.nodes)
    wait_caught_up(master, [replica])
    lines: list[str] = []
    assert not run_failover(replica.http_url, None, 1.0, None, lines.append)
    assert "not a master" in "\n".join(lines)
    assert master.stats()["writes_paused"] is False


def test_a_fenced_old_master_takes_no_writes_if_the_tool_dies_before_repointing_it(
    node_factory: NodeFactory,
) -> None:
    """The steps of ``synap-cli failover`` up to the promotion, then nothing: the old
    master stays paused (no lease to run out), so there is never a second writable
    master; repointing it later ends the fence with a partial sync."""
    master = node_factory.master(config=FAST, wait=False)
    target = node_factory.replica(master, replica_listen=True, config=FAST, wait=False)
    ready(*node_factory.nodes)
    master.redis().set("a", "1")
    wait_caught_up(master, [target])
    assert master.http.post("/api/replication/pause", json={"seconds": 0.2}).status_code == 200
    assert master.http.post("/api/replication/pause", json={"seconds": None}).status_code == 200
    assert target.http.post("/api/replication/promote").status_code == 200
    target.redis().set("b", "2")
    time.sleep(0.4)  # well past the first lease
    write = master.http.post("/kv/set", json={"key": "split", "value": 1})
    assert write.status_code == 503 and write.json()["code"] == "TRYAGAIN"
    assert master.stats()["writes_paused_for"] is None

    before = full_syncs(master)
    replicaof(master, target.replica_address)
    wait_converged(target, [master])
    assert full_syncs(master) == before
    assert master.http.post("/kv/set", json={"key": "k", "value": 1}).status_code == 409
