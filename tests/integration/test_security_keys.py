"""API keys (``server.api_keys``) and the admin key (``server.admin_key``) on HTTP and RESP.

The promises (docs/SECURITY.md):

* with API keys, every HTTP route but ``/health`` needs ``Authorization: Bearer <key>``
  (401 otherwise); ``synap-sdk`` with ``SynapConfig(url, auth_token=key)`` works;
* with API keys, RESP needs ``AUTH <key>`` first (``NOAUTH``), a bad key gets
  ``WRONGPASS``; redis-py's ``password=`` works;
* with an admin key, promote / replicaof / failover / pause / resume / flush need it over
  HTTP (403 otherwise) and the same commands need ``AUTH <admin key>`` over RESP
  (``NOPERM`` otherwise); the admin key also opens everything an API key opens.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from synap_sdk import SynapClient, SynapConfig
from synap_sdk.exceptions import SynapException

from tests.support.server import HOST, NodeFactory, SynapProcess

KEY = "app-key-4b1f0c"
OTHER_KEY = "second-app-key-9d2e"
ADMIN = "admin-key-77ac31"


def _config(api_keys: list[str], admin_key: str | None) -> dict[str, Any]:
    return {
        "server": {"api_keys": api_keys, "admin_key": admin_key},
        "kv_store": {"allow_flush_commands": True},
    }


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapProcess]:
    """One node for the tests that leave its role alone (starting one costs ~2 s)."""
    factory = NodeFactory(tmp_path_factory.mktemp("keys"))
    try:
        yield factory(name="keys", config=_config([KEY, OTHER_KEY], ADMIN))
    finally:
        factory.cleanup()


@pytest.fixture
def fresh_node(node_factory: NodeFactory) -> SynapProcess:
    """For tests that promote, repoint or pause the node."""
    return node_factory(config=_config([KEY, OTHER_KEY], ADMIN))


def _get(node: SynapProcess, path: str, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.get(node.http_url + path, headers=headers, timeout=10)


def _post(node: SynapProcess, path: str, key: str | None, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.post(node.http_url + path, headers=headers, json=body, timeout=10)


# --------------------------------------------------------------------- HTTP


def test_health_stays_open_without_a_key(node: SynapProcess) -> None:
    response = _get(node, "/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


@pytest.mark.parametrize(
    "path", ["/kv/stats", "/kv/get/k", "/api/replication/stats", "/metrics", "/api/v1/info"]
)
def test_http_routes_need_an_api_key(node: SynapProcess, path: str) -> None:
    for key in (None, "wrong-key"):
        response = _get(node, path, key)
        assert response.status_code == 401, (key, response.text)
        assert response.json()["code"] == "UNAUTHORIZED"
    for key in (KEY, OTHER_KEY, ADMIN):
        assert _get(node, path, key).status_code in (200, 404), key  # 404: key k is absent


def test_plain_pipelined_gets_need_an_api_key_too(node: SynapProcess) -> None:
    """Bare keep-alive GETs (no Connection header, as wrk sends them: the shape the
    server's fast path answers on an open node) are authenticated like any request."""
    assert _post(node, "/kv/set", KEY, {"key": "pk", "value": "secret-value"}).status_code == 200
    request = b"GET /kv/get/pk HTTP/1.1\r\nHost: x\r\n\r\n"
    authorized = b"GET /kv/get/pk HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n" % KEY.encode()
    with socket.create_connection((HOST, node.port), timeout=10) as sock:
        sock.sendall(request * 3 + authorized)
        data = b""
        while data.count(b"HTTP/1.1 ") < 4 or not data.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    answers = data.split(b"HTTP/1.1 ")[1:]
    assert [a[:3] for a in answers] == [b"401", b"401", b"401", b"200"]
    assert b"secret-value" not in b"".join(answers[:3]) and b"secret-value" in answers[3]


def test_http_accepts_the_key_as_a_basic_auth_password(node: SynapProcess) -> None:
    token = base64.b64encode(f"anyone:{KEY}".encode()).decode()
    response = httpx.get(
        node.http_url + "/kv/stats", headers={"Authorization": f"Basic {token}"}, timeout=10
    )
    assert response.status_code == 200


def test_sdk_with_auth_token_works_and_without_it_is_refused(node: SynapProcess) -> None:
    async def scenario() -> Any:
        async with SynapClient(SynapConfig(node.http_url, timeout=10, auth_token=KEY)) as c:
            await c.kv.set("sdk-key", "sdk-value")
            value = await c.kv.get("sdk-key")
        async with SynapClient(SynapConfig(node.http_url, timeout=10)) as anonymous:
            with pytest.raises(SynapException):
                await anonymous.kv.get("sdk-key")
        async with SynapClient(SynapConfig(node.http_url, timeout=10, auth_token="bad")) as bad:
            with pytest.raises(SynapException):
                await bad.kv.get("sdk-key")
        return value

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == "sdk-value"


ADMIN_ROUTES: list[tuple[str, Any]] = [
    ("/api/replication/promote", None),
    ("/api/replication/replicaof", {"master_address": "127.0.0.1:1"}),
    ("/api/replication/failover", {}),
    ("/api/replication/pause", {"seconds": 1}),
    ("/api/replication/resume", None),
    ("/api/v1/command", {"command": "kv.flushall", "payload": {}}),
]


@pytest.mark.parametrize(("path", "body"), ADMIN_ROUTES, ids=[p for p, _ in ADMIN_ROUTES])
def test_admin_routes_need_the_admin_key(fresh_node: SynapProcess, path: str, body: Any) -> None:
    response = _post(fresh_node, path, KEY, body)
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "FORBIDDEN"
    assert "server.admin_key" in response.json()["error"]
    assert _post(fresh_node, path, None, body).status_code == 401
    assert _post(fresh_node, path, ADMIN, body).status_code not in (401, 403)


def test_admin_key_flushes_over_http_and_an_api_key_cannot(node: SynapProcess) -> None:
    node.redis(password=KEY).set(b"flush-me", b"v")
    flush = {"command": "kv.flushall", "payload": {}}
    assert _post(node, "/api/v1/command", KEY, flush).status_code == 403
    assert node.redis(password=KEY).exists(b"flush-me") == 1
    assert _post(node, "/api/v1/command", ADMIN, flush).status_code == 200
    assert node.redis(password=KEY).dbsize() == 0


# --------------------------------------------------------------------- RESP


# redis-py turns NOAUTH and WRONGPASS replies into AuthenticationError without the prefix.
NOAUTH = "Authentication required"
WRONGPASS = "invalid username-password pair"


def _raw(node: SynapProcess, *commands: bytes) -> list[bytes]:
    """Send inline commands on one connection; return each reply line as sent."""
    replies = []
    with socket.create_connection(("127.0.0.1", node.resp_port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for command in commands:
            sock.sendall(command + b"\r\n")
            replies.append(reader.readline().rstrip(b"\r\n"))
    return replies


def test_resp_needs_auth_before_anything_else(node: SynapProcess) -> None:
    replies = _raw(
        node, b"GET k", b"PING", b"AUTH wrong-key", b"GET k", b"AUTH " + KEY.encode(), b"GET unset"
    )
    assert replies == [
        b"-NOAUTH Authentication required.",
        b"-NOAUTH Authentication required.",
        b"-WRONGPASS invalid username-password pair or user is disabled.",
        b"-NOAUTH Authentication required.",  # a failed AUTH leaves the connection locked
        b"+OK",
        b"$-1",
    ]
    with pytest.raises(redis.AuthenticationError, match="HELLO must be called"):
        node.redis(protocol=3).ping()


def test_redis_py_password_works_and_a_bad_one_is_wrongpass(node: SynapProcess) -> None:
    assert node.redis(password=KEY).ping() is True
    assert node.redis(username="default", password=OTHER_KEY).ping() is True
    with pytest.raises(redis.AuthenticationError, match=WRONGPASS):
        node.redis(password="wrong-key").ping()


def test_resp3_hello_auth_works(node: SynapProcess) -> None:
    client = node.redis(protocol=3, password=KEY)
    assert client.ping() is True


@pytest.mark.parametrize(
    "command",
    [
        ("REPLICAOF", "127.0.0.1", "1"),
        ("SLAVEOF", "NO", "ONE"),
        ("FLUSHALL",),
        ("FLUSHDB",),
        ("FAILOVER",),
        ("CLIENT", "PAUSE", "1000"),
        ("CLIENT", "UNPAUSE"),
    ],
    ids=lambda c: " ".join(c),
)
def test_resp_admin_commands_need_the_admin_key(node: SynapProcess, command: tuple[str]) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError, match="server.admin_key"):
        node.redis(password=KEY).execute_command(*command)


def test_resp_admin_key_runs_admin_commands(node: SynapProcess) -> None:
    user = node.redis(password=KEY)
    user.set(b"k", b"v")
    admin = node.redis(password=ADMIN)
    assert admin.get(b"k") == b"v"  # the admin key opens data commands too
    assert admin.flushall() is True
    assert user.dbsize() == 0


def test_admin_key_alone_leaves_data_open_but_guards_admin(node_factory: NodeFactory) -> None:
    node = node_factory(config=_config([], ADMIN))
    assert _get(node, "/kv/stats").status_code == 200
    assert _post(node, "/api/replication/resume", None).status_code == 403
    assert _post(node, "/api/replication/resume", ADMIN).status_code == 200
    client = node.redis()
    client.set(b"k", b"v")
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.flushall()
    with pytest.raises(redis.AuthenticationError, match=WRONGPASS):
        client.execute_command("AUTH", "not-the-admin-key")
    client.execute_command("AUTH", ADMIN)
    assert client.flushall() is True


def test_empty_keys_are_refused_at_startup(node_factory: NodeFactory) -> None:
    node = node_factory(config=_config([KEY, ""], None), wait=False)
    assert node.wait_exit() == 2
    assert "server.api_keys: a key must not be empty" in node.log_text()
