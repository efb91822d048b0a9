"""Framing (u32 length + body) and the message codec of the replication protocol."""

from __future__ import annotations

import struct
import zlib

import msgpack
import pytest

from synap.config import KVStoreConfig
from synap.replication.framing import (
    DEFAULT_MAX_FRAME_BYTES,
    HANDSHAKE_MAX_FRAME_BYTES,
    FrameDecoder,
    ProtocolError,
    encode_frame,
    frame_limit_for,
)
from synap.replication.messages import (
    PROTOCOL_VERSION,
    Ack,
    AuthChallenge,
    AuthOk,
    AuthResponse,
    Continue,
    Error,
    ErrorCode,
    FullSync,
    Heartbeat,
    Hello,
    Records,
    RecordsTrailer,
    SnapshotChunk,
    SnapshotEnd,
    UnsupportedVersion,
    decode_message,
    decode_snapshot_entries,
    encode_records,
    encode_snapshot_payload,
    snapshot_chunk_frame,
)
from synap.store.effects import (
    CorruptRecord,
    apply_concatenated,
    apply_ops,
    apply_records,
    decode_record,
    encode_record,
)
from synap.store.keyspace import Keyspace

REPLID = "a" * 40


def body_of(frame: bytes) -> bytes:
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    return frame[4:]


def roundtrip(message):
    return decode_message(body_of(message.encode()))


# --- framing ---------------------------------------------------------------------------


def test_frame_is_u32_big_endian_length_then_body():
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"


def test_decoder_returns_every_frame_of_one_feed_in_order():
    stream = b"".join(encode_frame(bytes([i]) * i) for i in range(1, 6))
    assert FrameDecoder().decode(stream) == [bytes([i]) * i for i in range(1, 6)]


def test_decoder_reassembles_frames_split_at_every_byte():
    bodies = [b"hello", b"", b"x" * 300, b"end"]
    stream = b"".join(map(encode_frame, bodies))
    decoder = FrameDecoder()
    out = []
    for i in range(len(stream)):
        out += decoder.decode(stream[i : i + 1])
    assert out == bodies
    assert decoder.buffered_bytes == 0


def test_oversized_length_is_rejected_from_the_header_alone():
    decoder = FrameDecoder(max_frame_bytes=1024)
    decoder.feed(b"\xff\xff\xff\xff")  # claims ~4 GB; nothing of the body was sent
    with pytest.raises(
        ProtocolError, match="frame of 4294967295 bytes exceeds the 1024-byte limit"
    ):
        decoder.next_frame()


def test_frame_of_exactly_the_limit_is_accepted():
    decoder = FrameDecoder(max_frame_bytes=10)
    assert decoder.decode(encode_frame(b"0123456789")) == [b"0123456789"]
    with pytest.raises(ProtocolError):
        decoder.decode(encode_frame(b"0123456789a"))


def test_oversized_error_hints_at_a_peer_speaking_another_protocol():
    decoder = FrameDecoder(max_frame_bytes=HANDSHAKE_MAX_FRAME_BYTES)
    with pytest.raises(ProtocolError, match="another protocol"):
        decoder.decode(b"GET / HTTP/1.1\r\n")


def test_decoder_stays_failed_after_a_protocol_error():
    decoder = FrameDecoder(max_frame_bytes=8)
    with pytest.raises(ProtocolError):
        decoder.decode(b"\x00\x01\x00\x00")
    with pytest.raises(ProtocolError):
        decoder.decode(encode_frame(b"ok"))


def test_new_frame_limit_applies_to_the_next_header():
    decoder = FrameDecoder(max_frame_bytes=4)
    decoder.feed(encode_frame(b"tiny") + encode_frame(b"x" * 100))
    assert decoder.next_frame() == b"tiny"
    decoder.max_frame_bytes = 1000
    assert decoder.next_frame() == b"x" * 100


def test_decoder_does_not_hold_on_to_consumed_bytes():
    # A long transfer in socket-sized reads: the buffer stays around one read plus one
    # frame, instead of growing with the stream.
    frame = encode_frame(b"v" * 60_000)
    stream = frame * 200
    decoder = FrameDecoder()
    count = 0
    peak = 0
    for i in range(0, len(stream), 65536):
        count += len(decoder.decode(stream[i : i + 65536]))
        peak = max(peak, len(decoder._buf))
    assert count == 200
    assert peak <= 2 * 65536 + len(frame)


def test_a_frame_holds_the_largest_record_the_default_configuration_allows():
    # One request (one record) = the largest value + up to 1 MiB of other arguments.
    kv = KVStoreConfig()
    largest_record = kv.max_value_bytes + kv.max_key_bytes + 1024 * 1024 + 1024
    assert largest_record <= DEFAULT_MAX_FRAME_BYTES
    assert frame_limit_for(kv.max_value_bytes) == DEFAULT_MAX_FRAME_BYTES


def test_frame_limit_grows_with_the_configured_value_size():
    assert frame_limit_for(2 * 1024**3) >= 2 * 1024**3 + 1024 * 1024 + 64 * 1024
    with pytest.raises(ValueError, match="cannot be replicated"):
        frame_limit_for(4 * 1024**3)


def test_max_frame_bytes_must_fit_the_u32_header():
    with pytest.raises(ValueError):
        FrameDecoder(max_frame_bytes=2**32)
    with pytest.raises(ValueError):
        FrameDecoder(max_frame_bytes=0)


# --- messages: round trips -----------------------------------------------------------------

EXAMPLES = [
    Hello(PROTOCOL_VERSION, "replica-1", "10.0.0.5:15501", REPLID, 42),
    Hello(PROTOCOL_VERSION, "r", None, "?", 0),
    AuthChallenge(b"n" * 32),
    AuthResponse(b"r" * 32, b"m" * 32),
    AuthOk(b"p" * 32),
    Error(ErrorCode.AUTH_FAILED, "wrong secret"),
    FullSync(REPLID, 1000, 3, 1_700_000_000_000),
    SnapshotEnd(2, 3, 0xDEADBEEF),
    Continue(REPLID, 99, 5),
    Heartbeat(500, 1_700_000_000_123),
    Ack(499, 1_700_000_000_100),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_type_round_trips(message):
    assert roundtrip(message) == message


def test_records_round_trip_as_the_original_record_bytes():
    records = [encode_record([[0, b"k%d" % i, b"v" * i, 0]]) for i in range(50)] + [
        encode_record([[4]])
    ]
    decoded = roundtrip(Records(7, 123, records))
    assert decoded == Records(7, 123, records)
    assert all(type(r) is bytes for r in decoded.records)


def test_records_applied_from_a_frame_match_their_decoded_operations():
    records = [encode_record([[0, b"k%d" % i, b"v" * i, i], [3, b"k"]]) for i in range(20)]
    records += [encode_record([[0, b"plain%d" % i, b"v", 0]]) for i in range(5)]
    decoded = roundtrip(Records(5, 1, records))
    keyspace, again = Keyspace(), Keyspace()
    apply_records(keyspace, decoded.records)
    for record in records:
        apply_ops(again, decode_record(record))
    assert keyspace.data == again.data and keyspace.expires == again.expires


def test_a_corrupt_record_in_a_frame_is_still_reported_at_its_position():
    # Decodes as msgpack but is no list of operations / has an unknown opcode.
    good = encode_record([[0, b"a", b"1", 0]])
    for bad in (msgpack.packb(7), encode_record([[99, b"x"]]), encode_record([[0, b"k", 5, 0]])):
        decoded = roundtrip(Records(1, 1, [good, good, bad, good]))
        with pytest.raises(CorruptRecord) as info:
            apply_records(Keyspace(), decoded.records)
        assert info.value.index == 2


def lazy(message: Records) -> RecordsTrailer:
    frame = decode_message(body_of(message.encode()), split_records=False)
    assert isinstance(frame, RecordsTrailer)
    return frame


def test_a_frame_applied_in_one_pass_matches_record_by_record_replay():
    records = [encode_record([[0, b"k%d" % i, b"v" * i, i], [3, b"k"]]) for i in range(20)]
    records += [encode_record([[0, b"plain%d" % i, b"v", 0]]) for i in range(5)]
    records += [encode_record([[0, b"j", b"[1]", 0, 1]]), encode_record([[1, b"plain0"]])]
    records += [encode_record([[2, b"plain1", 99]]), encode_record([[4]])] + records[:3]
    frame = lazy(Records(5, 1, records))
    assert (frame.first_offset, frame.count, frame.master_ts_ms) == (5, len(records), 1)
    assert frame.split() == records
    keyspace, again = Keyspace(), Keyspace()
    applied: list[bytes] = []
    apply_concatenated(keyspace, frame.body, frame.pos, frame.count, applied)
    for record in records:
        apply_ops(again, decode_record(record))
    assert keyspace.data == again.data and keyspace.expires == again.expires
    assert keyspace.json_keys == again.json_keys
    # The history gets the master's bytes, each record exactly as encoded.
    assert applied == records and all(type(r) is bytes for r in applied)


def test_a_corrupt_record_applied_in_one_pass_is_reported_at_its_position():
    good = encode_record([[0, b"a", b"1", 0]])
    second = encode_record([[0, b"b", b"2", 0]])
    for bad in (msgpack.packb(7), encode_record([[99, b"x"]]), encode_record([[0, b"k", 5, 0]])):
        frame = lazy(Records(1, 1, [good, second, bad, good]))
        keyspace = Keyspace()
        applied: list[bytes] = []
        with pytest.raises(CorruptRecord) as info:
            apply_concatenated(keyspace, frame.body, frame.pos, frame.count, applied)
        assert info.value.index == 2
        assert applied == [good, second]  # what the replica commits before it aborts
        assert keyspace.data == {b"a": b"1", b"b": b"2"}


def test_a_trailer_not_holding_its_count_of_records_is_a_bad_record_in_one_pass():
    records = [encode_record([[0, b"a%d" % i, b"1", 0]]) for i in range(3)]
    good = body_of(encode_records(1, records, 0))
    header_len = len(good) - sum(map(len, records))
    # Fewer records than the header says: the first missing one is the bad one.
    lying = decode_message(msgpack.packb([10, 1, 4, 0]) + good[header_len:], split_records=False)
    assert isinstance(lying, RecordsTrailer)
    with pytest.raises(ProtocolError, match="holds 3 whole records, header says 4"):
        lying.split()
    applied: list[bytes] = []
    with pytest.raises(CorruptRecord) as info:
        apply_concatenated(Keyspace(), lying.body, lying.pos, lying.count, applied)
    assert info.value.index == 3 and applied == records
    # A record cut short.
    cut = decode_message(good[:-1], split_records=False)
    assert isinstance(cut, RecordsTrailer)
    applied = []
    with pytest.raises(CorruptRecord, match="undecodable") as info:
        apply_concatenated(Keyspace(), cut.body, cut.pos, cut.count, applied)
    assert info.value.index == 2 and applied == records[:2]
    # Bytes beyond the last record: every record applied, the extra reported after them.
    extra = decode_message(good + records[0], split_records=False)
    assert isinstance(extra, RecordsTrailer)
    applied = []
    with pytest.raises(CorruptRecord, match="follow the last of 3 records") as info:
        apply_concatenated(Keyspace(), extra.body, extra.pos, extra.count, applied)
    assert info.value.index == 3 and applied == records


def test_records_frame_is_a_header_followed_by_the_records_verbatim():
    # Built once with one join, then sent to every replica: records are not re-encoded.
    records = [encode_record([[1, b"a"]]), encode_record([[0, b"b", b"c", 9]])]
    frame = encode_records(10, records, 77)
    assert frame.endswith(b"".join(records))
    header = frame[4 : len(frame) - len(b"".join(records))]
    assert msgpack.unpackb(header) == [10, 10, 2, 77]


def test_snapshot_chunk_round_trips_and_carries_the_payload_crc():
    entries = [(b"k1", b"v1", 0), (b"k2", b"\x00\xff", 1_700_000_000_000)]
    payload = encode_snapshot_payload(entries)
    message = decode_message(body_of(snapshot_chunk_frame(17, payload)))
    assert message == SnapshotChunk(17, zlib.crc32(payload), payload)
    assert decode_snapshot_entries(message.payload) == entries


# --- messages: strict decoding --------------------------------------------------------------


def test_empty_body_is_rejected():
    with pytest.raises(ProtocolError, match="empty frame"):
        decode_message(b"")


def test_unknown_message_type_is_rejected():
    with pytest.raises(ProtocolError, match="unknown message type 99"):
        decode_message(msgpack.packb([99, 1]))


def test_message_that_is_not_an_array_is_rejected():
    with pytest.raises(ProtocolError, match="not an array"):
        decode_message(msgpack.packb({"type": 1}))


def test_missing_or_extra_fields_are_rejected():
    with pytest.raises(ProtocolError, match="ACK has 1 fields, expected 2"):
        decode_message(msgpack.packb([12, 5]))
    with pytest.raises(ProtocolError, match="expected 2"):
        decode_message(msgpack.packb([12, 5, 6, 7, 8]))
    # The optional 4th ACK field: the replica's WAL-fsynced offset (WAITAOF).
    assert decode_message(msgpack.packb([12, 5, 6, 4])) == Ack(5, 6, 4)
    assert decode_message(msgpack.packb([12, 5, 6])) == Ack(5, 6)
    assert decode_message(body_of(Ack(9, 8, 7).encode())) == Ack(9, 8, 7)


def test_bytes_after_a_plain_message_are_rejected():
    with pytest.raises(ProtocolError, match="unexpected bytes"):
        decode_message(body_of(Ack(1, 2).encode()) + b"\x00")


def test_a_boolean_is_not_an_offset():
    with pytest.raises(ProtocolError, match="ACK offset"):
        decode_message(msgpack.packb([12, True, 0]))


def test_negative_offsets_are_rejected():
    with pytest.raises(ProtocolError, match="HEARTBEAT master_offset"):
        decode_message(msgpack.packb([11, -1, 0]))


def test_replication_ids_must_be_40_hex_characters():
    with pytest.raises(ProtocolError, match="CONTINUE replid"):
        decode_message(msgpack.packb([9, "xyz", 1, 0]))
    with pytest.raises(ProtocolError, match="FULLSYNC replid"):
        decode_message(msgpack.packb([6, "?", 1, 0, 0]))  # "?" only means "none" in HELLO


def test_nonces_and_macs_must_be_32_raw_bytes():
    with pytest.raises(ProtocolError, match="32 raw bytes"):
        decode_message(msgpack.packb([2, b"short"], use_bin_type=True))
    with pytest.raises(ProtocolError, match="32 raw bytes"):
        decode_message(msgpack.packb([4, "p" * 32], use_bin_type=True))


def test_hello_with_another_protocol_version_is_refused_before_reading_the_rest():
    # A future version may lay HELLO out differently. The refusal must still name the
    # version, not complain about fields.
    with pytest.raises(UnsupportedVersion, match="version 2") as info:
        decode_message(msgpack.packb([1, 2, {"whatever": "layout"}]))
    assert info.value.version == 2


def test_records_count_must_match_the_records_that_follow():
    records = [encode_record([[1, b"a"]])] * 3
    good = body_of(encode_records(1, records, 0))
    header_len = len(good) - 3 * len(records[0])
    lying = msgpack.packb([10, 1, 4, 0]) + good[header_len:]
    with pytest.raises(ProtocolError, match="holds 3 whole records, header says 4"):
        decode_message(lying)
    with pytest.raises(ProtocolError, match="beyond its 3 records"):
        decode_message(good + records[0])


def test_truncated_record_is_rejected():
    body = body_of(encode_records(1, [encode_record([[0, b"key", b"value", 0]])], 0))
    with pytest.raises(ProtocolError):
        decode_message(body[:-2])


def test_records_frame_needs_at_least_one_record_and_offset_from_1():
    with pytest.raises(ValueError):
        encode_records(1, [], 0)
    with pytest.raises(ProtocolError, match="at least 1"):
        decode_message(body_of(encode_records(0, [b"\x90"], 0)))
    with pytest.raises(ProtocolError, match="claims 0 records"):
        decode_message(msgpack.packb([10, 1, 0, 0]))


def test_absurd_record_count_is_rejected_without_looping_over_it():
    with pytest.raises(ProtocolError, match="claims"):
        decode_message(msgpack.packb([10, 1, 2**62, 0]) + b"\x90")


@pytest.mark.parametrize(
    "entries",
    [
        [(b"k", b"v")],
        [("k", b"v", 0)],
        [(b"k", "v", 0)],
        [(b"k", b"v", -1)],
        [(b"k", b"v", True)],
        {"k": "v"},
    ],
)
def test_malformed_snapshot_entries_are_rejected(entries):
    with pytest.raises(ProtocolError):
        decode_snapshot_entries(msgpack.packb(entries, use_bin_type=True))
