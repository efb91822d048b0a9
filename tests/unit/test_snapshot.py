"""Snapshot files: round trip, checks that catch every defect, fallback and retention."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from synap.persistence import PersistenceError
from synap.persistence import snapshot as snapshot_module
from synap.persistence.snapshot import (
    CHUNK_MAX_ENTRIES,
    CorruptSnapshot,
    list_snapshots,
    load_newest_snapshot,
    prune_snapshots,
    read_snapshot,
    remove_temp_files,
    snapshot_name,
    write_snapshot,
)

REPLID = "a" * 40
REPLID2 = "b" * 40


def dataset(n: int) -> tuple[dict[bytes, bytes], dict[bytes, int]]:
    data = {b"key:%d" % i: b"value:%d" % i for i in range(n)}
    expires = {b"key:%d" % i: 1_900_000_000_000 + i for i in range(0, n, 3)}
    return data, expires


def save(directory: Path, offset: int, n: int = 10) -> Path:
    data, expires = dataset(n)
    return write_snapshot(
        directory,
        data,
        expires,
        replid=REPLID,
        offset=offset,
        replid2=REPLID2,
        second_offset=offset // 2,
    )


def test_round_trip_with_ttls_and_replication_ids(tmp_path: Path) -> None:
    data, expires = dataset(3 * CHUNK_MAX_ENTRIES + 7)  # several frames
    data[b"big"] = os.urandom(200 * 1024)  # one frame larger than the frame target
    data[b""] = b""  # empty key and value are legal
    expires[b"big"] = 1_800_000_000_000
    path = write_snapshot(
        tmp_path, data, expires, replid=REPLID, offset=42, replid2=REPLID2, second_offset=17
    )
    assert path.name == snapshot_name(42) == "snapshot-00000000000000000042.snap"
    snap = read_snapshot(path)
    assert snap.data == data and snap.expires == expires
    assert (snap.replid, snap.offset, snap.replid2, snap.second_offset) == (REPLID, 42, REPLID2, 17)
    assert snap.created_ms > 0


def test_empty_keyspace_and_missing_replication_id_round_trip(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, {}, {}, replid=None, offset=0, replid2=None, second_offset=-1)
    snap = read_snapshot(path)
    assert (snap.data, snap.expires, snap.replid, snap.offset) == ({}, {}, None, 0)


def test_expired_keys_are_kept_so_replay_stays_deterministic(tmp_path: Path) -> None:
    data = {b"gone": b"x", b"live": b"y"}
    expires = {b"gone": 1}  # long past: the master's DEL for it may still be in the WAL
    snap = read_snapshot(
        write_snapshot(
            tmp_path, data, expires, replid=None, offset=1, replid2=None, second_offset=-1
        )
    )
    assert snap.data == data and snap.expires == expires


def test_every_single_byte_flip_is_detected(tmp_path: Path) -> None:
    path = save(tmp_path, 5, n=20)
    original = path.read_bytes()
    for position in range(len(original)):
        damaged = bytearray(original)
        damaged[position] ^= 0x01
        path.write_bytes(bytes(damaged))
        with pytest.raises(CorruptSnapshot, match=str(path)):
            read_snapshot(path)


def test_every_truncation_is_detected(tmp_path: Path) -> None:
    path = save(tmp_path, 5, n=20)
    original = path.read_bytes()
    for length in range(len(original)):
        path.write_bytes(original[:length])
        with pytest.raises(CorruptSnapshot):
            read_snapshot(path)
    path.write_bytes(original + b"\0")
    with pytest.raises(CorruptSnapshot, match="after the end"):
        read_snapshot(path)


def test_offset_in_header_must_match_the_file_name(tmp_path: Path) -> None:
    path = save(tmp_path, 5)
    renamed = path.rename(tmp_path / snapshot_name(6))
    with pytest.raises(CorruptSnapshot, match="does not match the file name"):
        read_snapshot(renamed)


def test_corrupt_newest_snapshot_falls_back_to_the_previous_one(tmp_path: Path, caplog) -> None:
    save(tmp_path, 100)
    newest = save(tmp_path, 200)
    damaged = bytearray(newest.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    newest.write_bytes(bytes(damaged))
    with caplog.at_level(logging.WARNING, logger="synap.persistence.snapshot"):
        loaded = load_newest_snapshot(tmp_path)
    assert loaded is not None
    snap, path = loaded
    assert snap.offset == 100 and path.name == snapshot_name(100)
    assert any(
        r.levelno == logging.WARNING and str(newest) in r.getMessage() for r in caplog.records
    )
    # The damaged file is set aside so that it is never chosen or kept again.
    assert [p.name for _, p in list_snapshots(tmp_path)] == [snapshot_name(100)]
    assert any(name.startswith(newest.name + ".corrupt-") for name in os.listdir(tmp_path))


def test_no_usable_snapshot_is_refused_and_nothing_is_moved(tmp_path: Path) -> None:
    for offset in (100, 200):
        path = save(tmp_path, offset)
        path.write_bytes(path.read_bytes()[:-3])
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(PersistenceError, match="no usable snapshot") as info:
        load_newest_snapshot(tmp_path)
    assert snapshot_name(100) in str(info.value) and snapshot_name(200) in str(info.value)
    assert sorted(os.listdir(tmp_path)) == before


def test_no_snapshot_at_all_is_not_an_error(tmp_path: Path) -> None:
    assert load_newest_snapshot(tmp_path) is None


def test_only_the_two_newest_snapshots_are_kept(tmp_path: Path) -> None:
    for offset in (1, 5, 9, 12):
        save(tmp_path, offset)
    kept = prune_snapshots(tmp_path)
    assert [offset for offset, _ in kept] == [9, 12]
    assert [offset for offset, _ in list_snapshots(tmp_path)] == [9, 12]


def test_failed_write_leaves_no_file_behind(tmp_path: Path, monkeypatch) -> None:
    def broken(*args: object, **kwargs: object):
        yield b"SYNSNAP1"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshot_module, "encode_snapshot", broken)
    with pytest.raises(OSError):
        save(tmp_path, 3)
    assert os.listdir(tmp_path) == []


def test_leftover_temporary_files_are_removed(tmp_path: Path) -> None:
    save(tmp_path, 3)
    (tmp_path / f"{snapshot_name(4)}.x1y2.tmp").write_bytes(b"SYNSNAP1partial")
    removed = remove_temp_files(tmp_path)
    assert [p.name for p in removed] == [f"{snapshot_name(4)}.x1y2.tmp"]
    assert os.listdir(tmp_path) == [snapshot_name(3)]


def test_writer_in_a_thread_saves_the_copy_while_the_original_changes(tmp_path: Path) -> None:
    data, expires = dataset(20_000)

    async def main() -> Path:
        copy_data, copy_expires = dict(data), dict(expires)
        task = asyncio.create_task(
            asyncio.to_thread(
                write_snapshot,
                tmp_path,
                copy_data,
                copy_expires,
                replid=REPLID,
                offset=7,
                replid2=None,
                second_offset=-1,
            )
        )
        for i in range(1000):  # the "server" keeps writing meanwhile
            data[b"new:%d" % i] = b"x"
            data.pop(b"key:%d" % i, None)
            if i % 100 == 0:
                await asyncio.sleep(0)
        return await task

    expected = dict(data)
    snap = read_snapshot(asyncio.run(main()))
    assert snap.data == expected and snap.expires == expires
