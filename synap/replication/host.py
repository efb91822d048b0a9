"""What the asyncio replication code needs from outside the package, as Protocols.

The node (synap/node.py) satisfies :class:`ReplicationHost`; the replication manager
satisfies :class:`MasterOwner` and :class:`ReplicaOwner`, which is all a
:class:`~synap.replication.master.MasterServer` or
:class:`~synap.replication.replica.ReplicaLink` may touch of it.  Nothing here imports
the node, the front ends or the coordination package, so the package stays below them
(docs/ARCHITECTURE.md, "Layers").
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from synap.commands.layer import Commands
    from synap.config import Config, ReplicationConfig
    from synap.latency import LatencyHistogram
    from synap.persistence.manager import Persistence
    from synap.replication.backlog import ReplicationBacklog
    from synap.replication.roles import RoleMachine
    from synap.store.history import History
    from synap.store.keyspace import Keyspace
    from synap.tls import TlsContexts


class Elector(Protocol):
    """The automatic-failover coordinator, as replication sees it."""

    @property
    def members(self) -> Sequence[object]: ...

    def newer_epoch_seen(self, epoch: int, source: str) -> None: ...


class OffsetListener(Protocol):
    def offset_changed(self) -> None: ...


class ReplicationHost(Protocol):
    """The node's parts the replication package uses: history, keyspace, roles, TLS,
    announced addresses, WAL flush and the persistence hooks."""

    @property
    def node_id(self) -> str: ...
    @property
    def history(self) -> History: ...
    @property
    def keyspace(self) -> Keyspace: ...
    @property
    def commands(self) -> Commands: ...
    @property
    def roles(self) -> RoleMachine: ...
    @property
    def tls(self) -> TlsContexts: ...
    @property
    def persistence(self) -> Persistence | None: ...
    @property
    def config(self) -> Config: ...
    # Addresses announced to masters and shown to misdirected clients.
    @property
    def http_address(self) -> tuple[str, int] | None: ...
    @property
    def resp_address(self) -> tuple[str, int] | None: ...
    @property
    def rpc_address(self) -> tuple[str, int] | None: ...
    @property
    def elector(self) -> Elector | None: ...
    @property
    def offset_listener(self) -> OffsetListener: ...

    def flush_writes(self) -> None:
        """Write (and fsync, per policy) the WAL: before acknowledging or replying."""

    def record_topology(self, reason: str) -> str | None:
        """Persist the current role; the file written or None."""


class LinkConnection(Protocol):
    @property
    def transport(self) -> asyncio.BaseTransport | None: ...


class FollowedLink(Protocol):
    """This node's own replica link, as its replica listener sees it."""

    @property
    def connection(self) -> LinkConnection | None: ...


class ReplicationCounters(Protocol):
    """Counters and histograms the links update (read by INFO, stats and /metrics)."""

    sync_full: int
    sync_partial_ok: int
    sync_partial_err: int
    full_syncs_performed: int
    partial_syncs_performed: int
    partial_syncs_from_disk: int
    records_sent_from_disk: int
    # Divergent-history repair (replica.py performs it, master.py requests it).
    history_truncations: int
    records_truncated: int
    last_diverged_file: str | None
    truncations_requested: int
    bytes_sent: int
    full_sync_bytes_sent: int
    partial_sync_refusals: dict[str, int]
    full_sync_seconds: LatencyHistogram
    total_forks: int
    latest_fork_usec: int
    apply_seconds: LatencyHistogram


class MasterOwner(ReplicationCounters, Protocol):
    """What a MasterServer uses of the replication manager."""

    epoch: int
    last_role_error: str | None

    @property
    def config(self) -> ReplicationConfig: ...
    @property
    def backlog(self) -> ReplicationBacklog: ...
    @property
    def replica_link(self) -> FollowedLink | None: ...

    def disk_log_bounds(self) -> tuple[int, int] | None: ...
    def log_bounds(self) -> LogBoundsLike: ...
    def refuse_full_sync_reason(self, replica_replid: str, next_offset: int) -> str | None: ...
    def refused_self_replication(self, reason: str) -> None: ...
    def persist_identity(self) -> None: ...
    def newer_epoch_seen(self, epoch: int, source: str) -> None: ...


class LogBoundsLike(Protocol):
    @property
    def first_offset(self) -> int: ...
    @property
    def last_offset(self) -> int: ...


class ReplicaOwner(ReplicationCounters, Protocol):
    """What a ReplicaLink uses of the replication manager."""

    epoch: int
    last_role_error: str | None

    @property
    def config(self) -> ReplicationConfig: ...
    @property
    def backlog(self) -> ReplicationBacklog: ...

    def drop_sub_replicas(self, reason: str) -> None: ...
    def persist_identity(self) -> None: ...
    def persist_full_sync(self) -> None: ...
