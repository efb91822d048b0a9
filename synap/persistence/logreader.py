"""Reading a range of the log back from the WAL segments (partial sync from disk, tools).

:class:`SegmentReader` starts at one offset and keeps its place (open file, byte
position, next offset), so a replica that is far behind is fed batch after batch by
sequential reads; each :meth:`~SegmentReader.read_batch` returns at most ``max_count``
records and about ``max_bytes`` (one record more at most), never the whole range.  The
reads are blocking file I/O: the master runs them in a worker thread.

Every record served is checked: its CRC32 must hold and its offset must be exactly the
previous one plus one, within a segment and across segment boundaries.  A record that
fails raises :class:`LogCorrupt` naming the segment, so nothing damaged is ever served.
Data that merely is not there yet (the live segment ends, or the next segment does not
exist yet) ends a batch early instead: appends may be racing with the reader.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import BinaryIO

from synap.persistence.wal import HEADER, WAL_MAGIC, Segment, list_segments

# The segments are read in pieces of this size.
READ_CHUNK_BYTES = 1 << 20


class LogGone(LookupError):
    """The wanted offset is no longer (or not yet) in the segments on disk."""


class LogCorrupt(Exception):
    """A segment holds a damaged record or a gap; ``segment`` names the file."""

    def __init__(self, segment: Path, offset: int, reason: str) -> None:
        super().__init__(f"WAL segment {segment.name}: {reason} (reading offset {offset})")
        self.segment = segment
        self.offset = offset
        self.reason = reason


def disk_bounds(segments: list[Segment]) -> tuple[int, int] | None:
    """``(first_offset, first offset of the last segment)`` from the file names, or None."""
    if not segments:
        return None
    return segments[0].first_offset, segments[-1].first_offset


class SegmentReader:
    """Sequential, checksummed reader of the records from ``next_offset`` on."""

    def __init__(self, directory: Path, next_offset: int) -> None:
        self.directory = Path(directory)
        self.next_offset = next_offset
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._buf = b""  # bytes read from the open segment, not yet consumed from _at
        self._at = 0
        self._buf_start = 0  # file position of _buf[0]
        self._expected = next_offset  # offset the next record read must have
        self.bytes_read = 0
        self.records_read = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> SegmentReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ positioning
    def _open_segment_for(self, offset: int, *, exact: bool) -> bool:
        """Open the segment holding ``offset`` (``exact``: the one named ``offset``).

        Returns False when no such segment exists (yet)."""
        segments = list_segments(self.directory)
        chosen: Segment | None = None
        for seg in segments:
            if seg.first_offset <= offset:
                chosen = seg
            else:
                break
        if chosen is None:
            if segments and not exact:
                raise LogGone(
                    f"offset {offset} is no longer on disk (oldest segment starts at "
                    f"{segments[0].first_offset})"
                )
            return False
        if exact and (chosen.path == self._path or chosen.first_offset != offset):
            # The segment being read (or an older one) is the newest that could hold
            # ``offset``: either nothing follows yet, or the next one leaves a gap.
            later = [s for s in segments if s.first_offset > offset]
            if later:
                raise LogCorrupt(
                    later[0].path,
                    offset,
                    f"missing records: the previous segment ends before {offset} and the "
                    f"next one starts at {later[0].first_offset}",
                )
            return False
        try:
            f = open(chosen.path, "rb", buffering=0)  # noqa: SIM115
        except FileNotFoundError:
            raise LogGone(f"segment {chosen.path.name} was deleted (retention)") from None
        magic = f.read(len(WAL_MAGIC))
        if magic != WAL_MAGIC:
            f.close()
            if WAL_MAGIC.startswith(magic) and chosen is segments[-1]:
                return False  # the newest segment, being created right now
            raise LogCorrupt(chosen.path, offset, "not a synap WAL segment (bad magic)")
        self.close()
        self._file, self._path = f, chosen.path
        self._buf, self._at, self._buf_start = b"", 0, len(WAL_MAGIC)
        self._expected = chosen.first_offset
        return True

    def _is_last_segment(self) -> bool:
        segments = list_segments(self.directory)
        return not segments or segments[-1].path == self._path

    # ------------------------------------------------------------------ reading
    def _fill(self, need: int) -> bool:
        """Make ``need`` bytes available from the read position; False at end of file."""
        f = self._file
        assert f is not None
        buf, at = self._buf, self._at
        while len(buf) - at < need:
            more = f.read(max(READ_CHUNK_BYTES, need - (len(buf) - at)))
            if not more:
                self._buf, self._at = buf, at
                return False
            self._buf_start += at
            buf, at = buf[at:] + more, 0
        self._buf, self._at = buf, at
        return True

    def _grew(self) -> bool:
        """Whether the segment being read holds more than has been read into the buffer."""
        assert self._file is not None
        return os.fstat(self._file.fileno()).st_size > self._buf_start + len(self._buf)

    def _incomplete(self, what: str) -> bool:
        """Data ends inside a record: not written yet (newest segment) or damage. The
        writer creates the next segment only after its last write to this one, so a read
        that ended inside that write can find a newer segment already: when this one has
        grown since, the rest is read by the next call (True: stop here for now)."""
        if self._is_last_segment() or self._grew():
            return True
        assert self._path is not None
        raise LogCorrupt(self._path, self.next_offset, what)

    def read_batch(self, max_count: int, max_bytes: int, upto: int | None = None) -> list[bytes]:
        """The next records from :attr:`next_offset` on (blocking; run in a thread).

        Stops after ``max_count`` records, once ``max_bytes`` are reached (at least one
        record is returned when any is available), after offset ``upto``, or where the
        data on disk ends.  Raises :class:`LogGone` / :class:`LogCorrupt`."""
        out: list[bytes] = []
        size = 0
        crc32 = zlib.crc32
        unpack_from = HEADER.unpack_from
        hsize = HEADER.size
        last_wanted = upto if upto is not None else 1 << 63
        while len(out) < max_count and size < max_bytes and self.next_offset <= last_wanted:
            if self._file is None:
                if not self._open_segment_for(self.next_offset, exact=False):
                    break
            # The hot loop: every complete record in the buffer, state in locals.
            buf, at = self._buf, self._at
            view = memoryview(buf)
            n = len(buf)
            expected, wanted = self._expected, self.next_offset
            count = len(out)
            nbytes = 0
            try:
                while (
                    count < max_count
                    and size < max_bytes
                    and wanted <= last_wanted
                    and at + hsize <= n
                ):
                    length, crc, offset = unpack_from(buf, at)
                    end = at + hsize + length
                    if end > n:
                        break
                    if crc32(view[at + 8 : end]) != crc:
                        raise LogCorrupt(
                            self._path or Path("?"),
                            offset,
                            f"checksum mismatch in record at byte {self._buf_start + at}",
                        )
                    if offset != expected:
                        raise LogCorrupt(
                            self._path or Path("?"),
                            offset,
                            f"record offset {offset} where {expected} was expected",
                        )
                    if offset >= wanted:  # earlier ones: skipping forward to the first
                        out.append(buf[at + hsize : end])
                        size += length
                        count += 1
                        wanted = offset + 1
                    nbytes += end - at
                    at = end
                    expected = offset + 1
            finally:
                view.release()
                self.bytes_read += nbytes
                self._at, self._expected, self.next_offset = at, expected, wanted
            if count >= max_count or size >= max_bytes or wanted > last_wanted:
                break
            # The buffer ends inside a record (or exactly at a record boundary).
            avail = n - at
            if avail >= hsize:
                length = unpack_from(buf, at)[0]
                assert self._file is not None
                file_size = os.fstat(self._file.fileno()).st_size
                whole = self._buf_start + at + hsize + length <= file_size
                if whole and self._fill(hsize + length):
                    continue
                if self._incomplete(f"incomplete record (header announces {length} bytes)"):
                    break
                continue
            if self._fill(hsize):
                continue
            if avail and self._incomplete("incomplete record header"):
                break
            if not self._advance_segment():
                break
        self.records_read += len(out)
        return out

    def _advance_segment(self) -> bool:
        """At the end of a segment: open the next one, which must start right after it.
        The end may have been a write in progress when a newer segment already exists
        (see :meth:`_incomplete`): then this one has grown, and the next call reads on
        (False: nothing more for now)."""
        try:
            return self._open_segment_for(self._expected, exact=True)
        except LogCorrupt:
            if self._file is not None and self._grew():
                return False
            raise
