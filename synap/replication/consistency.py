"""The node's consistency controls (docs/CONSISTENCY.md): the min-replicas write guard,
the stale-read guard, and the waits front ends run (WAIT, WAITAOF, HTTP ``"wait"``,
read-your-writes offsets) on top of the futures in :mod:`synap.replication.waiters`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from synap.commands.errors import MasterDownError, NoReplicasError
from synap.replication.waiters import (
    APPLIED,
    FSYNCED,
    AckWaiters,
    OffsetWaiters,
    majority_replicas,
    replicas_wanted,
    wait_future,
)

if TYPE_CHECKING:
    from synap.replication.host import ReplicationHost
    from synap.replication.manager import ReplicationManager

__all__ = [
    "APPLIED",
    "FSYNCED",
    "AckWaiters",
    "ConsistencyControls",
    "OffsetWaiters",
    "majority_replicas",
    "replicas_wanted",
    "wait_future",
]


def limit_plus_one(node: ReplicationHost) -> int:
    """A lag past any limit: no session, nothing known."""
    return node.config.replication.max_lag_ms + 1


class ConsistencyControls:
    """The node's consistency controls (docs/CONSISTENCY.md): min-replicas write guard,
    waiting for replica / fsync acknowledgements, read-your-writes offsets and the
    stale-read guard.  The command layer calls the guards; front ends call the waits."""

    def __init__(self, node: ReplicationHost, replication: ReplicationManager) -> None:
        self.node = node
        self.replication = replication
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
        server = self.replication.master_server
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
        link = self.replication.replica_link
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
        link = self.replication.replica_link
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
        server = self.replication.master_server
        attached = server.streaming_count() if server is not None and spec == "all" else 0
        return replicas_wanted(spec, self.group_size(), attached)

    def group_size(self) -> int | None:
        """The replication group's size, master included: with automatic failover, the
        members registered in etcd (refreshed every control round), never fewer than
        ``replication.group_size`` when that is set (a dead member drops out of etcd when
        its lease expires; the configured size keeps "majority" from shrinking with it);
        without etcd, ``replication.group_size``.  None: unknown."""
        configured = self.node.config.replication.group_size
        coordinator = self.node.elector
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
            server = self.replication.master_server
            kind = FSYNCED
            acked = server.count_acked(offset, kind) if server is not None else 0
            return False, acked
        server = self.replication.master_server
        kind = FSYNCED if fsync else APPLIED
        if server is None:
            return wanted <= 0, 0
        left = max(0.0, deadline - loop.time())
        acked = await server.wait_for_acks(offset, wanted, left, kind)
        return acked >= wanted, acked
