"""Automatic failover through a real etcd (issue 12): real etcd, real nodes, real signals.

Each node runs with ``--etcd-endpoints`` (so ``replication.failover.mode: etcd``),
``--role master`` (it may be elected) and a replica listener, with a 3 s lease TTL.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.integration.etcd_support import (
    GROUP,
    TTL,
    etcd_node,
    failover_status,
    node_id,
    set_ok,
    start_group,
    wait_single_master,
)
from tests.support.etcd import EtcdCluster, EtcdProcess
from tests.support.ports import HOST
from tests.support.server import NodeFactory, SynapProcess, wait_caught_up, wait_for

CLI = [sys.executable, "-c", "from synap.cli import main; main()"]


def test_fresh_group_of_three_elects_exactly_one_master(
    node_factory: NodeFactory, etcd_server: EtcdProcess
) -> None:
    nodes, master = start_group(node_factory, etcd_server)
    replicas = [n for n in nodes if n is not master]
    assert [n.stats()["role"] for n in replicas] == ["replica", "replica"]

    # Every node names the same master in GET /api/replication/leader.
    for node in nodes:
        response = node.http.get("/api/replication/leader")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["epoch"] >= 1
        assert body["master"] == {
            "id": node_id(master),
            "http_address": f"{HOST}:{master.port}",
            "resp_address": f"{HOST}:{master.resp_port}",
            "replica_listen_address": master.replica_address,
        }

    # synap-cli reads the same group straight from etcd.
    # A member record shows a node's new role from its next round on (every 0.5 s).
    cli = [*CLI, "group", "status", "--etcd", etcd_server.url]
    expected = {node_id(n): "master" if n is master else "replica" for n in nodes}

    def group_status() -> dict[str, Any] | None:
        out = subprocess.run([*cli, "--group", GROUP, "--json"], capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr
        status = json.loads(out.stdout)
        roles = {m["id"]: m["role"] for m in status["members"]}
        return status if roles == expected else None

    status = wait_for(group_status, 5.0, interval=0.2, message=f"etcd members are not {expected}")
    assert status["leader"]["master"]["id"] == node_id(master)
    assert status["epoch"] == status["leader"]["epoch"]
    assert all(m["lease_ttl_left"] > 0 for m in status["members"])

    # /metrics shows the epoch and who holds the leader key.
    def metric(node: SynapProcess, name: str) -> float:
        for line in node.http.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not exported by {node}")

    assert metric(master, "synap_replication_epoch") == status["epoch"]
    assert [metric(n, "synap_failover_is_leader") for n in nodes] == [
        1.0 if n is master else 0.0 for n in nodes
    ]
    assert metric(master, "synap_failover_etcd_reachable") == 1.0
    text = subprocess.run([*cli, "--group", GROUP], capture_output=True, timeout=30, text=True)
    assert f"master {node_id(master)}" in text.stdout
    dead = [*CLI, "group", "status", "--etcd", "127.0.0.1:1"]
    unreachable = subprocess.run(dead, capture_output=True, timeout=30, text=True)
    assert unreachable.returncode == 1
    assert "cannot read group 'synap' from etcd" in unreachable.stderr

    # Writes go to the master only, and reach both replicas.
    assert set_ok(master, "k", "v")
    for replica in replicas:
        refused = replica.http.post("/kv/set", json={"key": "k2", "value": "x"})
        assert refused.status_code == 409
        assert refused.json()["code"] == "READONLY"
        wait_for(lambda r=replica: r.http.get("/kv/get/k").status_code == 200, 10.0)

    # "majority" needs no replication.group_size here: the group's size is its etcd
    # membership (3), so a majority write waits for one replica.
    quorum = master.http.post(
        "/kv/set",
        json={"key": "q", "value": "1", "wait": {"replicas": "majority", "timeout_ms": 5000}},
    )
    assert quorum.status_code == 200, quorum.text
    assert quorum.json()["replicas_acked"] >= 1


def test_sigkill_of_master_elects_a_replica_that_the_other_follows(
    node_factory: NodeFactory, etcd_server: EtcdProcess
) -> None:
    nodes, old = start_group(node_factory, etcd_server)
    for i in range(50):
        assert set_ok(old, f"before{i}", f"v{i}")
    epoch_before = old.http.get("/api/replication/leader").json()["epoch"]
    survivors = [n for n in nodes if n is not old]
    wait_for(
        lambda: all(s.stats()["replica_offset"] == old.stats()["master_offset"] for s in survivors),
        10.0,
    )
    full_before = {s.name: s.stats()["full_syncs"] for s in survivors}

    killed_at = time.monotonic()
    old.kill(signal.SIGKILL)
    new = wait_single_master(survivors, timeout=TTL + 6)
    # First acknowledged write on the new master, timed from the kill.
    wait_for(lambda: set_ok(new, "after", "1"), TTL + 6, interval=0.05)
    elapsed = time.monotonic() - killed_at
    print(f"SIGKILL -> first write on the new master: {elapsed:.2f}s")
    assert elapsed < TTL + 4, f"failover took {elapsed:.1f}s"

    other = next(s for s in survivors if s is not new)
    wait_for(lambda: other.http.get("/kv/get/after").status_code == 200, 10.0)
    assert other.http.get("/kv/get/before49").json()["value"] == "v49"
    # The other replica continued by partial sync (PSYNC2), not a full one.
    assert other.stats()["full_syncs"] == full_before[other.name]
    leader = other.http.get("/api/replication/leader").json()
    assert leader["master"]["id"] == node_id(new)
    assert leader["epoch"] == epoch_before + 1

    # The old master, restarted with the same flags (--role master), sees another leader
    # and rejoins as its replica; it had lost nothing, so by partial sync.
    old.start()
    assert wait_single_master(nodes) is new
    wait_for(lambda: old.http.get("/kv/get/after").status_code == 200, 10.0)
    stats = old.stats()
    assert (stats["full_syncs"], stats["partial_syncs"]) == (0, 1), stats


def test_master_frozen_past_ttl_acknowledges_no_write_after_resume(
    node_factory: NodeFactory, etcd_server: EtcdProcess
) -> None:
    nodes, old = start_group(node_factory, etcd_server)
    assert set_ok(old, "k", "before")
    wait_caught_up(old, [n for n in nodes if n is not old])
    full_syncs_before = old.stats()["full_syncs"]
    # A client connected before the freeze; its write waits in the socket while frozen.
    sock = socket.create_connection((HOST, old.resp_port), timeout=10)
    try:
        old.freeze()
        survivors = [n for n in nodes if n is not old]
        new = wait_single_master(survivors, timeout=TTL + 8)
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\nfrozen\r\n")
        old.thaw()
        reply = sock.recv(4096)
    finally:
        sock.close()
    assert reply.startswith(b"-READONLY"), reply
    assert b"leadership lost" in reply or b"not the elected master" in reply, reply
    # Nor over HTTP, and the old master soon follows the new one.
    assert not set_ok(old, "k", "frozen-http")
    assert set_ok(new, "k", "after")
    wait_single_master(nodes, timeout=15.0)
    wait_for(lambda: old.http.get("/kv/get/k").json().get("value") == "after", 10.0)
    # It took nothing while fenced, so it rejoins from the fork point by partial sync.
    stats = old.stats()
    assert (stats["role"], stats["full_syncs"]) == ("replica", full_syncs_before), stats
    assert stats["partial_syncs"] >= 1


def test_priority_zero_is_never_promoted(
    node_factory: NodeFactory, etcd_server: EtcdProcess
) -> None:
    first = etcd_node(node_factory, etcd_server, "a", priority=100)
    wait_for(lambda: failover_status(first)["is_leader"], 10.0)
    second = etcd_node(node_factory, etcd_server, "b", priority=0)
    wait_single_master([first, second])
    assert set_ok(first, "k", "v")
    wait_for(lambda: second.http.get("/kv/get/k").status_code == 200, 10.0)

    first.kill(signal.SIGKILL)
    # Long enough for the lease to expire and an election to run (several times over).
    deadline = time.monotonic() + TTL + 4
    while time.monotonic() < deadline:
        assert not failover_status(second)["is_leader"]
        assert second.stats()["role"] == "replica"
        time.sleep(0.2)
    response = second.http.get("/api/replication/leader")
    assert response.status_code == 503
    assert response.json()["code"] == "NO_LEADER"
    assert not set_ok(second, "k2", "v")


def test_leader_endpoint_in_manual_mode_says_failover_is_off(node_factory: NodeFactory) -> None:
    node = node_factory.master()
    response = node.http.get("/api/replication/leader")
    assert response.status_code == 503
    assert "manual" in response.json()["error"]


@pytest.mark.parametrize("role", ["replica"])
def test_node_started_as_replica_follows_the_elected_master(
    node_factory: NodeFactory, etcd_server: EtcdProcess, role: str
) -> None:
    master = etcd_node(node_factory, etcd_server, "m")
    wait_for(lambda: failover_status(master)["is_leader"], 10.0)
    follower = etcd_node(node_factory, etcd_server, "r", role=role)
    assert wait_single_master([master, follower]) is master


def test_etcd_down_master_steps_down_and_group_resumes_without_full_sync(
    node_factory: NodeFactory, etcd_server: EtcdProcess
) -> None:
    nodes, master = start_group(node_factory, etcd_server)
    assert set_ok(master, "k", "v1")
    replicas = [n for n in nodes if n is not master]
    wait_caught_up(master, replicas)
    full_syncs = {n.name: n.stats()["full_syncs"] for n in nodes}

    etcd_server.stop()  # SIGKILL: no etcd at all
    stopped_at = time.monotonic()
    # No lease, no writes: within 2/3 TTL (plus a little) the master refuses them.
    wait_for(lambda: not set_ok(master, "probe", "x"), TTL + 1, interval=0.05)
    assert time.monotonic() - stopped_at < TTL + 1
    refused = master.http.post("/kv/set", json={"key": "k", "value": "v2"})
    assert refused.status_code == 409 and "leadership lost" in refused.json()["error"]
    # Replicas keep serving reads.
    for replica in replicas:
        assert replica.http.get("/kv/get/k").json()["value"] == "v1"

    etcd_server.start()
    new = wait_single_master(nodes, timeout=TTL * 4 + 5)
    wait_for(lambda: set_ok(new, "k", "v3"), 10.0)
    wait_caught_up(new, [n for n in nodes if n is not new])
    assert {n.name: n.stats()["full_syncs"] for n in nodes} == full_syncs


def test_master_cut_off_from_etcd_stops_writing_before_a_replica_takes_over(
    node_factory: NodeFactory, etcd_server: EtcdProcess
) -> None:
    # Only the first node reaches etcd through a fault proxy; the others directly.
    proxy = node_factory.proxy((HOST, etcd_server.client_port))
    first = etcd_node(node_factory, etcd_server, "a", endpoints=f"http://{proxy.address}")
    wait_for(lambda: failover_status(first)["is_leader"], 10.0)
    others = [etcd_node(node_factory, etcd_server, name) for name in ("b", "c")]
    nodes = [first, *others]
    assert wait_single_master(nodes) is first
    assert set_ok(first, "k", "v1")
    wait_caught_up(first, others)

    proxy.pause()  # partition node a <-> etcd only; a and its replicas still talk
    paused_at = time.monotonic()
    last_ack: float | None = None
    elected_at: float | None = None
    deadline = paused_at + TTL + 8
    i = 0
    while time.monotonic() < deadline and elected_at is None:
        i += 1
        if set_ok(first, f"during{i}", "x"):
            last_ack = time.monotonic()
        if any(failover_status(n)["is_leader"] for n in others):
            elected_at = time.monotonic()
        time.sleep(0.05)
    assert elected_at is not None, "no replica was elected while the master was cut off"
    print(
        f"cut off at 0; last ack {None if last_ack is None else round(last_ack - paused_at, 2)}; elected {elected_at - paused_at:.2f}s"
    )
    # The cut-off master stopped writing within 2/3 TTL (plus a round), before the
    # election: at no moment were two masters writable.
    if last_ack is not None:
        assert last_ack - paused_at < TTL * 2 / 3 + 0.5
        assert last_ack < elected_at
    assert not set_ok(first, "k", "split-brain")

    proxy.resume()
    new = wait_single_master(nodes, timeout=15.0)
    assert new is not first
    assert set_ok(new, "k", "v2")
    wait_for(lambda: first.http.get("/kv/get/k").json().get("value") == "v2", 10.0)


def test_lagging_replica_is_not_promoted(
    node_factory: NodeFactory, etcd_server: EtcdProcess
) -> None:
    first = etcd_node(node_factory, etcd_server, "a")
    wait_for(lambda: failover_status(first)["is_leader"], 10.0)
    second = etcd_node(node_factory, etcd_server, "b", max_lag_on_failover=5)
    wait_single_master([first, second])
    assert set_ok(first, "k", "v")
    wait_caught_up(first, [second])

    # The replica is frozen while the master takes 40 writes of 256 KiB: more than the
    # replica's socket can buffer, so when the master dies most never reached it.
    second.freeze()
    big = "x" * 256 * 1024
    for i in range(40):
        assert set_ok(first, f"k{i}", big)
    time.sleep(1.0)  # the master records its offset in etcd every round
    first.kill(signal.SIGKILL)
    second.thaw()
    deadline = time.monotonic() + TTL + 5
    while time.monotonic() < deadline:
        assert not failover_status(second)["is_leader"], "a lagging replica was promoted"
        time.sleep(0.2)
    assert second.http.get("/api/replication/leader").status_code == 503
    print("lagging replica offset", second.stats()["replica_offset"], "of 41")
    assert second.stats()["replica_offset"] < 41 - 5  # it really is behind


def test_killing_the_etcd_raft_leader_never_makes_two_masters(
    node_factory: NodeFactory, etcd_cluster: EtcdCluster
) -> None:
    endpoints = etcd_cluster.endpoints
    member = etcd_cluster.members[0]
    nodes = [
        etcd_node(node_factory, member, f"n{i}", endpoints=endpoints, wait=False) for i in range(3)
    ]
    for node in nodes:
        node.wait_ready()
    wait_single_master(nodes)

    etcd_cluster.raft_leader().stop()  # SIGKILL of the etcd leader
    acked: dict[str, str] = {}  # key -> node that acknowledged it
    deadline = time.monotonic() + TTL + 4
    i = 0
    while time.monotonic() < deadline:
        for node in nodes:
            i += 1
            if set_ok(node, f"w{i}", "x"):
                acked[f"w{i}"] = node.name
        time.sleep(0.02)
    master = wait_single_master(nodes, timeout=15.0)
    assert set_ok(master, "last", "x")
    wait_caught_up(master, [n for n in nodes if n is not master])
    # Every acknowledged write survived: no second master took writes that were then lost.
    missing = [k for k in acked if master.http.get(f"/kv/get/{k}").status_code != 200]
    assert not missing, f"acknowledged writes lost: {[(k, acked[k]) for k in missing]}"
    assert acked, "no write was acknowledged during or after the etcd election"


def test_replica_refuses_a_master_that_was_not_elected(
    node_factory: NodeFactory, etcd_server: EtcdProcess
) -> None:
    leader = etcd_node(node_factory, etcd_server, "a")
    wait_for(lambda: failover_status(leader)["is_leader"], 10.0)
    follower = etcd_node(node_factory, etcd_server, "b")
    wait_single_master([leader, follower])
    assert set_ok(leader, "elected", "yes")
    wait_caught_up(leader, [follower])
    # A manual-mode master (no epoch) that holds other data.
    rogue = node_factory.master("rogue")
    assert set_ok(rogue, "rogue", "data")

    # Point the etcd-mode replica at it by hand: the handshake carries no epoch, so the
    # replica refuses it (its data is not replaced), and the election repoints it back.
    answer = follower.http.post(
        "/api/replication/replicaof", json={"master_address": rogue.replica_address}
    )
    assert answer.status_code == 200, answer.text
    wait_for(lambda: "older than epoch" in follower.log_text(), 10.0)
    wait_single_master([leader, follower])
    assert follower.http.get("/kv/get/rogue").status_code == 404
    assert follower.http.get("/kv/get/elected").status_code == 200


def test_manual_role_changes_do_not_fight_the_election(
    node_factory: NodeFactory, etcd_server: EtcdProcess
) -> None:
    nodes, master = start_group(node_factory, etcd_server)
    replica = next(n for n in nodes if n is not master)
    # Promotion by hand is refused, over HTTP and RESP.
    refused = replica.http.post("/api/replication/promote")
    assert refused.status_code == 400
    assert "etcd election" in refused.json()["error"]
    try:
        replica.redis().execute_command("REPLICAOF", "NO", "ONE")
        raise AssertionError("REPLICAOF NO ONE accepted in etcd mode")
    except Exception as exc:  # redis.ResponseError
        assert "etcd election" in str(exc)
    # The master demoted by hand hands its leadership back: the group elects one master.
    answer = master.http.post(
        "/api/replication/replicaof", json={"master_address": replica.replica_address}
    )
    assert answer.status_code == 200, answer.text
    demoted = master.stats()  # before its next round hands the leader key back
    assert demoted["role"] == "replica"
    assert demoted["failover"]["is_leader"] is False
    new = wait_single_master(nodes, timeout=TTL * 3)
    assert set_ok(new, "k", "v")
    wait_caught_up(new, [n for n in nodes if n is not new])
    # synap-cli failover given a node that is not the elected master refuses before it
    # pauses anything (the switchover itself: test_switchover_etcd.py).
    follower = next(n for n in nodes if n is not new)
    run = [*CLI, "failover", "--node", follower.http_url]
    refused_cli = subprocess.run(run, capture_output=True, timeout=30, text=True)
    assert refused_cli.returncode == 1, refused_cli.stdout
    assert "not a master" in refused_cli.stdout
    assert "paused writes" not in refused_cli.stdout
    assert set_ok(new, "k2", "v2")
