"""A full sync's snapshot chunks, encoded from the keyspace: one class, also written in C.

A forked child sends the snapshot (:mod:`synap.replication.fork_snapshot`). It walks the
keyspace's ``data`` in its order and encodes ``[key, value, expire_at_ms]`` per entry
(``[..., 1]`` for a json key, :data:`~synap.replication.messages.SNAPSHOT_KIND_JSON`),
cut into chunks as :func:`~synap.replication.master_session.batch_entries` cuts them:
``len(key) + len(value) + 16`` bytes per entry, each chunk ending with the entry that
brings it to ``target_bytes`` or more. A payload is exactly what
``msgpack.Packer(use_bin_type=True).pack`` makes of the chunk's list of entries.

The compiled build has ``snapcodec.c`` beside this file, built by setup.py into an
extension of the same name that Python imports instead of it (as ``walcodec`` is). The C
encoder reads keys and values through borrowed references and never writes to a value
(no reference count changes: the values may live in memory shared with the parent). This
is the pure-Python fallback, which builds lists holding the values, and the reference the C
version is tested against (``tests/unit/test_snapcodec.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import msgpack

BUILT = 0  # the C module's BUILT is 1

_ENTRY_OVERHEAD = 16  # as master_session._ENTRY_OVERHEAD
_KIND_JSON = 1  # messages.SNAPSHOT_KIND_JSON


class ChunkEncoder:
    """The snapshot chunks of ``data`` (with ``expires`` and ``json_keys``), one per
    :meth:`next_chunk` call."""

    def __init__(
        self,
        data: dict[bytes, bytes],
        expires: dict[bytes, int],
        json_keys: set[bytes],
        target_bytes: int,
    ) -> None:
        self._data = data
        self._expires = expires
        self._json_keys = json_keys
        self._target = target_bytes
        self._size = len(data)
        self._items: Iterator[tuple[bytes, bytes]] = iter(data.items())
        self._done = False
        self._pack = msgpack.Packer(use_bin_type=True).pack

    def next_chunk(self) -> tuple[bytes, int] | None:
        """The next chunk's msgpack payload and its entry count; None when all entries are out."""
        if self._done:
            return None
        if len(self._data) != self._size:
            raise RuntimeError("keyspace changed size during the snapshot")
        expiry = self._expires.get
        json_keys = self._json_keys
        target = self._target
        batch: list[list[object]] = []
        size = 0
        for key, value in self._items:
            if type(key) is not bytes:
                raise TypeError(f"snapshot keys must be bytes, not {type(key).__name__}")
            if type(value) is not bytes:
                raise TypeError(f"snapshot values must be bytes, not {type(value).__name__}")
            at = expiry(key, 0)
            if type(at) is not int:
                raise TypeError(f"snapshot expiries must be int, not {type(at).__name__}")
            if json_keys and key in json_keys:
                batch.append([key, value, at, _KIND_JSON])
            else:
                batch.append([key, value, at])
            size += len(key) + len(value) + _ENTRY_OVERHEAD
            if size >= target:
                break
        if not batch:
            self._done = True
            return None
        return self._pack(batch), len(batch)
