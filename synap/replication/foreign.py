"""Recognise a SynapRPC client on the replication listener and answer it in its protocol.

The ``synap-sdk`` package's ``synap://host:15501`` transport speaks SynapRPC (Thunder):
frames of a u32 *little-endian* length plus a MessagePack body, a request being
``[id, command, args]``.  Our replication frames use a big-endian length, so the small
request reads as a frame of hundreds of megabytes, which used to end in a "frame exceeds
the limit" complaint the client never saw.  Instead, :func:`sniff` spots such a first
frame and :func:`rpc_error_frame` builds the SynapRPC error response
``[id, {"Err": message}]`` that the client raises as its error.

Sans-IO: bytes in, a verdict and bytes out.
"""

from __future__ import annotations

import enum

import msgpack

from synap.replication.framing import HANDSHAKE_MAX_FRAME_BYTES, HEADER_BYTES, LENGTH_PREFIX

# A SynapRPC request the listener will wait for before deciding (bounds what a peer
# that is neither can make us buffer: no more than our own handshake frame limit).
MAX_RPC_FRAME_BYTES = HANDSHAKE_MAX_FRAME_BYTES


class Verdict(enum.Enum):
    REPLICATION = "replication"  # or anything else: the replication session decides
    SYNAPRPC = "synaprpc"
    NEED_MORE = "need more bytes"


def sniff(data: bytes) -> tuple[Verdict, int]:
    """Classify the first bytes a peer sent: ``(verdict, SynapRPC request id)``.

    A replication frame is recognised from its first four bytes (a big-endian length
    within the handshake limit), so replicas never wait on this. Only a header that would
    be refused anyway is looked at as SynapRPC, and only a complete MessagePack
    ``[u32 id, str command, list args]`` counts as one.
    """
    if len(data) < HEADER_BYTES:
        return Verdict.NEED_MORE, 0
    (big_endian,) = LENGTH_PREFIX.unpack_from(data)
    little_endian = int.from_bytes(data[:HEADER_BYTES], "little")
    if big_endian <= HANDSHAKE_MAX_FRAME_BYTES or not 0 < little_endian <= MAX_RPC_FRAME_BYTES:
        return Verdict.REPLICATION, 0
    end = HEADER_BYTES + little_endian
    if len(data) < end:
        return Verdict.NEED_MORE, 0
    try:
        request = msgpack.unpackb(data[HEADER_BYTES:end], raw=False)
    except Exception:  # msgpack raises several unrelated types for bad input
        return Verdict.REPLICATION, 0
    if (
        isinstance(request, list)
        and len(request) == 3
        and type(request[0]) is int
        and 0 <= request[0] < 2**32
        and isinstance(request[1], str)
        and isinstance(request[2], list)
    ):
        return Verdict.SYNAPRPC, request[0]
    return Verdict.REPLICATION, 0


def rpc_error_frame(request_id: int, message: str) -> bytes:
    """The SynapRPC response ``[id, {"Err": message}]``, length-prefixed little-endian."""
    body: bytes = msgpack.packb([request_id, {"Err": message}], use_bin_type=True)
    return len(body).to_bytes(HEADER_BYTES, "little") + body


def wrong_port_message(
    listener: str, http: str | None, resp: str | None, rpc: str | None = None
) -> str:
    """What a SynapRPC client is told (and the log says) on the replication port."""
    where = []
    if rpc:
        where.append(f"SynapRPC at synap://{rpc}")
    if http:
        where.append(f"the HTTP API at http://{http} (synap-sdk: SynapConfig('http://{http}'))")
    if resp:
        where.append(f"the Redis protocol at {resp} (synap-sdk: resp3://{resp})")
    use = " or ".join(where) if where else "this node's HTTP API"
    return (
        f"ERR {listener} is Synap's replication port, for replicas only, not SynapRPC. "
        f"Connect to {use}"
    )
