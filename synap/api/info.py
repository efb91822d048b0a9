"""``INFO`` text in Redis's format (``# Section`` headers, ``field:value`` lines), with
Redis's field names so that redis-cli, redis-py and monitoring tools read it unchanged."""

from __future__ import annotations

import os
import resource
import time
from typing import TYPE_CHECKING, Any

from synap import __version__

if TYPE_CHECKING:
    from synap.node import Node

SECTIONS = ("server", "clients", "memory", "persistence", "stats", "replication", "keyspace")


def _server(node: Node) -> list[tuple[str, Any]]:
    uptime = int(time.time() - node.started_at)
    port = node.resp_address[1] if node.resp_address else 0
    return [
        ("redis_version", "7.0.15"),
        ("synap_version", __version__),
        ("redis_mode", "standalone"),
        ("process_id", os.getpid()),
        ("tcp_port", port),
        ("uptime_in_seconds", uptime),
        ("uptime_in_days", uptime // 86400),
        ("executable", "synap-server"),
    ]


def _clients(node: Node) -> list[tuple[str, Any]]:
    return [
        ("connected_clients", len(node.clients())),
        ("maxclients", node.config.server.max_clients),
    ]


def _memory(node: Node) -> list[tuple[str, Any]]:
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    policy = node.config_values()["maxmemory-policy"]
    return [
        ("used_memory", node.keyspace.used_memory),
        ("used_memory_peak_rss", rss_kb * 1024),
        ("maxmemory", node.keyspace.max_memory_bytes),
        ("maxmemory_policy", policy),
    ]


def _persistence(node: Node) -> list[tuple[str, Any]]:
    p = node.persistence
    fields: list[tuple[str, Any]] = [
        ("loading", 0),
        ("aof_enabled", int(p is not None)),
    ]
    if p is not None:
        fields += [(f"synap_{k}", v) for k, v in p.stats().items()]
    return fields


def _stats(node: Node) -> list[tuple[str, Any]]:
    s = node.commands.stats
    repl = node.replication
    return [
        ("total_commands_processed", s.gets + s.sets + s.dels),
        ("keyspace_hits", s.hits),
        ("keyspace_misses", s.misses),
        ("expired_keys", node.keyspace.expired_total),
        ("evicted_keys", node.keyspace.evicted_total),
        ("sync_full", repl.full_syncs),
        ("sync_partial_ok", repl.partial_syncs),
        ("sync_partial_err", repl.partial_sync_errors),
    ]


def _keyspace(node: Node) -> list[tuple[str, Any]]:
    if not len(node.keyspace):
        return []
    ks = node.keyspace
    return [("db0", f"keys={len(ks)},expires={len(ks.expires)},avg_ttl=0")]


_RENDERERS = {
    "server": _server,
    "clients": _clients,
    "memory": _memory,
    "persistence": _persistence,
    "stats": _stats,
    "keyspace": _keyspace,
}


def render_info(node: Node, sections: list[str]) -> str:
    wanted = [s for s in sections if s not in ("all", "default", "everything")] or list(SECTIONS)
    out: list[str] = []
    for name in wanted:
        if name == "replication":
            fields = node.replication.info_fields()
        elif name in _RENDERERS:
            fields = _RENDERERS[name](node)
        else:
            continue
        out.append(f"# {name.capitalize()}")
        out.extend(f"{k}:{v}" for k, v in fields)
        out.append("")
    return "\r\n".join(out)
