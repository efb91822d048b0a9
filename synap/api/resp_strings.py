"""RESP handlers for the string and keyspace commands beyond the basic set (issue 9):
GETEX, GETRANGE/SUBSTR, SETRANGE, SETBIT/GETBIT/BITCOUNT/BITPOS, LCS, COPY, TOUCH,
RANDOMKEY, EXPIRETIME/PEXPIRETIME and OBJECT.  Replies and errors follow Redis 7.0; the
writes go through :class:`~synap.commands.layer.Commands` (one effect record each)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from synap.api import resp_codec as R
from synap.commands.errors import SYNTAX, CommandError
from synap.commands.layer import INT64_MAX, parse_int
from synap.store.keyspace import EvictionPolicy, now_ms

if TYPE_CHECKING:
    from synap.api.resp_context import RespClient as RespConnection

_BIT_OFFSET = "ERR bit offset is not an integer or out of range"


def cmd_getex(c: RespConnection, args: list[bytes]) -> bytes:
    expire_at: int | None = None
    persist = False
    i, n = 2, len(args)
    seen = b""
    while i < n:
        opt = args[i].upper()
        if opt in (b"EX", b"PX", b"EXAT", b"PXAT") and i + 1 < n and not persist:
            if seen and seen != opt:
                raise CommandError(SYNTAX)
            seen = opt
            amount = parse_int(args[i + 1])
            if amount <= 0 or (opt in (b"EX", b"EXAT") and amount > INT64_MAX // 1000):
                raise CommandError("ERR invalid expire time in 'getex' command")
            at = amount * 1000 if opt in (b"EX", b"EXAT") else amount
            if opt in (b"EX", b"PX"):
                at += now_ms()
            if at > INT64_MAX:
                raise CommandError("ERR invalid expire time in 'getex' command")
            expire_at = at
            i += 2
        elif opt == b"PERSIST" and not seen:
            persist = True
            i += 1
        else:
            raise CommandError(SYNTAX)
    value = c.cmds.getex(args[1], expire_at_ms=expire_at, persist=persist)
    return R.bulk_or_null(value, c.resp3)


def cmd_getrange(c: RespConnection, args: list[bytes]) -> bytes:
    start, end = parse_int(args[2]), parse_int(args[3])
    return R.bulk(c.cmds.getrange(args[1], start, end))


def cmd_setrange(c: RespConnection, args: list[bytes]) -> bytes:
    offset = parse_int(args[2])
    if offset < 0:
        raise CommandError("ERR offset is out of range")
    return R.integer(c.cmds.setrange(args[1], offset, args[3]))


def _bit_offset(raw: bytes, c: RespConnection) -> int:
    try:
        offset = parse_int(raw)
    except CommandError:
        raise CommandError(_BIT_OFFSET) from None
    if offset < 0 or (offset >> 3) >= c.cmds.limits.max_value_bytes:
        raise CommandError(_BIT_OFFSET)
    return offset


def cmd_setbit(c: RespConnection, args: list[bytes]) -> bytes:
    offset = _bit_offset(args[2], c)
    if args[3] not in (b"0", b"1"):
        raise CommandError("ERR bit is not an integer or out of range")
    return R.integer(c.cmds.setbit(args[1], offset, int(args[3])))


def cmd_getbit(c: RespConnection, args: list[bytes]) -> bytes:
    offset = _bit_offset(args[2], c)
    value = c.cmds.getrange(args[1], offset >> 3, offset >> 3)
    return R.integer(1 if value and value[0] & (0x80 >> (offset & 7)) else 0)


def _clamp(start: int, end: int, total: int) -> tuple[int, int]:
    """Redis's range conversion for BITCOUNT / BITPOS."""
    if start < 0:
        start += total
    if end < 0:
        end += total
    start, end = max(start, 0), max(end, 0)
    return start, min(end, total - 1)


def _unit(raw: bytes) -> bool:
    """BYTE|BIT: whether the range is in bits."""
    unit = raw.upper()
    if unit not in (b"BIT", b"BYTE"):
        raise CommandError(SYNTAX)
    return unit == b"BIT"


def _bits(data: bytes, first_bit: int, last_bit: int, invert: bool = False) -> tuple[int, int, int]:
    """The bits ``first_bit..last_bit`` of ``data`` (inverted if asked) as (integer,
    offset of its first byte in bits, width of the bytes taken)."""
    first_byte, last_byte = first_bit >> 3, last_bit >> 3
    chunk = data[first_byte : last_byte + 1]
    width = len(chunk) * 8
    n = int.from_bytes(chunk, "big")
    if invert:
        n ^= (1 << width) - 1
    lo, hi = first_bit - first_byte * 8, last_bit - first_byte * 8
    mask = ((1 << (hi - lo + 1)) - 1) << (width - 1 - hi)
    return n & mask, first_byte * 8, width


def cmd_bitcount(c: RespConnection, args: list[bytes]) -> bytes:
    data = c.cmds.get_raw(args[1])
    if data is None:
        return R.ZERO
    if len(args) in (4, 5):
        start, end = parse_int(args[2]), parse_int(args[3])
        in_bits = _unit(args[4]) if len(args) == 5 else False
        total = len(data) * 8 if in_bits else len(data)
        start, end = _clamp(start, end, total)
        if start > end:
            return R.ZERO
        if not in_bits:
            start, end = start * 8, end * 8 + 7
    elif len(args) == 2:
        start, end = 0, len(data) * 8 - 1
        if end < 0:
            return R.ZERO
    else:
        raise CommandError(SYNTAX)
    n, _, _ = _bits(data, start, end)
    return R.integer(n.bit_count())


def cmd_bitpos(c: RespConnection, args: list[bytes]) -> bytes:
    if args[2] not in (b"0", b"1"):
        try:
            parse_int(args[2])
        except CommandError:
            raise CommandError("ERR value is not an integer or out of range") from None
        raise CommandError("ERR The bit argument must be 1 or 0.")
    bit = int(args[2])
    data = c.cmds.get_raw(args[1])
    if data is None:
        return R.integer(-1 if bit else 0)
    end_given = False
    if 4 <= len(args) <= 6:
        start = parse_int(args[3])
        in_bits = _unit(args[5]) if len(args) == 6 else False
        total = len(data) * 8 if in_bits else len(data)
        if len(args) >= 5:
            end = parse_int(args[4])
            end_given = True
        else:
            end = total - 1
        start, end = _clamp(start, end, total)
        if not in_bits:
            start, end = start * 8, end * 8 + 7
    elif len(args) == 3:
        start, end = 0, len(data) * 8 - 1
    else:
        raise CommandError(SYNTAX)
    if start > end:
        return R.integer(-1)
    n, base, width = _bits(data, start, end, invert=bit == 0)
    if n:
        return R.integer(base + width - n.bit_length())
    if bit == 0 and not end_given:
        return R.integer(((end >> 3) + 1) * 8)
    return R.integer(-1)


# Python's LCS table costs ~8 bytes a cell: refuse tables over this many cells.
MAX_LCS_CELLS = 16_000_000


def cmd_lcs(c: RespConnection, args: list[bytes]) -> bytes:
    a = c.cmds.get_raw(args[1]) or b""
    b = c.cmds.get_raw(args[2]) or b""
    get_idx = get_len = with_len = False
    min_len = 0
    i = 3
    while i < len(args):
        opt = args[i].upper()
        if opt == b"IDX":
            get_idx = True
        elif opt == b"LEN":
            get_len = True
        elif opt == b"WITHMATCHLEN":
            with_len = True
        elif opt == b"MINMATCHLEN" and i + 1 < len(args):
            min_len = max(parse_int(args[i + 1]), 0)
            i += 1
        else:
            raise CommandError(SYNTAX)
        i += 1
    if get_idx and get_len:
        raise CommandError("ERR If you want both the length and indexes, please just use IDX.")
    if (len(a) + 1) * (len(b) + 1) > MAX_LCS_CELLS:
        raise CommandError(
            f"ERR LCS of strings this long needs over {MAX_LCS_CELLS} table cells; not supported"
        )
    return _lcs_reply(a, b, get_idx, get_len, with_len, min_len, c.resp3)


def _lcs_reply(
    a: bytes, b: bytes, get_idx: bool, get_len: bool, with_len: bool, min_len: int, resp3: bool
) -> bytes:
    """Redis's ``lcsCommand``: the table, then a walk back from the end that emits the
    matching ranges in the order (and with the quirks) Redis emits them."""
    alen, blen = len(a), len(b)
    table = [[0] * (blen + 1) for _ in range(alen + 1)]
    for i in range(1, alen + 1):
        row, prev, ai = table[i], table[i - 1], a[i - 1]
        for j in range(1, blen + 1):
            if ai == b[j - 1]:
                row[j] = prev[j - 1] + 1
            else:
                row[j] = max(prev[j], row[j - 1])
    idx = table[alen][blen]
    if get_len and not get_idx:
        return R.integer(idx)
    result = bytearray(idx)
    matches: list[bytes] = []
    a_start, a_end, b_start, b_end = alen, 0, 0, 0
    i, j = alen, blen
    while i > 0 and j > 0:
        emit = False
        if a[i - 1] == b[j - 1]:
            result[idx - 1] = a[i - 1]
            if a_start == alen:
                a_start = a_end = i - 1
                b_start = b_end = j - 1
            elif a_start == i and b_start == j:
                a_start -= 1
                b_start -= 1
            else:
                emit = True
            if a_start == 0 or b_start == 0:
                emit = True
            idx -= 1
            i -= 1
            j -= 1
        else:
            if table[i - 1][j] > table[i][j - 1]:
                i -= 1
            else:
                j -= 1
            if a_start != alen:
                emit = True
        match_len = a_end - a_start + 1
        if emit:
            if get_idx and (min_len == 0 or match_len >= min_len):
                parts = [
                    R.array([R.integer(a_start), R.integer(a_end)]),
                    R.array([R.integer(b_start), R.integer(b_end)]),
                ]
                if with_len:
                    parts.append(R.integer(match_len))
                matches.append(R.array(parts))
            a_start = alen
    if not get_idx:
        return R.bulk(bytes(result))
    head = b"%2\r\n" if resp3 else b"*4\r\n"
    return (
        head + R.bulk(b"matches") + R.array(matches) + R.bulk(b"len") + R.integer(table[alen][blen])
    )


def cmd_copy(c: RespConnection, args: list[bytes]) -> bytes:
    replace = False
    i = 3
    while i < len(args):
        opt = args[i].upper()
        if opt == b"REPLACE":
            replace = True
        elif opt == b"DB" and i + 1 < len(args):
            if parse_int(args[i + 1]) != 0:
                raise CommandError("ERR DB index is out of range")
            i += 1
        else:
            raise CommandError(SYNTAX)
        i += 1
    return R.integer(int(c.cmds.copy(args[1], args[2], replace=replace)))


def cmd_touch(c: RespConnection, args: list[bytes]) -> bytes:
    return R.integer(c.cmds.touch(args[1:]))


def cmd_randomkey(c: RespConnection, args: list[bytes]) -> bytes:
    return R.bulk_or_null(c.cmds.random_key(), c.resp3)


def cmd_expiretime(c: RespConnection, args: list[bytes]) -> bytes:
    at = c.cmds.expire_time(args[1])
    return R.integer(at if at < 0 else at // 1000)


def cmd_pexpiretime(c: RespConnection, args: list[bytes]) -> bytes:
    return R.integer(c.cmds.expire_time(args[1]))


def _encoding(value: bytes) -> bytes:
    """The encoding Redis would give a string of this content (OBJ_ENCODING_INT for a
    canonical 64-bit integer, EMBSTR up to 44 bytes, RAW beyond)."""
    if len(value) <= 20:
        try:
            if parse_int(value) is not None:
                return b"int"
        except CommandError:
            pass
    return b"embstr" if len(value) <= 44 else b"raw"


def cmd_object(c: RespConnection, args: list[bytes]) -> bytes:
    sub = args[1].upper()
    if sub == b"HELP":
        return R.array([R.simple(line) for line in _OBJECT_HELP])
    value = c.cmds.get_raw(args[2])
    if value is None:
        return R.null(c.resp3)
    if sub == b"ENCODING":
        return R.bulk(_encoding(value))
    if sub == b"REFCOUNT":
        return R.ONE  # values are never shared here
    ks = c.cmds.keyspace
    if sub == b"FREQ":
        if ks.eviction is not EvictionPolicy.LFU:
            raise CommandError(
                "ERR An LFU maxmemory policy is not selected, access frequency not tracked. "
                "Please note that when switching between policies at runtime LRU and LFU "
                "data will take some time to adjust."
            )
        return R.integer(min(ks.usage_of(args[2]), 255))
    # IDLETIME
    if ks.eviction is EvictionPolicy.LFU:
        raise CommandError(
            "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note "
            "that when switching between policies at runtime LRU and LFU data will take "
            "some time to adjust."
        )
    raise CommandError("ERR idle time is not tracked by this server (no per-key access clock)")


_OBJECT_HELP = (
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
)

STRING_COMMANDS = {
    b"GETEX": cmd_getex,
    b"GETRANGE": cmd_getrange,
    b"SUBSTR": cmd_getrange,
    b"SETRANGE": cmd_setrange,
    b"SETBIT": cmd_setbit,
    b"GETBIT": cmd_getbit,
    b"BITCOUNT": cmd_bitcount,
    b"BITPOS": cmd_bitpos,
    b"LCS": cmd_lcs,
    b"COPY": cmd_copy,
    b"TOUCH": cmd_touch,
    b"RANDOMKEY": cmd_randomkey,
    b"EXPIRETIME": cmd_expiretime,
    b"PEXPIRETIME": cmd_pexpiretime,
    b"OBJECT": cmd_object,
}
