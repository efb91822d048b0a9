"""Consistency controls: waiting for replica ACKs and for offsets, without polling.

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

Pure asyncio futures, no sockets: the master server and the node feed them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from synap.commands.errors import CommandError, MasterDownError, NoReplicasError

if TYPE_CHECKING:
    from synap.node import Node

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


def limit_plus_one(node: Node) -> int:
    """A lag past any limit: no session, nothing known."""
    return node.config.replication.max_lag_ms + 1


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


class ConsistencyControls:
    """The node's consistency controls (docs/CONSISTENCY.md): min-replicas write guard,
    waiting for replica / fsync acknowledgements, read-your-writes offsets and the
    stale-read guard.  The command layer calls the guards; front ends call the waits."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.offsets = OffsetWaiters()  # readers waiting for the history to reach an offset
        self.fsyncs = OffsetWaiters()  # writers waiting for the local WAL fsync
        self._listening = False
        self.install_guards()
        if node.persistence is not None:
            node.persistence.fsync_listeners.append(self._on_fsynced)

    # ------------------------------------------------------------ guards
    def install_guards(self) -> None:
        """Put the write and read guards the configuration asks for into the command
        layer (re-run after CONFIG SET).  Without them the hot paths pay nothing."""
        node = self.node
        cfg = node.config.replication
        commands = node.commands
        # As in Redis, min-replicas-max-lag 0 turns the check off too.
        if cfg.min_replicas_to_write > 0 and cfg.min_replicas_max_lag_secs > 0:
            commands.check_writable = self._check_writable_min_replicas
        else:
            commands.check_writable = node.roles.check_writable
        commands.check_readable = self._check_readable
        commands.guard_reads = not cfg.serve_stale_reads

    def good_replicas(self) -> int:
        server = self.node.replication.master_server
        if server is None:
            return 0
        return server.good_replicas(self.node.config.replication.min_replicas_max_lag_secs)

    def _check_writable_min_replicas(self) -> None:
        node = self.node
        node.roles.check_writable()
        cfg = node.config.replication
        wanted = cfg.min_replicas_to_write
        if wanted <= 0:
            return
        good = self.good_replicas()
        if good < wanted:
            raise NoReplicasError(good, wanted, cfg.min_replicas_max_lag_secs)

    def _check_readable(self) -> None:
        """With ``serve_stale_reads: false``, a replica whose link is down or whose lag
        is over ``max_lag_ms`` refuses reads (Redis replica-serve-stale-data no)."""
        node = self.node
        if node.config.replication.serve_stale_reads or not node.roles.is_replica:
            return
        link = node.replication.replica_link
        if link is None or not link.connected:
            raise MasterDownError("the link with the master is down")
        conn = link.connection
        lag = conn.session.lag_ms if conn is not None else limit_plus_one(node)
        limit = node.config.replication.max_lag_ms
        if lag > limit:
            raise MasterDownError(
                f"replication lag {lag} ms is over replication.max_lag_ms ({limit} ms)"
            )

    # ------------------------------------------------------------ offsets
    def _on_commit(self, offset: int, record: bytes) -> None:
        self.offsets.advance(offset)

    def _on_commit_batch(self, first: int, records: Sequence[bytes]) -> None:
        self.offsets.advance(first + len(records) - 1)

    def offset_changed(self) -> None:
        """The history jumped without a commit (a full sync installed a dataset)."""
        if self.offsets:
            self.offsets.advance(self.node.history.offset)

    async def wait_offset(self, offset: int, timeout_ms: int) -> bool:
        """True once this node has applied ``offset`` (at once if it has), False after
        ``timeout_ms`` (0: don't wait).  Woken by commits, no polling."""
        history = self.node.history
        if history.offset >= offset:
            return True
        if timeout_ms <= 0:
            return False
        if not self._listening:
            history.subscribe(self._on_commit, self._on_commit_batch)
            self._listening = True
        try:
            await wait_future(self.offsets.add(offset), timeout_ms / 1000)
        finally:
            self.offsets.advance(history.offset)  # also drops cancelled waiters on top
            if not self.offsets and self._listening:
                history.unsubscribe(self._on_commit)
                self._listening = False
        return history.offset >= offset

    # ------------------------------------------------------------ fsync
    def _on_fsynced(self, offset: int) -> None:
        self.fsyncs.advance(offset)
        # A replica: tell the master at once (WAITAOF waits for this).
        link = self.node.replication.replica_link
        conn = link.connection if link is not None else None
        if conn is not None:
            conn.send_ack()

    def local_fsynced(self) -> int:
        p = self.node.persistence
        return 0 if p is None else p.fsynced_offset

    async def wait_local_fsync(self, offset: int, timeout_s: float | None) -> bool:
        if self.local_fsynced() >= offset:
            return True
        await wait_future(self.fsyncs.add(offset), timeout_s)
        return self.local_fsynced() >= offset

    # ------------------------------------------------------------ writes
    def replicas_wanted(self, spec: int | str) -> int:
        if type(spec) is int:
            return replicas_wanted(spec, None, 0)
        server = self.node.replication.master_server
        attached = server.streaming_count() if server is not None and spec == "all" else 0
        return replicas_wanted(spec, self.group_size(), attached)

    def group_size(self) -> int | None:
        """The replication group's size, master included: with automatic failover, the
        members registered in etcd (refreshed every control round), never fewer than
        ``replication.group_size`` when that is set (a dead member drops out of etcd when
        its lease expires; the configured size keeps "majority" from shrinking with it);
        without etcd, ``replication.group_size``.  None: unknown."""
        configured = self.node.config.replication.group_size
        coordinator = getattr(self.node, "coordinator", None)
        members = len(coordinator.members) if coordinator is not None else 0
        if members:
            return max(members, configured or 0)
        return configured

    async def wait_replicas(
        self, offset: int, wanted: int, timeout_ms: int, *, fsync: bool = False
    ) -> tuple[bool, int]:
        """Wait until ``wanted`` replicas acknowledged ``offset`` (fsynced it, with
        ``fsync``; then the local WAL must have fsynced it too).  Returns (enough, how
        many replicas acknowledged)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        if fsync and not await self.wait_local_fsync(offset, timeout_ms / 1000):
            server = self.node.replication.master_server
            kind = FSYNCED
            acked = server.count_acked(offset, kind) if server is not None else 0
            return False, acked
        server = self.node.replication.master_server
        kind = FSYNCED if fsync else APPLIED
        if server is None:
            return wanted <= 0, 0
        left = max(0.0, deadline - loop.time())
        acked = await server.wait_for_acks(offset, wanted, left, kind)
        return acked >= wanted, acked
