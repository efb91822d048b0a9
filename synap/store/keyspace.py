"""The in-memory keyspace: binary-safe keys and values, absolute expiry times, memory
accounting and eviction.

The keyspace is deliberately passive: it never decides *whether* something may be
written (that is the command layer's job) and never produces effect records.  When it
removes keys on its own — lazy or active expiry on a master, eviction under memory
pressure — it queues their names in :attr:`Keyspace.removed` so the command layer can turn
them into ``DEL`` effects before anything else is emitted.

Each value is a byte string.  :attr:`Keyspace.json_keys` names the keys whose value was
written as a non-string JSON value (its compact JSON text: a number, object, array,
boolean or null) — the value's *json kind*.  HTTP reads return those parsed and every
other value as a string; RESP ignores the kind.  Every removal path drops a key from the
set, and every write states the kind of the value it stores.  The set is small or empty
for RESP workloads, and the hot paths test it for emptiness first.  (Its memory is not
counted in :attr:`Keyspace.used_memory`.)

With ``share_values`` (set on nodes that replicate) a node that owns its writes
(``expire_on_access``: a master) stores each value as :func:`synap.tightalloc.share`'s copy, in memory a
full sync's forked child shares instead of having its page tables copied (a replica
stores values as they come: its apply path stays as short as it was).

On a replica ``expire_on_access`` is false: logically expired keys are hidden from reads
but only deleted when the master's ``DEL`` arrives (Redis does the same since 3.2), so
all nodes apply the same history in the same order.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Any, Final

from synap.clock import now_ms as now_ms  # re-exported: the store's clock
from synap.store import watch
from synap.tightalloc import share

# Rough bytes of bookkeeping per key beyond the key and value payloads: two bytes
# objects (33 B headers each) plus a dict slot.  Used only for max_memory accounting.
KEY_OVERHEAD: Final = 90
EXPIRY_OVERHEAD: Final = 40

# How many candidate keys one eviction looks at (Redis: maxmemory-samples 5).
EVICTION_SAMPLES = 8


class EvictionPolicy(StrEnum):
    NONE = "none"
    LRU = "lru"
    LFU = "lfu"
    TTL = "ttl"


# Reading an enum member off its class costs ~0.15 us in Python 3.11; the lookups every
# command makes compare against this module constant instead (Final: compiled code reads
# it from a C static, not from the module's dict).
_NO_EVICTION: Final = EvictionPolicy.NONE


class OutOfMemory(Exception):
    """The write does not fit under max_memory and the policy cannot make room."""


class Keyspace:
    def __init__(
        self,
        max_memory_bytes: int = 0,
        eviction: EvictionPolicy = EvictionPolicy.NONE,
        *,
        expire_on_access: bool = True,
        share_values: bool = False,
    ) -> None:
        self.data: dict[bytes, bytes] = {}
        self.expires: dict[bytes, int] = {}
        # Keys whose value is the JSON text of a non-string JSON value ("json kind").
        self.json_keys: set[bytes] = set()
        self.used_memory = 0
        self.max_memory_bytes = max_memory_bytes
        self.eviction = eviction
        self.expire_on_access = expire_on_access
        # Store values as shared copies while expire_on_access (see the module docstring).
        self.share_values = share_values
        # (an attribute: compiled code calls it without a lookup in the module's globals,
        # ~100 instructions a write)
        self._share: Callable[[bytes], bytes] = share
        # Keys the keyspace removed by itself (expiry, eviction), to be propagated.
        self.removed: list[bytes] = []
        self.evicted_total = 0
        self.expired_total = 0
        self._tick = 0
        self._usage: dict[bytes, int] = {}  # LRU clock or LFU counter per key
        self._sample_pool: list[bytes] = []
        # WATCH: key -> the clients watching it (see synap.store.watch).
        self.watched: dict[bytes, set[Any]] = {}

    # ------------------------------------------------------------------ reads
    def __len__(self) -> int:
        return len(self.data)

    def lookup(self, key: bytes, now: int | None = None) -> bytes | None:
        """Value of ``key`` or None if absent or logically expired."""
        value = self.data.get(key)
        if value is None:
            return None
        if self.expires and key in self.expires:
            if now is None:
                now = now_ms()
            if self.expires[key] <= now:
                if self.expire_on_access:
                    self._drop(key)
                    self.removed.append(key)
                    self.expired_total += 1
                return None
        if self.eviction is not _NO_EVICTION:
            self._touch(key)
        return value

    def is_json(self, key: bytes) -> bool:
        """Whether ``key``'s value was written as a non-string JSON value."""
        return key in self.json_keys

    def usage_of(self, key: bytes) -> int:
        """The LFU counter (or LRU clock) of ``key``; 0 when not tracked."""
        return self._usage.get(key, 0)

    def expiry_of(self, key: bytes) -> int:
        """Absolute expiry in ms, 0 when the key has none."""
        return self.expires.get(key, 0)

    def live_keys(self, now: int | None = None) -> Iterator[bytes]:
        """Keys that are not logically expired (does not delete anything)."""
        if now is None:
            now = now_ms()
        expires = self.expires
        for key in list(self.data):
            at = expires.get(key)
            if at is None or at > now:
                yield key

    # ----------------------------------------------------------------- writes
    def put(self, key: bytes, value: bytes, expire_at_ms: int = 0, is_json: bool = False) -> None:
        """Store ``value`` with an absolute expiry (0 = none) and its kind: ``is_json``
        when it is the JSON text of a non-string JSON value, else plain bytes."""
        data = self.data
        old = data.get(key)
        if old is None:
            self.used_memory += len(key) + len(value) + KEY_OVERHEAD
        else:
            self.used_memory += len(value) - len(old)
        if self.share_values and self.expire_on_access:
            value = self._share(value)
        data[key] = value
        if is_json:
            self.json_keys.add(key)
        elif self.json_keys:
            self.json_keys.discard(key)
        if expire_at_ms or self.expires:  # (no call for the common case: no expiries)
            self._set_expiry_unchecked(key, expire_at_ms)
        if self.eviction is not _NO_EVICTION:
            self._touch(key)
        if self.watched:
            watch.touch(self, key)

    def remove(self, key: bytes) -> bool:
        if key not in self.data:
            return False
        self._drop(key)
        return True

    def set_expiry(self, key: bytes, expire_at_ms: int) -> bool:
        if key not in self.data:
            return False
        self._set_expiry_unchecked(key, expire_at_ms)
        if self.watched:
            watch.touch(self, key)
        return True

    def clear(self) -> int:
        count = len(self.data)
        if self.watched:
            watch.touch_all(self, self.data, {})
        self.data = {}
        self.expires = {}
        self.json_keys = set()
        self._usage = {}
        self._sample_pool = []
        self.used_memory = 0
        return count

    def replace(
        self,
        data: dict[bytes, bytes],
        expires: dict[bytes, int],
        json_keys: set[bytes] | None = None,
    ) -> None:
        """Swap in a whole new dataset (full sync, recovery); ``json_keys`` are the keys
        of json kind (they must all be in ``data``)."""
        if self.watched:
            watch.touch_all(self, self.data, data)
        if self.share_values and self.expire_on_access:  # recovery on a master
            for key, value in data.items():  # (replacing values keeps the dict's size)
                data[key] = self._share(value)
        self.data = data
        self.expires = expires
        self.json_keys = json_keys if json_keys is not None else set()
        self._usage = {}
        self._sample_pool = []
        self.used_memory = (
            sum(map(len, data)) + sum(map(len, data.values())) + KEY_OVERHEAD * len(data)
        )
        self.used_memory += EXPIRY_OVERHEAD * len(expires)

    # ------------------------------------------------------------- expiry
    def expire_some(self, now: int, limit: int = 200) -> int:
        """Active expiry: delete up to ``limit`` expired keys found by sampling.

        Returns how many were deleted.  Only called on nodes that own expiry (masters)."""
        if not self.expires:
            return 0
        expires = self.expires
        sample = (
            random.sample(list(expires), min(limit, len(expires)))
            if len(expires) > limit * 4
            else list(expires)
        )
        done = 0
        for key in sample:
            at = expires.get(key)
            if at is not None and at <= now:
                self._drop(key)
                self.removed.append(key)
                self.expired_total += 1
                done += 1
                if done >= limit:
                    break
        return done

    # ------------------------------------------------------------- memory
    def over_limit(self, extra: int = 0) -> bool:
        return bool(self.max_memory_bytes) and self.used_memory + extra > self.max_memory_bytes

    def make_room(self, extra: int) -> None:
        """Evict keys until ``extra`` more bytes fit, or raise :class:`OutOfMemory`.

        Evicted keys are queued in :attr:`removed` for propagation as DELs."""
        if not self.over_limit(extra):
            return
        if self.eviction is EvictionPolicy.NONE:
            raise OutOfMemory
        while self.over_limit(extra):
            victim = self._pick_victim()
            if victim is None:
                raise OutOfMemory
            self._drop(victim)
            self.removed.append(victim)
            self.evicted_total += 1

    def _pick_victim(self) -> bytes | None:
        candidates: list[bytes] = []
        source = self.expires if self.eviction is EvictionPolicy.TTL else self.data
        attempts = 0
        while len(candidates) < EVICTION_SAMPLES and attempts < EVICTION_SAMPLES * 4:
            attempts += 1
            if not self._sample_pool:
                if not source:
                    break
                # Refilled once per len(source) samples: O(1) amortized per eviction.
                self._sample_pool = list(source)
                random.shuffle(self._sample_pool)
            key = self._sample_pool.pop()
            if key in source:
                candidates.append(key)
        if not candidates:
            return None
        if self.eviction is EvictionPolicy.TTL:
            return min(candidates, key=lambda k: self.expires[k])
        return min(candidates, key=lambda k: self._usage.get(k, 0))

    def _touch(self, key: bytes) -> None:
        if self.eviction is EvictionPolicy.LFU:
            self._usage[key] = self._usage.get(key, 0) + 1
        else:
            self._tick += 1
            self._usage[key] = self._tick

    # ------------------------------------------------------------- internals
    def _set_expiry_unchecked(self, key: bytes, expire_at_ms: int) -> None:
        if expire_at_ms:
            if key not in self.expires:
                self.used_memory += EXPIRY_OVERHEAD
            self.expires[key] = expire_at_ms
        elif self.expires and key in self.expires:
            del self.expires[key]
            self.used_memory -= EXPIRY_OVERHEAD

    def _drop(self, key: bytes) -> None:
        value = self.data.pop(key)
        self.used_memory -= len(key) + len(value) + KEY_OVERHEAD
        if self.expires and self.expires.pop(key, None) is not None:
            self.used_memory -= EXPIRY_OVERHEAD
        if self.json_keys:
            self.json_keys.discard(key)
        if self._usage:
            self._usage.pop(key, None)
        if self.watched:
            watch.touch(self, key)
