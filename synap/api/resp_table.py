"""The RESP command table: one :class:`CommandSpec` per command this server implements.

A spec joins a handler (``synap.api.resp*``) with the command's metadata in the shape of
Redis's ``src/commands/*.json`` (name, arity, flags, key positions, subcommands — the rows
of :mod:`synap.api.command_table`, generated from Redis 7.0.15).  Everything that used to
live in parallel sets derives from it:

- dispatch checks arity once (:meth:`CommandSpec.arity_ok`), with Redis's wording
  (``wrong number of arguments for 'config|get' command``);
- ``COMMAND`` / ``COMMAND INFO|COUNT|DOCS|LIST|GETKEYS`` list exactly these commands;
- the policies are flags: ``no_auth`` (runs before AUTH), ``write`` / ``denyoom``
  (replica and memory checks of transactions), ``no_multi`` (refused inside MULTI),
  and two of ours that ``COMMAND`` does not report: ``admin_key`` (needs AUTH with
  ``server.admin_key`` when one is set) and ``transaction`` (runs at once inside MULTI
  instead of being queued: MULTI, EXEC, DISCARD, WATCH, QUIT, RESET, as in Redis's
  ``processCommand``).

A new command: write its handler, add it to the handler map (:data:`synap.api.resp.COMMANDS`)
and its name to ``tests/compat/gen_command_table.py`` (or, for a command Redis lacks, a row
at the end of :mod:`synap.api.command_table`); the spec is built from both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from synap.api.command_table import TABLE, Row

if TYPE_CHECKING:
    from synap.api.resp_context import RespClient

Handler = Callable[["RespClient", list[bytes]], object]

# Our policy flags, beside Redis's.  "no_multi" is reported by COMMAND (it is true of
# these commands here: they may wait, so they cannot be queued); the others are not.
_EXTRA_FLAGS: dict[bytes, tuple[str, ...]] = {
    b"WAIT": ("no_multi",),
    b"WAITAOF": ("no_multi",),
    b"SYNAP.WAITOFFSET": ("no_multi",),
    b"SAVE": ("no_multi",),
    b"BGSAVE": ("no_multi",),
    b"FAILOVER": ("no_multi",),
    b"REPLICAOF": ("no_multi",),
    b"SLAVEOF": ("no_multi",),
    b"MONITOR": ("no_multi",),
    b"SHUTDOWN": ("no_multi",),
}
# What needs the admin key when server.admin_key is set: the RESP twins of the HTTP
# routes that need it (replicaof/promote, failover, flush).  CLIENT KILL|PAUSE|UNPAUSE,
# CONFIG SET|RESETSTAT|REWRITE and DEBUG (but DIGEST) are checked by their handlers.
_ADMIN_KEY = frozenset(
    {b"REPLICAOF", b"SLAVEOF", b"FAILOVER", b"FLUSHALL", b"FLUSHDB", b"SHUTDOWN", b"MONITOR"}
)
_TRANSACTION = frozenset({b"MULTI", b"EXEC", b"DISCARD", b"WATCH", b"QUIT", b"RESET"})
#: Flags of ours that COMMAND does not report.
POLICY_FLAGS = frozenset({"admin_key", "transaction"})


class CommandSpec:
    """One command (or subcommand, ``CONFIG|GET``): handler, arity, flags, key specs."""

    __slots__ = (
        "name",
        "lower",
        "handler",
        "arity",
        "flags",
        "row",
        "subcommands",
        "write",
        "denyoom",
        "no_auth",
        "admin_key",
        "no_multi",
        "transaction",
        "wrong_args",
    )

    def __init__(
        self,
        name: bytes,
        handler: Handler,
        row: Row,
        subcommands: dict[bytes, CommandSpec],
        extra: tuple[str, ...] = (),
    ) -> None:
        self.name = name  # upper case; b"CONFIG|GET" for a subcommand
        self.lower: str = row[0]
        self.handler = handler
        self.arity: int = row[1]
        reported = tuple(row[2]) + tuple(f for f in extra if f not in row[2])
        self.flags: frozenset[str] = frozenset(reported)
        # The row COMMAND INFO reports (with our reported flags).
        public = tuple(f for f in reported if f not in POLICY_FLAGS)
        self.row: Row = (
            row[0],
            row[1],
            public,
            *row[3:9],
            tuple(s.row for s in subcommands.values()),
        )
        self.subcommands = subcommands
        self.write = "write" in self.flags
        self.denyoom = "denyoom" in self.flags
        self.no_auth = "no_auth" in self.flags
        self.admin_key = "admin_key" in self.flags
        self.no_multi = "no_multi" in self.flags
        self.transaction = "transaction" in self.flags
        self.wrong_args = f"ERR wrong number of arguments for '{row[0]}' command"

    def arity_ok(self, argc: int) -> bool:
        """Redis's arity rule: exactly ``arity`` arguments, or at least ``-arity``."""
        arity = self.arity
        return argc == arity if arity > 0 else argc >= -arity

    def sub(self, request: list[bytes]) -> CommandSpec:
        """The spec that governs ``request``: its subcommand's for a container command
        (``CONFIG GET``), else this one."""
        if self.subcommands and len(request) > 1:
            found = self.subcommands.get(request[1].upper())
            if found is not None:
                return found
        return self

    def key_positions(self, args: list[bytes]) -> list[tuple[int, list[str]]]:
        """(index, flags) of each key argument of ``args`` (COMMAND GETKEYS), from the
        key specs of type index + range (the only ones our commands use)."""
        out: list[tuple[int, list[str]]] = []
        spec: Any
        for spec in self.row[8]:
            begin = spec["begin_search"]
            find = spec["find_keys"]
            if begin["type"] != "index" or find["type"] != "range":
                continue
            start = begin["spec"]["index"]
            last, step = find["spec"]["lastkey"], find["spec"]["keystep"]
            end = len(args) + last if last < 0 else start + last
            flags = [f for f in spec["flags"] if f != "variable_flags"]
            for i in range(start, min(end, len(args) - 1) + 1, step):
                out.append((i, flags))
        return out


#: The table of the commands this server implements: filled by synap/api/resp.py when
#: it is imported (``SPECS.update(build(COMMANDS))``), read by COMMAND and dispatch.
SPECS: dict[bytes, CommandSpec] = {}


def build(handlers: Mapping[bytes, Handler]) -> dict[bytes, CommandSpec]:
    """Specs for the commands in ``handlers`` (upper-case name -> handler).  Every
    handler needs a row in :data:`~synap.api.command_table.TABLE`."""
    specs: dict[bytes, CommandSpec] = {}
    for name, handler in handlers.items():
        row = TABLE.get(name)
        if row is None:
            raise LookupError(f"{name.decode()} has no row in synap/api/command_table.py")
        extra = _EXTRA_FLAGS.get(name, ())
        if name in _ADMIN_KEY:
            extra += ("admin_key",)
        if name in _TRANSACTION:
            extra += ("transaction",)
        subs: dict[bytes, CommandSpec] = {}
        for sub_row in row[9]:
            sub_name = sub_row[0].upper().encode()
            subs[sub_name.split(b"|", 1)[1]] = CommandSpec(sub_name, handler, sub_row, {})
        specs[name] = CommandSpec(name, handler, row, subs, extra)
    return specs


def lookup_name(specs: Mapping[bytes, CommandSpec], name: bytes) -> CommandSpec | None:
    """A command as COMMAND INFO / DOCS name it: ``get`` or ``config|get``."""
    parts = name.upper().split(b"|")
    if len(parts) > 2:
        return None
    spec = specs.get(parts[0])
    if spec is None or len(parts) == 1:
        return spec
    return spec.subcommands.get(parts[1])
