"""The node's HTTP/1.1 server over real sockets: keep-alive (HTTP/1.1 and 1.0), pipelining,
chunked uploads, ``Expect: 100-continue``, HEAD, 405 with ``Allow``, 413, malformed
requests (400/431 and a closed connection, never a crash), the idle timeout and a
graceful stop. Clients: httpx, curl (subprocess), h11 and hand-written bytes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import h11
import httpx
import pytest

from synap.api.http_server import Request, Response, start_http_server
from tests.support.server import HOST, NodeFactory, SynapProcess

MAX_BODY = 4096


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapProcess]:
    factory = NodeFactory(tmp_path_factory.mktemp("http-server"))
    try:
        yield factory(name="httpsrv", config={"server": {"max_body_bytes": MAX_BODY}})
    finally:
        factory.cleanup()


@pytest.fixture(autouse=True)
def survives(node: SynapProcess) -> Iterator[None]:
    yield
    assert node.is_running(), node.log_tail()
    assert node.http.get("/health/live").status_code == 200
    assert "Traceback" not in node.log_text(), node.log_tail()


def connect(node: SynapProcess) -> socket.socket:
    sock = socket.create_connection((HOST, node.port), timeout=10)
    return sock


def recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything until the server closes (fails the test if it does not in time)."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def split_responses(data: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Parse back-to-back responses with content-length bodies (what the server sends)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, data
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
        size = int(headers.get(b"content-length", b"0"))
        out.append((status, headers, rest[:size]))
        data = rest[size:]
    return out


def read_until(sock: socket.socket, count: int) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    data = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            parsed = split_responses(data)
            if len(parsed) >= count and all(
                len(b) == int(h[b"content-length"]) for _, h, b in parsed
            ):
                return parsed
        except (AssertionError, ValueError, KeyError):
            pass
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return split_responses(data)


# ------------------------------------------------------------------ keep-alive


def test_httpx_reuses_one_connection(node: SynapProcess) -> None:
    node.http.post("/kv/set", json={"key": "ka", "value": "1"}).raise_for_status()
    ports = set()
    with httpx.Client(base_url=node.http_url, timeout=10) as client:
        for _ in range(20):
            response = client.get("/kv/get/ka")
            assert response.status_code == 200 and response.json()["value"] == "1"
            stream = response.extensions["network_stream"]
            ports.add(stream.get_extra_info("client_addr")[1])
    assert len(ports) == 1


def test_http11_keeps_the_connection_and_http10_closes_it(node: SynapProcess) -> None:
    with connect(node) as sock:
        for _ in range(3):
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            ((status, headers, body),) = read_until(sock, 1)
            assert status == 200 and json.loads(body)["status"] == "alive"
            assert b"connection" not in headers
    with connect(node) as sock:
        sock.sendall(b"GET /health/live HTTP/1.0\r\n\r\n")
        ((status, headers, _),) = split_responses(recv_all(sock))
        assert status == 200 and headers[b"connection"] == b"close"
    with connect(node) as sock:
        for _ in range(2):
            sock.sendall(b"GET /health/live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            ((status, headers, _),) = read_until(sock, 1)
            assert status == 200 and headers[b"connection"] == b"keep-alive"
    with connect(node) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nConnection: close\r\n\r\n")
        ((status, headers, _),) = split_responses(recv_all(sock))
        assert status == 200 and headers[b"connection"] == b"close"


def test_curl_reuses_the_connection_for_several_urls(node: SynapProcess) -> None:
    base = node.http_url
    result = subprocess.run(
        ["curl", "-sv", f"{base}/health/live", f"{base}/kv/stats", f"{base}/health/live"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "Re-using existing connection" in result.stderr, result.stderr
    assert result.stdout.count('"alive"') == 2


# ------------------------------------------------------------------ pipelining


def test_pipelined_requests_are_answered_in_order(node: SynapProcess) -> None:
    requests = []
    for i in range(10):
        body = json.dumps({"key": f"pipe{i}", "value": i}).encode()
        requests.append(
            b"POST /kv/set HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        requests.append(b"GET /kv/get/pipe%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
    requests.append(b"GET /kv/get/pipe-missing HTTP/1.1\r\n\r\n")
    # min_offset makes this one wait (a task): the answers after it must still follow it.
    requests.append(b"GET /kv/get/pipe3?min_offset=1 HTTP/1.1\r\n\r\n")
    requests.append(b"GET /kv/get/pipe9 HTTP/1.1\r\n\r\n")
    with connect(node) as sock:
        sock.sendall(b"".join(requests))
        answers = read_until(sock, len(requests))
    assert len(answers) == len(requests)
    for i in range(10):
        status, _, body = answers[2 * i]
        assert status == 200 and json.loads(body)["key"] == f"pipe{i}"
        status, _, body = answers[2 * i + 1]
        assert status == 200 and json.loads(body)["value"] == i
    assert answers[20][0] == 404
    assert answers[21][0] == 200 and json.loads(answers[21][2])["value"] == 3
    assert answers[22][0] == 200 and json.loads(answers[22][2])["value"] == 9


def test_a_plain_get_sent_while_an_earlier_request_waits_is_answered_after_it(
    node: SynapProcess,
) -> None:
    """Plain GETs are answered straight from the parser, but never ahead of an earlier
    request of the connection that is still waiting (here a min_offset that times out)."""
    assert node.http.post("/kv/set", json={"key": "turn", "value": "mine"}).status_code == 200
    with connect(node) as sock:
        sock.sendall(b"GET /kv/get/turn?min_offset=999999999&timeout_ms=300 HTTP/1.1\r\n\r\n")
        time.sleep(0.1)  # the first one is waiting now
        sock.sendall(b"GET /kv/get/turn HTTP/1.1\r\n\r\n" * 2)
        answers = read_until(sock, 3)
    assert [status for status, _, _ in answers] == [503, 200, 200]
    assert json.loads(answers[0][2])["min_offset"] == 999999999
    assert json.loads(answers[1][2]) == {"found": True, "value": "mine", "ttl": None}
    assert answers[1][2] == answers[2][2]


# ------------------------------------------------------------------ bodies


def test_chunked_upload_in_pieces(node: SynapProcess) -> None:
    body = json.dumps({"key": "chunked", "value": "c" * 300}).encode()
    with connect(node) as sock:
        sock.sendall(
            b"POST /kv/set HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/json\r\n\r\n"
        )
        for start in range(0, len(body), 50):
            piece = body[start : start + 50]
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            time.sleep(0.01)
        sock.sendall(b"0\r\n\r\n")
        ((status, _, reply),) = read_until(sock, 1)
    assert status == 200 and json.loads(reply)["key"] == "chunked"
    assert node.http.get("/kv/get/chunked").json()["value"] == "c" * 300


def test_chunked_upload_with_httpx_and_curl(node: SynapProcess) -> None:
    def pieces() -> Iterator[bytes]:
        yield b'{"key": "hx-chunked", '
        yield b'"value": "from httpx"}'

    response = node.http.post("/kv/set", content=pieces())
    assert response.status_code == 200, response.text
    assert node.http.get("/kv/get/hx-chunked").json()["value"] == "from httpx"
    result = subprocess.run(
        ["curl", "-s", "-H", "Transfer-Encoding: chunked", "-H", "Content-Type: application/json",
         "--data-binary", '{"key": "curl-chunked", "value": "from curl"}',
         f"{node.http_url}/kv/set"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert json.loads(result.stdout)["key"] == "curl-chunked"
    assert node.http.get("/kv/get/curl-chunked").json()["value"] == "from curl"


def test_expect_100_continue(node: SynapProcess) -> None:
    body = json.dumps({"key": "expect", "value": "ok"}).encode()
    with connect(node) as sock:
        sock.sendall(
            b"POST /kv/set HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        sock.settimeout(5)
        interim = sock.recv(1024)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        ((status, _, reply),) = read_until(sock, 1)
    assert status == 200 and json.loads(reply)["key"] == "expect"
    # curl waits for the 100 before it sends the body
    result = subprocess.run(
        ["curl", "-sv", "-H", "Expect: 100-continue", "-H", "Content-Type: application/json",
         "--data-binary", '{"key": "curl-expect", "value": "v"}', f"{node.http_url}/kv/set"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "HTTP/1.1 100 Continue" in result.stderr, result.stderr
    assert json.loads(result.stdout)["key"] == "curl-expect"


def test_expect_100_continue_over_the_limit_gets_413_without_the_100(node: SynapProcess) -> None:
    with connect(node) as sock:
        sock.sendall(
            b"POST /kv/set HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1)
        )
        data = recv_all(sock)
    ((status, headers, body),) = split_responses(data)
    assert status == 413 and headers[b"connection"] == b"close"
    assert json.loads(body)["code"] == "PAYLOAD_TOO_LARGE"


def test_oversized_bodies_get_413(node: SynapProcess) -> None:
    big = {"key": "big", "value": "x" * (MAX_BODY + 10)}
    response = node.http.post("/kv/set", json=big)
    assert response.status_code == 413 and response.json()["code"] == "PAYLOAD_TOO_LARGE"
    # counted while reading: chunked, no declared length
    with connect(node) as sock:
        sock.sendall(b"POST /kv/set HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(MAX_BODY // 1024 + 2):
            sock.sendall(b"400\r\n" + b"x" * 1024 + b"\r\n")
        data = recv_all(sock)
    ((status, _, body),) = split_responses(data)
    assert status == 413 and json.loads(body)["code"] == "PAYLOAD_TOO_LARGE"
    assert node.http.get("/kv/get/big").status_code == 404


# ------------------------------------------------------------------ HEAD, 405, 404


def test_head_sends_the_headers_of_get_without_a_body(node: SynapProcess) -> None:
    node.http.post("/kv/set", json={"key": "head", "value": "h" * 50}).raise_for_status()
    get = node.http.get("/kv/get/head")
    head = node.http.head("/kv/get/head")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == "application/json"
    with connect(node) as sock:  # nothing stray after the headers: the next answer parses
        sock.sendall(b"HEAD /kv/get/head HTTP/1.1\r\n\r\nGET /health/live HTTP/1.1\r\n\r\n")
        sock.settimeout(5)
        data = b""
        while data.count(b"\r\n\r\n") < 2 or not data.endswith(b"}"):
            data += sock.recv(65536)
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 ") and rest.startswith(b"HTTP/1.1 200 ")
    curl = subprocess.run(
        ["curl", "-sI", f"{node.http_url}/kv/get/head"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert curl.stdout.startswith("HTTP/1.1 200") and "content-length:" in curl.stdout.lower()


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/kv/set", "POST"),
        ("POST", "/kv/get/k", "GET, HEAD"),
        ("PUT", "/kv/del/k", "DELETE"),
        ("DELETE", "/api/v1/command", "POST"),
        ("POST", "/health", "GET, HEAD"),
        ("PATCH", "/metrics", "GET, HEAD"),
        ("GET", "/api/replication/promote", "POST"),
    ],
)
def test_wrong_method_is_405_with_allow(
    node: SynapProcess, method: str, path: str, allow: str
) -> None:
    response = node.http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    body = response.json()
    if path == "/api/v1/command":
        assert body["success"] is False and body["code"] == "METHOD_NOT_ALLOWED"
    else:
        assert body["code"] == "METHOD_NOT_ALLOWED"


def test_unknown_path_is_404_without_allow(node: SynapProcess) -> None:
    response = node.http.get("/no/such/route")
    assert response.status_code == 404 and "allow" not in response.headers
    assert response.json()["code"] == "NOT_FOUND"


# ------------------------------------------------------------------ malformed


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # a TLS hello
        (b"GET / HTTP/1.1\r\nNo colon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /kv/set HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 5\r\n\r\n", 400),
        (b"POST /kv/set HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nnot-hex\r\n", 400),
        (b"GET /\xff\xfe HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", 431),
    ],
)
def test_malformed_requests_get_400_and_the_connection_closes(
    node: SynapProcess, raw: bytes, status: int
) -> None:
    with connect(node) as sock:
        try:
            sock.sendall(raw)
        except OSError:
            pass
        data = recv_all(sock)
    assert data.startswith(b"HTTP/1.1 %d " % status), data[:200]
    ((_, headers, body),) = split_responses(data)
    assert headers[b"connection"] == b"close"
    assert json.loads(body)["error"]


def test_h11_built_malformed_header_after_good_requests(node: SynapProcess) -> None:
    client = h11.Connection(h11.CLIENT)
    good = client.send(h11.Request(method="GET", target="/health/live", headers=[("Host", "x")]))
    good += client.send(h11.EndOfMessage())
    assert good is not None
    with connect(node) as sock:
        sock.sendall(good + good + b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n")
        data = recv_all(sock)
    answers = split_responses(data)
    assert [status for status, _, _ in answers] == [200, 200, 400]


# ------------------------------------------------------------------ idle timeout, stop


@contextlib.contextmanager
def module_server(**limits: Any) -> Iterator[int]:
    """The server module alone in a thread, echoing the path; yields its port."""

    def handler(request: Request) -> Response:
        return Response(200, request.path.encode(), b"content-type: text/plain\r\n")

    ready = threading.Event()
    stop = threading.Event()
    port: list[int] = []

    async def serve() -> None:
        sock = socket.socket()
        sock.bind((HOST, 0))
        sock.listen()
        port.append(sock.getsockname()[1])
        server = await start_http_server(handler, sock, ssl_context=None, **limits)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await server.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield port[0]
    finally:
        stop.set()
        thread.join(10)


def test_idle_connections_are_closed_after_the_timeout() -> None:
    """A short idle timeout (the node's is 30 s)."""
    with module_server(max_body=100, max_clients=10, idle_timeout=0.5) as port:
        with socket.create_connection((HOST, port), timeout=10) as idle:
            started = time.monotonic()
            assert recv_all(idle, timeout=10) == b""  # closed, with nothing sent
            assert 0.3 < time.monotonic() - started < 5
        with socket.create_connection((HOST, port), timeout=10) as used:
            used.sendall(b"GET /x HTTP/1.1\r\n\r\n")
            started = time.monotonic()
            ((status, _, body),) = split_responses(recv_all(used, timeout=10))
            assert (status, body) == (200, b"/x")
            assert 0.3 < time.monotonic() - started < 5


def test_connections_over_max_clients_get_503_and_are_closed() -> None:
    with module_server(max_body=100, max_clients=2) as port:
        first = socket.create_connection((HOST, port), timeout=10)
        second = socket.create_connection((HOST, port), timeout=10)
        for sock in (first, second):
            sock.sendall(b"GET /ok HTTP/1.1\r\n\r\n")
            assert read_until(sock, 1)[0][0] == 200
        with socket.create_connection((HOST, port), timeout=10) as third:
            third.sendall(b"GET /no HTTP/1.1\r\n\r\n")
            ((status, headers, body),) = split_responses(recv_all(third))
            assert status == 503 and headers[b"connection"] == b"close"
            assert json.loads(body)["code"] == "TOO_MANY_CLIENTS"
        first.close()
        time.sleep(0.2)
        with socket.create_connection((HOST, port), timeout=10) as fourth:
            fourth.sendall(b"GET /again HTTP/1.1\r\n\r\n")
            assert read_until(fourth, 1)[0][:3:2] == (200, b"/again")
        second.close()


def test_sigterm_with_open_keep_alive_connections_stops_promptly(
    node_factory: NodeFactory,
) -> None:
    other = node_factory(name="stopper")
    socks = [socket.create_connection((HOST, other.port), timeout=10) for _ in range(3)]
    for sock in socks[:2]:
        sock.sendall(b"GET /health/live HTTP/1.1\r\n\r\n")
        assert read_until(sock, 1)[0][0] == 200
    socks[2].sendall(b"GET /health/li")  # half a request
    started = time.monotonic()
    assert other.terminate() == 0
    assert time.monotonic() - started < 10
    for sock in socks:
        assert recv_all(sock) == b""
        sock.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_http10_and_head(node: SynapProcess) -> None:
    result = subprocess.run(
        ["curl", "-s", "-i", "--http1.0", f"{node.http_url}/health/live"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert result.stdout.startswith("HTTP/1.1 200 OK")
    assert "connection: close" in result.stdout.lower()
