"""The node's persistence: recovery at start, the WAL while serving, snapshots on a timer.

What the node calls, in order::

    p = Persistence(data_dir, fsync_mode, fsync_interval_ms, snapshot_interval_secs)
    p.open()                              # lock the data directory
    state = p.recover(keyspace)           # newest valid snapshot + WAL replay
    history.subscribe(p.append, p.append_batch)  # every committed record
    ...                                   # per loop iteration, before the replies:
    p.flush()                             #   group commit (fsync too in 'always' mode)
    task = create_task(p.run_periodic(keyspace, history.position))
    await p.reset(keyspace, position)     # a replica after a full sync
    task.cancel(); await p.close(keyspace, position)

A *position* is the history's :class:`~synap.store.history.Position` (id, offset and
the previous id), passed whole.

Rules this module keeps (see also the invariant in :mod:`synap.persistence`):

* Every WAL segment on disk follows a snapshot.  A new data directory therefore starts
  with an empty snapshot at offset 0; a directory with WAL records but no snapshot at
  all is refused (the base those records apply to is gone).
* A snapshot copies the keyspace and rotates the WAL (new segment at ``offset + 1``) in
  one synchronous step on the event loop, then writes the copy in a worker thread.
  Records appended meanwhile go to the new segment, so nothing is lost or doubled.
* WAL segments are kept back to the *oldest* retained snapshot, not the newest: if the
  newest snapshot turns out damaged, the previous one plus the WAL still rebuilds the
  complete dataset.
* Replacing the history (full sync) never leaves a moment where a crash would replay
  records of one history on a snapshot of another; see :meth:`Persistence.reset`.
* Replication ids are stored only in snapshots.  After a promotion (new replid) take a
  snapshot if the new id must survive a restart; otherwise recovery reports the id of
  the last snapshot with the offset of the last record.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synap.clock import now_ms
from synap.persistence import PersistenceError, fsync_directory
from synap.persistence.lock import DataDirLock
from synap.persistence.snapshot import (
    KEEP_SNAPSHOTS,
    SnapshotData,
    commit_snapshot,
    list_snapshots,
    load_newest_snapshot,
    prune_snapshots,
    remove_temp_files,
    write_snapshot,
    write_snapshot_temp,
)
from synap.persistence.wal import (
    DEFAULT_SEGMENT_MAX_BYTES,
    WAL_MAGIC,
    FsyncMode,
    WriteAheadLog,
    iter_segment,
    list_segments,
)
from synap.store.effects import CorruptRecord, apply_record
from synap.store.history import NO_REPLID, Position
from synap.store.keyspace import Keyspace

logger = logging.getLogger(__name__)


def _stored(position: Position) -> tuple[str | None, str]:
    """``(replid, replid2)`` as a snapshot stores them (None: no id yet)."""
    return position.replid or None, position.replid2


def _position_of(snap: SnapshotData) -> Position:
    """The position a snapshot records (no id: an empty one, as before the first id)."""
    if snap.replid2 is None:
        return Position(snap.replid or "", snap.offset)
    return Position(snap.replid or "", snap.offset, snap.replid2, snap.second_offset)


@dataclass(frozen=True)
class RecoveredState:
    replid: str | None  # None: no snapshot carried an id (new directory): pick a new one
    offset: int  # offset of the last record in the recovered keyspace
    replid2: str  # NO_REPLID: none
    second_offset: int
    records_replayed: int  # WAL records applied on top of the snapshot
    snapshot_file: Path | None  # the snapshot loaded; None for a new data directory
    # False when replay stopped before the end of the WAL (corruption or a gap): the
    # node has a consistent prefix of its history and later records were set aside.
    complete: bool = True
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class LogRetention:
    """How much of the log to keep beyond what the snapshots need (None: no such limit).

    A segment is deleted once any configured limit says it is out of the window and no
    kept snapshot needs it; see :meth:`WriteAheadLog.apply_retention`."""

    max_bytes: int | None = None
    max_records: int | None = None
    max_age_secs: float | None = None


# Without a retention, segments go as soon as the kept snapshots cover them.
NO_RETENTION = LogRetention(max_bytes=0)


def retention_from_config(cfg: Any) -> LogRetention:
    """``persistence.log_retention`` (max_mb, max_age_secs, max_records) as a LogRetention."""
    return LogRetention(
        max_bytes=None if cfg.max_mb is None else cfg.max_mb * 1024 * 1024,
        max_records=cfg.max_records,
        max_age_secs=cfg.max_age_secs,
    )


# How often the age/size retention is checked between snapshots.
RETENTION_CHECK_SECS = 5.0


class Persistence:
    """Data directory of one node: lock, recovery, WAL appends and snapshots."""

    def __init__(
        self,
        directory: Path,
        fsync_mode: str = "periodic",
        fsync_interval_ms: int = 1000,
        snapshot_interval_secs: float = 300,
        *,
        keep_snapshots: int = KEEP_SNAPSHOTS,
        segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES,
        retention: LogRetention = NO_RETENTION,
    ) -> None:
        if fsync_interval_ms <= 0:
            raise ValueError("fsync_interval_ms must be positive")
        if snapshot_interval_secs < 0:
            raise ValueError("snapshot_interval_secs must be >= 0 (0 disables the timer)")
        if keep_snapshots < 1:
            raise ValueError("keep_snapshots must be >= 1")
        self.directory = Path(directory)
        self.fsync_mode = FsyncMode.parse(fsync_mode)
        self.fsync_interval_ms = fsync_interval_ms
        self.snapshot_interval_secs = snapshot_interval_secs
        self.keep_snapshots = keep_snapshots
        self.wal = WriteAheadLog(self.directory, self.fsync_mode, segment_max_bytes)
        self.retention = retention
        # Offsets below this are not served from disk: a segment holding them was found
        # damaged while a replica was being fed (see damaged_segment()).
        self.log_unreadable_before = 0
        self.damaged_segments: list[str] = []
        # The offset of the last record fsynced to the WAL, and who hears of it (WAITAOF).
        self.fsynced_offset = 0
        self.fsync_listeners: list[Callable[[int], None]] = []
        self._always = self.fsync_mode is FsyncMode.ALWAYS
        self._dir_lock = DataDirLock(self.directory)
        self._snapshot_lock = asyncio.Lock()
        self._snapshot_task: asyncio.Task[None] | None = None
        self._snapshotted: Position | None = None  # position of the newest durable snapshot
        self._rebase_generation = 0  # the newest pending rebase; older ones give up
        # Offset + 1 of the oldest kept snapshot: segments before it may go (retention).
        self._first_needed: int | None = None
        # Monitoring counters (INFO persistence, /metrics).
        self.snapshots_written = 0
        self.snapshot_failures = 0
        self.last_snapshot_ms = 0
        self.last_snapshot_duration_ms = 0
        self.records_replayed = 0
        self.recovery_ms = 0

    # ------------------------------------------------------------------ start
    def open(self) -> None:
        """Lock the data directory (creating it) and clear leftovers of a crashed write."""
        self._dir_lock.acquire()
        try:
            for path in remove_temp_files(self.directory):
                logger.info("removed unfinished snapshot %s", path.name)
        except OSError as exc:
            raise PersistenceError(f"cannot clean data directory {self.directory}: {exc}") from exc

    def recover(
        self,
        keyspace: Keyspace,
        on_record: Callable[[int, bytes], None] | None = None,
        seed_records: int | None = None,
    ) -> RecoveredState:
        """Load the newest valid snapshot into ``keyspace``, replay the WAL after it, and
        open the WAL for appends at the next offset.

        ``on_record(offset, record)`` sees every replayed record (the node refills its
        replication log with them, so replicas can partial-sync after a restart); of the
        records the snapshot covers, segments wholly older than the newest
        ``seed_records`` (as of the snapshot) are not read for it.

        Raises PersistenceError only when the directory cannot give a trustworthy
        dataset (see the module docstring); damaged WAL tails are repaired and logged."""
        if not self._dir_lock.held:
            raise RuntimeError("call open() before recover()")
        started = time.monotonic()
        loaded = load_newest_snapshot(self.directory)
        if loaded is None:
            snap, snapshot_file = self._start_new_directory(), None
        else:
            snap, snapshot_file = loaded
        keyspace.replace(snap.data, snap.expires, snap.json_keys)
        offset = snap.offset
        replayed = 0
        if on_record is not None:
            # Records the snapshot already covers (segments are kept back to the older
            # snapshot) are read, not applied: they only refill the replication log.
            segments = list_segments(self.directory)
            oldest_wanted = snap.offset - seed_records + 1 if seed_records else 0
            for index, segment in enumerate(segments):
                if segment.first_offset > snap.offset:
                    break
                following = segments[index + 1].first_offset if index + 1 < len(segments) else None
                if following is not None and following <= oldest_wanted:
                    continue  # all older than what the memory log will keep
                for record_offset, record in iter_segment(segment.path):
                    if record_offset > snap.offset:
                        break
                    on_record(record_offset, record)
        for record_offset, record in self.wal.replay(after=snap.offset):
            try:
                apply_record(keyspace, record)
            except CorruptRecord as exc:
                # It passed its checksum, so it is what was written: this server cannot
                # interpret it (another version?).  Guessing would corrupt the dataset.
                raise PersistenceError(
                    f"WAL record at offset {record_offset} in {self.directory} passed its "
                    f"checksum but cannot be applied ({exc}); was the directory written by "
                    f"another synap version? Start that version, or move the directory "
                    f"aside to start empty"
                ) from exc
            offset = record_offset
            replayed += 1
            if on_record is not None:
                on_record(record_offset, record)
        report = self.wal.last_replay
        self.wal.open_for_append(offset + 1)
        self._snapshotted = _position_of(snap)
        kept = list_snapshots(self.directory)
        self._first_needed = kept[0][0] + 1 if kept else None
        self.records_replayed = replayed
        self.recovery_ms = int((time.monotonic() - started) * 1000)
        logger.info(
            "recovered %d keys at offset %d from %s + %d WAL records in %d ms",
            len(keyspace),
            offset,
            snapshot_file.name if snapshot_file else "a new data directory",
            replayed,
            self.recovery_ms,
        )
        return RecoveredState(
            replid=snap.replid,
            offset=offset,
            replid2=snap.replid2 or NO_REPLID,  # None in files from before NO_REPLID
            second_offset=snap.second_offset if snap.replid2 else -1,
            records_replayed=replayed,
            snapshot_file=snapshot_file,
            complete=report.complete,
            problems=tuple(report.problems),
        )

    def _start_new_directory(self) -> SnapshotData:
        """No snapshot: a new directory gets an empty base snapshot at offset 0."""
        segments = list_segments(self.directory)
        if any(seg.size > len(WAL_MAGIC) for seg in segments):
            raise PersistenceError(
                f"{self.directory} holds WAL segments but no snapshot: the snapshot they "
                f"apply to is gone, so replaying them would build a wrong dataset. Restore "
                f"the snapshot files from a backup, or move the directory aside to start "
                f"the node empty"
            )
        base = SnapshotData({}, {}, None, 0, None, -1)
        try:
            for seg in segments:  # empty leftovers of an interrupted start
                seg.path.unlink()
            write_snapshot(
                self.directory, {}, {}, replid=None, offset=0, replid2=None, second_offset=-1
            )
        except OSError as exc:
            raise PersistenceError(
                f"cannot initialise data directory {self.directory}: {exc}"
            ) from exc
        logger.info("new data directory %s", self.directory)
        return base

    # ------------------------------------------------------------------ writes
    def append(self, offset: int, record: bytes) -> None:
        """Buffer one committed record (subscribe this to the history).

        ``wal.append`` is the same without one call layer, for the hottest paths."""
        self.wal.append(offset, record)

    def append_batch(self, first_offset: int, records: Sequence[bytes]) -> None:
        """Buffer consecutive committed records (the history's batch listener)."""
        if records:
            self.wal.append_batch(first_offset, records)

    def flush(self) -> None:
        """Group commit: write the batch's records (fsync in 'always' mode) before replying."""
        wal = self.wal
        wal.flush()
        if self._always and wal.last_offset is not None and wal.last_offset != self.fsynced_offset:
            self._fsynced(wal.last_offset)

    def set_fsync_mode(self, mode: str | FsyncMode) -> None:
        """Switch the fsync policy at run time (``CONFIG SET appendfsync``).  Everything
        written so far is fsynced first, so no record loses the promise of the policy it
        was written under; raises :class:`PersistenceError` if that fsync fails."""
        new = FsyncMode.parse(mode)
        if new is self.fsync_mode:
            return
        self.wal.flush()
        self.wal.fsync()
        last = self.wal.last_offset
        if last is not None and last != self.fsynced_offset:
            self._fsynced(last)
        self.fsync_mode = new
        self.wal.mode = new
        self._always = new is FsyncMode.ALWAYS
        logger.info("fsync policy is now %s", new.value)

    def _fsynced(self, offset: int) -> None:
        """The WAL holds every record up to ``offset`` on disk (WAITAOF counts this)."""
        if not self.wal.is_active:
            return
        self.fsynced_offset = offset
        for listener in self.fsync_listeners:
            listener(offset)

    # --------------------------------------------------------------- snapshots
    async def snapshot(self, keyspace: Keyspace, position: Position) -> Path | None:
        """Write a snapshot of ``keyspace`` at ``position`` while the server keeps serving.

        The keyspace is copied when this is *called* (before its first await), so
        ``position.offset`` must be the offset of the last record applied to ``keyspace``
        at that moment.  Returns the file, or None if a later snapshot superseded this one before
        it was installed (only while the history is being replaced).  Raises
        PersistenceError if the file cannot be written: nothing is lost, the WAL still
        holds every record, and a later snapshot retries."""
        offset = position.offset
        replid, replid2 = _stored(position)
        if not self.wal.is_active:
            # No segment of the current history exists yet (a reset is pending or failed):
            # this snapshot must become the base of a new WAL.
            return await self._rebase(keyspace, position)
        if self.wal.last_offset is not None and self.wal.last_offset > offset:
            raise ValueError(
                f"snapshot offset {offset} is behind the WAL (last record "
                f"{self.wal.last_offset}): pass the offset of the keyspace being copied"
            )
        # One synchronous step, no await in between: the copy is exactly the keyspace at
        # `offset`, and every record after it lands in the new segment.
        self.wal.start_new_segment(offset + 1)
        data, expires = dict(keyspace.data), dict(keyspace.expires)
        json_keys = set(keyspace.json_keys)
        async with self._snapshot_lock:
            started = time.monotonic()
            try:
                path = await asyncio.to_thread(
                    write_snapshot,
                    self.directory,
                    data,
                    expires,
                    replid=replid,
                    offset=offset,
                    replid2=replid2,
                    second_offset=position.second_offset,
                    json_keys=json_keys,
                )
            except OSError as exc:
                self.snapshot_failures += 1
                raise PersistenceError(
                    f"cannot write a snapshot in {self.directory}: {exc} — nothing is lost "
                    f"(the WAL keeps every record); free disk space, the next snapshot retries"
                ) from exc
            self._snapshot_done(position, started)
            self._drop_superseded()
            return path

    async def reset(self, keyspace: Keyspace, position: Position) -> Path | None:
        """Replace the stored history with ``keyspace`` at ``position`` (after a full sync).

        Call it right after loading the master's dataset into ``keyspace``: the copy is
        taken at the call.  Records appended while it runs are kept in memory and written
        to the new history's first segment once its snapshot is durable.  Returns None if
        a later reset superseded this one."""
        return await self._rebase(keyspace, position)

    async def _rebase(self, keyspace: Keyspace, position: Position) -> Path | None:
        """Make a snapshot of ``keyspace`` the new base of the WAL; all else is discarded.

        Copy and hold happen at the call.  A rebase called while another is pending
        supersedes it: its copy is newer and already contains every record held so far,
        so the held records are dropped and the older rebase gives up.

        The install order is what makes it crash-safe.  Old WAL segments are deleted
        before the new snapshot gets its final name, since recovery would otherwise replay
        them on top of it (offsets of two histories overlap).  Until the rename, a crash
        recovers the old snapshots alone: an older but consistent state."""
        self.wal.hold(discard_held=True)
        self._rebase_generation += 1
        generation = self._rebase_generation
        data, expires = dict(keyspace.data), dict(keyspace.expires)
        json_keys = set(keyspace.json_keys)
        async with self._snapshot_lock:
            if generation != self._rebase_generation:
                return None
            started = time.monotonic()
            try:
                tmp = await asyncio.to_thread(
                    write_snapshot_temp,
                    self.directory,
                    data,
                    expires,
                    replid=_stored(position)[0],
                    offset=position.offset,
                    replid2=_stored(position)[1],
                    second_offset=position.second_offset,
                    json_keys=json_keys,
                )
            except OSError as exc:
                self.snapshot_failures += 1
                if generation == self._rebase_generation:
                    self.wal.suspend()
                raise PersistenceError(
                    f"cannot write the snapshot that replaces the history in "
                    f"{self.directory}: {exc}; WAL writing is suspended until a snapshot "
                    f"succeeds (a restart would come back with the previous data)"
                ) from exc
            if generation != self._rebase_generation:
                tmp.unlink(missing_ok=True)
                return None
            try:
                self.wal.discard_segments()
                path = commit_snapshot(tmp, position.offset)
                for _, old in list_snapshots(self.directory):
                    if old != path:
                        old.unlink()
                fsync_directory(self.directory)
            except (OSError, PersistenceError) as exc:
                tmp.unlink(missing_ok=True)
                self.snapshot_failures += 1
                self.wal.suspend()
                raise PersistenceError(
                    f"cannot install the new snapshot in {self.directory}: {exc}; WAL "
                    f"writing is suspended until a snapshot succeeds"
                ) from exc
            self.wal.resume(position.offset + 1)
            self._first_needed = position.offset + 1
            self.log_unreadable_before = 0
            self.damaged_segments = []
            self._snapshot_done(position, started)
            return path

    def _snapshot_done(self, position: Position, started: float) -> None:
        self._snapshotted = position
        self.snapshots_written += 1
        self.last_snapshot_ms = now_ms()
        self.last_snapshot_duration_ms = int((time.monotonic() - started) * 1000)

    def _drop_superseded(self) -> None:
        """Keep ``keep_snapshots`` snapshots and the WAL back to the oldest of them."""
        try:
            kept = prune_snapshots(self.directory, self.keep_snapshots)
            if kept:
                self._first_needed = kept[0][0] + 1
                self.apply_retention()
        except (OSError, PersistenceError) as exc:
            # Harmless: the files left over are skipped by recovery and retried next time.
            logger.warning("could not delete old snapshots or WAL segments: %s", exc)

    def apply_retention(self, now: float | None = None) -> list[Path]:
        """Delete the segments no kept snapshot needs and the retention no longer holds."""
        if not self.wal.is_active or self._first_needed is None:
            return []
        r = self.retention
        dropped = self.wal.apply_retention(
            self._first_needed,
            max_bytes=r.max_bytes,
            max_records=r.max_records,
            max_age_secs=r.max_age_secs,
            now=now,
        )
        if dropped:
            logger.info(
                "log retention: deleted %d segment(s) %s..%s; the log on disk now starts "
                "at offset %s",
                len(dropped),
                dropped[0].name,
                dropped[-1].name,
                self.wal.first_offset,
            )
        return dropped

    # ------------------------------------------------------------- the log on disk
    def disk_log_bounds(self) -> tuple[int, int] | None:
        """``(first, last)`` offsets a replica can be served from the segments, or None.

        None while no segment of the current history is being written (a full sync is
        being installed, or WAL writing is suspended).  ``first`` skips what a damaged
        segment made unreadable; ``first > last`` means nothing is on disk yet."""
        wal = self.wal
        if not wal.is_active or wal.first_offset is None:
            return None
        last = wal.last_offset if wal.last_offset is not None else wal.first_offset - 1
        return max(wal.first_offset, self.log_unreadable_before), last

    def damaged_segment(self, segment: Path) -> None:
        """A reader found ``segment`` damaged: serve nothing from it or before it again."""
        segments = self.wal.segments
        boundary = (self.wal.last_offset or 0) + 1  # the live segment: nothing on disk
        for seg, following in zip(segments, segments[1:], strict=False):
            if seg.path == segment:
                boundary = following.first_offset
                break
        self.log_unreadable_before = max(self.log_unreadable_before, boundary)
        if segment.name not in self.damaged_segments:
            self.damaged_segments.append(segment.name)

    def needs_snapshot(self, position: Position) -> bool:
        """True when ``position`` differs from the newest durable snapshot."""
        return position != self._snapshotted

    # ------------------------------------------------------------------ timers
    async def run_periodic(self, keyspace: Keyspace, position: Callable[[], Position]) -> None:
        """The node's persistence task: fsync timer ('periodic' mode) and snapshot timer.

        ``position()`` returns the node's current position; it is read together with the
        keyspace copy, so it must describe exactly what the keyspace holds.  A snapshot
        runs as its own task so a long write never delays the fsync timer."""
        loop = asyncio.get_running_loop()
        snapshot_every = self.snapshot_interval_secs or math.inf
        next_snapshot = loop.time() + snapshot_every
        next_fsync = math.inf
        next_retention = loop.time() + RETENTION_CHECK_SECS
        while True:
            # Read every round: CONFIG SET appendfsync may change the policy at run time.
            fsync_every = (
                self.fsync_interval_ms / 1000 if self.fsync_mode is FsyncMode.PERIODIC else math.inf
            )
            if fsync_every == math.inf:
                next_fsync = math.inf
            elif next_fsync == math.inf:
                next_fsync = loop.time() + fsync_every
            # At most a second: a policy switched to periodic starts within about a second.
            tick = min(fsync_every, snapshot_every, RETENTION_CHECK_SECS, 1.0)
            await asyncio.sleep(tick)
            if loop.time() >= next_retention:
                next_retention = loop.time() + RETENTION_CHECK_SECS
                try:
                    self.apply_retention()
                except PersistenceError as exc:
                    logger.warning("log retention: %s", exc)
            if fsync_every != math.inf and loop.time() >= next_fsync - tick / 2:
                next_fsync = loop.time() + fsync_every
                try:
                    last = self.wal.last_offset
                    self.wal.flush()
                    await asyncio.to_thread(self.wal.fsync)
                    if last is not None and last != self.fsynced_offset:
                        self._fsynced(last)
                except PersistenceError as exc:
                    logger.error("%s", exc)
            if loop.time() >= next_snapshot:
                next_snapshot = loop.time() + snapshot_every
                running = self._snapshot_task is not None and not self._snapshot_task.done()
                if not running and self.needs_snapshot(position()):
                    self._snapshot_task = asyncio.create_task(
                        self._timed_snapshot(keyspace, position)
                    )

    async def _timed_snapshot(self, keyspace: Keyspace, position: Callable[[], Position]) -> None:
        try:
            await self.snapshot(keyspace, position())
        except (PersistenceError, ValueError) as exc:
            logger.error("periodic snapshot failed: %s", exc)

    # ------------------------------------------------------------------ stop
    async def close(
        self, keyspace: Keyspace | None = None, position: Position | None = None
    ) -> None:
        """Final snapshot (if ``keyspace`` and ``position`` are given and anything changed),
        then flush, fsync, close the WAL and unlock the directory.

        A failed final snapshot is logged, not raised: the WAL holds everything."""
        task = self._snapshot_task
        if task is not None and not task.done():
            await asyncio.wait([task])
        if keyspace is not None and position is not None and self.wal.is_open:
            if self.needs_snapshot(position):
                try:
                    await self.snapshot(keyspace, position)
                except (PersistenceError, ValueError) as exc:
                    logger.error("final snapshot failed: %s", exc)
        self.shutdown()

    def shutdown(self) -> None:
        """Flush, fsync (unless 'never'), close the WAL and unlock; no snapshot."""
        try:
            self.wal.close()
        finally:
            self._dir_lock.release()

    # ------------------------------------------------------------- monitoring
    @property
    def wal_bytes(self) -> int:
        return self.wal.wal_bytes

    @property
    def last_fsync_ms(self) -> int:
        return self.wal.last_fsync_ms

    def stats(self) -> dict[str, int | str | bool]:
        """Counters for INFO / metrics."""
        snapshotted = self._snapshotted
        bounds = self.disk_log_bounds()
        return {
            "fsync_mode": self.fsync_mode.value,
            "wal_bytes": self.wal.wal_bytes,
            "wal_segments": len(self.wal.segments),
            "wal_buffered_bytes": self.wal.buffered_bytes,
            "wal_bytes_written": self.wal.bytes_written,
            "wal_suspended": self.wal.suspended,
            "fsyncs": self.wal.fsyncs,
            "last_fsync_ms": self.wal.last_fsync_ms,
            "snapshots_written": self.snapshots_written,
            "snapshot_failures": self.snapshot_failures,
            "snapshot_in_progress": self._snapshot_lock.locked(),
            "last_snapshot_ms": self.last_snapshot_ms,
            "last_snapshot_duration_ms": self.last_snapshot_duration_ms,
            "last_snapshot_offset": snapshotted.offset if snapshotted else -1,
            "log_disk_first_offset": bounds[0] if bounds else -1,
            "log_disk_last_offset": bounds[1] if bounds else -1,
            "log_segments_rolled": self.wal.segments_rolled,
            "log_segments_deleted": self.wal.segments_deleted,
            "log_damaged_segments": ",".join(self.damaged_segments),
            "records_replayed": self.records_replayed,
            "recovery_ms": self.recovery_ms,
            "data_dir": os.fspath(self.directory),
        }
