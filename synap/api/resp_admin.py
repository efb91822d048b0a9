"""RESP handlers for connection, server and replication commands (PING, HELLO, AUTH,
CLIENT, INFO, ROLE, REPLICAOF, WAIT, CONFIG GET, COMMAND, DEBUG DIGEST...)."""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING, Any

from synap import __version__
from synap.api import resp_codec as R
from synap.api.resp_clients import client_kill, client_line, client_list
from synap.api.resp_command_info import cmd_command
from synap.api.resp_config import cmd_config
from synap.api.resp_context import no_perm
from synap.commands.errors import SYNTAX, CommandError, wrong_args
from synap.commands.layer import parse_int

if TYPE_CHECKING:
    from synap.api.resp_context import RespClient as RespConnection


def cmd_ping(c: RespConnection, args: list[bytes]) -> bytes:
    if len(args) > 2:
        raise wrong_args("ping")
    return R.PONG if len(args) == 1 else R.bulk(args[1])


def cmd_echo(c: RespConnection, args: list[bytes]) -> bytes:
    return R.bulk(args[1])


def cmd_quit(c: RespConnection, args: list[bytes]) -> bytes:
    c.close_after_reply()
    return R.OK


_WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."


def _authenticate(c: RespConnection, password: bytes, username: bytes | None = None) -> None:
    """AUTH / HELLO AUTH: an API key (server.api_keys) opens the connection; the admin key
    (server.admin_key) opens it too and also allows the admin commands.  The only user is
    ``default``, as on a Redis without ACLs."""
    server = c.node.config.server
    if username is not None and username != b"default":
        raise CommandError(_WRONGPASS)
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


def cmd_auth(c: RespConnection, args: list[bytes]) -> bytes:
    if len(args) > 3:  # (arity -2: at least one argument)
        raise wrong_args("auth")
    server = c.node.config.server
    if len(args) == 2 and not server.api_keys and server.admin_key is None:
        raise CommandError(
            "ERR AUTH <password> called without any password configured for the default user. "
            "Are you sure your configuration is correct?"
        )
    _authenticate(c, args[-1], args[1] if len(args) == 3 else None)
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
    credentials: tuple[bytes, bytes] | None = None
    while i < len(args):
        opt = args[i].upper()
        if opt == b"AUTH" and i + 2 < len(args):
            credentials = (args[i + 1], args[i + 2])
            i += 3
        elif opt == b"SETNAME" and i + 1 < len(args):
            _check_client_name(args[i + 1])
            c.name = args[i + 1] or None  # set at once, as Redis 7.0 does
            i += 2
        else:
            raise CommandError(
                f"ERR Syntax error in HELLO option '{args[i].decode(errors='replace')}'"
            )
    if credentials is not None:
        _authenticate(c, credentials[1], credentials[0])
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
    if parse_int(args[1]) != 0:
        raise CommandError("ERR DB index is out of range")
    return R.OK


def _check_client_name(name: bytes) -> None:
    if any(ch < 0x21 or ch > 0x7E for ch in name):
        raise CommandError(
            "ERR Client names cannot contain spaces, newlines or special characters."
        )


def cmd_client(c: RespConnection, args: list[bytes]) -> bytes:
    sub = args[1].upper()
    if sub in (b"SETINFO", b"NO-TOUCH"):  # Redis 7.2's; redis-py sends SETINFO on connect
        return R.OK
    c.last_cmd = b"client|" + sub.lower()
    if sub == b"SETNAME":
        _check_client_name(args[2])
        c.name = args[2] or None
        return R.OK
    if sub == b"GETNAME":
        return R.bulk_or_null(c.name, c.resp3)
    if sub == b"ID":
        return R.integer(c.id)
    if sub == b"REPLY":
        mode = args[2].upper()
        if mode not in (b"ON", b"OFF", b"SKIP"):
            raise CommandError(SYNTAX)
        return c.set_reply_mode(mode)
    if sub == b"NO-EVICT":
        mode = args[2].upper()
        if mode not in (b"ON", b"OFF"):
            raise CommandError(SYNTAX)
        c.no_evict = mode == b"ON"
        return R.OK
    if sub == b"KILL":
        if not c.admin:
            raise no_perm(b"client|kill")
        return client_kill(c, args)
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
        return R.bulk(client_line(c, c, args).encode())
    if sub == b"LIST":
        return client_list(c, args)
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
    "    Protect the current client connection from eviction (accepted; nothing is evicted).",
    "NO-TOUCH (ON|OFF)",
    "    Accepted for compatibility; ignored.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "KILL <ip:port> | <option> <value> [...]",
    "    Kill connections (ID, ADDR, LADDR, USER, SKIPME, MAXAGE).",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Refuse writes with TRYAGAIN for <timeout> milliseconds (admin only).",
    "UNPAUSE",
    "    Stop a PAUSE early (admin only).",
    "HELP",
    "    Print this help.",
)


def cmd_info(c: RespConnection, args: list[bytes]) -> bytes:
    sections = [a.decode(errors="replace").lower() for a in args[1:]]
    text = c.node.info_text(sections).encode()
    if c.resp3:  # a verbatim string, as Redis 7 answers INFO in RESP3
        reply = b"=%d\r\ntxt:%s\r\n" % (len(text) + 4, text)
    else:
        reply = R.bulk(text)
    return reply


def cmd_role(c: RespConnection, args: list[bytes]) -> bytes:
    return R.encode(c.node.replication.role_reply(), c.resp3)


def cmd_replicaof(c: RespConnection, args: list[bytes]) -> object:
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
    wanted = parse_int(args[1])
    timeout_ms = parse_int(args[2])
    if timeout_ms < 0:
        raise CommandError("ERR timeout is negative")
    return _wait(c, wanted, timeout_ms)


async def _wait(c: RespConnection, wanted: int, timeout_ms: int) -> bytes:
    return R.integer(await c.node.replication.wait(wanted, timeout_ms))


def cmd_debug(c: RespConnection, args: list[bytes]) -> bytes:
    """The DEBUG subset tests and operators use.  DIGEST is open to every client; the
    rest need the admin key when one is set (like Redis's enable-debug-command)."""
    sub = args[1].upper()
    if sub == b"DIGEST":
        return R.simple(c.node.digest())
    if not c.admin:
        raise no_perm(b"debug|" + sub.lower())
    if sub == b"SLEEP" and len(args) == 3:
        try:
            seconds = float(args[2])
        except ValueError:
            raise CommandError("ERR value is not a valid float") from None
        # Blocks the whole server, as in Redis (that is what the tests that use it want).
        time.sleep(min(max(seconds, 0.0), 3600.0))
        return R.OK
    if sub == b"SET-ACTIVE-EXPIRE" and len(args) == 3:
        c.node.active_expire_enabled = parse_int(args[2]) != 0
        return R.OK
    if sub == b"PROTOCOL" and len(args) == 3:
        return _debug_protocol(args[2].lower(), c.resp3)
    if sub == b"HELP":
        return R.array([R.simple(line) for line in _DEBUG_HELP])
    name = args[1].decode(errors="replace")
    raise CommandError(
        f"ERR unknown subcommand or wrong number of arguments for '{name}'. Try DEBUG HELP."
    )


def _debug_protocol(kind: bytes, resp3: bool) -> bytes:
    """DEBUG PROTOCOL <type>: one reply of each RESP type, as Redis sends them."""
    if kind == b"string":
        return R.bulk(b"Hello World")
    if kind == b"integer":
        return R.integer(12345)
    if kind == b"double":
        return b",3.141\r\n" if resp3 else R.bulk(b"3.141")
    if kind == b"bignum":
        big = b"1234567999999999999999999999999999999"
        return b"(%s\r\n" % big if resp3 else R.bulk(big)
    if kind == b"null":
        return R.null(resp3)
    if kind in (b"array", b"set"):
        head = b"~3\r\n" if resp3 and kind == b"set" else b"*3\r\n"
        return head + b"".join(R.integer(j) for j in range(3))
    if kind == b"map":
        pairs = [R.integer(j) + R.encode(j == 1, resp3) for j in range(3)]
        return (b"%3\r\n" if resp3 else b"*6\r\n") + b"".join(pairs)
    if kind == b"attrib":
        attribute = (
            b"|1\r\n" + R.bulk(b"key-popularity") + R.array([R.bulk(b"key:123"), R.integer(90)])
        )
        return (attribute if resp3 else b"") + R.bulk(b"Some real reply following the attribute")
    if kind == b"push":
        if not resp3:
            raise CommandError("ERR RESP2 is not supported by this command")
        push = b">2\r\n" + R.bulk(b"server-cpu-usage") + R.integer(42)
        return push + R.bulk(b"Some real reply following the push reply")
    if kind in (b"true", b"false"):
        return R.encode(kind == b"true", resp3)
    if kind == b"verbatim":
        text = b"This is a verbatim\nstring"
        return b"=%d\r\ntxt:%s\r\n" % (len(text) + 4, text) if resp3 else R.bulk(text)
    raise CommandError(
        "ERR Wrong protocol type name. Please use one of the following: "
        "string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false"
    )


_DEBUG_HELP = (
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DIGEST",
    "    Output a hex signature representing the current DB content.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "PROTOCOL <type>",
    "    Reply with a test value of the specified type. <type> can be: string,",
    "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
    "    true, false.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "HELP",
    "    Prints this help.",
)


def cmd_shutdown(c: RespConnection, args: list[bytes]) -> bytes:
    """SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: stop the server (the same orderly
    stop as SIGTERM: WAL flushed and fsynced, a final snapshot unless NOSAVE)."""
    save: bool | None = None
    abort = False
    for raw in args[1:]:
        opt = raw.upper()
        if opt == b"NOSAVE":
            save = False
        elif opt == b"SAVE":
            save = True
        elif opt == b"ABORT":
            abort = True
        elif opt not in (b"NOW", b"FORCE"):
            raise CommandError(SYNTAX)
    if abort:
        if save is not None or len(args) > 2:
            raise CommandError(SYNTAX)
        raise CommandError("ERR No shutdown in progress.")
    if save is False:
        c.node.snapshot_on_stop = False
    c.node.request_stop()
    c.close_after_reply()
    return b""  # as in Redis: the connection is closed without a reply


def cmd_time(c: RespConnection, args: list[bytes]) -> bytes:
    now = time.time_ns() // 1000
    return R.array([R.bulk(b"%d" % (now // 1_000_000)), R.bulk(b"%d" % (now % 1_000_000))])


def cmd_save(c: RespConnection, args: list[bytes]) -> object:
    return _save(c)


async def _save(c: RespConnection) -> bytes:
    await c.node.save_snapshot()
    return R.OK


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
    b"SHUTDOWN": cmd_shutdown,
}
