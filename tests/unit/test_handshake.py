"""The replication handshake: PSYNC2 decision, authentication, full and partial sync,
streaming rules, timeouts and lag. Master and replica sessions talk through an
in-memory link; no sockets."""

from __future__ import annotations

import re
import zlib

import pytest

from synap.replication.backlog import ReplicationBacklog
from synap.replication.framing import FrameDecoder, LocalProtocolError, encode_frame
from synap.replication.handshake import (
    AuthenticationFailed,
    ErrorReceived,
    LocallyClosed,
    ProtocolViolation,
    SessionEnded,
    TimedOut,
    decide_sync,
    master_proof,
    new_replid,
    replica_proof,
)
from synap.replication.master_session import (
    AckReceived,
    Authenticated,
    HelloReceived,
    MasterSession,
    MasterState,
    SyncRequested,
    batch_entries,
)
from synap.replication.messages import (
    PROTOCOL_VERSION,
    Ack,
    AuthChallenge,
    AuthOk,
    AuthResponse,
    Continue,
    ErrorCode,
    FullSync,
    Heartbeat,
    Hello,
    Records,
    SnapshotChunk,
    SnapshotEnd,
    Truncate,
    decode_message,
    encode_records,
    encode_snapshot_payload,
)
from synap.replication.replica_session import (
    ChallengeReceived,
    FullSyncCompleted,
    FullSyncStarted,
    HeartbeatReceived,
    HistoryDiverged,
    MasterAuthenticated,
    PartialSyncAccepted,
    RecordsReceived,
    ReplicaSession,
    ReplicaState,
    SnapshotChunkReceived,
    TruncateRequested,
)
from synap.store.effects import encode_record

SECRET = b"correct horse battery staple"
REPLID = "1" * 40
OTHER_REPLID = "2" * 40
T0 = 1_000_000


class Link:
    """Carries bytes between a master and a replica session and records the wire."""

    def __init__(self, master: MasterSession, replica: ReplicaSession, now: int = T0) -> None:
        self.m = master
        self.r = replica
        self.now = now
        self.wire: list[bytes] = []
        self.master_events: list[object] = []
        self.replica_events: list[object] = []

    def start(self) -> None:
        self.to_master(self.r.initiate(self.now))

    def to_master(self, data: bytes) -> list[object]:
        self.wire.append(data)
        events: list[object] = list(self.m.receive_data(data, self.now))
        self.master_events += events
        reply = self.m.data_to_send()
        if reply:
            self.to_replica(reply)
        return events

    def to_replica(self, data: bytes) -> list[object]:
        self.wire.append(data)
        events: list[object] = list(self.r.receive_data(data, self.now))
        self.replica_events += events
        reply = self.r.data_to_send()
        if reply:
            self.to_master(reply)
        return events


def link(master_secret=None, replica_secret=None, replid=None, offset=0, **replica_kw) -> Link:
    return Link(
        MasterSession(master_secret, T0),
        ReplicaSession("replica-1", "10.0.0.5:15501", replid, offset, replica_secret, **replica_kw),
    )


def ended(events) -> SessionEnded:
    """The last event, which must be the one that ended the session."""
    assert events and isinstance(events[-1], SessionEnded), events
    return events[-1]


def kinds(events) -> list[str]:
    return [type(e).__name__ for e in events]


def full_sync(lk: Link, data: dict[bytes, bytes], offset: int, replid: str = REPLID, chunk=64):
    entries = [(k, v, 0) for k, v in data.items()]
    lk.to_replica(lk.m.send_fullsync(replid, offset, len(entries), lk.now))
    for batch in batch_entries(entries, chunk):
        lk.to_replica(lk.m.snapshot_chunk(batch))
    lk.to_replica(lk.m.snapshot_end(lk.now))


def replica_data(events) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for e in events:
        if isinstance(e, SnapshotChunkReceived):
            out.update((k, v) for k, v, _ in e.entries)
    return out


def streaming_pair(offset: int = 10, replid: str = REPLID) -> Link:
    """A master and replica that completed a partial sync at ``offset``."""
    lk = link(replid=replid, offset=offset)
    lk.start()
    lk.to_replica(lk.m.send_continue(replid, lk.now))
    assert lk.r.state is ReplicaState.STREAMING
    return lk


def records(first: int, count: int) -> list[bytes]:
    return [encode_record([[0, b"k%d" % o, b"v%d" % o, 0]]) for o in range(first, first + count)]


# --- replication ids ------------------------------------------------------------------------


def test_replication_id_is_40_random_hex_characters():
    ids = {new_replid() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9a-f]{40}", i) for i in ids)


# --- the PSYNC2 decision --------------------------------------------------------------------


def backlog_window(first: int, last: int) -> ReplicationBacklog:
    backlog = ReplicationBacklog(last_offset=first - 1)
    for _ in range(first, last + 1):
        backlog.append(b"r")
    return backlog


def decide(req_replid, next_offset, backlog, replid2=None, second_offset=0):
    return decide_sync(req_replid, next_offset, REPLID, replid2, second_offset, backlog)


def test_partial_sync_when_replica_follows_our_id_and_its_offset_is_in_the_log():
    decision = decide(REPLID, 600, backlog_window(500, 700))
    assert decision.partial
    assert decision.reason == "replica resumes at offset 600; 101 records to send"


def test_partial_sync_when_replica_is_already_up_to_date():
    decision = decide(REPLID, 701, backlog_window(500, 700))
    assert decision.kind == "partial"
    assert decision.reason == "replica is up to date at offset 700"


def test_partial_sync_from_the_oldest_record_still_held():
    assert decide(REPLID, 500, backlog_window(500, 700)).partial


def test_partial_sync_refused_just_before_the_oldest_record_held():
    decision = decide(REPLID, 499, backlog_window(500, 700))
    assert decision.reason == "offset 499 no longer in the log (log starts at 500)"


def test_partial_sync_refused_when_offset_left_the_log():
    decision = decide(REPLID, 5, backlog_window(1000, 2000))
    assert decision.kind == "full"
    assert decision.reason == "offset 5 no longer in the log (log starts at 1000)"


def test_partial_sync_refused_when_replica_asks_beyond_our_offset():
    decision = decide(REPLID, 900, backlog_window(1, 500))
    assert decision.kind == "full"
    assert decision.reason == "replica asked for offset 900 beyond our offset 500"


def test_partial_sync_refused_one_past_the_next_offset_we_would_write():
    decision = decide(REPLID, 702, backlog_window(500, 700))
    assert decision.reason == "replica asked for offset 702 beyond our offset 700"


def test_full_sync_when_replica_has_no_history():
    decision = decide("?", 1, backlog_window(1, 500))
    assert decision.kind == "full"
    assert "no replication history" in decision.reason


def test_full_sync_on_replication_id_mismatch():
    decision = decide(OTHER_REPLID, 10, backlog_window(1, 500))
    assert decision.kind == "full"
    assert decision.reason == (
        f"replication id mismatch: replica follows {OTHER_REPLID}, we are {REPLID}"
    )


def test_psync2_replica_of_the_old_master_continues_on_our_previous_id():
    # We were promoted at offset 500: replid2 = old id, second_offset = 501.
    decision = decide(OTHER_REPLID, 450, backlog_window(1, 800), OTHER_REPLID, 501)
    assert decision.partial


def test_psync2_replica_that_has_all_of_the_old_history_continues():
    decision = decide(OTHER_REPLID, 501, backlog_window(1, 800), OTHER_REPLID, 501)
    assert decision.partial


def test_psync2_replica_that_went_past_the_switch_point_is_told_to_truncate():
    # It got writes the old master accepted after our promotion: a history we never had.
    # The two share offsets 1..500; it drops 501..519 and comes back for offset 501.
    decision = decide(OTHER_REPLID, 520, backlog_window(1, 800), OTHER_REPLID, 501)
    assert decision.kind == "truncate" and decision.truncate and not decision.partial
    assert decision.fork_offset == 500
    assert decision.code == "diverged"
    assert decision.reason == (
        f"replica follows our previous replication id {OTHER_REPLID} up to offset 519, "
        f"but that history ended at offset 500 when we switched to {REPLID}: it must drop "
        f"its 19 record(s) after offset 500, then resume from offset 501"
    )


def test_psync2_one_record_past_the_switch_point_is_a_fork_too():
    decision = decide(OTHER_REPLID, 502, backlog_window(1, 800), OTHER_REPLID, 501)
    assert decision.truncate and decision.fork_offset == 500


def test_psync2_fork_point_still_in_the_log_at_its_first_record():
    # The log starts exactly at second_offset: the records after the fork can be sent.
    decision = decide(OTHER_REPLID, 520, backlog_window(501, 800), OTHER_REPLID, 501)
    assert decision.truncate and decision.fork_offset == 500


def test_psync2_full_sync_when_the_fork_point_left_the_log():
    decision = decide(OTHER_REPLID, 520, backlog_window(502, 800), OTHER_REPLID, 501)
    assert decision.kind == "full"
    assert decision.code == "history_ended"
    assert decision.reason == (
        f"replica follows our previous replication id {OTHER_REPLID} up to offset 519, "
        f"but that history ended at offset 500 when we switched to {REPLID}, and the fork "
        f"point is no longer in our log (log starts at 502)"
    )


def test_psync2_previous_id_still_needs_the_offset_in_the_log():
    decision = decide(OTHER_REPLID, 50, backlog_window(100, 800), OTHER_REPLID, 501)
    assert decision.reason == "offset 50 no longer in the log (log starts at 100)"


def test_psync2_unknown_id_mismatch_names_our_previous_id():
    decision = decide("3" * 40, 50, backlog_window(1, 800), OTHER_REPLID, 501)
    assert decision.kind == "full"
    assert f"(previously {OTHER_REPLID} up to offset 500)" in decision.reason


# --- handshake without authentication ---------------------------------------------------------


def test_hello_identifies_the_replica_and_requests_a_sync():
    lk = link(replid=REPLID, offset=41)
    lk.start()
    assert lk.master_events == [
        HelloReceived("replica-1", "10.0.0.5:15501", REPLID, 41),
        SyncRequested(REPLID, 42),
    ]
    assert lk.m.state is MasterState.READY
    assert lk.r.state is ReplicaState.AWAIT_REPLY


def test_full_sync_transfers_every_key_and_then_streams():
    lk = link()
    lk.start()
    data = {b"key:%04d" % i: b"value-%d" % i * 3 for i in range(300)}
    full_sync(lk, data, offset=1234, chunk=1000)
    assert isinstance(lk.replica_events[0], FullSyncStarted)
    assert lk.replica_events[0] == FullSyncStarted(REPLID, 1234, 300)
    assert lk.replica_events[-1] == FullSyncCompleted(REPLID, 1234, 300)
    assert replica_data(lk.replica_events) == data
    assert sum(isinstance(e, SnapshotChunkReceived) for e in lk.replica_events) > 5
    assert (lk.r.replid, lk.r.offset, lk.r.state) == (REPLID, 1234, ReplicaState.STREAMING)
    assert (lk.m.state, lk.m.next_offset) == (MasterState.STREAMING, 1235)

    frame = MasterSession.records_frame(1235, records(1235, 3), lk.now)
    events = lk.to_replica(lk.m.send_records(frame))
    assert events == [RecordsReceived(1235, records(1235, 3), lk.now)]
    assert lk.r.offset == 1237
    # The records stay in the frame, to be delimited as they are applied (one pass).
    (event,) = events
    assert event.frame is not None and event.frame.body == frame.data[4:]
    assert (event.count, event.last_offset) == (3, 1237)
    assert event.frame.body[event.frame.pos :] == b"".join(records(1235, 3))


def test_full_sync_of_an_empty_keyspace():
    lk = link()
    lk.start()
    full_sync(lk, {}, offset=0)
    assert kinds(lk.replica_events) == ["FullSyncStarted", "FullSyncCompleted"]


def test_snapshot_keeps_expiry_times():
    lk = link()
    lk.start()
    lk.to_replica(lk.m.send_fullsync(REPLID, 5, 2, lk.now))
    lk.to_replica(lk.m.snapshot_chunk([(b"a", b"1", 0), (b"b", b"2", 1_900_000_000_000)]))
    lk.to_replica(lk.m.snapshot_end(lk.now))
    chunk = next(e for e in lk.replica_events if isinstance(e, SnapshotChunkReceived))
    assert list(chunk.entries) == [(b"a", b"1", 0), (b"b", b"2", 1_900_000_000_000)]


def test_partial_sync_resumes_after_the_replica_offset():
    lk = streaming_pair(offset=10)
    assert lk.replica_events == [PartialSyncAccepted(REPLID, 10, None)]
    assert lk.m.next_offset == 11
    frame = MasterSession.records_frame(11, records(11, 2), lk.now)
    assert kinds(lk.to_replica(lk.m.send_records(frame))) == ["RecordsReceived"]


def test_psync2_continue_under_a_new_id_reports_the_previous_one():
    lk = link(replid=OTHER_REPLID, offset=300)
    lk.start()
    lk.to_replica(lk.m.send_continue(REPLID, lk.now))
    assert lk.replica_events == [PartialSyncAccepted(REPLID, 300, OTHER_REPLID)]
    assert lk.r.replid == REPLID


def test_a_records_frame_is_the_same_bytes_for_every_replica():
    a, b = streaming_pair(10), streaming_pair(10)
    frame = MasterSession.records_frame(11, records(11, 5), T0)
    assert a.m.send_records(frame) is frame.data
    assert b.m.send_records(frame) is frame.data


def test_replica_with_no_history_cannot_be_offered_a_partial_sync():
    lk = link()
    lk.start()
    events = lk.to_replica(Continue(REPLID, 0, T0).encode())
    assert isinstance(events[-1], ProtocolViolation)
    assert "no history" in ended(events).reason


def test_continue_must_resume_at_the_replica_offset():
    lk = link(replid=REPLID, offset=10)
    lk.start()
    events = lk.to_replica(Continue(REPLID, 9, T0).encode())
    assert ended(events).reason == "master resumes at offset 9 but this replica is at 10"


def test_truncate_tells_the_replica_the_fork_point_and_ends_both_sessions():
    lk = link(replid=OTHER_REPLID, offset=520)
    lk.start()
    lk.to_replica(lk.m.send_truncate(REPLID, 500, epoch=0))
    assert lk.m.state is MasterState.CLOSED
    assert lk.m.ended is not None and lk.m.ended.code == ErrorCode.DIVERGED
    assert lk.replica_events[0] == TruncateRequested(REPLID, 500, 520)
    end = ended(lk.replica_events)
    assert isinstance(end, HistoryDiverged) and end.code == ErrorCode.DIVERGED
    assert "20 record(s) to truncate" in end.reason
    assert lk.r.state is ReplicaState.CLOSED
    # The replica's history is unchanged until it truncates; it is not a failure.
    assert (lk.r.replid, lk.r.offset) == (OTHER_REPLID, 520)


def test_truncate_message_round_trips_with_and_without_an_epoch():
    for epoch in (0, 7):
        message = decode_message(Truncate(REPLID, 500, epoch).encode()[4:])
        assert message == Truncate(REPLID, 500, epoch)


def test_truncate_at_or_beyond_the_replica_offset_is_a_violation():
    for fork in (520, 600):
        lk = link(replid=OTHER_REPLID, offset=520)
        lk.start()
        events = lk.to_replica(Truncate(REPLID, fork).encode())
        assert isinstance(ended(events), ProtocolViolation)
        assert "nothing to truncate" in ended(events).reason
        assert not any(isinstance(e, TruncateRequested) for e in events)


def test_truncate_to_a_replica_with_no_history_is_a_violation():
    lk = link()
    lk.start()
    events = lk.to_replica(Truncate(REPLID, 0).encode())
    assert isinstance(ended(events), ProtocolViolation)


def test_truncate_from_a_master_of_an_older_epoch_is_refused():
    lk = link(replid=OTHER_REPLID, offset=520)
    lk.r.min_epoch = 5
    lk.start()
    events = lk.to_replica(Truncate(REPLID, 500, 4).encode())
    assert isinstance(ended(events), ProtocolViolation)
    assert "older than epoch 5" in ended(events).reason
    assert not any(isinstance(e, TruncateRequested) for e in events)


def test_master_cannot_ask_to_truncate_at_or_past_the_replica_offset():
    lk = link(replid=OTHER_REPLID, offset=520)
    lk.start()
    with pytest.raises(ValueError, match="below the replica's offset"):
        lk.m.send_truncate(REPLID, 520)
    assert lk.m.state is MasterState.READY


def test_truncate_while_streaming_is_a_violation():
    lk = streaming_pair(offset=10)
    events = lk.to_replica(Truncate(REPLID, 5).encode())
    assert isinstance(ended(events), ProtocolViolation)
    with pytest.raises(LocalProtocolError):
        lk.m.send_truncate(REPLID, 5)


# --- authentication -----------------------------------------------------------------------------


def test_mutual_authentication_succeeds_with_the_same_secret():
    lk = link(SECRET, SECRET, replid=REPLID, offset=7)
    lk.start()
    assert kinds(lk.master_events) == ["HelloReceived", "Authenticated", "SyncRequested"]
    assert lk.master_events[1:] == [Authenticated(), SyncRequested(REPLID, 8)]
    assert lk.replica_events == [ChallengeReceived(), MasterAuthenticated()]
    assert lk.r.state is ReplicaState.AWAIT_SYNC
    lk.to_replica(lk.m.send_continue(REPLID, lk.now))
    assert lk.r.state is ReplicaState.STREAMING


def test_authentication_fails_with_different_secrets_and_both_sides_say_why():
    lk = link(SECRET, b"another secret", replid=REPLID, offset=7)
    lk.start()
    failure = ended(lk.master_events)
    assert isinstance(failure, AuthenticationFailed)
    assert failure.code == ErrorCode.AUTH_FAILED
    assert "set the same replication.auth_secret on both nodes" in failure.reason
    assert lk.m.state is MasterState.CLOSED
    assert lk.replica_events[-1] == ErrorReceived(ErrorCode.AUTH_FAILED, failure.reason)
    assert lk.r.state is ReplicaState.CLOSED
    with pytest.raises(LocalProtocolError):
        lk.m.send_fullsync(REPLID, 0, 0, lk.now)


def test_replica_without_a_secret_refuses_a_master_that_requires_one():
    lk = link(SECRET, None)
    lk.start()
    failure = ended(lk.replica_events)
    assert isinstance(failure, AuthenticationFailed) and failure.code == ErrorCode.AUTH_REQUIRED
    assert "no replication.auth_secret" in failure.reason
    assert isinstance(lk.master_events[-1], ErrorReceived)


def test_replica_with_a_secret_refuses_a_master_that_skips_authentication():
    # A master without the secret could be anyone; a full sync from it would replace
    # all of the replica's data.
    lk = link(None, SECRET)
    lk.start()
    lk.to_replica(lk.m.send_fullsync(REPLID, 0, 0, lk.now))
    failure = ended(lk.replica_events)
    assert isinstance(failure, AuthenticationFailed) and failure.code == ErrorCode.AUTH_REQUIRED
    assert "did not ask for authentication" in failure.reason
    assert not any(isinstance(e, FullSyncStarted) for e in lk.replica_events)


def test_impostor_master_that_cannot_prove_the_secret_is_refused():
    # A fake master accepts anything and sends a made-up proof: the replica must refuse it
    # before any FULLSYNC can wipe its data.
    replica = ReplicaSession("r1", None, REPLID, 5, SECRET)
    replica.initiate(T0)
    assert kinds(replica.receive_data(AuthChallenge(b"c" * 32).encode(), T0)) == [
        "ChallengeReceived"
    ]
    assert replica.data_to_send()  # our AUTH_RESPONSE: reveals nothing about the secret
    events = replica.receive_data(
        AuthOk(b"\x00" * 32).encode() + FullSync(REPLID, 0, 0, T0).encode(), T0
    )
    assert kinds(events) == ["AuthenticationFailed"]
    assert ended(events).code == ErrorCode.AUTH_FAILED
    assert "could not prove it knows the replication secret" in ended(events).reason
    assert replica.state is ReplicaState.CLOSED


def test_secret_never_appears_on_the_wire():
    transcripts = []
    for master_secret, replica_secret in [
        (SECRET, SECRET),
        (SECRET, b"wrong"),
        (SECRET, None),
        (None, SECRET),
    ]:
        lk = link(master_secret, replica_secret, replid=REPLID, offset=3)
        lk.start()
        if lk.m.state is MasterState.READY:
            lk.to_replica(lk.m.send_continue(REPLID, lk.now))
        transcripts.append(b"".join(lk.wire))
    for wire in transcripts:
        for form in (SECRET, SECRET.hex().encode(), b"wrong"):
            assert form not in wire


def test_a_recorded_auth_response_cannot_be_replayed():
    first = link(SECRET, SECRET, replid=REPLID, offset=3)
    first.start()
    frames = [f for w in first.wire for f in FrameDecoder().decode(w)]
    recorded = next(f for f in frames if isinstance(decode_message(f), AuthResponse))
    # An eavesdropper replays it on a new connection, but the master's nonce is new.
    master = MasterSession(SECRET, T0)
    hello = Hello(PROTOCOL_VERSION, "replica-1", "10.0.0.5:15501", REPLID, 3)
    master.receive_data(hello.encode(), T0)
    events = master.receive_data(encode_frame(recorded), T0)
    assert isinstance(events[-1], AuthenticationFailed)


def test_proofs_are_bound_to_role_and_to_the_hello():
    mn, rn = b"m" * 32, b"r" * 32
    hello = Hello(PROTOCOL_VERSION, "r", None, REPLID, 1).encode()[4:]
    other_hello = Hello(PROTOCOL_VERSION, "r", None, REPLID, 2).encode()[4:]
    assert replica_proof(SECRET, mn, rn, hello) != master_proof(SECRET, mn, rn, hello)
    assert replica_proof(SECRET, mn, rn, hello) != replica_proof(SECRET, mn, rn, other_hello)


def test_empty_secret_is_a_configuration_error():
    with pytest.raises(ValueError, match="replication.auth_secret is empty"):
        MasterSession(b"", T0)
    with pytest.raises(TypeError):
        ReplicaSession("r", None, None, 0, "text-secret")  # type: ignore[arg-type]


def test_master_cannot_send_a_sync_before_the_replica_authenticated():
    master = MasterSession(SECRET, T0)
    master.receive_data(Hello(PROTOCOL_VERSION, "r", None, "?", 0).encode(), T0)
    assert master.state is MasterState.AWAIT_AUTH
    with pytest.raises(LocalProtocolError, match="cannot send FULLSYNC in state AWAIT_AUTH"):
        master.send_fullsync(REPLID, 0, 0, T0)


# --- version and refusal -------------------------------------------------------------------------


def test_unsupported_protocol_version_is_refused_with_a_clear_error():
    lk = link()
    lk.r.initiate(T0)
    lk.to_master(Hello(PROTOCOL_VERSION + 1, "replica-1", None, "?", 0).encode())
    failure = ended(lk.master_events)
    assert failure.code == ErrorCode.VERSION_UNSUPPORTED
    assert "version 2" in failure.reason and "same Synap version" in failure.reason
    assert lk.replica_events[-1] == ErrorReceived(ErrorCode.VERSION_UNSUPPORTED, failure.reason)


def test_master_can_refuse_a_replica_and_the_challenge_is_never_sent():
    master = MasterSession(SECRET, T0)
    events = master.receive_data(Hello(PROTOCOL_VERSION, "r", None, "?", 0).encode(), T0)
    assert kinds(events) == ["HelloReceived"]
    out = master.close(ErrorCode.NOT_MASTER, "this node is a replica; connect to the master")
    assert master.state is MasterState.CLOSED
    replica = ReplicaSession("r", None, None, 0, SECRET)
    replica.initiate(T0)
    assert replica.receive_data(out, T0) == [
        ErrorReceived(ErrorCode.NOT_MASTER, "this node is a replica; connect to the master")
    ]
    assert master.close(ErrorCode.NOT_MASTER, "again") == b""
    assert isinstance(master.ended, LocallyClosed)


# --- snapshot integrity ---------------------------------------------------------------------------


def start_snapshot(keys: int, offset: int = 100):
    lk = link()
    lk.start()
    lk.to_replica(lk.m.send_fullsync(REPLID, offset, keys, lk.now))
    return lk


def test_corrupt_snapshot_chunk_fails_its_crc32_check():
    lk = start_snapshot(keys=18)
    for seq in range(17):
        lk.to_replica(lk.m.snapshot_chunk([(b"k%d" % seq, b"v", 0)]))
    frame = bytearray(lk.m.snapshot_chunk([(b"k17", b"v", 0)]))
    frame[-2] ^= 0x01  # one bit flipped inside the payload
    events = lk.r.receive_data(bytes(frame), T0)
    assert isinstance(events[-1], ProtocolViolation)
    assert ended(events).code == ErrorCode.SYNC_FAILED
    assert ended(events).reason.startswith("snapshot chunk 17 failed CRC32 check")
    assert lk.r.state is ReplicaState.CLOSED
    # The replica keeps the history it had: nothing of the failed sync was adopted.
    assert (lk.r.replid, lk.r.offset) == ("?", 0)


def test_missing_snapshot_chunk_is_detected():
    lk = start_snapshot(keys=3)
    lk.to_replica(lk.m.snapshot_chunk([(b"a", b"1", 0)]))
    lk.m.snapshot_chunk([(b"b", b"2", 0)])  # lost
    events = lk.to_replica(lk.m.snapshot_chunk([(b"c", b"3", 0)]))
    assert ended(events).reason == "snapshot chunk 2 arrived, expected chunk 1"


def test_snapshot_end_verifies_the_total_crc32():
    lk = start_snapshot(keys=1)
    lk.to_replica(lk.m.snapshot_chunk([(b"a", b"1", 0)]))
    events = lk.r.receive_data(SnapshotEnd(1, 1, 12345).encode(), T0)
    assert "total CRC32 mismatch" in ended(events).reason
    assert lk.r.offset == 0


def test_snapshot_end_verifies_the_key_count():
    lk = start_snapshot(keys=2)
    payload = encode_snapshot_payload([(b"a", b"1", 0)])
    lk.r.receive_data(SnapshotChunk(0, zlib.crc32(payload), payload).encode(), T0)
    events = lk.r.receive_data(SnapshotEnd(1, 1, zlib.crc32(payload)).encode(), T0)
    assert "key counts disagree: FULLSYNC announced 2" in ended(events).reason


def test_snapshot_with_more_keys_than_announced_is_rejected():
    lk = start_snapshot(keys=1)
    payload = encode_snapshot_payload([(b"a", b"1", 0), (b"b", b"2", 0)])
    events = lk.r.receive_data(SnapshotChunk(0, zlib.crc32(payload), payload).encode(), T0)
    assert "FULLSYNC announced 1" in ended(events).reason


def test_records_before_the_snapshot_ends_are_rejected():
    lk = start_snapshot(keys=1)
    events = lk.r.receive_data(encode_records(101, records(101, 1), T0), T0)
    assert "unexpected RECORDS from the master in state FULL_SYNC" in ended(events).reason


def test_master_must_send_exactly_the_announced_keys():
    lk = start_snapshot(keys=2)
    lk.to_replica(lk.m.snapshot_chunk([(b"a", b"1", 0)]))
    with pytest.raises(LocalProtocolError, match="announced 2 keys but only 1 were sent"):
        lk.m.snapshot_end(T0)
    with pytest.raises(LocalProtocolError, match="now hold 3"):
        lk.m.snapshot_chunk([(b"b", b"2", 0), (b"c", b"3", 0)])


# --- streaming ---------------------------------------------------------------------------------------


def test_records_with_a_gap_are_rejected():
    lk = streaming_pair(offset=100)
    events = lk.r.receive_data(encode_records(150, records(150, 2), T0), T0)
    assert isinstance(events[-1], ProtocolViolation)
    assert ended(events).reason == (
        "records out of order: master sent offsets 150..151, expected 101 next "
        "(records 101..149 are missing)"
    )
    assert lk.r.offset == 100


def test_records_already_applied_are_rejected():
    lk = streaming_pair(offset=100)
    events = lk.r.receive_data(encode_records(99, records(99, 3), T0), T0)
    assert "this replica already holds up to 100" in ended(events).reason


def test_master_refuses_to_send_a_batch_that_does_not_start_at_the_replica_position():
    lk = streaming_pair(offset=100)
    frame = MasterSession.records_frame(105, records(105, 1), T0)
    with pytest.raises(LocalProtocolError, match="needs offset 101 next"):
        lk.m.send_records(frame)


def test_acks_advance_the_master_view_of_the_replica():
    lk = streaming_pair(offset=100)
    lk.to_replica(lk.m.send_records(MasterSession.records_frame(101, records(101, 5), T0)))
    events = lk.to_master(lk.r.ack())
    assert events == [AckReceived(105, T0)]
    assert lk.m.acked_offset == 105


def test_ack_beyond_what_was_sent_is_a_violation():
    lk = streaming_pair(offset=100)
    events = lk.m.receive_data(Ack(150, T0).encode(), T0)
    assert (
        ended(events).reason
        == "replica 'replica-1' acknowledged offset 150 but was only sent records up to 100"
    )
    assert lk.m.state is MasterState.CLOSED


def test_ack_of_exactly_the_last_record_sent_is_accepted_and_one_more_is_not():
    lk = streaming_pair(offset=100)
    assert lk.m.receive_data(Ack(100, T0).encode(), T0) == [AckReceived(100, T0)]
    events = lk.m.receive_data(Ack(101, T0).encode(), T0)
    assert "acknowledged offset 101 but was only sent records up to 100" in ended(events).reason


def test_ack_going_backwards_is_a_violation():
    lk = streaming_pair(offset=100)
    events = lk.m.receive_data(Ack(50, T0).encode(), T0)
    assert "acknowledged offset 50 after already acknowledging 100" in ended(events).reason


def test_heartbeat_reports_the_master_offset():
    lk = streaming_pair(offset=100)
    events = lk.to_replica(lk.m.heartbeat(120, T0 + 5))
    assert events == [HeartbeatReceived(120, T0 + 5)]
    assert lk.r.master_offset == 120


def test_master_offset_going_backwards_is_a_violation():
    lk = streaming_pair(offset=100)
    lk.r.receive_data(Heartbeat(120, T0).encode(), T0)
    events = lk.r.receive_data(Heartbeat(110, T0).encode(), T0)
    assert ended(events).reason == "master offset went backwards from 120 to 110"


def test_master_refuses_to_send_a_heartbeat_behind_the_records_it_sent():
    lk = streaming_pair(offset=100)
    assert lk.m.heartbeat(100, T0)
    with pytest.raises(LocalProtocolError, match="heartbeat offset 99 is behind"):
        lk.m.heartbeat(99, T0)


def test_heartbeat_behind_the_records_already_sent_is_a_violation():
    lk = streaming_pair(offset=100)
    events = lk.r.receive_data(Heartbeat(90, T0).encode(), T0)
    assert "reports offset 90 but has already sent records up to 100" in ended(events).reason


def test_a_message_that_is_illegal_in_the_current_state_closes_the_session_and_tells_the_peer():
    master = MasterSession(None, T0)
    events = master.receive_data(Ack(1, 0).encode(), T0)
    assert isinstance(events[-1], ProtocolViolation)
    assert ended(events).reason == (
        "unexpected ACK from the replica in state AWAIT_HELLO (expected HELLO or ERROR)"
    )
    assert master.state is MasterState.CLOSED
    replica = ReplicaSession("r", None, None, 0, None)
    replica.initiate(T0)
    assert replica.receive_data(master.data_to_send(), T0) == [
        ErrorReceived(ErrorCode.PROTOCOL, ended(events).reason)
    ]
    # A closed session ignores anything else the peer sends.
    assert master.receive_data(Hello(PROTOCOL_VERSION, "r", None, "?", 0).encode(), T0) == []


def test_replica_only_listens_until_the_master_decides():
    lk = link()
    lk.start()
    events = lk.m.receive_data(Ack(0, 0).encode(), T0)
    assert "in state READY" in ended(events).reason


def test_messages_after_a_fatal_one_in_the_same_read_are_not_processed():
    master = MasterSession(None, T0)
    data = Ack(1, 0).encode() + Hello(PROTOCOL_VERSION, "r", None, "?", 0).encode()
    events = master.receive_data(data, T0)
    assert kinds(events) == ["ProtocolViolation"]


def test_malformed_bytes_become_a_protocol_violation():
    master = MasterSession(None, T0)
    events = master.receive_data(b"\x00\x00\x00\x02\xc1\xc1", T0)
    assert isinstance(events[-1], ProtocolViolation)
    assert ended(events).reason.startswith("malformed message from the replica")


def test_master_accepts_only_small_frames_from_replicas():
    master = MasterSession(None, T0)
    events = master.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", T0)
    assert "exceeds the 65536-byte limit" in ended(events).reason


def test_replica_accepts_large_frames_only_after_the_handshake():
    big_record = encode_record([[0, b"k", b"v" * 200_000, 0]])
    lk = link()
    lk.start()  # the master has not answered yet: only small frames
    events = lk.r.receive_data(encode_records(1, [big_record], T0), T0)
    assert "exceeds the 65536-byte limit" in ended(events).reason

    lk = streaming_pair(offset=0)
    frame = MasterSession.records_frame(1, [big_record], T0)
    assert lk.to_replica(lk.m.send_records(frame)) == [RecordsReceived(1, [big_record], T0)]


# --- timeouts --------------------------------------------------------------------------------------


def test_master_drops_a_replica_that_does_not_finish_the_handshake():
    master = MasterSession(SECRET, T0, handshake_timeout_ms=10_000)
    master.receive_data(Hello(PROTOCOL_VERSION, "r", None, "?", 0).encode(), T0)
    assert master.check_timeouts(T0 + 9_999) == []
    events = master.check_timeouts(T0 + 10_000)
    assert isinstance(events[0], TimedOut) and events[0].code == ErrorCode.TIMEOUT
    assert "did not complete the handshake within 10000 ms" in events[0].reason
    assert master.state is MasterState.CLOSED


def test_master_drops_a_silent_streaming_replica_after_the_replica_timeout():
    lk = streaming_pair(offset=10)
    lk.m.replica_timeout_ms = 30_000
    lk.to_master(lk.r.ack())
    assert lk.m.check_timeouts(T0 + 29_999) == []
    lk.m.receive_data(lk.r.ack(), T0 + 20_000)
    assert lk.m.check_timeouts(T0 + 49_999) == []
    events = lk.m.check_timeouts(T0 + 50_000)
    assert isinstance(events[0], TimedOut)
    assert "no ACK from replica 'replica-1' for 30000 ms" in events[0].reason


def test_master_does_not_time_out_a_replica_loading_a_snapshot():
    lk = start_snapshot(keys=1)
    assert lk.m.check_timeouts(T0 + 10**7) == []
    lk.to_replica(lk.m.snapshot_chunk([(b"a", b"1", 0)]))
    lk.to_replica(lk.m.snapshot_end(T0 + 10**7))
    # The link timeout starts when streaming starts, not at the last byte received.
    assert lk.m.check_timeouts(T0 + 10**7 + 29_999) == []
    assert kinds(lk.m.check_timeouts(T0 + 10**7 + 30_000)) == ["TimedOut"]


def test_replica_detects_a_silent_master_after_30_seconds_by_default():
    lk = streaming_pair(offset=10)
    assert lk.r.master_timeout_ms == 30_000
    lk.r.receive_data(lk.m.heartbeat(10, T0), T0 + 1000)
    assert lk.r.check_timeouts(T0 + 30_999) == []
    events = lk.r.check_timeouts(T0 + 31_000)
    assert isinstance(events[0], TimedOut)
    assert "no data or heartbeat from the master for 30000 ms" in events[0].reason


def test_replica_gives_up_on_a_master_that_never_answers_the_handshake():
    replica = ReplicaSession("r", None, None, 0, None, handshake_timeout_ms=5000)
    replica.initiate(T0)
    assert replica.check_timeouts(T0 + 4999) == []
    assert kinds(replica.check_timeouts(T0 + 5000)) == ["TimedOut"]
    assert replica.check_timeouts(T0 + 6000) == []  # already closed


# --- lag -----------------------------------------------------------------------------------------


def test_replica_lag_in_operations_and_master_milliseconds():
    lk = streaming_pair(offset=100)
    assert (lk.r.lag_operations, lk.r.lag_ms) == (0, 0)
    lk.r.receive_data(
        lk.m.send_records(MasterSession.records_frame(101, records(101, 5), T0 + 10)), T0
    )
    lk.r.receive_data(lk.m.heartbeat(140, T0 + 250), T0)
    assert lk.r.lag_operations == 35
    assert lk.r.lag_ms == 240  # newest master time heard minus the time of what we hold
    lk.r.receive_data(
        lk.m.send_records(MasterSession.records_frame(106, records(106, 35), T0 + 300)), T0
    )
    assert (lk.r.lag_operations, lk.r.lag_ms) == (0, 0)


def test_master_lag_uses_only_its_own_clock():
    lk = streaming_pair(offset=100)
    lk.to_replica(lk.m.send_records(MasterSession.records_frame(101, records(101, 5), T0 + 10)))
    lk.m.receive_data(lk.r.ack(), T0 + 12)
    assert lk.m.lag_operations(105) == 0 and lk.m.lag_ms(105, T0 + 500) == 0
    assert lk.m.lag_operations(120) == 15
    assert lk.m.lag_ms(120, T0 + 500) == 490  # since we sent what it last acknowledged
    assert lk.m.last_ack_ms == T0 + 12


def test_caught_up_replica_echoes_the_heartbeat_time():
    lk = streaming_pair(offset=100)
    lk.r.receive_data(lk.m.heartbeat(100, T0 + 5000), T0)
    lk.m.receive_data(lk.r.ack(), T0 + 5001)
    assert lk.m.lag_ms(101, T0 + 5100) == 100


def test_full_sync_progress_is_visible_on_both_sides():
    lk = start_snapshot(keys=3)
    lk.to_replica(lk.m.snapshot_chunk([(b"a", b"1", 0)]))
    assert lk.r.snapshot_progress == (1, 3)
    assert lk.m.snapshot_progress == (1, 3)
    lk.to_replica(lk.m.snapshot_chunk([(b"b", b"1", 0), (b"c", b"1", 0)]))
    lk.to_replica(lk.m.snapshot_end(T0))
    assert lk.r.snapshot_progress is None and lk.m.snapshot_progress is None


# --- session API misuse --------------------------------------------------------------------------


def test_ack_is_only_possible_while_streaming():
    replica = ReplicaSession("r", None, None, 0, None)
    with pytest.raises(LocalProtocolError):
        replica.ack()


def test_hello_is_sent_once():
    replica = ReplicaSession("r", None, None, 0, None)
    replica.initiate(T0)
    with pytest.raises(LocalProtocolError):
        replica.initiate(T0)


def test_data_before_hello_is_a_violation():
    replica = ReplicaSession("r", None, None, 0, None)
    events = replica.receive_data(FullSync(REPLID, 0, 0, 0).encode(), T0)
    assert ended(events).reason == "master sent data before HELLO"


def test_invalid_replica_arguments_are_rejected():
    with pytest.raises(ValueError):
        ReplicaSession("", None, None, 0, None)
    with pytest.raises(ValueError):
        ReplicaSession("r", None, "not-a-replid", 0, None)


def test_every_session_ending_event_is_a_session_ended():
    for cls in (ProtocolViolation, AuthenticationFailed, TimedOut, ErrorReceived, LocallyClosed):
        assert issubclass(cls, SessionEnded)


def test_auth_response_message_is_not_accepted_without_a_challenge():
    master = MasterSession(None, T0)
    master.receive_data(Hello(PROTOCOL_VERSION, "r", None, "?", 0).encode(), T0)
    events = master.receive_data(AuthResponse(b"n" * 32, b"m" * 32).encode(), T0)
    assert isinstance(events[-1], ProtocolViolation)


def test_records_message_round_trip_through_the_session_keeps_bytes():
    lk = streaming_pair(offset=0)
    recs = records(1, 3)
    events = lk.r.receive_data(Records(1, 9, recs).encode(), T0)
    assert events == [RecordsReceived(1, recs, 9)]
