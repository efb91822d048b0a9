"""Consistency checks shared by the replication tests: digests, convergence, sync counts."""

from __future__ import annotations

from tests.support.server import SynapProcess, wait_caught_up


def digest(node: SynapProcess) -> str:
    """The node's dataset digest (``GET /api/replication/digest``)."""
    return str(node.http.get("/api/replication/digest").json()["digest"])


def assert_same_data(
    master: SynapProcess, replicas: list[SynapProcess], timeout: float = 30
) -> int:
    """Wait until every replica holds the master's offset; then the digests must match.

    Returns the offset they converged on."""
    offset = wait_caught_up(master, replicas, timeout)
    expected = digest(master)
    for replica in replicas:
        assert digest(replica) == expected, f"{replica.name} differs from {master.name}"
    return offset


def syncs(node: SynapProcess) -> tuple[int, int]:
    """(full_syncs, partial_syncs) from the node's replication stats."""
    stats = node.stats()
    return stats["full_syncs"], stats["partial_syncs"]
