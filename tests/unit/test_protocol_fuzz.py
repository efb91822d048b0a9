"""Property tests for the replication protocol (hypothesis).

Whatever bytes arrive, the frame decoder and message decoder raise nothing but
ProtocolError, and the sessions raise nothing at all: they report a ProtocolViolation
(or another SessionEnded) and close. Every message type survives an encode/decode
round trip, and how a stream is cut into reads never changes what it means.
"""

from __future__ import annotations

import zlib

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synap.replication.framing import FrameDecoder, ProtocolError, encode_frame
from synap.replication.handshake import ProtocolViolation, SessionEnded
from synap.replication.master_session import MasterSession, MasterState, batch_entries
from synap.replication.messages import (
    PROTOCOL_VERSION,
    Ack,
    AuthChallenge,
    AuthOk,
    AuthResponse,
    Continue,
    Error,
    FullSync,
    Heartbeat,
    Hello,
    Records,
    SnapshotChunk,
    SnapshotEnd,
    decode_message,
    encode_snapshot_payload,
)
from synap.replication.replica_session import (
    FullSyncCompleted,
    RecordsReceived,
    ReplicaSession,
    ReplicaState,
)

FUZZ = settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
SECRET = b"fuzz secret"
REPLID = "f" * 40
T0 = 5_000

# --- strategies -----------------------------------------------------------------------------

u63 = st.integers(0, 2**63 - 1)
u32 = st.integers(0, 2**32 - 1)
small = st.integers(0, 1000)
replids = st.text("0123456789abcdef", min_size=40, max_size=40)
# What a master accepts in HELLO (synap.replication.peer_fields).
names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=128)
addresses = st.builds(
    "{}:{}".format,
    st.sampled_from(["127.0.0.1", "localhost", "[::1]", "::1", "node-1.example.com", "0.0.0.0"]),
    st.integers(1, 65535),
)
nonce = st.binary(min_size=32, max_size=32)
msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary() | st.text(),
    lambda children: st.lists(children, max_size=4),
    max_leaves=8,
)
record_bytes = msgpack_values.map(lambda v: msgpack.packb(v, use_bin_type=True))
entries = st.lists(
    st.tuples(st.binary(max_size=20), st.binary(max_size=40), u63), min_size=1, max_size=8
)

messages = st.one_of(
    st.builds(
        Hello, st.just(PROTOCOL_VERSION), names, st.none() | addresses, replids | st.just("?"), u63
    ),
    st.builds(AuthChallenge, nonce),
    st.builds(AuthResponse, nonce, nonce),
    st.builds(AuthOk, nonce),
    st.builds(Error, u32, st.text(max_size=100)),
    st.builds(FullSync, replids, u63, u63, u63),
    st.builds(SnapshotChunk, u63, u32, st.binary(max_size=200)),
    st.builds(SnapshotEnd, u63, u63, u32),
    st.builds(Continue, replids, u63, u63),
    st.builds(
        Records, st.integers(1, 2**63 - 1), u63, st.lists(record_bytes, min_size=1, max_size=10)
    ),
    st.builds(Heartbeat, u63, u63),
    st.builds(Ack, u63, u63),
)

# Plausible messages for the session fuzzers: small offsets, so that they sometimes line
# up with what a session expects and reach deeper states.
plausible = st.one_of(
    st.builds(
        Hello,
        st.sampled_from([PROTOCOL_VERSION, 2]),
        names,
        st.none(),
        st.sampled_from([REPLID, "?"]),
        small,
    ),
    st.builds(AuthChallenge, nonce),
    st.builds(AuthResponse, nonce, nonce),
    st.builds(AuthOk, nonce),
    st.builds(Error, small, st.text(max_size=20)),
    st.builds(FullSync, st.just(REPLID), small, st.integers(0, 3), small),
    entries.map(lambda e: SnapshotChunk(0, zlib.crc32(p := encode_snapshot_payload(e)), p)),
    st.builds(SnapshotChunk, small, u32, st.binary(max_size=50)),
    st.builds(SnapshotEnd, st.integers(0, 2), st.integers(0, 3), u32),
    st.builds(Continue, st.just(REPLID), small, small),
    st.builds(Records, st.integers(1, 30), small, st.lists(record_bytes, min_size=1, max_size=4)),
    st.builds(Heartbeat, small, small),
    st.builds(Ack, small, small),
)

garbage = st.one_of(
    st.binary(max_size=300),
    plausible.map(lambda m: m.encode()),
    # a plausible frame, corrupted or truncated
    st.tuples(plausible, st.integers(0, 10**6), st.integers(0, 255)).map(
        lambda t: _corrupt(t[0].encode(), t[1], t[2])
    ),
    st.binary(max_size=200).map(encode_frame),
    msgpack_values.map(lambda v: encode_frame(msgpack.packb(v, use_bin_type=True))),
)


def _corrupt(frame: bytes, where: int, value: int) -> bytes:
    where %= len(frame) + 1
    if value < 64:
        return frame[:where]  # truncated
    data = bytearray(frame)
    if where < len(data):
        data[where] ^= value
    return bytes(data)


# --- sessions in every state -----------------------------------------------------------------


def master_in(state: MasterState) -> MasterSession:
    secret = SECRET if state is MasterState.AWAIT_AUTH else None
    master = MasterSession(secret, T0)
    if state is MasterState.AWAIT_HELLO:
        return master
    master.receive_data(Hello(PROTOCOL_VERSION, "r", None, REPLID, 10).encode(), T0)
    master.data_to_send()
    if state is MasterState.SYNCING_FULL:
        master.send_fullsync(REPLID, 10, 5, T0)
    elif state is MasterState.STREAMING:
        master.send_continue(REPLID, T0)
        master.send_records(MasterSession.records_frame(11, [b"\x90"] * 5, T0))
    assert master.state is state
    return master


def replica_in(state: ReplicaState) -> ReplicaSession:
    secret = SECRET if state in (ReplicaState.AWAIT_AUTH_OK, ReplicaState.AWAIT_SYNC) else None
    replica = ReplicaSession("r", None, REPLID, 10, secret)
    if state is ReplicaState.CONNECTING:
        return replica
    hello = replica.initiate(T0)
    if secret is not None:
        master = MasterSession(SECRET, T0)
        master.receive_data(hello, T0)
        replica.receive_data(master.data_to_send(), T0)
        if state is ReplicaState.AWAIT_SYNC:
            master.receive_data(replica.data_to_send(), T0)
            replica.receive_data(master.data_to_send(), T0)
    elif state is ReplicaState.FULL_SYNC:
        replica.receive_data(FullSync(REPLID, 20, 3, T0).encode(), T0)
    elif state is ReplicaState.STREAMING:
        replica.receive_data(Continue(REPLID, 10, T0).encode(), T0)
    replica.data_to_send()
    assert replica.state is state, replica.ended
    return replica


def check_session_events(session, events) -> None:
    ended = [e for e in events if isinstance(e, SessionEnded)]
    assert len(ended) <= 1
    if ended:
        assert events[-1] is ended[0] is session.ended
        assert session.state.name == "CLOSED"
        assert session.receive_data(b"\x00\x00\x00\x01\x90", T0) == []
    session.data_to_send()


# --- framing ---------------------------------------------------------------------------------------


@FUZZ
@given(st.lists(st.binary(max_size=100), max_size=10), st.integers(1, 200))
def test_frame_decoder_raises_only_protocol_error(chunks, limit):
    decoder = FrameDecoder(max_frame_bytes=limit)
    try:
        for chunk in chunks:
            for frame in decoder.decode(chunk):
                assert len(frame) <= limit
    except ProtocolError:
        pass


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=20), st.data())
def test_cutting_a_stream_into_reads_never_changes_the_frames(bodies, data):
    stream = b"".join(map(encode_frame, bodies))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = FrameDecoder()
    out = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += decoder.decode(stream[start:end])
    assert out == bodies
    assert decoder.buffered_bytes == 0


@FUZZ
@given(st.integers(1, 2**20), st.integers(1, 2**32 - 1), st.binary(max_size=50))
def test_oversized_frames_are_refused_from_the_header_alone(limit, length, tail):
    decoder = FrameDecoder(max_frame_bytes=limit)
    decoder.feed(length.to_bytes(4, "big") + tail)
    if length > limit:
        try:
            decoder.next_frame()
        except ProtocolError as exc:
            assert f"frame of {length} bytes" in str(exc)
        else:
            raise AssertionError("oversized frame accepted")


# --- messages -----------------------------------------------------------------------------------------


@FUZZ
@given(messages)
def test_every_message_type_round_trips(message):
    frame = message.encode()
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    assert decode_message(frame[4:]) == message


@FUZZ
@given(st.binary(max_size=300))
def test_decoding_random_bytes_raises_only_protocol_error(body):
    try:
        decode_message(body)
    except ProtocolError:
        pass


@FUZZ
@given(msgpack_values, st.binary(max_size=30))
def test_decoding_random_msgpack_raises_only_protocol_error(value, tail):
    try:
        decode_message(msgpack.packb(value, use_bin_type=True) + tail)
    except ProtocolError:
        pass


@FUZZ
@given(st.integers(0, 12), st.lists(msgpack_values, max_size=6), st.binary(max_size=20))
def test_well_typed_headers_with_random_fields_raise_only_protocol_error(kind, fields, tail):
    try:
        decode_message(msgpack.packb([kind, *fields], use_bin_type=True) + tail)
    except ProtocolError:
        pass


# --- sessions -------------------------------------------------------------------------------------------


@FUZZ
@given(
    st.sampled_from([s for s in MasterState if s is not MasterState.CLOSED]),
    st.lists(garbage, min_size=1, max_size=6),
)
def test_master_session_never_raises_on_anything_a_replica_sends(state, chunks):
    master = master_in(state)
    events = []
    for chunk in chunks:
        events += master.receive_data(chunk, T0)
        events += master.check_timeouts(T0 + 1)
    check_session_events(master, events)


@FUZZ
@given(
    st.sampled_from([s for s in ReplicaState if s is not ReplicaState.CLOSED]),
    st.lists(garbage, min_size=1, max_size=6),
)
def test_replica_session_never_raises_on_anything_a_master_sends(state, chunks):
    replica = replica_in(state)
    events = []
    for chunk in chunks:
        events += replica.receive_data(chunk, T0)
        events += replica.check_timeouts(T0 + 1)
    check_session_events(replica, events)


@FUZZ
@given(
    st.sampled_from([s for s in ReplicaState if s is not ReplicaState.CLOSED]),
    st.lists(plausible, min_size=1, max_size=8),
)
def test_replica_session_survives_plausible_message_sequences(state, sequence):
    replica = replica_in(state)
    before = replica.offset
    events = []
    for message in sequence:
        events += replica.receive_data(message.encode(), T0)
    check_session_events(replica, events)
    # The offset moves only through a completed sync or through contiguous records.
    applied = sum(len(e.records) for e in events if isinstance(e, RecordsReceived))
    synced = [e.offset for e in events if isinstance(e, FullSyncCompleted)]
    if not synced:
        assert replica.offset == before + applied


def replay(cuts: list[int]):
    """Authenticate, then feed a full sync, records and a heartbeat to the replica, cut
    into reads at ``cuts``."""
    master = MasterSession(SECRET, T0)
    replica = ReplicaSession("r", None, None, 0, SECRET)
    master.receive_data(replica.initiate(T0), T0)
    events = replica.receive_data(master.data_to_send(), T0)
    master.receive_data(replica.data_to_send(), T0)
    events += replica.receive_data(master.data_to_send(), T0)
    keys = [(b"key%d" % i, b"value%d" % i * 5, i % 3) for i in range(40)]
    parts = [master.send_fullsync(REPLID, 7, len(keys), T0)]
    parts += [master.snapshot_chunk(batch) for batch in batch_entries(keys, 200)]
    parts.append(master.snapshot_end(T0))
    parts.append(master.send_records(MasterSession.records_frame(8, [b"\x91\x91\x04"] * 3, T0)))
    parts.append(master.heartbeat(10, T0 + 1))
    body = b"".join(parts)
    bounds = sorted(c % (len(body) + 1) for c in cuts)
    for start, end in zip([0, *bounds], [*bounds, len(body)], strict=True):
        events += replica.receive_data(body[start:end], T0)
    return replica, events


@FUZZ
@given(st.lists(st.integers(0, 10**6), max_size=12))
def test_cutting_the_stream_into_reads_never_changes_the_replica_events(cuts):
    replica, events = replay(cuts)
    _, reference = replay([])
    assert events == reference
    assert replica.state is ReplicaState.STREAMING
    assert (replica.offset, replica.master_offset) == (10, 10)
    assert not any(isinstance(e, ProtocolViolation) for e in events)


@FUZZ
@given(st.integers(0, 10**6), st.integers(1, 255))
def test_a_flipped_byte_in_the_snapshot_never_completes_the_sync(where, xor):
    # Flip one byte anywhere in a full sync. The sync must fail, or stall waiting for bytes
    # a corrupted length promised, or complete with exactly the master's data (the byte
    # was harmless, e.g. inside a timestamp). It never completes with different data,
    # and a sync that did not complete leaves the replica's history untouched.
    master = MasterSession(None, T0)
    replica = ReplicaSession("r", None, None, 0, None)
    master.receive_data(replica.initiate(T0), T0)
    keys = [(b"key%d" % i, b"v%d" % i, 0) for i in range(30)]
    stream = bytearray(master.send_fullsync(REPLID, 7, len(keys), T0))
    for batch in batch_entries(keys, 100):
        stream += master.snapshot_chunk(batch)
    stream += master.snapshot_end(T0)
    stream[where % len(stream)] ^= xor
    events = replica.receive_data(bytes(stream), T0)
    received = {}
    for event in events:
        for key, value, _ in getattr(event, "entries", ()):
            received[key] = value
    if replica.state is ReplicaState.STREAMING:
        assert received == {k: v for k, v, _ in keys}
    else:
        assert not any(isinstance(e, FullSyncCompleted) for e in events)
        assert (replica.replid, replica.offset) == ("?", 0)
