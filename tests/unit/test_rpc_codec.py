"""The SynapRPC codec without sockets (synap/api/rpc_codec.py): framing with the published
Thunder codec, request arguments to RESP argv, RESP replies to the values synap-sdk maps."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import pytest
from synap_sdk.transport_rpc import _from_wire, _to_wire
from thunder_rpc.value import Request, Value
from thunder_rpc.wire import decode_response, encode_frame

from synap.api import resp_codec as R
from synap.api import rpc_codec as C

LIMIT = 1024


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "little") + body


def request(request_id: int, command: str, *args: Any) -> bytes:
    return encode_frame(Request(id=request_id, command=command, args=[_to_wire(a) for a in args]))


def feed_all(state: C.RpcConnectionState, *chunks: bytes) -> list[C.Event]:
    events: list[C.Event] = []
    for chunk in chunks:
        events += state.feed(chunk)
    return events


# ------------------------------------------------------------------ framing


def test_requests_split_across_reads_and_several_in_one_read() -> None:
    data = request(1, "SET", "k", "v") + request(2, "GET", "k") + request(3, "PING")
    state = C.RpcConnectionState(LIMIT)
    events = feed_all(state, *(data[i : i + 1] for i in range(len(data))))
    assert [(e.id, e.command) for e in events if isinstance(e, Request)] == [
        (1, "SET"),
        (2, "GET"),
        (3, "PING"),
    ]
    assert events[0].args == (Value.str("k"), Value.str("v"))  # type: ignore[union-attr]
    assert state.buffered == 0
    state = C.RpcConnectionState(LIMIT)
    assert len(state.feed(data)) == 3


def test_an_over_limit_length_prefix_is_fatal_before_the_body_arrives() -> None:
    state = C.RpcConnectionState(LIMIT)
    events = state.feed((LIMIT + 1).to_bytes(4, "little"))
    assert events == [C.FrameError(f"frame body {LIMIT + 1} bytes exceeds limit {LIMIT}")]
    assert state.closed and state.buffered == 0
    assert state.feed(request(1, "PING")) == []  # nothing after a fatal error


def test_frames_before_a_bad_prefix_are_still_delivered() -> None:
    state = C.RpcConnectionState(LIMIT)
    events = state.feed(request(7, "PING") + b"\xff\xff\xff\xff")
    assert isinstance(events[0], Request) and events[0].id == 7
    assert isinstance(events[1], C.FrameError) and events[1].request_id is None


def test_malformed_msgpack_closes() -> None:
    state = C.RpcConnectionState(LIMIT)
    (event,) = state.feed(frame(b"\xc1\xc1\xc1"))  # 0xc1 is never valid MessagePack
    assert isinstance(event, C.FrameError) and event.request_id is None
    assert "malformed MessagePack" in event.message
    assert state.closed


@pytest.mark.parametrize(
    ("obj", "wording"),
    [
        ([5, "GET"], "3 elements"),
        ([5, 42, []], "command must be a str"),
        ([5, "GET", "k"], "args must be an array"),
        ([5, "GET", [{"Nope": 1}]], "unknown Value variant tag 'Nope'"),
        ([5, "GET", ["NotNull"]], "not a Value variant"),
        ([5, "GET", [{"Int": 2**63}]], "Int variant needs an i64"),
        ([5, "GET", [{"Str": 1}]], "Str variant needs a str"),
        ({"id": 5, "command": "GET"}, "missing field"),
    ],
)
def test_a_wrong_request_shape_with_an_id_gets_an_err_and_the_connection_goes_on(
    obj: Any, wording: str
) -> None:
    state = C.RpcConnectionState(LIMIT)
    events = state.feed(frame(msgpack.packb(obj)) + request(6, "PING"))
    assert isinstance(events[0], C.FrameError)
    assert events[0].request_id == 5
    assert events[0].message.startswith("ERR Protocol error: ")
    assert wording in events[0].message
    assert isinstance(events[1], Request) and events[1].id == 6
    assert not state.closed


@pytest.mark.parametrize("obj", [["x", "GET", []], [-1, "GET", []], [2**32, "GET", []], "hi", 7])
def test_a_wrong_shape_without_a_usable_id_closes(obj: Any) -> None:
    state = C.RpcConnectionState(LIMIT)
    (event,) = state.feed(frame(msgpack.packb(obj)))
    assert isinstance(event, C.FrameError) and event.request_id is None
    assert state.closed


def test_the_legacy_map_shaped_request_and_int_array_bytes_decode() -> None:
    body = msgpack.packb({"id": 9, "command": "SET", "args": [{"Str": "k"}, {"Bytes": [104, 105]}]})
    (event,) = C.RpcConnectionState(LIMIT).feed(frame(body))
    assert isinstance(event, Request)
    assert C.request_argv(event) == [b"SET", b"k", b"hi"]


@pytest.mark.parametrize("first", [b"GET / HTTP/1.1\r\n\r\n", b"POST /kv/set HTTP/1.1\r\n"])
def test_an_http_request_is_recognised(first: bytes) -> None:
    state = C.RpcConnectionState(2**40)  # even where the prefix would fit the limit
    (event,) = state.feed(first)
    assert isinstance(event, C.FrameError) and event.http and event.request_id is None
    reply = C.http_misdirected("use port 5500")
    assert reply.startswith(b"HTTP/1.1 400 ") and reply.endswith(b"use port 5500")


# ------------------------------------------------------------------ arguments


def test_request_argv_converts_every_scalar_kind() -> None:
    req = Request(
        id=1,
        command="SET",
        args=[
            Value.str("ké"),
            Value.bytes(b"\x00\xff"),
            Value.int(-42),
            Value.float(1.5),
            Value.float(1e20),
            Value.bool(True),
            Value.bool(False),
        ],
    )
    assert C.request_argv(req) == [b"SET", "ké".encode(), b"\x00\xff", b"-42", b"1.5", b"1e+20", b"1", b"0"]  # fmt: skip


@pytest.mark.parametrize("arg", [Value.null(), Value.array([]), Value.map([])])
def test_request_argv_refuses_null_arrays_and_maps(arg: Value) -> None:
    with pytest.raises(C.ArgumentError, match=r"^ERR argument 1 of 'SET' is "):
        C.request_argv(Request(id=1, command="SET", args=[Value.str("k"), arg]))


# ------------------------------------------------------------------ replies


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (R.OK, Value.str("OK")),
        (R.simple("string"), Value.str("string")),
        (R.bulk(b"hello"), Value.bytes(b"hello")),
        (R.bulk(b""), Value.bytes(b"")),
        (R.NULL2, Value.null()),
        (R.NULL3, Value.null()),
        (R.NULL_ARRAY2, Value.null()),
        (R.integer(0), Value.int(0)),
        (R.integer(-(2**63)), Value.int(-(2**63))),
        (R.integer(2**63 - 1), Value.int(2**63 - 1)),
        (R.encode(True, resp3=True), Value.bool(True)),
        (R.encode(False, resp3=True), Value.bool(False)),
        (R.encode(2.5, resp3=True), Value.float(2.5)),
        (R.bulk_array([b"a", None]), Value.array([Value.bytes(b"a"), Value.null()])),
        (R.EMPTY_ARRAY, Value.array([])),
        (
            R.array([R.bulk(b"0"), R.bulk_array([b"k1"])]),
            Value.array([Value.bytes(b"0"), Value.array([Value.bytes(b"k1")])]),
        ),
        (
            R.encode({"a": 1, "b": {"c": None}}, resp3=True),
            Value.map(
                [
                    (Value.str("a"), Value.int(1)),
                    (Value.str("b"), Value.map([(Value.str("c"), Value.null())])),
                ]
            ),
        ),
        (b"=15\r\ntxt:Some string\r\n", Value.str("Some string")),
        (
            b"(3492890328409238509324850943850943825024385\r\n",
            Value.str("3492890328409238509324850943850943825024385"),
        ),  # fmt: skip
        (b"~2\r\n:1\r\n:2\r\n", Value.array([Value.int(1), Value.int(2)])),
        (b"|1\r\n+ttl\r\n:3\r\n:7\r\n", Value.int(7)),
        (b"*2\r\n+OK\r\n-ERR no\r\n", Value.array([Value.str("OK"), Value.str("ERR no")])),
    ],
)
def test_reply_value(reply: bytes, expected: Value) -> None:
    assert C.reply_value(reply) == expected


def test_a_float_reply_keeps_its_bits() -> None:
    assert C.reply_value(R.encode(0.1, resp3=True)) == Value.float(0.1)
    assert math.isinf(C.reply_value(b",inf\r\n").value)


def test_error_replies_become_err_frames() -> None:
    with pytest.raises(C.RespReplyError, match="^READONLY You can't write"):
        C.reply_value(R.error("READONLY You can't write against a read only replica."))
    decoded = decode_response(C.response_frame(4, R.error("WRONGTYPE Operation")))
    assert decoded is not None
    assert decoded[0].id == 4 and decoded[0].err == "WRONGTYPE Operation"


def test_trailing_bytes_after_a_reply_are_a_bug_not_a_value() -> None:
    with pytest.raises(ValueError, match="after a RESP reply"):
        C.reply_value(R.bulk(b"a") + R.bulk(b"b"))


def test_what_the_sdk_gets_back() -> None:
    """Through the SDK's own ``_from_wire``: bulk strings are text where they are UTF-8,
    bytes otherwise; maps are dicts with text keys."""

    def sdk(reply: bytes) -> Any:
        decoded = decode_response(C.response_frame(1, reply))
        assert decoded is not None and decoded[0].ok is not None
        return _from_wire(decoded[0].ok)

    assert sdk(R.bulk(b'{"a": [1, true, null]}')) == '{"a": [1, true, null]}'
    assert sdk(R.bulk(b"\xff\x00")) == b"\xff\x00"
    assert sdk(R.OK) == "OK"
    assert sdk(R.integer(3)) == 3
    assert sdk(R.encode({"hit_rate": 0.5, "operations": {"gets": 2}}, resp3=True)) == {
        "hit_rate": 0.5,
        "operations": {"gets": 2},
    }
    assert sdk(R.array([R.bulk(b"0"), R.bulk_array([b"x", b"y"])])) == ["0", ["x", "y"]]
