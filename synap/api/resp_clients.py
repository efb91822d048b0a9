"""``CLIENT LIST`` / ``CLIENT INFO`` lines with Redis's fields, and ``CLIENT KILL``.

Fields this server has no equivalent for are given the value an idle Redis client of the
same kind shows (no subscriptions, no output buffered, the default user)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from synap.api import resp_codec as R
from synap.commands.errors import SYNTAX, CommandError
from synap.commands.layer import parse_int

if TYPE_CHECKING:
    from synap.api.resp_context import RespClient as RespConnection

_TYPES = (b"NORMAL", b"MASTER", b"REPLICA", b"SLAVE", b"PUBSUB")
# Redis's read buffer: PROTO_IOBUF_LEN; qbuf + qbuf-free of a fresh client.
_READ_BUFFER = 16384
_QUERY_BUFFER = 20474


def _request_bytes(args: list[bytes]) -> int:
    return len(b"*%d\r\n" % len(args)) + sum(len(b"$%d\r\n" % len(a)) + len(a) + 2 for a in args)


def client_line(caller: RespConnection, c: RespConnection, args: list[bytes] | None = None) -> str:
    """One ``CLIENT LIST`` line for ``c`` (``args``: the request being run, when c is the caller)."""
    now = time.monotonic()
    name = c.name.decode(errors="replace") if c.name else ""
    current = args if c is caller and args is not None else None
    qbuf = _request_bytes(current) if current else 0
    argv_mem = sum(map(len, current)) if current else 0
    multi = -1 if c._queued is None else len(c._queued)
    flags = "x" if c._queued is not None else "N"
    if c.no_evict:
        flags += "e"
    cmd = (c.last_cmd or b"NULL").decode(errors="replace").lower()
    return (
        f"id={c.id} addr={c.peer} laddr={c.laddr} fd={c.fd} name={name} "
        f"age={int(now - c.created)} idle={int(now - c.last_active)} flags={flags} db=0 "
        f"sub=0 psub=0 ssub=0 multi={multi} qbuf={qbuf} qbuf-free={_QUERY_BUFFER - qbuf if qbuf else 0} "
        f"argv-mem={argv_mem} multi-mem=0 rbs={_READ_BUFFER} rbp={_READ_BUFFER} obl=0 oll=0 "
        f"omem=0 tot-mem={_READ_BUFFER + qbuf + argv_mem} events=r cmd={cmd} user=default "
        f"redir=-1 resp={3 if c.resp3 else 2}\n"
    )


def _client_ids(raw: list[bytes]) -> list[int]:
    ids = []
    for value in raw:
        try:
            ids.append(parse_int(value))
        except CommandError:
            raise CommandError("ERR Invalid client ID") from None
    return ids


def client_list(c: RespConnection, args: list[bytes]) -> bytes:
    """CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id ...]."""
    clients = c.node.clients()
    if len(args) > 2:
        opt = args[2].upper()
        if opt == b"TYPE" and len(args) == 4:
            kind = args[3].upper()
            if kind not in _TYPES:
                raise CommandError(f"ERR Unknown client type '{args[3].decode(errors='replace')}'")
            if kind != b"NORMAL":
                clients = []
        elif opt == b"ID" and len(args) > 3:
            by_id = {x.id: x for x in clients}
            clients = [by_id[i] for i in _client_ids(args[3:]) if i in by_id]
        else:
            raise CommandError(SYNTAX)
    return R.bulk("".join(client_line(c, x, args) for x in clients).encode())


def client_kill(c: RespConnection, args: list[bytes]) -> bytes:
    """CLIENT KILL addr:port (old form: OK or an error) or CLIENT KILL <filter> <value> ...
    (ID, TYPE, USER, ADDR, LADDR, SKIPME: the number of clients closed)."""
    clients = c.node.clients()
    if len(args) == 3:
        addr = args[2].decode(errors="replace")
        victims = [x for x in clients if x.peer == addr]
        if not victims:
            raise CommandError("ERR No such client")
        _kill(c, victims)
        return R.OK
    if len(args) % 2:
        raise CommandError(SYNTAX)
    skipme = True
    for i in range(2, len(args), 2):
        opt, raw = args[i].upper(), args[i + 1]
        value = raw.decode(errors="replace")
        if opt == b"ID":
            if not raw.isdigit() or int(raw) <= 0:
                raise CommandError("ERR client-id should be greater than 0")
            clients = [x for x in clients if x.id == int(raw)]
        elif opt == b"TYPE":
            if raw.upper() not in _TYPES:
                raise CommandError(f"ERR Unknown client type '{value}'")
            if raw.upper() != b"NORMAL":
                clients = []
        elif opt == b"USER":
            if raw != b"default":
                raise CommandError(f"ERR No such user '{value}'")
        elif opt == b"ADDR":
            clients = [x for x in clients if x.peer == value]
        elif opt == b"LADDR":
            clients = [x for x in clients if x.laddr == value]
        elif opt == b"SKIPME":
            if raw.lower() not in (b"yes", b"no"):
                raise CommandError(SYNTAX)
            skipme = raw.lower() == b"yes"
        else:
            raise CommandError(SYNTAX)
    if skipme:
        clients = [x for x in clients if x is not c]
    _kill(c, clients)
    return R.integer(len(clients))


def _kill(caller: RespConnection, victims: list[RespConnection]) -> None:
    for victim in victims:
        if victim is caller:
            victim.close_after_reply()
        else:
            victim.kill()
