"""The command layer: every read and write of every front end goes through here.

Front ends (RESP, REST, ``/api/v1/command``) parse their own syntax into the typed calls
of :class:`Commands`; this class checks that the node may write, enforces size and
memory limits, changes the keyspace and commits exactly one deterministic effect record
per write to the node's :class:`~synap.store.history.History`.  Keys the keyspace removed
by itself (lazy expiry, eviction) are committed as ``DEL`` records first, so the effect
stream alone reproduces the dataset.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Final

from synap.commands import longdouble
from synap.commands.errors import (
    NOT_FLOAT,
    NOT_INTEGER,
    OVERFLOW,
    CommandError,
    NotFoundError,
    OutOfMemoryError,
)
from synap.commands.glob import glob_match
from synap.store.dictprefetch import prefetch as prefetch_slots
from synap.store.effects import (
    KIND_JSON,
    OP_DEL,
    OP_EXPIRE,
    OP_FLUSH,
    OP_PERSIST,
    OP_SET,
    Op,
    set_op,
)
from synap.store.history import History
from synap.store.keyspace import EvictionPolicy, Keyspace, OutOfMemory, now_ms

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Open SCAN iterations kept (each holds a list of key references).
MAX_OPEN_SCANS = 64
_NO_EVICTION: Final = EvictionPolicy.NONE  # (Final: a C static in compiled code)
# A JSON number (RFC 8259): what an INCRBYFLOAT result must be to be stored as json kind.
_JSON_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


@dataclass
class OpStats:
    gets: int = 0
    sets: int = 0
    dels: int = 0
    hits: int = 0
    misses: int = 0


@dataclass
class Limits:
    max_key_bytes: int = 64 * 1024
    max_value_bytes: int = 512 * 1024 * 1024


@dataclass
class _Scan:
    keys: list[bytes]
    pos: int = 0


@dataclass
class ExpireFlags:
    nx: bool = False
    xx: bool = False
    gt: bool = False
    lt: bool = False


def parse_int(raw: bytes | str | int) -> int:
    """A 64-bit integer written as Redis's ``string2ll`` accepts it: ASCII digits with an
    optional minus, no plus, spaces, underscores or leading zeros."""
    if isinstance(raw, int):
        value = raw
    else:
        data = raw.encode() if isinstance(raw, str) else raw
        body = data[1:] if data[:1] == b"-" else data
        if not body.isdigit() or len(data) > 20 or (body[:1] == b"0" and len(data) > 1):
            raise CommandError(NOT_INTEGER)
        value = int(data)
    if not INT64_MIN <= value <= INT64_MAX:
        raise CommandError(NOT_INTEGER)
    return value


def parse_float(raw: bytes | str | float) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise CommandError(NOT_FLOAT) from None
    if math.isnan(value) or math.isinf(value):
        raise CommandError(NOT_FLOAT)
    return value


def _no_guard() -> None:
    return None


@dataclass
class Commands:
    keyspace: Keyspace
    history: History
    limits: Limits = field(default_factory=Limits)
    # Raises ReadOnlyError / WritesPausedError when this node may not write.
    check_writable: Callable[[], None] = _no_guard
    # Raises MasterDownError when this replica may not serve reads (serve_stale_reads:
    # false); called only while ``guard_reads`` is set, so reads pay nothing otherwise.
    check_readable: Callable[[], None] = _no_guard
    guard_reads: bool = False
    stats: OpStats = field(default_factory=OpStats)
    _scans: OrderedDict[int, _Scan] = field(default_factory=OrderedDict)
    _scan_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # ------------------------------------------------------------ plumbing
    def _begin_write(self, key: bytes | None = None, value: bytes | None = None) -> None:
        self.check_writable()
        self._check_size(key, value)

    def _check_size(self, key: bytes | None, value: bytes | None) -> None:
        """Key and value limits, and room under max_memory (evicting if the policy says so)."""
        extra = 0
        if key is not None:
            if len(key) > self.limits.max_key_bytes:
                raise CommandError(
                    f"ERR key is {len(key)} bytes, over the {self.limits.max_key_bytes}-byte limit"
                )
            extra += len(key)
        if value is not None:
            if len(value) > self.limits.max_value_bytes:
                raise CommandError(
                    f"ERR value is {len(value)} bytes, over the "
                    f"{self.limits.max_value_bytes}-byte limit (kv_store.max_value_bytes)"
                )
            extra += len(value)
        ks = self.keyspace
        if ks.max_memory_bytes and ks.over_limit(extra):
            try:
                ks.make_room(extra)
            except OutOfMemory:
                self.flush_removed()
                raise OutOfMemoryError() from None

    def _commit(self, ops: list[Op]) -> None:
        if self.keyspace.removed:
            self.flush_removed()
        self.history.commit(ops)

    def flush_removed(self) -> None:
        """Commit DELs for keys the keyspace expired or evicted by itself."""
        removed = self.keyspace.removed
        if removed:
            self.keyspace.removed = []
            self.history.commit([[OP_DEL, key] for key in removed])

    def active_expire(self, limit: int = 200) -> int:
        """Expire a sample of keys (masters only) and propagate the deletions."""
        done = self.keyspace.expire_some(now_ms(), limit)
        self.flush_removed()
        return done

    def _lookup(self, key: bytes, now: int) -> bytes | None:
        value = self.keyspace.lookup(key, now)
        if self.keyspace.removed:
            self.flush_removed()
        return value

    # ------------------------------------------------------------ reads
    def get(self, key: bytes) -> bytes | None:
        if self.guard_reads:
            self.check_readable()
        ks = self.keyspace
        value = ks.lookup(key)  # reads the clock only if the key has an expiry
        if ks.removed:
            self.flush_removed()
        stats = self.stats
        stats.gets += 1
        if value is None:
            stats.misses += 1
        else:
            stats.hits += 1
        return value

    def prefetch(self, keys: list[bytes]) -> None:
        """A hint before a batch of :meth:`get_fast` / :meth:`set_fast` calls for ``keys``
        (the RESP fast path's parsed requests): start loading their keyspace slots
        together (:mod:`synap.store.dictprefetch`). Changes nothing."""
        prefetch_slots(self.keyspace.data, keys)

    def get_fast(self, key: bytes) -> bytes | None:
        """:meth:`get` for a caller that found ``guard_reads`` off for its batch (the
        RESP fast path): the same value, counters and expiry, one dict look-up when the
        keyspace has no expiries and no eviction policy."""
        ks = self.keyspace
        value = ks.data.get(key)
        if value is not None and (ks.expires or ks.eviction is not _NO_EVICTION):
            value = ks.lookup(key)
            if ks.removed:
                self.flush_removed()
        stats = self.stats
        stats.gets += 1
        if value is None:
            stats.misses += 1
        else:
            stats.hits += 1
        return value

    def fast_writes(self) -> bool:
        """Whether :meth:`set_fast` may run for the batch about to be processed: this
        node may write now (role, paused writes, leadership, min-replicas-to-write) and
        no memory cap or eviction policy is in force.  None of that changes while a
        run of plain GETs and SETs executes."""
        try:
            self.check_writable()
        except CommandError:
            return False
        ks = self.keyspace
        return not ks.max_memory_bytes and ks.eviction is _NO_EVICTION

    def set_fast(self, key: bytes, value: bytes) -> bool:
        """``set(key, value)`` (no options) for a caller that found :meth:`fast_writes`
        true for its batch (the RESP fast path).  False, with nothing done, when the
        write needs more than a put and a record (a size limit to refuse, an expiry or
        json kind to clear on the key): the caller then takes the general path."""
        ks = self.keyspace
        limits = self.limits
        if (
            len(key) > limits.max_key_bytes
            or len(value) > limits.max_value_bytes
            or (ks.expires and key in ks.expires)
            or (ks.json_keys and key in ks.json_keys)
        ):
            return False
        ks.put(key, value)
        self.stats.sets += 1
        self.history.commit_set(key, value)  # commit([[OP_SET, key, value, 0]])
        return True

    def set_fast_first(self, key: bytes, value: bytes) -> int:
        """:meth:`fast_writes`, then :meth:`set_fast` if it holds, in one call: the first
        SET of a read in the C loop (one call into the command layer where there were
        two, which an unpipelined client pays on every SET).  1: stored; 0: set_fast
        refused it; -1: fast writes are off for this read.  Nothing is done unless 1."""
        if not self.fast_writes():
            return -1
        return 1 if self.set_fast(key, value) else 0

    def get_raw(self, key: bytes) -> bytes | None:
        """A read for commands that look at a value without counting as GET."""
        return self._lookup(key, now_ms())

    def mget(self, keys: list[bytes]) -> list[bytes | None]:
        if self.guard_reads:
            self.check_readable()
        return [self.get(k) for k in keys]

    def is_json(self, key: bytes) -> bool:
        """Whether the value just read for ``key`` is of json kind (the JSON text of a
        non-string JSON value) rather than plain bytes.  Call it after a read."""
        return key in self.keyspace.json_keys

    def exists(self, keys: list[bytes]) -> int:
        if self.guard_reads:
            self.check_readable()
        now = now_ms()
        return sum(1 for k in keys if self._lookup(k, now) is not None)

    def strlen(self, key: bytes) -> int:
        if self.guard_reads:
            self.check_readable()
        value = self._lookup(key, now_ms())
        return 0 if value is None else len(value)

    def type_of(self, key: bytes) -> str:
        if self.guard_reads:
            self.check_readable()
        return "none" if self._lookup(key, now_ms()) is None else "string"

    def pttl(self, key: bytes) -> int:
        """Milliseconds to live; -2 when the key is missing, -1 when it has no expiry."""
        if self.guard_reads:
            self.check_readable()
        now = now_ms()
        if self._lookup(key, now) is None:
            return -2
        at = self.keyspace.expiry_of(key)
        return -1 if at == 0 else max(0, at - now)

    def ttl(self, key: bytes) -> int:
        ms = self.pttl(key)
        return ms if ms < 0 else (ms + 500) // 1000

    def keys(self, pattern: bytes = b"*") -> list[bytes]:
        if self.guard_reads:
            self.check_readable()
        return [k for k in self.keyspace.live_keys() if glob_match(pattern, k)]

    def dbsize(self) -> int:
        if self.guard_reads:
            self.check_readable()
        return len(self.keyspace)

    def scan(
        self, cursor: int, match: bytes | None = None, count: int = 10
    ) -> tuple[int, list[bytes]]:
        """Cursor iteration: every key present for the whole iteration is returned once.

        Cursor 0 takes a list of the current keys (O(n) once per iteration); later calls
        walk it.  Keys added during the iteration may be missed, as Redis allows."""
        if self.guard_reads:
            self.check_readable()
        if cursor == 0:
            state = _Scan(list(self.keyspace.data))
            scan_id = next(self._scan_ids) & 0xFFFFFF
            self._scans[scan_id] = state
            while len(self._scans) > MAX_OPEN_SCANS:
                self._scans.popitem(last=False)
        else:
            scan_id = cursor & 0xFFFFFF
            found = self._scans.get(scan_id)
            if found is None:
                return 0, []
            state = found
        now = now_ms()
        data = self.keyspace.data
        expires = self.keyspace.expires
        out: list[bytes] = []
        end = min(len(state.keys), state.pos + max(count, 1))
        for key in state.keys[state.pos : end]:
            if key in data and (key not in expires or expires[key] > now):
                if match is None or glob_match(match, key):
                    out.append(key)
        state.pos = end
        if end >= len(state.keys):
            self._scans.pop(scan_id, None)
            return 0, out
        return (end << 24) | scan_id, out

    def scan_prefix(self, prefix: bytes, limit: int) -> list[bytes]:
        if self.guard_reads:
            self.check_readable()
        out: list[bytes] = []
        for key in self.keyspace.live_keys():
            if key.startswith(prefix):
                out.append(key)
                if len(out) >= limit:
                    break
        return out

    # ------------------------------------------------------------ writes
    def set(
        self,
        key: bytes,
        value: bytes,
        *,
        expire_at_ms: int = 0,
        keepttl: bool = False,
        nx: bool = False,
        xx: bool = False,
        is_json: bool = False,
    ) -> tuple[bool, bytes | None]:
        """SET with its options; returns (whether it was set, the old value).

        ``is_json``: ``value`` is the JSON text of a non-string JSON value (HTTP writes
        of numbers, objects...); RESP writes store plain bytes."""
        # The hottest write: _begin_write and _commit are inlined, and the clock is
        # read only when an expiry is involved (with no expiry given and no key holding
        # one, `now` is never used).
        if expire_at_ms:
            _check_expiry(expire_at_ms)
        self.check_writable()
        limits = self.limits
        ks = self.keyspace
        if (
            len(key) > limits.max_key_bytes
            or len(value) > limits.max_value_bytes
            or ks.max_memory_bytes
        ):
            self._check_size(key, value)
        now = now_ms() if expire_at_ms or ks.expires else 0
        old = ks.lookup(key, now)
        if (nx and old is not None) or (xx and old is None):
            self.flush_removed()
            return False, old
        expiry = ks.expiry_of(key) if keepttl and old is not None else expire_at_ms
        self.stats.sets += 1
        if expiry and expiry <= now:
            # An absolute expiry in the past: the key is gone at once.
            if old is not None:
                ks.remove(key)
                self._commit([[OP_DEL, key]])
            return True, old
        ks.put(key, value, expiry, is_json)
        if ks.removed:
            self.flush_removed()
        # (set_op inlined: this is the hottest write)
        self.history.commit(
            [[OP_SET, key, value, expiry, KIND_JSON] if is_json else [OP_SET, key, value, expiry]]
        )
        return True, old

    def mset(
        self,
        pairs: list[tuple[bytes, bytes]],
        *,
        nx: bool = False,
        json_kinds: Sequence[bool] | None = None,
    ) -> bool:
        """MSET; ``json_kinds[i]`` tells whether ``pairs[i]``'s value is of json kind
        (default: all plain)."""
        self.check_writable()
        check_size = self._check_size
        for key, value in pairs:
            check_size(key, value)
        now = now_ms()
        ks = self.keyspace
        if nx and any(ks.lookup(k, now) is not None for k, _ in pairs):
            self.flush_removed()
            return False
        ops: list[Op] = []
        if json_kinds is None:
            for key, value in pairs:
                ks.put(key, value, 0)
                ops.append([OP_SET, key, value, 0])
        else:
            if len(json_kinds) != len(pairs):
                raise ValueError("json_kinds must have one entry per pair")
            for (key, value), is_json in zip(pairs, json_kinds, strict=True):
                ks.put(key, value, 0, is_json)
                ops.append(set_op(key, value, 0, is_json))
        self.stats.sets += len(pairs)
        self._commit(ops)
        return True

    def delete(self, keys: list[bytes]) -> int:
        self.check_writable()
        now = now_ms()
        ks = self.keyspace
        ops: list[Op] = []
        for key in keys:
            if ks.lookup(key, now) is not None:
                ks.remove(key)
                ops.append([OP_DEL, key])
        self.stats.dels += 1
        if ops:
            self._commit(ops)
        else:
            self.flush_removed()
        return len(ops)

    def getdel(self, key: bytes) -> bytes | None:
        self.check_writable()
        value = self._lookup(key, now_ms())
        if value is not None:
            self.keyspace.remove(key)
            self._commit([[OP_DEL, key]])
        return value

    def _store_keeping_ttl(
        self, key: bytes, value: bytes, existed: bool, is_json: bool = False
    ) -> None:
        """Commit a new value for ``key`` that keeps its expiry (INCR, APPEND...)."""
        ks = self.keyspace
        expiry = ks.expiry_of(key) if existed else 0
        ks.put(key, value, expiry, is_json)
        self.stats.sets += 1
        self._commit([set_op(key, value, expiry, is_json)])

    def incr_by(self, key: bytes, delta: int) -> int:
        self._begin_write(key)
        now = now_ms()
        ks = self.keyspace
        old = ks.lookup(key, now)
        current = 0 if old is None else _int_value(old)
        result = current + delta
        if not INT64_MIN <= result <= INT64_MAX:
            self.flush_removed()
            raise CommandError(OVERFLOW)
        value = b"%d" % result
        # A counter is a number: over HTTP it reads back as one (json kind).
        self._store_keeping_ttl(key, value, old is not None, is_json=True)
        return result

    def incr_by_float(self, key: bytes, delta: bytes | float) -> bytes:
        """INCRBYFLOAT in C long double, as Redis computes it (synap.commands.longdouble);
        ``delta`` as the client wrote it (or a float)."""
        self._begin_write(key)
        now = now_ms()
        ks = self.keyspace
        old = ks.lookup(key, now)
        try:
            current = Fraction(0) if old is None else _long_double(old)
            incr = _long_double(delta) if isinstance(delta, bytes) else _float_fraction(delta)
            if current is None or incr is None:
                raise longdouble.Infinite
            result = longdouble.round_ld(current + incr)
        except longdouble.Infinite:
            self.flush_removed()
            raise CommandError("ERR increment would produce NaN or Infinity") from None
        except CommandError:
            self.flush_removed()
            raise
        value = longdouble.format_ld(result)
        is_number = _JSON_NUMBER.fullmatch(value) is not None
        self._store_keeping_ttl(key, value, old is not None, is_json=is_number)
        return value

    def append(self, key: bytes, suffix: bytes) -> int:
        self._begin_write(key, suffix)
        now = now_ms()
        ks = self.keyspace
        old = ks.lookup(key, now)
        value = suffix if old is None else old + suffix
        if len(value) > self.limits.max_value_bytes:
            self.flush_removed()
            raise CommandError("ERR string exceeds maximum allowed size")
        self._store_keeping_ttl(key, value, old is not None)
        return len(value)

    def expire_at(self, key: bytes, at_ms: int, flags: ExpireFlags | None = None) -> bool:
        self.check_writable()
        _check_expiry(at_ms)
        now = now_ms()
        ks = self.keyspace
        if self._lookup(key, now) is None:
            return False
        current = ks.expiry_of(key)
        if flags is not None:
            if flags.nx and current:
                return False
            if flags.xx and not current:
                return False
            # No expiry counts as infinite for GT/LT, as in Redis.
            if flags.gt and (not current or at_ms <= current):
                return False
            if flags.lt and current and at_ms >= current:
                return False
        if at_ms <= now:
            ks.remove(key)
            self._commit([[OP_DEL, key]])
            return True
        ks.set_expiry(key, at_ms)
        self._commit([[OP_EXPIRE, key, at_ms]])
        return True

    def persist(self, key: bytes) -> bool:
        self.check_writable()
        ks = self.keyspace
        if self._lookup(key, now_ms()) is None or not ks.expiry_of(key):
            return False
        ks.set_expiry(key, 0)
        self._commit([[OP_PERSIST, key]])
        return True

    def rename(self, src: bytes, dst: bytes, *, nx: bool = False) -> bool:
        self._begin_write(dst)
        now = now_ms()
        ks = self.keyspace
        value = self._lookup(src, now)
        if value is None:
            raise NotFoundError("ERR no such key")
        if nx and ks.lookup(dst, now) is not None:
            self.flush_removed()
            return False
        if src == dst:
            return True
        expiry = ks.expiry_of(src)
        is_json = ks.is_json(src)
        ks.remove(src)
        ks.put(dst, value, expiry, is_json)
        self._commit([[OP_DEL, src], set_op(dst, value, expiry, is_json)])
        return True

    # ------------------------------------------------- Redis string/keyspace extras
    def getex(
        self, key: bytes, *, expire_at_ms: int | None = None, persist: bool = False
    ) -> bytes | None:
        """GETEX: the value, and a new expiry (``expire_at_ms``) or none (``persist``).
        Without either it is a plain read and commits nothing (but, a write command as in
        Redis, it is still refused on a replica)."""
        self.check_writable()
        if expire_at_ms is None and not persist:
            return self.get(key)
        if expire_at_ms is not None:
            _check_expiry(expire_at_ms)
        now = now_ms()
        ks = self.keyspace
        value = self._lookup(key, now)
        if value is None:
            return None
        if persist:
            if ks.expiry_of(key):
                ks.set_expiry(key, 0)
                self._commit([[OP_PERSIST, key]])
        elif expire_at_ms is not None and expire_at_ms <= now:
            ks.remove(key)
            self._commit([[OP_DEL, key]])
        elif expire_at_ms is not None:
            ks.set_expiry(key, expire_at_ms)
            self._commit([[OP_EXPIRE, key, expire_at_ms]])
        return value

    def getrange(self, key: bytes, start: int, end: int) -> bytes:
        value = self._lookup(key, now_ms())
        if not value:
            return b""
        n = len(value)
        if start < 0 and end < 0 and start > end:
            return b""
        start = max(0, n + start) if start < 0 else start
        end = max(0, n + end) if end < 0 else end
        end = min(end, n - 1)
        if start > end or start >= n:
            return b""
        return value[start : end + 1]

    def setrange(self, key: bytes, offset: int, piece: bytes) -> int:
        """SETRANGE: overwrite from ``offset`` (zero-padding a gap); the new length."""
        self.check_writable()  # refused on a replica even when it would change nothing
        old = self._lookup(key, now_ms())
        if not piece:
            return 0 if old is None else len(old)
        if offset + len(piece) > self.limits.max_value_bytes:
            raise CommandError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        self._begin_write(key, piece)
        current = old or b""
        if len(current) < offset:
            current += b"\0" * (offset - len(current))
        value = current[:offset] + piece + current[offset + len(piece) :]
        self._store_keeping_ttl(key, value, old is not None)
        return len(value)

    def setbit(self, key: bytes, offset: int, bit: int) -> int:
        """SETBIT: the previous bit at ``offset`` (bit 0 is the most significant of byte 0)."""
        self.check_writable()
        old = self._lookup(key, now_ms())
        byte = offset >> 3
        need = byte + 1
        if need > self.limits.max_value_bytes:
            raise CommandError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        self._begin_write(key, b"")
        value = bytearray(old or b"")
        if len(value) < need:
            value += b"\0" * (need - len(value))
        mask = 0x80 >> (offset & 7)
        previous = 1 if value[byte] & mask else 0
        if bit:
            value[byte] |= mask
        else:
            value[byte] &= ~mask & 0xFF
        if old is not None and bytes(value) == old:
            return previous  # no change: Redis still propagates; nothing to record here
        self._store_keeping_ttl(key, bytes(value), old is not None)
        return previous

    def copy(self, src: bytes, dst: bytes, *, replace: bool = False) -> bool:
        """COPY: ``dst`` gets ``src``'s value and expiry; False if src is missing or dst
        exists (without ``replace``)."""
        self._begin_write(dst)
        now = now_ms()
        ks = self.keyspace
        value = self._lookup(src, now)
        if value is None:
            return False
        if src == dst:
            raise CommandError("ERR source and destination objects are the same")
        if not replace and ks.lookup(dst, now) is not None:
            self.flush_removed()
            return False
        expiry = ks.expiry_of(src)
        is_json = ks.is_json(src)  # the copy keeps the value's JSON kind
        self._check_size(dst, value)
        ks.put(dst, value, expiry, is_json)
        self.stats.sets += 1
        self._commit([set_op(dst, value, expiry, is_json)])
        return True

    def touch(self, keys: list[bytes]) -> int:
        return self.exists(keys)

    def random_key(self) -> bytes | None:
        """A random live key (expired ones met on the way are deleted, as in Redis)."""
        ks = self.keyspace
        now = now_ms()
        for _ in range(100):
            if not ks.data:
                return None
            key = random.choice(list(ks.data)) if len(ks.data) < 64 else _sample_key(ks.data)
            if self._lookup(key, now) is not None:
                return key
        live = next(iter(ks.live_keys(now)), None)
        return live

    def expire_time(self, key: bytes) -> int:
        """Absolute expiry in ms; -2 when the key is missing, -1 when it has none."""
        if self._lookup(key, now_ms()) is None:
            return -2
        return self.keyspace.expiry_of(key) or -1

    def flushall(self) -> int:
        self.check_writable()
        count = self.keyspace.clear()
        self.keyspace.removed = []
        self._commit([[OP_FLUSH]])
        return count


def _sample_key(data: dict[bytes, bytes]) -> bytes:
    """A random key without copying the whole dict: skip a random number of keys."""
    skip = random.randrange(len(data))
    return next(itertools.islice(iter(data), skip, None))


def _check_expiry(at_ms: int) -> None:
    """Expiry times are stored (and logged) as signed 64-bit milliseconds."""
    if not INT64_MIN <= at_ms <= INT64_MAX:
        raise CommandError("ERR invalid expire time")


def _int_value(raw: bytes) -> int:
    if len(raw) > 20:
        raise CommandError(NOT_INTEGER)
    return parse_int(raw)


def _long_double(raw: bytes) -> Fraction | None:
    """A stored or given number as a long double; None for infinity."""
    try:
        value = longdouble.parse(raw)
    except longdouble.Infinite:
        return None
    if value is None:
        raise CommandError(NOT_FLOAT)
    return value


def _float_fraction(value: float) -> Fraction | None:
    if math.isnan(value):
        raise CommandError(NOT_FLOAT)
    return None if math.isinf(value) else Fraction(value)
