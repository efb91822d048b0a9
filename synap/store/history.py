"""The node's history: the ordered stream of effect records it has applied.

A history is named by a replication id (40 hex chars, Redis-style) and counts records
with a monotonically increasing offset (offset N = the Nth record).  ``replid2`` and
``second_offset`` remember the history this node followed before a promotion (Redis
PSYNC2), so replicas of the old master can continue by partial sync.

Every committed record is handed, as the same bytes, to each listener in order: the WAL,
the replication log and, through it, every replica stream.  Masters commit records made
by the command layer; replicas commit the records their master sent, after applying them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

from synap.store.effects import Op, encode_record

RecordListener = Callable[[int, bytes], None]
# Receives consecutive records at once: (offset of the first, records).
BatchListener = Callable[[int, Sequence[bytes]], None]


def new_replid() -> str:
    return secrets.token_hex(20)


class History:
    def __init__(self, replid: str | None = None, offset: int = 0) -> None:
        self.replid = replid or new_replid()
        self.offset = offset
        self.replid2 = "0" * 40
        self.second_offset = -1
        self._listeners: list[RecordListener] = []
        self._batch_listeners: list[BatchListener] = []  # same order as _listeners

    def subscribe(self, listener: RecordListener, batch: BatchListener | None = None) -> None:
        """Call ``listener(offset, record)`` for every record. ``batch``, if given, takes
        the place of a loop over ``listener`` when a replica publishes a whole batch."""
        self._listeners.append(listener)
        self._batch_listeners.append(batch or _one_by_one(listener))

    def unsubscribe(self, listener: RecordListener) -> None:
        if listener in self._listeners:
            index = self._listeners.index(listener)
            del self._listeners[index]
            del self._batch_listeners[index]

    def commit(self, ops: list[Op]) -> int:
        """Encode ``ops`` once as a record, give it the next offset and publish it (with
        no listener — a standalone node without WAL — nothing is encoded)."""
        self.offset += 1
        offset = self.offset
        if self._listeners:
            record = encode_record(ops)
            for listener in self._listeners:
                listener(offset, record)
        return offset

    def commit_encoded(self, offset: int, record: bytes) -> None:
        """Publish a record received from the master (already applied)."""
        self.offset = offset
        for listener in self._listeners:
            listener(offset, record)

    def commit_encoded_batch(self, first_offset: int, records: Sequence[bytes]) -> None:
        """Publish consecutive records received from the master (already applied): the
        same as :meth:`commit_encoded` for each, one call per listener. ``offset`` is
        already the last record's while the listeners run."""
        if not records:
            return
        self.offset = first_offset + len(records) - 1
        for listener in self._batch_listeners:
            listener(first_offset, records)

    def shift(self) -> None:
        """Start a new history after a promotion, remembering the old one (PSYNC2).

        Replicas of the old master may continue from us up to and including the
        next offset they would have asked the old master for."""
        self.replid2 = self.replid
        self.second_offset = self.offset + 1
        self.replid = new_replid()

    def reset(self, replid: str, offset: int) -> None:
        """Adopt a master's history after a full sync (old history is gone)."""
        self.replid = replid
        self.offset = offset
        self.replid2 = "0" * 40
        self.second_offset = -1


def _one_by_one(listener: RecordListener) -> BatchListener:
    def publish(first_offset: int, records: Sequence[bytes]) -> None:
        for offset, record in enumerate(records, first_offset):
            listener(offset, record)

    return publish
