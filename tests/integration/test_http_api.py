"""HTTP on the node's port: GET /health, the REST routes and POST /api/v1/command with the
JSON shapes and error codes of synap-api.md, and how JSON values map to stored bytes
(what RESP clients see of a value set over HTTP, and the reverse)."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from synap import __version__
from tests.support.fixtures import module_node
from tests.support.server import NodeFactory, SynapProcess, wait_for

node = module_node("http")


@pytest.fixture
def k(request: pytest.FixtureRequest) -> str:
    return request.node.name.replace("[", "(").replace("]", ")") + ":"


def command(node: SynapProcess, name: str, **payload: Any) -> dict[str, Any]:
    """Run one command; assert the envelope; return it."""
    request_id = str(uuid.uuid4())
    response = node.http.post(
        "/api/v1/command", json={"command": name, "request_id": request_id, "payload": payload}
    )
    body: dict[str, Any] = response.json()
    assert body["request_id"] == request_id
    if body["success"]:
        assert response.status_code == 200, response.text
        assert set(body) == {"success", "request_id", "payload", "error"}
    else:  # the SDK's envelope, with the error's HTTP status and code
        assert 400 <= response.status_code < 600, response.text
        assert set(body) == {"success", "request_id", "payload", "error", "code"}
        body["status"] = response.status_code
    return body


WRITES = {"kv.set", "kv.del", "kv.mdel", "kv.incr", "kv.decr", "kv.mset", "kv.flushdb",
          "kv.expire", "kv.persist", "kv.flushall"}  # fmt: skip


def ok(node: SynapProcess, name: str, **payload: Any) -> Any:
    body = command(node, name, **payload)
    assert body["success"] is True and body["error"] is None, body
    result = body["payload"]
    if name in WRITES:
        # Every write answer carries its read-your-writes token (docs/CONSISTENCY.md).
        assert isinstance(result.pop("offset"), int) and result.pop("replicas_acked") == 0, body
    return result


def fails(node: SynapProcess, name: str, status: int = 400, **payload: Any) -> str:
    body = command(node, name, **payload)
    assert body["success"] is False and body["payload"] is None, body
    assert body["status"] == status, body
    assert isinstance(body["error"], str) and body["error"]
    error: str = body["error"]
    return error


# ----------------------------------------------------------------- REST


def test_health(node: SynapProcess) -> None:
    response = node.http.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    # The spec's fields, plus what a load balancer needs (docs/MONITORING.md).
    assert {k: body[k] for k in ("status", "service", "version")} == {
        "status": "healthy",
        "service": "synap",
        "version": __version__,
    }
    assert body["role"] == "standalone"
    assert body["replication"] == {"connected": True, "synced": True, "last_error": None}


def test_rest_set_get_delete(node: SynapProcess, k: str) -> None:
    response = node.http.post("/kv/set", json={"key": k + "a", "value": "hello", "ttl": 60})
    assert response.status_code == 200
    answer = response.json()
    assert answer.pop("offset") == int(response.headers["Synap-Offset"]) >= 1
    assert answer == {"success": True, "key": k + "a", "replicas_acked": 0}
    got = node.http.get(f"/kv/get/{k}a").json()
    assert got["found"] is True and got["value"] == "hello" and 59 <= got["ttl"] <= 60
    node.http.post("/kv/set", json={"key": k + "b", "value": "no ttl"})
    assert node.http.get(f"/kv/get/{k}b").json() == {"found": True, "value": "no ttl", "ttl": None}
    deleted = node.http.delete(f"/kv/del/{k}a").json()
    assert isinstance(deleted.pop("offset"), int)
    assert deleted == {"deleted": True, "key": k + "a", "replicas_acked": 0}
    again = node.http.delete(f"/kv/del/{k}a").json()
    assert isinstance(again.pop("offset"), int)
    assert again == {"deleted": False, "key": k + "a", "replicas_acked": 0}


def test_rest_missing_key_is_404_with_error_and_code(node: SynapProcess, k: str) -> None:
    response = node.http.get(f"/kv/get/{k}missing")
    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"error", "code"} and body["code"] == "NOT_FOUND"
    assert "missing" in body["error"]


def test_rest_stats_shape(node: SynapProcess, k: str) -> None:
    node.http.post("/kv/set", json={"key": k + "s", "value": 1})
    node.http.get(f"/kv/get/{k}s")
    node.http.get(f"/kv/get/{k}nope")
    stats = node.http.get("/kv/stats").json()
    assert {"total_keys", "total_memory_bytes", "operations", "hit_rate"} <= set(stats)
    assert set(stats["operations"]) == {"gets", "sets", "dels", "hits", "misses"}
    assert stats["total_keys"] >= 1 and stats["total_memory_bytes"] > 0
    assert stats["operations"]["hits"] >= 1 and stats["operations"]["misses"] >= 1
    assert 0.0 < stats["hit_rate"] < 1.0


def test_rest_key_with_special_characters_in_the_path(node: SynapProcess, k: str) -> None:
    key = k + "a b/c?d"
    node.http.post("/kv/set", json={"key": key, "value": "v"})
    from urllib.parse import quote

    assert node.http.get("/kv/get/" + quote(key, safe="")).json()["value"] == "v"
    assert node.redis().get(key.encode()) == b"v"


# ----------------------------------------------------------------- JSON values


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("hello", b"hello"),
        ("", b""),
        ("ünïcødé ✓", "ünïcødé ✓".encode()),
        (42, b"42"),
        (-1.5, b"-1.5"),
        (True, b"true"),
        (None, b"null"),
        ({"a": [1, 2, {"b": None}]}, b'{"a":[1,2,{"b":null}]}'),
        ([1, "two"], b'[1,"two"]'),
    ],
)
def test_json_values_map_to_stored_bytes_and_back(
    node: SynapProcess, k: str, value: Any, stored: bytes
) -> None:
    node.http.post("/kv/set", json={"key": k + "v", "value": value})
    assert node.redis().get((k + "v").encode()) == stored
    assert node.http.get(f"/kv/get/{k}v").json()["value"] == value
    assert ok(node, "kv.get", key=k + "v")["value"] == value


def test_values_set_over_resp_read_over_http(node: SynapProcess, k: str) -> None:
    r = node.redis()
    r.set(k + "text", "plain text")
    r.set(k + "num", "17")
    r.set(k + "bin", b"\x00\xff\xfe")
    assert node.http.get(f"/kv/get/{k}text").json()["value"] == "plain text"
    assert node.http.get(f"/kv/get/{k}num").json()["value"] == "17"  # bytes are a string
    got = node.http.get(f"/kv/get/{k}bin").json()
    assert got["encoding"] == "base64" and base64.b64decode(got["value"]) == b"\x00\xff\xfe"


def test_counter_set_over_http_increments_over_resp(node: SynapProcess, k: str) -> None:
    ok(node, "kv.set", key=k + "n", value=10)
    assert node.redis().incr(k + "n") == 11
    assert ok(node, "kv.incr", key=k + "n")["value"] == 12


# ----------------------------------------------------------------- command endpoint


def test_command_endpoint_kv_commands(node: SynapProcess, k: str) -> None:
    assert ok(node, "kv.set", key=k + "a", value="1") == {"success": True}
    assert ok(node, "kv.set", key=k + "t", value={"x": 1}, ttl=100) == {"success": True}
    assert ok(node, "kv.get", key=k + "a") == {"found": True, "value": "1", "ttl": None}
    got = ok(node, "kv.get", key=k + "t")
    assert got["value"] == {"x": 1} and 99 <= got["ttl"] <= 100
    assert ok(node, "kv.get", key=k + "missing") == {"found": False, "value": None, "ttl": None}
    assert ok(node, "kv.exists", key=k + "a") == {"exists": True}
    assert ok(node, "kv.exists", key=k + "missing") == {"exists": False}
    assert ok(node, "kv.incr", key=k + "c") == {"value": 1}
    assert ok(node, "kv.incr", key=k + "c", amount=10) == {"value": 11}
    assert ok(node, "kv.decr", key=k + "c") == {"value": 10}
    assert ok(node, "kv.decr", key=k + "c", amount=20) == {"value": -10}
    pairs = [{"key": k + "m1", "value": "x"}, {"key": k + "m2", "value": [1, 2]}]
    assert ok(node, "kv.mset", pairs=pairs) == {"success": True}
    assert ok(node, "kv.mget", keys=[k + "m1", k + "none", k + "m2"]) == {
        "values": ["x", None, [1, 2]],
        "found": [True, False, True],
        "encodings": [None, None, None],
    }
    scanned = ok(node, "kv.scan", prefix=k + "m")
    assert sorted(scanned["keys"]) == [k + "m1", k + "m2"] and scanned["count"] == 2
    assert ok(node, "kv.scan", prefix=k + "m", limit=1)["count"] == 1
    keys = ok(node, "kv.keys", pattern=k + "m?")
    assert sorted(keys["keys"]) == [k + "m1", k + "m2"] and keys["count"] == 2
    assert ok(node, "kv.dbsize")["size"] >= 5
    assert ok(node, "kv.expire", key=k + "a", ttl=50) == {"result": True}
    assert ok(node, "kv.ttl", key=k + "a") == {"ttl": 50}
    assert ok(node, "kv.persist", key=k + "a") == {"result": True}
    assert ok(node, "kv.ttl", key=k + "a") == {"ttl": None}
    assert ok(node, "kv.persist", key=k + "a") == {"result": False}
    assert ok(node, "kv.expire", key=k + "missing", ttl=5) == {"result": False}
    assert "not found" in fails(node, "kv.ttl", status=404, key=k + "missing")
    assert ok(node, "kv.del", key=k + "a") == {"deleted": True}
    assert ok(node, "kv.del", key=k + "a") == {"deleted": False}
    assert ok(node, "kv.mdel", keys=[k + "m1", k + "m2", k + "none"]) == {"deleted": 2}
    stats = ok(node, "kv.stats")
    assert set(stats) >= {"total_keys", "total_memory_bytes", "operations", "hit_rate"}


def test_command_endpoint_ttl_expires(node: SynapProcess, k: str) -> None:
    ok(node, "kv.set", key=k + "short", value="v", ttl=1)
    wait_for(
        lambda: not ok(node, "kv.exists", key=k + "short")["exists"],
        5,
        0.1,
        "1 s TTL did not expire",
    )
    assert ok(node, "kv.get", key=k + "short")["found"] is False


def test_command_endpoint_failures_keep_the_envelope_with_the_error_status(
    node: SynapProcess, k: str
) -> None:
    assert fails(node, "kv.nosuch", key=k) == "unknown command 'kv.nosuch'"
    ok(node, "kv.set", key=k + "s", value="text")
    assert fails(node, "kv.incr", key=k + "s") == "ERR value is not an integer or out of range"


def test_flush_commands_are_refused_unless_allowed(node: SynapProcess, k: str) -> None:
    ok(node, "kv.set", key=k + "keep", value=1)
    for name in ("kv.flushall", "kv.flushdb"):
        error = fails(node, name, status=403)
        assert "kv_store.allow_flush_commands" in error
    assert ok(node, "kv.exists", key=k + "keep") == {"exists": True}


def test_flush_commands_when_allowed(tmp_path: Path) -> None:
    factory = NodeFactory(tmp_path)
    try:
        node = factory(config={"kv_store": {"allow_flush_commands": True}})
        ok(node, "kv.mset", pairs=[{"key": "a", "value": 1}, {"key": "b", "value": 2}])
        assert ok(node, "kv.flushdb") == {"flushed": 2}
        assert ok(node, "kv.dbsize") == {"size": 0}
        ok(node, "kv.set", key="c", value=3)
        assert ok(node, "kv.flushall") == {"flushed": 1}
    finally:
        assert not factory.cleanup()


# ----------------------------------------------------------------- API keys


def test_api_keys_protect_http_and_resp(tmp_path: Path) -> None:
    import redis

    factory = NodeFactory(tmp_path)
    try:
        node = factory(config={"server": {"api_keys": ["s3cret"]}})
        assert node.http.get("/health").status_code == 200  # always open
        denied = node.http.post("/kv/set", json={"key": "a", "value": 1})
        assert denied.status_code == 401 and denied.json()["code"] == "UNAUTHORIZED"
        bearer = {"Authorization": "Bearer s3cret"}
        assert node.http.post("/kv/set", json={"key": "a", "value": 1}, headers=bearer).is_success
        basic = httpx.BasicAuth("user", "s3cret")
        assert node.http.get("/kv/get/a", auth=basic).json()["value"] == 1
        wrong = node.http.get("/kv/get/a", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        with pytest.raises(redis.AuthenticationError):
            node.redis(retry_on_error=[], retry=None).get("a")
        assert node.redis(password="s3cret").get("a") == b"1"
    finally:
        assert not factory.cleanup()
