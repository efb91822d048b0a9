"""Framing: every replication message travels as a u32 big-endian length plus a body.

The framing layer knows nothing about message types. It cuts a byte stream into bodies
and refuses, from the 4-byte header alone, any frame longer than the limit the caller
sets. A peer cannot make us buffer a frame it claims is 4 GB.

The decoder is built for full syncs (~120 MB of 64 KiB frames for 1M keys). Incoming
bytes go into a single ``bytearray`` and are read at a moving position. Consumed bytes
are dropped only when everything has been read or when they fill more than half the
buffer, so each byte is copied a fixed number of times, however the stream is cut.
"""

from __future__ import annotations

import struct

LENGTH_PREFIX = struct.Struct(">I")
HEADER_BYTES = LENGTH_PREFIX.size

# Limits on one frame body, checked before any of it is buffered.
#
# Before a session knows who it is talking to, frames are small: HELLO, the auth
# messages, ERROR and ACK are all under 1 KiB. 64 KiB leaves plenty of headroom. It also
# bounds the memory an unauthenticated peer can make us hold (h11 allows 16 KiB for
# request heads; nginx's large_client_header_buffers is 4 x 8 KiB). A master only ever
# receives these small messages, so its decoder keeps this limit for the whole connection.
HANDSHAKE_MAX_FRAME_BYTES = 64 * 1024

# After the handshake a replica receives snapshot chunks (~64 KiB) and RECORDS batches
# (~1 MiB), but a frame must also hold the largest *single* record or snapshot entry.
# Everything else here is batched, but a record cannot be split. One command makes one
# record, and one request is at most the largest bulk string (kv_store.max_value_bytes,
# 512 MiB by default, like Redis proto-max-bulk-len) plus 1 MiB of other arguments
# (api/resp.py). So the largest record is ~513 MiB. 1 GiB covers that with room to
# spare, and still refuses the 4 GB a corrupt header might claim. (Kafka's
# message.max.bytes ~1 MB and gRPC's 4 MiB are the same kind of limit, for smaller
# messages.) Deployments that raise max_value_bytes use frame_limit_for().
DEFAULT_MAX_FRAME_BYTES = 1024 * 1024 * 1024

# What a frame holds besides its largest value: the key (64 KiB by default), the other
# arguments of the same request (at most 1 MiB on RESP), and the msgpack and message
# headers.
FRAME_OVERHEAD_BYTES = 4 * 1024 * 1024

# Bodies up to this size are sliced out directly. Larger ones go through a memoryview,
# which saves a copy but costs ~0.4 us to set up.
_SMALL_FRAME = 4096

# The largest length the u32 header can express.
MAX_ENCODABLE_FRAME_BYTES = 2**32 - 1


def frame_limit_for(max_value_bytes: int) -> int:
    """The replica's frame limit when values may be up to ``max_value_bytes``.

    Raises ValueError when such values cannot be replicated at all: a record has to fit
    one frame, and a u32 length stops at 4 GiB.
    """
    needed = max_value_bytes + FRAME_OVERHEAD_BYTES
    if needed > MAX_ENCODABLE_FRAME_BYTES:
        raise ValueError(
            f"kv_store.max_value_bytes = {max_value_bytes} cannot be replicated: a record "
            f"must fit one replication frame (at most {MAX_ENCODABLE_FRAME_BYTES} bytes); "
            f"lower it below {MAX_ENCODABLE_FRAME_BYTES - FRAME_OVERHEAD_BYTES}"
        )
    return max(DEFAULT_MAX_FRAME_BYTES, needed)


class ProtocolError(Exception):
    """The peer sent bytes that break the replication protocol.

    Raised by the frame decoder and the message decoder. The sessions never raise it:
    they turn it into a ``ProtocolViolation`` event and close.
    """


class LocalProtocolError(RuntimeError):
    """*We* tried to do something the protocol forbids in the current state.

    This is a bug in the code that drives a session (for example, sending FULLSYNC
    before the replica has authenticated). It deliberately does not derive from
    :class:`ProtocolError`, so that handling peer errors can never hide it.
    """


def encode_frame(body: bytes) -> bytes:
    """Prefix ``body`` with its length."""
    if len(body) > MAX_ENCODABLE_FRAME_BYTES:
        raise ValueError(f"frame body of {len(body)} bytes does not fit a u32 length")
    return LENGTH_PREFIX.pack(len(body)) + body


def _describe_bad_header(header: bytes) -> str:
    """A hint for the most common cause of absurd lengths: a peer speaking another protocol."""
    if all(32 <= b < 127 for b in header):
        return f" (its stream starts with {header!r}: is it speaking Synap replication or another protocol?)"
    return ""


class FrameDecoder:
    """Cuts a byte stream into frame bodies.

    ``feed(data)`` only buffers. ``next_frame()`` returns the next complete body, or
    ``None`` if more bytes are needed. Parsing happens one frame at a time, so a session
    can change ``max_frame_bytes`` between two frames (for example, raise it once a full
    sync has started), and the new limit applies to the very next header.

    After a ``ProtocolError`` the decoder stays failed. The stream cannot be
    resynchronised, so every later call raises the same error.
    """

    __slots__ = ("_buf", "_pos", "_max", "_error")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._error: ProtocolError | None = None
        self._max = 0
        self.max_frame_bytes = max_frame_bytes

    @property
    def max_frame_bytes(self) -> int:
        return self._max

    @max_frame_bytes.setter
    def max_frame_bytes(self, value: int) -> None:
        if not 0 < value <= MAX_ENCODABLE_FRAME_BYTES:
            raise ValueError(f"max_frame_bytes must be in 1..{MAX_ENCODABLE_FRAME_BYTES}")
        self._max = value

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is None:
            self._buf += data

    def next_frame(self) -> bytes | None:
        """Return the next complete frame body, or None if it has not fully arrived."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        pos = self._pos
        available = len(buf) - pos
        if available < HEADER_BYTES:
            self._compact()
            return None
        (length,) = LENGTH_PREFIX.unpack_from(buf, pos)
        if length > self._max:
            header = bytes(buf[pos : pos + HEADER_BYTES])
            self._error = ProtocolError(
                f"frame of {length} bytes exceeds the {self._max}-byte limit"
                + _describe_bad_header(header)
            )
            self._buf = bytearray()
            self._pos = 0
            raise self._error
        end = pos + HEADER_BYTES + length
        if end > len(buf):
            self._compact()
            return None
        if length <= _SMALL_FRAME:
            body = bytes(buf[pos + HEADER_BYTES : end])  # two small copies beat a memoryview
        else:
            with memoryview(buf) as view:  # one copy of a large body
                body = bytes(view[pos + HEADER_BYTES : end])
        self._pos = end
        return body

    def decode(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Feed ``data`` and return every frame it completes (for tests and simple callers)."""
        self.feed(data)
        frames = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def _compact(self) -> None:
        # Drop consumed bytes once they are all of the buffer (free) or more than half of
        # it (the memmove is then paid for by the bytes consumed since the last one).
        pos = self._pos
        if pos == 0:
            return
        buf = self._buf
        if pos == len(buf):
            buf.clear()
            self._pos = 0
        elif pos > len(buf) // 2:
            del buf[:pos]
            self._pos = 0
