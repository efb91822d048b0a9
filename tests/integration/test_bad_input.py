"""Bad input on every front end: each gets a clear error, the server stays healthy, no
traceback reaches a client or the log, and nothing already stored is lost.

The module's node has small limits (keys 100 bytes, values 1000 bytes, HTTP bodies 4 KiB)
so that "over the limit" is cheap to reach.  After every test an autouse fixture checks
that the seeded keys are intact, that the node still answers, and that its log holds no
traceback."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.support.ports import HOST
from tests.support.server import NodeFactory, SynapProcess

MAX_KEY = 100
MAX_VALUE = 1000
MAX_BODY = 4096
SEEDED = {f"seed:{i}".encode(): f"value-{i}".encode() for i in range(100)}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapProcess]:
    factory = NodeFactory(tmp_path_factory.mktemp("bad-input"))
    config = {
        "server": {"max_body_bytes": MAX_BODY},
        "kv_store": {"max_key_bytes": MAX_KEY, "max_value_bytes": MAX_VALUE},
    }
    try:
        node = factory(name="bad", config=config)
        node.redis().mset(SEEDED)
        yield node
    finally:
        factory.cleanup()


@pytest.fixture(autouse=True)
def still_healthy(node: SynapProcess) -> Iterator[None]:
    yield
    client = node.redis()
    assert client.ping() is True
    assert client.mget(list(SEEDED)) == list(SEEDED.values()), "stored data was lost"
    assert node.http.get("/health").status_code == 200
    assert "Traceback" not in node.log_text(), node.log_tail()


class Wire:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=5)

    def exchange(self, data: bytes, wait: float = 1.0) -> tuple[bytes, bool]:
        """Send ``data``; return what came back within ``wait`` s and whether the server
        closed the connection."""
        self.sock.sendall(data)
        received = b""
        deadline = time.monotonic() + wait
        last = 0.0
        self.sock.settimeout(0.05)
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                if received and time.monotonic() - last > 0.2:
                    break  # quiet for a while after a reply, and still open
                continue
            except ConnectionResetError:
                return received, True
            if not chunk:
                return received, True
            received += chunk
            last = time.monotonic()
        return received, False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def wire(node: SynapProcess) -> Iterator[Wire]:
    w = Wire(node.resp_port)
    yield w
    w.close()


# ----------------------------------------------------------------- malformed RESP


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"*1\r\n$abc\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*1\r\n$-5\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*100000000\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n:5\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n"),
        (
            b"*2\r\n$4\r\nECHO\r\n*1\r\n$1\r\nx\r\n",
            b"-ERR Protocol error: expected '$', got '*'\r\n",
        ),
        (b"SET k 'unbalanced\r\n", b"-ERR Protocol error: unbalanced quotes in request\r\n"),
    ],
    ids=[
        "bulk-length-not-a-number",
        "negative-bulk-length",
        "multibulk-length-not-a-number",
        "hundred-million-arguments",
        "integer-instead-of-bulk",
        "nested-array",
        "unbalanced-quotes",
    ],
)
def test_malformed_resp_gets_a_protocol_error_and_the_connection_closes(
    wire: Wire, payload: bytes, error: bytes
) -> None:
    received, closed = wire.exchange(payload)
    assert received == error
    assert closed


def test_negative_multibulk_length_is_an_empty_request(wire: Wire) -> None:
    """As in Redis (``*-5`` is skipped, like ``*0`` and ``*-1``); the connection stays open."""
    received, closed = wire.exchange(b"*-5\r\n*1\r\n$4\r\nPING\r\n")
    assert received == b"+PONG\r\n"
    assert not closed


def test_garbage_bytes_are_an_unknown_inline_command(wire: Wire) -> None:
    received, closed = wire.exchange(b"\x00\x01\x02garbage \xff\xfe\r\n")
    assert received.startswith(b"-ERR unknown command '")
    assert not closed
    assert wire.exchange(b"PING\r\n") == (b"+PONG\r\n", False)


def test_replies_before_a_protocol_error_are_still_sent(wire: Wire) -> None:
    received, closed = wire.exchange(b"*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n")
    assert received == b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    assert closed


# ----------------------------------------------------------------- oversized requests


def test_a_declared_4gb_bulk_string_is_refused_at_once(wire: Wire) -> None:
    started = time.monotonic()
    received, closed = wire.exchange(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4294967296\r\n")
    assert received == b"-ERR Protocol error: invalid bulk length\r\n"
    assert closed and time.monotonic() - started < 1.0


def test_a_4gb_length_split_across_reads_is_refused(wire: Wire) -> None:
    assert wire.exchange(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$42949", wait=0.2) == (b"", False)
    received, closed = wire.exchange(b"67296\r\nsome bytes")
    assert received == b"-ERR Protocol error: invalid bulk length\r\n"
    assert closed


def test_an_endless_inline_line_is_refused(wire: Wire) -> None:
    received, closed = wire.exchange(b"SET k " + b"x" * (70 * 1024))
    assert received == b"-ERR Protocol error: too big inline request\r\n"
    assert closed


def test_keys_and_values_over_the_limits_get_an_error_and_the_connection_stays(
    node: SynapProcess,
) -> None:
    client = node.redis()
    with pytest.raises(redis.ResponseError, match="key is 101 bytes, over the 100-byte limit"):
        client.set(b"k" * (MAX_KEY + 1), b"v")
    with pytest.raises(redis.ResponseError, match="value is 1001 bytes, over the 1000-byte limit"):
        client.set(b"k", b"v" * (MAX_VALUE + 1))
    # Well over kv_store.max_value_bytes but under the protocol limit: read, then refused.
    with pytest.raises(redis.ResponseError, match="over the 1000-byte limit"):
        client.set(b"k", b"v" * (2 * 1024 * 1024))
    with pytest.raises(redis.ResponseError, match="over the 1000-byte limit"):
        client.mset({b"ok": b"v", b"big": b"v" * (MAX_VALUE + 1)})
    client.set(b"grow", b"v" * MAX_VALUE)
    with pytest.raises(redis.ResponseError, match="string exceeds maximum allowed size"):
        client.append(b"grow", b"!")
    assert client.exists(b"k", b"ok", b"big") == 0  # nothing half-written
    assert client.strlen(b"grow") == MAX_VALUE
    assert client.set(b"k", b"v") is True


# ----------------------------------------------------------------- commands


def test_unknown_commands_get_redis_error_and_connection_stays(wire: Wire) -> None:
    received, closed = wire.exchange(b"*2\r\n$7\r\nFOOBAR1\r\n$1\r\nx\r\n")
    assert received == b"-ERR unknown command 'FOOBAR1', with args beginning with: 'x' \r\n"
    assert not closed
    assert wire.exchange(b"PING\r\n") == (b"+PONG\r\n", False)


def test_incr_on_a_non_integer(node: SynapProcess) -> None:
    client = node.redis()
    client.set("text", "abc")
    with pytest.raises(redis.ResponseError, match="^value is not an integer or out of range$"):
        client.incr("text")
    assert client.get("text") == b"abc"
    body = node.http.post(
        "/api/v1/command", json={"command": "kv.incr", "payload": {"key": "text"}}
    ).json()
    assert body["success"] is False
    assert body["error"] == "ERR value is not an integer or out of range"


def test_wrong_argument_counts_and_types(node: SynapProcess) -> None:
    client = node.redis()
    for args in (("GET",), ("SET", "k"), ("EXPIRE", "k"), ("MGET",), ("DEL",)):
        with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
            client.execute_command(*args)
    with pytest.raises(redis.ResponseError, match="not an integer"):
        client.execute_command("EXPIRE", "k", "ten")
    with pytest.raises(redis.ResponseError, match="syntax error"):
        client.execute_command("SET", "k", "v", "EX")


# ----------------------------------------------------------------- HTTP


def assert_json_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body: dict[str, object] = response.json()
    assert body["code"] == code and isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize("path", ["/kv/set", "/api/v1/command"])
@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b'{"key": "a",}', b"[1, 2"])
def test_invalid_json_is_400(node: SynapProcess, path: str, body: bytes) -> None:
    response = node.http.post(path, content=body, headers={"content-type": "application/json"})
    assert_json_error(response, 400, "INVALID_JSON")


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        "a string",
        {"key": 5, "value": "v"},
        {"key": "", "value": "v"},
        {"key": "typed"},
        {"key": "typed", "value": "v", "ttl": "60"},
        {"key": "typed", "value": "v", "ttl": -1},
        {"key": "typed", "value": "v", "ttl": True},
        {"key": "typed", "value": "v", "ttl": 1.5},
    ],
)
def test_rest_set_with_wrong_json_types_is_400(node: SynapProcess, body: object) -> None:
    assert_json_error(node.http.post("/kv/set", json=body), 400, "BAD_REQUEST")
    assert node.http.get("/kv/get/typed").status_code == 404


@pytest.mark.parametrize(
    ("command", "payload", "error"),
    [
        ("kv.set", {"key": 1, "value": "v"}, "'key' must be a non-empty string"),
        ("kv.set", {"key": "k"}, "'value' is required"),
        ("kv.set", {"key": "k", "value": "v", "ttl": "10"}, "'ttl' must be a positive integer"),
        ("kv.get", {}, "'key' must be a non-empty string"),
        ("kv.mget", {"keys": "k"}, "'keys' must be a list of strings"),
        ("kv.mset", {"pairs": [1, 2]}, "each pair must be"),
        ("kv.incr", {"key": "n", "amount": 1.5}, "'amount' must be an integer"),
        ("kv.incr", {"key": "n", "amount": "010"}, "value is not an integer"),
        ("kv.scan", {"limit": -1}, "'limit' must be a positive integer"),
        ("kv.expire", {"key": "k"}, "'ttl' (seconds) is required"),
    ],
)
def test_command_endpoint_with_wrong_payload_types_fails_in_the_envelope(
    node: SynapProcess, command: str, payload: dict[str, object], error: str
) -> None:
    response = node.http.post(
        "/api/v1/command", json={"command": command, "request_id": "r-1", "payload": payload}
    )
    assert response.status_code == 400
    body = response.json()
    assert body == {"success": False, "request_id": "r-1", "payload": None,
                    "error": body["error"], "code": "BAD_REQUEST"}  # fmt: skip
    assert error in body["error"]


@pytest.mark.parametrize(
    "envelope",
    [
        {"command": "kv.nosuch", "payload": {}},
        {"command": 42, "payload": {}},
        {"payload": {}},
        {"command": "kv.get", "payload": [1]},
    ],
)
def test_unknown_or_malformed_command_envelope_is_success_false(
    node: SynapProcess, envelope: dict[str, object]
) -> None:
    response = node.http.post("/api/v1/command", json={"request_id": "x", **envelope})
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["request_id"] == "x" and body["error"]


def test_command_endpoint_body_that_is_not_an_object_is_400(node: SynapProcess) -> None:
    response = node.http.post("/api/v1/command", json=["kv.get"])
    assert response.status_code == 400
    assert response.json()["success"] is False


def test_body_over_max_body_bytes_is_413(node: SynapProcess) -> None:
    big = {"key": "big", "value": "x" * (MAX_BODY + 10)}
    assert_json_error(node.http.post("/kv/set", json=big), 413, "PAYLOAD_TOO_LARGE")
    envelope = {"command": "kv.set", "payload": big}
    assert_json_error(node.http.post("/api/v1/command", json=envelope), 413, "PAYLOAD_TOO_LARGE")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        yield b'{"key": "big", "value": "'
        for _ in range(10):
            yield b"x" * 1024
        yield b'"}'

    assert_json_error(node.http.post("/kv/set", content=chunks()), 413, "PAYLOAD_TOO_LARGE")
    assert node.http.get("/kv/get/big").status_code == 404


def test_a_declared_4gb_http_body_is_refused_at_once(node: SynapProcess) -> None:
    with socket.create_connection((HOST, node.port), timeout=5) as sock:
        sock.sendall(
            b"POST /kv/set HTTP/1.1\r\nHost: synap\r\nContent-Type: application/json\r\n"
            b'Content-Length: 4294967296\r\n\r\n{"key": '
        )
        reply = b""
        for _ in range(100):
            chunk = sock.recv(65536)
            reply += chunk
            if not chunk or reply.endswith(b"0\r\n\r\n"):  # end of the chunked body
                break
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b"PAYLOAD_TOO_LARGE" in reply


def test_keys_and_values_over_the_limits_over_http(node: SynapProcess) -> None:
    body = assert_json_error(
        node.http.post("/kv/set", json={"key": "k" * (MAX_KEY + 1), "value": "v"}),
        400,
        "BAD_REQUEST",
    )
    assert "100-byte limit" in str(body["error"])
    body = assert_json_error(
        node.http.post("/kv/set", json={"key": "k", "value": "v" * (MAX_VALUE + 1)}),
        400,
        "BAD_REQUEST",
    )
    assert "1000-byte limit" in str(body["error"])


def test_unknown_route_and_wrong_method(node: SynapProcess) -> None:
    assert_json_error(node.http.get("/kv/nothing"), 404, "NOT_FOUND")
    assert_json_error(node.http.get("/kv/set"), 405, "METHOD_NOT_ALLOWED")
    assert_json_error(node.http.post("/kv/get/k"), 405, "METHOD_NOT_ALLOWED")
    assert_json_error(node.http.post("/kv/set", content=b""), 400, "BAD_REQUEST")
