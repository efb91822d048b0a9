"""Unplanned failover, ``synap-cli promote`` (synap/failover.py), and the old master
coming back (docs/OPERATIONS.md, "The old master comes back")."""

from __future__ import annotations

import pytest
import redis

from synap.failover import run_promote
from tests.integration.failover_support import (
    FAST,
    digest,
    full_syncs,
    ready,
    replicaof,
    wait_converged,
)
from tests.support.server import NodeFactory, wait_caught_up, wait_for


def test_promote_picks_the_most_up_to_date_replica_and_the_rest_partial_sync(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=FAST, wait=False)
    ahead = node_factory.replica(master, replica_listen=True, config=FAST, wait=False)
    proxy = node_factory.proxy(master)
    behind = node_factory.replica(proxy, replica_listen=True, config=FAST, wait=False)
    ready(*node_factory.nodes)
    c = master.redis()
    for i in range(100):
        c.set(f"k{i}", i)
    wait_caught_up(master, [ahead, behind])
    proxy.pause()  # `behind` misses the next writes
    for i in range(100, 150):
        c.set(f"k{i}", i)
    wait_for(lambda: ahead.stats()["replica_offset"] == master.stats()["master_offset"], 10)
    before = full_syncs(ahead, behind)
    master.kill()  # the master dies
    proxy.cut()

    lines: list[str] = []
    nodes = [master.http_url, behind.http_url, ahead.http_url]
    assert run_promote(nodes, None, None, True, lines.append)  # dry run: nothing changes
    assert "dry run" in lines[-1] and behind.stats()["role"] == "replica"
    assert f"candidate {ahead.http_url}" in "\n".join(lines)

    lines.clear()
    assert run_promote(nodes, None, None, False, lines.append), "\n".join(lines)
    log = "\n".join(lines)
    assert f"promoted {ahead.http_url}" in log and "by partial sync" in log, log
    assert ahead.stats()["role"] == "master"
    ahead.redis().set("after", "1")
    wait_converged(ahead, [behind])
    assert full_syncs(ahead, behind) == before, log
    assert behind.redis().get("k149") == b"149"


def test_promote_refuses_while_the_master_is_alive(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=FAST, wait=False)
    replica = node_factory.replica(master, config=FAST, wait=False)
    ready(*node_factory.nodes)
    wait_caught_up(master, [replica])
    lines: list[str] = []
    assert not run_promote([master.http_url, replica.http_url], None, None, False, lines.append)
    assert "REFUSED" in lines[-1] and "synap-cli failover" in lines[-1]
    assert replica.stats()["role"] == "replica"


def test_old_master_that_comes_back_takes_writes_until_repointed_then_full_syncs(
    node_factory: NodeFactory,
) -> None:
    """The dangerous case. The old master restarts with its own role (master) and takes
    writes as a second master. Repointed, it cannot continue by partial sync: its
    history went past the point where the new master's began. A full sync replaces its
    dataset, so the writes it took meanwhile are discarded."""
    old = node_factory.master(config=FAST, wait=False)
    new = node_factory.replica(old, replica_listen=True, config=FAST, wait=False)
    ready(*node_factory.nodes)
    for i in range(50):
        old.redis().set(f"k{i}", i)
    wait_caught_up(old, [new])
    old.kill()

    assert run_promote([old.http_url, new.http_url], None, None, False, lambda _: None)
    new.redis().set("on-new", "1")
    old.start()  # comes back as configured: --role master
    assert old.stats()["role"] == "master"
    old.redis().set("split-brain", "lost")  # accepted: a second master
    before = full_syncs(old)[old.name]

    host, port = new.replica_address.split(":")
    assert old.redis().execute_command("REPLICAOF", host, port) == b"OK"
    wait_converged(new, [old])
    assert full_syncs(old)[old.name] == before + 1
    assert old.redis().get("split-brain") is None  # discarded by the full sync
    assert old.redis().get("on-new") == b"1"
    assert digest(old)["digest"] == digest(new)["digest"]


def test_old_master_restarted_as_a_replica_of_the_new_one_partial_syncs(
    node_factory: NodeFactory,
) -> None:
    """The runbook: start the old master with --role replica --master-address NEW.
    It took no writes the new master lacks, so it continues by partial sync."""
    old = node_factory.master(config=FAST, wait=False)
    new = node_factory.replica(old, replica_listen=True, config=FAST, wait=False)
    ready(*node_factory.nodes)
    for i in range(50):
        old.redis().set(f"k{i}", i)
    wait_caught_up(old, [new])
    old.terminate()

    assert run_promote([old.http_url, new.http_url], None, None, False, lambda _: None)
    new.redis().set("on-new", "1")
    old.role = "replica"
    old.master_address = new.replica_address
    old.start()
    with pytest.raises(redis.exceptions.ReadOnlyError):
        old.redis().set("x", "y")
    wait_converged(new, [old])
    s = old.stats()
    assert s["full_syncs"] == 0 and s["partial_syncs"] == 1
    assert old.redis().get("on-new") == b"1"


def test_old_master_repointed_before_taking_writes_partial_syncs(
    node_factory: NodeFactory,
) -> None:
    old = node_factory.master(config=FAST, wait=False)
    new = node_factory.replica(old, replica_listen=True, config=FAST, wait=False)
    ready(*node_factory.nodes)
    for i in range(50):
        old.redis().set(f"k{i}", i)
    wait_caught_up(old, [new])
    old.terminate()
    assert run_promote([old.http_url, new.http_url], None, None, False, lambda _: None)
    new.redis().set("on-new", "1")
    old.start()
    replicaof(old, new.replica_address)  # at once, before it takes a write
    wait_converged(new, [old])
    assert old.stats()["full_syncs"] == 0
