"""WAL segments: round trip, fsync policies, rotation, and every promise about damage."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from synap.persistence import wal as wal_module
from synap.persistence.wal import (
    HEADER,
    WAL_MAGIC,
    FsyncMode,
    WriteAheadLog,
    iter_segment,
    list_segments,
    segment_name,
)
from synap.store.effects import OP_SET, encode_record


def rec(i: int, size: int = 0) -> bytes:
    return encode_record([[OP_SET, b"key:%d" % i, b"v" * size or b"value:%d" % i, 0]])


def new_wal(directory: Path, mode: str = "never", first: int = 1) -> WriteAheadLog:
    directory.mkdir(parents=True, exist_ok=True)
    wal = WriteAheadLog(directory, mode)
    assert list(wal.replay()) == []
    wal.open_for_append(first)
    return wal


def write(directory: Path, offsets: range, *, rotate_at: tuple[int, ...] = ()) -> None:
    wal = new_wal(directory, first=offsets[0])
    for i in offsets:
        if i in rotate_at:
            wal.start_new_segment(i)
        wal.append(i, rec(i))
    wal.close()


def replay(directory: Path, after: int | None = None) -> tuple[WriteAheadLog, list[int]]:
    wal = WriteAheadLog(directory, "never")
    offsets = []
    for offset, record in wal.replay(after):
        assert record == rec(offset)
        offsets.append(offset)
    return wal, offsets


def flip_bit(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x10
    path.write_bytes(bytes(data))


def record_span(path: Path, index: int) -> tuple[int, int]:
    """Byte range [start, end) of the index-th record of a segment."""
    data = path.read_bytes()
    pos = len(WAL_MAGIC)
    for _ in range(index):
        pos += HEADER.size + HEADER.unpack_from(data, pos)[0]
    return pos, pos + HEADER.size + HEADER.unpack_from(data, pos)[0]


def only_segment(directory: Path) -> Path:
    (segment,) = list_segments(directory)
    return segment.path


# ---------------------------------------------------------------- round trip
def test_records_round_trip_in_order(tmp_path: Path) -> None:
    wal = new_wal(tmp_path)
    for i in range(1, 1001):
        wal.append(i, rec(i, size=i % 300))
        if i % 37 == 0:
            wal.flush()
    wal.close()
    wal = WriteAheadLog(tmp_path)
    got = list(wal.replay())
    assert got == [(i, rec(i, size=i % 300)) for i in range(1, 1001)]
    assert wal.last_replay.complete and wal.last_replay.problems == []
    assert list(iter_segment(only_segment(tmp_path))) == got


def test_append_only_buffers_and_flush_writes_once(tmp_path: Path, monkeypatch) -> None:
    wal = new_wal(tmp_path)
    path = only_segment(tmp_path)
    for i in range(1, 101):
        wal.append(i, rec(i))
    assert path.stat().st_size == len(WAL_MAGIC)
    writes: list[int] = []
    real_write = os.write

    def counting_write(fd: int, data: bytes) -> int:
        writes.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", counting_write)
    wal.flush()
    monkeypatch.undo()
    assert len(writes) == 1
    expected = len(WAL_MAGIC) + sum(HEADER.size + len(rec(i)) for i in range(1, 101))
    assert path.stat().st_size == expected == wal.wal_bytes
    wal.close()


def test_reopened_wal_continues_in_the_same_segment(tmp_path: Path) -> None:
    write(tmp_path, range(1, 11))
    wal, offsets = replay(tmp_path)
    assert offsets == list(range(1, 11))
    wal.open_for_append(11)
    for i in range(11, 21):
        wal.append(i, rec(i))
    wal.close()
    assert replay(tmp_path)[1] == list(range(1, 21))
    assert len(list_segments(tmp_path)) == 1


@pytest.mark.parametrize("mode", ["always", "periodic", "never"])
def test_fsync_modes_are_accepted_and_honoured(tmp_path: Path, monkeypatch, mode: str) -> None:
    synced: list[int] = []
    monkeypatch.setattr(wal_module, "_fdatasync", synced.append)
    wal = new_wal(tmp_path, mode)
    assert wal.mode is FsyncMode(mode)
    wal.append(1, rec(1))
    wal.flush()
    wal.append(2, rec(2))
    wal.flush()
    assert len(synced) == (2 if mode == "always" else 0)  # group commit: one per flush
    before = len(synced)
    wal.append(3, rec(3))
    wal.sync()  # what the periodic timer does: flush + fsync, whatever the mode
    assert len(synced) == before + 1 and wal.last_fsync_ms > 0
    wal.close()
    assert replay(tmp_path)[1] == [1, 2, 3]


def test_unknown_fsync_mode_is_refused_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="always.*periodic.*never"):
        WriteAheadLog(tmp_path, "sometimes")


def test_periodic_mode_fsyncs_rotated_segments_at_the_next_sync(
    tmp_path: Path, monkeypatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(wal_module, "_fdatasync", synced.append)
    wal = new_wal(tmp_path, "periodic")
    wal.append(1, rec(1))
    wal.start_new_segment(2)
    assert synced == []  # not on the event loop at rotation time...
    wal.fsync()
    assert len(synced) == 1  # ...but with the next periodic fsync
    wal.fsync()
    assert len(synced) == 1  # nothing new was written
    wal.append(2, rec(2))
    wal.flush()
    wal.fsync()
    assert len(synced) == 2
    wal.close()


# ---------------------------------------------------------------- rotation
def test_rotation_and_dropping_covered_segments(tmp_path: Path) -> None:
    wal = new_wal(tmp_path)
    for i in range(1, 10):
        if i in (4, 7):
            wal.start_new_segment(i)
        wal.append(i, rec(i))
    wal.flush()
    names = [seg.path.name for seg in wal.segments]
    assert names == [segment_name(1), segment_name(4), segment_name(7)]
    assert wal.drop_segments_before(4) == [tmp_path / segment_name(1)]
    assert wal.drop_segments_before(6) == []  # segment 4..6 still holds record 6
    assert wal.drop_segments_before(100) == [tmp_path / segment_name(4)]  # never the current
    wal.close()
    assert replay(tmp_path, after=6)[1] == [7, 8, 9]


def test_rotating_onto_an_empty_segment_is_a_no_op(tmp_path: Path) -> None:
    wal = new_wal(tmp_path)
    wal.start_new_segment(1)
    wal.append(1, rec(1))
    wal.start_new_segment(2)
    wal.start_new_segment(2)
    assert [seg.first_offset for seg in wal.segments] == [1, 2]
    with pytest.raises(ValueError):
        wal.start_new_segment(1)
    wal.close()


def test_replay_after_a_snapshot_offset(tmp_path: Path) -> None:
    write(tmp_path, range(1, 10), rotate_at=(4, 7))
    assert replay(tmp_path, after=5)[1] == [6, 7, 8, 9]
    assert replay(tmp_path, after=9)[1] == []
    wal, offsets = replay(tmp_path, after=20)  # snapshot newer than the WAL: nothing to do
    assert offsets == [] and wal.last_replay.complete


# ---------------------------------------------------------------- torn tails
def test_torn_tail_at_every_byte_of_the_last_record_is_truncated(tmp_path: Path, caplog) -> None:
    source = tmp_path / "source"
    write(source, range(1, 4))
    full = only_segment(source).read_bytes()
    start, end = record_span(only_segment(source), 2)
    assert end == len(full)
    for cut in range(start + 1, end):  # every torn length of record 3
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        path = directory / segment_name(1)
        path.write_bytes(full[:cut])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="synap.persistence.wal"):
            wal, offsets = replay(directory)
        assert offsets == [1, 2], cut
        assert path.stat().st_size == start, "the torn bytes must be cut off the file"
        (warning,) = caplog.records
        assert warning.levelno == logging.WARNING
        assert str(path) in warning.getMessage() and f"byte {start}" in warning.getMessage()
        assert wal.last_replay.complete  # an interrupted write is not lost history
        # New appends follow the good data and are read back after a restart.
        wal.open_for_append(3)
        wal.append(3, rec(3))
        wal.close()
        caplog.clear()
        assert replay(directory)[1] == [1, 2, 3]
        assert caplog.records == []
        shutil.rmtree(directory)


def test_torn_segment_header_is_repaired(tmp_path: Path, caplog) -> None:
    write(tmp_path, range(1, 4))
    path = tmp_path / segment_name(4)
    path.write_bytes(WAL_MAGIC[:3])  # crash right after creating the next segment
    with caplog.at_level(logging.WARNING):
        wal, offsets = replay(tmp_path)
    assert offsets == [1, 2, 3]
    assert path.read_bytes() == WAL_MAGIC
    wal.open_for_append(4)
    wal.append(4, rec(4))
    wal.close()
    assert replay(tmp_path)[1] == [1, 2, 3, 4]


def test_zero_filled_tail_is_a_torn_tail_not_corruption(tmp_path: Path, caplog) -> None:
    write(tmp_path, range(1, 4))
    path = only_segment(tmp_path)
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(bytes(4096))
    with caplog.at_level(logging.WARNING):
        wal, offsets = replay(tmp_path)
    assert offsets == [1, 2, 3]
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert path.stat().st_size == size
    assert wal.last_replay.quarantined == []


# ---------------------------------------------------------------- corruption
def test_bit_flip_anywhere_in_a_middle_record_is_detected(tmp_path: Path, caplog) -> None:
    source = tmp_path / "source"
    write(source, range(1, 4))
    start, end = record_span(only_segment(source), 1)
    for position in range(start, end):
        directory = tmp_path / f"flip{position}"
        shutil.copytree(source, directory)
        path = directory / segment_name(1)
        flip_bit(path, position)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="synap.persistence.wal"):
            wal, offsets = replay(directory)
        assert offsets == [1], position  # nothing that fails its checksum is loaded
        assert path.stat().st_size == start
        assert any(str(path) in r.getMessage() for r in caplog.records)
        shutil.rmtree(directory)


def test_corruption_followed_by_data_in_last_segment_is_an_error_and_kept(
    tmp_path: Path, caplog
) -> None:
    write(tmp_path, range(1, 4))
    path = only_segment(tmp_path)
    original = path.read_bytes()
    start, _ = record_span(path, 1)
    flip_bit(path, start + HEADER.size + 2)  # payload of record 2; record 3 follows
    with caplog.at_level(logging.WARNING):
        wal, offsets = replay(tmp_path)
    assert offsets == [1]
    (error,) = caplog.records
    assert error.levelno == logging.ERROR and f"byte {start}" in error.getMessage()
    assert not wal.last_replay.complete
    (kept,) = wal.last_replay.quarantined
    assert kept.name.startswith(path.name + ".corrupt-")
    assert len(kept.read_bytes()) == len(original)  # the damaged bytes are preserved


def test_corruption_in_an_earlier_segment_stops_replay_there(tmp_path: Path, caplog) -> None:
    write(tmp_path, range(1, 10), rotate_at=(4, 7))
    first = tmp_path / segment_name(1)
    start, _ = record_span(first, 1)
    flip_bit(first, start + HEADER.size + 1)
    with caplog.at_level(logging.WARNING):
        wal, offsets = replay(tmp_path)
    assert offsets == [1]
    report = wal.last_replay
    assert not report.complete
    (error,) = caplog.records
    assert error.levelno == logging.ERROR
    assert str(first) in error.getMessage() and f"byte {start}" in error.getMessage()
    # Later segments are set aside (never replayed), the damaged one cut at good data.
    assert [seg.path for seg in list_segments(tmp_path)] == [first]
    assert len(report.quarantined) == 3
    assert first.stat().st_size == start
    # The node continues from offset 1 and the next recovery is clean.
    wal.open_for_append(2)
    wal.append(2, rec(2))
    wal.close()
    caplog.clear()
    wal, offsets = replay(tmp_path)
    assert offsets == [1, 2] and wal.last_replay.complete and caplog.records == []


def test_gap_in_offsets_stops_replay(tmp_path: Path, caplog) -> None:
    wal = new_wal(tmp_path)
    for i in (1, 2, 4, 5):
        wal.append(i, rec(i))
    wal.close()
    with caplog.at_level(logging.ERROR):
        wal, offsets = replay(tmp_path)
    assert offsets == [1, 2]
    assert not wal.last_replay.complete
    assert "where 3 was expected" in caplog.records[0].getMessage()


def test_wal_must_continue_right_after_the_snapshot(tmp_path: Path) -> None:
    write(tmp_path, range(5, 9))
    wal, offsets = replay(tmp_path, after=2)  # records 3 and 4 are missing
    assert offsets == [] and not wal.last_replay.complete


def test_bad_magic_is_corruption_not_a_torn_tail(tmp_path: Path, caplog) -> None:
    write(tmp_path, range(1, 3))
    path = only_segment(tmp_path)
    path.write_bytes(b"GARBAGE!" + path.read_bytes()[8:])
    with caplog.at_level(logging.WARNING):
        wal, offsets = replay(tmp_path)
    assert offsets == []
    assert caplog.records[0].levelno == logging.ERROR
    assert path.read_bytes() == WAL_MAGIC


# ---------------------------------------------------------------- history replacement
def test_hold_keeps_appends_in_memory_until_resume(tmp_path: Path) -> None:
    wal = new_wal(tmp_path)
    wal.append(1, rec(1))
    wal.hold()  # record 1 belongs to the old history: flushed to the old segment
    assert replay_file(tmp_path / segment_name(1)) == [1]
    wal.append(51, rec(51))
    wal.flush()  # held: nothing written
    wal.discard_segments()
    assert list_segments(tmp_path) == []
    wal.resume(51)
    wal.close()
    assert replay(tmp_path)[1] == [51]


def test_suspended_wal_drops_appends(tmp_path: Path) -> None:
    wal = new_wal(tmp_path)
    wal.suspend()
    wal.append(1, rec(1))
    wal.flush()
    assert wal.buffered_bytes == 0
    wal.resume(2)
    wal.append(2, rec(2))
    wal.close()
    assert replay_file(tmp_path / segment_name(2)) == [2]


def replay_file(path: Path) -> list[int]:
    return [offset for offset, _ in iter_segment(path)]


def test_append_batch_writes_the_same_bytes_as_appending_one_by_one(tmp_path: Path) -> None:
    one, batch = tmp_path / "one", tmp_path / "batch"
    a, b = new_wal(one, first=5), new_wal(batch, first=5)
    records = [rec(i, size=i % 50) for i in range(5, 45)]
    for offset, record in enumerate(records, 5):
        a.append(offset, record)
    b.append_batch(5, records[:1])
    b.append_batch(6, records[1:])
    assert (a.last_offset, b.last_offset) == (44, 44)
    a.close()
    b.close()
    assert only_segment(one).read_bytes() == only_segment(batch).read_bytes()
    assert [r for _, r in iter_segment(only_segment(batch))] == records
