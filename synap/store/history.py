"""The node's history: the ordered stream of effect records it has applied.

A history is named by a replication id (40 hex chars, Redis-style) and counts records
with a monotonically increasing offset (offset N = the Nth record).  ``replid2`` and
``second_offset`` remember the history this node followed before a promotion (Redis
PSYNC2), so replicas of the old master can continue by partial sync.  The four travel
together as one :class:`Position`, which :class:`History` owns: it moves it on
commits, and :meth:`History.shift` / :meth:`History.adopt` / :meth:`History.restore`
are the only other ways it changes.

Every committed record is handed, as the same bytes, to each listener in order: the WAL,
the replication log and, through it, every replica stream.  Masters commit records made
by the command layer; replicas commit the records their master sent, after applying them.

Batching.  When the node installs :attr:`History.on_pending` (it does once its event
loop runs), :meth:`History.commit` only encodes the record and queues it;
:meth:`History.publish` (the node's ``flush_writes()``, before any reply: once per loop
iteration for RESP, once per request elsewhere) hands the queued records to every
listener as one batch: one WAL buffer append, one replication-log extend, one replica
notify.
``on_pending`` is the safety net: it is called when a batch starts, and the node answers
by scheduling a publish at the end of the loop iteration, so records never wait longer
than that, whoever committed them.  Anything that reads the history's position
(:meth:`position`, :meth:`shift`, ...) publishes first, so listeners and position agree.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from synap.store.effects import Op, encode_record, encode_set_record

RecordListener = Callable[[int, bytes], None]
# Receives consecutive records at once: (offset of the first, records).
BatchListener = Callable[[int, Sequence[bytes]], None]

#: The one "no previous history" value of ``replid2`` (Redis shows the same forty zeros).
NO_REPLID = "0" * 40


def new_replid() -> str:
    return secrets.token_hex(20)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a node stands: its history id and offset, and the history before that.

    ``replid2`` / ``second_offset``: the id this node followed before its last change of
    id, and the first offset that is *not* part of that old history (PSYNC2: a replica
    of the old id may continue here while it asks for offsets ``<= second_offset``).
    :data:`NO_REPLID` and -1 when there is none."""

    replid: str
    offset: int
    replid2: str = NO_REPLID
    second_offset: int = -1

    @property
    def has_previous(self) -> bool:
        return self.replid2 != NO_REPLID

    def shifted(self, new_id: str) -> Position:
        """The position after switching to history ``new_id`` at this offset (PSYNC2)."""
        return Position(new_id, self.offset, self.replid, self.offset + 1)


class History:
    def __init__(self, replid: str | None = None, offset: int = 0) -> None:
        self._position = Position(replid or new_replid(), 0)
        self.offset = offset
        self._listeners: list[RecordListener] = []
        self._batch_listeners: list[BatchListener] = []  # same order as _listeners
        # Records committed but not yet handed to the listeners (batching; see above).
        self._pending: list[bytes] = []
        self._pending_first = 0
        #: Called when a batch starts (the first record queued). None: no batching,
        #: every commit is published at once.
        self.on_pending: Callable[[], None] | None = None
        #: Set by the owner of :attr:`on_pending` (the node) while the end-of-iteration
        #: publish it scheduled has not run: RESP replies are held until it has.
        self.flush_scheduled = False

    # ------------------------------------------------------------ position
    @property
    def replid(self) -> str:
        return self._position.replid

    @property
    def replid2(self) -> str:
        return self._position.replid2

    @property
    def second_offset(self) -> int:
        return self._position.second_offset

    def position(self) -> Position:
        """The current position, with every committed record handed to the listeners
        (what a snapshot or the persisted state must record)."""
        self.publish()
        position = self._position
        if position.offset != self.offset:
            position = self._position = Position(
                position.replid, self.offset, position.replid2, position.second_offset
            )
        return position

    def shift(self, new_id: str | None = None) -> Position:
        """Start a new history after a promotion, remembering the old one (PSYNC2).

        Replicas of the old master may continue from us up to and including the next
        offset they would have asked the old master for. ``new_id``: the id to continue
        under (a replica whose master was promoted adopts the master's); default a new
        one."""
        self._position = self.position().shifted(new_id or new_replid())
        return self._position

    def adopt(self, replid: str, offset: int) -> Position:
        """Take a master's history after a full sync (our old history is gone)."""
        self.publish()
        self.offset = offset
        self._position = Position(replid, offset)
        return self._position

    def restore(self, position: Position) -> None:
        """Continue from a persisted position (start-up, after recovery)."""
        self.publish()
        self.offset = position.offset
        self._position = position

    def truncate(self, offset: int) -> Position:
        """Move back to ``offset``: the records after it were removed (a history that
        diverged from the master's, repaired at the fork point).  The previous id is
        kept only while it still ends at or before the new offset."""
        self.publish()
        p = self._position
        keep = p.second_offset <= offset + 1
        self.offset = offset
        self._position = Position(
            p.replid, offset, p.replid2 if keep else NO_REPLID, p.second_offset if keep else -1
        )
        return self._position

    def settled(self) -> bool:
        """Nothing can wait to be written out before a reply: nothing listens (no WAL,
        replication log or replica stream, so no record was queued and none is buffered
        downstream) and no publish is scheduled (no reply is held). A front end may
        then write its reply at once instead of asking the node to flush first: a
        standalone node without persistence, always."""
        return not self._listeners and not self.flush_scheduled

    # ------------------------------------------------------------ listeners
    def subscribe(self, listener: RecordListener, batch: BatchListener | None = None) -> None:
        """Call ``listener(offset, record)`` for every record, or ``batch(first_offset,
        records)`` (if given) with consecutive records at once: a read's records on a
        master, a RECORDS frame on a replica."""
        self.publish()  # a new listener starts after what is committed now
        self._listeners.append(listener)
        self._batch_listeners.append(batch or _one_by_one(listener))

    def unsubscribe(self, listener: RecordListener) -> None:
        if listener in self._listeners:
            self.publish()
            index = self._listeners.index(listener)
            del self._listeners[index]
            del self._batch_listeners[index]

    # ------------------------------------------------------------ records
    def commit(self, ops: list[Op]) -> int:
        """Encode ``ops`` once as a record and give it the next offset; publish it now, or
        with the rest of the read's records (batching). Nothing is encoded when nothing
        listens (a standalone node without persistence)."""
        self.offset = offset = self.offset + 1
        if not self._listeners:
            return offset
        self._queue(offset, encode_record(ops))
        return offset

    def commit_set(self, key: bytes, value: bytes) -> int:
        """``commit([[OP_SET, key, value, 0]])``, the record built directly
        (:func:`~synap.store.effects.encode_set_record`): the SET fast path's commit."""
        self.offset = offset = self.offset + 1
        if self._listeners:
            self._queue(offset, encode_set_record(key, value))
        return offset

    def _queue(self, offset: int, record: bytes) -> None:
        """Publish ``record`` now, or queue it with the rest of the batch."""
        on_pending = self.on_pending
        if on_pending is None:
            for listener in self._listeners:
                listener(offset, record)
            return
        pending = self._pending
        if not pending:
            self._pending_first = offset
            on_pending()
        pending.append(record)

    def publish(self) -> None:
        """Hand the queued records to every listener: one batch call each, in order."""
        pending = self._pending
        if pending:
            self._pending = []
            first = self._pending_first
            for listener in self._batch_listeners:
                listener(first, pending)

    def commit_encoded_batch(self, first_offset: int, records: Sequence[bytes]) -> None:
        """Publish consecutive records received from the master (already applied), one
        call per listener. ``offset`` is already the last record's while they run."""
        if not records:
            return
        self.publish()
        self.offset = first_offset + len(records) - 1
        for listener in self._batch_listeners:
            listener(first_offset, records)


def _one_by_one(listener: RecordListener) -> BatchListener:
    def publish(first_offset: int, records: Sequence[bytes]) -> None:
        for offset, record in enumerate(records, first_offset):
            listener(offset, record)

    return publish
