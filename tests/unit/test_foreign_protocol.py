"""The replication listener tells a SynapRPC (``synap://``) client apart from a replica
by its first frame, and answers it with a SynapRPC error the client can decode
(frames built and read with the client's own codec, thunder_rpc)."""

from __future__ import annotations

import pytest
from thunder_rpc.value import Request, Value
from thunder_rpc.wire import decode_response
from thunder_rpc.wire import encode_frame as rpc_frame

from synap.replication.foreign import Verdict, rpc_error_frame, sniff, wrong_port_message
from synap.replication.framing import HANDSHAKE_MAX_FRAME_BYTES, encode_frame


@pytest.mark.parametrize("size", [0, 1, 30, 200, 4096, HANDSHAKE_MAX_FRAME_BYTES])
def test_our_frames_are_recognised_from_the_header_alone(size: int) -> None:
    frame = encode_frame(b"\x81" * size)
    assert sniff(frame[:4]) == (Verdict.REPLICATION, 0)
    assert sniff(frame) == (Verdict.REPLICATION, 0)


@pytest.mark.parametrize(
    "request_",
    [
        Request(id=1, command="SET", args=(Value.str("k"), Value.str("v"))),
        Request(id=7, command="AUTH", args=(Value.str("user"), Value.str("secret"))),
        Request(id=2**32 - 1, command="PING"),
        Request(id=3, command="MSET", args=tuple(Value.str("x" * 100) for _ in range(50))),
    ],
)
def test_a_synaprpc_request_is_recognised_once_complete(request_: Request) -> None:
    frame = rpc_frame(request_)
    assert sniff(frame) == (Verdict.SYNAPRPC, request_.id)
    assert sniff(frame[:3])[0] is Verdict.NEED_MORE
    assert sniff(frame[:-1])[0] is Verdict.NEED_MORE


def test_other_bytes_are_left_to_the_replication_session() -> None:
    # Big-endian too large, little-endian small, but not a MessagePack request.
    assert sniff(b"GET / HTTP/1.1\r\n")[0] is Verdict.REPLICATION  # LE length huge
    assert sniff(b"\x05\x00\x00\x01" + b"\xc1" * 5)[0] is Verdict.REPLICATION  # bad msgpack
    import msgpack

    body = msgpack.packb({"not": "a request"})
    assert sniff(len(body).to_bytes(4, "little") + body)[0] is Verdict.REPLICATION


def test_the_error_frame_decodes_with_the_clients_codec() -> None:
    message = wrong_port_message("127.0.0.1:15501", "127.0.0.1:5500", "127.0.0.1:6379")
    decoded = decode_response(rpc_error_frame(42, message))
    assert decoded is not None
    response, consumed = decoded
    assert response.id == 42 and response.err == message and response.ok is None
    assert "http://127.0.0.1:5500" in message and "resp3://127.0.0.1:6379" in message
