"""The published ``synap-sdk`` package, unchanged, against a node: its default HTTP
transport (``POST /api/v1/command``) and its ``resp3://`` transport (the Redis port,
``HELLO 3``; ``kv.stats`` travels as ``KVSTATS``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from synap_sdk import SynapClient, SynapConfig
from synap_sdk.exceptions import SynapException

from tests.support.fixtures import module_node
from tests.support.server import NodeFactory, SynapProcess

node = module_node("sdk")


@pytest.fixture(params=["http", "resp3"])
def url(request: pytest.FixtureRequest, node: SynapProcess) -> str:
    if request.param == "http":
        return node.http_url
    return f"resp3://127.0.0.1:{node.resp_port}"


@pytest.fixture
def k(request: pytest.FixtureRequest) -> str:
    return request.node.name.replace("[", "(").replace("]", ")") + ":"


def run(url: str, scenario: Callable[[SynapClient], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with SynapClient(SynapConfig(url, timeout=10)) as client:
            return await asyncio.wait_for(scenario(client), timeout=30)

    return asyncio.run(main())


def test_sdk_set_get_delete_exists(url: str, k: str) -> None:
    async def scenario(c: SynapClient) -> None:
        await c.kv.set(k + "s", "hello")
        await c.kv.set(k + "obj", {"name": "synap", "tags": ["a", "b"]})
        await c.kv.set(k + "num", 3.5)
        assert await c.kv.get(k + "s") == "hello"
        assert await c.kv.get(k + "obj") == {"name": "synap", "tags": ["a", "b"]}
        assert await c.kv.get(k + "num") == 3.5
        assert await c.kv.get(k + "missing") is None
        assert await c.kv.exists(k + "s") is True
        assert await c.kv.exists(k + "missing") is False
        await c.kv.delete(k + "s")
        assert await c.kv.exists(k + "s") is False
        assert await c.kv.get(k + "s") is None

    run(url, scenario)


def test_sdk_incr_decr(url: str, k: str) -> None:
    async def scenario(c: SynapClient) -> None:
        assert await c.kv.incr(k + "n") == 1
        assert await c.kv.incr(k + "n", 10) == 11
        assert await c.kv.decr(k + "n") == 10
        assert await c.kv.decr(k + "n", 4) == 6
        await c.kv.set(k + "text", "abc")
        with pytest.raises(SynapException, match="not an integer"):
            await c.kv.incr(k + "text")

    run(url, scenario)


def test_sdk_ttl_and_expire(url: str, k: str) -> None:
    async def scenario(c: SynapClient) -> None:
        await c.kv.set(k + "t", "v", ttl=100)
        ttl = await c.send_command("kv.ttl", {"key": k + "t"})
        assert 99 <= ttl["ttl"] <= 100
        await c.kv.set(k + "e", "v")
        # The HTTP envelope reads "ttl", the resp3 mapping reads "seconds": send both.
        expired = await c.send_command("kv.expire", {"key": k + "e", "ttl": 50, "seconds": 50})
        assert expired.get("result", expired.get("success")) is True
        ttl = await c.send_command("kv.ttl", {"key": k + "e"})
        assert 49 <= ttl["ttl"] <= 50
        await c.kv.set(k + "short", "v", ttl=1)
        for _ in range(50):
            if not await c.kv.exists(k + "short"):
                break
            await asyncio.sleep(0.1)
        assert await c.kv.get(k + "short") is None

    run(url, scenario)


def test_sdk_keys_and_scan(url: str, k: str) -> None:
    async def scenario(c: SynapClient) -> None:
        for i in range(5):
            await c.kv.set(f"{k}item:{i}", i)
        await c.kv.set(k + "other", "x")
        keys = await c.send_command("kv.keys", {"pattern": k + "item:*"})
        assert sorted(keys["keys"]) == [f"{k}item:{i}" for i in range(5)]
        assert sorted(await c.kv.scan(k + "item:")) == [f"{k}item:{i}" for i in range(5)]
        assert len(await c.kv.scan(k, limit=2)) == 2
        assert sorted(await c.kv.scan(k)) == sorted(
            [f"{k}item:{i}" for i in range(5)] + [k + "other"]
        )

    run(url, scenario)


def test_sdk_stats(url: str, k: str) -> None:
    async def scenario(c: SynapClient) -> dict[str, Any]:
        await c.kv.set(k + "s", "v")
        await c.kv.get(k + "s")
        return await c.kv.stats()

    stats = run(url, scenario)
    assert {"total_keys", "total_memory_bytes", "operations", "hit_rate"} <= set(stats)
    assert stats["total_keys"] >= 1
    assert stats["operations"]["sets"] >= 1 and stats["operations"]["gets"] >= 1
    assert isinstance(stats["hit_rate"], float)


def test_sdk_health(node: SynapProcess) -> None:
    async def scenario(c: SynapClient) -> dict[str, Any]:
        return await c.health()

    assert run(node.http_url, scenario)["status"] == "healthy"


def test_values_written_by_one_transport_read_by_the_other(node: SynapProcess, k: str) -> None:
    http, resp3 = node.http_url, f"resp3://127.0.0.1:{node.resp_port}"

    async def write(c: SynapClient) -> None:
        await c.kv.set(k + "doc", {"list": [1, 2, 3], "ok": True})
        await c.kv.set(k + "str", "plain")

    async def read(c: SynapClient) -> tuple[Any, Any]:
        return await c.kv.get(k + "doc"), await c.kv.get(k + "str")

    run(http, write)
    assert run(resp3, read) == ({"list": [1, 2, 3], "ok": True}, "plain")
    run(resp3, write)
    assert run(http, read) == ({"list": [1, 2, 3], "ok": True}, "plain")


SDK_VALUES: list[Any] = [
    123456789012345678901234567890,
    {"n": -123456789012345678901234567890, "f": 0.1, "list": [1, "a", None, True]},
    2**64,
    "hello",
    3.5,
]


def test_sdk_values_round_trip_exactly_over_http(node: SynapProcess, k: str) -> None:
    """synap-sdk JSON-encodes non-strings itself; whatever it wrote comes back as written
    (an integer beyond 64 bits too), and values written over REST reach it exactly."""
    for i, value in enumerate(SDK_VALUES):
        response = node.http.post("/kv/set", json={"key": f"{k}rest:{i}", "value": value})
        assert response.status_code == 200, response.text

    async def scenario(c: SynapClient) -> tuple[list[Any], list[Any]]:
        for i, value in enumerate(SDK_VALUES):
            await c.kv.set(f"{k}sdk:{i}", value)
        own = [await c.kv.get(f"{k}sdk:{i}") for i in range(len(SDK_VALUES))]
        rest = [await c.kv.get(f"{k}rest:{i}") for i in range(len(SDK_VALUES))]
        return own, rest

    own, rest = run(node.http_url, scenario)
    expected = [repr(v) for v in SDK_VALUES]
    assert [repr(v) for v in own] == expected  # repr: 1.2e29 is not the integer
    assert [repr(v) for v in rest] == expected


# ----------------------------------------------------------------- errors over HTTP


def test_sdk_http_errors_carry_the_servers_message_over_proper_statuses(
    node_factory: NodeFactory,
) -> None:
    """The command endpoint answers failures with their HTTP status (409 READONLY, 404, 400)
    and the SDK's envelope, so the SDK still raises the server's message, not a transport
    error."""
    master = node_factory.master()
    replica = node_factory.replica(master)
    for path_node, body, status in (
        (replica, {"command": "kv.set", "payload": {"key": "a", "value": "x"}}, 409),
        (master, {"command": "kv.ttl", "payload": {"key": "missing"}}, 404),
        (master, {"command": "kv.nosuch", "payload": {}}, 400),
    ):
        response = path_node.http.post("/api/v1/command", json={"request_id": "r", **body})
        assert response.status_code == status, response.text
        assert response.json()["success"] is False and response.json()["request_id"] == "r"

    async def write(c: SynapClient) -> None:
        await c.kv.set("a", "x")

    with pytest.raises(
        SynapException, match=r"^Server Error: READONLY .*send writes to the master"
    ):
        run(replica.http_url, write)

    async def incr_text(c: SynapClient) -> None:
        await c.kv.set("text", "abc")
        await c.kv.incr("text")

    with pytest.raises(SynapException, match=r"^Server Error: ERR value is not an integer"):
        run(master.http_url, incr_text)

    async def ttl(c: SynapClient) -> None:
        await c.send_command("kv.ttl", {"key": "missing"})

    with pytest.raises(SynapException, match=r"^Server Error: ERR key 'missing' not found"):
        run(master.http_url, ttl)


def test_sdk_with_a_key_refused_gets_the_servers_message(node_factory: NodeFactory) -> None:
    node = node_factory(config={"server": {"api_keys": ["right"]}})

    async def get(c: SynapClient) -> None:
        await c.kv.get("a")

    async def main() -> None:
        async with SynapClient(SynapConfig(node.http_url, timeout=10, auth_token="wrong")) as c:
            await get(c)

    with pytest.raises(SynapException, match="missing or invalid API key"):
        asyncio.run(main())


# ----------------------------------------------------------------- synap:// on the wrong port


def test_sdk_synap_scheme_on_the_replication_port_gets_a_clear_error(
    node_factory: NodeFactory,
) -> None:
    """``synap://host:15501`` (SynapRPC) reaches our replication listener: the client gets a
    SynapRPC error naming the HTTP and Redis addresses, the master logs it once, and keeps
    serving replicas."""
    master = node_factory.master()

    async def write(c: SynapClient) -> None:
        await c.kv.set("a", "x")

    with pytest.raises(SynapException) as info:
        run(f"synap://{master.replica_address}", write)
    message = str(info.value)
    assert "replication port" in message, message
    assert f"http://127.0.0.1:{master.port}" in message, message
    assert f"127.0.0.1:{master.resp_port}" in message, message
    assert f"synap://127.0.0.1:{master.rpc_port}" in message, message
    assert "exceeds" not in message
    log = master.log_text()
    assert log.count("a SynapRPC client") == 1, log
    assert "exceeds the" not in log
    master.redis().set("k", "v")
    replica = node_factory.replica(master)
    from tests.support.server import wait_for

    wait_for(lambda: replica.redis().get("k") == b"v", 20)
