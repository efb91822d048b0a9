"""The fast path of ``GET /kv/get/{key}`` (a :class:`FastRoute` answered from the parser's
callbacks) against the general path (parser -> ``Request`` -> ``HttpApi.handle``).

Property: the same request stream, cut into the same reads, sent to two connections of
two identical nodes, one with the fast route and one without, gets byte-identical
answers (the ``date:`` line aside) and leaves the same counters, metrics, keyspace and
effect records. The stream mixes fast-eligible GETs (text, json kind, binary, expiring,
lazily expired, missing keys, the empty key) with requests that must take the general
path (HEAD, queries, escapes, ``Synap-Min-Offset``, HTTP/1.0, ``Connection: close``,
writes that run as tasks, wrong methods, malformed bytes), and reads that arrive while
an earlier request is still running. Plus: the fast path is really taken (one write per
read, no handler call), never with API keys configured, and never ahead of an earlier
request that is still waiting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synap.api.http import HttpApi
from synap.api.http_server import (
    FastRoute,
    HttpConnection,
    HttpServerState,
    RequestParser,
    Response,
)
from synap.config import build_config
from synap.node import Node
from synap.store.digest import dataset_digest
from synap.store.keyspace import now_ms
from tests.support.fuzz_node import FakeTransport, scaled

FUZZ = settings(
    max_examples=scaled(150), deadline=3000, suppress_health_check=[HealthCheck.too_slow]
)
DATE = re.compile(rb"date: [^\r]*\r\n")


class Transport(FakeTransport):
    """FakeTransport plus the half-close the HTTP connection uses, and a write count."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        super().write(data)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


def make_node(
    config: dict[str, Any] | None = None, expire_at: int | None = None
) -> tuple[Node, list[bytes]]:
    """A node (not started) with one key of each kind the GET answer distinguishes;
    ``expire_at`` (absolute ms, about 100 s ahead) for the two keys with a TTL."""
    if expire_at is None:
        expire_at = now_ms() + 100_000 + 250
    node = Node(build_config(config or {}))
    records: list[bytes] = []
    node.history.subscribe(lambda _offset, record: records.append(record))
    commands = node.commands
    commands.set(b"text", b'hello "world" \xc3\xa9')
    commands.set(b"json", b'{"a":[1,2.5,null]}', is_json=True)
    commands.set(b"bin", b"\xff\x00\xfe")
    commands.set(b"a:b/c", b"slashes")
    commands.set(b"ttl", b"soon", expire_at_ms=expire_at)
    commands.set(b"expired", b"gone", expire_at_ms=expire_at)
    node.keyspace.expires[b"expired"] = 1  # past: expired lazily by the first read
    node.flush_writes()
    return node, records


REQUESTS = [
    *(
        b"GET /kv/get/%s HTTP/1.1\r\nHost: x\r\n\r\n" % key
        for key in (b"text", b"json", b"bin", b"a:b/c", b"ttl", b"expired", b"missing")
    ),
    b"GET /kv/get/ HTTP/1.1\r\n\r\n",  # the empty key: 400
    b"GET /kv/get/text HTTP/1.1\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
    b"HEAD /kv/get/text HTTP/1.1\r\n\r\n",
    b"GET /kv/get/text?x=1 HTTP/1.1\r\n\r\n",  # unknown query parameter: 400
    b"GET /kv/get/te%78t HTTP/1.1\r\n\r\n",
    b"GET /kv/get/text HTTP/1.1\r\nSynap-Min-Offset: 1\r\n\r\n",  # may wait: a task
    b"GET /kv/get/text HTTP/1.1\r\nConnection: close\r\n\r\n",
    b"GET /kv/get/text HTTP/1.0\r\n\r\n",
    b"GET /kv/get/text HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET /kv/get/text HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    b'POST /kv/set HTTP/1.1\r\nContent-Length: 28\r\n\r\n{"key":"text","value":"new"}',
    b"DELETE /kv/del/json HTTP/1.1\r\n\r\n",
    b"POST /kv/get/text HTTP/1.1\r\nContent-Length: 0\r\n\r\n",  # 405 + Allow
    b"GET /kv/gets HTTP/1.1\r\n\r\n",  # 404
    b"GET /kv/get/\xc3\xa9 HTTP/1.1\r\n\r\n",  # not ASCII: 400
    b"GET /kv/get/text HTTP/1.1\r\nBad Header\r\n\r\n",  # malformed: 400, closed
]


async def settle(conn: HttpConnection) -> None:
    """Let the connection's running request (a task) finish; bounded."""
    for _ in range(200):
        if not conn.busy:
            return
        await asyncio.sleep(0)
    raise AssertionError("a request is still running")


def run_stream(
    node: Node, reads: list[tuple[bytes, bool]], fast: bool
) -> tuple[bytes, Transport, dict[str, int]]:
    """Feed ``reads`` (bytes, whether to let a running request finish after it) to one
    connection of ``node``; the answers (dates removed), the transport and call counts."""
    api = HttpApi(node)
    calls = {"handle": 0, "fast": 0}

    def handle(request: Any) -> Any:
        calls["handle"] += 1
        return api.handle(request)

    route = api.fast_route() if fast else None
    if route is not None:
        answer: Callable[[bytes], Response] = route.answer

        def counted(key: bytes) -> Response:
            calls["fast"] += 1
            return answer(key)

        route = FastRoute(route.prefix, counted, route.slow_headers)

    async def main() -> Transport:
        state = HttpServerState(handle, node.config.server.max_body_bytes, 10, 30.0, route)
        conn = HttpConnection(state)
        transport = Transport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        try:
            for data, wait in reads:
                if transport.closed:
                    break
                conn.data_received(data)
                if wait:
                    await settle(conn)
            await settle(conn)
        finally:
            conn.connection_lost(None)
        return transport

    transport = asyncio.run(main())
    return DATE.sub(b"", bytes(transport.out)), transport, calls


def node_state(node: Node, records: list[bytes]) -> dict[str, Any]:
    ks = node.keyspace
    return {
        "processed": node.commands_processed,
        "timings": {name: h.count for name, h in node.http_timings.latency.items()},
        "stats": dataclasses.astuple(node.commands.stats),
        "digest": dataset_digest(ks.data, ks.expires, ks.json_keys),
        "records": list(records),
    }


@FUZZ
@given(
    st.lists(st.sampled_from(REQUESTS), min_size=1, max_size=10),
    st.lists(st.integers(1, 400), max_size=6),
    st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_fast_and_general_paths_answer_alike(
    requests: list[bytes], cuts: list[int], waits: list[bool]
) -> None:
    stream = b"".join(requests)
    points = sorted({c % len(stream) for c in cuts} - {0})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    reads = [(piece, waits[i % len(waits)]) for i, piece in enumerate(pieces)]
    expire_at = now_ms() + 100_000 + 250
    general_node, general_records = make_node(expire_at=expire_at)
    fast_node, fast_records = make_node(expire_at=expire_at)
    general, general_transport, _ = run_stream(general_node, reads, fast=False)
    fast, fast_transport, calls = run_stream(fast_node, reads, fast=True)
    assert fast == general
    assert fast_transport.closed == general_transport.closed
    assert node_state(fast_node, fast_records) == node_state(general_node, general_records)
    if stream.startswith(REQUESTS[0]):  # a plain GET first: answered by the fast path
        assert calls["fast"] >= 1


def test_pipelined_gets_are_answered_from_the_parser_in_one_write() -> None:
    node, _ = make_node()
    keys = [b"text", b"json", b"bin", b"missing", b"expired", b"ttl"]
    stream = b"".join(b"GET /kv/get/%s HTTP/1.1\r\nHost: x\r\n\r\n" % k for k in keys)
    out, transport, calls = run_stream(node, [(stream, True)], fast=True)
    assert calls == {"handle": 0, "fast": len(keys)}
    assert transport.writes == 1 and not transport.closed
    assert out.count(b"HTTP/1.1 200 OK\r\n") == 4 and out.count(b"404 Not Found") == 2
    assert b'{"found":true,"value":{"a":[1,2.5,null]},"ttl":null}' in out
    assert b'"value":"/wD+","ttl":null,"encoding":"base64"}' in out
    assert b'"ttl":100}' in out
    assert node.commands_processed == len(keys)
    assert node.http_timings.latency["/kv/get"].count == len(keys)
    assert b"expired" not in node.keyspace.data  # lazily expired, as by the general path


def test_a_get_behind_a_waiting_request_waits_its_turn() -> None:
    """A read arriving while an earlier request runs (a task) is not answered early."""
    node, _ = make_node()
    waiting = b"GET /kv/get/text HTTP/1.1\r\nSynap-Min-Offset: 1\r\n\r\n"
    plain = b"GET /kv/get/bin HTTP/1.1\r\n\r\n"
    out, transport, calls = run_stream(node, [(waiting, False), (plain, True)], fast=True)
    assert calls == {"handle": 2, "fast": 0}
    first, second = out.split(b"HTTP/1.1 ")[1:]
    assert b"\\u00e9" in first or "é".encode() in first  # the text key's value
    assert b'"encoding":"base64"' in second
    # Once the connection is idle again, plain GETs take the fast path again.
    out, _, calls = run_stream(node, [(waiting, True), (plain, True)], fast=True)
    assert calls == {"handle": 1, "fast": 1}


def test_no_fast_route_with_api_keys() -> None:
    """With API keys every request is authenticated by HttpApi.handle: nothing a client
    sends reaches a view without one."""
    node, _ = make_node({"server": {"api_keys": ["secret"]}})
    api = HttpApi(node)
    assert api.fast_route() is None
    out, _, calls = run_stream(node, [(b"GET /kv/get/text HTTP/1.1\r\n\r\n", True)], fast=True)
    assert calls == {"handle": 1, "fast": 0}
    assert out.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert node.commands.stats.gets == 0


def parser_with(fast: FastRoute, data: bytes) -> RequestParser:
    parser = RequestParser(1000, fast=fast)
    parser.feed(data)
    return parser


def test_the_parser_answers_only_plain_gets_of_the_prefix_while_nothing_waits() -> None:
    seen: list[bytes] = []

    def answer(key: bytes) -> Response:
        seen.append(key)
        return Response(200, key, b"content-type: text/plain\r\n")

    fast = FastRoute(b"/kv/get/", answer, frozenset({b"synap-min-offset"}))
    parser = parser_with(
        fast,
        b"GET /kv/get/a HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /kv/get/b/c HTTP/1.1\r\n\r\n"
        b"GET /kv/get/q?x HTTP/1.1\r\n\r\n"  # a query: general path, and so is the rest
        b"GET /kv/get/d HTTP/1.1\r\n\r\n",
    )
    assert seen == [b"a", b"b/c"]
    assert [r.path for r in parser.ready] == ["/kv/get/q", "/kv/get/d"]
    assert [a.split(b"\r\n")[0] for a in parser.answers] == [b"HTTP/1.1 200 OK"] * 2
    assert parser.answers[1].endswith(b"\r\n\r\nb/c")
    for general in (
        b"HEAD /kv/get/a HTTP/1.1\r\n\r\n",
        b"GET /kv/get/%61 HTTP/1.1\r\n\r\n",
        b"GET /kv/get/a HTTP/1.1\r\nSynap-Min-Offset: 3\r\n\r\n",
        b"GET /kv/get/a HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /kv/get/a HTTP/1.0\r\n\r\n",
        b"GET /kv/get/a HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
        b"GET /kv/getter HTTP/1.1\r\n\r\n",
    ):
        seen.clear()
        parser = parser_with(fast, general)
        assert not seen and not parser.answers and len(parser.ready) == 1, general
    parser = RequestParser(1000, fast=fast)
    parser.hold = True  # an earlier request still runs
    parser.feed(b"GET /kv/get/a HTTP/1.1\r\n\r\n")
    assert not parser.answers and len(parser.ready) == 1
