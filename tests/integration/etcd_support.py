"""Helpers for the automatic-failover tests: nodes in etcd mode, and who leads."""

from __future__ import annotations

from typing import Any

from tests.support.etcd import EtcdProcess
from tests.support.ports import HOST
from tests.support.server import NodeFactory, SynapProcess, wait_for

TTL = 3
GROUP = "g1"


def etcd_node(
    factory: NodeFactory,
    etcd: EtcdProcess,
    name: str,
    *,
    priority: int = 100,
    role: str = "master",
    wait: bool = True,
    endpoints: str | None = None,
    **failover: Any,
) -> SynapProcess:
    settings = {"lease_ttl_secs": TTL, "priority": priority, **failover}
    config = {"replication": {"failover": settings}}
    return factory(
        name,
        role=role,  # type: ignore[arg-type]
        replica_listen=True,
        config=config,
        args=["--etcd-endpoints", endpoints or etcd.url, "--group", GROUP],
        wait=wait,
    )


def start_group(
    factory: NodeFactory, etcd: EtcdProcess, count: int = 3
) -> tuple[list[SynapProcess], SynapProcess]:
    """``count`` nodes started at once as ``n0..``, all ready; and the one they elected."""
    nodes = [etcd_node(factory, etcd, f"n{i}", wait=False) for i in range(count)]
    for node in nodes:
        node.wait_ready()
    return nodes, wait_single_master(nodes)


def node_id(node: SynapProcess) -> str:
    return f"{HOST}:{node.port}"


def failover_status(node: SynapProcess) -> dict[str, Any]:
    status: dict[str, Any] = node.stats()["failover"]
    return status


def leaders(nodes: list[SynapProcess]) -> list[SynapProcess]:
    return [n for n in nodes if n.is_running() and failover_status(n)["is_leader"]]


def wait_single_master(nodes: list[SynapProcess], timeout: float = 15.0) -> SynapProcess:
    """Wait until exactly one node leads and every other one replicates from it."""

    def settled() -> SynapProcess | None:
        found = leaders(nodes)
        if len(found) != 1:
            return None
        master = found[0]
        for other in nodes:
            if other is master or not other.is_running():
                continue
            stats = other.stats()
            if stats["role"] != "replica" or not stats["connected"]:
                return None
            if stats["master_address"] != master.replica_address:
                return None
        return master

    return wait_for(settled, timeout, interval=0.1, message="no single elected master")


def set_ok(node: SynapProcess, key: str, value: str) -> bool:
    response = node.http.post("/kv/set", json={"key": key, "value": value})
    return response.status_code == 200
