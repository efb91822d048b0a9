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


_WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."


def _authenticate(c: RespConnection, password: bytes) -> None:
    """AUTH / HELLO AUTH: an API key (server.api_keys) opens the connection; the admin key
    (server.admin_key) opens it too and also allows the admin commands."""
    server = c.node.config.server
    if server.admin_key is not None and hmac.compare_digest(password, server.admin_key.encode()):
        c.authenticated = c.admin = True
        return
    if not server.api_keys and server.admin_key is None:
        c.authenticated = True  # nothing to check (HELLO AUTH on an open server)
        return
    if any(hmac.compare_digest(password, k.encode()) for k in server.api_keys):
        c.authenticated = True
        return
    raise CommandError(_WRONGPASS)


def no_perm(name: bytes) -> CommandError:
    """The reply to an admin command from a connection without the admin key."""
    return CommandError(
        f"NOPERM this connection has no permission to run the '{name.decode().lower()}' "
        "command: AUTH with the admin key (server.admin_key) first"
    )


def cmd_auth(c: RespConnection, args: list[bytes]) -> bytes:
    if len(args) not in (2, 3):
        raise wrong_args("auth")
    server = c.node.config.server
    if not server.api_keys and server.admin_key is None:
        raise CommandError(
            "ERR AUTH <password> called without any password configured for the default user. "
            "Are you sure your configuration is correct?"
        )
    _authenticate(c, args[-1])
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
            _authenticate(c, args[i + 2])
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
    if sub == b"SETNAME":
        if len(args) != 3:
            raise wrong_args("client|setname")
        if any(ch < 0x21 or ch > 0x7E for ch in args[2]):
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
    if sub in (b"PAUSE", b"UNPAUSE") and not c.admin:
        raise no_perm(b"client|" + sub)
    if sub == b"PAUSE" and len(args) in (3, 4):
        # CLIENT PAUSE ms [WRITE|ALL]: writes get TRYAGAIN for ms (Redis holds the
        # clients instead; both modes pause writes only here).
        timeout_ms = parse_int(args[2])
        if timeout_ms < 0:
            raise CommandError("ERR timeout is negative")
        if len(args) == 4 and args[3].upper() not in (b"WRITE", b"ALL"):
            raise CommandError(SYNTAX)
        if timeout_ms:
            c.node.roles.pause_writes(timeout_ms / 1000)
        return R.OK
    if sub == b"UNPAUSE" and len(args) == 2:
        c.node.roles.resume_writes()
        return R.OK
    if sub == b"INFO":
        return R.bulk(_client_line(c).encode())
    if sub == b"LIST":
        return R.bulk("".join(_client_line(x) for x in c.node.clients()).encode())
    if sub == b"HELP" and len(args) == 2:
        return R.array([R.simple(line) for line in CLIENT_HELP])
    raise CommandError(
        f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. Try CLIENT HELP."
    )


# CLIENT HELP: one status reply per line, as Redis answers it.
CLIENT_HELP = (
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "LIST",
    "    Return information about client connections.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Accepted for compatibility (lib-name, lib-ver); ignored.",
    "NO-EVICT (ON|OFF)",
    "    Accepted for compatibility; ignored.",
    "NO-TOUCH (ON|OFF)",
    "    Accepted for compatibility; ignored.",
    "REPLY (ON|OFF|SKIP)",
    "    Accepted for compatibility; replies are always sent.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Refuse writes with TRYAGAIN for <timeout> milliseconds (admin only).",
    "UNPAUSE",
    "    Stop a PAUSE early (admin only).",
    "HELP",
    "    Print this help.",
)


def _client_line(c: RespConnection) -> str:
    name = c.name.decode(errors="replace") if c.name else ""
    return f"id={c.id} addr={c.peer} name={name} db=0 resp={3 if c.resp3 else 2}\n"


def cmd_info(c: RespConnection, args: list[bytes]) -> bytes:
    sections = [a.decode(errors="replace").lower() for a in args[1:]]
    return R.bulk(c.node.info_text(sections).encode())


def cmd_role(c: RespConnection, args: list[bytes]) -> bytes:
    return R.encode(c.node.replication.role_reply(), c.resp3)


def cmd_replicaof(c: RespConnection, args: list[bytes]) -> object:
    if len(args) != 3:
        raise wrong_args(args[0].decode())
    host, port = args[1].decode(errors="replace"), args[2].decode(errors="replace")
    if host.upper() == "NO" and port.upper() == "ONE":
        if not c.node.roles.is_replica:
            return R.OK  # as in Redis: a master (or standalone node) stays what it is
        return _promote(c)
    try:
        port_number = int(port)
    except ValueError:
        raise CommandError("ERR Invalid master port") from None
    c.node.replication.follow(host, port_number, reason="REPLICAOF")
    return R.simple("OK")


async def _promote(c: RespConnection) -> bytes:
    await c.node.replication.promote(reason="REPLICAOF NO ONE")
    return R.OK


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
        from synap.api.resp_consistency import config_set

        return config_set(c, args)
    if sub == b"RESETSTAT":
        return R.OK
    raise CommandError(
        f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. Try CONFIG HELP."
    )


def cmd_command(c: RespConnection, args: list[bytes]) -> bytes:
    from synap.api.resp import COMMANDS
    from synap.api.resp_commands import DATA_COMMANDS, WRITE_COMMANDS

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
        first, last, step = _KEY_POSITIONS.get(
            name, (1, 1, 1) if name in DATA_COMMANDS else (0, 0, 0)
        )
        # Redis 7's ten fields: name, arity, flags, first/last key, step, ACL categories,
        # tips, key specs, subcommands (redis-py's RESP3 parser reads all of them).
        rows.append([name.lower(), -1, flags, first, last, step, [], [], [], []])
    return R.encode(rows, c.resp3)


# Where the keys are in the arguments of the commands that do not take exactly one key.
_KEY_POSITIONS = {
    b"MGET": (1, -1, 1),
    b"DEL": (1, -1, 1),
    b"UNLINK": (1, -1, 1),
    b"EXISTS": (1, -1, 1),
    b"MSET": (1, -1, 2),
    b"MSETNX": (1, -1, 2),
    b"RENAME": (1, 2, 1),
    b"RENAMENX": (1, 2, 1),
    b"KEYS": (0, 0, 0),
    b"SCAN": (0, 0, 0),
    b"DBSIZE": (0, 0, 0),
    b"FLUSHALL": (0, 0, 0),
    b"FLUSHDB": (0, 0, 0),
    b"KVSTATS": (0, 0, 0),
}


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
# What needs the admin key when server.admin_key is set: the RESP twins of the HTTP
# routes that need it (replicaof/promote, failover, flush). CLIENT PAUSE|UNPAUSE (the twin
# of POST /api/replication/pause|resume) is checked in cmd_client.
ADMIN_ONLY_COMMANDS = frozenset({b"REPLICAOF", b"SLAVEOF", b"FAILOVER", b"FLUSHALL", b"FLUSHDB"})
