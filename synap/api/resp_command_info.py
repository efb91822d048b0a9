"""``COMMAND`` and its subcommands (COUNT, INFO, DOCS, LIST, GETKEYS, GETKEYSANDFLAGS),
answered from :mod:`synap.api.command_table` (Redis 7.0.15's metadata for the commands
this server implements), and the arity check MULTI applies to queued commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synap.api import resp_codec as R
from synap.api.command_docs import DOCS
from synap.api.command_table import TABLE, Row
from synap.api.resp_context import IMPLEMENTED
from synap.commands.errors import SYNTAX, CommandError, wrong_args
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


def _implemented() -> dict[bytes, Any]:
    return IMPLEMENTED


def _rows() -> list[Row]:
    """Rows of the top-level commands this server implements, sorted by name."""
    commands = _implemented()
    return [TABLE[name] for name in sorted(commands) if name in TABLE]


def lookup(args: list[bytes]) -> Row | None:
    """The row for a request (its subcommand's row for container commands)."""
    row = TABLE.get(args[0].upper())
    if row is None or args[0].upper() not in _implemented():
        return None
    if row[9] and len(args) > 1:
        sub = TABLE.get(args[0].upper() + b"|" + args[1].upper())
        if sub is not None:
            return sub
    return row


def check_arity(args: list[bytes]) -> None:
    """Redis's arity check (``processCommand``), with its wording for subcommands."""
    row = TABLE.get(args[0].upper())
    if row is None:
        return
    if row[9] and len(args) > 1:
        sub = TABLE.get(args[0].upper() + b"|" + args[1].upper())
        if sub is None:
            name = args[0].decode(errors="replace")
            raise CommandError(
                f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. "
                f"Try {name.upper()} HELP."
            )
        row = sub
    arity = row[1]
    if (arity > 0 and len(args) != arity) or len(args) < -arity:
        raise wrong_args(row[0])


def _key_positions(row: Row, args: list[bytes]) -> list[tuple[int, list[str]]]:
    out: list[tuple[int, list[str]]] = []
    for spec in row[8]:
        begin = spec["begin_search"]
        if begin["type"] != "index":
            continue
        start = begin["spec"]["index"]
        find = spec["find_keys"]
        if find["type"] != "range":
            continue
        last, step = find["spec"]["lastkey"], find["spec"]["keystep"]
        end = len(args) + last if last < 0 else start + last
        flags = [f for f in spec["flags"] if f != "variable_flags"]
        for i in range(start, min(end, len(args) - 1) + 1, step):
            out.append((i, flags))
    return out


def _getkeys(args: list[bytes], with_flags: bool, resp3: bool) -> bytes:
    if len(args) < 3:
        raise wrong_args("command|getkeysandflags" if with_flags else "command|getkeys")
    target = args[2:]
    row = lookup(target)
    if row is None:
        raise CommandError("ERR Invalid command specified")
    arity = row[1]
    if (arity > 0 and len(target) != arity) or len(target) < -arity:
        raise CommandError("ERR Invalid number of arguments specified for command")
    positions = _key_positions(row, target)
    if row[0] == "set":  # SET's flags depend on GET (Redis's setGetKeys)
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
        picked = [n for n in names if wanted in TABLE[n.upper().encode()][6]]
    elif kind == b"PATTERN":
        picked = [n for n in names if glob_match(value.lower(), n.encode())]
    else:
        raise CommandError(SYNTAX)
    return R.bulk_array([n.encode() for n in picked])


def cmd_command(c: RespConnection, args: list[bytes]) -> bytes:
    if len(args) == 1:
        rows = _rows()
        return R.array([encode_row(r, c.resp3) for r in rows])
    check_arity(args)
    sub = args[1].upper()
    if sub == b"COUNT":
        return R.integer(len(_rows()))
    if sub == b"INFO":
        if len(args) == 2:
            return R.array([encode_row(r, c.resp3) for r in _rows()])
        out = []
        for name in args[2:]:
            row = _lookup_name(name)
            out.append(R.null(c.resp3) if row is None else encode_row(row, c.resp3))
        return R.array(out)
    if sub == b"DOCS":
        names = [r[0] for r in _rows()] if len(args) == 2 else []
        for raw in args[2:]:
            row = _lookup_name(raw)
            if row is not None and "|" not in row[0]:
                names.append(row[0])
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


def _lookup_name(name: bytes) -> Row | None:
    """A command named as COMMAND INFO / DOCS name it: ``get`` or ``config|get``."""
    parts = name.upper().split(b"|")
    if len(parts) > 2 or parts[0] not in _implemented():
        return None
    return TABLE.get(name.upper())


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
