"""The replication backlog: the most recent effect records, addressed by offset.

Every write produces one effect record. The master appends it here, and the backlog
gives it the next offset. Offsets are consecutive integers starting at 1, and offset N
is the Nth record of the history named by the current replication id. A replica that
reconnects asking for "everything after offset N" can be served from here (a partial
sync) as long as record N+1 is still held. Otherwise it is fed from the WAL segments
on disk (the log itself, of which this is a cache of the newest records; see
:mod:`synap.persistence.logreader`) or, beyond those too, needs a full sync. The
replica keeps a backlog of its own, so that after a failover it can serve the others
(PSYNC2).

The backlog is bounded twice: by record count (the spec's "1M operations circular
buffer") and by bytes, so that a burst of large values cannot use unbounded memory.

Layout: a deque of *segments* (plain lists of records). Appends go to the last segment.
When it is full, a new one is started and whole old segments are dropped from the
left. Redis trims its backlog by whole blocks for the same reason (blocks are capped at
size/16, #11666). This keeps ``append`` to a list append plus one counter, and makes
any offset reachable in O(log segments) instead of walking a deque to the middle.
The one counter is the tail's *budget*: each record costs its length plus a fixed
charge (segment bytes / segment records), so one comparison enforces both segment
limits (a segment of small records fills by count, one of large records by bytes).
A sealed segment's records of 512 bytes or more are copied, once, into memory that a
forked child gets zeroed (:func:`synap.tightalloc.detach_many`, ``MADV_WIPEONFORK``), so
the ``fork()`` of a full sync does not copy those pages' tables (the child never reads
the log). Smaller records stay: copying costs ~30 ns each, a few % of a SET. The price of the
segments is granularity. Both bounds are hard upper limits (the byte bound is exceeded
by at most one record), but a full backlog may hold up to two segments less than the
bound: at most 2 x 1024 records fewer than ``max_ops`` (0.2 % of the default), and at
most 1/32 of ``max_bytes`` fewer.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Sequence

from synap.tightalloc import detach_many

# Spec: "Replication Log: 1M operations (circular buffer)".
DEFAULT_MAX_OPS = 1_000_000

# Spec: "Memory usage: ~100MB (assuming 100 bytes/op)". The op bound binds first for
# such writes. The byte bound is the safety net for large values (1M x 100 KB would be
# 100 GB). Counted as record payload bytes; CPython adds ~41 B per record on top.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024

# Segment size: at most 1024 records (or 1/16 of max_ops for tiny backlogs), and at most
# 1/64 of max_bytes. Smaller segments lose less history to granularity. Larger ones make
# the per-append bookkeeping rarer.
SEGMENT_RECORDS = 1024
SEGMENT_BYTES_FRACTION = 64

# Default size of one batch handed to a replica (one RECORDS frame).
DEFAULT_BATCH_RECORDS = 4096
DEFAULT_BATCH_BYTES = 1024 * 1024


class OffsetNotInBacklog(LookupError):
    """The requested offset was evicted, or lies beyond the newest record."""


class ReplicationBacklog:
    """A bounded log of effect records, addressed by offset.

    ``first_offset``..``last_offset`` are the records held. When nothing is held (new,
    just reset, or everything evicted), ``first_offset == last_offset + 1``.
    ``last_offset`` is the master offset: the offset of the newest record ever appended,
    or the value given to :meth:`reset` if nothing has been appended since.
    """

    __slots__ = (
        "max_ops",
        "max_bytes",
        "_seg_records",
        "_seg_bytes",
        "_segments",
        "_bases",
        "_sealed_bytes",
        "_tail",
        "_tail_base",
        "_budget",
        "_charge",
        "_start_budget",
    )

    def __init__(
        self,
        max_ops: int = DEFAULT_MAX_OPS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        last_offset: int = 0,
    ) -> None:
        if max_ops < 1 or max_bytes < 1:
            raise ValueError("backlog bounds must be positive")
        self.max_ops = max_ops
        self.max_bytes = max_bytes
        self._seg_records = max(1, min(SEGMENT_RECORDS, max_ops // 16))
        self._seg_bytes = max(1, max_bytes // SEGMENT_BYTES_FRACTION)
        # A record costs len + _charge of the budget. A tail takes records while its
        # budget is not negative, so with this start it holds at most _seg_records records
        # and at most _seg_bytes - _charge bytes plus the one record that exhausts it.
        self._charge = max(1, self._seg_bytes // self._seg_records)
        self._start_budget = min(self._seg_bytes, self._seg_records * self._charge) - self._charge
        self.reset(last_offset)

    def reset(self, last_offset: int) -> None:
        """Forget every record. History now ends at ``last_offset``; the next append gets ``last_offset + 1``.

        A replica calls this after a full sync at offset O (``reset(O)``), and a
        master on start-up at its persisted offset.
        """
        if last_offset < 0:
            raise ValueError("offsets are non-negative")
        self._tail: list[bytes] = []
        self._segments: deque[list[bytes]] = deque([self._tail])
        # _bases[i] is the offset of _segments[i][0] (or where it will be, for the tail).
        self._bases: deque[int] = deque([last_offset + 1])
        self._sealed_bytes = 0  # payload bytes in every segment except the tail
        self._tail_base = last_offset + 1
        self._budget = self._start_budget  # the tail is full once this is negative

    # -- appending ---------------------------------------------------------------------

    def append(self, record: bytes) -> None:
        """Add one record; it gets offset ``last_offset`` (the previous one + 1)."""
        # The tail is sealed lazily, by the first append that finds it full, so an
        # eviction never runs until room is actually needed. The hot path of every
        # write on a master: one comparison, one list append, one counter.
        if self._budget < 0:
            self._roll()
        self._tail.append(record)
        self._budget -= len(record) + self._charge

    def extend(self, records: Sequence[bytes]) -> int:
        """Append several records; returns the offset of the last one.

        Same result as calling :meth:`append` for each record, in one call (a master
        appends one read's records, a replica whole RECORDS batches); a small batch that
        fits the tail goes in with one list extend.
        """
        if not isinstance(records, list | tuple):
            records = list(records)
        n = len(records)
        charge = self._charge
        total = sum(map(len, records)) + charge * n  # (one C-level pass)
        if total <= self._budget:  # the common case (an iteration's records): all fit the tail
            self._tail += records
            self._budget -= total
            return self._tail_base + len(self._tail) - 1
        # A large batch (a replica's RECORDS frame), one record at a time, as append()
        # does: compiled, this loop is cheaper than slicing with cumulative costs.
        tail = self._tail
        budget = self._budget
        for record in records:
            if budget < 0:
                self._budget = budget
                self._roll()
                tail = self._tail
                budget = self._budget
            tail.append(record)
            budget -= len(record) + charge
        self._budget = budget
        return self.last_offset

    def _roll(self) -> None:
        """Seal the full tail, start a new one, and evict old segments to make room for it."""
        # Never called on an empty tail: a fresh tail's budget is not negative.
        tail = self._tail
        # Sealed records move out of what a full sync's fork() copies (tightalloc).
        self._segments[-1] = detach_many(tail)
        self._sealed_bytes += self._start_budget - self._budget - self._charge * len(tail)
        self._tail_base += len(tail)
        self._tail = []
        self._segments.append(self._tail)
        self._bases.append(self._tail_base)
        self._budget = self._start_budget
        # Room for a complete new tail: afterwards the bounds hold until the next roll.
        max_sealed_ops = self.max_ops - self._seg_records
        max_sealed_bytes = self.max_bytes - self._seg_bytes
        segments = self._segments
        bases = self._bases
        while len(segments) > 1 and (
            self._tail_base - bases[0] > max_sealed_ops or self._sealed_bytes > max_sealed_bytes
        ):
            self._sealed_bytes -= sum(map(len, segments.popleft()))
            bases.popleft()

    # -- reading -----------------------------------------------------------------------

    @property
    def first_offset(self) -> int:
        """Offset of the oldest record held (``last_offset + 1`` when empty)."""
        # Sealed segments are never empty, so the first base is the oldest record, or,
        # when only the (possibly empty) tail is left, the offset its first record will get.
        return self._bases[0]

    @property
    def last_offset(self) -> int:
        """Offset of the newest record: the master offset."""
        return self._tail_base + len(self._tail) - 1

    def __len__(self) -> int:
        return self.last_offset - self.first_offset + 1

    @property
    def nbytes(self) -> int:
        """Payload bytes of the records held."""
        tail_bytes = self._start_budget - self._budget - self._charge * len(self._tail)
        return self._sealed_bytes + tail_bytes

    def can_serve_from(self, next_offset: int) -> bool:
        """Can a replica whose next wanted record is ``next_offset`` be served from here?

        True when records ``next_offset..last_offset`` are all held. That includes
        ``next_offset == last_offset + 1``: nothing is missing, and the replica simply
        waits for new writes. (Redis: ``backlog_off <= psync_offset <= backlog_off + histlen``.)
        """
        return self.first_offset <= next_offset <= self.last_offset + 1

    def records_from(
        self,
        next_offset: int,
        max_count: int = DEFAULT_BATCH_RECORDS,
        max_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> list[bytes]:
        """Up to ``max_count`` consecutive records starting at ``next_offset``.

        The batch stops before it would exceed ``max_bytes``, but always holds at least
        one record when any is available, so that a single record larger than
        ``max_bytes`` can still be sent. Returns ``[]`` when ``next_offset`` is
        ``last_offset + 1``. Raises :class:`OffsetNotInBacklog` when the records were
        evicted (the replica needs a full sync) or lie in the future.

        Cost is O(log segments + records returned), wherever the offset falls.
        """
        first = self.first_offset
        last = self.last_offset
        if not first <= next_offset <= last + 1:
            if next_offset < first:
                raise OffsetNotInBacklog(
                    f"offset {next_offset} no longer in the log (log starts at {first})"
                )
            raise OffsetNotInBacklog(f"offset {next_offset} is beyond the newest record {last}")
        if max_count < 1 or next_offset > last:
            return []
        segments = self._segments
        if next_offset >= self._tail_base:  # the common case: a replica that is nearly caught up
            index = len(segments) - 1
        else:
            index = bisect.bisect_right(self._bases, next_offset) - 1
        start = next_offset - self._bases[index]
        out: list[bytes] = []
        remaining = max_count
        for segment in itertools.islice(segments, index, None):
            piece = segment[start : start + remaining]
            out += piece
            remaining -= len(piece)
            if remaining <= 0:
                break
            start = 0
        sizes = list(itertools.accumulate(map(len, out)))
        if sizes and sizes[-1] > max_bytes:
            del out[max(1, bisect.bisect_right(sizes, max_bytes)) :]
        return out
