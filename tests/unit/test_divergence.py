"""Truncating a forked history from the data directory (synap/persistence/divergence.py):
the dataset at the fork point is exactly the first records applied one by one, and the
records after it are the ones saved for the operator."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from synap.persistence.divergence import (
    CannotTruncate,
    read_diverged_file,
    rebuild_at,
    write_diverged_file,
)
from synap.persistence.manager import Persistence
from synap.store.effects import OP_DEL, OP_SET, apply_record, encode_record
from synap.store.history import Position
from synap.store.keyspace import Keyspace
from tests.unit.test_recovery import random_records

REPLID = "1" * 40
NEW_REPLID = "2" * 40


def reference(records: list[bytes]) -> Keyspace:
    ks = Keyspace(expire_on_access=False)
    for record in records:
        apply_record(ks, record)
    return ks


def write_history(directory: Path, records: list[bytes], snapshot_at: list[int]) -> None:
    """A data directory holding ``records`` (offsets 1..n), with snapshots taken after
    the offsets in ``snapshot_at``."""

    async def run() -> None:
        p = Persistence(directory, "always")
        p.open()
        ks = Keyspace(expire_on_access=False)
        p.recover(ks)
        for offset, record in enumerate(records, 1):
            apply_record(ks, record)
            p.append(offset, record)
            p.flush()
            if offset in snapshot_at:
                await p.snapshot(ks, Position(REPLID, offset))
        p.shutdown()

    asyncio.run(run())


@pytest.mark.parametrize("snapshot_at", [[], [30], [30, 60], [70], [50]])
def test_rebuild_at_the_fork_point_equals_the_first_records_applied(
    tmp_path: Path, snapshot_at: list[int]
) -> None:
    records = random_records(80, seed=len(snapshot_at) + sum(snapshot_at))
    write_history(tmp_path, records, snapshot_at)
    rebuilt = rebuild_at(tmp_path, 50, 80)
    expected = reference(records[:50])
    assert rebuilt.data == expected.data
    assert rebuilt.expires == expected.expires
    assert rebuilt.json_keys == expected.json_keys
    assert rebuilt.diverged == [(o, records[o - 1]) for o in range(51, 81)]
    assert rebuilt.snapshot_offset <= 50


def test_no_snapshot_at_or_before_the_fork_point_cannot_truncate(tmp_path: Path) -> None:
    records = random_records(80, seed=3)
    write_history(tmp_path, records, [60, 70])  # the snapshots at 0 and 60 are pruned
    with pytest.raises(CannotTruncate, match="no usable snapshot at or before the fork point 50"):
        rebuild_at(tmp_path, 50, 80)


def test_records_missing_from_the_wal_cannot_truncate(tmp_path: Path) -> None:
    records = random_records(40, seed=4)
    write_history(tmp_path, records, [])
    with pytest.raises(CannotTruncate, match="not up to our offset 45"):
        rebuild_at(tmp_path, 30, 45)


def test_diverged_file_holds_exactly_the_removed_records(tmp_path: Path) -> None:
    records = [encode_record([[OP_SET, b"k%d" % i, b"v%d" % i, 0]]) for i in range(1, 11)]
    records.append(encode_record([[OP_DEL, b"k1"]]))
    write_history(tmp_path, records, [])
    rebuilt = rebuild_at(tmp_path, 8, 11)
    path = write_diverged_file(tmp_path, REPLID, rebuilt, NEW_REPLID)
    assert path.name == f"diverged-{REPLID}-8.jsonl"
    header, saved = read_diverged_file(path)
    assert header["replid"] == REPLID and header["new_master_replid"] == NEW_REPLID
    assert (header["fork_offset"], header["last_offset"], header["records"]) == (8, 11, 3)
    assert saved == [(9, records[8]), (10, records[9]), (11, records[10])]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[1]["ops"] == ["SET k9 value_bytes=2 expire_at_ms=0"]
    assert lines[3]["ops"] == ["DEL k1"]
    assert rebuilt.data == {b"k%d" % i: b"v%d" % i for i in range(1, 9)}


def test_a_second_file_for_the_same_fork_point_never_replaces_the_first(tmp_path: Path) -> None:
    records = [encode_record([[OP_SET, b"k%d" % i, b"v", 0]]) for i in range(1, 6)]
    write_history(tmp_path, records, [])
    first = write_diverged_file(tmp_path, REPLID, rebuild_at(tmp_path, 3, 5), NEW_REPLID)
    second = write_diverged_file(tmp_path, REPLID, rebuild_at(tmp_path, 3, 4), NEW_REPLID)
    assert second.name == f"diverged-{REPLID}-3.2.jsonl"
    assert read_diverged_file(first)[1] == [(4, records[3]), (5, records[4])]
    assert read_diverged_file(second)[1] == [(4, records[3])]
