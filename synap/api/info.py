"""``INFO`` text in Redis's format (``# Section`` headers, ``field:value`` lines), with
Redis's field names so that redis-cli, redis-py and monitoring tools read it unchanged."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from synap import __version__, hugepages, sizeclasses
from synap.replication.peer_fields import escape_text

if TYPE_CHECKING:
    from synap.api.services import NodeServices

# Redis's order; "default" is all of them but commandstats; "all" and "everything" are
# all of them (no module adds sections of its own: the modules section is empty).
SECTIONS = (
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "cluster",
    "keyspace",
)
DEFAULT = frozenset(SECTIONS) - {"commandstats"}
_RUN_ID = os.urandom(20).hex()


def _rss_bytes() -> int:
    """Resident set size now (Linux: /proc/self/statm), else the peak getrusage gives."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _human(n: int) -> str:
    """Redis's bytesToHuman."""
    for unit, size in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n}B"


def _server(node: NodeServices) -> list[tuple[str, Any]]:
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
        ("redis_git_sha1", "00000000"),
        ("redis_git_dirty", 0),
        ("os", f"{os.uname().sysname} {os.uname().release} {os.uname().machine}"),
        ("arch_bits", 64 if sys.maxsize > 2**32 else 32),
        ("multiplexing_api", "asyncio"),
        ("python_version", platform.python_version()),
        ("run_id", _RUN_ID),
        ("server_time_usec", time.time_ns() // 1000),
        ("hz", 10),
        ("configured_hz", 10),
        ("config_file", str(node.config.source_path or "")),
    ]


def _clients(node: NodeServices) -> list[tuple[str, Any]]:
    clients = node.clients()
    return [
        ("connected_clients", len(clients)),
        ("blocked_clients", sum(1 for c in clients if c.blocked)),
        ("maxclients", node.config.server.max_clients),
        ("cluster_connections", 0),
        ("tracking_clients", 0),
    ]


def _memory(node: NodeServices) -> list[tuple[str, Any]]:
    policy = node.config_values()["maxmemory-policy"]
    huge = hugepages.stats()
    classes = sizeclasses.stats()
    return [
        ("used_memory", node.keyspace.used_memory),
        ("used_memory_rss", _rss_bytes()),
        ("maxmemory", node.keyspace.max_memory_bytes),
        ("maxmemory_policy", policy),
        ("used_memory_human", _human(node.keyspace.used_memory)),
        ("used_memory_rss_human", _human(_rss_bytes())),
        ("maxmemory_human", _human(node.keyspace.max_memory_bytes)),
        ("mem_allocator", "libc"),
        # Python's object arenas on transparent huge pages (kv_store.huge_pages): "active",
        # or "off (why)"; how many 1 MiB arenas the huge-page range holds now; and the
        # thread populating it ahead of them ("running", "off", "unsupported", "failed").
        ("synap_huge_pages", hugepages.status().describe()),
        ("synap_huge_pages_arenas", huge.get("arenas", 0)),
        ("synap_huge_pages_prefault", huge.get("prefault", "off")),
        ("synap_huge_pages_prefaulted_bytes", huge.get("populated_bytes", 0)),
        # 8-byte size classes for 129-504-byte objects (kv_store.size_classes): "fine",
        # or "pymalloc (why)"; the objects they hold and the bytes saved against pymalloc.
        ("synap_size_classes", sizeclasses.status().describe()),
        ("synap_size_classes_objects", classes.get("blocks", 0)),
        ("synap_size_classes_saved_bytes", classes.get("saved_bytes", 0)),
        # requests served by pymalloc (and records left in place) because no chunk could
        # be had: memory limits (RLIMIT_AS, vm.max_map_count), or none free
        (
            "synap_size_classes_fallbacks",
            classes.get("fallbacks", 0)
            + classes.get("detach_fallbacks", 0)
            + classes.get("share_fallbacks", 0),
        ),
        # the replication log's records of 512 B or more, held where a full sync's
        # fork() does not copy them (MADV_WIPEONFORK; synap/replication/backlog.py)
        ("synap_replication_log_unforked_bytes", classes.get("detached_bytes", 0)),
        # values held in memory a full sync's forked child shares (kv_store.shared_values):
        # "on" or "off (why)"; how many, their bytes, and those freed while a child
        # could read them, given back once it is gone
        ("synap_shared_values", sizeclasses.sharing().describe_switch()),
        ("synap_shared_values_objects", classes.get("shared_objects", 0)),
        ("synap_shared_values_bytes", classes.get("shared_bytes", 0)),
        ("synap_shared_values_quarantined", classes.get("quarantined", 0)),
    ]


def _persistence(node: NodeServices) -> list[tuple[str, Any]]:
    p = node.persistence
    fields: list[tuple[str, Any]] = [
        ("loading", 0),
        ("rdb_bgsave_in_progress", 0),
        ("aof_enabled", int(p is not None)),
        ("async_loading", 0),
        ("rdb_bgsave_in_progress", 0),
        ("aof_rewrite_in_progress", 0),
    ]
    if p is not None:
        fields += [
            ("rdb_last_save_time", p.last_snapshot_ms // 1000),
            ("rdb_last_bgsave_status", "err" if p.snapshot_failures else "ok"),
        ]
    if p is not None:
        fields += [(f"synap_{k}", v) for k, v in p.stats().items()]
    return fields


def _stats(node: NodeServices) -> list[tuple[str, Any]]:
    s = node.commands.stats
    repl = node.replication
    return [
        ("total_connections_received", node.connections_received),
        # Every command on the Redis port and every authenticated HTTP request.
        ("total_commands_processed", node.commands_processed),
        ("keyspace_hits", s.hits),
        ("keyspace_misses", s.misses),
        ("expired_keys", node.keyspace.expired_total),
        ("evicted_keys", node.keyspace.evicted_total),
        # Served to replicas, as in Redis; a replica's own syncs are not counted here
        # (they are full_syncs / partial_syncs in the stats JSON).
        ("sync_full", repl.sync_full),
        ("sync_partial_ok", repl.sync_partial_ok),
        ("sync_partial_err", repl.sync_partial_err),
        # Forks for full syncs (fork_snapshot.py): how many, and how long the last one
        # held the master (Redis's names; 0 before the first).
        ("total_forks", repl.total_forks),
        ("latest_fork_usec", repl.latest_fork_usec),
        ("total_error_replies", node.command_stats.total_errors()),
    ]


def _cpu(node: NodeServices) -> list[tuple[str, Any]]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return [
        ("used_cpu_sys", f"{me.ru_stime:.6f}"),
        ("used_cpu_user", f"{me.ru_utime:.6f}"),
        ("used_cpu_sys_children", f"{children.ru_stime:.6f}"),
        ("used_cpu_user_children", f"{children.ru_utime:.6f}"),
    ]


def _keyspace(node: NodeServices) -> list[tuple[str, Any]]:
    if not len(node.keyspace):
        return []
    ks = node.keyspace
    return [("db0", f"keys={len(ks)},expires={len(ks.expires)},avg_ttl=0")]


_RENDERERS: dict[str, Callable[[NodeServices], list[tuple[str, Any]]]] = {
    "server": _server,
    "clients": _clients,
    "memory": _memory,
    "persistence": _persistence,
    "stats": _stats,
    "keyspace": _keyspace,
    "cpu": _cpu,
    "modules": lambda node: [],
    "commandstats": lambda node: node.command_stats.command_fields(),
    "errorstats": lambda node: node.command_stats.error_fields(),
    "cluster": lambda node: [("cluster_enabled", 0)],
}


def wanted_sections(sections: list[str]) -> list[str]:
    """The sections INFO answers for these arguments, in Redis's order, each once."""
    wanted: set[str] = set()
    for name in sections or ["default"]:
        if name == "default":
            wanted |= DEFAULT
        elif name in ("all", "everything"):
            wanted |= set(SECTIONS)
        else:
            wanted.add(name)
    return [s for s in SECTIONS if s in wanted]


def render_info(node: NodeServices, sections: list[str]) -> str:
    out: list[str] = []
    for name in wanted_sections([s.lower() for s in sections]):
        if name == "replication":
            fields = node.replication.info_fields()
        elif name in _RENDERERS:
            fields = _RENDERERS[name](node)
        else:
            continue
        out.append(f"# {'CPU' if name == 'cpu' else name.capitalize()}")
        # Escaped: a value (a replica's address, a path) must not start a new line.
        out.extend(f"{k}:{escape_text(v)}" for k, v in fields)
        out.append("")
    return "\r\n".join(out)
