"""The WAL's batch framing (synap/persistence/walcodec.py and its C twin walcodec.c):
whichever this build imports produces exactly the bytes of the pure-Python source and of
an independent reference built from the format (``>I length, >I crc32, >Q offset``, the
CRC over the offset bytes and the record), for any records and offsets, and the segment
reader reads them back."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import synap.persistence.walcodec as loaded
from synap.persistence.wal import WAL_MAGIC, iter_segment
from tests.support.twins import pure_twin

PURE = pure_twin(loaded, "walcodec")


def reference(first_offset: int, records: list[bytes]) -> bytes:
    out = b""
    for i, record in enumerate(records):
        offset = struct.pack(">Q", first_offset + i)
        crc = zlib.crc32(offset + record)
        out += struct.pack(">II", len(record), crc) + offset + record
    return out


def test_the_build_says_which_twin_it_runs() -> None:
    # The compiled build imports the C extension; the pure one the source.
    print(f"walcodec loaded from {loaded.__file__}")
    assert loaded.__file__ is not None
    assert loaded.__file__.endswith(".py") or Path(loaded.__file__).suffix == ".so"


@given(
    st.integers(min_value=0, max_value=2**64 - 1000),
    st.lists(st.binary(max_size=300), max_size=40),
)
def test_both_twins_frame_records_as_the_format_says(first: int, records: list[bytes]) -> None:
    expected = reference(first, records)
    assert loaded.encode_entries(first, records) == expected
    assert loaded.encode_entries(first, tuple(records)) == expected
    assert PURE.encode_entries(first, records) == expected


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 15, 16, 17, 100, 4095, 4096, 1 << 20])
def test_long_and_odd_sized_records_checksum_like_zlib(size: int) -> None:
    record = bytes((i * 131 + 7) % 256 for i in range(size))
    assert loaded.encode_entries(12345, [record, record[1:]]) == reference(
        12345, [record, record[1:]]
    )


def test_the_segment_reader_reads_the_batch_back(tmp_path: Path) -> None:
    records = [b"a", b"", b"x" * 1000, bytes(range(256))]
    path = tmp_path / "wal-00000000000000000010.log"
    path.write_bytes(WAL_MAGIC + loaded.encode_entries(10, records))
    assert list(iter_segment(path)) == list(enumerate(records, 10))


def test_bad_input_is_refused_not_written() -> None:
    with pytest.raises(TypeError):
        loaded.encode_entries(1, ["text"])  # type: ignore[list-item]
    with pytest.raises((OverflowError, struct.error)):
        loaded.encode_entries(-1, [b"x"])
    with pytest.raises((OverflowError, struct.error)):
        loaded.encode_entries(2**64 - 1, [b"x", b"y"])  # the second offset would not fit
