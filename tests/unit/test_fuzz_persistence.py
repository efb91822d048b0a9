"""The snapshot and WAL loaders on damaged files (hypothesis).

Whatever happens to the files of a data directory (random bytes, bit flips, truncation,
zero fill, garbage appended), loading either fails with a clear
:class:`~synap.persistence.PersistenceError` (``CorruptSnapshot`` for snapshots) or
gives back exactly a prefix of what was written: never a wrong record, never an
unexpected exception, and the repaired WAL takes new appends.

``tests/unit/test_wal.py`` and ``test_snapshot.py`` try every single-byte flip and every
truncation of one small file; these properties add random combinations of damage,
larger files, several segments, and the whole recovery (snapshot + WAL replay).
"""

from __future__ import annotations

import random
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synap.persistence import PersistenceError
from synap.persistence.manager import Persistence
from synap.persistence.snapshot import (
    FRAME,
    SNAPSHOT_MAGIC,
    TRAILER,
    CorruptSnapshot,
    read_snapshot,
    snapshot_name,
    write_snapshot,
)
from synap.persistence.wal import WAL_MAGIC, WriteAheadLog, list_segments
from synap.store.effects import OP_DEL, OP_SET, apply_record, encode_record
from synap.store.keyspace import Keyspace
from tests.support.fuzz_node import scaled

FUZZ = settings(
    max_examples=scaled(120), deadline=3000, suppress_health_check=[HealthCheck.too_slow]
)
REPLID = "a" * 40


@contextmanager
def scratch() -> Iterator[Path]:
    # Not pytest's tmp_path: hypothesis runs many examples per test call.
    with tempfile.TemporaryDirectory(prefix="synap-fuzz-") as name:
        yield Path(name)


def records_for(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        key = b"k%d" % rng.randrange(30)
        if rng.random() < 0.8:
            value = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
            out.append(encode_record([[OP_SET, key, value, rng.choice([0, 4_000_000_000_000])]]))
        else:
            out.append(encode_record([[OP_DEL, key]]))
    return out


# A damage plan: (kind, position as a fraction of the file, detail). Applied in order.
damage = st.lists(
    st.tuples(
        st.sampled_from(["flip", "truncate", "append", "zero", "overwrite"]),
        st.floats(0, 1),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=4,
)


def apply_damage(path: Path, plan: list[tuple[str, float, int]]) -> bytes:
    data = bytearray(path.read_bytes())
    for kind, where, detail in plan:
        at = min(int(where * len(data)), max(len(data) - 1, 0))
        if kind == "flip" and data:
            data[at] ^= 1 << (detail % 8)
        elif kind == "truncate":
            del data[at:]
        elif kind == "append":
            data += random.Random(detail).randbytes(detail)
        elif kind == "zero":
            data += bytes(detail + 1)
        elif kind == "overwrite" and data:
            data[at : at + 4] = random.Random(detail).randbytes(4)
    path.write_bytes(bytes(data))
    return bytes(data)


# ------------------------------------------------------------------ snapshots


def snapshot_of(seed: int, count: int) -> tuple[dict[bytes, bytes], dict[bytes, int]]:
    ks = Keyspace(expire_on_access=False)
    for record in records_for(seed, count):
        apply_record(ks, record)
    return dict(ks.data), dict(ks.expires)


@FUZZ
@given(st.binary(max_size=400), st.booleans())
def test_random_bytes_as_a_snapshot_are_a_clear_error(body: bytes, with_magic: bool) -> None:
    with scratch() as d:
        path = d / snapshot_name(0)
        path.write_bytes((SNAPSHOT_MAGIC if with_magic else b"") + body)
        try:
            read_snapshot(path)
        except CorruptSnapshot as exc:
            assert str(path) in str(exc)
        else:
            raise AssertionError("random bytes loaded as a snapshot")


@FUZZ
@given(st.integers(0, 10**6), st.integers(0, 300), damage)
def test_a_damaged_snapshot_is_refused_or_loads_unchanged(
    seed: int, count: int, plan: list[tuple[str, float, int]]
) -> None:
    data, expires = snapshot_of(seed, count)
    with scratch() as d:
        path = write_snapshot(
            d, data, expires, replid=REPLID, offset=count, replid2=None, second_offset=-1
        )
        original = path.read_bytes()
        damaged = apply_damage(path, plan)
        try:
            snap = read_snapshot(path)
        except CorruptSnapshot:
            assert damaged != original, "an intact snapshot was refused"
            return
        # Only a no-op "damage" may load, and then it must load exactly.
        assert damaged == original
        assert (snap.data, snap.expires, snap.replid, snap.offset) == (
            data,
            expires,
            REPLID,
            count,
        )


def frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=8)
    | st.text(max_size=8) | st.floats(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)  # fmt: skip
headers = (
    st.fixed_dictionaries(
        {},
        optional={
            "version": st.just(1) | msgpack_values,
            "replid": st.none() | st.just(REPLID) | msgpack_values,
            "offset": st.just(0) | msgpack_values,
            "replid2": st.none() | msgpack_values,
            "second_offset": st.just(-1) | msgpack_values,
            "created_ms": st.just(0) | msgpack_values,
            "keys": st.integers(0, 3) | msgpack_values,
        },
    )
    | msgpack_values
)


@FUZZ
@given(headers, st.lists(msgpack_values, max_size=3), st.integers(0, 3))
def test_frames_with_valid_checksums_but_any_content_never_crash_the_loader(
    header: Any, frames: list[Any], count: int
) -> None:
    # Past every CRC: what a bug (or a hand-edited file) could write. The loader must
    # answer CorruptSnapshot or a SnapshotData, nothing else. (It does not check that
    # entries are bytes: see docs/RELIABILITY.md, "not covered".)
    body = SNAPSHOT_MAGIC + frame(msgpack.packb(header, use_bin_type=True))
    for payload in frames:
        body += frame(msgpack.packb(payload, use_bin_type=True))
    body += FRAME.pack(0, 0)
    body += TRAILER.pack(zlib.crc32(body), count)
    with scratch() as d:
        path = d / snapshot_name(0)
        path.write_bytes(body)
        try:
            read_snapshot(path)
        except CorruptSnapshot:
            pass


# ------------------------------------------------------------------ the WAL


def write_wal(d: Path, records: list[bytes], per_segment: int) -> None:
    wal = WriteAheadLog(d, "never")
    wal.open_for_append(1)
    for offset, record in enumerate(records, 1):
        wal.append(offset, record)
        if offset % per_segment == 0 and offset < len(records):
            wal.start_new_segment(offset + 1)
    wal.close()


def replay(d: Path) -> list[tuple[int, bytes]]:
    wal = WriteAheadLog(d, "never")
    out = list(wal.replay(after=0))
    return out


@FUZZ
@given(
    st.integers(0, 10**6),
    st.integers(1, 120),
    st.integers(10, 200),
    st.lists(st.tuples(st.floats(0, 1), damage), min_size=1, max_size=2),
)
def test_a_damaged_wal_replays_a_prefix_and_takes_appends_again(
    seed: int, count: int, per_segment: int, damages: list[tuple[float, Any]]
) -> None:
    records = records_for(seed, count)
    with scratch() as d:
        write_wal(d, records, per_segment)
        segments = list_segments(d)
        for which, plan in damages:
            seg = segments[min(int(which * len(segments)), len(segments) - 1)]
            apply_damage(seg.path, plan)
        got = replay(d)  # repairs as it goes
        expected = list(enumerate(records, 1))
        assert got == expected[: len(got)], "replay produced a record that was not written"
        # The repaired WAL is one contiguous run that new records follow.
        wal = WriteAheadLog(d, "never")
        assert list(wal.replay(after=0)) == got, "a second replay differs from the first"
        wal.open_for_append(len(got) + 1)
        extra = encode_record([[OP_SET, b"after", b"repair", 0]])
        wal.append(len(got) + 1, extra)
        wal.close()
        assert replay(d) == [*got, (len(got) + 1, extra)]


@FUZZ
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes_as_a_wal_segment_replay_nothing(body: bytes, with_magic: bool) -> None:
    with scratch() as d:
        (d / "wal-00000000000000000001.log").write_bytes((WAL_MAGIC if with_magic else b"") + body)
        assert replay(d) == []


# ------------------------------------------------------------------ whole recovery


@FUZZ
@given(
    st.integers(0, 10**6),
    st.integers(1, 150),
    st.sampled_from(["snapshot", "wal", "both"]),
    damage,
)
def test_recovery_of_a_damaged_directory_is_an_error_or_a_prefix(
    seed: int, count: int, target: str, plan: list[tuple[str, float, int]]
) -> None:
    records = records_for(seed, count)
    half = count // 2
    with scratch() as d:
        # A snapshot at `half`, then the WAL from half + 1 (as a running node leaves it).
        ks = Keyspace(expire_on_access=False)
        for record in records[:half]:
            apply_record(ks, record)
        write_snapshot(
            d, dict(ks.data), dict(ks.expires), replid=REPLID, offset=half, replid2=None,
            second_offset=-1,
        )  # fmt: skip
        wal = WriteAheadLog(d, "never")
        wal.open_for_append(half + 1)
        for offset, record in enumerate(records[half:], half + 1):
            wal.append(offset, record)
        wal.close()
        if target in ("snapshot", "both"):
            apply_damage(d / snapshot_name(half), plan)
        if target in ("wal", "both"):
            apply_damage(list_segments(d)[-1].path, plan)

        persistence = Persistence(d, "never")
        persistence.open()
        recovered = Keyspace(expire_on_access=False)
        try:
            state = persistence.recover(recovered)
        except PersistenceError as exc:
            # Only a damaged snapshot (the only one) may stop the node, with advice.
            assert target != "wal"
            assert "restore" in str(exc) or "move it aside" in str(exc)
            return
        finally:
            persistence.shutdown()
        expected = Keyspace(expire_on_access=False)
        for record in records[: state.offset]:
            apply_record(expected, record)
        assert state.offset >= half, "records the snapshot holds were lost"
        assert (recovered.data, recovered.expires) == (expected.data, expected.expires)
