"""Consistency checks shared by the replication tests: digests, convergence, sync counts."""

from __future__ import annotations

from typing import Any

from tests.support.server import SynapProcess, wait_caught_up


def digest(node: SynapProcess) -> str:
    """The node's dataset digest (``GET /api/replication/digest``)."""
    return str(node.http.get("/api/replication/digest").json()["digest"])


def digest_report(node: SynapProcess) -> dict[str, Any]:
    """The whole ``GET /api/replication/digest`` answer: digest, keys, role, id, offset."""
    response = node.http.get("/api/replication/digest")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


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
    """(full, partial) syncs of the node in both directions: served to its replicas
    (``sync_full``, ``sync_partial_ok``) plus performed as a replica (``full_syncs``,
    ``partial_syncs``). Tests mostly ask one node in one role, where one side is 0."""
    s = node.stats()
    return s["sync_full"] + s["full_syncs"], s["sync_partial_ok"] + s["partial_syncs"]


def served(node: SynapProcess) -> tuple[int, int, int]:
    """(sync_full, sync_partial_ok, sync_partial_err): syncs the node served its replicas."""
    stats = node.stats()
    return stats["sync_full"], stats["sync_partial_ok"], stats["sync_partial_err"]
