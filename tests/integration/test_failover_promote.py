"""Promote, repoint and pause at runtime (spec: Failure Handling, "Failover Process
(Manual)"): POST /api/replication/promote, RESP REPLICAOF NO ONE / REPLICAOF host port,
POST /api/replication/replicaof, POST /api/replication/pause and /resume."""

from __future__ import annotations

import pytest
import redis

from tests.integration.failover_support import (
    FAST,
    digest,
    full_syncs,
    promote,
    ready,
    replicaof,
    wait_converged,
)
from tests.support.ports import HOST, release_port, reserve_port
from tests.support.server import NodeFactory, wait_caught_up, wait_for


def test_promote_keeps_dataset_and_offset_under_a_new_id_that_remembers_the_old(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=FAST, wait=False)
    # No replica listener of its own.
    replica = node_factory.replica(master, config=FAST, wait=False)
    ready(*node_factory.nodes)
    c = master.redis()
    for i in range(50):
        c.set(f"k{i}", i)
    offset = wait_caught_up(master, [replica])
    old_id = master.stats()["replication_id"]
    before = digest(replica)["digest"]

    port = reserve_port()
    try:
        listen = f"{HOST}:{port}"
        reply = promote(replica, listen)
        assert reply["role"] == "master"
        assert reply["replica_listen_address"] == listen  # from the request body
        assert reply["offset"] == offset
        assert reply["previous_replication_id"] == old_id
        assert reply["replication_id"] != old_id

        s = replica.stats()
        assert s["role"] == "master" and s["master_offset"] == offset
        assert s["previous_replication_id"] == old_id and s["second_offset"] == offset + 1
        assert s["replica_listen_address"] == listen
        assert digest(replica)["digest"] == before
        replica.redis().set("after-promotion", "yes")  # writable at once
        assert replica.redis().get("after-promotion") == b"yes"
        # Promoting a master again changes nothing.
        again = promote(replica)
        assert again["message"] == "already a master"
        assert again["replication_id"] == reply["replication_id"]
    finally:
        release_port(port)


def test_replicas_repointed_to_the_promoted_node_continue_by_partial_sync(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=FAST, wait=False)
    r1 = node_factory.replica(master, replica_listen=True, config=FAST, wait=False)
    r2 = node_factory.replica(master, config=FAST, wait=False)
    r3 = node_factory.replica(master, config=FAST, wait=False)
    ready(*node_factory.nodes)
    c = master.redis()
    for i in range(200):
        c.set(f"k{i}", "v" * (i % 17))
    wait_caught_up(master, [r1, r2, r3])
    before = full_syncs(master, r1, r2, r3)

    # RESP REPLICAOF NO ONE: r1 keeps the listener it was started with.
    assert r1.redis().execute_command("REPLICAOF", "NO", "ONE") == b"OK"
    assert r1.stats()["role"] == "master"
    host, port = r1.replica_address.split(":")
    assert r2.redis().execute_command("REPLICAOF", host, port) == b"OK"
    replicaof(r3, r1.replica_address)  # over HTTP
    replicaof(master, r1.replica_address)  # the old master too

    r1.redis().set("new", "write")
    wait_converged(r1, [master, r2, r3])
    assert full_syncs(master, r1, r2, r3) == before, "a repointed node needed a full sync"
    for node in (master, r2, r3):
        s = node.stats()
        assert s["master_address"] == r1.replica_address
        assert s["previous_replication_id"] == r1.stats()["previous_replication_id"]
    assert r2.redis().get("new") == b"write"


def test_promote_on_an_unusable_listener_address_leaves_the_replica_as_it_was(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=FAST, wait=False)
    replica = node_factory.replica(master, config=FAST, wait=False)
    ready(*node_factory.nodes)
    master.redis().set("k", "v")
    wait_caught_up(master, [replica])
    busy = f"{HOST}:{master.port}"  # the master's HTTP port is taken
    response = replica.http.post("/api/replication/promote", json={"replica_listen_address": busy})
    assert response.status_code == 400
    assert "not promoted" in response.json()["error"]
    s = replica.stats()
    assert s["role"] == "replica" and s["connected"] is True
    assert s["replication_id"] == master.stats()["replication_id"]
    bad = replica.http.post("/api/replication/promote", json={"replica_listen_address": "nonsense"})
    assert bad.status_code == 400
    master.redis().set("k2", "v2")
    wait_caught_up(master, [replica])


def test_replicaof_turns_a_master_into_a_replica_and_null_makes_it_standalone(
    node_factory: NodeFactory,
) -> None:
    a = node_factory.master(config=FAST, wait=False)
    b = node_factory.master(config=FAST, wait=False)
    ready(*node_factory.nodes)
    a.redis().set("from-a", "1")
    b.redis().set("from-b", "1")

    reply = replicaof(b, a.replica_address)  # a master becomes a replica, no restart
    assert reply == {
        "success": True,
        "role": "replica",
        "master_address": a.replica_address,
        "topology_file": str(b.data_dir / "topology.json"),
    }
    wait_converged(a, [b])
    assert b.redis().get("from-b") is None  # another history: replaced by a full sync
    with pytest.raises(redis.exceptions.ReadOnlyError):
        b.redis().set("x", "y")

    reply = replicaof(b, None)
    assert reply["role"] == "standalone"
    s = b.stats()
    assert s["role"] == "standalone" and s["replicas"] == []
    assert s["replica_listen_address"] is None
    b.redis().set("x", "y")  # writable again, dataset kept
    assert b.redis().get("from-a") == b"1"
    bad = b.http.post("/api/replication/replicaof", json={"master_address": "nohost"})
    assert bad.status_code == 400


def test_paused_writes_get_a_retryable_error_until_resumed(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=FAST, wait=False)
    replica = node_factory.replica(master, config=FAST, wait=False)
    ready(*node_factory.nodes)
    c = master.redis()
    c.set("before", "1")

    paused = master.http.post("/api/replication/pause", json={"seconds": None})
    assert paused.status_code == 200 and paused.json()["writes_paused"] is True
    offset = paused.json()["master_offset"]
    with pytest.raises(redis.exceptions.TryAgainError):
        c.set("during", "1")
    http_write = master.http.post("/kv/set", json={"key": "during", "value": "1"})
    assert http_write.status_code == 503 and http_write.json()["code"] == "TRYAGAIN"
    assert c.get("before") == b"1"  # reads still work
    s = master.stats()
    assert s["writes_paused"] is True and s["writes_paused_for"] is None
    assert s["master_offset"] == offset

    resumed = master.http.post("/api/replication/resume")
    assert resumed.json()["was_paused"] is True
    c.set("after", "1")

    # A lease ends by itself.
    master.http.post("/api/replication/pause", json={"seconds": 0.3})
    with pytest.raises(redis.exceptions.TryAgainError):
        c.set("during", "1")
    wait_for(lambda: master.stats()["writes_paused"] is False, 5)
    c.set("later", "1")

    # RESP CLIENT PAUSE / UNPAUSE do the same.
    c.execute_command("CLIENT", "PAUSE", "10000", "WRITE")
    with pytest.raises(redis.exceptions.TryAgainError):
        c.set("during", "1")
    c.execute_command("CLIENT", "UNPAUSE")
    c.set("last", "1")

    # Pausing a replica makes no sense: it takes no client writes.
    refused = replica.http.post("/api/replication/pause", json={"seconds": 5})
    assert refused.status_code == 400 and "replica" in refused.json()["error"]
    for body in ({}, {"seconds": 0}, {"seconds": "5"}):
        assert master.http.post("/api/replication/pause", json=body).status_code == 400
    wait_converged(master, [replica])
    assert replica.redis().get("during") is None
