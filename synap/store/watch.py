"""WATCH bookkeeping: which clients watch which keys, and marking them dirty when a watched
key changes.

The keyspace calls :func:`touch` from every method that changes a key (put, expiry,
removal — by a command, by the replication stream on a replica, by expiry or eviction)
and :func:`touch_all` when it is cleared or replaced, but only while some key is watched
(``Keyspace.watched`` non-empty), so unwatched writes pay one dict test.

Stale keys follow Redis (``touchWatchedKey``): a key that was already logically expired
when it was watched is not "changed" by its deletion.
"""

from __future__ import annotations

from typing import Any, Protocol


class Keyspace(Protocol):
    """What WATCH reads of the keyspace (synap/store/keyspace.py satisfies it; that
    module calls this one, so this one does not import it)."""

    @property
    def data(self) -> dict[bytes, bytes]: ...
    @property
    def expires(self) -> dict[bytes, int]: ...
    @property
    def watched(self) -> dict[bytes, set[Any]]: ...


class Watcher:
    """One client's watched keys (key -> whether it was stale when watched)."""

    __slots__ = ("dirty", "keys")

    def __init__(self) -> None:
        self.dirty = False
        self.keys: dict[bytes, bool] = {}


def watch(ks: Keyspace, watcher: Watcher, key: bytes, now: int) -> None:
    if key in watcher.keys:
        return
    at = ks.expires.get(key)
    watcher.keys[key] = key in ks.data and at is not None and at <= now
    ks.watched.setdefault(key, set()).add(watcher)


def unwatch_all(ks: Keyspace, watcher: Watcher) -> None:
    for key in watcher.keys:
        watchers = ks.watched.get(key)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del ks.watched[key]
    watcher.keys = {}
    watcher.dirty = False


def touch(ks: Keyspace, key: bytes) -> None:
    """``key`` changed (call after the change)."""
    watchers = ks.watched.get(key)
    if not watchers:
        return
    for watcher in watchers:
        if watcher.keys.get(key):
            if key not in ks.data:  # a stale key deleted: no logical change
                watcher.keys[key] = False
                continue
        watcher.dirty = True


def touch_all(ks: Keyspace, old: dict[bytes, bytes], new: dict[bytes, bytes]) -> None:
    """The whole dataset was replaced (``old`` -> ``new``): FLUSHALL, full sync."""
    for key, watchers in ks.watched.items():
        if key not in old and key not in new:
            continue
        for watcher in watchers:
            if watcher.keys.get(key) and key not in new:
                watcher.keys[key] = False
                continue
            watcher.dirty = True


def expired_since_watch(ks: Keyspace, watcher: Watcher, now: int) -> bool:
    """Whether a key that was live when watched is logically expired now (EXEC aborts)."""
    expires = ks.expires
    for key, stale in watcher.keys.items():
        if not stale and key in ks.data:
            at = expires.get(key)
            if at is not None and at <= now:
                return True
    return False
