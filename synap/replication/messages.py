"""Replication messages: what each one carries, and its msgpack encoding.

A message is one frame (see :mod:`.framing`). The frame body is a msgpack array whose
first element is the type code, ``[TYPE, field, ...]``. Two types also carry a raw
*trailer* after that array, which is never wrapped in a msgpack container:

* ``RECORDS``: the effect records themselves, concatenated. Each record is already a
  complete msgpack value (see :mod:`synap.store.effects`), so the records delimit
  themselves. The master builds one RECORDS frame per batch and writes the *same bytes*
  to every replica. A record is encoded once per write, not once per replica.
* ``SNAPSHOT_CHUNK``: the chunk payload, a msgpack array of ``[key, value, expire_at_ms]``
  entries, ``[key, value, expire_at_ms, 1]`` for a value of json kind (as in effect
  records and snapshot files).  The CRC32 in the header covers exactly these bytes.

Decoding is strict, because a message either means exactly one thing or is rejected:
every field is type- and range-checked, and extra or missing fields raise
:class:`~.framing.ProtocolError`. ``docs/PROTOCOL.md`` has the full table.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

import msgpack

from synap.replication.framing import LENGTH_PREFIX, ProtocolError, encode_frame
from synap.replication.peer_fields import InvalidPeerField, check_host_port, check_peer_id

# Version 1 is the first (and only) one. HELLO always puts the version in its second
# element, so a master can refuse a newer replica with a clear error before it tries to
# read the rest of a layout it may not know.
PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = frozenset({PROTOCOL_VERSION})

# Nonces and MACs are 32 bytes: the HMAC-SHA256 output size. 256 random bits also make a
# nonce collision impossible in practice.
NONCE_BYTES = 32
MAC_BYTES = 32

# Replication ids are 40 lowercase hex characters (160 random bits), as in Redis.
# "?" means "I have no history, send me everything" (Redis: PSYNC ? -1).
NO_REPLID = "?"
_REPLID_RE = re.compile(r"[0-9a-f]{40}")

_MAX_U63 = 2**63 - 1
_MAX_U32 = 2**32 - 1


class MessageType(IntEnum):
    HELLO = 1
    AUTH_CHALLENGE = 2
    AUTH_RESPONSE = 3
    AUTH_OK = 4
    ERROR = 5
    FULLSYNC = 6
    SNAPSHOT_CHUNK = 7
    SNAPSHOT_END = 8
    CONTINUE = 9
    RECORDS = 10
    HEARTBEAT = 11
    ACK = 12
    TRUNCATE = 13


class ErrorCode(IntEnum):
    """Why a session ended. Sent in ERROR messages and carried by ``SessionEnded`` events."""

    PROTOCOL = 1  # malformed message, or a message that is illegal in the current state
    VERSION_UNSUPPORTED = 2  # the peer speaks a protocol version we do not
    AUTH_REQUIRED = 3  # one side has a replication secret and the other does not
    AUTH_FAILED = 4  # both sides have a secret, but not the same one
    NOT_MASTER = 5  # the node the replica connected to is not a master
    REFUSED = 6  # the master will not serve this replica (duplicate id, too many replicas)
    SYNC_FAILED = 7  # a full sync arrived corrupt (CRC mismatch, counts disagree)
    TIMEOUT = 8  # the peer went silent for longer than the configured timeout
    SHUTTING_DOWN = 9  # the master is stopping or changing role
    DIVERGED = 10  # the replica's history forked from the master's: truncate, reconnect


def error_code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"code {code}"


# One shared Packer: packing is single-threaded (asyncio) and the Packer resets per call.
_packb: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack


# --- field validation (decoding) -------------------------------------------------------


def _uint(value: Any, what: str, maximum: int = _MAX_U63) -> int:
    # `type(...) is int` rather than isinstance: msgpack decodes true/false to bool, and
    # a bool is not an offset.
    if type(value) is not int or not 0 <= value <= maximum:
        raise ProtocolError(f"{what} must be an integer in 0..{maximum}, got {value!r:.60}")
    return value


def _replid(value: Any, what: str, allow_none: bool = False) -> str:
    if type(value) is str and (_REPLID_RE.fullmatch(value) or (allow_none and value == NO_REPLID)):
        return value
    raise ProtocolError(f"{what} must be 40 lowercase hex characters, got {value!r:.60}")


def _fixed_bytes(value: Any, what: str, size: int) -> bytes:
    if type(value) is not bytes or len(value) != size:
        raise ProtocolError(f"{what} must be {size} raw bytes")
    return value


def is_valid_replid(value: object) -> bool:
    return isinstance(value, str) and _REPLID_RE.fullmatch(value) is not None


# --- messages -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """replica -> master, first message: who I am and where my history ends.

    ``offset`` is the last record the replica applied (0 = none). ``replid`` is the
    history it belongs to, or ``"?"`` for none (which forces a full sync).
    """

    TYPE: ClassVar[int] = MessageType.HELLO
    version: int
    replica_id: str
    listen_address: str | None
    replid: str
    offset: int
    # The replica's Redis-protocol port, for INFO/ROLE (Redis: REPLCONF listening-port).
    # Optional trailing field: absent when the replica has no Redis-protocol listener.
    resp_port: int | None = None
    # Automatic failover: the newest election epoch the replica knows. Optional trailing
    # field after resp_port (which is then sent, nil if unknown); absent when 0.
    epoch: int = 0

    def encode(self) -> bytes:
        fields: list[Any] = [
            int(self.TYPE),
            self.version,
            self.replica_id,
            self.listen_address,
            self.replid,
            self.offset,
        ]
        if self.resp_port is not None or self.epoch:
            fields.append(self.resp_port)
        if self.epoch:
            fields.append(self.epoch)
        return encode_frame(_packb(fields))


@dataclass(frozen=True, slots=True)
class AuthChallenge:
    """master -> replica: prove you know the secret. ``nonce`` is fresh per connection."""

    TYPE: ClassVar[int] = MessageType.AUTH_CHALLENGE
    nonce: bytes

    def encode(self) -> bytes:
        return encode_frame(_packb([int(self.TYPE), self.nonce]))


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """replica -> master: the replica's own fresh nonce, and its proof (an HMAC)."""

    TYPE: ClassVar[int] = MessageType.AUTH_RESPONSE
    nonce: bytes
    mac: bytes

    def encode(self) -> bytes:
        return encode_frame(_packb([int(self.TYPE), self.nonce, self.mac]))


@dataclass(frozen=True, slots=True)
class AuthOk:
    """master -> replica: the replica is accepted; ``proof`` shows the master knows the secret too."""

    TYPE: ClassVar[int] = MessageType.AUTH_OK
    proof: bytes

    def encode(self) -> bytes:
        return encode_frame(_packb([int(self.TYPE), self.proof]))


@dataclass(frozen=True, slots=True)
class Error:
    """Either direction: the sender is closing the connection, and says why."""

    TYPE: ClassVar[int] = MessageType.ERROR
    code: int
    message: str

    def encode(self) -> bytes:
        return encode_frame(_packb([int(self.TYPE), int(self.code), self.message]))


@dataclass(frozen=True, slots=True)
class FullSync:
    """master -> replica: a snapshot of ``keys`` keys taken at ``offset`` of history ``replid`` follows."""

    TYPE: ClassVar[int] = MessageType.FULLSYNC
    replid: str
    offset: int
    keys: int
    master_ts_ms: int
    # Automatic failover: the master's election epoch. Optional trailing field, absent
    # (0) when the master was not elected (manual mode). Also in CONTINUE and HEARTBEAT.
    epoch: int = 0

    def encode(self) -> bytes:
        fields: list[Any] = [int(self.TYPE), self.replid, self.offset, self.keys, self.master_ts_ms]
        if self.epoch:
            fields.append(self.epoch)
        return encode_frame(_packb(fields))


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """master -> replica: chunk ``seq`` (from 0) of the snapshot. ``crc32`` covers ``payload``."""

    TYPE: ClassVar[int] = MessageType.SNAPSHOT_CHUNK
    seq: int
    crc32: int
    payload: bytes

    def encode(self) -> bytes:
        header = _packb([int(self.TYPE), self.seq, self.crc32])
        body_len = len(header) + len(self.payload)
        if body_len > _MAX_U32:
            raise ValueError(f"snapshot chunk of {body_len} bytes does not fit one frame")
        return b"".join([LENGTH_PREFIX.pack(body_len), header, self.payload])


@dataclass(frozen=True, slots=True)
class SnapshotEnd:
    """master -> replica: the snapshot is complete. ``crc32`` covers all chunk payloads in order."""

    TYPE: ClassVar[int] = MessageType.SNAPSHOT_END
    chunks: int
    keys: int
    crc32: int

    def encode(self) -> bytes:
        return encode_frame(_packb([int(self.TYPE), self.chunks, self.keys, self.crc32]))


@dataclass(frozen=True, slots=True)
class Continue:
    """master -> replica: partial sync accepted; records resume at ``offset + 1``.

    ``replid`` is the master's *current* id. It differs from the one in HELLO when the
    replica followed this node's previous id (PSYNC2: a failover happened).
    """

    TYPE: ClassVar[int] = MessageType.CONTINUE
    replid: str
    offset: int
    master_ts_ms: int
    epoch: int = 0  # optional trailing field, see FullSync

    def encode(self) -> bytes:
        fields: list[Any] = [int(self.TYPE), self.replid, self.offset, self.master_ts_ms]
        if self.epoch:
            fields.append(self.epoch)
        return encode_frame(_packb(fields))


@dataclass(frozen=True, slots=True)
class Truncate:
    """master -> replica, instead of CONTINUE/FULLSYNC: your history forked from mine.

    The replica holds records the master's history never had (an old master that took
    writes after the failover point). Both share the history up to ``offset`` (the fork
    point, PSYNC2 ``second_offset - 1``). The replica removes its records after
    ``offset`` and reconnects, then continues by partial sync from ``offset + 1``.
    ``replid`` is the master's current id. The master closes the connection after it.
    """

    TYPE: ClassVar[int] = MessageType.TRUNCATE
    replid: str
    offset: int
    epoch: int = 0  # optional trailing field, see FullSync

    def encode(self) -> bytes:
        fields: list[Any] = [int(self.TYPE), self.replid, self.offset]
        if self.epoch:
            fields.append(self.epoch)
        return encode_frame(_packb(fields))


@dataclass(frozen=True, slots=True)
class Records:
    """master -> replica: ``len(records)`` consecutive records starting at ``first_offset``."""

    TYPE: ClassVar[int] = MessageType.RECORDS
    first_offset: int
    master_ts_ms: int
    records: Sequence[bytes]

    def encode(self) -> bytes:
        return encode_records(self.first_offset, self.records, self.master_ts_ms)


@dataclass(frozen=True, slots=True)
class RecordsTrailer:
    """A RECORDS frame whose header is checked but whose records are not split yet (what
    a replica decodes: it delimits, decodes and applies each record in one pass, see
    :func:`synap.store.effects.apply_concatenated`). The records are the ``count``
    msgpack values in ``body`` from ``pos`` to its end."""

    TYPE: ClassVar[int] = MessageType.RECORDS
    first_offset: int
    master_ts_ms: int
    count: int
    body: bytes
    pos: int

    def split(self) -> list[bytes]:
        """The records as separate bytes; raises :class:`ProtocolError` if the trailer
        does not hold exactly ``count`` whole records."""
        unpacker = msgpack.Unpacker(None, max_buffer_size=len(self.body))
        unpacker.feed(self.body)
        unpacker.skip()
        return decode_records_trailer(unpacker, self.body, self.pos, self.count)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """master -> replica, every second: my offset is ``master_offset`` (keeps the link alive)."""

    TYPE: ClassVar[int] = MessageType.HEARTBEAT
    master_offset: int
    master_ts_ms: int
    epoch: int = 0  # optional trailing field, see FullSync

    def encode(self) -> bytes:
        fields: list[Any] = [int(self.TYPE), self.master_offset, self.master_ts_ms]
        if self.epoch:
            fields.append(self.epoch)
        return encode_frame(_packb(fields))


@dataclass(frozen=True, slots=True)
class Ack:
    """replica -> master: I have applied everything up to ``offset``.

    ``master_ts_ms`` echoes the master timestamp of the frame that brought ``offset``.
    Because the master compares it with its own clock, lag in milliseconds needs no
    clock synchronisation.
    """

    TYPE: ClassVar[int] = MessageType.ACK
    offset: int
    master_ts_ms: int
    # Optional 4th field: the offset the replica's WAL has fsynced (WAITAOF). Sent only
    # by replicas with persistence on; a 3-field ACK means "nothing fsynced".
    fsynced_offset: int | None = None

    def encode(self) -> bytes:
        fields = [int(self.TYPE), self.offset, self.master_ts_ms]
        if self.fsynced_offset is not None:
            fields.append(self.fsynced_offset)
        return encode_frame(_packb(fields))


Message = (
    Hello
    | AuthChallenge
    | AuthResponse
    | AuthOk
    | Error
    | FullSync
    | SnapshotChunk
    | SnapshotEnd
    | Continue
    | Truncate
    | Records
    | RecordsTrailer
    | Heartbeat
    | Ack
)


# --- hot-path encoders ------------------------------------------------------------------

_RECORDS = int(MessageType.RECORDS)


def encode_records(first_offset: int, records: Sequence[bytes], master_ts_ms: int) -> bytes:
    """Build one complete RECORDS frame, ready to be written to any number of replicas.

    The record bytes are copied exactly once, by a single ``join``.
    """
    if not records:
        raise ValueError("a RECORDS frame carries at least one record")
    header = _packb([_RECORDS, first_offset, len(records), master_ts_ms])
    body_len = len(header) + sum(map(len, records))
    if body_len > _MAX_U32:
        raise ValueError(f"RECORDS batch of {body_len} bytes does not fit one frame")
    return b"".join([LENGTH_PREFIX.pack(body_len), header, *records])


def encode_snapshot_payload(entries: Iterable[Sequence[Any]]) -> bytes:
    """Encode ``[key, value, expire_at_ms]`` (or ``[..., 1]`` for json kind) entries as
    one chunk payload."""
    return _packb(entries if isinstance(entries, list | tuple) else list(entries))


def snapshot_chunk_frame(seq: int, payload: bytes) -> bytes:
    """A SNAPSHOT_CHUNK frame for an already encoded payload (CRC32 computed here)."""
    return SnapshotChunk(seq, zlib.crc32(payload), payload).encode()


# --- decoding -------------------------------------------------------------------------


class UnsupportedVersion(ProtocolError):
    """A HELLO with a protocol version we do not speak (the rest is not parsed)."""

    def __init__(self, version: int) -> None:
        super().__init__(
            f"peer speaks replication protocol version {version}; this node speaks "
            f"{', '.join(map(str, sorted(SUPPORTED_VERSIONS)))}: run the same Synap "
            "version on master and replicas"
        )
        self.version = version


def _expect_fields(fields: list[Any], count: int, name: str) -> None:
    if len(fields) != count:
        raise ProtocolError(f"{name} has {len(fields) - 1} fields, expected {count - 1}")


def _decode_hello(f: list[Any]) -> Hello:
    if len(f) < 2:
        raise ProtocolError("HELLO without a protocol version")
    version = _uint(f[1], "HELLO version")
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersion(version)
    if len(f) not in (7, 8):
        _expect_fields(f, 6, "HELLO")
    resp_port = None
    if len(f) == 7 or (len(f) == 8 and f[6] is not None):
        resp_port = _uint(f[6], "HELLO resp_port", 65535)
    epoch = _uint(f[7], "HELLO epoch") if len(f) == 8 else 0
    # The id and address reach stats, INFO, metrics and logs: only a narrow, printable
    # form is accepted (synap.replication.peer_fields), and the replica is rejected
    # with the reason otherwise.
    address = f[3]
    try:
        replica_id = check_peer_id(f[2], "HELLO replica_id")
        if address is not None:
            check_host_port(address, "HELLO listen_address")
    except InvalidPeerField as exc:
        raise ProtocolError(str(exc)) from None
    return Hello(
        version=version,
        replica_id=replica_id,
        listen_address=address,
        replid=_replid(f[4], "HELLO replid", allow_none=True),
        offset=_uint(f[5], "HELLO offset"),
        resp_port=resp_port,
        epoch=epoch,
    )


def _decode_challenge(f: list[Any]) -> AuthChallenge:
    _expect_fields(f, 2, "AUTH_CHALLENGE")
    return AuthChallenge(_fixed_bytes(f[1], "AUTH_CHALLENGE nonce", NONCE_BYTES))


def _decode_response(f: list[Any]) -> AuthResponse:
    _expect_fields(f, 3, "AUTH_RESPONSE")
    return AuthResponse(
        _fixed_bytes(f[1], "AUTH_RESPONSE nonce", NONCE_BYTES),
        _fixed_bytes(f[2], "AUTH_RESPONSE mac", MAC_BYTES),
    )


def _decode_auth_ok(f: list[Any]) -> AuthOk:
    _expect_fields(f, 2, "AUTH_OK")
    return AuthOk(_fixed_bytes(f[1], "AUTH_OK proof", MAC_BYTES))


def _decode_error(f: list[Any]) -> Error:
    _expect_fields(f, 3, "ERROR")
    if type(f[2]) is not str:
        raise ProtocolError("ERROR message must be a string")
    return Error(_uint(f[1], "ERROR code", _MAX_U32), f[2])


def _epoch(f: list[Any], count: int, name: str) -> int:
    """The optional trailing epoch of a message that has ``count`` fields without it."""
    if len(f) != count + 1:
        _expect_fields(f, count, name)
        return 0
    return _uint(f[count], f"{name} epoch")


def _decode_fullsync(f: list[Any]) -> FullSync:
    epoch = _epoch(f, 5, "FULLSYNC")
    return FullSync(
        replid=_replid(f[1], "FULLSYNC replid"),
        offset=_uint(f[2], "FULLSYNC offset"),
        keys=_uint(f[3], "FULLSYNC keys"),
        master_ts_ms=_uint(f[4], "FULLSYNC master_ts_ms"),
        epoch=epoch,
    )


def _decode_snapshot_end(f: list[Any]) -> SnapshotEnd:
    _expect_fields(f, 4, "SNAPSHOT_END")
    return SnapshotEnd(
        chunks=_uint(f[1], "SNAPSHOT_END chunks"),
        keys=_uint(f[2], "SNAPSHOT_END keys"),
        crc32=_uint(f[3], "SNAPSHOT_END crc32", _MAX_U32),
    )


def _decode_continue(f: list[Any]) -> Continue:
    epoch = _epoch(f, 4, "CONTINUE")
    return Continue(
        replid=_replid(f[1], "CONTINUE replid"),
        offset=_uint(f[2], "CONTINUE offset"),
        master_ts_ms=_uint(f[3], "CONTINUE master_ts_ms"),
        epoch=epoch,
    )


def _decode_truncate(f: list[Any]) -> Truncate:
    epoch = _epoch(f, 3, "TRUNCATE")
    return Truncate(
        replid=_replid(f[1], "TRUNCATE replid"),
        offset=_uint(f[2], "TRUNCATE offset"),
        epoch=epoch,
    )


def _decode_heartbeat(f: list[Any]) -> Heartbeat:
    epoch = _epoch(f, 3, "HEARTBEAT")
    return Heartbeat(
        _uint(f[1], "HEARTBEAT master_offset"), _uint(f[2], "HEARTBEAT master_ts_ms"), epoch
    )


def _decode_ack(f: list[Any]) -> Ack:
    if len(f) != 4:
        _expect_fields(f, 3, "ACK")
        return Ack(_uint(f[1], "ACK offset"), _uint(f[2], "ACK master_ts_ms"))
    return Ack(
        _uint(f[1], "ACK offset"),
        _uint(f[2], "ACK master_ts_ms"),
        _uint(f[3], "ACK fsynced_offset"),
    )


# Messages that are exactly one msgpack array, nothing after it.
_PLAIN_DECODERS: dict[int, Any] = {
    MessageType.HELLO: _decode_hello,
    MessageType.AUTH_CHALLENGE: _decode_challenge,
    MessageType.AUTH_RESPONSE: _decode_response,
    MessageType.AUTH_OK: _decode_auth_ok,
    MessageType.ERROR: _decode_error,
    MessageType.FULLSYNC: _decode_fullsync,
    MessageType.SNAPSHOT_END: _decode_snapshot_end,
    MessageType.CONTINUE: _decode_continue,
    MessageType.TRUNCATE: _decode_truncate,
    MessageType.HEARTBEAT: _decode_heartbeat,
    MessageType.ACK: _decode_ack,
}


def decode_message(body: bytes, split_records: bool = True) -> Message:
    """Decode one frame body; raises :class:`ProtocolError` on anything malformed.

    ``split_records=False``: a RECORDS frame becomes a :class:`RecordsTrailer` (header
    checked, records left in the body) instead of :class:`Records`."""
    if not body:
        raise ProtocolError("empty frame")
    unpacker = msgpack.Unpacker(None, raw=False, max_buffer_size=len(body), strict_map_key=True)
    unpacker.feed(body)
    try:
        header = unpacker.unpack()
        header_end = unpacker.tell()
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise ProtocolError(f"undecodable message header: {exc!r:.200}") from exc
    if type(header) is not list or not header or type(header[0]) is not int:
        raise ProtocolError("message is not an array starting with a type code")
    kind = header[0]
    if kind == MessageType.RECORDS:
        return _decode_records(header, unpacker, body, header_end, split_records)
    if kind == MessageType.SNAPSHOT_CHUNK:
        _expect_fields(header, 3, "SNAPSHOT_CHUNK")
        return SnapshotChunk(
            seq=_uint(header[1], "SNAPSHOT_CHUNK seq"),
            crc32=_uint(header[2], "SNAPSHOT_CHUNK crc32", _MAX_U32),
            payload=body[header_end:],
        )
    decoder = _PLAIN_DECODERS.get(kind)
    if decoder is None:
        raise ProtocolError(f"unknown message type {kind}")
    if header_end != len(body):
        raise ProtocolError(
            f"{MessageType(kind).name} followed by {len(body) - header_end} unexpected bytes"
        )
    message: Message = decoder(header)
    return message


def _decode_records(
    header: list[Any], unpacker: msgpack.Unpacker, body: bytes, pos: int, split: bool
) -> Records | RecordsTrailer:
    _expect_fields(header, 4, "RECORDS")
    first_offset = _uint(header[1], "RECORDS first_offset")
    count = _uint(header[2], "RECORDS count")
    ts = _uint(header[3], "RECORDS master_ts_ms")
    if first_offset < 1:
        raise ProtocolError("RECORDS first_offset must be at least 1 (offsets start at 1)")
    # Every record takes at least one byte, so a count larger than the trailer is a lie.
    # Checking it first also bounds the loop below by the frame size.
    if not 0 < count <= len(body) - pos:
        raise ProtocolError(f"RECORDS claims {count} records in a {len(body) - pos}-byte trailer")
    if not split:
        return RecordsTrailer(first_offset, ts, count, body, pos)
    records = decode_records_trailer(unpacker, body, pos, count)
    return Records(first_offset=first_offset, master_ts_ms=ts, records=records)


def decode_records_trailer(
    unpacker: msgpack.Unpacker, body: bytes, pos: int, count: int
) -> list[bytes]:
    """Split ``count`` concatenated msgpack records out of ``body`` from ``pos`` onward.

    ``unpacker`` must already be positioned at ``pos``. Each record is sliced out of the
    body, never decoded: the records stay opaque bytes, as the master produced them.
    """
    records: list[bytes] = []
    append = records.append
    skip = unpacker.skip
    tell = unpacker.tell
    try:
        for _ in range(count):
            skip()
            end = tell()
            append(body[pos:end])
            pos = end
    except Exception as exc:  # OutOfData (truncated), FormatError, StackError, ...
        raise ProtocolError(
            f"RECORDS trailer holds {len(records)} whole records, header says {count} ({exc!r:.100})"
        ) from exc
    if pos != len(body):
        raise ProtocolError(
            f"RECORDS followed by {len(body) - pos} bytes beyond its {count} records"
        )
    return records


SnapshotEntry = tuple[bytes, bytes, int] | tuple[bytes, bytes, int, int]
#: The fourth element of a snapshot entry whose value is of json kind.
SNAPSHOT_KIND_JSON = 1


def decode_snapshot_entries(payload: bytes) -> list[SnapshotEntry]:
    """Decode and check a chunk payload: a list of ``(key, value, expire_at_ms)``, or
    ``(key, value, expire_at_ms, 1)`` for a value of json kind.

    ``expire_at_ms`` is absolute milliseconds, 0 = no expiry (as in effect records).
    """
    try:
        entries = msgpack.unpackb(payload, raw=False, use_list=False, strict_map_key=True)
    except Exception as exc:
        raise ProtocolError(f"undecodable snapshot chunk payload: {exc!r:.200}") from exc
    if type(entries) is not tuple:
        raise ProtocolError("snapshot chunk payload is not an array of entries")
    for entry in entries:
        if type(entry) is not tuple or not 3 <= len(entry) <= 4:
            raise ProtocolError("snapshot entry is not a [key, value, expire_at_ms(, kind)] array")
        if len(entry) == 4 and (type(entry[3]) is not int or entry[3] != SNAPSHOT_KIND_JSON):
            raise ProtocolError("snapshot entry kind must be 1 (json) when present")
        key, value, expire = entry[:3]
        if type(key) is not bytes or type(value) is not bytes:
            raise ProtocolError("snapshot entry key and value must be raw bytes")
        if type(expire) is not int or not 0 <= expire <= _MAX_U63:
            raise ProtocolError("snapshot entry expire_at_ms must be a non-negative integer")
    return list(entries)


# Bytes after a msgpack uint's first byte, by that byte (0xcc..0xcf: uint 8/16/32/64).
_UINT_TAIL = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
# A RECORDS header, ``[10, first_offset, count, master_ts_ms]``, starts with these two
# bytes: a fixarray of 4, then the type code as a positive fixint.
_RECORDS_HEAD = bytes((0x94, _RECORDS))


def decode_records_frame(data: bytes, max_body_bytes: int) -> RecordsTrailer | None:
    """A streaming replica's shortcut: ``data`` is exactly one whole frame (length prefix
    included) holding a RECORDS message in the shape :func:`encode_records` writes, with a
    body of at most ``max_body_bytes``. Returns what ``decode_message(body,
    split_records=False)`` returns for it, read without an unpacker; ``None`` for anything
    else (another message, several or partial frames, another encoding of the same header,
    a bad field), which the caller then decodes the general way, errors included."""
    size = len(data)
    if size < 9 or data[4:6] != _RECORDS_HEAD:
        return None
    length = int.from_bytes(data[:4], "big")
    if length + 4 != size or length > max_body_bytes:
        return None
    fields = [0, 0, 0]
    pos = 6
    for i in range(3):
        if pos >= size:
            return None
        first = data[pos]
        if first < 0x80:  # positive fixint
            fields[i] = first
            pos += 1
            continue
        tail = _UINT_TAIL.get(first, 0)
        if not tail or pos + 1 + tail > size:
            return None
        fields[i] = int.from_bytes(data[pos + 1 : pos + 1 + tail], "big")
        pos += 1 + tail
    first_offset, count, ts = fields
    # The checks of _decode_records, on the body (``data`` without the 4-byte prefix).
    if first_offset < 1 or first_offset > _MAX_U63 or count > _MAX_U63 or ts > _MAX_U63:
        return None
    pos -= 4
    if not 0 < count <= length - pos:
        return None
    return RecordsTrailer(first_offset, ts, count, data[4:], pos)
