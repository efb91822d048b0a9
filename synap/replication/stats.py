"""The shapes of ``GET /api/replication/stats`` (docs/MONITORING.md), as TypedDicts.

The server builds them (synap/replication/views.py, master.py, replica.py) and the
operator tools read them (synap/failover.py, synap/cli.py), so a field renamed on one
side is a type error on the other.  Pure types: no behaviour, importable from any layer.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict


class ReplicaEntry(TypedDict):
    """One replica attached to a master (``replicas`` in a master's stats)."""

    id: str
    address: str
    listen_address: str | None
    resp_port: int | None
    peer_address: str
    offset: int
    lag_operations: int
    lag_ms: int
    connected_at: int
    last_heartbeat: int
    state: str
    lagging: bool


class LogFields(TypedDict):
    """The replication log's extent in memory and on disk (-1: none on disk)."""

    log_memory_first_offset: int
    log_memory_last_offset: int
    log_disk_first_offset: int
    log_disk_last_offset: int
    log_first_offset: int
    partial_syncs_from_disk: int
    records_sent_from_disk: int


class CommonStats(LogFields):
    """Fields every role reports."""

    replica_id: str
    last_role_error: str | None
    replication_id: str
    previous_replication_id: str
    second_offset: int
    full_syncs: int
    partial_syncs: int
    # Divergent-history repair (docs/OPERATIONS.md): performed here / requested of replicas.
    history_truncations: int
    records_truncated: int
    diverged_file: str | None
    truncations_requested: int
    sync_full: int
    sync_partial_ok: int
    sync_partial_err: int
    backlog_first_offset: int
    backlog_size: int
    # Added by the HTTP layer when the node runs automatic failover (etcd).
    failover: NotRequired[dict[str, Any]]


class LinkStats(TypedDict):
    """A replica's link to its master (synap/replication/replica.py)."""

    role: Literal["replica"]
    replica_offset: int
    master_offset: int
    lag_operations: int
    lag_ms: int
    total_replicated: int
    records_streamed: int
    total_bytes: int
    connected: bool
    synced: bool
    link_down_seconds: int | None
    last_heartbeat: int | None
    master_address: str
    replica_id: str
    state: str
    sync_in_progress: bool
    sync_keys_received: int | None
    sync_keys_total: int | None
    failed_syncs: int
    last_error: str | None
    auto_reconnect: bool
    lagging: bool


class ReplicaStats(LinkStats, CommonStats):
    """A replica's stats; ``replicas`` / ``replica_listen_address`` when it serves
    sub-replicas."""

    replicas: NotRequired[list[ReplicaEntry]]
    replica_listen_address: NotRequired[str]


class MasterStats(CommonStats):
    """A master's (or standalone node's) stats."""

    role: Literal["master", "standalone"]
    master_offset: int
    replicas: list[ReplicaEntry]
    replica_listen_address: str | None
    writes_paused: bool
    writes_paused_for: float | None


ReplicationStats = MasterStats | ReplicaStats
