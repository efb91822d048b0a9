"""Unplanned failover, ``synap-cli promote`` (synap/failover.py), and the old master
coming back (docs/OPERATIONS.md, "The old master comes back")."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis

from synap.failover import run_promote
from synap.persistence.divergence import read_diverged_file
from synap.store.effects import decode_record
from tests.integration.failover_support import (
    FAST,
    digest,
    full_syncs,
    promote,
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


def test_old_master_that_comes_back_takes_writes_until_repointed_then_truncates_and_partial_syncs(
    node_factory: NodeFactory,
) -> None:
    """The dangerous case. The old master died holding writes no replica had received,
    then restarts with its own role (master) and takes more writes as a second master.
    Repointed, its history went past the point where the new master's began: the new
    master names the fork point, the old one removes every record after it (saving them
    in diverged-<replid>-<offset>.jsonl in its data directory) and continues by partial
    sync. No full sync."""
    old = node_factory.master(config=FAST, wait=False)
    proxy = node_factory.proxy(old)
    new = node_factory.replica(proxy, replica_listen=True, config=FAST, wait=False)
    ready(*node_factory.nodes)
    for i in range(50):
        old.redis().set(f"k{i}", i)
    wait_caught_up(old, [new])
    proxy.pause()  # the next writes never reach the replica
    for i in range(3):
        old.redis().set(f"unreplicated{i}", "lost")
    old_replid = old.stats()["replication_id"]
    old.kill()
    proxy.cut()

    assert run_promote([old.http_url, new.http_url], None, None, False, lambda _: None)
    new.redis().set("on-new", "1")
    old.start()  # comes back as configured: --role master
    assert old.stats()["role"] == "master"
    old.redis().set("split-brain", "lost")  # accepted: a second master
    old.redis().set("k1", "overwritten")
    before = old.stats()
    assert before["replication_id"] == old_replid and before["master_offset"] == 55

    host, port = new.replica_address.split(":")
    assert old.redis().execute_command("REPLICAOF", host, port) == b"OK"
    wait_converged(new, [old])
    after = old.stats()
    assert after["full_syncs"] == before["full_syncs"] == 0
    assert after["partial_syncs"] == before["partial_syncs"] + 1
    assert (after["history_truncations"], after["records_truncated"]) == (1, 5)
    assert new.stats()["truncations_requested"] == 1
    assert old.redis().get("split-brain") is None  # removed with the truncation
    assert old.redis().get("unreplicated0") is None
    assert old.redis().get("k1") == b"1"  # back to its value at the fork point
    assert old.redis().get("on-new") == b"1"
    assert digest(old)["digest"] == digest(new)["digest"]
    assert "truncated 5 record(s) after offset 50" in old.log_text()
    metrics = old.http.get("/metrics").text
    assert "synap_replication_history_truncations_total 1.0" in metrics
    assert "synap_replication_records_truncated_total 5.0" in metrics

    # The removed records, exactly, for the operator.
    path = old.data_dir / f"diverged-{old_replid}-50.jsonl"
    assert after["diverged_file"] == str(path)
    header, saved = read_diverged_file(path)
    assert (header["fork_offset"], header["last_offset"], header["records"]) == (50, 55, 5)
    keys = [decode_record(record)[0][1] for _, record in saved]
    assert [o for o, _ in saved] == [51, 52, 53, 54, 55]
    assert keys == [b"unreplicated0", b"unreplicated1", b"unreplicated2", b"split-brain", b"k1"]
    shown = subprocess.run(
        [sys.executable, "-c", "from synap.cli import main; main()", "log", "diverged", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.splitlines()
    assert shown[0].startswith(f"# history {old_replid} forked after offset 50: 5 record(s)")
    assert shown[1] == "51  SET unreplicated0 value_bytes=4 expire_at_ms=0"
    assert shown[5] == "55  SET k1 value_bytes=11 expire_at_ms=0"


def test_old_master_without_a_data_dir_full_syncs_and_says_why(
    node_factory: NodeFactory,
) -> None:
    """Same fork, but the old master keeps no data directory: it cannot rebuild its
    dataset at the fork point, so it falls back to a full sync and logs that."""
    old = node_factory.master(config=FAST, wait=False, persistence=False)
    new = node_factory.replica(old, replica_listen=True, config=FAST, wait=False)
    ready(*node_factory.nodes)
    for i in range(20):
        old.redis().set(f"k{i}", i)
    wait_caught_up(old, [new])
    promote(new)  # by hand, while the old master is still up (a partition, say)
    # The old master is still a master (no etcd here), and takes a write.
    old.redis().set("split-brain", "lost")
    new.redis().set("on-new", "1")
    replicaof(old, new.replica_address)
    wait_converged(new, [old])
    s = old.stats()
    assert s["full_syncs"] == 1 and s["history_truncations"] == 0
    assert old.redis().get("split-brain") is None
    assert "has no data directory" in old.log_text()
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
