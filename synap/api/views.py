"""Read-only views of a node in the shapes the front ends answer with: key-value stats,
the digest report and the values CONFIG GET reports.  INFO is synap/api/info.py and
/metrics synap/api/metrics.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from synap.replication.control import (
    Following,
    HandedOff,
    Promoted,
    RoleChange,
    Stopped,
    WritesPaused,
    WritesResumed,
)
from synap.store.keyspace import EVICTION_SAMPLES

if TYPE_CHECKING:
    from synap.api.services import DataServices, NodeServices, ReplicatedData


def digest_report(node: NodeServices) -> dict[str, Any]:
    """``GET /api/replication/digest``: the dataset digest and the history it is at."""
    return {
        "digest": node.digest(),
        "keys": len(node.keyspace),
        "role": str(node.roles.role),
        "replication_id": node.history.replid,
        "offset": node.history.offset,
    }


def kv_stats(node: DataServices) -> dict[str, Any]:
    """``GET /kv/stats`` and ``SYNAP.STATS``."""
    s = node.commands.stats
    lookups = s.hits + s.misses
    return {
        "total_keys": len(node.keyspace),
        "total_memory_bytes": node.keyspace.used_memory,
        "operations": {
            "gets": s.gets,
            "sets": s.sets,
            "dels": s.dels,
            "hits": s.hits,
            "misses": s.misses,
        },
        "hit_rate": (s.hits / lookups) if lookups else 0.0,
        "evicted_keys": node.keyspace.evicted_total,
        "expired_keys": node.keyspace.expired_total,
    }


def config_values(node: ReplicatedData) -> dict[str, str]:
    """What CONFIG GET answers (enough for redis-benchmark and redis-cli)."""
    kv = node.config.kv_store
    policy = {
        "none": "noeviction",
        "lru": "allkeys-lru",
        "lfu": "allkeys-lfu",
        "ttl": "volatile-ttl",
    }
    p = node.config.persistence
    master = node.roles.master_address if node.roles.is_replica else None
    # The master's host and replication port, space-separated as Redis writes it.
    replicaof = " ".join(master.rpartition(":")[::2]) if master else ""
    return {
        "save": "",
        "appendonly": "yes" if p.enabled else "no",
        "appendfsync": {"always": "always", "periodic": "everysec", "never": "no"}[p.fsync_mode],
        "maxmemory": str(node.keyspace.max_memory_bytes),
        "maxmemory-policy": policy[kv.eviction_policy],
        "databases": "1",
        "port": str(node.config.server.resp_port),
        "bind": node.config.server.host,
        "maxclients": str(node.config.server.max_clients),
        "timeout": str(node.config.server.client_timeout_secs),
        "maxmemory-samples": str(EVICTION_SAMPLES),
        "maxmemory-clients": "0",  # no client eviction
        "daemonize": "no",  # synap-server stays in the foreground
        "replicaof": replicaof,
        "slaveof": replicaof,
        "min-replicas-max-lag": str(node.min_replicas_max_lag),
        "min-replicas-to-write": str(node.min_replicas_to_write),
        "proto-max-bulk-len": str(kv.max_value_bytes),
        "replica-read-only": "yes",
        "repl-backlog-size": str(node.config.replication.log_max_mb * 1024 * 1024),
        "repl-timeout": str(node.config.replication.replica_timeout_secs),
        "dir": str(Path(p.data_dir).resolve()),
        "replica-serve-stale-data": "yes" if node.config.replication.serve_stale_reads else "no",
    }


def role_change_json(result: RoleChange) -> dict[str, Any]:
    """The HTTP answer to a replication control request (docs/OPERATIONS.md)."""
    match result:
        case Promoted(already=True):
            return {"success": True, "role": "master", "message": "already a master",
                    "replication_id": result.replication_id, "offset": result.offset,
                    "replica_listen_address": result.replica_listen_address}  # fmt: skip
        case Promoted():
            return {
                "success": True,
                "role": "master",
                "replication_id": result.replication_id,
                "previous_replication_id": result.previous_replication_id,
                "offset": result.offset,
                "replica_listen_address": result.replica_listen_address,
                "topology_file": result.topology_file,
            }
        case Following(already=True):
            return {"success": True, "role": "replica", "master_address": result.master_address,
                    "message": "already following this master"}  # fmt: skip
        case Following():
            return {
                "success": True,
                "role": "replica",
                "master_address": result.master_address,
                "topology_file": result.topology_file,
            }
        case Stopped():
            return {"success": True, "role": "standalone", "topology_file": result.topology_file}
        case WritesPaused():
            return {
                "success": True,
                "writes_paused": True,
                "seconds": result.seconds,
                "role": result.role,
                "replication_id": result.replication_id,
                "master_offset": result.master_offset,
            }
        case HandedOff():
            return {"success": True, "handed_off_to": result.target_id, "epoch": result.epoch,
                    "offset": result.offset}  # fmt: skip
        case WritesResumed():
            return {
                "success": True,
                "writes_paused": False,
                "was_paused": result.was_paused,
                "role": result.role,
                "master_offset": result.master_offset,
            }
