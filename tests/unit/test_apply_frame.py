"""A replica applies a RECORDS frame in one pass (``apply_concatenated``): property tests
that it does exactly what replaying the frame's records one by one with ``apply_record``
(WAL recovery's code) does, on arbitrary records, well-formed or not."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synap.replication.messages import RecordsTrailer, decode_message, encode_records
from synap.store.effects import (
    _READ_AHEAD,
    CorruptRecord,
    apply_concatenated,
    apply_record,
    encode_record,
)
from synap.store.keyspace import Keyspace

KEYS = [b"a", b"b", b"k" * 40, b"", b"\xff\x00"]
# Integers on every msgpack size boundary (fixint, uint8..uint64).
INTS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63, 2**64 - 1]

key = st.sampled_from(KEYS) | st.binary(max_size=300)
value = st.binary(max_size=300) | st.sampled_from([b"x" * 300, b"[1,2]", b"12"])
expire = st.sampled_from(INTS) | st.integers(0, 2**64 - 1)
# Operations as the master writes them, and a few that no master writes.
good_op = st.one_of(
    st.tuples(st.just(0), key, value, expire).map(list),
    st.tuples(st.just(0), key, value, expire, st.sampled_from([0, 1])).map(list),
    st.tuples(st.just(1), key).map(list),
    st.tuples(st.just(2), key, expire).map(list),
    st.tuples(st.just(3), key).map(list),
    st.just([4]),
)
bad_op = st.one_of(
    st.tuples(st.just(0), key, value, expire, st.integers(2, 300)).map(list),  # bad kind
    st.tuples(st.just(0), key, st.integers(-(2**63), 2**64 - 1), expire).map(list),  # an int value
    st.tuples(st.just(0), key, value).map(list),  # too short
    st.tuples(st.just(0), key, value, st.integers(-(2**63), -1)).map(list),  # signed
    st.tuples(st.just(1), key, key).map(list),  # DEL with two keys
    st.tuples(st.integers(5, 200), key).map(list),  # unknown opcode
    st.tuples(st.just(0), st.text(max_size=5), value, expire).map(list),  # str key
    st.just([]),
)
plain_record = st.lists(good_op, min_size=1, max_size=3).map(encode_record)
record = st.one_of(
    plain_record,
    plain_record,
    st.lists(st.one_of(good_op, bad_op), min_size=0, max_size=3).map(encode_record),
    # Not a list of operations, or not msgpack that any master writes.
    st.sampled_from([msgpack.packb(7), msgpack.packb(None), msgpack.packb({b"a": 1})]),
    # Well-formed msgpack written with other (non-canonical) encodings than the packer's.
    st.tuples(key, value).map(
        lambda kv: b"\x91\x94\x00" + _bin8(kv[0]) + _bin8(kv[1]) + b"\xcc\x05"
    ),
    st.tuples(key, value).map(lambda kv: b"\x91\x94\x00" + _str8(kv[0]) + _bin8(kv[1]) + b"\x00"),
    st.tuples(key, value).map(
        lambda kv: b"\xdc\x00\x01\x94\x00" + _bin8(kv[0]) + _bin8(kv[1]) + b"\x00"
    ),
    st.tuples(key, value).map(
        lambda kv: b"\x91\x95\x00" + _bin8(kv[0]) + _bin8(kv[1]) + b"\x00\xcc\x01"
    ),
)


def _bin8(data: bytes) -> bytes:
    data = data[:255]
    return b"\xc4" + bytes([len(data)]) + data


def _str8(data: bytes) -> bytes:
    data = data[:255]
    return b"\xd9" + bytes([len(data)]) + data


def state(keyspace: Keyspace) -> tuple[object, ...]:
    return (
        keyspace.data,
        keyspace.expires,
        keyspace.json_keys,
        keyspace.used_memory,
        list(keyspace.data),  # insertion order too
    )


def replay(keyspace: Keyspace, body: bytes, pos: int, count: int) -> tuple[list[bytes], int | None]:
    """The reference: split the trailer with msgpack, then ``apply_record`` each record
    in order. Returns the records applied and the index of the bad one (None if none)."""
    unpacker = msgpack.Unpacker(None, raw=True, max_buffer_size=len(body))
    unpacker.feed(body)
    while unpacker.tell() < pos:
        unpacker.skip()
    applied: list[bytes] = []
    start = pos
    for index in range(count):
        try:
            unpacker.skip()
        except Exception:
            return applied, index
        end = unpacker.tell()
        try:
            apply_record(keyspace, body[start:end])
        except CorruptRecord:
            return applied, index
        applied.append(body[start:end])
        start = end
    return applied, (None if start == len(body) else count)


def both(body: bytes, pos: int, count: int, seed: list[list[object]]) -> None:
    expected, fast = Keyspace(), Keyspace()
    for ks in (expected, fast):
        for op in seed:
            apply_record(ks, encode_record([op]))
    want, bad_index = replay(expected, body, pos, count)
    applied: list[bytes] = []
    if bad_index is None:
        apply_concatenated(fast, body, pos, count, applied)
    else:
        with pytest.raises(CorruptRecord) as info:
            apply_concatenated(fast, body, pos, count, applied)
        assert info.value.index == bad_index
    assert applied == want
    assert all(type(r) is bytes for r in applied)
    assert state(fast) == state(expected)


SEED = st.lists(st.tuples(st.just(0), st.sampled_from(KEYS), value, expire).map(list), max_size=4)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record, min_size=1, max_size=12), SEED)
def test_one_pass_apply_equals_replaying_each_record(
    records: list[bytes], seed: list[list[object]]
):
    body = msgpack.packb([10, 1, len(records), 0]) + b"".join(records)
    frame = decode_message(body, split_records=False)
    assert isinstance(frame, RecordsTrailer)
    both(frame.body, frame.pos, frame.count, seed)
    # Without a header in front, too.
    both(b"".join(records), 0, len(records), seed)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(plain_record, min_size=1, max_size=8),
    st.integers(-3, 3),
    st.integers(0, 40),
    st.binary(max_size=8),
    SEED,
)
def test_a_trailer_cut_short_or_followed_by_bytes_fails_at_the_same_record(
    records: list[bytes], count_delta: int, cut: int, extra: bytes, seed: list[list[object]]
):
    trailer = b"".join(records)
    trailer = trailer[: max(0, len(trailer) - cut)] + extra
    count = max(1, len(records) + count_delta)
    both(
        msgpack.packb([10, 1, count, 0]) + trailer,
        len(msgpack.packb([10, 1, count, 0])),
        count,
        seed,
    )


@pytest.mark.parametrize("size", [0, 255, 256, 65535, 65536, 70_000])
def test_keys_and_values_of_every_bin_size(size: int):
    records = [
        encode_record([[0, b"k" * size, b"v" * size, 0]]),
        encode_record([[0, b"j", b"x" * size, 2**40, 1]]),
        encode_record([[1, b"k" * size]]),
        encode_record([[0, b"k" * size, b"w", 5]]),
    ]
    body = encode_records(7, records, 1)[4:]
    frame = decode_message(body, split_records=False)
    assert isinstance(frame, RecordsTrailer)
    both(frame.body, frame.pos, frame.count, [])


TRICKY = [
    *(
        encode_record([[0, b"k", b"v", n]])
        for n in (-1, -32, -33, -128, -129, -(2**15), -(2**31), -(2**63))
    ),
    encode_record([[0, b"k", b"v", 1.5]]),  # a float expiry
    encode_record([[0, b"k", b"v", None]]),
    encode_record([[0, b"k", b"v", 0, None]]),
    encode_record([[0, b"k", b"v", 0, 1, 1]]),  # six elements
    encode_record([[0, b"k", b"v"]]),
    encode_record([[1, b"k", b"v"]]),
    encode_record([[1]]),
    encode_record([[0, b"k", b"v", 0], [1, b"k"]]),  # two operations
    msgpack.packb([[0, "k", b"v", 0]], use_bin_type=True),  # a str key
    msgpack.packb([[0, b"k", "v", 0]], use_bin_type=True),  # a str value
    msgpack.packb([[1, "k"]], use_bin_type=True),
    b"\x91\x94\x00\xc4\x01k\xc4\x01v\xcc\x05",  # non-canonical uint8 expiry
    b"\x91\x94\x00\xc5\x00\x01k\xc6\x00\x00\x00\x01v\xcf" + bytes(7) + b"\x09",
    b"\x91\x95\x00\xc4\x01k\xc4\x01v\x00\xcc\x01",  # non-canonical kind
    b"\xdc\x00\x01\x94\x00\xc4\x01k\xc4\x01v\x00",  # array16 of one operation
    b"\x91\xdc\x00\x04\x00\xc4\x01k\xc4\x01v\x00",
    b"\x91\x92\x01\xc4\x01k",  # a DEL of a key that exists
]


@pytest.mark.parametrize("tricky", TRICKY)
def test_records_no_master_writes_between_ordinary_ones(tricky: bytes):
    ordinary = [encode_record([[0, b"k", b"old", 0]]), encode_record([[0, b"z", b"1", 3]])]
    for records in ([tricky, *ordinary], [*ordinary, tricky], [ordinary[0], tricky, ordinary[1]]):
        body = encode_records(1, records, 0)[4:]
        frame = decode_message(body, split_records=False)
        assert isinstance(frame, RecordsTrailer)
        both(frame.body, frame.pos, frame.count, [[0, b"k", b"seed", 0]])
        both(b"".join(records), 0, len(records), [])
        both(b"".join(records)[:-1], 0, len(records), [])


@pytest.mark.parametrize(
    "record", [b"\x91\x80", b"\x91\x81\x00\x01", b"\x92\x93\x02\xc4\x01a\x01\x80"]
)
def test_an_operation_that_is_a_map_is_a_corrupt_record(record: bytes) -> None:
    """An operation decoded as a map (``op[0]`` a KeyError) is reported as a corrupt
    record, like any other malformed operation, on both apply paths (found by the
    cut-short property test above)."""
    with pytest.raises(CorruptRecord):
        apply_record(Keyspace(), record)
    records: list[bytes] = []
    with pytest.raises(CorruptRecord):
        apply_concatenated(Keyspace(), record, 0, 1, records)


# Long frames of the common records (one SET or DEL each, as a master writes them) over a
# few keys, with an occasional other record: runs longer than the read-ahead, which
# applies common records in batches, and records that must wait for the batch before them.
FEW_KEYS = st.sampled_from([b"a", b"b", b"c", b""])
common_op = st.one_of(
    st.tuples(st.just(0), FEW_KEYS, value, expire).map(list),
    st.tuples(st.just(0), FEW_KEYS, value, expire, st.sampled_from([0, 1])).map(list),
    st.tuples(st.just(1), FEW_KEYS).map(list),
)
common_record = common_op.map(lambda op: encode_record([op]))
other_record = st.one_of(
    st.tuples(st.just(2), FEW_KEYS, expire).map(lambda op: encode_record([list(op)])),
    st.just(encode_record([[4]])),
    st.lists(common_op, min_size=2, max_size=3).map(encode_record),
    st.tuples(st.just(0), FEW_KEYS, value, expire, st.integers(2, 9)).map(
        lambda op: encode_record([list(op)])  # a bad kind: the frame stops there
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(common_record, common_record, common_record, common_record, other_record),
        min_size=1,
        max_size=5 * _READ_AHEAD,
    ),
    SEED,
)
def test_long_runs_of_common_records_equal_replaying_each(
    records: list[bytes], seed: list[list[object]]
) -> None:
    both(b"".join(records), 0, len(records), seed)


def test_a_frame_of_many_common_records_crosses_every_read_ahead_boundary() -> None:
    n = 3 * _READ_AHEAD + 1
    records = [encode_record([[0, b"k%d" % (i % 5), b"v%d" % i, 0]]) for i in range(n)]
    records[_READ_AHEAD] = encode_record([[1, b"k0"]])
    records[2 * _READ_AHEAD - 1] = encode_record([[2, b"k1", 99]])  # not a common one
    both(b"".join(records), 0, n, [])
    both(b"".join(records) + b"\xc1", 0, n, [])  # a byte after the last record
