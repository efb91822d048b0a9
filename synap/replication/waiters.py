"""Waiting without polling: replica ACKs and offsets, as asyncio futures.

* :class:`AckWaiters` holds the writers waiting for "N replicas acknowledged offset X"
  (``WAIT``, ``WAITAOF``, HTTP ``"wait"``).  Waiters are grouped by how many replicas
  they want, each group a heap ordered by offset, so one ACK resolves every satisfied
  waiter at once: with the replicas' acknowledged offsets sorted high to low, a waiter
  for ``n`` replicas at offset ``x`` is done exactly when the ``n``-th highest is >= x.
  Thousands of waiters cost one sort of the replicas and the pops that succeed per ACK.
* :class:`OffsetWaiters` holds readers waiting until this node has applied an offset
  (``min_offset`` reads, ``SYNAP.WAITOFFSET``); :meth:`OffsetWaiters.advance` is called
  as records are committed.
* :func:`replicas_wanted` turns a wait spec (``N``, ``"majority"``, ``"all"``) into a
  replica count.

No sockets: the master server (synap/replication/master.py) and the consistency
controls (synap/replication/consistency.py) feed them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Iterable

from synap.commands.errors import CommandError

# Which acknowledged offset a waiter counts: applied (WAIT) or fsynced to a WAL (WAITAOF).
APPLIED = 0
FSYNCED = 1

_Entry = tuple[int, int, "asyncio.Future[None]"]


class AckWaiters:
    """Futures resolved when enough replicas acknowledge an offset."""

    def __init__(self) -> None:
        # (kind, wanted) -> heap of (offset, seq, future)
        self._groups: dict[tuple[int, int], list[_Entry]] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return sum(len(h) for h in self._groups.values())

    def __bool__(self) -> bool:
        return bool(self._groups)

    def add(self, kind: int, wanted: int, offset: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(
            self._groups.setdefault((kind, wanted), []), (offset, next(self._seq), future)
        )
        return future

    def resolve(self, offsets_of: Callable[[int], Iterable[int]]) -> int:
        """Resolve the satisfied waiters; ``offsets_of(kind)`` gives each streaming
        replica's acknowledged offset of that kind.  Returns how many were resolved."""
        done = 0
        sorted_by_kind: dict[int, list[int]] = {}
        for (kind, wanted), heap in list(self._groups.items()):
            acks = sorted_by_kind.get(kind)
            if acks is None:
                acks = sorted_by_kind[kind] = sorted(offsets_of(kind), reverse=True)
            if len(acks) < wanted:
                self._drop_cancelled(kind, wanted, heap)
                continue
            threshold = acks[wanted - 1]
            while heap and heap[0][0] <= threshold:
                _, _, future = heapq.heappop(heap)
                if not future.done():
                    future.set_result(None)
                    done += 1
            self._drop_cancelled(kind, wanted, heap)
        return done

    def _drop_cancelled(self, kind: int, wanted: int, heap: list[_Entry]) -> None:
        # Waiters that timed out cancel their future; forget them once they reach the top.
        while heap and heap[0][2].done():
            heapq.heappop(heap)
        if not heap:
            del self._groups[(kind, wanted)]

    def release_all(self) -> None:
        """Wake everyone (the server stops): each counts what it got."""
        for heap in self._groups.values():
            for _, _, future in heap:
                if not future.done():
                    future.set_result(None)
        self._groups.clear()


class OffsetWaiters:
    """Futures resolved once the node's history reaches an offset."""

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)

    def add(self, offset: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (offset, next(self._seq), future))
        return future

    def advance(self, offset: int) -> None:
        heap = self._heap
        while heap and (heap[0][0] <= offset or heap[0][2].done()):
            _, _, future = heapq.heappop(heap)
            if not future.done():
                future.set_result(None)


async def wait_future(future: asyncio.Future[None], timeout_s: float | None) -> bool:
    """Await ``future`` up to ``timeout_s`` (None: forever); False on timeout (the future
    is cancelled, so its waiter list drops it)."""
    try:
        await asyncio.wait_for(future, timeout_s)
    except TimeoutError:
        return False
    return True


def majority_replicas(group_size: int) -> int:
    """Replicas a majority of a ``group_size`` group needs besides the master."""
    return group_size // 2 + 1 - 1


def replicas_wanted(spec: int | str, group_size: int | None, attached: int) -> int:
    """A wait spec as a replica count.

    ``"majority"``: a majority of the group counting the master; the group's size comes
    from ``replication.group_size`` (seam: automatic failover's etcd membership will
    pass its size here instead).  ``"all"``: every other member of the group, or, with
    no group size known, every replica attached right now."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec < 0:
            raise CommandError("ERR wait.replicas must be >= 0, 'majority' or 'all'")
        return spec
    if spec == "majority":
        if group_size is None:
            raise CommandError(
                "ERR wait.replicas 'majority' needs the replication group's size: set "
                "replication.group_size (the number of nodes, master included)"
            )
        return majority_replicas(group_size)
    if spec == "all":
        return group_size - 1 if group_size is not None else attached
    raise CommandError("ERR wait.replicas must be a non-negative integer, 'majority' or 'all'")
