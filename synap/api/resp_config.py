"""``CONFIG GET | SET | REWRITE | RESETSTAT``.

CONFIG GET answers Redis's names for the parameters clients and tools read
(:func:`synap.api.views.config_values`).  CONFIG SET changes, at run time, the ones that
are safe to change: ``maxmemory``, ``maxmemory-policy``, ``timeout``,
``min-replicas-to-write`` and ``min-replicas-max-lag``; the others are refused with
Redis's wording.  CONFIG REWRITE writes the changed values back to the YAML
file the server was started with (``kv_store.max_memory_mb``, ``kv_store.eviction_policy``,
``server.client_timeout_secs``), keeping its comments and everything else as it was.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from synap.api import resp_codec as R
from synap.api.resp_context import no_perm
from synap.commands.errors import SYNTAX, CommandError
from synap.commands.glob import glob_match
from synap.persistence import PersistenceError
from synap.store.keyspace import EvictionPolicy

if TYPE_CHECKING:
    from synap.api.resp_context import RespClient as RespConnection
    from synap.api.services import NodeServices as Node

MIB = 1024 * 1024
# Redis policy name -> ours (the four this keyspace implements).
POLICIES = {
    "noeviction": "none",
    "allkeys-lru": "lru",
    "allkeys-lfu": "lfu",
    "volatile-ttl": "ttl",
}
_REDIS_ONLY_POLICIES = ("volatile-lru", "volatile-lfu", "allkeys-random", "volatile-random")
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}
_MEMORY = re.compile(r"(\d+)([a-z]*)")


def _failed(name: str, why: str) -> CommandError:
    return CommandError(f"ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")


def _memory(name: str, raw: str) -> int:
    """Redis's ``memtoull``: digits and an optional unit (k, kb, m, mb, g, gb)."""
    m = _MEMORY.fullmatch(raw.lower())
    if m is None or m.group(2) not in _UNITS:
        raise _failed(name, "argument must be a memory value")
    return int(m.group(1)) * _UNITS[m.group(2)]


def _set_maxmemory(node: Node, name: str, raw: str) -> None:
    value = _memory(name, raw)
    node.keyspace.max_memory_bytes = value
    node.config.kv_store.max_memory_mb = math.ceil(value / MIB)


def _set_policy(node: Node, name: str, raw: str) -> None:
    policy = raw.lower()
    if policy in _REDIS_ONLY_POLICIES:
        raise _failed(name, f"'{raw}' is not supported here; use one of {', '.join(POLICIES)}")
    if policy not in POLICIES:
        raise _failed(
            name,
            "argument(s) must be one of the following: volatile-lru, volatile-lfu, "
            "volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction",
        )
    ours = POLICIES[policy]
    node.keyspace.eviction = EvictionPolicy(ours)
    node.config.kv_store.eviction_policy = ours  # type: ignore[assignment]


def _int_0_to_max(name: str, raw: str) -> int:
    """An integer parameter in 0..INT_MAX, with Redis's two error wordings."""
    text = raw[1:] if raw[:1] == "-" else raw
    if not text.isdigit() or len(text) > 18:
        raise _failed(name, "argument couldn't be parsed into an integer")
    value = int(raw)
    if not 0 <= value <= 2**31 - 1:
        raise _failed(name, "argument must be between 0 and 2147483647 inclusive")
    return value


def _set_timeout(node: Node, name: str, raw: str) -> None:
    node.config.server.client_timeout_secs = _int_0_to_max(name, raw)


def _set_min_replicas(node: Node, name: str, raw: str) -> None:
    value = _int_0_to_max(name, raw)
    if name == "min-replicas-to-write":
        node.set_min_replicas(value, node.min_replicas_max_lag)
    else:
        node.set_min_replicas(node.min_replicas_to_write, value)


_APPENDFSYNC = {"always": "always", "everysec": "periodic", "no": "never"}


def _set_appendfsync(node: Node, name: str, raw: str) -> None:
    """appendfsync always|everysec|no: ``persistence.fsync_mode`` always|periodic|never."""
    mode = _APPENDFSYNC.get(raw.lower())
    if mode is None:
        raise _failed(name, "argument(s) must be one of the following: everysec, always, no")
    _apply_fsync_mode(node, mode)


def _apply_fsync_mode(node: Node, mode: str) -> None:
    if node.persistence is not None:
        try:
            node.persistence.set_fsync_mode(mode)
        except PersistenceError as exc:
            raise _failed("appendfsync", f"fsync failed: {exc}") from None
    node.config.persistence.fsync_mode = mode  # type: ignore[assignment]


SETTERS = {
    "appendfsync": _set_appendfsync,
    "min-replicas-to-write": _set_min_replicas,
    "min-replicas-max-lag": _set_min_replicas,
    "maxmemory": _set_maxmemory,
    "maxmemory-policy": _set_policy,
    "timeout": _set_timeout,
}
# What CONFIG REWRITE writes: (section, key, value from the node).
REWRITTEN: dict[str, tuple[str, str, Callable[[Node], str]]] = {
    "maxmemory": ("kv_store", "max_memory_mb", lambda n: str(n.config.kv_store.max_memory_mb)),
    "maxmemory-policy": (
        "kv_store",
        "eviction_policy",
        lambda n: n.config.kv_store.eviction_policy,
    ),
    "timeout": (
        "server",
        "client_timeout_secs",
        lambda n: str(n.config.server.client_timeout_secs),
    ),
    "appendfsync": ("persistence", "fsync_mode", lambda n: n.config.persistence.fsync_mode),
}


def cmd_config(c: RespConnection, args: list[bytes]) -> bytes:
    sub = args[1].upper()
    node = c.node
    if sub == b"GET":
        values = node.config_values()
        found: dict[str, str] = {}
        for pattern in args[2:]:
            for key, value in values.items():
                if glob_match(pattern.lower(), key.encode()):
                    found[key] = value
        return R.encode(found, c.resp3)
    if sub in (b"SET", b"RESETSTAT", b"REWRITE") and not c.admin:
        raise no_perm(b"config|" + sub.lower())
    if sub == b"SET":
        return _config_set(c, args)
    if sub == b"RESETSTAT":
        node.reset_stats()
        return R.OK
    if sub == b"REWRITE":
        rewrite(node)
        return R.OK
    if sub == b"HELP":
        return R.array([R.simple(line) for line in _HELP])
    raise CommandError(
        f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. Try CONFIG HELP."
    )


_HELP = (
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
    "HELP",
    "    Prints this help.",
)


def _config_set(c: RespConnection, args: list[bytes]) -> bytes:
    if len(args) % 2:
        raise CommandError(SYNTAX)
    pairs = [
        (args[i].decode(errors="replace").lower(), args[i + 1].decode(errors="replace"))
        for i in range(2, len(args), 2)
    ]
    known = c.node.config_values()
    for name, _ in pairs:
        if name not in known:
            raise CommandError(
                f"ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
            )
        if name not in SETTERS:
            raise _failed(name, "can't set immutable config")
    if len({name for name, _ in pairs}) != len(pairs):
        raise _failed(pairs[0][0], "duplicate parameter")
    node = c.node
    saved = (
        node.keyspace.max_memory_bytes,
        node.keyspace.eviction,
        node.config.kv_store.max_memory_mb,
        node.config.kv_store.eviction_policy,
        node.config.server.client_timeout_secs,
        node.min_replicas_to_write,
        node.min_replicas_max_lag,
        node.config.persistence.fsync_mode,
    )
    try:
        for name, value in pairs:
            SETTERS[name](node, name, value)
            node.config_changed.add(name)
    except CommandError:
        # All or nothing, as in Redis 7.
        node.keyspace.max_memory_bytes, node.keyspace.eviction = saved[0], saved[1]
        node.config.kv_store.max_memory_mb = saved[2]
        node.config.kv_store.eviction_policy = saved[3]
        node.config.server.client_timeout_secs = saved[4]
        node.set_min_replicas(saved[5], saved[6])
        if node.config.persistence.fsync_mode != saved[7]:
            _apply_fsync_mode(node, saved[7])
        raise
    return R.OK


def rewrite(node: Node) -> None:
    path = node.config.source_path
    if path is None:
        raise CommandError("ERR The server is running without a config file")
    edits = [REWRITTEN[name] for name in sorted(node.config_changed) if name in REWRITTEN]
    try:
        text = path.read_text()
        for section, key, value in edits:
            text = set_yaml_key(text, section, key, value(node))
        tmp = Path(f"{path}.rewrite.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    except OSError as exc:
        raise CommandError(f"ERR Rewriting config file: {exc.strerror}") from None


def set_yaml_key(text: str, section: str, key: str, value: str) -> str:
    """``text`` (a YAML config of ``section:`` blocks of ``  key: value`` lines) with
    ``section.key`` set to ``value``; the line's comment and the rest are kept."""
    lines = text.splitlines(keepends=True)
    start = next(
        (i for i, line in enumerate(lines) if re.match(rf"{section}:\s*(#.*)?$", line)), None
    )
    if start is None:
        sep = "" if not text or text.endswith("\n") else "\n"
        return f"{text}{sep}{section}:\n  {key}: {value}\n"
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end][:1] in (" ", "\t", "#")):
        end += 1
    pattern = re.compile(rf"^(\s+){re.escape(key)}:\s*([^#\n]*?)(\s*#.*)?$")
    for i in range(start + 1, end):
        m = pattern.match(lines[i].rstrip("\n"))
        if m:
            comment = m.group(3) or ""
            lines[i] = f"{m.group(1)}{key}: {value}{comment}\n"
            return "".join(lines)
    lines.insert(start + 1, f"  {key}: {value}\n")
    return "".join(lines)
