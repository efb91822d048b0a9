"""Replica chains (spec: Planned, "Multi-level replication (replica -> sub-replica)"): a
replica started with --replica-listen serves sub-replicas the exact stream it receives,
so replication id and offsets are the same at every level (Redis proxies the stream
byte for byte for the same reason)."""

from __future__ import annotations

from tests.integration.failover_support import (
    FAST,
    full_syncs,
    ready,
    replicaof,
    wait_converged,
)
from tests.support.server import NodeFactory, wait_for

# A tiny replication log on the top master, so a short outage of the middle node makes
# it fall out of the log and come back with a full sync.
# A small memory log and no log kept on disk beyond what the snapshots need (SAVE twice
# to let the old segments go): a replica that falls behind must full-sync.
SMALL_LOG = {
    "replication": {**FAST["replication"], "log_max_ops": 64},
    "persistence": {"log_retention": {"max_mb": 0, "max_age_secs": None, "max_records": None}},
}


def test_sub_replicas_receive_the_exact_stream(node_factory: NodeFactory) -> None:
    top = node_factory.master(config=FAST, wait=False)
    middle = node_factory.replica(top, replica_listen=True, config=FAST, wait=False)
    leaf = node_factory.replica(middle, replica_listen=True, config=FAST, wait=False)
    leaf2 = node_factory.replica(leaf, config=FAST, wait=False)  # three levels
    ready(*node_factory.nodes)
    c = top.redis()
    for i in range(300):
        c.set(f"k{i}", i, px=600_000 if i % 3 == 0 else None)
    c.delete("k1", "k2")

    ms = wait_converged(top, [middle, leaf, leaf2])
    for node in (middle, leaf, leaf2):
        s = node.stats()
        assert (s["replication_id"], s["replica_offset"]) == (
            ms["replication_id"],
            ms["master_offset"],
        )
    assert middle.stats()["replicas"][0]["address"] == leaf.http_url.removeprefix("http://")
    assert leaf.stats()["master_address"] == middle.replica_address
    assert leaf.stats()["replica_listen_address"] == leaf.replica_address
    # Sub-replicas are read-only like any replica, and their stats show the chain.
    assert middle.http.post("/kv/set", json={"key": "x", "value": 1}).status_code == 409


def test_middle_full_sync_makes_sub_replicas_resync_consistently(
    node_factory: NodeFactory,
) -> None:
    top = node_factory.master(config=SMALL_LOG, wait=False)
    proxy = node_factory.proxy(top)
    middle = node_factory.replica(proxy, replica_listen=True, config=FAST, wait=False)
    leaf = node_factory.replica(middle, config=FAST, wait=False)
    ready(*node_factory.nodes)
    c = top.redis()
    for i in range(20):
        c.set(f"k{i}", i)
    wait_converged(top, [middle, leaf])
    before = full_syncs(middle, leaf)

    proxy.refuse_new(True)
    proxy.cut()  # the middle loses its master ...
    for i in range(500):  # ... which writes far more than its log holds
        c.set(f"k{i % 50}", f"v{i}")
        if i in (400, 450):
            c.execute_command("SAVE")  # the segments with the middle's offset go
    assert top.stats()["log_first_offset"] > 21
    proxy.refuse_new(False)

    wait_converged(top, [middle, leaf])
    after = full_syncs(middle, leaf)
    # The middle fell out of the top's log: one full sync received. Its sub-replica was
    # dropped and held offsets the middle's (reset) log no longer has: one full sync
    # served by the middle, received by the leaf. (The helper counts both directions.)
    assert after[middle.name] == before[middle.name] + 2
    assert after[leaf.name] == before[leaf.name] + 1
    assert "upstream full sync replaced the dataset" in leaf.log_text()


def test_killed_middle_node_restarts_and_the_chain_resumes_by_partial_sync(
    node_factory: NodeFactory,
) -> None:
    top = node_factory.master(config=FAST, wait=False)
    middle = node_factory.replica(top, replica_listen=True, config=FAST, wait=False)
    leaf = node_factory.replica(middle, config=FAST, wait=False)
    ready(*node_factory.nodes)
    c = top.redis()
    for i in range(100):
        c.set(f"k{i}", i)
    wait_converged(top, [middle, leaf])
    leaf_full = full_syncs(leaf)[leaf.name]

    middle.kill()
    for i in range(100, 200):
        c.set(f"k{i}", i)
    wait_for(lambda: leaf.stats()["connected"] is False, 10)
    middle.start()  # recovers id and offset from its data dir

    wait_converged(top, [middle, leaf])
    assert full_syncs(leaf)[leaf.name] == leaf_full
    assert full_syncs(middle)[middle.name] == 0  # counters restart with the process
    assert middle.stats()["partial_syncs"] >= 1


def test_killed_middle_node_sub_replica_repointed_to_the_top(node_factory: NodeFactory) -> None:
    top = node_factory.master(config=FAST, wait=False)
    middle = node_factory.replica(top, replica_listen=True, config=FAST, wait=False)
    leaf = node_factory.replica(middle, config=FAST, wait=False)
    ready(*node_factory.nodes)
    c = top.redis()
    for i in range(100):
        c.set(f"k{i}", i)
    wait_converged(top, [middle, leaf])
    before = full_syncs(top, leaf)

    middle.kill()
    for i in range(100, 200):
        c.set(f"k{i}", i)
    replicaof(leaf, top.replica_address)  # same history: partial sync from the top
    wait_converged(top, [leaf])
    assert full_syncs(top, leaf) == before
