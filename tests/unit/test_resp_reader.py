"""The sans-IO RESP request reader: requests cut into reads at exact points (formerly
sleep-separated sends in tests/integration/test_resp_protocol.py), inline commands,
boundary tracking, and protocol errors worded as Redis words them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synap.api.resp_framing import PROTO_MAX_BULK_LEN
from synap.api.resp_reader import RequestError, RequestReader
from tests.support.build import needs_pure
from tests.support.real_redis import encode


def reader() -> RequestReader:
    return RequestReader(PROTO_MAX_BULK_LEN, PROTO_MAX_BULK_LEN + 1024 * 1024)


def feed_all(chunks: list[bytes]) -> list[list[bytes]]:
    r = reader()
    out: list[list[bytes]] = []
    for chunk in chunks:
        out += r.feed(chunk)
    return out


def test_inline_line_split_across_reads() -> None:
    r = reader()
    assert r.feed(b"EC") == []
    assert r.feed(b"HO split-inline\r") == []
    assert r.feed(b"\n") == [[b"ECHO", b"split-inline"]]


def test_inline_and_multibulk_requests_interleaved_in_separate_reads() -> None:
    r = reader()
    for i in range(20):
        assert r.feed(encode("SET", f"mix{i}", i)) == [[b"SET", b"mix%d" % i, b"%d" % i]]
        assert r.feed(f"GET mix{i}\r\n".encode()) == [[b"GET", b"mix%d" % i]]


def test_inline_commands_right_after_multibulk_requests_in_one_read() -> None:
    data = encode("SET", "mixed", "1") + b"INCR mixed\r\n\r\n" + encode("GET", "mixed")
    assert reader().feed(data) == [
        [b"SET", b"mixed", b"1"],
        [b"INCR", b"mixed"],
        [b"GET", b"mixed"],
    ]


def test_request_cut_at_an_argument_boundary_is_not_taken_for_inline() -> None:
    # The second read starts with "$" while hiredis holds no unparsed bytes: it is the
    # next argument, not an inline command.
    r = reader()
    assert r.feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n") == []
    assert r.feed(b"$5\r\nsplit\r\n") == [[b"SET", b"k", b"split"]]
    assert r.feed(b"*2\r\n$3\r\nGET\r\n") == []
    assert r.feed(b"$1\r\nk\r\n") == [[b"GET", b"k"]]


PIPELINE_VALUE = b"va\r\n*1\r\n$4\r\nPING\r\nlue"  # protocol bytes inside a value
PIPELINE = (
    encode("SET", "bytewise", PIPELINE_VALUE)
    + encode("APPEND", "bytewise", b"!")
    + b"GET bytewise\r\n"
    + encode("GET", "bytewise")
)
PIPELINE_REQUESTS = [
    [b"SET", b"bytewise", PIPELINE_VALUE],
    [b"APPEND", b"bytewise", b"!"],
    [b"GET", b"bytewise"],
    [b"GET", b"bytewise"],
]


def test_pipeline_sent_one_byte_per_read() -> None:
    chunks = [PIPELINE[i : i + 1] for i in range(len(PIPELINE))]
    assert feed_all(chunks) == PIPELINE_REQUESTS


def test_pipeline_cut_at_every_point() -> None:
    for cut in range(len(PIPELINE) + 1):
        assert feed_all([PIPELINE[:cut], PIPELINE[cut:]]) == PIPELINE_REQUESTS, cut


def test_large_value_arriving_in_many_reads() -> None:
    value = bytes(range(256)) * 20_000  # 5 MB
    request = encode("SET", "large", value) + encode("STRLEN", "large")
    step = 256 * 1024
    r = reader()
    got: list[list[bytes]] = []
    for start in range(0, len(request), step):
        part = r.feed(request[start : start + step])
        if start + step < len(encode("SET", "large", value)):
            assert part == []
        got += part
    assert got == [[b"SET", b"large", value], [b"STRLEN", b"large"]]


def test_a_shorter_element_encoding_does_not_fake_a_boundary() -> None:
    # "+0123456789" is 4 bytes shorter than "$10\r\n0123456789", as long as the unfinished
    # "*2\r\n" after it: a check that added up canonical lengths would take this read for
    # one ending at a boundary.  It is followed, and refused as Redis refuses "+".
    with pytest.raises(RequestError) as caught:
        reader().feed(b"*1\r\n+0123456789\r\n*2\r\n")
    assert str(caught.value) == "ERR Protocol error: expected '$', got '+'"


def test_a_read_longer_than_its_requests_is_followed_to_its_boundary() -> None:
    r = reader()
    # "*0\r\n" (an empty request, skipped) ends the read: it does not end with its last
    # request's encoding, so it is followed, and found to end at a boundary.
    assert r.feed(encode("GET", "k") + b"*0\r\n") == [[b"GET", b"k"]]
    assert r.feed(b"PING\r\n") == [[b"PING"]]
    # ... or inside a request: the next read's "$" line is an argument, not inline.
    assert r.feed(encode("GET", "k") + b"*0\r\n*2\r\n") == [[b"GET", b"k"]]
    assert r.feed(b"$4\r\nECHO\r\n$1\r\nx\r\n") == [[b"ECHO", b"x"]]


args = st.lists(st.binary(max_size=300), min_size=1, max_size=12)


@given(st.lists(args, min_size=1, max_size=5))
def test_a_pipelined_read_gives_its_requests(requests: list[list[bytes]]) -> None:
    data = b"".join(encode(*request) for request in requests)
    assert reader().feed(data) == requests


@given(st.lists(args, min_size=1, max_size=5), st.data())
def test_requests_do_not_depend_on_how_the_stream_is_cut(
    requests: list[list[bytes]], data: st.DataObject
) -> None:
    stream = b"".join(encode(*request) for request in requests)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    bounds = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    assert feed_all(chunks) == requests


@pytest.mark.parametrize(
    ("chunks", "message", "before"),
    [
        ([b"*1\r\n$4294967296\r\n"], "ERR Protocol error: invalid bulk length", []),
        (
            [encode("PING") + b"*3\r\n$3\r\nSET\r\n:1\r\n"],
            "ERR Protocol error: expected '$', got ':'",
            [[b"PING"]],
        ),
        ([b"*abc\r\n"], "ERR Protocol error: invalid multibulk length", []),
        ([b"*99999999999\r\n"], "ERR Protocol error: invalid multibulk length", []),
        ([b"SET 'a'b\r\n"], "ERR Protocol error: unbalanced quotes in request", []),
        ([b"X" * (70 * 1024)], "ERR Protocol error: too big inline request", []),
        (
            [encode("PING"), b"*2\r\n$3\r\nGET\r\n", b"$999999999999\r\n"],
            "ERR Protocol error: invalid bulk length",
            [[b"PING"]],
        ),
    ],
)
def test_protocol_errors_carry_redis_wording_and_the_requests_before(
    chunks: list[bytes], message: str, before: list[list[bytes]]
) -> None:
    r = reader()
    got: list[list[bytes]] = []
    with pytest.raises(RequestError) as caught:
        for chunk in chunks:
            got += r.feed(chunk)
    assert str(caught.value) == message
    assert got + caught.value.requests == before


@needs_pure("synap.api.resp_reader")
@pytest.mark.parametrize(
    "request_",
    [
        [b"SET", b"key:1", b"value-1"],
        [b"GET", b"k" * 120],
        [b"MSET", *[b"k%d" % i for i in range(12)]],  # a two-digit count
        [b"SET", b"k", b"a+b(c)"],  # "+" and "(" inside a value
    ],
)
def test_a_canonical_one_request_read_is_not_followed(
    request_: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path: the read ends with its request's encoding; no RequestFraming."""
    import synap.api.resp_reader as module

    made: list[object] = []
    real = module.RequestFraming

    def counting(*args: int) -> object:
        made.append(args)
        return real(*args)

    monkeypatch.setattr(module, "RequestFraming", counting)
    r = reader()
    assert r.feed(encode(*request_)) == [request_]
    assert made == []
    assert r.feed(b"PING\r\n") == [[b"PING"]]
    assert r.feed(b"*2\r\n$0\r\n\r\n$3\r\nxyz\r") == []  # inside a request: followed
    assert len(made) == 1
