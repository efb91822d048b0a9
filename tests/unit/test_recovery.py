"""Recovery through :class:`Persistence`: a restarted node has exactly the data it had.

The reference for "exactly" is always the same: the records applied one by one to an
empty keyspace with :func:`apply_record`, as a replica would."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from synap.persistence import PersistenceError
from synap.persistence import manager as manager_module
from synap.persistence.manager import Persistence, Position
from synap.persistence.snapshot import list_snapshots, snapshot_name
from synap.persistence.wal import HEADER, WAL_MAGIC, list_segments, segment_name
from synap.store.effects import (
    OP_DEL,
    OP_EXPIRE,
    OP_FLUSH,
    OP_PERSIST,
    OP_SET,
    apply_record,
    encode_record,
)
from synap.store.keyspace import Keyspace

REPLID = "1" * 40
OTHER_REPLID = "2" * 40
FUTURE = 4_000_000_000_000
GATE_TIMEOUT = 5.0


def random_records(n: int, seed: int) -> list[bytes]:
    """Writes of every kind, including expiries already in the past and FLUSH."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        ops: list[list[Any]] = []
        for _ in range(1 if rng.random() < 0.8 else 3):
            key = b"k%d" % rng.randrange(60)
            roll = rng.random()
            if roll < 0.5:
                expiry = rng.choice([0, 0, 1, FUTURE + rng.randrange(10**6)])
                ops.append([OP_SET, key, b"v%d" % rng.randrange(10**9), expiry])
            elif roll < 0.7:
                ops.append([OP_DEL, key])
            elif roll < 0.85:
                ops.append([OP_EXPIRE, key, FUTURE + rng.randrange(10**6)])
            elif roll < 0.995:
                ops.append([OP_PERSIST, key])
            else:
                ops.append([OP_FLUSH])
        records.append(encode_record(ops))
    return records


def reference(records: list[bytes]) -> Keyspace:
    keyspace = Keyspace(expire_on_access=False)
    for record in records:
        apply_record(keyspace, record)
    return keyspace


def assert_same(actual: Keyspace, expected: Keyspace) -> None:
    assert actual.data == expected.data
    assert actual.expires == expected.expires


class Node:
    """What the server does with Persistence, without sockets."""

    def __init__(self, directory: Path, mode: str = "never", **kwargs: Any) -> None:
        self.persistence = Persistence(
            directory, mode, kwargs.pop("fsync_interval_ms", 1000), **kwargs
        )
        self.persistence.open()
        self.keyspace = Keyspace(expire_on_access=False)
        self.state = self.persistence.recover(self.keyspace)
        self.replid = self.state.replid or REPLID
        self.offset = self.state.offset

    def write(self, records: list[bytes]) -> None:
        for record in records:
            apply_record(self.keyspace, record)
            self.offset += 1
            self.persistence.append(self.offset, record)
        self.persistence.flush()  # once per batch, before the replies

    def position(self) -> Position:
        return Position(self.replid, self.offset)

    async def snapshot(self) -> Path | None:
        return await self.persistence.snapshot(self.keyspace, Position(self.replid, self.offset))

    def stop(self) -> None:
        self.persistence.shutdown()


def gate_snapshot_writes(monkeypatch: pytest.MonkeyPatch, name: str) -> threading.Event:
    """Make ``manager.<name>`` wait (in its worker thread) until the event is set."""
    gate = threading.Event()
    real = getattr(manager_module, name)

    def gated(*args: Any, **kwargs: Any) -> Any:
        assert gate.wait(GATE_TIMEOUT), "test never opened the gate"
        return real(*args, **kwargs)

    monkeypatch.setattr(manager_module, name, gated)
    return gate


# ------------------------------------------------------------------ the promise
def test_snapshot_plus_wal_replay_equals_applying_every_record(tmp_path: Path) -> None:
    records = random_records(900, seed=1)
    node = Node(tmp_path)
    node.write(records[:300])
    asyncio.run(node.snapshot())
    node.write(records[300:600])
    asyncio.run(node.snapshot())
    node.write(records[600:])
    node.stop()

    again = Node(tmp_path)
    assert_same(again.keyspace, reference(records))
    assert again.state.offset == 900 and again.state.records_replayed == 300
    assert again.state.snapshot_file == tmp_path / snapshot_name(600)
    assert again.state.replid == REPLID and again.state.complete
    again.stop()


def test_new_directory_starts_empty_with_a_base_snapshot(tmp_path: Path) -> None:
    node = Node(tmp_path / "new" / "data")
    assert node.state.offset == 0 and node.state.replid is None
    assert node.state.snapshot_file is None and len(node.keyspace) == 0
    assert [offset for offset, _ in list_snapshots(tmp_path / "new" / "data")] == [0]
    node.write(random_records(10, seed=2))
    node.stop()
    again = Node(tmp_path / "new" / "data")
    assert again.state.offset == 10 and again.state.records_replayed == 10
    again.stop()


def test_snapshot_written_while_appends_continue(tmp_path: Path, monkeypatch) -> None:
    records = random_records(3000, seed=3)
    node = Node(tmp_path)
    node.write(records[:1000])
    gate = gate_snapshot_writes(monkeypatch, "write_snapshot")

    async def main() -> None:
        task = asyncio.create_task(node.snapshot())
        await asyncio.sleep(0)  # the copy and the WAL rotation happen here, at offset 1000
        for start in range(1000, 3000, 100):  # the server keeps serving meanwhile
            node.write(records[start : start + 100])
            await asyncio.sleep(0)
        assert not task.done()
        gate.set()
        assert await task == tmp_path / snapshot_name(1000)

    asyncio.run(main())
    node.stop()
    again = Node(tmp_path)
    assert_same(again.keyspace, reference(records))
    assert again.state.snapshot_file == tmp_path / snapshot_name(1000)
    assert again.state.records_replayed == 2000


def test_close_writes_a_final_snapshot(tmp_path: Path) -> None:
    records = random_records(200, seed=4)
    node = Node(tmp_path)
    node.write(records)
    asyncio.run(
        node.persistence.close(node.keyspace, Position(node.replid, node.offset, "0" * 40, -1))
    )
    again = Node(tmp_path)
    assert again.state.records_replayed == 0 and again.state.offset == 200
    assert (again.state.replid, again.state.replid2) == (REPLID, "0" * 40)
    assert_same(again.keyspace, reference(records))
    again.stop()


# ------------------------------------------------------------------ damage
def test_damaged_newest_snapshot_previous_one_and_the_wal_rebuild_everything(
    tmp_path: Path, caplog
) -> None:
    records = random_records(600, seed=5)
    node = Node(tmp_path)
    node.write(records[:200])
    asyncio.run(node.snapshot())
    node.write(records[200:400])
    asyncio.run(node.snapshot())
    node.write(records[400:])
    node.stop()
    newest = tmp_path / snapshot_name(400)
    newest.write_bytes(newest.read_bytes()[:-1])
    with caplog.at_level(logging.WARNING):
        again = Node(tmp_path)
    # The WAL is kept back to the previous snapshot, so nothing at all is lost.
    assert_same(again.keyspace, reference(records))
    assert again.state.snapshot_file == tmp_path / snapshot_name(200)
    assert again.state.records_replayed == 400 and again.state.complete
    assert any(str(newest) in r.getMessage() for r in caplog.records)
    again.stop()


def test_damage_in_a_segment_the_snapshot_covers_is_irrelevant(tmp_path: Path, caplog) -> None:
    records = random_records(300, seed=6)
    node = Node(tmp_path)
    node.write(records[:100])
    asyncio.run(node.snapshot())
    node.write(records[100:200])
    asyncio.run(node.snapshot())
    node.write(records[200:])
    node.stop()
    covered = tmp_path / segment_name(101)
    flip(covered, len(WAL_MAGIC) + HEADER.size + 1)
    with caplog.at_level(logging.WARNING):
        again = Node(tmp_path)
    assert_same(again.keyspace, reference(records))
    assert caplog.records == []  # not even read
    again.stop()


def test_corruption_in_a_middle_segment_recovers_a_consistent_prefix(
    tmp_path: Path, caplog
) -> None:
    records = random_records(150, seed=7)
    node = Node(tmp_path)
    for start in (0, 50, 100):  # three segments after the base snapshot
        if start:
            node.persistence.wal.start_new_segment(start + 1)
        node.write(records[start : start + 50])
    node.stop()
    middle = tmp_path / segment_name(51)
    offset = len(WAL_MAGIC)
    for _ in range(19):  # skip records 51..69: damage record 70
        offset += HEADER.size + HEADER.unpack_from(middle.read_bytes(), offset)[0]
    flip(middle, offset + HEADER.size)
    with caplog.at_level(logging.ERROR):
        again = Node(tmp_path)
    assert again.state.offset == 69 and not again.state.complete
    assert_same(again.keyspace, reference(records[:69]))
    assert any(str(middle) in r.getMessage() for r in caplog.records)
    assert len(again.state.problems) == 1
    # Service resumes at 70 on a clean WAL; the next restart is clean and complete.
    again.write(records[69:])
    again.stop()
    caplog.clear()
    third = Node(tmp_path)
    assert third.state.complete and caplog.records == []
    assert_same(third.keyspace, reference(records))
    third.stop()


def test_wal_without_any_snapshot_is_refused(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.write(random_records(10, seed=8))
    node.stop()
    (tmp_path / snapshot_name(0)).unlink()
    with pytest.raises(PersistenceError, match="no snapshot"):
        Node(tmp_path)


def test_record_that_passes_its_checksum_but_cannot_be_applied_refuses_start(
    tmp_path: Path,
) -> None:
    node = Node(tmp_path)
    node.write(random_records(3, seed=9))
    node.persistence.append(4, b"\xc1")  # valid frame, not a record
    node.persistence.flush()
    node.stop()
    with pytest.raises(PersistenceError, match="offset 4 .* cannot be applied"):
        Node(tmp_path)


# ------------------------------------------------------------------ full sync
def test_reset_replaces_the_history_even_at_a_lower_offset(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.write(random_records(300, seed=10))
    asyncio.run(node.snapshot())
    node.write(random_records(100, seed=11))
    # Full sync from another master whose history is at offset 50.
    master_records = random_records(50, seed=12)
    node.keyspace.replace(
        dict(reference(master_records).data), dict(reference(master_records).expires)
    )
    node.replid, node.offset = OTHER_REPLID, 50
    asyncio.run(node.persistence.reset(node.keyspace, Position(OTHER_REPLID, 50)))
    streamed = random_records(20, seed=13)
    node.write(streamed)
    node.stop()

    assert [offset for offset, _ in list_snapshots(tmp_path)] == [50]
    assert [seg.first_offset for seg in list_segments(tmp_path)] == [51]
    again = Node(tmp_path)
    assert (again.state.replid, again.state.offset) == (OTHER_REPLID, 70)
    assert_same(again.keyspace, reference(master_records + streamed))
    again.stop()


def test_records_appended_during_a_reset_reach_the_new_wal(tmp_path: Path, monkeypatch) -> None:
    node = Node(tmp_path)
    node.write(random_records(30, seed=14))
    gate = gate_snapshot_writes(monkeypatch, "write_snapshot_temp")
    streamed = random_records(40, seed=15)

    async def main() -> None:
        node.keyspace.replace({}, {})
        node.replid, node.offset = OTHER_REPLID, 1000
        task = asyncio.create_task(
            node.persistence.reset(node.keyspace, Position(OTHER_REPLID, 1000))
        )
        await asyncio.sleep(0)
        node.write(streamed)  # held in memory: the new history has no segment yet
        assert not task.done()
        gate.set()
        await task

    asyncio.run(main())
    node.stop()
    again = Node(tmp_path)
    assert again.state.offset == 1040
    assert_same(again.keyspace, reference(streamed))
    again.stop()


def test_a_later_reset_supersedes_a_pending_one(tmp_path: Path, monkeypatch) -> None:
    node = Node(tmp_path)
    gate = gate_snapshot_writes(monkeypatch, "write_snapshot_temp")
    first, second = random_records(5, seed=16), random_records(5, seed=17)

    async def main() -> tuple[Path | None, Path | None]:
        node.offset = 100
        one = asyncio.create_task(
            node.persistence.reset(node.keyspace, Position(OTHER_REPLID, 100))
        )
        await asyncio.sleep(0)
        node.write(first)
        two = asyncio.create_task(
            node.persistence.reset(node.keyspace, Position(OTHER_REPLID, 105))
        )
        await asyncio.sleep(0)
        node.write(second)
        gate.set()
        return await one, await two

    one, two = asyncio.run(main())
    assert one is None and two == tmp_path / snapshot_name(105)
    node.stop()
    again = Node(tmp_path)
    assert again.state.offset == 110 and again.state.records_replayed == 5
    assert_same(again.keyspace, reference(first + second))
    again.stop()


def test_failed_reset_keeps_the_old_state_on_disk_and_suspends_the_wal(
    tmp_path: Path, monkeypatch
) -> None:
    old = random_records(100, seed=18)
    node = Node(tmp_path)
    node.write(old)

    def disk_full(*args: Any, **kwargs: Any) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(manager_module, "write_snapshot_temp", disk_full)
    node.keyspace.replace({}, {})
    node.replid, node.offset = OTHER_REPLID, 500
    with pytest.raises(PersistenceError, match="No space left"):
        asyncio.run(node.persistence.reset(node.keyspace, Position(OTHER_REPLID, 500)))
    assert node.persistence.wal.suspended
    node.write(random_records(5, seed=19))  # dropped: no base snapshot for them yet
    node.stop()
    again = Node(tmp_path)  # a crash now comes back with the old, consistent state
    assert (again.state.replid, again.state.offset) == (None, 100)
    assert_same(again.keyspace, reference(old))
    again.stop()


def test_suspended_wal_resumes_with_the_next_snapshot(tmp_path: Path, monkeypatch) -> None:
    node = Node(tmp_path)
    node.write(random_records(10, seed=20))
    monkeypatch.setattr(manager_module, "write_snapshot_temp", _raise_enospc)
    node.keyspace.replace({}, {})
    node.replid, node.offset = OTHER_REPLID, 500
    with pytest.raises(PersistenceError):
        asyncio.run(node.persistence.reset(node.keyspace, Position(OTHER_REPLID, 500)))
    monkeypatch.undo()
    lost = random_records(5, seed=21)
    node.write(lost)  # in memory only
    asyncio.run(node.snapshot())  # becomes the new base, the WAL resumes after it
    kept = random_records(5, seed=22)
    node.write(kept)
    node.stop()
    again = Node(tmp_path)
    assert (again.state.replid, again.state.offset) == (OTHER_REPLID, 510)
    assert_same(again.keyspace, reference(lost + kept))
    again.stop()


def test_crash_between_dropping_the_old_wal_and_installing_the_snapshot(
    tmp_path: Path, monkeypatch
) -> None:
    old = random_records(100, seed=23)
    node = Node(tmp_path)
    node.write(old[:60])
    asyncio.run(node.snapshot())
    node.write(old[60:])
    monkeypatch.setattr(manager_module, "commit_snapshot", _raise_enospc)
    node.keyspace.replace({}, {})
    with pytest.raises(PersistenceError):
        asyncio.run(node.persistence.reset(node.keyspace, Position(OTHER_REPLID, 5)))
    node.stop()
    again = Node(tmp_path)
    # Old WAL gone, old snapshot kept: an older but consistent state of the old history,
    # never the old WAL replayed onto the new dataset.
    assert again.state.offset == 60 and again.state.replid == REPLID
    assert_same(again.keyspace, reference(old[:60]))
    again.stop()


def _raise_enospc(*args: Any, **kwargs: Any) -> Any:
    raise OSError(28, "No space left on device")


# ------------------------------------------------------------------ timers and counters
def test_periodic_task_fsyncs_and_snapshots_when_there_are_changes(tmp_path: Path) -> None:
    node = Node(tmp_path, "periodic", fsync_interval_ms=10, snapshot_interval_secs=0.05)
    persistence = node.persistence

    async def main() -> None:
        task = asyncio.create_task(persistence.run_periodic(node.keyspace, node.position))
        node.write(random_records(20, seed=24))
        for _ in range(200):  # bounded: at most ~2 s
            if persistence.snapshots_written >= 1 and persistence.wal.fsyncs >= 2:
                break
            await asyncio.sleep(0.01)
        written = persistence.snapshots_written
        assert written >= 1 and persistence.wal.fsyncs >= 2
        await asyncio.sleep(0.15)  # no changes since: no more snapshots
        assert persistence.snapshots_written == written
        task.cancel()
        await persistence.close(node.keyspace, Position(node.replid, node.offset))

    asyncio.run(main())
    assert [offset for offset, _ in list_snapshots(tmp_path)][-1] == 20


def test_stats_report_the_monitoring_counters(tmp_path: Path) -> None:
    node = Node(tmp_path, "always")
    node.write(random_records(10, seed=25))
    asyncio.run(node.snapshot())
    stats = node.persistence.stats()
    assert stats["fsync_mode"] == "always" and stats["snapshots_written"] == 1
    assert stats["last_snapshot_offset"] == 10 and int(stats["last_fsync_ms"]) > 0
    assert stats["wal_bytes"] == sum(seg.size for seg in list_segments(tmp_path))
    assert int(stats["wal_bytes"]) > 0
    assert int(stats["last_snapshot_ms"]) > 0 and stats["wal_suspended"] is False
    node.stop()


def flip(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x40
    path.write_bytes(bytes(data))
