"""8-byte size classes for values (kv_store.size_classes, synap/sizeclasses.py) on real
servers: by default a node serves 100-byte values from them (INFO memory counts the
objects and the bytes saved; the start-up log says so), the master's sealed log records
live where fork() does not copy them, a replica fed by a forked full sync holds the
master's exact data, and with ``size_classes: pymalloc`` or the pure-Python build nothing
is installed and the node says why."""

from __future__ import annotations

import threading
import time

from synap import tightalloc
from tests.support.checks import assert_same_data, syncs
from tests.support.server import NodeFactory, wait_for

FORK = {"SYNAP_FULL_SYNC_FORK": "always"}
KEYS = 60_000  # 60 MSET records of ~117 kB: the log seals a segment (4 MiB)


def fill(r) -> None:  # type: ignore[no-untyped-def]
    for first in range(0, KEYS, 1000):
        r.mset({f"key:{i:07d}": f"{i}-".ljust(100, "v") for i in range(first, first + 1000)})


def test_by_default_values_take_the_8_byte_classes_and_a_full_sync_is_exact(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(env=FORK)
    r = master.redis()
    memory = r.info("memory")
    if not tightalloc.BUILT:
        assert memory["synap_size_classes"].startswith("pymalloc (the C module")
        return
    assert memory["synap_size_classes"] == "fine"
    assert "size classes: fine (kv_store.size_classes is fine)" in master.log_text()
    fill(r)
    memory = r.info("memory")
    # (a master's values are its shared values, below; its size classes hold the rest)
    assert memory["synap_size_classes_saved_bytes"] == 8 * memory["synap_size_classes_objects"]
    assert r.get("key:0000007") == b"7-".ljust(100, b"v")
    # the sealed part of the replication log is out of fork()'s reach (MADV_WIPEONFORK)
    assert memory["synap_replication_log_unforked_bytes"] >= 3 * 2**20
    gauges = {
        name: float(value)
        for name, value in (
            line.split() for line in master.http.get("/metrics").text.splitlines()
            if line.startswith(("synap_shared_values_bytes ",
                                "synap_replication_log_unforked_bytes "))
        )
    }  # fmt: skip
    assert gauges["synap_shared_values_bytes"] >= 136 * KEYS
    assert gauges["synap_replication_log_unforked_bytes"] >= 3 * 2**20
    # a master's values sit in memory its full sync's child shares (kv_store.shared_values)
    assert memory["synap_shared_values"] == "on"
    assert memory["synap_shared_values_objects"] >= KEYS
    assert memory["synap_shared_values_bytes"] >= 136 * KEYS  # 133-byte objects, 8-byte classes
    assert "shared values: on (kv_store.shared_values is true)" in master.log_text()
    replica = node_factory.replica(master)
    assert_same_data(master, [replica], timeout=60)
    assert "by process" in master.log_text()  # the forked child sent it, read shared values
    replica_memory = replica.redis().info("memory")
    before = replica_memory["synap_size_classes_objects"]
    assert before >= KEYS * 0.9  # a replica's values take the (private) 8-byte classes
    assert replica_memory["synap_size_classes_saved_bytes"] == 8 * before
    assert replica_memory["synap_shared_values_objects"] == 0  # a replica applies as it gets
    assert master.redis().info("memory")["synap_shared_values_quarantined"] == 0
    r.delete(*[f"key:{i:07d}" for i in range(KEYS)])
    assert r.info("memory")["synap_shared_values_objects"] == 0  # (no child reads: freed)
    wait_for(
        lambda: replica.redis().info("memory")["synap_size_classes_objects"] < before - KEYS * 0.9,
        10,
        message="the replica's deleted values still hold their blocks",
    )


def test_a_standalone_node_does_not_share_and_says_why(node_factory: NodeFactory) -> None:
    if not tightalloc.BUILT:
        return
    node = node_factory()
    r = node.redis()
    r.set("k", "v" * 100)
    memory = r.info("memory")
    reason = "off (replication is not enabled: a standalone node never forks)"
    assert memory["synap_shared_values"] == reason
    assert memory["synap_shared_values_objects"] == 0
    assert f"shared values: {reason}" in node.log_text()


def test_a_restarted_master_shares_the_values_it_recovers(node_factory: NodeFactory) -> None:
    if not tightalloc.BUILT:
        return
    master = node_factory.master(env=FORK)
    fill(master.redis())
    master.redis().execute_command("SAVE")  # part from the snapshot, part from the WAL
    master.redis().set("after-save", "x" * 100)
    master.restart()
    r = master.redis()
    assert r.get("key:0000042") == b"42-".ljust(100, b"v")
    assert r.get("after-save") == b"x" * 100
    assert r.info("memory")["synap_shared_values_objects"] >= KEYS + 1
    replica = node_factory.replica(master)
    assert_same_data(master, [replica], timeout=60)


def test_shared_values_off_keeps_the_values_in_the_forked_heap_and_says_why(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config={"kv_store": {"shared_values": False}}, env=FORK)
    r = master.redis()
    fill(r)
    memory = r.info("memory")
    assert memory["synap_shared_values"] == "off (kv_store.shared_values is false)"
    assert memory["synap_shared_values_objects"] == 0
    assert "shared values: off (kv_store.shared_values is false)" in master.log_text()
    replica = node_factory.replica(master)
    assert_same_data(master, [replica], timeout=60)
    env_off = node_factory(config={"kv_store": {"shared_values": True}},
                           env={"SYNAP_SHARED_VALUES": "off"})  # fmt: skip
    assert env_off.redis().info("memory")["synap_shared_values"] == (
        "off (SYNAP_SHARED_VALUES is off)"
    )


def test_pymalloc_leaves_the_allocator_alone_and_says_so(node_factory: NodeFactory) -> None:
    node = node_factory(config={"kv_store": {"size_classes": "pymalloc"}})
    r = node.redis()
    fill(r)
    memory = r.info("memory")
    assert memory["synap_size_classes"] == "pymalloc (kv_store.size_classes is pymalloc)"
    assert memory["synap_size_classes_objects"] == 0
    assert memory["synap_replication_log_unforked_bytes"] == 0
    assert memory["synap_shared_values"] == (
        "off (size classes are pymalloc: kv_store.size_classes is pymalloc)"
    )
    assert "size classes: pymalloc (kv_store.size_classes is pymalloc)" in node.log_text()
    assert r.get("key:0000007") == b"7-".ljust(100, b"v")


def test_the_pure_python_build_runs_without_and_says_why(node_factory: NodeFactory) -> None:
    node = node_factory(env={"SYNAP_PURE_PYTHON": "1"})
    assert node.redis().info("memory")["synap_size_classes"] == (
        "pymalloc (the C module synap.tightalloc is not built (pure-Python build))"
    )


def test_overlapping_forked_full_syncs_under_rewrites_are_exact_and_give_memory_back(
    node_factory: NodeFactory,
) -> None:
    """Three replicas started at once while a writer rewrites the keys: their forked
    syncs overlap and each child ends on its own; every replica ends with the master's
    data, and once the children are gone nothing is left in quarantine."""
    if not tightalloc.BUILT:
        return
    master = node_factory.master(env=FORK)
    r = master.redis()
    fill(r)
    stop = threading.Event()
    rewrites = [0]

    def rewrite() -> None:
        w = master.redis()
        deadline = time.monotonic() + 60
        i = 0
        while not stop.is_set() and time.monotonic() < deadline:
            pipe = w.pipeline(transaction=False)
            for _ in range(200):
                i = (i + 7919) % KEYS
                pipe.set(f"key:{i:07d}", f"r{rewrites[0]}-{i}-".ljust(100, "w"))
            pipe.execute()
            rewrites[0] += 1

    writer = threading.Thread(target=rewrite, daemon=True)
    writer.start()
    replicas = [node_factory.replica(master, wait=False) for _ in range(3)]
    for replica in replicas:
        replica.wait_ready()
    wait_for(
        lambda: all(syncs(replica)[0] >= 1 for replica in replicas), 60,
        message="not every replica completed a full sync",
    )  # fmt: skip
    stop.set()
    writer.join(10)
    assert rewrites[0] > 0
    assert_same_data(master, replicas, timeout=60)
    assert master.log_text().count("by process") >= 3  # forked children sent them
    wait_for(
        lambda: r.info("memory")["synap_shared_values_quarantined"] == 0, 10,
        message="values freed during the syncs are still held",
    )  # fmt: skip
