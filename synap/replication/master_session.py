"""One replica connection, as the master sees it: a sans-IO state machine.

::

    AWAIT_HELLO --HELLO--> AWAIT_AUTH --AUTH_RESPONSE ok--> READY     (secret configured)
    AWAIT_HELLO --HELLO------------------------------------> READY     (no secret)
    READY --send_fullsync()--> SYNCING_FULL --snapshot_end()--> STREAMING
    READY --send_continue()-----------------------------------> STREAMING
    READY --send_truncate()-----------------------------------> CLOSED    (history forked)
    any state --violation / auth failure / timeout / ERROR / close()--> CLOSED

The wrapper feeds received bytes to :meth:`MasterSession.receive_data` and acts on the
events. ``SyncRequested`` means "decide now": call
:func:`~.handshake.decide_sync`, then :meth:`~MasterSession.send_fullsync` or
:meth:`~MasterSession.send_continue`. Sends that are illegal in the current state raise
:class:`~.framing.LocalProtocolError`. A replica that sends something illegal gets an
ERROR, and the session closes: nothing half-works.
"""

from __future__ import annotations

import enum
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from synap.replication.framing import HANDSHAKE_MAX_FRAME_BYTES, LocalProtocolError
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
    SnapshotChunk,
    SnapshotEnd,
    Truncate,
    encode_records,
    encode_snapshot_payload,
    is_valid_replid,
)

# Target size of one SNAPSHOT_CHUNK payload. This is the socket read size asyncio
# uses, and the research prototype synced 1M keys in 0.5 s with batches of this order
# (1000 keys x ~116 B). Each chunk also gets its own CRC32 and a scheduling point.
SNAPSHOT_CHUNK_BYTES = 64 * 1024

# Per-entry overhead used to estimate a chunk's encoded size: msgpack headers of the
# triple, the two bins and the integer.
_ENTRY_OVERHEAD = 16


class MasterState(enum.Enum):
    AWAIT_HELLO = "await_hello"
    AWAIT_AUTH = "await_auth"
    READY = "ready"  # identified (and authenticated): waiting for the wrapper's decision
    SYNCING_FULL = "syncing_full"
    STREAMING = "streaming"
    CLOSED = "closed"


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HelloReceived:
    """The replica introduced itself. ``offset`` is its last applied record (0 = none)."""

    replica_id: str
    listen_address: str | None
    replid: str
    offset: int


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The replica proved it knows the secret (only when a secret is configured)."""


@dataclass(frozen=True, slots=True)
class SyncRequested:
    """Decide full or partial sync now, with ``decide_sync(replid, next_offset, ...)``.

    Emitted right after ``HelloReceived`` when no secret is configured, or after
    ``Authenticated`` when one is.
    """

    replid: str
    next_offset: int  # the replica's last applied offset + 1


@dataclass(frozen=True, slots=True)
class AckReceived:
    """The replica has applied every record up to ``offset``."""

    offset: int
    master_ts_ms: int  # our own timestamp, echoed from the frame that carried `offset`


MasterEvent = HelloReceived | Authenticated | SyncRequested | AckReceived | SessionEnded


@dataclass(frozen=True, slots=True)
class RecordsFrame:
    """One encoded RECORDS frame. Build it once per batch and send it to every replica."""

    data: bytes
    first_offset: int
    count: int

    @property
    def last_offset(self) -> int:
        return self.first_offset + self.count - 1


def batch_entries(
    entries: Iterable[Sequence[Any]], target_bytes: int = SNAPSHOT_CHUNK_BYTES
) -> Iterator[list[Sequence[Any]]]:
    """Group ``(key, value, expire_at_ms)`` entries into chunks of about ``target_bytes``.

    Every chunk holds at least one entry, so a single huge value becomes one chunk.
    """
    batch: list[Sequence[Any]] = []
    size = 0
    for entry in entries:
        batch.append(entry)
        size += len(entry[0]) + len(entry[1]) + _ENTRY_OVERHEAD
        if size >= target_bytes:
            yield batch
            batch = []
            size = 0
    if batch:
        yield batch


# Messages a replica may send in each state. ERROR is accepted in any state (it ends the
# session).
_EXPECTED: dict[MasterState, tuple[type, ...]] = {
    MasterState.AWAIT_HELLO: (Hello,),
    MasterState.AWAIT_AUTH: (AuthResponse,),
    # Between the handshake and the end of a full sync the replica only listens. Its
    # first ACK comes after it has loaded the snapshot, or after CONTINUE.
    MasterState.READY: (),
    MasterState.SYNCING_FULL: (),
    MasterState.STREAMING: (Ack,),
    MasterState.CLOSED: (),
}


class MasterSession(SessionBase):
    """The master's side of one replica connection.

    ``secret`` is the shared replication secret (``None`` = no authentication).
    ``now_ms`` is the time the connection was accepted. The handshake timeout runs
    from then.
    """

    _peer = "replica"

    def __init__(
        self,
        secret: bytes | None,
        now_ms: int,
        *,
        handshake_timeout_ms: int = DEFAULT_HANDSHAKE_TIMEOUT_MS,
        replica_timeout_ms: int = DEFAULT_LINK_TIMEOUT_MS,
        max_frame_bytes: int = HANDSHAKE_MAX_FRAME_BYTES,
    ) -> None:
        # A replica only ever sends small messages (HELLO, AUTH_RESPONSE, ACK, ERROR),
        # so the small handshake frame limit applies for the whole connection.
        super().__init__(max_frame_bytes, now_ms)
        self._secret = check_secret(secret)
        self.state = MasterState.AWAIT_HELLO
        self.handshake_timeout_ms = handshake_timeout_ms
        self.replica_timeout_ms = replica_timeout_ms
        self._started_ms = now_ms
        self.hello: Hello | None = None
        self._hello_body = b""
        self._nonce = b""
        # Stream bookkeeping, meaningful from send_fullsync / send_continue on.
        self.next_offset = 0  # the next record this replica must be sent
        self.acked_offset = 0  # the replica confirmed it applied up to here
        self.fsynced_offset = 0  # ... and that its WAL fsynced up to here (WAITAOF)
        self.last_ack_ms: int | None = None  # our now_ms when the last ACK arrived
        self._acked_ts_ms = 0  # master timestamp echoed with the last ACK
        self._streaming_since_ms = now_ms
        # Snapshot in progress.
        self._snapshot_keys = 0
        self._snapshot_keys_sent = 0
        self._snapshot_seq = 0
        self._snapshot_crc = 0

    # -- identity --------------------------------------------------------------------------

    @property
    def replica_id(self) -> str | None:
        return self.hello.replica_id if self.hello else None

    @property
    def listen_address(self) -> str | None:
        return self.hello.listen_address if self.hello else None

    # -- receiving -------------------------------------------------------------------------

    def receive_data(self, data: bytes, now_ms: int) -> list[MasterEvent]:
        """Handle bytes from the replica, and return what happened.

        If the list ends with a :class:`SessionEnded`, write ``data_to_send()`` and close.
        If the wrapper closes the session while handling an earlier event (``close``),
        it should ignore the rest of the list.
        """
        events: list[Any] = []
        self._receive(data, now_ms, events)
        return events

    def _handle(self, message: Message, body: bytes, events: list[Any]) -> None:
        expected = _EXPECTED[self.state]
        if not isinstance(message, expected):
            names = " or ".join(t.__name__.upper() for t in expected) or "nothing"
            events.append(self._unexpected(message, self.state.name, names + " or ERROR"))
        elif isinstance(message, Hello):
            self._on_hello(message, body, events)
        elif isinstance(message, AuthResponse):
            self._on_auth_response(message, events)
        elif isinstance(message, Ack):
            self._on_ack(message, events)

    def _on_hello(self, hello: Hello, body: bytes, events: list[Any]) -> None:
        self.hello = hello
        self._hello_body = body
        events.append(
            HelloReceived(hello.replica_id, hello.listen_address, hello.replid, hello.offset)
        )
        if self._secret is None:
            self.state = MasterState.READY
            events.append(SyncRequested(hello.replid, hello.offset + 1))
            return
        # Authentication first. The challenge goes out through the outbox. If the
        # wrapper rejects the replica on HelloReceived instead, close() discards it.
        self._nonce = new_nonce()
        self._outbox += AuthChallenge(self._nonce).encode()
        self.state = MasterState.AWAIT_AUTH

    def _on_auth_response(self, response: AuthResponse, events: list[Any]) -> None:
        assert self._secret is not None
        expected = replica_proof(self._secret, self._nonce, response.nonce, self._hello_body)
        if not proofs_match(expected, response.mac):
            events.append(
                self._end(
                    AuthenticationFailed(
                        ErrorCode.AUTH_FAILED,
                        f"replica {self.replica_id!r} failed authentication: its replication "
                        "secret differs from the master's; set the same "
                        "replication.auth_secret on both nodes",
                    )
                )
            )
            return
        proof = master_proof(self._secret, self._nonce, response.nonce, self._hello_body)
        self._outbox += AuthOk(proof).encode()
        self.state = MasterState.READY
        assert self.hello is not None
        events.append(Authenticated())
        events.append(SyncRequested(self.hello.replid, self.hello.offset + 1))

    def _on_ack(self, ack: Ack, events: list[Any]) -> None:
        # ACKs only move forward, and never past what we sent. Anything else means the
        # replica's notion of its position is wrong, so its data cannot be trusted.
        if ack.offset < self.acked_offset:
            events.append(
                self._violation(
                    f"replica {self.replica_id!r} acknowledged offset {ack.offset} after "
                    f"already acknowledging {self.acked_offset}"
                )
            )
        elif ack.offset >= self.next_offset:
            events.append(
                self._violation(
                    f"replica {self.replica_id!r} acknowledged offset {ack.offset} but was "
                    f"only sent records up to {self.next_offset - 1}"
                )
            )
        else:
            self.acked_offset = ack.offset
            self._acked_ts_ms = ack.master_ts_ms
            self.last_ack_ms = self._last_received_ms
            if ack.fsynced_offset is not None:
                self.fsynced_offset = max(self.fsynced_offset, min(ack.fsynced_offset, ack.offset))
            events.append(AckReceived(ack.offset, ack.master_ts_ms))

    def check_timeouts(self, now_ms: int) -> list[MasterEvent]:
        """Call periodically. Returns ``[TimedOut]`` (and closes) if the replica went silent.

        * The handshake (HELLO and authentication) must finish within
          ``handshake_timeout_ms`` of the connection.
        * While streaming, the replica must send something (ACKs, normally every
          second) at least every ``replica_timeout_ms``.
        * During a full sync the replica is loading and sends nothing. A dead replica
          shows up as our writes not draining, which the wrapper detects.
        """
        state = self.state
        if state in (MasterState.AWAIT_HELLO, MasterState.AWAIT_AUTH):
            if now_ms - self._started_ms >= self.handshake_timeout_ms:
                return [
                    self._end(
                        TimedOut(
                            ErrorCode.TIMEOUT,
                            f"replica did not complete the handshake within "
                            f"{self.handshake_timeout_ms} ms",
                        )
                    )
                ]
        elif state is MasterState.STREAMING:
            silent_since = max(self._last_received_ms, self._streaming_since_ms)
            if now_ms - silent_since >= self.replica_timeout_ms:
                return [
                    self._end(
                        TimedOut(
                            ErrorCode.TIMEOUT,
                            f"no ACK from replica {self.replica_id!r} for {now_ms - silent_since} ms "
                            f"(replica timeout {self.replica_timeout_ms} ms): it is stalled or "
                            "the network is partitioned",
                        )
                    )
                ]
        return []

    def _on_closed(self) -> None:
        self.state = MasterState.CLOSED

    def close(self, code: int, message: str) -> bytes:
        """Reject or disconnect the replica, e.g. ``close(ErrorCode.NOT_MASTER, ...)``.

        Anything queued but not yet taken with ``data_to_send()`` (such as an auth
        challenge) is discarded, so the replica sees only the ERROR.
        """
        if self._ended is None:
            self._outbox.clear()
        return super().close(code, message)

    # -- sending ---------------------------------------------------------------------------

    def _require(self, action: str, *states: MasterState) -> None:
        self._require_open(action)
        if self.state not in states:
            raise LocalProtocolError(
                f"cannot {action} in state {self.state.name} "
                f"(only in {', '.join(s.name for s in states)})"
            )

    def send_fullsync(
        self, replid: str, offset: int, keys: int, now_ms: int, epoch: int = 0
    ) -> bytes:
        """Start a full sync: a snapshot of exactly ``keys`` keys, taken at ``offset``.

        Then send the keys with :meth:`snapshot_chunk` and finish with
        :meth:`snapshot_end`. Records after ``offset`` are sent after that, starting at
        ``offset + 1`` (keep them in the backlog meanwhile).
        """
        self._require("send FULLSYNC", MasterState.READY)
        if not is_valid_replid(replid) or offset < 0 or keys < 0:
            raise ValueError("FULLSYNC needs a valid replication id and non-negative counts")
        self.state = MasterState.SYNCING_FULL
        self.next_offset = offset + 1
        self.acked_offset = offset
        self._acked_ts_ms = now_ms
        self._snapshot_keys = keys
        self._snapshot_keys_sent = 0
        self._snapshot_seq = 0
        self._snapshot_crc = 0
        return self._with_outbox(FullSync(replid, offset, keys, now_ms, epoch).encode())

    def snapshot_chunk(self, entries: Sequence[Sequence[Any]]) -> bytes:
        """The next SNAPSHOT_CHUNK frame for ``entries`` = ``[(key, value, expire_at_ms), ...]``.

        Sequence numbers and CRCs are tracked here. Use :func:`batch_entries` to cut the
        snapshot into chunks of a sensible size.
        """
        return self.snapshot_chunk_encoded(encode_snapshot_payload(entries), len(entries))

    def snapshot_chunk_encoded(self, payload: bytes, count: int) -> bytes:
        """The next SNAPSHOT_CHUNK frame for a ``payload`` already encoded (as
        :func:`encode_snapshot_payload` encodes them) from ``count`` entries: what
        :meth:`snapshot_chunk` does after encoding (the forked child's
        :class:`~synap.replication.snapcodec.ChunkEncoder` encodes its chunks itself)."""
        self._require("send a snapshot chunk", MasterState.SYNCING_FULL)
        if count < 1:
            raise ValueError("a snapshot chunk holds at least one entry")
        if self._snapshot_keys_sent + count > self._snapshot_keys:
            raise LocalProtocolError(
                f"snapshot announced {self._snapshot_keys} keys, but chunks now hold "
                f"{self._snapshot_keys_sent + count}"
            )
        crc = zlib.crc32(payload)
        self._snapshot_crc = zlib.crc32(payload, self._snapshot_crc)
        frame = SnapshotChunk(self._snapshot_seq, crc, payload).encode()
        self._snapshot_seq += 1
        self._snapshot_keys_sent += count
        return self._with_outbox(frame)

    def snapshot_end(self, now_ms: int) -> bytes:
        """Finish the full sync. The session is then STREAMING, from ``offset + 1``."""
        self._require("end the snapshot", MasterState.SYNCING_FULL)
        if self._snapshot_keys_sent != self._snapshot_keys:
            raise LocalProtocolError(
                f"snapshot announced {self._snapshot_keys} keys but only "
                f"{self._snapshot_keys_sent} were sent"
            )
        frame = SnapshotEnd(self._snapshot_seq, self._snapshot_keys_sent, self._snapshot_crc)
        self.state = MasterState.STREAMING
        self._streaming_since_ms = now_ms
        return self._with_outbox(frame.encode())

    def send_continue(self, replid: str, now_ms: int, epoch: int = 0) -> bytes:
        """Accept a partial sync. ``replid`` is our *current* id.

        The replica resumes after the offset it sent in HELLO. Next, send it
        ``backlog.records_from(session.next_offset)``.
        """
        self._require("send CONTINUE", MasterState.READY)
        if not is_valid_replid(replid):
            raise ValueError(f"invalid replication id {replid!r}")
        assert self.hello is not None
        offset = self.hello.offset
        self.state = MasterState.STREAMING
        self.next_offset = offset + 1
        self.acked_offset = offset
        self._acked_ts_ms = now_ms
        self._streaming_since_ms = now_ms
        return self._with_outbox(Continue(replid, offset, now_ms, epoch).encode())

    def send_truncate(self, replid: str, fork_offset: int, epoch: int = 0) -> bytes:
        """Tell the replica its history forked from ours after ``fork_offset``
        (``decide_sync`` said ``"truncate"``), and end the session: the replica truncates
        and reconnects for a partial sync. Write the bytes, then close the connection."""
        self._require("send TRUNCATE", MasterState.READY)
        if not is_valid_replid(replid):
            raise ValueError(f"invalid replication id {replid!r}")
        assert self.hello is not None
        if not 0 <= fork_offset < self.hello.offset:
            raise ValueError(
                f"fork offset {fork_offset} must be below the replica's offset {self.hello.offset}"
            )
        frame = self._with_outbox(Truncate(replid, fork_offset, epoch).encode())
        self._end(
            LocallyClosed(
                ErrorCode.DIVERGED,
                f"replica {self.replica_id!r} asked to truncate its history to offset "
                f"{fork_offset} and reconnect",
            ),
            tell_peer=False,
        )
        return frame

    @staticmethod
    def records_frame(
        first_offset: int, records: Sequence[bytes], master_ts_ms: int
    ) -> RecordsFrame:
        """Encode a batch once. ``frame.data`` can be sent to any replica it fits."""
        return RecordsFrame(
            encode_records(first_offset, records, master_ts_ms), first_offset, len(records)
        )

    def send_records(self, frame: RecordsFrame) -> bytes:
        """Bytes to send ``frame`` to this replica (``frame.data`` itself, uncopied, when
        nothing else is queued).

        The frame must start exactly at :attr:`next_offset`. A replica that is behind
        must first be caught up from the backlog.
        """
        self._require("send RECORDS", MasterState.STREAMING)
        if frame.first_offset != self.next_offset:
            raise LocalProtocolError(
                f"RECORDS frame starts at offset {frame.first_offset} but replica "
                f"{self.replica_id!r} needs offset {self.next_offset} next"
            )
        self.next_offset = frame.first_offset + frame.count
        return self._with_outbox(frame.data)

    def heartbeat(self, master_offset: int, now_ms: int, epoch: int = 0) -> bytes:
        """A HEARTBEAT frame: send one every heartbeat interval, streaming or full-syncing."""
        self._require("send HEARTBEAT", MasterState.SYNCING_FULL, MasterState.STREAMING)
        if master_offset < self.next_offset - 1:
            raise LocalProtocolError(
                f"heartbeat offset {master_offset} is behind records already sent "
                f"(up to {self.next_offset - 1})"
            )
        return self._with_outbox(Heartbeat(master_offset, now_ms, epoch).encode())

    @property
    def snapshot_counters(self) -> tuple[int, int, int]:
        """``(keys sent, next chunk sequence number, running CRC32)`` of the snapshot."""
        return self._snapshot_keys_sent, self._snapshot_seq, self._snapshot_crc

    def snapshot_sent_elsewhere(self, keys: int, seq: int | None = None, crc: int = 0) -> None:
        """The chunks were encoded and sent by another process holding a copy of this
        session (:mod:`~.fork_snapshot`): adopt its counters, so that :meth:`snapshot_end`
        checks and ends the same snapshot. ``seq=None``: progress only (keys sent so far)."""
        self._require("record snapshot progress", MasterState.SYNCING_FULL)
        if not 0 <= keys <= self._snapshot_keys:
            raise LocalProtocolError(
                f"snapshot announced {self._snapshot_keys} keys, but {keys} were reported sent"
            )
        self._snapshot_keys_sent = keys
        if seq is not None:
            self._snapshot_seq = seq
            self._snapshot_crc = crc

    @property
    def snapshot_progress(self) -> tuple[int, int] | None:
        """``(keys sent, keys announced)`` while a full sync is being sent, else None."""
        if self.state is not MasterState.SYNCING_FULL:
            return None
        return self._snapshot_keys_sent, self._snapshot_keys

    # -- lag --------------------------------------------------------------------------------

    def lag_operations(self, master_offset: int) -> int:
        """Records the replica has not yet acknowledged."""
        return max(0, master_offset - self.acked_offset)

    def lag_ms(self, master_offset: int, now_ms: int) -> int:
        """How stale the replica's data may be, measured on the master's clock only.

        0 when it has acknowledged everything. Otherwise, the time since we sent the frame
        that carried its last acknowledged record. The records it lacks were sent after
        that, so this is an upper bound.
        """
        if self.acked_offset >= master_offset:
            return 0
        return max(0, now_ms - self._acked_ts_ms)
