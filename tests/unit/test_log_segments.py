"""The WAL as the replication log: segment rolling, range reads, retention, damage."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from synap.persistence.logreader import LogCorrupt, LogGone, SegmentReader
from synap.persistence.wal import HEADER, WAL_MAGIC, WriteAheadLog, list_segments
from synap.store.effects import OP_SET, encode_record


def rec(i: int, size: int = 20) -> bytes:
    return encode_record([[OP_SET, b"key:%d" % i, b"%d:" % i + b"v" * size, 0]])


def open_wal(directory: Path, segment_max_bytes: int = 4096, first: int = 1) -> WriteAheadLog:
    directory.mkdir(parents=True, exist_ok=True)
    wal = WriteAheadLog(directory, "never", segment_max_bytes)
    assert list(wal.replay()) == []
    wal.open_for_append(first)
    return wal


def fill(wal: WriteAheadLog, offsets: range, per_flush: int = 10) -> None:
    for i in offsets:
        wal.append(i, rec(i))
        if i % per_flush == 0:
            wal.flush()
    wal.flush()


def read_all(directory: Path, start: int, upto: int | None = None, batch: int = 37) -> list[int]:
    """Offsets read back in batches of ``batch`` records, each checked against rec()."""
    out: list[int] = []
    with SegmentReader(directory, start) as reader:
        for _ in range(100_000):
            first = reader.next_offset
            records = reader.read_batch(batch, 1 << 20, upto)
            if not records:
                break
            for i, record in enumerate(records, first):
                assert record == rec(i)
                out.append(i)
    return out


# ------------------------------------------------------------------ rolling
def test_segments_roll_at_the_size_limit_and_name_their_first_offset(tmp_path: Path) -> None:
    wal = open_wal(tmp_path, segment_max_bytes=2000)
    fill(wal, range(1, 501))
    segments = list_segments(tmp_path)
    assert len(segments) > 5
    assert wal.segments_rolled == len(segments) - 1
    for seg, nxt in zip(segments, segments[1:], strict=False):
        # Checked once per flush: at most one batch (10 records) over the limit.
        assert 2000 <= seg.size < 2000 + 10 * (HEADER.size + len(rec(500)))
        offsets = [o for o, _ in _iter(seg.path)]
        assert offsets[0] == seg.first_offset
        assert offsets[-1] == nxt.first_offset - 1
    wal.close()
    # Replay after the restart sees one run of offsets across all segments.
    again = WriteAheadLog(tmp_path, "never", 2000)
    assert [o for o, _ in again.replay()] == list(range(1, 501))


def _iter(path: Path) -> list[tuple[int, bytes]]:
    from synap.persistence.wal import iter_segment

    return list(iter_segment(path))


# ------------------------------------------------------------------ range reads
def test_range_reads_cross_segment_boundaries_from_any_offset(tmp_path: Path) -> None:
    wal = open_wal(tmp_path, segment_max_bytes=1500)
    fill(wal, range(1, 301))
    wal.close()
    boundaries = [s.first_offset for s in list_segments(tmp_path)]
    assert len(boundaries) > 3
    for start in [1, 2, boundaries[1] - 1, boundaries[1], boundaries[2] + 3, 300, 301]:
        assert read_all(tmp_path, start) == list(range(start, 301))


def test_range_read_honours_count_bytes_and_upto(tmp_path: Path) -> None:
    wal = open_wal(tmp_path, segment_max_bytes=1500)
    fill(wal, range(1, 201))
    wal.close()
    with SegmentReader(tmp_path, 10) as reader:
        assert len(reader.read_batch(5, 1 << 20)) == 5
        assert reader.next_offset == 15
        # A byte bound smaller than one record still returns one record.
        assert reader.read_batch(100, 1) == [rec(15)]
        assert reader.read_batch(100, 1 << 20, upto=20) == [rec(i) for i in range(16, 21)]
        assert reader.read_batch(100, 1 << 20, upto=20) == []
    assert read_all(tmp_path, 50, upto=120) == list(range(50, 121))


def test_reads_follow_concurrent_appends_and_rolls(tmp_path: Path) -> None:
    wal = open_wal(tmp_path, segment_max_bytes=1000)
    fill(wal, range(1, 51))
    reader = SegmentReader(tmp_path, 1)
    got: list[bytes] = []
    next_write = 51
    for _ in range(200):
        got += reader.read_batch(7, 1 << 20)
        # Appends (and segment rolls) land between the reader's batches; records still
        # buffered in memory are simply not there yet.
        for i in range(next_write, next_write + 5):
            wal.append(i, rec(i))
        next_write += 5
        if next_write % 3 == 0:
            wal.flush()
        if next_write > 600:
            break
    wal.flush()
    for _ in range(1000):
        batch = reader.read_batch(50, 1 << 20)
        if not batch:
            break
        got += batch
    reader.close()
    assert got == [rec(i) for i in range(1, next_write)]
    assert wal.segments_rolled > 5
    wal.close()


def test_offset_before_the_oldest_segment_is_gone(tmp_path: Path) -> None:
    wal = open_wal(tmp_path, first=100)
    fill(wal, range(100, 120))
    wal.close()
    with pytest.raises(LogGone), SegmentReader(tmp_path, 99) as reader:
        reader.read_batch(10, 1 << 20)


# ------------------------------------------------------------------ damage
def _corrupt_record(path: Path, index: int) -> None:
    """Flip one payload byte of the ``index``-th record of a segment."""
    data = bytearray(path.read_bytes())
    pos = len(WAL_MAGIC)
    for _ in range(index):
        length = int.from_bytes(data[pos : pos + 4], "big")
        pos += HEADER.size + length
    data[pos + HEADER.size + 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_middle_segment_is_reported_by_name_and_never_served(tmp_path: Path) -> None:
    wal = open_wal(tmp_path, segment_max_bytes=1500)
    fill(wal, range(1, 301))
    wal.close()
    segments = list_segments(tmp_path)
    bad = segments[2]
    _corrupt_record(bad.path, 3)
    served: list[bytes] = []
    with pytest.raises(LogCorrupt) as info, SegmentReader(tmp_path, 1) as reader:
        for _ in range(1000):
            batch = reader.read_batch(10, 1 << 20)
            served += batch
    assert info.value.segment == bad.path
    assert bad.path.name in str(info.value)
    # Everything served is good and stops before the damaged record (the batch that
    # reached it is not returned at all).
    assert served == [rec(i) for i in range(1, len(served) + 1)]
    assert bad.first_offset + 3 - 10 <= len(served) < bad.first_offset + 3


def test_a_missing_segment_is_a_gap_not_silence(tmp_path: Path) -> None:
    wal = open_wal(tmp_path, segment_max_bytes=1500)
    fill(wal, range(1, 301))
    wal.close()
    segments = list_segments(tmp_path)
    segments[1].path.unlink()
    with pytest.raises(LogCorrupt, match="missing records"):
        read_all(tmp_path, 1)


def test_a_torn_tail_of_the_live_segment_ends_the_batch(tmp_path: Path) -> None:
    wal = open_wal(tmp_path, segment_max_bytes=1 << 20)
    fill(wal, range(1, 21))
    wal.close()
    path = list_segments(tmp_path)[-1].path
    with open(path, "ab") as f:
        f.write(HEADER.pack(100, 0, 21) + b"half")  # a write interrupted mid-record
    assert read_all(tmp_path, 5) == list(range(5, 21))


# ------------------------------------------------------------------ retention
def _segmented(tmp_path: Path) -> WriteAheadLog:
    wal = open_wal(tmp_path, segment_max_bytes=1500)
    fill(wal, range(1, 401))
    return wal


def test_retention_never_deletes_what_no_snapshot_covers(tmp_path: Path) -> None:
    wal = _segmented(tmp_path)
    before = [s.path for s in wal.segments]
    # Limits of zero would delete everything, but the oldest snapshot is at offset 0.
    assert wal.apply_retention(1, max_bytes=0, max_records=0, max_age_secs=0) == []
    assert [s.path for s in wal.segments] == before
    wal.close()


def test_retention_by_records_keeps_the_newest_window(tmp_path: Path) -> None:
    wal = _segmented(tmp_path)
    dropped = wal.apply_retention(401, max_records=150)
    assert dropped and all(not p.exists() for p in dropped)
    first = wal.first_offset
    assert first is not None
    # At least 150 records remain, and the oldest kept segment was needed for that.
    assert 400 - first + 1 >= 150
    assert wal.segments[1].first_offset > 400 - 150 + 1
    assert read_all(tmp_path, first) == list(range(first, 401))
    wal.close()


def test_retention_by_bytes(tmp_path: Path) -> None:
    wal = _segmented(tmp_path)
    wal.apply_retention(401, max_bytes=5000)
    sizes = [s.size for s in wal.segments]
    assert sum(sizes) >= 5000
    assert sum(sizes[1:]) < 5000
    wal.close()


def test_retention_stops_at_the_oldest_kept_snapshot(tmp_path: Path) -> None:
    wal = _segmented(tmp_path)
    segments = wal.segments
    snapshot_offset = segments[3].first_offset + 2  # inside segment 3
    wal.apply_retention(snapshot_offset + 1, max_records=0)
    # Segments 0..2 are covered; segment 3 holds records after the snapshot.
    assert wal.first_offset == segments[3].first_offset
    wal.close()


def test_retention_by_age_uses_the_newest_record_time(tmp_path: Path) -> None:
    wal = _segmented(tmp_path)
    segments = wal.segments
    now = time.time()
    old = now - 7200
    for seg in segments[:3]:
        os.utime(seg.path, (old, old))
    assert wal.apply_retention(401, max_age_secs=86400, now=now) == []
    dropped = wal.apply_retention(401, max_age_secs=3600, now=now)
    assert dropped == [s.path for s in segments[:3]]
    assert wal.first_offset == segments[3].first_offset
    wal.close()


def test_no_limits_keep_every_segment(tmp_path: Path) -> None:
    wal = _segmented(tmp_path)
    count = len(wal.segments)
    assert wal.apply_retention(401) == []
    assert len(wal.segments) == count
    wal.close()


def test_a_reader_at_the_end_of_a_segment_the_writer_completes_and_rolls_reads_on(
    tmp_path: Path,
) -> None:
    """The race the reader/writer thread test below hit now and then: the reader reaches
    the end of the newest segment while the writer's last write to it is in progress; the
    writer then completes it and creates the next segment before the reader looks for
    one. That is not a gap: the reader reads the rest, then the next segment."""
    wal = open_wal(tmp_path, segment_max_bytes=3000)
    for i in range(1, 6):
        wal.append(i, rec(i))
    wal.flush()
    with SegmentReader(tmp_path, 1) as reader:
        assert reader.read_batch(64, 1 << 20) == [rec(i) for i in range(1, 6)]
        rolled = wal.segments_rolled
        i = 6
        while wal.segments_rolled == rolled:  # the rest of this segment, then the next
            wal.append(i, rec(i))
            wal.flush()
            i += 1
        wal.append(i, rec(i))
        wal.flush()
        # where the reader stood: at the old end, about to look for the next segment
        assert reader._advance_segment() is False
        got: list[bytes] = []
        for _ in range(10):
            got += reader.read_batch(64, 1 << 20)
        assert got == [rec(j) for j in range(6, i + 1)]
    wal.close()


def test_a_reader_thread_keeps_up_with_a_writer_thread(tmp_path: Path) -> None:
    import threading

    wal = open_wal(tmp_path, segment_max_bytes=3000)
    total = 3000
    done = threading.Event()
    got: list[bytes] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            with SegmentReader(tmp_path, 1) as reader:
                deadline = time.monotonic() + 30
                while len(got) < total and time.monotonic() < deadline:
                    batch = reader.read_batch(64, 1 << 20)
                    got.extend(batch)
                    if not batch:
                        time.sleep(0.001)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=read)
    thread.start()
    for i in range(1, total + 1):
        wal.append(i, rec(i))
        if i % 7 == 0:
            wal.flush()
    wal.flush()
    assert done.wait(30)
    thread.join(5)
    assert not errors, errors
    assert got == [rec(i) for i in range(1, total + 1)]
    assert wal.segments_rolled > 10
    wal.close()


# ------------------------------------------------------------------ config and decision
def test_log_retention_config_defaults_and_validation() -> None:
    from synap.config import ConfigError, build_config
    from synap.persistence.manager import retention_from_config

    cfg = build_config({})
    r = retention_from_config(cfg.persistence.log_retention)
    assert (r.max_bytes, r.max_age_secs, r.max_records) == (8192 << 20, 3600, None)
    assert cfg.persistence.segment_max_mb == 64
    cfg = build_config(
        {"persistence": {"log_retention": {"max_mb": None, "max_records": 5, "max_age_secs": 0}}}
    )
    r = retention_from_config(cfg.persistence.log_retention)
    assert (r.max_bytes, r.max_age_secs, r.max_records) == (None, 0, 5)
    with pytest.raises(ConfigError, match="log_retention.max_mb"):
        build_config({"persistence": {"log_retention": {"max_mb": -1}}})
    with pytest.raises(ConfigError, match="log_retention"):
        build_config({"persistence": {"log_retention": {"max_bytes": 1}}})


def test_decide_sync_continues_from_the_disk_bounds() -> None:
    from synap.replication.handshake import decide_sync
    from synap.replication.log import LogBounds

    replid = "a" * 40
    # Memory alone starts at 5000; the disk reaches back to 10.
    assert not decide_sync(replid, 100, replid, None, -1, LogBounds(5000, 9000)).partial
    assert decide_sync(replid, 100, replid, None, -1, LogBounds(10, 9000)).partial
    assert not decide_sync(replid, 9, replid, None, -1, LogBounds(10, 9000)).partial


# ------------------------------------------------------------------ log inspect
def _run_inspect(
    directory: Path, start: int | None = None, limit: int | None = None
) -> tuple[int, list[str], list[str]]:
    from synap.persistence.inspect import inspect_log

    out: list[str] = []
    err: list[str] = []
    status = inspect_log(directory, start, limit, out.append, err.append)
    return status, [line for line in out if not line.startswith("#")], err


def test_inspect_a_torn_tail_is_a_warning_a_flipped_bit_an_error(tmp_path: Path) -> None:
    wal = open_wal(tmp_path, segment_max_bytes=1500)
    fill(wal, range(1, 101))
    wal.close()
    status, lines, err = _run_inspect(tmp_path, 40, 3)
    assert status == 0
    assert [int(line.split()[0]) for line in lines] == [40, 41, 42]
    assert lines[0].startswith("40  SET key:40 value_bytes=23 expire_at_ms=0")
    last = list_segments(tmp_path)[-1].path
    with open(last, "ab") as f:
        f.write(HEADER.pack(50, 0, 101) + b"partial")
    status, lines, err = _run_inspect(tmp_path)
    assert status == 0 and len(lines) == 100
    assert any(line.startswith("warning:") and "incomplete record" in line for line in err)
    middle = list_segments(tmp_path)[2]
    _corrupt_record(middle.path, 1)
    status, lines, err = _run_inspect(tmp_path)
    assert status == 1
    assert int(lines[-1].split()[0]) == middle.first_offset
    assert any(line.startswith(f"CORRUPT: {middle.path.name}: checksum mismatch") for line in err)
