"""RESP handlers for the string and key commands: parse Redis syntax, call the command
layer, encode the reply.  Connection, server and replication commands live in
:mod:`synap.api.resp_admin`.

A handler takes the connection and the full argument list (``args[0]`` is the command
name) and returns the encoded reply.  The dispatcher has checked the argument count
against the command table (:mod:`synap.api.resp_table`) already; handlers check values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from synap.api import resp_codec as R
from synap.commands.errors import SYNTAX, CommandError, wrong_args
from synap.commands.layer import INT64_MAX, ExpireFlags, parse_int
from synap.store.keyspace import now_ms

if TYPE_CHECKING:
    from synap.api.resp_context import RespClient as RespConnection

Handler = Callable[["RespConnection", list[bytes]], object]


def _positive_expire(raw: bytes, name: str) -> int:
    value = parse_int(raw)
    if value <= 0:
        raise CommandError(f"ERR invalid expire time in '{name}' command")
    return value


def _expire_at_ms(expire_at: int, name: str) -> int:
    """Redis refuses an expiry that does not fit in 64-bit milliseconds."""
    if expire_at > INT64_MAX:
        raise CommandError(f"ERR invalid expire time in '{name}' command")
    return expire_at


def cmd_get(c: RespConnection, args: list[bytes]) -> bytes:
    value = c.cmds.get(args[1])
    if value is None:
        return R.NULL3 if c.resp3 else R.NULL2
    return b"$%d\r\n%s\r\n" % (len(value), value)


def cmd_set(c: RespConnection, args: list[bytes]) -> bytes:
    if len(args) == 3:  # plain SET key value: no options to parse, always set
        c.cmds.set(args[1], args[2])
        return R.OK
    key, value = args[1], args[2]
    expire_at = 0
    nx = xx = keepttl = want_get = False
    unit = b""  # EX, PX, EXAT or PXAT; repeating the same one is allowed (the last wins)
    amount_raw = b""
    i = 3
    n = len(args)
    while i < n:
        opt = args[i].upper()
        if opt in (b"EX", b"PX", b"EXAT", b"PXAT"):
            if (unit and unit != opt) or keepttl or i + 1 >= n:
                raise CommandError(SYNTAX)
            unit, amount_raw = opt, args[i + 1]
            i += 2
            continue
        if opt == b"NX" and not xx:
            nx = True
        elif opt == b"XX" and not nx:
            xx = True
        elif opt == b"KEEPTTL" and not unit:
            keepttl = True
        elif opt == b"GET":
            want_get = True
        else:
            raise CommandError(SYNTAX)
        i += 1
    if unit:
        amount = _positive_expire(amount_raw, "set")
        if unit in (b"EX", b"EXAT") and amount > INT64_MAX // 1000:
            raise CommandError("ERR invalid expire time in 'set' command")
        if unit == b"EX":
            expire_at = now_ms() + amount * 1000
        elif unit == b"PX":
            expire_at = now_ms() + amount
        elif unit == b"EXAT":
            expire_at = amount * 1000
        else:
            expire_at = amount
        _expire_at_ms(expire_at, "set")
    done, old = c.cmds.set(key, value, expire_at_ms=expire_at, keepttl=keepttl, nx=nx, xx=xx)
    if want_get:
        return R.bulk_or_null(old, c.resp3)
    return R.OK if done else R.null(c.resp3)


def cmd_setnx(c: RespConnection, args: list[bytes]) -> bytes:
    done, _ = c.cmds.set(args[1], args[2], nx=True)
    return R.integer(int(done))


def _setex(c: RespConnection, args: list[bytes], unit_ms: int) -> bytes:
    name = args[0].decode().lower()
    amount = _positive_expire(args[2], name)
    expire_at = _expire_at_ms(now_ms() + amount * unit_ms, name)
    c.cmds.set(args[1], args[3], expire_at_ms=expire_at)
    return R.OK


def cmd_setex(c: RespConnection, args: list[bytes]) -> bytes:
    return _setex(c, args, 1000)


def cmd_psetex(c: RespConnection, args: list[bytes]) -> bytes:
    return _setex(c, args, 1)


def cmd_getset(c: RespConnection, args: list[bytes]) -> bytes:
    _, old = c.cmds.set(args[1], args[2])
    return R.bulk_or_null(old, c.resp3)


def cmd_getdel(c: RespConnection, args: list[bytes]) -> bytes:
    return R.bulk_or_null(c.cmds.getdel(args[1]), c.resp3)


def cmd_mget(c: RespConnection, args: list[bytes]) -> bytes:
    return R.bulk_array(c.cmds.mget(args[1:]), c.resp3)


def _pairs(args: list[bytes]) -> list[tuple[bytes, bytes]]:
    if len(args) < 3 or len(args) % 2 == 0:
        raise wrong_args(args[0].decode(errors="replace"))
    return [(args[i], args[i + 1]) for i in range(1, len(args), 2)]


def cmd_mset(c: RespConnection, args: list[bytes]) -> bytes:
    c.cmds.mset(_pairs(args))
    return R.OK


def cmd_msetnx(c: RespConnection, args: list[bytes]) -> bytes:
    return R.integer(int(c.cmds.mset(_pairs(args), nx=True)))


def cmd_del(c: RespConnection, args: list[bytes]) -> bytes:
    return R.integer(c.cmds.delete(args[1:]))


def cmd_exists(c: RespConnection, args: list[bytes]) -> bytes:
    return R.integer(c.cmds.exists(args[1:]))


def cmd_incr(c: RespConnection, args: list[bytes]) -> bytes:
    return R.integer(c.cmds.incr_by(args[1], 1))


def cmd_decr(c: RespConnection, args: list[bytes]) -> bytes:
    return R.integer(c.cmds.incr_by(args[1], -1))


def cmd_incrby(c: RespConnection, args: list[bytes]) -> bytes:
    return R.integer(c.cmds.incr_by(args[1], parse_int(args[2])))


def cmd_decrby(c: RespConnection, args: list[bytes]) -> bytes:
    delta = parse_int(args[2])
    if delta == -(2**63):
        raise CommandError("ERR decrement would overflow")
    return R.integer(c.cmds.incr_by(args[1], -delta))


def cmd_incrbyfloat(c: RespConnection, args: list[bytes]) -> bytes:
    return R.bulk(c.cmds.incr_by_float(args[1], args[2]))


def cmd_append(c: RespConnection, args: list[bytes]) -> bytes:
    return R.integer(c.cmds.append(args[1], args[2]))


def cmd_strlen(c: RespConnection, args: list[bytes]) -> bytes:
    return R.integer(c.cmds.strlen(args[1]))


def _expire_flags(args: list[bytes]) -> ExpireFlags | None:
    if not args:
        return None
    flags = ExpireFlags()
    for raw in args:
        opt = raw.upper()
        if opt == b"NX":
            flags.nx = True
        elif opt == b"XX":
            flags.xx = True
        elif opt == b"GT":
            flags.gt = True
        elif opt == b"LT":
            flags.lt = True
        else:
            raise CommandError(f"ERR Unsupported option {raw.decode(errors='replace')}")
    if flags.nx and (flags.xx or flags.gt or flags.lt):
        raise CommandError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if flags.gt and flags.lt:
        raise CommandError("ERR GT and LT options at the same time are not compatible")
    return flags


def _expire(c: RespConnection, args: list[bytes], seconds: bool, relative: bool) -> bytes:
    """EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT with Redis's overflow checks
    (``expireGenericCommand``): any time that fits in signed 64-bit milliseconds is
    accepted, and one not in the future deletes the key."""
    when = parse_int(args[2])
    flags = _expire_flags(args[3:])
    invalid = f"ERR invalid expire time in '{args[0].decode().lower()}' command"
    if seconds:
        if when > INT64_MAX // 1000 or when < -(INT64_MAX // 1000):
            raise CommandError(invalid)
        when *= 1000
    base = now_ms() if relative else 0
    if when > INT64_MAX - base:
        raise CommandError(invalid)
    return R.integer(int(c.cmds.expire_at(args[1], when + base, flags)))


def cmd_expire(c: RespConnection, args: list[bytes]) -> bytes:
    return _expire(c, args, seconds=True, relative=True)


def cmd_pexpire(c: RespConnection, args: list[bytes]) -> bytes:
    return _expire(c, args, seconds=False, relative=True)


def cmd_expireat(c: RespConnection, args: list[bytes]) -> bytes:
    return _expire(c, args, seconds=True, relative=False)


def cmd_pexpireat(c: RespConnection, args: list[bytes]) -> bytes:
    return _expire(c, args, seconds=False, relative=False)


def cmd_ttl(c: RespConnection, args: list[bytes]) -> bytes:
    return R.integer(c.cmds.ttl(args[1]))


def cmd_pttl(c: RespConnection, args: list[bytes]) -> bytes:
    return R.integer(c.cmds.pttl(args[1]))


def cmd_persist(c: RespConnection, args: list[bytes]) -> bytes:
    return R.integer(int(c.cmds.persist(args[1])))


def cmd_keys(c: RespConnection, args: list[bytes]) -> bytes:
    return R.bulk_array(list(c.cmds.keys(args[1])))


def cmd_scan(c: RespConnection, args: list[bytes]) -> bytes:
    cursor = _scan_cursor(args[1])
    match: bytes | None = None
    count = 10
    i = 2
    while i < len(args):
        opt = args[i].upper()
        if i + 1 >= len(args):
            raise CommandError(SYNTAX)
        if opt == b"MATCH":
            match = args[i + 1]
        elif opt == b"COUNT":
            count = parse_int(args[i + 1])
            if count < 1:
                raise CommandError(SYNTAX)
        elif opt == b"TYPE":
            if args[i + 1].lower() != b"string":
                return R.array([R.bulk(b"0"), R.EMPTY_ARRAY])
        else:
            raise CommandError(SYNTAX)
        i += 2
    next_cursor, keys = c.cmds.scan(cursor, match, count)
    return R.array([R.bulk(b"%d" % next_cursor), R.bulk_array(list(keys))])


def _scan_cursor(raw: bytes) -> int:
    """A cursor as Redis's ``strtoul`` reads it: optional sign (negative wraps around),
    digits, nothing else; up to 2**64-1 (an empty cursor is 0)."""
    body = raw[1:] if raw[:1] in (b"+", b"-") else raw
    if body and not body.isdigit() or (raw and not body):
        raise CommandError("ERR invalid cursor")
    value = int(body) if body else 0
    if value > 2**64 - 1:
        raise CommandError("ERR invalid cursor")
    return (-value) % 2**64 if raw[:1] == b"-" else value


def cmd_type(c: RespConnection, args: list[bytes]) -> bytes:
    return R.simple(c.cmds.type_of(args[1]))


def cmd_rename(c: RespConnection, args: list[bytes]) -> bytes:
    c.cmds.rename(args[1], args[2])
    return R.OK


def cmd_renamenx(c: RespConnection, args: list[bytes]) -> bytes:
    return R.integer(int(c.cmds.rename(args[1], args[2], nx=True)))


def cmd_dbsize(c: RespConnection, args: list[bytes]) -> bytes:
    return R.integer(c.cmds.dbsize())


def cmd_kvstats(c: RespConnection, args: list[bytes]) -> bytes:
    """KVSTATS: what ``GET /kv/stats`` answers, as a map (synap-sdk's resp3 kv.stats)."""
    return R.encode(c.node.kv_stats(), c.resp3)


def cmd_flushall(c: RespConnection, args: list[bytes]) -> bytes:
    for opt in args[1:]:
        if opt.upper() not in (b"ASYNC", b"SYNC"):
            raise CommandError(SYNTAX)
    c.cmds.flushall()
    return R.OK


DATA_COMMANDS: dict[bytes, Handler] = {
    b"GET": cmd_get,
    b"SET": cmd_set,
    b"SETNX": cmd_setnx,
    b"SETEX": cmd_setex,
    b"PSETEX": cmd_psetex,
    b"GETSET": cmd_getset,
    b"GETDEL": cmd_getdel,
    b"MGET": cmd_mget,
    b"MSET": cmd_mset,
    b"MSETNX": cmd_msetnx,
    b"DEL": cmd_del,
    b"UNLINK": cmd_del,
    b"EXISTS": cmd_exists,
    b"INCR": cmd_incr,
    b"DECR": cmd_decr,
    b"INCRBY": cmd_incrby,
    b"DECRBY": cmd_decrby,
    b"INCRBYFLOAT": cmd_incrbyfloat,
    b"APPEND": cmd_append,
    b"STRLEN": cmd_strlen,
    b"EXPIRE": cmd_expire,
    b"PEXPIRE": cmd_pexpire,
    b"EXPIREAT": cmd_expireat,
    b"PEXPIREAT": cmd_pexpireat,
    b"TTL": cmd_ttl,
    b"PTTL": cmd_pttl,
    b"PERSIST": cmd_persist,
    b"KEYS": cmd_keys,
    b"SCAN": cmd_scan,
    b"TYPE": cmd_type,
    b"RENAME": cmd_rename,
    b"RENAMENX": cmd_renamenx,
    b"DBSIZE": cmd_dbsize,
    b"FLUSHALL": cmd_flushall,
    b"FLUSHDB": cmd_flushall,
    b"KVSTATS": cmd_kvstats,
}
