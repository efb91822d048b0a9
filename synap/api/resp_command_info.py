"""``COMMAND`` and its subcommands (COUNT, INFO, DOCS, LIST, GETKEYS, GETKEYSANDFLAGS),
answered from the command table (:mod:`synap.api.resp_table`: Redis 7.0.15's metadata
for exactly the commands this server implements)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synap.api import resp_codec as R
from synap.api.command_docs import DOCS
from synap.api.command_table import Row
from synap.api.resp_table import SPECS, CommandSpec, lookup_name
from synap.commands.errors import SYNTAX, CommandError
from synap.commands.glob import glob_match

if TYPE_CHECKING:
    from synap.api.resp_context import RespClient as RespConnection

_SET_KEYS = ("flags", "doc_flags", "history")


def _set(items: list[bytes], resp3: bool) -> bytes:
    return (b"~%d\r\n" if resp3 else b"*%d\r\n") % len(items) + b"".join(items)


def _map(pairs: list[tuple[bytes, bytes]], resp3: bool) -> bytes:
    head = b"%%%d\r\n" % len(pairs) if resp3 else b"*%d\r\n" % (2 * len(pairs))
    return head + b"".join(k + v for k, v in pairs)


def _value(key: str, value: Any, resp3: bool) -> bytes:
    """Key specs and docs: strings are bulk, the lists named in _SET_KEYS are sets (of
    status strings for flags)."""
    if isinstance(value, dict):
        return _map([(R.bulk(k.encode()), _value(k, v, resp3)) for k, v in value.items()], resp3)
    if isinstance(value, list):
        if key in ("flags", "doc_flags"):
            return _set([R.simple(v) for v in value], resp3)
        items = [_value("", v, resp3) for v in value]
        return _set(items, resp3) if key in _SET_KEYS else R.array(items)
    if isinstance(value, int):
        return R.integer(value)
    return R.bulk(str(value).encode())


def encode_row(row: Row, resp3: bool) -> bytes:
    name, arity, flags, first, last, step, acl, tips, specs, subs = row
    parts = [
        R.bulk(name.encode()),
        R.integer(arity),
        _set([R.simple(f) for f in flags], resp3),
        R.integer(first),
        R.integer(last),
        R.integer(step),
        _set([R.simple(a) for a in acl], resp3),
        _set([R.bulk(t.encode()) for t in tips], resp3),
        _set([_value("", s, resp3) for s in specs], resp3),
        R.array([encode_row(s, resp3) for s in subs]) if subs else _set([], resp3),
    ]
    return R.array(parts)


def _specs() -> dict[bytes, CommandSpec]:
    return SPECS


def _rows() -> list[Row]:
    """Rows of the top-level commands this server implements, sorted by name."""
    specs = _specs()
    return [specs[name].row for name in sorted(specs)]


def _getkeys(args: list[bytes], with_flags: bool, resp3: bool) -> bytes:
    target = args[2:]
    top = _specs().get(target[0].upper())
    if top is None:
        raise CommandError("ERR Invalid command specified")
    spec = top.sub(target)
    if not spec.arity_ok(len(target)):
        raise CommandError("ERR Invalid number of arguments specified for command")
    positions = spec.key_positions(target)
    if spec.lower == "set":  # SET's flags depend on GET (Redis's setGetKeys)
        has_get = any(a.upper() == b"GET" for a in target[3:])
        positions = [
            (i, ["RW", "access", "update"] if has_get else ["OW", "update"]) for i, _ in positions
        ]
    if not positions:
        raise CommandError("ERR The command has no key arguments")
    if not with_flags:
        return R.bulk_array([target[i] for i, _ in positions])
    return R.array(
        [
            R.array([R.bulk(target[i]), _set([R.simple(f) for f in fl], resp3)])
            for i, fl in positions
        ]
    )


def _list(args: list[bytes]) -> bytes:
    names: list[str] = []
    for row in _rows():
        names.append(row[0])
        names.extend(sub[0] for sub in row[9])
    if len(args) == 2:
        return R.bulk_array([n.encode() for n in names])
    if len(args) != 5 or args[2].upper() != b"FILTERBY":
        raise CommandError(SYNTAX)
    kind, value = args[3].upper(), args[4]
    if kind == b"MODULE":
        return R.EMPTY_ARRAY
    if kind == b"ACLCAT":
        wanted = "@" + value.decode(errors="replace").lower()
        picked = [n for n in names if wanted in _acl(n)]
    elif kind == b"PATTERN":
        picked = [n for n in names if glob_match(value.lower(), n.encode())]
    else:
        raise CommandError(SYNTAX)
    return R.bulk_array([n.encode() for n in picked])


def cmd_command(c: RespConnection, args: list[bytes]) -> bytes:
    if len(args) == 1:
        rows = _rows()
        return R.array([encode_row(r, c.resp3) for r in rows])
    sub = args[1].upper()
    if sub == b"COUNT":
        return R.integer(len(_rows()))
    if sub == b"INFO":
        if len(args) == 2:
            return R.array([encode_row(r, c.resp3) for r in _rows()])
        out = []
        for name in args[2:]:
            spec = lookup_name(_specs(), name)
            out.append(R.null(c.resp3) if spec is None else encode_row(spec.row, c.resp3))
        return R.array(out)
    if sub == b"DOCS":
        names = [r[0] for r in _rows()] if len(args) == 2 else []
        for raw in args[2:]:
            spec = lookup_name(_specs(), raw)
            if spec is not None and b"|" not in spec.name:
                names.append(spec.lower)
        pairs = [(R.bulk(n.encode()), _value("", DOCS.get(n, {}), c.resp3)) for n in names]
        return _map(pairs, c.resp3)
    if sub == b"LIST":
        return _list(args)
    if sub in (b"GETKEYS", b"GETKEYSANDFLAGS"):
        return _getkeys(args, sub == b"GETKEYSANDFLAGS", c.resp3)
    if sub == b"HELP":
        return R.array([R.simple(line) for line in _HELP])
    raise CommandError(
        f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. Try COMMAND HELP."
    )


def _acl(name: str) -> tuple[str, ...]:
    spec = lookup_name(_specs(), name.encode())
    return () if spec is None else tuple(spec.row[6])


_HELP = (
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
    "HELP",
    "    Prints this help.",
)
