"""One connection to the master, as the replica sees it: a sans-IO state machine.

::

    CONNECTING --initiate()--> AWAIT_REPLY
    AWAIT_REPLY --AUTH_CHALLENGE (answered automatically)--> AWAIT_AUTH_OK --AUTH_OK ok--> AWAIT_SYNC
    AWAIT_REPLY / AWAIT_SYNC --FULLSYNC--> FULL_SYNC --SNAPSHOT_END ok--> STREAMING
    AWAIT_REPLY / AWAIT_SYNC --CONTINUE--> STREAMING
    AWAIT_REPLY / AWAIT_SYNC --TRUNCATE--> CLOSED   (HistoryDiverged: truncate, reconnect)
    any state --violation / auth failure / timeout / ERROR / close()--> CLOSED

A replica with a secret insists on mutual authentication. It accepts no FULLSYNC or
CONTINUE from a master that has not proved it knows the secret, because a full sync
from an impostor would replace all of its data.

Everything the master sends is verified before it becomes an event: snapshot chunks
against their CRC32 and sequence number, the finished snapshot against its announced
key count and total CRC32, and records against the offset that must come next. An event
is only emitted for data that is safe to apply.
"""

from __future__ import annotations

import enum
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from synap.replication.framing import (
    DEFAULT_MAX_FRAME_BYTES,
    HANDSHAKE_MAX_FRAME_BYTES,
    LocalProtocolError,
    ProtocolError,
)
from synap.replication.handshake import (
    DEFAULT_HANDSHAKE_TIMEOUT_MS,
    DEFAULT_LINK_TIMEOUT_MS,
    AuthenticationFailed,
    LocallyClosed,
    SessionBase,
    SessionEnded,
    TimedOut,
    check_secret,
    master_proof,
    new_nonce,
    proofs_match,
    replica_proof,
)
from synap.replication.messages import (
    NO_REPLID,
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
    Message,
    Records,
    RecordsTrailer,
    SnapshotChunk,
    SnapshotEnd,
    SnapshotEntry,
    Truncate,
    decode_records_frame,
    decode_snapshot_entries,
    is_valid_replid,
)
from synap.replication.peer_fields import check_host_port, check_peer_id


class ReplicaState(enum.Enum):
    CONNECTING = "connecting"  # created, HELLO not sent yet
    AWAIT_REPLY = "await_reply"  # HELLO sent
    AWAIT_AUTH_OK = "await_auth_ok"  # answered the challenge; waiting for the master's proof
    AWAIT_SYNC = "await_sync"  # master authenticated; waiting for FULLSYNC or CONTINUE
    FULL_SYNC = "full_sync"  # receiving a snapshot
    STREAMING = "streaming"
    CLOSED = "closed"


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChallengeReceived:
    """The master asked us to authenticate. The answer is already in ``data_to_send()``."""


@dataclass(frozen=True, slots=True)
class MasterAuthenticated:
    """The master proved it knows the secret."""


@dataclass(frozen=True, slots=True)
class FullSyncStarted:
    """A snapshot of ``keys`` keys at ``offset`` of history ``replid`` follows.

    Load it into a fresh keyspace, and swap it in only at ``FullSyncCompleted``, so that
    a failed sync leaves the old data (and the old replid and offset) intact.
    """

    replid: str
    offset: int
    keys: int


@dataclass(frozen=True, slots=True)
class SnapshotChunkReceived:
    """Verified snapshot entries: ``(key, value, expire_at_ms)``, expire 0 = none, with a
    fourth element (1) when the value is of json kind."""

    seq: int
    entries: Sequence[SnapshotEntry]


@dataclass(frozen=True, slots=True)
class FullSyncCompleted:
    """The snapshot arrived whole (counts and total CRC32 checked). We are now at
    ``offset`` of ``replid``: reset the backlog to ``offset`` and start streaming."""

    replid: str
    offset: int
    keys: int


@dataclass(frozen=True, slots=True)
class PartialSyncAccepted:
    """The master continues our history. Records resume at ``offset + 1``.

    ``previous_replid`` is set when the master carries on under a new id (it was
    promoted, so our history is its previous one). Adopt ``replid`` from now on, and
    remember ``previous_replid`` as our replid2 up to ``offset + 1`` (PSYNC2).
    """

    replid: str
    offset: int
    previous_replid: str | None


@dataclass(frozen=True, slots=True)
class TruncateRequested:
    """Our history forked from the master's after ``fork_offset``: the records we hold
    beyond it were never part of the master's history (``replid`` is its current id).

    Remove them (keyspace and log), then open a new session from ``fork_offset``: the
    master continues it by partial sync. The session ends right after this event (a
    :class:`HistoryDiverged`). A replica that cannot truncate (no data directory)
    reconnects with no history instead, for a full sync."""

    replid: str
    fork_offset: int
    held_offset: int  # the last record we hold: held_offset - fork_offset diverged


@dataclass(frozen=True, slots=True)
class HistoryDiverged(LocallyClosed):
    """The session ended because the master asked us to truncate (see
    :class:`TruncateRequested`); not a failure."""


class RecordsReceived:
    """Records ``first_offset .. first_offset + count - 1``: apply them in order.

    Made from a :class:`RecordsTrailer`, the records are still in the frame: a replica
    applies them in one pass (:func:`synap.store.effects.apply_concatenated` on
    ``frame.body`` from ``frame.pos``); :attr:`records` splits them (on first use).
    """

    __slots__ = ("first_offset", "master_ts_ms", "count", "frame", "_records")

    def __init__(
        self,
        first_offset: int,
        records: Sequence[bytes] | None,
        master_ts_ms: int,
        frame: RecordsTrailer | None = None,
    ) -> None:
        self.first_offset = first_offset
        self.master_ts_ms = master_ts_ms
        self.frame = frame
        self._records = records
        self.count = frame.count if frame is not None else len(records or ())

    @property
    def records(self) -> Sequence[bytes]:
        """The records as separate bytes; raises :class:`ProtocolError` if the frame's
        trailer does not hold exactly ``count`` whole records."""
        records = self._records
        if records is None:
            assert self.frame is not None
            records = self._records = self.frame.split()
        return records

    @property
    def last_offset(self) -> int:
        return self.first_offset + self.count - 1

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecordsReceived):
            return NotImplemented
        return (self.first_offset, self.master_ts_ms, list(self.records)) == (
            other.first_offset,
            other.master_ts_ms,
            list(other.records),
        )

    def __repr__(self) -> str:
        return (
            f"RecordsReceived(first_offset={self.first_offset}, count={self.count}, "
            f"master_ts_ms={self.master_ts_ms})"
        )


@dataclass(frozen=True, slots=True)
class HeartbeatReceived:
    master_offset: int
    master_ts_ms: int


ReplicaEvent = (
    ChallengeReceived
    | MasterAuthenticated
    | FullSyncStarted
    | SnapshotChunkReceived
    | FullSyncCompleted
    | PartialSyncAccepted
    | TruncateRequested
    | RecordsReceived
    | HeartbeatReceived
    | SessionEnded
)

# Messages the master may send in each state. ERROR is accepted in any state.
_EXPECTED: dict[ReplicaState, tuple[type, ...]] = {
    ReplicaState.CONNECTING: (),
    ReplicaState.AWAIT_REPLY: (AuthChallenge, FullSync, Continue, Truncate),
    ReplicaState.AWAIT_AUTH_OK: (AuthOk,),
    ReplicaState.AWAIT_SYNC: (FullSync, Continue, Truncate),
    ReplicaState.FULL_SYNC: (SnapshotChunk, SnapshotEnd, Heartbeat),
    ReplicaState.STREAMING: (RecordsTrailer, Records, Heartbeat),
    ReplicaState.CLOSED: (),
}


class ReplicaSession(SessionBase):
    """The replica's side of one connection to the master.

    ``replid``/``offset`` describe the history the replica holds: ``None`` or ``"?"``
    (with offset 0) when it has none, which forces a full sync. Create a new session for
    every connection, from the ``replid``/``offset`` of the previous one.
    """

    _peer = "master"
    _split_records = False  # records are split as they are applied (RecordsReceived)

    def __init__(
        self,
        replica_id: str,
        listen_address: str | None,
        replid: str | None,
        offset: int,
        secret: bytes | None,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        handshake_timeout_ms: int = DEFAULT_HANDSHAKE_TIMEOUT_MS,
        master_timeout_ms: int = DEFAULT_LINK_TIMEOUT_MS,
    ) -> None:
        # Until the master has answered the handshake, only small frames are allowed.
        super().__init__(HANDSHAKE_MAX_FRAME_BYTES, 0)
        # The master rejects a HELLO whose id or address it would not print: fail here,
        # with the same rule and message, rather than on every connection.
        check_peer_id(replica_id, "replica_id")
        if listen_address is not None:
            check_host_port(listen_address, "listen_address")
        if replid is None or replid == NO_REPLID:
            replid, offset = NO_REPLID, 0
        elif not is_valid_replid(replid):
            raise ValueError(f"invalid replication id {replid!r}: expected 40 hex characters")
        if offset < 0:
            raise ValueError("offset must be non-negative")
        self._secret = check_secret(secret)
        self.replica_id = replica_id
        self.listen_address = listen_address
        self.resp_port: int | None = None  # announced in HELLO when set before initiate()
        self.state = ReplicaState.CONNECTING
        self.max_frame_bytes = max_frame_bytes
        self.handshake_timeout_ms = handshake_timeout_ms
        self.master_timeout_ms = master_timeout_ms
        # The history we hold. This changes only when a sync completes.
        self.replid: str = replid
        self.offset: int = offset
        self.master_offset = offset  # the newest master offset we have heard of
        # Automatic failover: the newest election epoch this replica knows; a master that
        # announces an older one (or none) is refused. 0 = no check (manual mode).
        self.min_epoch = 0
        self.master_epoch = 0  # the epoch the master announced
        self._started_ms = 0
        self._hello_body = b""
        self._nonce = b""
        self._master_nonce = b""
        # Lag bookkeeping, in master timestamps only (no clock synchronisation needed):
        # _applied_ts is when the master sent what we hold, _newest_ts the newest
        # timestamp heard.
        self._applied_ts = 0
        self._newest_ts = 0
        # Full sync in progress.
        self._sync: FullSync | None = None
        self._chunks_received = 0
        self._keys_received = 0
        self._snapshot_crc = 0

    # -- handshake ---------------------------------------------------------------------------

    def initiate(self, now_ms: int) -> bytes:
        """The HELLO frame that opens the connection."""
        self._require_open("send HELLO")
        if self.state is not ReplicaState.CONNECTING:
            raise LocalProtocolError("HELLO was already sent on this session")
        frame = Hello(
            PROTOCOL_VERSION,
            self.replica_id,
            self.listen_address,
            self.replid,
            self.offset,
            self.resp_port,
            self.min_epoch,
        ).encode()
        self._hello_body = frame[4:]
        self._started_ms = now_ms
        self._last_received_ms = now_ms
        self.state = ReplicaState.AWAIT_REPLY
        return self._with_outbox(frame)

    # -- receiving -------------------------------------------------------------------------

    def receive_data(self, data: bytes, now_ms: int) -> list[ReplicaEvent]:
        """Handle bytes from the master, and return what happened (in order).

        Apply the data events as they come. If the list ends with a
        :class:`SessionEnded`, write ``data_to_send()`` and close the connection.
        """
        events: list[Any] = []
        if (
            self.state is ReplicaState.STREAMING
            and self._ended is None
            and not self._decoder.buffered_bytes
        ):
            # The common case, one read = one whole RECORDS frame: its header is read
            # directly (decode_records_frame), not through the frame decoder and msgpack.
            trailer = decode_records_frame(data, self._decoder.max_frame_bytes)
            if trailer is not None:
                self._last_received_ms = now_ms
                self._on_records(trailer, trailer.count, events)
                return events
        if self.state is ReplicaState.CONNECTING and data:
            # The master speaks only after HELLO. Anything earlier is not our protocol.
            self._last_received_ms = now_ms
            events.append(self._violation("master sent data before HELLO"))
            return events
        self._receive(data, now_ms, events)
        return events

    def _handle(self, message: Message, body: bytes, events: list[Any]) -> None:
        state = self.state
        if not isinstance(message, _EXPECTED[state]):
            names = " or ".join(t.__name__.upper() for t in _EXPECTED[state]) or "nothing"
            events.append(self._unexpected(message, state.name, names + " or ERROR"))
        elif isinstance(message, RecordsTrailer):
            self._on_records(message, message.count, events)
        elif isinstance(message, Records):
            self._on_records(message, len(message.records), events)
        elif isinstance(message, SnapshotChunk):
            self._on_chunk(message, events)
        elif isinstance(message, Heartbeat):
            self._on_heartbeat(message, events)
        elif isinstance(message, AuthChallenge):
            self._on_challenge(message, events)
        elif isinstance(message, AuthOk):
            self._on_auth_ok(message, events)
        elif isinstance(message, FullSync | Continue | Truncate):
            if state is ReplicaState.AWAIT_REPLY and self._secret is not None:
                events.append(
                    self._end(
                        AuthenticationFailed(
                            ErrorCode.AUTH_REQUIRED,
                            "this replica has replication.auth_secret set but the master did "
                            "not ask for authentication: set the same secret on the master "
                            "(or remove it here)",
                        )
                    )
                )
            elif isinstance(message, FullSync):
                self._on_fullsync(message, events)
            elif isinstance(message, Truncate):
                self._on_truncate(message, events)
            else:
                self._on_continue(message, events)
        elif isinstance(message, SnapshotEnd):
            self._on_snapshot_end(message, events)

    def _on_challenge(self, challenge: AuthChallenge, events: list[Any]) -> None:
        if self._secret is None:
            events.append(
                self._end(
                    AuthenticationFailed(
                        ErrorCode.AUTH_REQUIRED,
                        "the master requires authentication but this replica has no "
                        "replication.auth_secret: set the same secret on both nodes",
                    )
                )
            )
            return
        self._master_nonce = challenge.nonce
        self._nonce = new_nonce()
        mac = replica_proof(self._secret, challenge.nonce, self._nonce, self._hello_body)
        self._outbox += AuthResponse(self._nonce, mac).encode()
        self.state = ReplicaState.AWAIT_AUTH_OK
        events.append(ChallengeReceived())

    def _on_auth_ok(self, ok: AuthOk, events: list[Any]) -> None:
        assert self._secret is not None
        expected = master_proof(self._secret, self._master_nonce, self._nonce, self._hello_body)
        if not proofs_match(expected, ok.proof):
            events.append(
                self._end(
                    AuthenticationFailed(
                        ErrorCode.AUTH_FAILED,
                        "the master could not prove it knows the replication secret: its "
                        "replication.auth_secret differs from this replica's (or it is not "
                        "the master you meant)",
                    )
                )
            )
            return
        self.state = ReplicaState.AWAIT_SYNC
        events.append(MasterAuthenticated())

    def _start_stream(self) -> None:
        # Past the handshake, frames may be as large as the biggest record.
        self._decoder.max_frame_bytes = self.max_frame_bytes

    def _stale_master(self, epoch: int, events: list[Any]) -> bool:
        """True (and the session ends) if a master of an older election epoch speaks."""
        self.master_epoch = max(self.master_epoch, epoch)
        if epoch >= self.min_epoch:
            return False
        events.append(
            self._violation(
                f"master announces election epoch {epoch}, older than epoch {self.min_epoch} "
                "this replica knows: it is no longer the elected master"
            )
        )
        return True

    def _on_fullsync(self, sync: FullSync, events: list[Any]) -> None:
        if self._stale_master(sync.epoch, events):
            return
        self._start_stream()
        self.state = ReplicaState.FULL_SYNC
        self._sync = sync
        self._chunks_received = 0
        self._keys_received = 0
        self._snapshot_crc = 0
        self.master_offset = sync.offset
        self._newest_ts = max(self._newest_ts, sync.master_ts_ms)
        events.append(FullSyncStarted(sync.replid, sync.offset, sync.keys))

    def _on_chunk(self, chunk: SnapshotChunk, events: list[Any]) -> None:
        assert self._sync is not None
        if chunk.seq != self._chunks_received:
            events.append(
                self._violation(
                    f"snapshot chunk {chunk.seq} arrived, expected chunk {self._chunks_received}",
                    ErrorCode.SYNC_FAILED,
                )
            )
            return
        crc = zlib.crc32(chunk.payload)
        if crc != chunk.crc32:
            events.append(
                self._violation(
                    f"snapshot chunk {chunk.seq} failed CRC32 check (header 0x{chunk.crc32:08x}, "
                    f"payload 0x{crc:08x}): the transfer is corrupt; reconnect for a new full sync",
                    ErrorCode.SYNC_FAILED,
                )
            )
            return
        try:
            entries = decode_snapshot_entries(chunk.payload)
        except ProtocolError as exc:
            events.append(
                self._violation(f"snapshot chunk {chunk.seq}: {exc}", ErrorCode.SYNC_FAILED)
            )
            return
        if not entries or self._keys_received + len(entries) > self._sync.keys:
            events.append(
                self._violation(
                    f"snapshot chunk {chunk.seq} brings the key count to "
                    f"{self._keys_received + len(entries)}, but FULLSYNC announced "
                    f"{self._sync.keys} (and chunks are never empty)",
                    ErrorCode.SYNC_FAILED,
                )
            )
            return
        self._chunks_received += 1
        self._keys_received += len(entries)
        self._snapshot_crc = zlib.crc32(chunk.payload, self._snapshot_crc)
        events.append(SnapshotChunkReceived(chunk.seq, entries))

    def _on_snapshot_end(self, end: SnapshotEnd, events: list[Any]) -> None:
        sync = self._sync
        assert sync is not None
        problem = None
        if end.chunks != self._chunks_received:
            problem = f"master says it sent {end.chunks} chunks, {self._chunks_received} arrived"
        elif end.keys != self._keys_received or end.keys != sync.keys:
            problem = (
                f"key counts disagree: FULLSYNC announced {sync.keys}, SNAPSHOT_END says "
                f"{end.keys}, {self._keys_received} arrived"
            )
        elif end.crc32 != self._snapshot_crc:
            problem = (
                f"total CRC32 mismatch (master 0x{end.crc32:08x}, received "
                f"0x{self._snapshot_crc:08x})"
            )
        if problem:
            events.append(
                self._violation(
                    f"snapshot incomplete or corrupt: {problem}; reconnect for a new full sync",
                    ErrorCode.SYNC_FAILED,
                )
            )
            return
        self.state = ReplicaState.STREAMING
        self.replid = sync.replid
        self.offset = sync.offset
        self._applied_ts = sync.master_ts_ms
        self._sync = None
        events.append(FullSyncCompleted(sync.replid, sync.offset, sync.keys))

    def _on_continue(self, cont: Continue, events: list[Any]) -> None:
        if self._stale_master(cont.epoch, events):
            return
        if self.replid == NO_REPLID:
            events.append(
                self._violation("master offered a partial sync to a replica with no history")
            )
            return
        if cont.offset != self.offset:
            events.append(
                self._violation(
                    f"master resumes at offset {cont.offset} but this replica is at {self.offset}"
                )
            )
            return
        previous = None
        if cont.replid != self.replid:
            previous = self.replid  # PSYNC2: the master was promoted; its old id is ours
            self.replid = cont.replid
        self._start_stream()
        self.state = ReplicaState.STREAMING
        self.master_offset = max(self.master_offset, self.offset)
        self._applied_ts = cont.master_ts_ms
        self._newest_ts = max(self._newest_ts, cont.master_ts_ms)
        events.append(PartialSyncAccepted(cont.replid, cont.offset, previous))

    def _on_truncate(self, truncate: Truncate, events: list[Any]) -> None:
        if self._stale_master(truncate.epoch, events):
            return
        if self.replid == NO_REPLID or not truncate.offset < self.offset:
            events.append(
                self._violation(
                    f"master asked to truncate to offset {truncate.offset}, but this replica "
                    f"holds records up to {self.offset} of history {self.replid}: nothing "
                    "to truncate"
                )
            )
            return
        events.append(TruncateRequested(truncate.replid, truncate.offset, self.offset))
        events.append(
            self._end(
                HistoryDiverged(
                    ErrorCode.DIVERGED,
                    f"history diverged from the master's after offset {truncate.offset}: "
                    f"{self.offset - truncate.offset} record(s) to truncate",
                ),
                tell_peer=False,
            )
        )

    def _on_records(self, records: Records | RecordsTrailer, count: int, events: list[Any]) -> None:
        # Offsets are contiguous: each batch must start right after the last record we
        # hold. A gap would silently lose writes, and an overlap would apply them twice.
        expected = self.offset + 1
        if records.first_offset != expected:
            last = records.first_offset + count - 1
            if records.first_offset < expected:
                detail = f"this replica already holds up to {self.offset}"
            else:
                detail = f"records {expected}..{records.first_offset - 1} are missing"
            events.append(
                self._violation(
                    f"records out of order: master sent offsets {records.first_offset}..{last}, "
                    f"expected {expected} next ({detail})"
                )
            )
            return
        self.offset += count
        if self.offset > self.master_offset:
            self.master_offset = self.offset
        self._applied_ts = records.master_ts_ms
        if records.master_ts_ms > self._newest_ts:
            self._newest_ts = records.master_ts_ms
        if isinstance(records, RecordsTrailer):
            event = RecordsReceived(records.first_offset, None, records.master_ts_ms, records)
        else:
            event = RecordsReceived(records.first_offset, records.records, records.master_ts_ms)
        events.append(event)

    def _on_heartbeat(self, beat: Heartbeat, events: list[Any]) -> None:
        if self._stale_master(beat.epoch, events):
            return
        held = self.offset if self.state is ReplicaState.STREAMING else self.master_offset
        if beat.master_offset < held:
            events.append(
                self._violation(
                    f"master reports offset {beat.master_offset} but has already sent "
                    f"records up to {held}"
                )
            )
            return
        if beat.master_offset < self.master_offset:
            events.append(
                self._violation(
                    f"master offset went backwards from {self.master_offset} to {beat.master_offset}"
                )
            )
            return
        self.master_offset = beat.master_offset
        self._newest_ts = max(self._newest_ts, beat.master_ts_ms)
        if self.state is ReplicaState.STREAMING and beat.master_offset == self.offset:
            # Fully caught up as of this heartbeat.
            self._applied_ts = max(self._applied_ts, beat.master_ts_ms)
        events.append(HeartbeatReceived(beat.master_offset, beat.master_ts_ms))

    def check_timeouts(self, now_ms: int) -> list[ReplicaEvent]:
        """Call periodically. Returns ``[TimedOut]`` (and closes) if the master went silent.

        The handshake must finish within ``handshake_timeout_ms`` of :meth:`initiate`.
        Afterwards the master must send something (records, snapshot chunks,
        heartbeats every second) at least every ``master_timeout_ms``.
        """
        state = self.state
        if state in (ReplicaState.AWAIT_REPLY, ReplicaState.AWAIT_AUTH_OK, ReplicaState.AWAIT_SYNC):
            if now_ms - self._started_ms >= self.handshake_timeout_ms:
                return [
                    self._end(
                        TimedOut(
                            ErrorCode.TIMEOUT,
                            f"master did not complete the handshake within "
                            f"{self.handshake_timeout_ms} ms",
                        )
                    )
                ]
        elif state in (ReplicaState.FULL_SYNC, ReplicaState.STREAMING):
            silent = now_ms - self._last_received_ms
            if silent >= self.master_timeout_ms:
                return [
                    self._end(
                        TimedOut(
                            ErrorCode.TIMEOUT,
                            f"no data or heartbeat from the master for {silent} ms (timeout "
                            f"{self.master_timeout_ms} ms): the master is down or the network "
                            "is partitioned",
                        )
                    )
                ]
        return []

    def _on_closed(self) -> None:
        self.state = ReplicaState.CLOSED
        self._sync = None

    # -- sending ---------------------------------------------------------------------------

    def ack(self, fsynced_offset: int | None = None) -> bytes:
        """An ACK for everything received so far (and, if given, the offset this
        replica's WAL has fsynced, for WAITAOF).

        Send it after applying a batch and on every heartbeat (at least once a second).
        """
        self._require_open("send ACK")
        if self.state is not ReplicaState.STREAMING:
            raise LocalProtocolError(f"cannot send ACK in state {self.state.name} (only STREAMING)")
        fsynced = None if fsynced_offset is None else min(fsynced_offset, self.offset)
        return self._with_outbox(Ack(self.offset, self._applied_ts, fsynced).encode())

    # -- progress and lag --------------------------------------------------------------------

    @property
    def snapshot_progress(self) -> tuple[int, int] | None:
        """``(keys received, keys announced)`` during a full sync, else None."""
        if self._sync is None:
            return None
        return self._keys_received, self._sync.keys

    @property
    def lag_operations(self) -> int:
        """Records the master has and we do not (as far as we have heard)."""
        return max(0, self.master_offset - self.offset)

    @property
    def lag_ms(self) -> int:
        """How far behind the master our data is, in master time: 0 when caught up, else
        the newest master timestamp heard minus the timestamp of what we hold."""
        if self.master_offset <= self.offset:
            return 0
        return max(0, self._newest_ts - self._applied_ts)
