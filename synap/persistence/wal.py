"""Write-ahead log: every effect record, in offset order, in append-only segment files.

On disk, a segment ``wal-<first_offset:020d>.log`` is::

    b"SYNWAL1\\n"                                    magic, 8 bytes
    then per record:
      >I length  >I crc32  >Q offset  record bytes    16-byte header + the effect record
    where crc32 covers the 8 offset bytes followed by the record (they are contiguous).

Writing.  :meth:`WriteAheadLog.append` only encodes into an in-memory buffer (it runs for
every write, ~0.5 µs).  The server calls :meth:`~WriteAheadLog.flush` once per event-loop
batch, *before* it sends the replies of that batch: one ``write()`` for the whole batch and,
in ``always`` mode, one ``fdatasync`` — group commit, as in PostgreSQL and Redis'
``appendfsync always``.  In ``periodic`` mode a timer calls :meth:`~WriteAheadLog.fsync`
(safe in a worker thread) every ``fsync_interval_ms``; ``never`` leaves it to the kernel.

Segments.  A segment is closed and ``wal-<next offset>`` started when it reaches
``segment_max_bytes`` (checked once per flush, so a segment may exceed it by one batch),
and when a snapshot at offset S copies the keyspace (rotation to ``wal-<S+1>``).  Old
segments go only as whole files, and only when both rules allow it
(:meth:`~WriteAheadLog.apply_retention`): the snapshots kept no longer need them *and*
they fall outside the log retention (bytes, records, age), so the segments double as the
replication log that partial syncs read from (:mod:`synap.persistence.logreader`).

Reading back (:meth:`WriteAheadLog.replay`) — a record is loaded only if its checksum holds
and its offset is exactly the previous one plus one.  On the first record that fails:

* in the **last** segment: the tail is cut off (``ftruncate``) at the end of the last good
  record, so new appends follow good data.  A tail that looks like an interrupted write
  (incomplete header or record, bad last record, zero fill) is logged as a WARNING — it is
  the expected result of a crash with ``periodic``/``never``.  Damage with more data after
  it is an ERROR, and a copy of the file is kept as ``<name>.corrupt-<ms>`` first.
* in an **earlier** segment, or a gap in offsets: replay stops there (ERROR).  The damaged
  segment is copied aside and truncated at the last good record and every later segment is
  renamed to ``*.corrupt-<ms>``: nothing after the damage can be trusted (records would be
  missing), and the live WAL must stay one contiguous run for the next appends.  The node
  comes back with the consistent prefix; :attr:`ReplayReport.complete` is then False.

Nothing here raises on damaged data; :class:`~synap.persistence.PersistenceError` is
raised only when the disk refuses an operation (I/O errors, a full disk).
"""

from __future__ import annotations

import logging
import mmap
import os
import re
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path

from synap.clock import now_ms
from synap.latency import LatencyHistogram
from synap.persistence import PersistenceError, fsync_directory
from synap.persistence.walcodec import encode_entries

logger = logging.getLogger(__name__)

WAL_MAGIC = b"SYNWAL1\n"
HEADER = struct.Struct(">IIQ")  # payload length, crc32(offset bytes + payload), offset
_OFFSET = struct.Struct(">Q")
SEGMENT_RE = re.compile(r"^wal-(\d{20})\.log$")

# A segment is closed once it holds this much (persistence.segment_max_mb).
DEFAULT_SEGMENT_MAX_BYTES = 64 * 1024 * 1024

# Zero-fill check on the error path reads the tail in pieces of this size.
_SCAN_PIECE = 1 << 20

_fdatasync = getattr(os, "fdatasync", os.fsync)
# Module-level aliases: append() runs once per write and skips the attribute lookups.
_crc32 = zlib.crc32
_pack_header = HEADER.pack
_pack_offset = _OFFSET.pack


class FsyncMode(StrEnum):
    # fdatasync in every flush(): a reply is sent only after its record is on disk.
    ALWAYS = "always"
    # fdatasync every fsync_interval_ms: a crash loses at most that much.
    PERIODIC = "periodic"
    # The kernel decides when (typically within 30 s).
    NEVER = "never"

    @classmethod
    def parse(cls, value: str | FsyncMode) -> FsyncMode:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"unknown fsync mode {value!r}: use 'always', 'periodic' or 'never'"
            ) from None


def segment_name(first_offset: int) -> str:
    return f"wal-{first_offset:020d}.log"


@dataclass
class Segment:
    first_offset: int  # from the file name: the offset its first record has (or will have)
    path: Path
    size: int  # bytes on disk, magic included


def list_segments(directory: Path) -> list[Segment]:
    """Live segments of ``directory``, oldest first (quarantined files are ignored)."""
    segments = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                match = SEGMENT_RE.match(entry.name)
                if match and entry.is_file():
                    size = entry.stat().st_size
                    segments.append(Segment(int(match.group(1)), Path(entry.path), size))
    except OSError as exc:
        raise PersistenceError(f"cannot list data directory {directory}: {exc}") from exc
    segments.sort(key=lambda s: s.first_offset)
    return segments


@dataclass
class ReplayReport:
    """What :meth:`WriteAheadLog.replay` found; filled in as the iteration proceeds."""

    records: int = 0  # records yielded (offset > after)
    last_offset: int | None = None  # offset of the last good record read (any segment)
    complete: bool = True  # False: replay stopped early, later history was set aside
    truncated_bytes: int = 0  # bytes cut from torn or corrupt tails
    quarantined: list[Path] = field(default_factory=list)  # files moved/copied aside
    problems: list[str] = field(default_factory=list)  # one line per repair, for reports


@dataclass
class _Scan:
    """How reading one segment ended."""

    size: int = 0
    good_end: int = 0  # byte position just after the last good record
    problem: str | None = None  # None: clean end of file
    torn: bool = False  # the damage looks like an interrupted write at the end of the file
    last_offset: int | None = None  # offset of the last good record in this segment


def _read_segment(path: Path, scan: _Scan) -> Generator[tuple[int, bytes, int], None, None]:
    """Yield ``(offset, record, start_byte)`` for each good record; fill ``scan`` at the end.

    The file is memory-mapped and checksummed in place; only record payloads are copied."""
    with open(path, "rb") as f:
        size = scan.size = os.fstat(f.fileno()).st_size
        if size < len(WAL_MAGIC):
            head = f.read()
            scan.good_end = 0
            if WAL_MAGIC.startswith(head):
                # Crash between creating the file and writing its magic.
                scan.problem, scan.torn = "incomplete segment header", True
            else:
                scan.problem = "not a synap WAL segment (bad magic)"
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            if mm[: len(WAL_MAGIC)] != WAL_MAGIC:
                scan.good_end = 0
                scan.problem = "not a synap WAL segment (bad magic or unknown version)"
                return
            view = memoryview(mm)
            try:
                pos = len(WAL_MAGIC)
                unpack_from = HEADER.unpack_from
                crc32 = zlib.crc32
                while pos < size:
                    if size - pos < HEADER.size:
                        scan.problem = f"incomplete record header ({size - pos} of 16 bytes)"
                        scan.torn = True
                        break
                    length, crc, offset = unpack_from(mm, pos)
                    end = pos + HEADER.size + length
                    if end > size:
                        scan.problem = (
                            f"incomplete record (header announces {length} bytes, "
                            f"{size - pos - HEADER.size} present)"
                        )
                        scan.torn = True
                        break
                    if crc32(view[pos + 8 : end]) != crc:
                        scan.problem = f"checksum mismatch in record at offset {offset}"
                        scan.torn = end == size or _all_zero(mm, pos, size)
                        break
                    scan.last_offset = offset
                    yield offset, mm[pos + HEADER.size : end], pos
                    pos = end
                scan.good_end = pos
            finally:
                view.release()


def _all_zero(mm: mmap.mmap, start: int, end: int) -> bool:
    """True when ``mm[start:end]`` is zero fill (file extended but data never written)."""
    for piece_start in range(start, end, _SCAN_PIECE):
        piece = mm[piece_start : min(end, piece_start + _SCAN_PIECE)]
        if piece.count(0) != len(piece):
            return False
    return True


def iter_segment(path: Path) -> Iterator[tuple[int, bytes]]:
    """Read-only: the good records of one segment, stopping silently at the first bad one.

    For tools and tests; recovery uses :meth:`WriteAheadLog.replay`, which also repairs."""
    for offset, record, _ in _read_segment(Path(path), _Scan()):
        yield offset, record


class _State(Enum):
    CLOSED = "closed"  # before open_for_append() / after close(): replay() is allowed
    ACTIVE = "active"  # appends are written to the current segment
    HELD = "held"  # history is being replaced: appends wait in memory for resume()
    SUSPENDED = "suspended"  # no base snapshot for the current history: appends are dropped


class WriteAheadLog:
    """The segments of one data directory: replay them, then append to the newest."""

    def __init__(
        self,
        directory: Path,
        fsync_mode: str | FsyncMode = FsyncMode.PERIODIC,
        segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES,
    ) -> None:
        if segment_max_bytes < 1:
            raise ValueError("segment_max_bytes must be positive")
        self.directory = Path(directory)
        self.mode = FsyncMode.parse(fsync_mode)
        self.segment_max_bytes = segment_max_bytes
        self.segments_rolled = 0  # segments closed because they reached the size limit
        self.segments_deleted = 0  # segments deleted by snapshots/retention
        self._buf = bytearray()
        self._state = _State.CLOSED
        self._segments: list[Segment] = []
        self._cur: Segment | None = None  # the segment being appended to (== _segments[-1])
        self._fd: int | None = None
        # Rotated-away segments whose last writes still await the periodic fsync.
        self._retired: list[int] = []
        self._unsynced = False  # the current segment has writes not yet fdatasync-ed
        # Guards _fd/_retired against fsync() running in a worker thread.
        self._io_lock = threading.Lock()
        # Replay learns where the last segment's good data ends; appends may continue there.
        self._tail: tuple[Path, int | None] | None = None
        self.last_replay = ReplayReport()
        self.last_offset: int | None = None  # offset of the last appended record
        self.bytes_written = 0
        self.fsyncs = 0
        self.fsync_latency = LatencyHistogram()  # seconds per fdatasync, for /metrics
        self.write_latency = LatencyHistogram()  # seconds per write() of a batch
        self.last_fsync_ms = 0

    # ------------------------------------------------------------------ state
    @property
    def suspended(self) -> bool:
        return self._state is _State.SUSPENDED

    @property
    def is_active(self) -> bool:
        """Appends are being written to a segment (not held, suspended or closed)."""
        return self._state is _State.ACTIVE

    @property
    def is_open(self) -> bool:
        return self._state is not _State.CLOSED

    @property
    def segments(self) -> list[Segment]:
        return list(self._segments)

    @property
    def wal_bytes(self) -> int:
        """Bytes in the live segments (as written to the OS; buffered bytes excluded)."""
        return sum(seg.size for seg in self._segments)

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)

    # ------------------------------------------------------------------ replay
    def replay(self, after: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Yield ``(offset, record)`` for every good record with ``offset > after``.

        ``after`` is the offset of the snapshot the records apply to (None: no snapshot,
        replay from the first segment).  The first record after ``after`` must be
        ``after + 1``.  Segments whose records are all ``<= after`` are not even read.
        Consume the iterator to the end: the repairs described in the module docstring
        happen as it goes, and :attr:`last_replay` is complete only then."""
        if self._state is not _State.CLOSED:
            raise RuntimeError("replay() must run before open_for_append()")
        report = self.last_replay = ReplayReport()
        self._tail = None
        segments = list_segments(self.directory)
        prev: int | None = None
        for index, seg in enumerate(segments):
            is_last = index == len(segments) - 1
            if not is_last and after is not None and segments[index + 1].first_offset <= after + 1:
                continue  # every record in it is covered by the snapshot
            scan = _Scan()
            gap: tuple[int, str] | None = None
            records = _read_segment(seg.path, scan)
            try:
                for offset, record, start in records:
                    # Each record follows the previous one; the first one read may be
                    # covered by the snapshot (<= after) or must follow it (after + 1).
                    base = prev if prev is not None else after
                    if (
                        base is not None
                        and offset != base + 1
                        and not (prev is None and offset <= base)
                    ):
                        gap = (start, f"record offset {offset} where {base + 1} was expected")
                        break
                    prev = offset
                    if after is None or offset > after:
                        report.records += 1
                        yield offset, record
            except OSError as exc:
                raise PersistenceError(f"cannot read WAL segment {seg.path}: {exc}") from exc
            finally:
                records.close()
            report.last_offset = prev
            if gap is not None:
                # Records of this segment before the gap were yielded; its tail is
                # not: the last good record is the one before the gap.
                self._stop(segments, index, gap[0], gap[1], report)
                return
            if scan.problem is None:
                self._tail = (seg.path, scan.last_offset)  # clean: appends could follow
                continue
            if is_last:
                self._repair_tail(seg, scan, report)
                self._tail = (seg.path, scan.last_offset)
            else:
                self._stop(segments, index, scan.good_end, scan.problem, report)
                return

    def _repair_tail(self, seg: Segment, scan: _Scan, report: ReplayReport) -> None:
        """Cut the last segment back to its last good record (see module docstring)."""
        dropped = scan.size - scan.good_end
        if scan.torn:
            logger.warning(
                "WAL segment %s: torn tail at byte %d (%s); truncated to the last good "
                "record, %d bytes dropped (an interrupted write, expected after a crash)",
                seg.path,
                scan.good_end,
                scan.problem,
                dropped,
            )
        else:
            kept = self._copy_aside(seg.path, report)
            report.complete = False
            logger.error(
                "WAL segment %s: corrupt data at byte %d (%s) with %d bytes after it; "
                "records from there on are NOT loaded; the damaged file is kept as %s",
                seg.path,
                scan.good_end,
                scan.problem,
                dropped,
                kept,
            )
        report.problems.append(f"{seg.path.name}: {scan.problem} at byte {scan.good_end}")
        report.truncated_bytes += dropped
        self._truncate(seg.path, scan.good_end)

    def _stop(
        self, segments: list[Segment], index: int, good_end: int, reason: str, report: ReplayReport
    ) -> None:
        """Replay stopped inside ``segments[index]``: keep only what precedes ``good_end``."""
        seg = segments[index]
        later = segments[index + 1 :]
        report.complete = False
        if good_end <= len(WAL_MAGIC):
            # Nothing good in it: the previous segment, if it was read cleanly and is
            # still self._tail, becomes the last one and appends may continue there.
            kept = self._rename_aside(seg.path, report)
        else:
            kept = self._copy_aside(seg.path, report)
            report.truncated_bytes += seg.size - good_end
            self._truncate(seg.path, good_end)
            self._tail = (seg.path, report.last_offset)
        for other in later:
            self._rename_aside(other.path, report)
        logger.error(
            "WAL segment %s: %s at byte %d; replay stops here and the node recovers the "
            "history up to offset %s only; the damaged data is kept as %s and %d later "
            "segment(s) were set aside as *.corrupt-*",
            seg.path,
            reason,
            good_end,
            report.last_offset,
            kept,
            len(later),
        )
        report.problems.append(f"{seg.path.name}: {reason} at byte {good_end} (replay stopped)")

    def _copy_aside(self, path: Path, report: ReplayReport) -> Path:
        target = path.with_name(f"{path.name}.corrupt-{now_ms()}")
        try:
            shutil.copyfile(path, target)
        except OSError as exc:
            raise PersistenceError(f"cannot copy damaged {path} aside: {exc}") from exc
        report.quarantined.append(target)
        return target

    def _rename_aside(self, path: Path, report: ReplayReport) -> Path:
        target = path.with_name(f"{path.name}.corrupt-{now_ms()}")
        try:
            os.replace(path, target)
        except OSError as exc:
            raise PersistenceError(f"cannot move damaged {path} aside: {exc}") from exc
        report.quarantined.append(target)
        return target

    def _truncate(self, path: Path, good_end: int) -> None:
        try:
            with open(path, "r+b") as f:
                if good_end < len(WAL_MAGIC):
                    f.truncate(0)
                    f.write(WAL_MAGIC)
                else:
                    f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise PersistenceError(f"cannot repair WAL segment {path}: {exc}") from exc

    # ------------------------------------------------------------------ writing
    def open_for_append(self, next_offset: int) -> None:
        """Start appending; the next record will have offset ``next_offset``.

        Continues in the last segment when replay validated it and it ends right before
        ``next_offset``; otherwise starts ``wal-<next_offset>``."""
        if self._state is not _State.CLOSED:
            raise RuntimeError("the WAL is already open")
        self._segments = list_segments(self.directory)
        last = self._segments[-1] if self._segments else None
        if last is not None and self._tail is not None and self._tail[0] == last.path:
            last_record = self._tail[1] if self._tail[1] is not None else last.first_offset - 1
            if last_record >= next_offset:
                raise PersistenceError(
                    f"WAL segment {last.path} already holds records up to offset "
                    f"{last_record}; cannot append from {next_offset}"
                )
            if last_record == next_offset - 1:
                self._fd = self._open_fd(last.path, create=False)
                self._cur = last
                self._state = _State.ACTIVE
                self.last_offset = last_record
                return
        self._state = _State.ACTIVE
        self._create_segment(next_offset)

    def append(self, offset: int, record: bytes) -> None:
        """Buffer one record (hot path: no I/O, no branches).  Written by :meth:`flush`."""
        crc = _crc32(record, _crc32(_pack_offset(offset)))
        self._buf += _pack_header(len(record), crc, offset) + record
        self.last_offset = offset

    def append_batch(self, first_offset: int, records: Sequence[bytes]) -> None:
        """Buffer consecutive records (an iteration's writes on a master, a replica's
        RECORDS batch): the same bytes as :meth:`append` for each, built in one call
        (:func:`~synap.persistence.walcodec.encode_entries`, in C in the compiled build)."""
        if records:
            self._buf += encode_entries(first_offset, records)
            self.last_offset = first_offset + len(records) - 1

    def flush(self) -> None:
        """Write the buffered records with one ``write()``; ``fdatasync`` in ``always`` mode.

        Call before replying to the writes of the batch.  On a write error the unwritten
        part stays buffered (a later flush retries) and PersistenceError is raised."""
        buf = self._buf
        if not buf:
            return
        state = self._state
        if state is not _State.ACTIVE:
            if state is _State.SUSPENDED:
                self._buf = bytearray()
            elif state is _State.CLOSED:
                raise RuntimeError("WAL not open: call open_for_append() (after replay)")
            return  # HELD: kept for resume()
        fd = self._fd
        cur = self._cur
        assert fd is not None and cur is not None
        written = 0
        started = time.perf_counter()
        try:
            written = os.write(fd, buf)
            while written < len(buf):  # regular files rarely write short, but may
                written += os.write(fd, buf[written:])
        except OSError as exc:
            del buf[:written]
            cur.size += written
            self.bytes_written += written
            raise PersistenceError(
                f"cannot write WAL segment {cur.path}: {exc.strerror} — the records stay "
                f"buffered; free disk space or fix the device"
            ) from exc
        self._buf = bytearray()
        self.write_latency.observe(time.perf_counter() - started)
        cur.size += written
        self.bytes_written += written
        if self.mode is FsyncMode.ALWAYS:
            started = time.perf_counter()
            try:
                _fdatasync(fd)
            except OSError as exc:
                raise PersistenceError(f"fdatasync of {cur.path} failed: {exc}") from exc
            self.fsync_latency.observe(time.perf_counter() - started)
            self.fsyncs += 1
            self.last_fsync_ms = now_ms()
        else:
            self._unsynced = True
        if cur.size >= self.segment_max_bytes and self.last_offset is not None:
            self._retire_current(fsync_later=self.mode is FsyncMode.PERIODIC)
            self._create_segment(self.last_offset + 1)
            self.segments_rolled += 1

    def fsync(self) -> None:
        """Make everything flushed so far durable.  Thread-safe (may run via to_thread)."""
        with self._io_lock:
            fds = list(self._retired)
            if self._fd is not None and self._unsynced:
                # Cleared before the fdatasync: a write racing with it sets it again.
                self._unsynced = False
                fds.append(self._fd)
            started = time.perf_counter()
            try:
                for fd in fds:
                    _fdatasync(fd)
                self.fsync_latency.observe(time.perf_counter() - started)
            except OSError as exc:
                raise PersistenceError(f"fdatasync of the WAL failed: {exc}") from exc
            finally:
                for fd in self._retired:
                    os.close(fd)
                self._retired = []
            self.fsyncs += 1
            self.last_fsync_ms = now_ms()

    def sync(self) -> None:
        """flush() then fsync(): used by the periodic timer and at shutdown."""
        self.flush()
        self.fsync()

    def start_new_segment(self, first_offset: int) -> None:
        """Rotate: flush into the current segment, continue in ``wal-<first_offset>``.

        Called when a snapshot at ``first_offset - 1`` copies the keyspace.  A no-op if the
        current segment is still empty and already starts there."""
        if self._state is not _State.ACTIVE:
            raise RuntimeError(f"cannot rotate a WAL that is {self._state.value}")
        self.flush()
        cur = self._cur
        assert cur is not None
        if cur.first_offset == first_offset and cur.size <= len(WAL_MAGIC):
            return
        if cur.first_offset >= first_offset:
            raise ValueError(
                f"cannot start segment {first_offset}: current segment starts at {cur.first_offset}"
            )
        self._retire_current(fsync_later=self.mode is FsyncMode.PERIODIC)
        self._create_segment(first_offset)

    def drop_segments_before(self, first_needed: int) -> list[Path]:
        """Delete the segments whose records all have offsets ``< first_needed``.

        The current segment is never dropped.  Pass ``snapshot_offset + 1`` of the oldest
        snapshot that must stay recoverable."""
        segs = self._segments
        keep_from = 0
        for i in range(len(segs) - 1):
            if segs[i + 1].first_offset <= first_needed:
                keep_from = i + 1
            else:
                break
        dropped = [seg.path for seg in segs[:keep_from]]
        if not dropped:
            return []
        self._segments = segs[keep_from:]
        self._unlink(dropped)
        self.segments_deleted += len(dropped)
        return dropped

    def apply_retention(
        self,
        first_needed: int,
        *,
        max_bytes: int | None = None,
        max_records: int | None = None,
        max_age_secs: float | None = None,
        now: float | None = None,
    ) -> list[Path]:
        """Delete the oldest segments that are both covered and out of retention.

        Covered: every record is ``< first_needed`` (pass the oldest kept snapshot's
        offset + 1), so recovery never needs it.  Out of retention: the newer segments
        alone already hold ``max_bytes`` bytes or ``max_records`` records, or the
        segment's newest record (its modification time) is older than
        ``max_age_secs``.  ``None`` leaves that limit out; all three None keeps every
        covered segment.  Only a prefix goes (the log stays one run of offsets), and
        never the current segment."""
        segs = self._segments
        if len(segs) < 2:
            return []
        now = time.time() if now is None else now
        last = self.last_offset if self.last_offset is not None else segs[-1].first_offset - 1
        total_after = [0] * len(segs)  # bytes in the segments after segs[i]
        acc = 0
        for i in range(len(segs) - 1, -1, -1):
            total_after[i] = acc
            acc += segs[i].size
        keep_from = 0
        for i in range(len(segs) - 1):
            nxt = segs[i + 1].first_offset
            if nxt > first_needed:
                break  # a kept snapshot still needs it
            out = False
            if max_bytes is not None and total_after[i] >= max_bytes:
                out = True
            if max_records is not None and last - nxt + 1 >= max_records:
                out = True
            if not out and max_age_secs is not None:
                try:
                    out = now - segs[i].path.stat().st_mtime > max_age_secs
                except FileNotFoundError:
                    out = True
            if not out:
                break
            keep_from = i + 1
        dropped = [seg.path for seg in segs[:keep_from]]
        if not dropped:
            return []
        self._segments = segs[keep_from:]
        self._unlink(dropped)
        self.segments_deleted += len(dropped)
        return dropped

    @property
    def first_offset(self) -> int | None:
        """Offset of the oldest record in the live segments (from the file names)."""
        return self._segments[0].first_offset if self._segments else None

    # ---------------------------------------------------- replacing history
    def hold(self, *, discard_held: bool = False) -> None:
        """Stop writing segments; appends wait in memory until :meth:`resume`.

        First step of replacing the history (a full sync): what is buffered when the WAL
        is active still belongs to the old history and is flushed into the old segment.
        If it is already held, ``discard_held`` drops the records held so far (the
        caller's new snapshot contains them)."""
        if self._state is _State.ACTIVE:
            self.flush()
            self._retire_current(fsync_later=False)
        elif self._state is _State.CLOSED:
            raise RuntimeError("WAL not open")
        elif discard_held:
            self._buf = bytearray()
        self._state = _State.HELD

    def suspend(self) -> None:
        """No segment until a base snapshot exists: drop buffered and future appends."""
        if self._state is _State.ACTIVE:
            self.flush()
            self._retire_current(fsync_later=False)
        self._buf = bytearray()
        self._state = _State.SUSPENDED

    def discard_segments(self) -> None:
        """Delete every live segment (the history they hold has been replaced)."""
        if self._state is _State.ACTIVE:
            raise RuntimeError("hold() or suspend() the WAL before discarding its segments")
        paths = [seg.path for seg in list_segments(self.directory)]
        self._segments = []
        self._unlink(paths)

    def resume(self, first_offset: int) -> None:
        """Start ``wal-<first_offset>`` after a new base snapshot and write what was held."""
        if self._state not in (_State.HELD, _State.SUSPENDED):
            raise RuntimeError(f"cannot resume a WAL that is {self._state.value}")
        self._state = _State.ACTIVE
        self._create_segment(first_offset)
        self.flush()

    def close(self) -> None:
        """Flush, fsync (unless ``never``) and close.  Held records are dropped."""
        if self._state is _State.ACTIVE:
            self.flush()
        with self._io_lock:
            fds = list(self._retired)
            if self._fd is not None:
                fds.append(self._fd)
            self._retired = []
            self._fd = None
            self._cur = None
            try:
                if self.mode is not FsyncMode.NEVER and self._state is _State.ACTIVE:
                    for fd in fds:
                        _fdatasync(fd)
            finally:
                for fd in fds:
                    os.close(fd)
        self._buf = bytearray()
        self._state = _State.CLOSED
        self._tail = None

    # ------------------------------------------------------------ internals
    def _open_fd(self, path: Path, *, create: bool) -> int:
        flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT | os.O_TRUNC if create else 0)
        try:
            return os.open(path, flags, 0o644)
        except OSError as exc:
            raise PersistenceError(f"cannot open WAL segment {path}: {exc}") from exc

    def _create_segment(self, first_offset: int) -> None:
        path = self.directory / segment_name(first_offset)
        try:
            existing = path.stat().st_size
        except FileNotFoundError:
            existing = None
        if existing is not None and existing > len(WAL_MAGIC):
            raise PersistenceError(
                f"WAL segment {path} already exists with records; refusing to overwrite it"
            )
        fd = self._open_fd(path, create=True)
        try:
            os.write(fd, WAL_MAGIC)
            if self.mode is not FsyncMode.NEVER:
                fsync_directory(self.directory)
        except OSError as exc:
            os.close(fd)
            raise PersistenceError(f"cannot create WAL segment {path}: {exc}") from exc
        seg = Segment(first_offset, path, len(WAL_MAGIC))
        self._segments = [s for s in self._segments if s.path != path]
        self._segments.append(seg)
        with self._io_lock:
            self._fd = fd
        self._cur = seg

    def _retire_current(self, *, fsync_later: bool) -> None:
        with self._io_lock:
            fd, self._fd = self._fd, None
            unsynced, self._unsynced = self._unsynced, False
            if fd is not None:
                if fsync_later and unsynced:
                    self._retired.append(fd)
                else:
                    os.close(fd)
        self._cur = None

    def _unlink(self, paths: list[Path]) -> None:
        try:
            for path in paths:
                path.unlink(missing_ok=True)
            if self.mode is not FsyncMode.NEVER:
                fsync_directory(self.directory)
        except OSError as exc:
            raise PersistenceError(f"cannot delete old WAL segments: {exc}") from exc
