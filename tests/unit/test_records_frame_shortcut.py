"""The streaming replica's shortcut for one whole RECORDS frame per read
(``messages.decode_records_frame``, used by ``ReplicaSession.receive_data``) agrees with
the general frame decoder: same message for what it accepts, ``None`` (the general path)
for everything else, and the session ends up in the same state with the same events
whether a stream arrives as whole frames or cut into pieces."""

from __future__ import annotations

import struct

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from synap.replication.framing import DEFAULT_MAX_FRAME_BYTES
from synap.replication.messages import (
    Heartbeat,
    RecordsTrailer,
    decode_message,
    decode_records_frame,
    encode_records,
)
from synap.replication.replica_session import ReplicaSession, ReplicaState
from synap.store.effects import encode_record

REPLID = "1" * 40
U63 = 2**63 - 1


def general(frame: bytes, max_body: int = DEFAULT_MAX_FRAME_BYTES) -> object:
    """What the frame decoder + decode_message make of one whole frame, or the error."""
    (length,) = struct.unpack_from(">I", frame)
    if length > max_body or length + 4 != len(frame):
        return "not one frame"
    try:
        return decode_message(frame[4:], split_records=False)
    except Exception as exc:  # ProtocolError or UnsupportedVersion
        return type(exc).__name__


def record(i: int) -> bytes:
    return encode_record([[0, b"k%d" % i, b"v%d" % i, 0]])


uints = st.one_of(
    st.integers(0, 200),
    st.integers(0, 2**16),
    st.integers(0, 2**32),
    st.integers(0, 2**64 - 1),
    st.sampled_from([0, 1, 127, 128, 255, 256, 2**63 - 1, 2**63, 2**64 - 1]),
)


@settings(max_examples=400, deadline=None)
@given(first=st.integers(1, U63), n=st.integers(1, 40), ts=st.integers(0, U63))
def test_a_frame_the_master_writes_decodes_as_the_general_path_does(first, n, ts):
    frame = encode_records(first, [record(i) for i in range(n)], ts)
    shortcut = decode_records_frame(frame, DEFAULT_MAX_FRAME_BYTES)
    assert shortcut is not None
    assert shortcut == general(frame)
    assert isinstance(shortcut, RecordsTrailer)
    assert shortcut.body[shortcut.pos :] == b"".join(record(i) for i in range(n))


@settings(max_examples=1500, deadline=None)
@given(
    fields=st.lists(st.one_of(uints, st.booleans(), st.none(), st.binary(max_size=3)), max_size=5),
    kind=st.sampled_from([10, 10, 10, 11, 12]),
    trailer=st.binary(max_size=12),
    length_delta=st.sampled_from([0, 0, 0, -1, 1]),
    max_body=st.sampled_from([DEFAULT_MAX_FRAME_BYTES, 8, 20]),
)
def test_any_header_is_either_decoded_alike_or_left_to_the_general_path(
    fields, kind, trailer, length_delta, max_body
):
    body = msgpack.packb([kind, *fields]) + trailer
    frame = struct.pack(">I", max(0, len(body) + length_delta)) + body
    shortcut = decode_records_frame(frame, max_body)
    if shortcut is not None:
        assert shortcut == general(frame, max_body)


def test_other_encodings_messages_and_reads_are_handled_or_left_to_the_general_path():
    # 5 as uint8 (0xcc 0x05): the same header either way.
    body = bytes([0x94, 0x0A, 0xCC, 0x05, 0x01, 0x00]) + record(1)
    frame = struct.pack(">I", len(body)) + body
    assert decode_records_frame(frame, DEFAULT_MAX_FRAME_BYTES) == general(frame)
    assert decode_records_frame(Heartbeat(5, 1).encode(), DEFAULT_MAX_FRAME_BYTES) is None
    one = encode_records(1, [record(1)], 0)
    assert decode_records_frame(one + encode_records(2, [record(2)], 0), 1 << 20) is None
    assert decode_records_frame(one[:-1], 1 << 20) is None  # a frame cut short
    assert decode_records_frame(one, len(one) - 5) is None  # over the frame limit
    assert decode_records_frame(one, len(one) - 4) is not None


def streaming_replica(offset: int) -> ReplicaSession:
    from synap.replication.master_session import MasterSession

    master = MasterSession(None, 0)
    replica = ReplicaSession("replica-1", "10.0.0.5:15501", REPLID, offset, None)
    master.receive_data(replica.initiate(0), 0)
    replica.receive_data(master.data_to_send(), 0)
    replica.receive_data(master.send_continue(REPLID, 0), 0)
    assert replica.state is ReplicaState.STREAMING
    return replica


def summary(events: list[object]) -> list[object]:
    out: list[object] = []
    for e in events:
        frame = getattr(e, "frame", None)
        if frame is not None:  # RecordsReceived: compare the records, not where they sit
            out.append(("records", e.first_offset, frame.count, frame.body[frame.pos :]))
        else:
            out.append(repr(e))
    return out


def state(r: ReplicaSession) -> tuple[object, ...]:
    return (r.state, r.offset, r.master_offset, r.data_to_send())


@settings(max_examples=300, deadline=None)
@given(
    starts=st.lists(st.integers(-2, 3), min_size=1, max_size=6),
    sizes=st.lists(st.integers(1, 5), min_size=6, max_size=6),
    cuts=st.lists(st.integers(1, 60), max_size=8),
    junk=st.booleans(),
)
def test_the_session_reads_whole_frames_and_cut_frames_alike(starts, sizes, cuts, junk):
    """Frames with gaps, overlaps and (optionally) garbage: delivered one whole frame per
    read (the shortcut) or as arbitrary pieces (the general path), same outcome."""
    frames, nxt = [], 11
    for step, size in zip(starts, sizes, strict=False):
        first = max(1, nxt + step)
        frames.append(encode_records(first, [record(first + i) for i in range(size)], 7))
        nxt = first + size
    if junk:
        frames.insert(len(frames) // 2, b"\x00\x00\x00\x03\x94\x0a\x01")
    stream = b"".join(frames)

    whole = streaming_replica(10)
    whole_events: list[object] = []
    for f in frames:
        whole_events += whole.receive_data(f, 5)

    pieces = streaming_replica(10)
    piece_events: list[object] = []
    pos = 0
    for c in [*cuts, len(stream)]:
        piece_events += pieces.receive_data(stream[pos : pos + c], 5)
        pos += c
        if pos >= len(stream):
            break
    else:
        piece_events += pieces.receive_data(stream[pos:], 5)

    assert summary(whole_events) == summary(piece_events)
    assert state(whole) == state(pieces)
