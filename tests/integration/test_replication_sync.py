"""Full and partial sync between real processes (spec: Key Features, Guarantees 1 and 4,
Failure Handling "Replica Crashes" and "Network Partition").

Every scenario ends with the same digest on every node and checks how many full and
partial syncs happened, as Redis's replication tests do.
"""

from __future__ import annotations

import re
import shutil
import threading

import pytest

from tests.support.checks import assert_same_data, served, syncs
from tests.support.server import NodeFactory, SynapProcess, wait_for

FAST = {
    "heartbeat_interval_ms": 100,
    "reconnect_delay_ms": 200,
    "replica_timeout_secs": 2,
}


def config(**replication: object) -> dict:
    return {"replication": {**FAST, **replication}}


def fill(node: SynapProcess, count: int, prefix: str = "key", size: int = 32) -> None:
    client = node.redis()
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.set(f"{prefix}:{i}", f"{prefix}-{i}-".ljust(size, "x"))
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()


def test_full_sync_copies_an_existing_dataset(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=config())
    fill(master, 2000)
    client = master.redis()
    client.set(b"binary\x00key", bytes(range(256)))
    client.set("with-ttl", "v", ex=3600)
    client.incrby("counter", 41)
    client.delete("key:0")

    replica = node_factory.replica(master, config=config())
    assert_same_data(master, [replica])
    reader = replica.redis()
    assert reader.dbsize() == 2002
    assert reader.get(b"binary\x00key") == bytes(range(256))
    assert reader.get("counter") == b"41" and reader.get("key:0") is None
    assert 3590_000 < reader.pttl("with-ttl") <= 3600_000  # the absolute expiry travels
    assert syncs(master) == (1, 0)
    assert syncs(replica) == (1, 0)
    # Writes after the sync stream in.
    client.set("after", "sync")
    assert_same_data(master, [replica])
    assert reader.get("after") == b"sync"


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_restarted_replica_resumes_by_partial_sync(node_factory: NodeFactory, how: str) -> None:
    # Spec, "Replica Crashes": when the replica restarts within the buffer: Partial Sync.
    master = node_factory.master(config=config())
    replica = node_factory.replica(master, config=config())  # --data-dir: persistence on
    fill(master, 500)
    assert_same_data(master, [replica])
    assert syncs(master) == (1, 0)

    if how == "sigterm":
        replica.terminate()
    else:
        replica.kill()
    wait_for(lambda: master.stats()["replicas"] == [], 5)
    fill(master, 300, prefix="while-down")
    master.redis().delete("key:1", "key:2")
    replica.start()
    assert_same_data(master, [replica])
    assert syncs(master) == (1, 1), "the restarted replica should not need a full sync"
    assert syncs(replica) == (0, 1)
    assert replica.redis().get("while-down:299") == b"while-down-299-".ljust(32, b"x")
    assert "partial sync accepted" in replica.log_text()


def _cut_off(proxy, replica: SynapProcess) -> None:  # type: ignore[no-untyped-def]
    """Partition the replica from the master: drop the link and refuse new ones."""
    proxy.refuse_new(True)
    proxy.cut()
    wait_for(lambda: replica.stats()["connected"] is False, 5)


def test_network_cut_resumes_by_partial_sync(node_factory: NodeFactory) -> None:
    # Spec, "Network Partition": when the network recovers, partial sync catches up.
    master = node_factory.master(config=config())
    proxy = node_factory.proxy(master)
    replica = node_factory.replica(proxy, config=config())
    fill(master, 200)
    assert_same_data(master, [replica])

    _cut_off(proxy, replica)
    fill(master, 300, prefix="during-partition")
    assert replica.redis().get("during-partition:0") is None  # serves stale reads meanwhile
    # Cut off, the replica is at least the 300 partition-time records behind the master.
    assert master.stats()["master_offset"] - replica.stats()["replica_offset"] >= 300
    proxy.refuse_new(False)
    assert_same_data(master, [replica])
    assert syncs(master) == (1, 1)
    assert syncs(replica) == (1, 1)


def test_log_overflow_forces_a_full_sync(node_factory: NodeFactory) -> None:
    # Spec: "If buffer overflowed, full sync required"; Troubleshooting: the logs say
    # "Full sync required".
    # The log is the memory cache plus the WAL segments on disk: both must be overrun.
    # With no retention beyond the snapshots, two snapshots let the segment holding the
    # replica's offset go.
    no_retention = {"log_retention": {"max_mb": 0, "max_age_secs": None, "max_records": None}}
    master = node_factory.master(config={**config(log_max_ops=100), "persistence": no_retention})
    proxy = node_factory.proxy(master)
    replica = node_factory.replica(proxy, config=config(log_max_ops=100))
    fill(master, 50)
    assert_same_data(master, [replica])

    _cut_off(proxy, replica)
    fill(master, 400, prefix="overflow")  # four times the memory log
    master.redis().execute_command("SAVE")
    fill(master, 10, prefix="more")
    master.redis().execute_command("SAVE")
    stats = master.stats()
    assert stats["backlog_first_offset"] > 51
    assert stats["log_first_offset"] > 51
    proxy.refuse_new(False)
    assert_same_data(master, [replica])
    assert served(master) == (2, 0, 1)  # the second: a partial sync it had to refuse
    assert syncs(replica) == (2, 0)
    assert "Full sync required" in master.log_text()
    assert "no longer in the log" in master.log_text()
    info = master.redis().info("stats")
    assert info["sync_full"] == 2 and info["sync_partial_err"] == 1
    # /metrics names the reason of the refusal.
    metrics = master.http.get("/metrics").text
    assert (
        'synap_replication_partial_sync_refusals_total{reason="offset_not_in_log"} 1.0' in metrics
    )
    assert 'synap_replication_partial_sync_refusals_total{reason="replid_mismatch"} 0.0' in metrics


def test_three_replicas_receive_the_same_history(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=config())
    fill(master, 300)
    replicas = [node_factory.replica(master, config=config()) for _ in range(3)]
    client = master.redis()
    for i in range(100):
        client.incr("counter")
        client.set(f"ttl:{i}", i, ex=3600)
        client.expire(f"key:{i}", 7200)
    client.delete(*[f"key:{i}" for i in range(100, 150)])
    client.mset({f"m:{i}": i for i in range(20)})
    assert_same_data(master, replicas)
    stats = master.stats()
    assert len(stats["replicas"]) == 3
    assert {r["id"] for r in stats["replicas"]} == {r.stats()["replica_id"] for r in replicas}
    assert all(r["state"] == "online" and r["lag_operations"] == 0 for r in stats["replicas"])
    assert syncs(master) == (3, 0)
    for replica in replicas:
        assert syncs(replica) == (1, 0)
        assert replica.redis().get("counter") == b"100"


@pytest.mark.slow
def test_stress_5000_operations_with_100kb_values(node_factory: NodeFactory) -> None:
    # Spec: "Stress Tested - 5000 operations, multiple replicas, 100KB values": 5000 SETs
    # of 100 KB each (500 MB streamed to each of two replicas) over 200 keys.
    cfg = {**config(), "persistence": {"fsync_mode": "never"}}
    master = node_factory.master(config=cfg)
    replicas = [node_factory.replica(master, config=cfg) for _ in range(2)]
    client = master.redis()
    values = [bytes([i]) * 100 * 1024 for i in range(7)]
    pipe = client.pipeline(transaction=False)
    for i in range(5000):
        pipe.set(f"big:{i % 200}", values[i % len(values)])
        if i % 50 == 49:
            pipe.execute()
    pipe.execute()
    assert master.stats()["master_offset"] == 5000
    assert_same_data(master, replicas, timeout=120)
    for replica in replicas:
        reader = replica.redis()
        assert reader.dbsize() == 200
        assert reader.get("big:199") == values[4999 % len(values)]
        assert syncs(replica) == (1, 0)
    assert syncs(master) == (2, 0)
    # 1.5 GB of WAL: do not leave it in pytest's kept temporary directories.
    for node in [master, *replicas]:
        node.close()
        shutil.rmtree(node.data_dir, ignore_errors=True)


def test_replica_joining_during_continuous_writes_loses_nothing(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=config())
    fill(master, 20_000, size=200)  # enough that the full sync takes a while
    acked: list[str] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        client = master.redis()
        try:
            for i in range(50_000):  # bounded; normally stopped much earlier
                if stop.is_set():
                    return
                key = f"live:{i}"
                client.set(key, i)
                acked.append(key)
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(acked) > 200, 10)
        replica = node_factory.replica(master, config=config())
        wait_for(lambda: replica.stats()["connected"], 15)
        count_at_sync = len(acked)
        wait_for(lambda: len(acked) > count_at_sync + 500, 15)
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors
    assert not thread.is_alive()
    assert_same_data(master, [replica])
    reader = replica.redis()
    values = []
    for start in range(0, len(acked), 1000):
        values += reader.mget(acked[start : start + 1000])
    missing = [key for key, value in zip(acked, values, strict=True) if value is None]
    assert not missing, f"{len(missing)} acknowledged keys missing on the replica: {missing[:5]}"
    assert reader.dbsize() == 20_000 + len(acked)
    assert syncs(master) == (1, 0)
    # The writer really ran across the sync: the snapshot was taken at an offset between
    # the prefill and the last write, and the rest arrived as records.
    match = re.search(r"full sync from master: \d+ keys at offset (\d+)", replica.log_text())
    assert match, replica.log_tail()
    assert 20_000 < int(match.group(1)) < master.stats()["master_offset"] == 20_000 + len(acked)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_restarted_master_with_persistence_keeps_its_history(
    node_factory: NodeFactory, how: str
) -> None:
    # Research anchors section 6: "a restarted master forgot its id (#5228)" turns a
    # restart into a full sync of every replica. With --data-dir the id and offset
    # survive, so a caught-up replica continues by partial sync.
    master = node_factory.master(config=config())
    replica = node_factory.replica(master, config=config())
    fill(master, 300)
    offset = assert_same_data(master, [replica])
    replid = master.stats()["replication_id"]

    if how == "sigterm":
        master.terminate()
    else:
        master.kill()
    wait_for(lambda: replica.stats()["connected"] is False, 5)
    master.start()
    stats = master.stats()
    assert (stats["replication_id"], stats["master_offset"]) == (replid, offset)
    fill(master, 100, prefix="after-restart")
    assert_same_data(master, [replica])
    assert syncs(master) == (0, 1)
    assert syncs(replica) == (1, 1)


def test_repeated_cuts_under_write_load_resume_by_partial_sync(node_factory: NodeFactory) -> None:
    # Research anchors, scenario 16 (PSYNC under write load): links killed while writes
    # keep coming; every reconnect is a partial sync and nothing is lost or doubled.
    master = node_factory.master(config=config())
    proxy = node_factory.proxy(master)
    replica = node_factory.replica(proxy, config=config())
    assert_same_data(master, [replica])
    stop = threading.Event()
    written = [0]
    errors: list[BaseException] = []

    def writer() -> None:
        client = master.redis()
        try:
            for i in range(100_000):  # bounded; stopped after the cuts
                if stop.is_set():
                    return
                client.incr("counter")
                client.set(f"w:{i % 1000}", i)
                written[0] = i + 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        for cut in range(1, 4):
            wait_for(lambda: replica.stats()["connected"], 10)
            target = written[0] + 300
            wait_for(lambda: written[0] > target, 10)  # noqa: B023
            proxy.cut()
            wait_for(lambda: master.stats()["sync_partial_ok"] == cut, 10)  # noqa: B023
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors
    assert_same_data(master, [replica])
    assert replica.redis().get("counter") == str(written[0]).encode()
    assert syncs(master) == (1, 3)
    assert syncs(replica) == (1, 3)


def test_replica_restarted_while_the_master_is_down_serves_reads_then_resumes(
    node_factory: NodeFactory,
) -> None:
    # Spec, "Network Partition", replica side: "Continues serving reads (stale data)",
    # "Auto-reconnect attempts"; then partial sync when the master is back.
    master = node_factory.master(config=config())
    replica = node_factory.replica(master, config=config())
    fill(master, 200)
    assert_same_data(master, [replica])
    master.terminate()
    replica.restart()
    stats = replica.stats()
    assert stats["connected"] is False
    assert stats["state"] in ("connecting", "disconnected")
    assert stats["replica_offset"] == 200
    assert replica.redis().get("key:199") == b"key-199-".ljust(32, b"x")  # a stale read
    assert replica.redis().info("replication")["master_link_status"] == "down"
    master.start()
    fill(master, 20, prefix="back")
    assert_same_data(master, [replica])
    assert syncs(master) == (0, 1)
    assert syncs(replica) == (0, 1)
