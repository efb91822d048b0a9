"""RESP handlers for connection, server and replication commands (PING, HELLO, AUTH,
CLIENT, INFO, ROLE, REPLICAOF, WAIT, CONFIG GET, COMMAND, DEBUG DIGEST...)."""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING, Any

from synap import __version__
from synap.api import resp_codec as R
from synap.commands.errors import SYNTAX, CommandError, wrong_args
from synap.commands.glob import glob_match
from synap.commands.layer import parse_int

if TYPE_CHECKING:
    from synap.api.resp import RespConnection


def cmd_ping(c: RespConnection, args: list[bytes]) -> bytes:
    if len(args) > 2:
        raise wrong_args("ping")
    return R.PONG if len(args) == 1 else R.bulk(args[1])


def cmd_echo(c: RespConnection, args: list[bytes]) -> bytes:
    if len(args) != 2:
        raise wrong_args("echo")
    return R.bulk(args[1])


def cmd_quit(c: RespConnection, args: list[bytes]) -> bytes:
    c.close_after_reply()
    return R.OK


def _check_password(c: RespConnection, password: bytes) -> bool:
    keys = c.node.config.server.api_keys
    if not keys:
        return True
    return any(hmac.compare_digest(password, k.encode()) for k in keys)


def cmd_auth(c: RespConnection, args: list[bytes]) -> bytes:
    if len(args) not in (2, 3):
        raise wrong_args("auth")
    if not c.node.config.server.api_keys:
        raise CommandError(
            "ERR AUTH <password> called without any password configured for the default user. "
            "Are you sure your configuration is correct?"
        )
    if not _check_password(c, args[-1]):
        raise CommandError("WRONGPASS invalid username-password pair or user is disabled.")
    c.authenticated = True
    return R.OK


def cmd_hello(c: RespConnection, args: list[bytes]) -> bytes:
    version = 2 if not c.resp3 else 3
    i = 1
    if len(args) > 1:
        try:
            version = int(args[1])
        except ValueError:
            raise CommandError("ERR Protocol version is not an integer or out of range") from None
        if version not in (2, 3):
            raise CommandError("NOPROTO unsupported protocol version")
        i = 2
    while i < len(args):
        opt = args[i].upper()
        if opt == b"AUTH" and i + 2 < len(args):
            if not _check_password(c, args[i + 2]):
                raise CommandError("WRONGPASS invalid username-password pair or user is disabled.")
            c.authenticated = True
            i += 3
        elif opt == b"SETNAME" and i + 1 < len(args):
            c.name = args[i + 1]
            i += 2
        else:
            raise CommandError(SYNTAX)
    if not c.authenticated:
        raise CommandError("NOAUTH HELLO must be called with the client already authenticated")
    c.resp3 = version == 3
    info: dict[str, Any] = {
        "server": "redis",
        "version": "7.0.15",
        "proto": version,
        "id": c.id,
        "mode": "standalone",
        "role": c.node.replication.redis_role,
        "modules": [],
        "synap_version": __version__,
    }
    return R.encode(info, c.resp3)


def cmd_select(c: RespConnection, args: list[bytes]) -> bytes:
    if len(args) != 2:
        raise wrong_args("select")
    if parse_int(args[1]) != 0:
        raise CommandError("ERR DB index is out of range")
    return R.OK


def cmd_client(c: RespConnection, args: list[bytes]) -> bytes:
    if len(args) < 2:
        raise wrong_args("client")
    sub = args[1].upper()
    if sub == b"SETNAME" and len(args) == 3:
        if b" " in args[2]:
            raise CommandError(
                "ERR Client names cannot contain spaces, newlines or special characters."
            )
        c.name = args[2] or None
        return R.OK
    if sub == b"GETNAME":
        return R.bulk_or_null(c.name, c.resp3)
    if sub == b"ID":
        return R.integer(c.id)
    if sub in (b"SETINFO", b"NO-EVICT", b"NO-TOUCH", b"REPLY"):
        return R.OK
    if sub == b"INFO":
        return R.bulk(_client_line(c).encode())
    if sub == b"LIST":
        return R.bulk("".join(_client_line(x) for x in c.node.clients()).encode())
    raise CommandError(
        f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. Try CLIENT HELP."
    )


def _client_line(c: RespConnection) -> str:
    name = c.name.decode(errors="replace") if c.name else ""
    return f"id={c.id} addr={c.peer} name={name} db=0 resp={3 if c.resp3 else 2}\n"


def cmd_info(c: RespConnection, args: list[bytes]) -> bytes:
    sections = [a.decode(errors="replace").lower() for a in args[1:]]
    return R.bulk(c.node.info_text(sections).encode())


def cmd_role(c: RespConnection, args: list[bytes]) -> bytes:
    return R.encode(c.node.replication.role_reply(), c.resp3)


def cmd_replicaof(c: RespConnection, args: list[bytes]) -> bytes:
    if len(args) != 3:
        raise wrong_args(args[0].decode())
    host, port = args[1].decode(errors="replace"), args[2].decode(errors="replace")
    if host.upper() == "NO" and port.upper() == "ONE":
        c.node.replication.promote(reason="REPLICAOF NO ONE")
        return R.OK
    try:
        port_number = int(port)
    except ValueError:
        raise CommandError("ERR Invalid master port") from None
    c.node.replication.follow(host, port_number, reason="REPLICAOF")
    return R.simple("OK")


def cmd_wait(c: RespConnection, args: list[bytes]) -> object:
    if len(args) != 3:
        raise wrong_args("wait")
    wanted = parse_int(args[1])
    timeout_ms = parse_int(args[2])
    if timeout_ms < 0:
        raise CommandError("ERR timeout is negative")
    return c.node.replication.wait(wanted, timeout_ms)


def cmd_config(c: RespConnection, args: list[bytes]) -> bytes:
    if len(args) < 2:
        raise wrong_args("config")
    sub = args[1].upper()
    if sub == b"GET":
        if len(args) < 3:
            raise wrong_args("config|get")
        values = c.node.config_values()
        found: dict[str, str] = {}
        for pattern in args[2:]:
            for key, value in values.items():
                if glob_match(pattern.lower(), key.encode()):
                    found[key] = value
        return R.encode(found, c.resp3)
    if sub == b"SET":
        raise CommandError("ERR CONFIG SET is not supported; edit config.yml and restart")
    if sub == b"RESETSTAT":
        return R.OK
    raise CommandError(
        f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. Try CONFIG HELP."
    )


def cmd_command(c: RespConnection, args: list[bytes]) -> bytes:
    from synap.api.resp import COMMANDS
    from synap.api.resp_commands import WRITE_COMMANDS

    sub = args[1].upper() if len(args) > 1 else b""
    if sub == b"COUNT":
        return R.integer(len(COMMANDS))
    if sub == b"DOCS":
        return R.encode({}, c.resp3)
    names = [a.upper() for a in args[2:]] if sub == b"INFO" else sorted(COMMANDS)
    rows: list[Any] = []
    for name in names:
        if name not in COMMANDS:
            rows.append(None)
            continue
        flags = ["write"] if name in WRITE_COMMANDS else ["readonly", "fast"]
        rows.append([name.lower(), -1, flags, 1, 1, 1])
    return R.encode(rows, c.resp3)


def cmd_debug(c: RespConnection, args: list[bytes]) -> bytes:
    sub = args[1].upper() if len(args) > 1 else b""
    if sub == b"DIGEST":
        return R.simple(c.node.digest())
    raise CommandError("ERR DEBUG supports only DIGEST on this server")


def cmd_time(c: RespConnection, args: list[bytes]) -> bytes:
    now = time.time_ns() // 1000
    return R.array([R.bulk(b"%d" % (now // 1_000_000)), R.bulk(b"%d" % (now % 1_000_000))])


def cmd_save(c: RespConnection, args: list[bytes]) -> object:
    return c.node.save_snapshot()


def cmd_failover(c: RespConnection, args: list[bytes]) -> object:
    return c.node.replication.failover_command(args[1:])


ADMIN_COMMANDS = {
    b"PING": cmd_ping,
    b"ECHO": cmd_echo,
    b"QUIT": cmd_quit,
    b"AUTH": cmd_auth,
    b"HELLO": cmd_hello,
    b"SELECT": cmd_select,
    b"CLIENT": cmd_client,
    b"INFO": cmd_info,
    b"ROLE": cmd_role,
    b"REPLICAOF": cmd_replicaof,
    b"SLAVEOF": cmd_replicaof,
    b"WAIT": cmd_wait,
    b"CONFIG": cmd_config,
    b"COMMAND": cmd_command,
    b"DEBUG": cmd_debug,
    b"TIME": cmd_time,
    b"SAVE": cmd_save,
    b"BGSAVE": cmd_save,
    b"FAILOVER": cmd_failover,
}

NO_AUTH_COMMANDS = frozenset({b"AUTH", b"HELLO", b"QUIT"})
