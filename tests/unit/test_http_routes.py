"""The HTTP route table, the error map and the sans-IO half of the HTTP server
(``RequestParser``, ``encode_response``): bytes in, requests out, no sockets."""

from __future__ import annotations

import pytest

from synap.api import error_status
from synap.api.http import ROUTE_TABLE, ROUTES, route_label
from synap.api.http_routes import Route, RouteTable
from synap.api.http_server import (
    HttpProtocolError,
    RequestParser,
    Response,
    encode_response,
)
from synap.commands import errors


def _noop(*_args: object) -> None:
    return None


# ------------------------------------------------------------------ route table


def test_exact_and_key_routes_match_with_the_key() -> None:
    route, key = ROUTE_TABLE.match("/kv/get/a/b c") or (None, None)
    assert route is not None and route.pattern == "/kv/get/{key}" and key == b"a/b c"
    route, key = ROUTE_TABLE.match("/kv/set") or (None, None)
    assert route is not None and route.pattern == "/kv/set" and key == b""
    route, key = ROUTE_TABLE.match("/kv/del/") or (None, None)
    assert route is not None and route.pattern == "/kv/del/{key}" and key == b""
    assert ROUTE_TABLE.match("/kv/nothing") is None
    assert ROUTE_TABLE.match("/kv/set/extra") is None
    assert ROUTE_TABLE.match("/kv/get") is None  # the prefix needs its slash


def test_allow_lists_head_wherever_get_is() -> None:
    by_pattern = {route.pattern: route for route in ROUTES}
    assert by_pattern["/kv/get/{key}"].allow == b"GET, HEAD"
    assert by_pattern["/kv/set"].allow == b"POST"
    assert by_pattern["/kv/del/{key}"].allow == b"DELETE"
    assert "HEAD" in by_pattern["/health"].methods
    for route in ROUTES:
        assert ("GET" in route.methods) == ("HEAD" in route.methods), route.pattern


def test_flags_open_and_admin() -> None:
    opened = {route.pattern for route in ROUTES if route.open}
    assert opened == {"/health", "/health/live", "/", "/ui"}
    admin = {route.pattern for route in ROUTES if route.admin}
    assert "/api/replication/promote" in admin and "/api/replication/pause" in admin
    assert "/kv/set" not in admin and "/api/v1/command" not in admin


def test_labels_never_carry_a_key() -> None:
    assert route_label("/kv/get/secret") == "/kv/get"
    assert route_label("/kv/del/secret") == "/kv/del"
    assert route_label("/metrics") == "/metrics"
    assert route_label("/whatever/else") == "other"
    assert len(set(ROUTE_TABLE.labels())) == len(ROUTES)


def test_duplicate_or_malformed_patterns_are_refused() -> None:
    get = frozenset({"GET"})
    with pytest.raises(ValueError):
        RouteTable([Route("/a", get, _noop), Route("/a", get, _noop)])
    with pytest.raises(ValueError):
        RouteTable([Route("/a/{key}", get, _noop), Route("/a/{key}", get, _noop)])
    with pytest.raises(ValueError):
        Route("no-slash", get, _noop)
    with pytest.raises(ValueError):
        Route("/a{key}", get, _noop)


def test_longest_prefix_wins() -> None:
    get = frozenset({"GET"})
    table = RouteTable([Route("/a/{key}", get, _noop), Route("/a/b/{key}", get, _noop)])
    route, key = table.match("/a/b/c") or (None, None)
    assert route is not None and route.pattern == "/a/b/{key}" and key == b"c"
    route, key = table.match("/a/x") or (None, None)
    assert route is not None and route.pattern == "/a/{key}" and key == b"x"


# ------------------------------------------------------------------ error map


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (errors.CommandError("ERR x"), (400, "BAD_REQUEST")),
        (errors.ReadOnlyError(None), (409, "READONLY")),
        (errors.LeadershipLostError("lost"), (409, "READONLY")),
        (errors.OutOfMemoryError(), (507, "OUT_OF_MEMORY")),
        (errors.NotFoundError("ERR no"), (404, "NOT_FOUND")),
        (errors.ForbiddenError("ERR no"), (403, "FORBIDDEN")),
        (errors.WritesPausedError(), (503, "TRYAGAIN")),
        (errors.NoReplicasError(), (503, "NOREPLICAS")),
        (errors.MasterDownError("down"), (503, "MASTERDOWN")),
        (errors.OffsetTimeoutError(5, 1, 10), (503, "OFFSET_NOT_REACHED")),
    ],
)
def test_error_map(exc: errors.CommandError, expected: tuple[int, str]) -> None:
    assert error_status.http_error(exc) == expected


def test_an_unlisted_subclass_takes_its_base_answer() -> None:
    class Special(errors.NotFoundError):
        pass

    assert error_status.http_error(Special("ERR gone")) == (404, "NOT_FOUND")
    assert not hasattr(errors.CommandError("ERR x"), "http_status")


# ------------------------------------------------------------------ request parser


def parse(data: bytes | list[bytes], max_body: int = 1000) -> RequestParser:
    parser = RequestParser(max_body)
    for piece in [data] if isinstance(data, bytes) else data:
        parser.feed(piece)
    return parser


def test_pipelined_requests_come_out_in_order() -> None:
    data = (
        b"".join(b"GET /kv/get/k%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5))
        + b"POST /kv/set HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}DELETE /kv/del/z HTTP/1.1\r\n\r\n"
    )
    parser = parse(data)
    got = [(r.method, r.path, r.body) for r in parser.ready]
    assert got == [("GET", f"/kv/get/k{i}", b"") for i in range(5)] + [
        ("POST", "/kv/set", b"{}"),
        ("DELETE", "/kv/del/z", b""),
    ]


def test_a_request_split_at_every_byte_parses_the_same() -> None:
    raw = (
        b"POST /kv/set?x=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    parser = parse([raw[i : i + 1] for i in range(len(raw))])
    (request,) = parser.ready
    assert (request.method, request.path, request.query, request.body) == (
        "POST",
        "/kv/set",
        b"x=1",
        b"abcde",
    )
    assert request.header(b"authorization") == b"Bearer k"
    assert request.keep_alive and not request.too_large


def test_percent_escapes_are_decoded_in_the_path() -> None:
    (request,) = parse(b"GET /kv/get/a%20b%2Fc HTTP/1.1\r\n\r\n").ready
    assert request.path == "/kv/get/a b/c"


def test_keep_alive_rules() -> None:
    (r11,) = parse(b"GET / HTTP/1.1\r\n\r\n").ready
    (r11c,) = parse(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").ready
    (r10,) = parse(b"GET / HTTP/1.0\r\n\r\n").ready
    (r10k,) = parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").ready
    assert (r11.keep_alive, r11c.keep_alive, r10.keep_alive, r10k.keep_alive) == (
        True,
        False,
        False,
        True,
    )
    assert r10k.http10 and not r11.http10


def test_a_declared_body_over_the_limit_ends_the_request_at_once() -> None:
    parser = parse(b'POST /kv/set HTTP/1.1\r\nContent-Length: 4294967296\r\n\r\n{"k', 1000)
    (request,) = parser.ready
    assert request.too_large and not request.keep_alive and request.declared_length == 2**32
    assert parser.done
    parser.feed(b"more bytes that are never parsed")
    assert len(parser.ready) == 1


def test_a_chunked_body_over_the_limit_is_counted() -> None:
    parser = parse(
        [b"POST /kv/set HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"]
        + [b"100\r\n" + b"x" * 256 + b"\r\n"] * 5,
        1000,
    )
    (request,) = parser.ready
    assert request.too_large and request.declared_length is None and parser.done


def test_expect_100_continue_is_flagged_for_an_allowed_body_only() -> None:
    parser = parse(b"POST /kv/set HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert parser.continue_wanted and not parser.ready
    parser.feed(b"hello")
    assert not parser.continue_wanted and parser.ready[0].body == b"hello"
    big = parse(b"POST /kv/set HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n")
    assert not big.continue_wanted and big.ready[0].too_large
    empty = parse(b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\nGET /x HTTP/1.1\r\n\r\n")
    assert not empty.continue_wanted and len(empty.ready) == 2


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"GET /\xff HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 431),
    ],
)
def test_malformed_requests_raise_a_protocol_error(raw: bytes, status: int) -> None:
    with pytest.raises(HttpProtocolError) as info:
        parse(raw)
    assert info.value.status == status and info.value.message


def test_an_unsupported_upgrade_is_served_as_plain_http() -> None:
    parser = parse(
        b"GET /health HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n"
        b"GET /kv/stats HTTP/1.1\r\n\r\n"
    )
    assert [r.path for r in parser.ready] == ["/health", "/kv/stats"]


# ------------------------------------------------------------------ responses


def test_encode_response_sets_length_date_and_connection() -> None:
    response = Response(200, b'{"a":1}', b"content-type: application/json\r\n")
    data = encode_response(response, head=False, keep_alive=True)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK" and body == b'{"a":1}'
    assert b"content-length: 7" in lines and b"content-type: application/json" in lines
    assert any(line.startswith(b"date: ") and line.endswith(b" GMT") for line in lines)
    assert not any(line.startswith(b"connection:") for line in lines)
    closing = encode_response(response, head=False, keep_alive=False)
    assert b"\r\nconnection: close\r\n" in closing
    old = encode_response(response, head=False, keep_alive=True, http10=True)
    assert b"\r\nconnection: keep-alive\r\n" in old


def test_head_keeps_the_length_but_sends_no_body() -> None:
    response = Response(200, b"x" * 42, b"")
    data = encode_response(response, head=True, keep_alive=True)
    assert data.endswith(b"\r\n\r\n") and b"content-length: 42\r\n" in data
    assert b"x" * 42 not in data
