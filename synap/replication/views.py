"""The replication manager's operator views: the stats JSON (typed in
synap/replication/stats.py), ``GET /health``'s replication part, INFO replication fields
and the ROLE reply.  Values only: the front ends (synap/api/) encode them.

:class:`ReplicationViews` is the read-only half of
:class:`~synap.replication.manager.ReplicationManager` (its base class): it declares the
state it reads, the manager owns and changes that state.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

from synap.replication.roles import Role
from synap.replication.stats import (
    LogFields,
    MasterStats,
    ReplicaEntry,
    ReplicaStats,
    ReplicationStats,
)

if TYPE_CHECKING:
    from synap.config import ReplicationConfig
    from synap.replication.backlog import ReplicationBacklog
    from synap.replication.host import ReplicationHost
    from synap.replication.log import ReplicationLog
    from synap.replication.master import MasterServer
    from synap.replication.replica import ReplicaLink


class ReplicationViews:
    node: ReplicationHost
    config: ReplicationConfig
    log: ReplicationLog
    backlog: ReplicationBacklog
    master_server: MasterServer | None
    replica_link: ReplicaLink | None
    listen_address_text: str
    last_role_error: str | None
    full_syncs_performed: int
    partial_syncs_performed: int
    history_truncations: int
    records_truncated: int
    last_diverged_file: str | None
    truncations_requested: int
    sync_full: int
    sync_partial_ok: int
    sync_partial_err: int
    partial_syncs_from_disk: int
    records_sent_from_disk: int
    _started: bool

    @property
    def redis_role(self) -> str:
        return "replica" if self.node.roles.is_replica else "master"

    def stats(self) -> ReplicationStats:
        history = self.node.history
        role = self.node.roles.role
        common: dict[str, Any] = {
            "replica_id": self.node.node_id,
            "last_role_error": self.last_role_error,
            "replication_id": history.replid,
            "previous_replication_id": history.replid2,
            "second_offset": history.second_offset,
            # Performed by this node as a replica (docs/MONITORING.md).
            "full_syncs": self.full_syncs_performed,
            "partial_syncs": self.partial_syncs_performed,
            "history_truncations": self.history_truncations,
            "records_truncated": self.records_truncated,
            "diverged_file": self.last_diverged_file,
            "truncations_requested": self.truncations_requested,
            # Served by this node to its replicas (Redis INFO stats names).
            "sync_full": self.sync_full,
            "sync_partial_ok": self.sync_partial_ok,
            "sync_partial_err": self.sync_partial_err,
            "backlog_first_offset": self.backlog.first_offset,
            "backlog_size": len(self.backlog),
            **self.log_fields(),
        }
        if role is Role.REPLICA and self.replica_link is not None:
            out = self.replica_link.stats()
            if self.master_server is not None:
                out["replicas"] = self.master_server.replicas_info()
                out["replica_listen_address"] = self.listen_address_text
            out.update(common)
            return cast(ReplicaStats, out)
        replicas = self.master_server.replicas_info() if self.master_server else []
        master: MasterStats = {
            "role": "master" if role is Role.MASTER else "standalone",
            "master_offset": history.offset,
            "replicas": replicas,
            "replica_listen_address": self.listen_address_text if self.master_server else None,
            "writes_paused": self.node.roles.writes_paused,
            "writes_paused_for": self.node.roles.writes_paused_for,
            **common,  # type: ignore[typeddict-item]
        }
        return master

    def health(self) -> tuple[bool, str, dict[str, Any]]:
        """``(ok, status, replication)`` for ``GET /health`` (docs/MONITORING.md).

        What a load balancer needs to know is whether this node's data may be served:

        * a master or standalone node is its own source of truth: ``healthy``;
        * a replica is ``healthy`` once a sync with its current master has completed and
          the link is up;
        * ``unsynced`` (not ok) until that first sync completes: wrong secret, master
          unreachable, refused, still loading.  Whatever it holds (recovered from disk,
          or nothing) is of unknown age;
        * synced once, link down: ``reconnecting`` (still ok) for up to
          ``replica_timeout_secs``, the same grace the master gives a silent replica.
          A master restart or a network blip costs every replica a reconnect at once;
          pulling them all out of rotation for that would pile the reads onto the
          master and flap the pool, while their data is at most seconds old (Redis
          serves such stale reads too: ``replica-serve-stale-data yes``).  Longer than
          that the data is of unbounded age: ``stale`` (not ok).
        """
        if not self._started:
            # The HTTP port opens before the role is taken up.
            return False, "starting", {"connected": False, "synced": False, "last_error": None}
        link = self.replica_link
        if not self.node.roles.is_replica or link is None:
            return True, "healthy", {"connected": True, "synced": True, "last_error": None}
        down = link.link_down_seconds()
        replication: dict[str, Any] = {
            "connected": link.connected,
            "synced": link.synced,
            "last_error": link.last_error,
            "master_address": link.master_address,
            "link_down_seconds": None if down is None else int(down),
        }
        if not link.synced:
            return False, "unsynced", replication
        if link.connected:
            return True, "healthy", replication
        if (down or 0.0) < self.config.replica_timeout_secs:
            return True, "reconnecting", replication
        return False, "stale", replication

    def log_fields(self) -> LogFields:
        """The replication log's extent in memory and on disk (-1: none on disk)."""
        p = self.node.persistence
        disk = p.disk_log_bounds() if p is not None else None
        return {
            "log_memory_first_offset": self.backlog.first_offset,
            "log_memory_last_offset": self.backlog.last_offset,
            "log_disk_first_offset": disk[0] if disk else -1,
            "log_disk_last_offset": disk[1] if disk else -1,
            "log_first_offset": self.log.log_bounds().first_offset,
            "partial_syncs_from_disk": self.partial_syncs_from_disk,
            "records_sent_from_disk": self.records_sent_from_disk,
        }

    def role_reply(self) -> list[Any]:
        history = self.node.history
        if self.node.roles.is_replica and self.replica_link is not None:
            link = self.replica_link
            return ["slave", link.host, link.port, link.redis_state, history.offset]
        replicas = []
        if self.master_server is not None:
            for r in self.master_server.replicas_info():
                host, port = _redis_endpoint(r)
                replicas.append([host, port, str(r["offset"])])
        return ["master", history.offset, replicas]

    def info_fields(self) -> list[tuple[str, Any]]:
        history = self.node.history
        fields: list[tuple[str, Any]] = [
            ("role", "slave" if self.node.roles.is_replica else "master")
        ]
        link = self.replica_link
        if self.node.roles.is_replica and link is not None:
            fields += link.info_fields()
        replicas = self.master_server.replicas_info() if self.master_server else []
        fields.append(("connected_slaves", len(replicas)))
        now = time.time()
        for i, r in enumerate(replicas):
            host, port = _redis_endpoint(r)
            lag = int(now - r["last_heartbeat"]) if r["last_heartbeat"] else 0
            fields.append(
                (
                    f"slave{i}",
                    f"ip={host},port={port},state={r['state']},offset={r['offset']},lag={lag}",
                )
            )
        fields += [
            ("master_failover_state", self._failover_state()),
            ("master_replid", history.replid),
            ("master_replid2", history.replid2),
            ("master_repl_offset", history.offset),
            ("second_repl_offset", history.second_offset),
            ("repl_backlog_active", 1),
            ("repl_backlog_size", self.config.log_max_ops),
            ("repl_backlog_first_byte_offset", self.backlog.first_offset),
            ("repl_backlog_histlen", len(self.backlog)),
        ]
        fields += [(f"synap_{k}", v) for k, v in self.log_fields().items()]
        return fields

    def _failover_state(self) -> str:
        """Redis's master_failover_state: a lease pause (waiting for the target to catch
        up) reads as waiting-for-sync, the open-ended fence as failover-in-progress."""
        roles = self.node.roles
        if not roles.writes_paused:
            return "no-failover"
        return "failover-in-progress" if roles.writes_paused_for is None else "waiting-for-sync"


def _redis_endpoint(replica: ReplicaEntry) -> tuple[str, str]:
    """Host and Redis-protocol port of a replica for INFO/ROLE (its HTTP port if it has no
    Redis-protocol listener)."""
    host, _, port = replica["address"].rpartition(":")
    if replica.get("resp_port"):
        port = str(replica["resp_port"])
    return host, port
