"""The handshake both sides share: replication ids, authentication proofs, the PSYNC2
full/partial decision, and the events that end a session.

The rules (``decide_sync``, the proofs) are pure functions, so each one is a five-line
unit test. ``SessionBase`` holds the receive loop, outbox and closing logic that the two
session classes (:mod:`.master_session`, :mod:`.replica_session`) share.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal, Protocol

from synap.replication.framing import FrameDecoder, LocalProtocolError, ProtocolError
from synap.replication.messages import (
    MAC_BYTES,
    NO_REPLID,
    NONCE_BYTES,
    Error,
    ErrorCode,
    Message,
    MessageType,
    UnsupportedVersion,
    decode_message,
)
from synap.store.history import new_replid

# --- timing ------------------------------------------------------------------------------
#
# Sessions never read a clock. The wrapper passes ``now_ms`` (monotonic milliseconds)
# and calls ``check_timeouts(now_ms)`` from a timer, about once per heartbeat interval.

# Spec: "Heartbeat interval (ms) heartbeat_interval_ms: 1000". The master sends HEARTBEAT
# this often. The replica should ACK at least as often (Redis: REPLCONF ACK every 1 s).
DEFAULT_HEARTBEAT_INTERVAL_MS = 1_000

# Spec: "replica_timeout_secs: 30", "Master detects missing heartbeat (timeout: 30s)",
# "Replicas detect disconnect (heartbeat timeout: 30s)". This is the silence allowed in
# either direction once data flows. Redis repl-timeout is 60 s; Kafka
# replica.lag.time.max.ms is 30 s.
DEFAULT_LINK_TIMEOUT_MS = 30_000

# HELLO to the end of authentication is four tiny messages, so 10 s is generous even
# across regions. The limit frees the slot held by a port scanner or a half-open
# connection long before the link timeout would. (Redis applies repl-timeout, 60 s, to
# its handshake; MySQL's connect_timeout is 10 s.)
DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000

# --- replication ids ---------------------------------------------------------------------


# --- the PSYNC2 decision -----------------------------------------------------------------


class HistoryBounds(Protocol):
    """What :func:`decide_sync` needs from a backlog (a ``ReplicationBacklog`` fits)."""

    @property
    def first_offset(self) -> int: ...

    @property
    def last_offset(self) -> int: ...


@dataclass(frozen=True, slots=True)
class SyncDecision:
    kind: Literal["partial", "full", "truncate"]
    reason: str  # for logs: says exactly which rule decided
    code: str = ""  # the rule, as a fixed word for metrics (REFUSAL_CODES for "full")
    # "truncate" only: the last offset both histories share (the fork point). The
    # replica drops its records after it, then continues by partial sync from here + 1.
    fork_offset: int = -1

    @property
    def partial(self) -> bool:
        return self.kind == "partial"

    @property
    def truncate(self) -> bool:
        return self.kind == "truncate"


# Why a partial sync was refused, as /metrics labels it ("no_history" is a full sync
# asked for, not a partial one refused).
REFUSAL_CODES = ("history_ended", "replid_mismatch", "offset_not_in_log", "offset_ahead")


def decide_sync(
    request_replid: str,
    request_next_offset: int,
    my_replid: str,
    my_replid2: str | None,
    second_offset: int,
    backlog: HistoryBounds,
) -> SyncDecision:
    """Can a replica continue from where it stopped (partial sync), or must it start over?

    Redis ``masterTryPartialResynchronization``. The replica names the history it
    follows (``request_replid``) and the next record it wants (``request_next_offset`` =
    its last applied offset + 1). A partial sync is possible when both hold:

    1. It follows *our* history: the id is our current ``my_replid``, or it is our
       previous id ``my_replid2`` and the replica has not gone past the point where that
       history stopped being ours (``request_next_offset <= second_offset``). The second
       case is a replica of the old master, after we were promoted. A replica that got
       writes the old master accepted *after* the failover has a history we never had.
    2. Our log (the WAL segments on disk, then the memory backlog) still holds
       everything after its offset:
       ``first_offset <= request_next_offset <= last_offset + 1``. The upper end means
       "nothing missing": it is up to date and simply waits for new writes.

    A replica that follows ``my_replid2`` *past* ``second_offset`` forked from us: it
    took writes the old master accepted after we took over (a partitioned or killed old
    master, or one of its replicas). Its records up to ``second_offset - 1`` are ours,
    the rest never will be. When our log still holds ``second_offset``, the answer is
    ``"truncate"`` with ``fork_offset = second_offset - 1``: the replica removes its
    records after the fork point and comes back for a partial sync (Kafka's
    OffsetForLeaderEpoch; Redis full-syncs here). When the log has lost the fork point,
    a full sync (``history_ended``).

    Anything else needs a full sync. ``"?"`` (no history) always does.
    """
    if request_replid == NO_REPLID:
        return SyncDecision(
            "full", "replica has no replication history (new or reset replica)", "no_history"
        )
    if request_replid == my_replid:
        pass
    elif my_replid2 and request_replid == my_replid2:
        if request_next_offset > second_offset:
            fork = second_offset - 1
            diverged = request_next_offset - 1 - fork
            if backlog.first_offset <= second_offset <= backlog.last_offset + 1:
                return SyncDecision(
                    "truncate",
                    f"replica follows our previous replication id {my_replid2} up to offset "
                    f"{request_next_offset - 1}, but that history ended at offset {fork} "
                    f"when we switched to {my_replid}: it must drop its {diverged} "
                    f"record(s) after offset {fork}, then resume from offset {fork + 1}",
                    "diverged",
                    fork,
                )
            return SyncDecision(
                "full",
                f"replica follows our previous replication id {my_replid2} up to offset "
                f"{request_next_offset - 1}, but that history ended at offset "
                f"{fork} when we switched to {my_replid}, and the fork point is no "
                f"longer in our log (log starts at {backlog.first_offset})",
                "history_ended",
            )
    else:
        previous = (
            f" (previously {my_replid2} up to offset {second_offset - 1})" if my_replid2 else ""
        )
        return SyncDecision(
            "full",
            f"replication id mismatch: replica follows {request_replid}, we are {my_replid}{previous}",
            "replid_mismatch",
        )
    first, last = backlog.first_offset, backlog.last_offset
    if request_next_offset < first:
        return SyncDecision(
            "full",
            f"offset {request_next_offset} no longer in the log (log starts at {first})",
            "offset_not_in_log",
        )
    if request_next_offset > last + 1:
        return SyncDecision(
            "full",
            f"replica asked for offset {request_next_offset} beyond our offset {last}",
            "offset_ahead",
        )
    if request_next_offset == last + 1:
        return SyncDecision("partial", f"replica is up to date at offset {last}", "up_to_date")
    return SyncDecision(
        "partial",
        f"replica resumes at offset {request_next_offset}; "
        f"{last - request_next_offset + 1} records to send",
        "resume",
    )


# --- authentication ----------------------------------------------------------------------
#
# A mutual challenge-response over a shared secret. The secret never crosses the wire;
# only HMAC-SHA256 values do.
#
#   replica -> HELLO
#   master  -> AUTH_CHALLENGE(master_nonce)
#   replica -> AUTH_RESPONSE(replica_nonce, mac = HMAC(secret, "replica" | mn | rn | H(hello)))
#   master  -> AUTH_OK(proof = HMAC(secret, "master" | mn | rn | H(hello)))
#
# Each side contributes a fresh nonce, so a recorded exchange cannot be replayed to
# either of them. The role labels keep one side's proof from being reflected back as
# the other's. H(hello) binds the proofs to the HELLO that was actually sent, so its
# replid and offset (which decide full or partial sync) cannot be swapped unnoticed.
# The replica checks the master's proof before it accepts anything. This matters
# because a full sync from an impostor would replace all of the replica's data.
# Nonces have a fixed length, so the concatenations are unambiguous.
#
# This authenticates the handshake only. The stream after it is neither encrypted nor
# MAC'd: turn on `tls.replication` (synap/tls.py) when that matters.

_REPLICA_LABEL = b"synap-replication-v1 replica proof\x00"
_MASTER_LABEL = b"synap-replication-v1 master proof\x00"


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def _proof(
    label: bytes, secret: bytes, master_nonce: bytes, replica_nonce: bytes, hello: bytes
) -> bytes:
    transcript = label + master_nonce + replica_nonce + hashlib.sha256(hello).digest()
    mac = hmac.new(secret, transcript, hashlib.sha256).digest()
    assert len(mac) == MAC_BYTES
    return mac


def replica_proof(
    secret: bytes, master_nonce: bytes, replica_nonce: bytes, hello_body: bytes
) -> bytes:
    """The MAC a replica sends in AUTH_RESPONSE."""
    return _proof(_REPLICA_LABEL, secret, master_nonce, replica_nonce, hello_body)


def master_proof(
    secret: bytes, master_nonce: bytes, replica_nonce: bytes, hello_body: bytes
) -> bytes:
    """The proof a master sends in AUTH_OK."""
    return _proof(_MASTER_LABEL, secret, master_nonce, replica_nonce, hello_body)


def check_secret(secret: bytes | None) -> bytes | None:
    """Validate a configured secret (None = authentication off)."""
    if secret is None:
        return None
    if not isinstance(secret, bytes):
        raise TypeError("the replication secret must be bytes (encode the configured string)")
    if not secret:
        raise ValueError(
            "replication.auth_secret is empty: set a non-empty secret, or leave it unset "
            "to disable replication authentication"
        )
    return secret


def proofs_match(expected: bytes, received: bytes) -> bool:
    """Constant-time comparison, so timing reveals nothing about the expected value."""
    return hmac.compare_digest(expected, received)


# --- events that end a session --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The session is CLOSED. Write out ``data_to_send()`` (it may hold an ERROR for the
    peer), then close the connection. ``code`` is an :class:`ErrorCode` value."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ProtocolViolation(SessionEnded):
    """The peer sent something malformed, or something illegal in the current state."""


@dataclass(frozen=True, slots=True)
class AuthenticationFailed(SessionEnded):
    """Secrets differ, or only one side has one. The reason says which side to fix."""


@dataclass(frozen=True, slots=True)
class TimedOut(SessionEnded):
    """The peer was silent for longer than the configured timeout (see ``check_timeouts``)."""


@dataclass(frozen=True, slots=True)
class LocallyClosed(SessionEnded):
    """We closed the session ourselves with ``close(code, message)``."""


@dataclass(frozen=True, slots=True)
class ErrorReceived(SessionEnded):
    """The peer sent ERROR and is closing. ``reason`` is its message."""

    @property
    def message(self) -> str:
        return self.reason


# --- shared session plumbing ----------------------------------------------------------------


class SessionBase:
    """The receive loop, outbox and closing logic common to both session classes.

    Bytes reach the wrapper in two ways:

    * Methods the wrapper calls to send something (``send_fullsync``, ``ack``, ...)
      *return* the bytes to write. They first flush anything still waiting in the
      outbox, so a returned value is always everything that must be written now, in
      order.
    * Replies the session makes on its own while handling received data (an auth
      answer, an ERROR before closing) wait in the outbox until ``data_to_send()``.
      Call it after every ``receive_data`` and ``check_timeouts``.

    Once a session has ended it stays CLOSED: it ignores further data, and its send
    methods raise :class:`~.framing.LocalProtocolError`.
    """

    _peer = "peer"  # "master" or "replica", for messages
    _split_records = True  # False: RECORDS frames are decoded as RecordsTrailer

    def __init__(self, max_frame_bytes: int, now_ms: int) -> None:
        self._decoder = FrameDecoder(max_frame_bytes)
        self._outbox = bytearray()
        self._ended: SessionEnded | None = None
        self._last_received_ms = now_ms

    @property
    def ended(self) -> SessionEnded | None:
        """The event that closed the session, if it is closed."""
        return self._ended

    @property
    def last_received_ms(self) -> int:
        """When bytes last arrived from the peer (the ``now_ms`` of that ``receive_data``)."""
        return self._last_received_ms

    def data_to_send(self) -> bytes:
        """Bytes the session queued by itself; write them to the peer."""
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

    def close(self, code: int, message: str) -> bytes:
        """End the session from our side (shutdown, role change, apply failure, ...).

        Returns the bytes to write before closing the connection: an ERROR telling the
        peer why. Returns ``b""`` if the session had already ended.
        """
        if self._ended is not None:
            return b""
        self._end(LocallyClosed(code, message))
        return self.data_to_send()

    # -- for subclasses ------------------------------------------------------------------

    def _receive(self, data: bytes, now_ms: int, events: list[object]) -> None:
        """Feed ``data``, then decode and handle one frame at a time until the bytes run
        out or the session ends. Never raises on anything the peer sends."""
        if self._ended is not None:
            return
        if data:
            self._last_received_ms = now_ms
            self._decoder.feed(data)
        while self._ended is None:
            try:
                body = self._decoder.next_frame()
                if body is None:
                    return
                message = decode_message(body, self._split_records)
            except UnsupportedVersion as exc:
                events.append(self._end(ProtocolViolation(ErrorCode.VERSION_UNSUPPORTED, str(exc))))
                return
            except ProtocolError as exc:
                events.append(
                    self._end(
                        ProtocolViolation(
                            ErrorCode.PROTOCOL, f"malformed message from the {self._peer}: {exc}"
                        )
                    )
                )
                return
            if isinstance(message, Error):
                events.append(
                    self._end(ErrorReceived(message.code, message.message), tell_peer=False)
                )
                return
            self._handle(message, body, events)

    def _handle(self, message: Message, body: bytes, events: list[object]) -> None:
        raise NotImplementedError

    def _unexpected(self, message: Message, state_name: str, expected: str) -> SessionEnded:
        return self._end(
            ProtocolViolation(
                ErrorCode.PROTOCOL,
                f"unexpected {MessageType(message.TYPE).name} from the {self._peer} in state "
                f"{state_name} (expected {expected})",
            )
        )

    def _violation(self, reason: str, code: int = ErrorCode.PROTOCOL) -> SessionEnded:
        return self._end(ProtocolViolation(code, reason))

    def _with_outbox(self, frame: bytes) -> bytes:
        if not self._outbox:
            return frame  # the common case: no copy, even for a shared RECORDS frame
        data = bytes(self._outbox) + frame
        self._outbox.clear()
        return data

    def _end(self, event: SessionEnded, *, tell_peer: bool = True) -> SessionEnded:
        """Close the session. Unless the peer itself ended it, queue an ERROR that tells
        the peer why, so that both sides' logs name the cause."""
        if tell_peer:
            self._outbox += Error(event.code, event.reason).encode()
        self._ended = event
        self._on_closed()
        return event

    def _on_closed(self) -> None:
        raise NotImplementedError

    def _require_open(self, action: str) -> None:
        if self._ended is not None:
            raise LocalProtocolError(
                f"cannot {action}: the session is closed ({self._ended.reason})"
            )


__all__ = [
    "AuthenticationFailed",
    "ErrorCode",
    "ErrorReceived",
    "HistoryBounds",
    "LocallyClosed",
    "ProtocolViolation",
    "SessionBase",
    "SessionEnded",
    "SyncDecision",
    "TimedOut",
    "check_secret",
    "decide_sync",
    "master_proof",
    "new_nonce",
    "new_replid",
    "proofs_match",
    "replica_proof",
]
