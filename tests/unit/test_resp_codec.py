"""The Redis-protocol codec without sockets: reply encoding, request framing, inline
splitting, and a RespConnection fed requests cut into reads at arbitrary points (the
replies must not depend on where the cuts fall)."""

from __future__ import annotations

import re
from typing import Any

import hiredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synap.api import resp_codec as R
from synap.api.resp import RespConnection
from synap.api.resp_framing import (
    MAX_ARGS,
    FramingError,
    RequestFraming,
    ends_with_request,
    may_declare_many_args,
    split_inline,
)
from synap.config import Config
from synap.node import Node
from tests.support.fuzz_node import FakeTransport


def encode(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


# ----------------------------------------------------------------- reply encoding


def test_reply_encoding_resp2_and_resp3() -> None:
    assert R.bulk(b"a\r\nb") == b"$4\r\na\r\nb\r\n"
    assert R.integer(0) == b":0\r\n" and R.integer(-7) == b":-7\r\n"
    assert R.error("ERR bad\r\nthing") == b"-ERR bad  thing\r\n"
    assert R.bulk_or_null(None, False) == b"$-1\r\n"
    assert R.bulk_or_null(None, True) == b"_\r\n"
    assert R.bulk_array([b"a", None], False) == b"*2\r\n$1\r\na\r\n$-1\r\n"
    assert R.encode({"a": 1}, resp3=True) == b"%1\r\n$1\r\na\r\n:1\r\n"
    assert R.encode({"a": 1}, resp3=False) == b"*2\r\n$1\r\na\r\n:1\r\n"
    assert R.encode(True, resp3=True) == b"#t\r\n" and R.encode(True, resp3=False) == b":1\r\n"
    assert R.encode(0.5, resp3=True) == b",0.5\r\n"
    assert R.encode(0.5, resp3=False) == b"$3\r\n0.5\r\n"
    assert R.encode([None, "x"], resp3=False) == b"*2\r\n$-1\r\n$1\r\nx\r\n"


# ----------------------------------------------------------------- framing


def feed_all(data: bytes, cuts: list[int], max_bulk: int = 1 << 20) -> list[bool]:
    """Feed ``data`` cut at ``cuts``; return at_boundary after each piece."""
    framing = RequestFraming(max_bulk)
    states = []
    start = 0
    for end in [*sorted(cuts), len(data)]:
        framing.feed(data[start:end])
        states.append(framing.at_boundary)
        start = end
    return states


def test_framing_follows_requests() -> None:
    one = encode(b"SET", b"key", b"va\r\n*1\r\nlue")
    framing = RequestFraming()
    framing.feed(one[:5])
    assert not framing.at_boundary
    assert framing.feed(one[5:]) is None
    assert framing.at_boundary
    assert framing.feed(b"*0\r\n*-1\r\n") is None
    assert framing.at_boundary


def test_framing_stops_where_an_inline_command_starts() -> None:
    framing = RequestFraming()
    data = encode(b"PING") + b"PING\r\n" + encode(b"PING")
    assert framing.feed(data) == len(encode(b"PING"))
    assert framing.at_boundary
    assert RequestFraming().feed(b"\r\n") == 0  # an empty line too, as in Redis


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*abc\r\n", "invalid multibulk length"),
        (b"*01\r\n", "invalid multibulk length"),
        (b"*+1\r\n", "invalid multibulk length"),
        (b"*%d\r\n" % (MAX_ARGS + 1), "invalid multibulk length"),
        (b"*1\r\n$abc\r\n", "invalid bulk length"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        (b"*1\r\n$4294967296\r\n", "invalid bulk length"),
        (b"*1\r\n:1\r\n", "expected '$', got ':'"),
        (b"*1\r\n*1\r\n", "expected '$', got '*'"),
        (b"*1\r\n" + b"$" + b"9" * 70_000, "too big bulk count string"),
        (b"*" + b"9" * 70_000, "too big mbulk count string"),
    ],
)
def test_framing_errors_use_redis_wording(data: bytes, message: str) -> None:
    framing = RequestFraming(max_bulk_len=1024)
    with pytest.raises(FramingError, match=f"^{re.escape(message)}"):
        framing.feed(data)


def test_framing_refuses_a_long_bulk_before_its_bytes_arrive() -> None:
    framing = RequestFraming(max_bulk_len=100)
    framing.feed(b"*2\r\n$3\r\nGET\r\n$10")
    with pytest.raises(FramingError, match="invalid bulk length"):
        framing.feed(b"1\r\n")


requests = st.lists(
    st.lists(st.binary(max_size=40), min_size=1, max_size=5).map(lambda a: encode(*a)),
    min_size=1,
    max_size=6,
)


@given(requests, st.data())
def test_framing_is_at_a_boundary_exactly_between_requests(
    encoded: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(encoded)
    ends = set()
    position = 0
    for request in encoded:
        position += len(request)
        ends.add(position)
    cuts = data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=8, unique=True))
    states = feed_all(stream, cuts)
    for cut, state in zip(sorted(cuts), states, strict=False):
        assert state == (cut in ends), (cut, ends)
    assert states[-1] is True


def test_ends_with_request() -> None:
    request = [b"SET", b"k", b"v"]
    data = b"PINGJUNK" + encode(*request)
    assert ends_with_request(data, request)
    assert ends_with_request(encode(*request), request)
    assert not ends_with_request(data + b"*2\r\n", request)
    assert not ends_with_request(encode(*request)[1:], request)
    assert not ends_with_request(b"*3\r\n$03\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", request)
    assert not ends_with_request(b"$1\r\nv\r\n", request)


def test_may_declare_many_args() -> None:
    assert may_declare_many_args(b"*1000000\r\n")
    assert may_declare_many_args(encode(b"PING") + b"*99999999\r\n")
    assert not may_declare_many_args(encode(b"SET", b"k", b"*12\r\n") * 10)
    assert not may_declare_many_args(b"")


# ----------------------------------------------------------------- inline commands


@pytest.mark.parametrize(
    ("line", "args"),
    [
        (b"PING", [b"PING"]),
        (b"  SET   k  v  ", [b"SET", b"k", b"v"]),
        (b'SET "a b" c', [b"SET", b"a b", b"c"]),
        (b'ECHO "\\x41\\n\\"q\\\\"', [b"ECHO", b'A\n"q\\']),
        (b"ECHO 'it\\'s' \"\"", [b"ECHO", b"it's", b""]),
        (b'ECHO a"b c"', [b"ECHO", b"ab c"]),
        (b"", []),
    ],
)
def test_split_inline_like_sdssplitargs(line: bytes, args: list[bytes]) -> None:
    assert split_inline(line) == args


@pytest.mark.parametrize("line", [b'SET "a', b"SET 'a", b'SET "a"b', b"SET 'a'b", b'a"b c"d'])
def test_split_inline_unbalanced_quotes(line: bytes) -> None:
    with pytest.raises(FramingError, match="unbalanced quotes"):
        split_inline(line)


# ----------------------------------------------------------------- a connection, no socket


@pytest.fixture(scope="module")
def node() -> Node:
    return Node(Config())


def connect(node: Node) -> tuple[RespConnection, FakeTransport]:
    connection = RespConnection(node)
    transport = FakeTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    return connection, transport


def replies(data: bytes) -> list[Any]:
    reader = hiredis.Reader()
    reader.feed(data)
    out = []
    while (reply := reader.gets()) is not False:
        out.append(reply)
    return out


def exchange(node: Node, pieces: list[bytes]) -> tuple[bytes, bool]:
    connection, transport = connect(node)
    for piece in pieces:
        connection.data_received(piece)
    connection.connection_lost(None)
    return bytes(transport.out), transport.closed


echo_requests = st.lists(
    st.binary(max_size=30).map(lambda a: encode(b"ECHO", a)), min_size=1, max_size=8
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(echo_requests, st.data())
def test_replies_do_not_depend_on_how_requests_are_cut(
    node: Node, encoded: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(encoded)
    cuts = sorted(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=10, unique=True)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    whole, _ = exchange(node, [stream])
    cut, closed = exchange(node, pieces)
    assert cut == whole
    assert not closed
    assert len(replies(cut)) == len(encoded)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=100)
@given(st.lists(st.from_regex(rb"\A[a-z0-9]{1,8}\Z"), min_size=1, max_size=6), st.data())
def test_inline_commands_cut_anywhere(node: Node, words: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(b"ECHO " + w + b"\r\n" for w in words)
    cuts = sorted(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=10, unique=True)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    written, closed = exchange(node, pieces)
    assert replies(written) == words and not closed


mixed_requests = st.lists(
    st.one_of(
        st.binary(max_size=20).map(lambda a: (encode(b"ECHO", a), a)),
        st.from_regex(rb"\A[a-z0-9]{1,8}\Z").map(lambda w: (b"ECHO " + w + b"\r\n", w)),
        st.just((b"\r\n", None)),  # an empty line: no command, no reply
    ),
    min_size=1,
    max_size=8,
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(mixed_requests, st.data())
def test_inline_commands_and_multibulk_requests_mixed_in_any_reads(
    node: Node, requests: list[tuple[bytes, bytes | None]], data: st.DataObject
) -> None:
    stream = b"".join(raw for raw, _ in requests)
    expected = [word for _, word in requests if word is not None]
    cuts = sorted(
        data.draw(st.lists(st.integers(1, max(1, len(stream) - 1)), max_size=6, unique=True))
    )
    cuts = [c for c in cuts if c < len(stream)]
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    written, closed = exchange(node, pieces)
    assert replies(written) == expected and not closed


def test_a_request_cut_between_arguments_is_not_read_as_inline(node: Node) -> None:
    written, closed = exchange(
        node, [b"*2\r\n$4\r\nECHO\r\n", b"$5\r\nsplit\r\n", b"*1\r\n$4\r\nPING\r\n"]
    )
    assert written == b"$5\r\nsplit\r\n+PONG\r\n" and not closed


def test_a_huge_declared_bulk_closes_the_connection_at_once(node: Node) -> None:
    written, closed = exchange(node, [b"*2\r\n$4\r\nECHO\r\n$4294967296\r\n"])
    assert written == b"-ERR Protocol error: invalid bulk length\r\n" and closed


def test_a_huge_argument_count_is_refused_before_hiredis_allocates(node: Node) -> None:
    written, closed = exchange(node, [b"PING\r\n*100000000\r\n"])
    assert written == b"+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n" and closed


def test_unknown_command_error_lists_the_arguments_like_redis(node: Node) -> None:
    written, _ = exchange(node, [encode(b"NOPE", b"a", b"b" * 200, b"c")])
    assert written.startswith(b"-ERR unknown command 'NOPE', with args beginning with: 'a' 'bbb")
    assert b"'c'" not in written  # cut at about 128 characters, as Redis does
