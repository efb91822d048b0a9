"""Planned switchover in an etcd group (issue 12, item 8): ``synap-cli failover`` hands
the leader key to the chosen replica (or the best one) with real etcd and three nodes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from tests.integration.etcd_support import etcd_node, failover_status, node_id, wait_single_master
from tests.support.etcd import EtcdProcess
from tests.support.server import NodeFactory, SynapProcess, wait_for

CLI = [sys.executable, "-c", "from synap.cli import main; main()"]


def _group(node_factory: NodeFactory, etcd: EtcdProcess) -> tuple[SynapProcess, list[SynapProcess]]:
    nodes = [etcd_node(node_factory, etcd, f"n{i}", wait=False) for i in range(3)]
    for node in nodes:
        node.wait_ready()
    master = wait_single_master(nodes)
    return master, [n for n in nodes if n is not master]


class Writer(threading.Thread):
    """Writes to the old master during the switchover (bounded in count and time) and
    keeps every key whose write was acknowledged."""

    def __init__(self, node: SynapProcess) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.acked: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 30
        for i in range(20_000):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            key = f"during{i}"
            try:
                response = self.node.http.post("/kv/set", json={"key": key, "value": str(i)})
            except Exception:
                continue
            if response.status_code == 200:
                self.acked.append(key)
            else:
                time.sleep(0.01)


def _switch(
    master: SynapProcess, replicas: list[SynapProcess], to: SynapProcess | None
) -> tuple[SynapProcess, subprocess.CompletedProcess[str], list[str]]:
    for i in range(200):
        response = master.http.post("/kv/set", json={"key": f"before{i}", "value": str(i)})
        assert response.status_code == 200, response.text
    epoch = master.http.get("/api/replication/leader").json()["epoch"]
    nodes = [master, *replicas]
    full = {n.name: n.stats()["full_syncs"] for n in nodes}
    writer = Writer(master)
    writer.start()
    time.sleep(0.3)
    args = [*CLI, "failover", "--node", master.http_url]
    if to is not None:
        args += ["--to", to.http_url]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    writer.stop.set()
    writer.join(10)
    assert out.returncode == 0, out.stdout + out.stderr
    new = next(n for n in nodes if failover_status(n)["is_leader"])
    if to is not None:
        assert new is to
    assert new is not master
    assert new.stats()["role"] == "master"
    for node in nodes:
        leader = node.http.get("/api/replication/leader").json()
        assert leader["master"]["id"] == node_id(new)
        assert leader["epoch"] == epoch + 1
    for node in nodes:
        if node is new:
            continue
        stats = node.stats()
        assert stats["role"] == "replica" and stats["connected"]
        assert stats["master_address"] == new.replica_address
        # Partial sync (PSYNC2 across the handoff), never a full one.
        assert stats["full_syncs"] == full[node.name], out.stdout
    assert "by partial sync" in out.stdout
    acked = [f"before{i}" for i in range(200)] + writer.acked
    assert writer.acked, "no write was acknowledged during the run"
    missing = [k for k in acked if new.http.get(f"/kv/get/{k}").status_code != 200]
    assert missing == [], f"{len(missing)} acknowledged writes lost"
    # The new master takes writes; the old one refuses them.
    assert new.http.post("/kv/set", json={"key": "after", "value": "1"}).status_code == 200
    assert master.http.post("/kv/set", json={"key": "x", "value": "1"}).status_code == 409
    wait_for(lambda: master.http.get("/kv/get/after").status_code == 200, 10.0)
    return new, out, acked


def test_failover_to_named_replica_hands_over_the_leader_key(
    node_factory: NodeFactory, etcd_server: EtcdProcess
) -> None:
    master, replicas = _group(node_factory, etcd_server)
    # The target is the replica the ordinary election would NOT pick on a tie (higher id).
    target = max(replicas, key=node_id)
    new, out, _ = _switch(master, replicas, target)
    assert "handed the leader key of group 'g1'" in out.stdout
    assert "switchover complete" in out.stdout


def test_failover_without_to_picks_the_best_candidate(
    node_factory: NodeFactory, etcd_server: EtcdProcess
) -> None:
    master, replicas = _group(node_factory, etcd_server)
    new, out, _ = _switch(master, replicas, None)
    assert new in replicas


def test_failover_refuses_a_node_that_is_not_the_elected_master(
    node_factory: NodeFactory, etcd_server: EtcdProcess
) -> None:
    master, replicas = _group(node_factory, etcd_server)
    out = subprocess.run(
        [*CLI, "failover", "--node", replicas[0].http_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert failover_status(master)["is_leader"]


def test_handoff_route_in_manual_mode_is_refused(node_factory: NodeFactory) -> None:
    node = node_factory("m0", role="master")
    refused = node.http.post("/api/replication/handoff", json={"to": "x"})
    assert refused.status_code == 409
    assert refused.json()["code"] == "NOT_ETCD"
    bad = node.http.post("/api/replication/handoff", json={})
    assert bad.status_code == 400
