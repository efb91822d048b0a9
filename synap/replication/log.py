"""The replication log: the in-memory backlog fed by the node's history, refilled from
the WAL at start-up, and the bounds a partial sync can be served from (memory and the
WAL segments on disk).

Only masters and replicas keep one (Redis, too, allocates its backlog only once
replication starts): a standalone node pays neither the memory nor the append on its
write path, so the log subscribes to the history only while :meth:`enable` is on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from synap.replication.backlog import ReplicationBacklog

if TYPE_CHECKING:
    from synap.persistence.manager import Persistence
    from synap.store.history import History

log = logging.getLogger("synap.replication")


@dataclass(frozen=True, slots=True)
class LogBounds:
    """First and last offset a partial sync can be served from (disk and memory)."""

    first_offset: int
    last_offset: int


class ReplicationLog:
    def __init__(
        self,
        history: History,
        persistence: Persistence | None,
        max_ops: int,
        max_bytes: int,
        on_append: Callable[[], None],
    ) -> None:
        """``on_append``: called after records were added (the master server batches
        them to its replicas)."""
        self.history = history
        self.persistence = persistence
        self.backlog = ReplicationBacklog(max_ops, max_bytes)
        self._on_append = on_append
        self._seed: list[tuple[int, bytes]] = []  # WAL records to refill the log at start
        self.enabled = False

    # ------------------------------------------------------------ history listeners
    def _on_record(self, offset: int, record: bytes) -> None:
        self.backlog.append(record)
        self._on_append()

    def _on_records(self, first_offset: int, records: Sequence[bytes]) -> None:
        """A replica applied a whole batch from its master."""
        self.backlog.extend(records)
        self._on_append()

    def enable(self) -> None:
        if not self.enabled:
            self.backlog.reset(self.history.offset)
            self.history.subscribe(self._on_record, self._on_records)
            self.enabled = True

    def disable(self) -> None:
        if self.enabled:
            self.history.unsubscribe(self._on_record)
            self.backlog.reset(self.history.offset)  # frees the records
            self.enabled = False

    # ------------------------------------------------------------ seeding
    def seed(self, records: list[tuple[int, bytes]]) -> None:
        """Records recovered from the WAL (contiguous offsets), to refill the log at start."""
        self._seed = records

    def start(self, keep: bool) -> None:
        """Start empty at the history's offset; ``keep``: this role keeps a log, so
        subscribe and refill it with the seeded records that end at our offset."""
        self.backlog.reset(self.history.offset)
        seed = self._seed
        self._seed = []
        if not keep:
            return
        self.enable()
        start = len(seed)
        while start > 0 and seed[start - 1][0] == self.history.offset - (len(seed) - start):
            start -= 1
        seed = seed[start:]
        if seed:
            self.backlog.reset(seed[0][0] - 1)
            self.backlog.extend([record for _, record in seed])
            log.info(
                "replication log refilled from the WAL: offsets %d..%d",
                self.backlog.first_offset, self.backlog.last_offset,
            )  # fmt: skip

    # ------------------------------------------------------------ bounds
    def disk_log_bounds(self) -> tuple[int, int] | None:
        """``(first, last)`` offsets servable from the WAL segments, or None."""
        p = self.persistence
        if p is None or not self.enabled:
            return None
        bounds = p.disk_log_bounds()
        if bounds is None or bounds[0] > bounds[1] + 1:
            return None
        # The disk serves only a run that reaches the memory log (it always does while
        # the WAL is active: every record is written to both).
        if bounds[1] + 1 < self.backlog.first_offset:
            return None
        return bounds

    def log_bounds(self) -> LogBounds:
        """What a partial sync can be served from: the segments, then the memory log."""
        first = self.backlog.first_offset
        disk = self.disk_log_bounds()
        if disk is not None:
            first = min(first, disk[0])
        return LogBounds(first, self.backlog.last_offset)
