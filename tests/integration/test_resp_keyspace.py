"""The keyspace behind the protocols: active expiry, and kv_store.max_memory_mb with each
eviction policy (none: a clear OOM error and nothing lost; lru, lfu, ttl: the right keys
go).  Lazy expiry, counters and binary safety are in test_resp_commands.py.

The four eviction nodes (1 MiB each) start together, once for the module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.support.server import NodeFactory, SynapProcess, wait_for

VALUE = b"v" * 1000
LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SynapProcess]]:
    factory = NodeFactory(tmp_path_factory.mktemp("keyspace"))
    try:
        started = {
            policy: factory(
                name=policy,
                wait=False,
                config={"kv_store": {"max_memory_mb": 1, "eviction_policy": policy}},
            )
            for policy in ("none", "lru", "lfu", "ttl")
        }
        started["plain"] = factory(name="plain", wait=False)
        for node in started.values():
            node.wait_ready()
        yield started
    finally:
        factory.cleanup()


def fill(client: redis.Redis, prefix: str, count: int, **set_options: int) -> list[str]:
    """SET count keys (pipelined); return the names acknowledged before any error."""
    pipe = client.pipeline(transaction=False)
    names = [f"{prefix}{i}" for i in range(count)]
    for name in names:
        pipe.set(name, VALUE, **set_options)
    results = pipe.execute(raise_on_error=False)
    return [name for name, ok in zip(names, results, strict=True) if ok is True]


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


# ----------------------------------------------------------------- expiry


def test_active_expiry_deletes_keys_nobody_reads(nodes: dict[str, SynapProcess]) -> None:
    client = nodes["plain"].redis()
    before = client.info("stats")["expired_keys"]
    pipe = client.pipeline(transaction=False)
    for i in range(300):
        pipe.set(f"short:{i}", "v", px=100)
    pipe.set("long", "v", ex=100)
    pipe.execute()
    # DBSIZE counts keys still held, expired or not: only active expiry brings it down.
    wait_for(lambda: client.dbsize() == 1, timeout=5, message="active expiry did not run")
    assert client.info("stats")["expired_keys"] - before == 300
    assert client.get("long") == b"v"


# ----------------------------------------------------------------- eviction


def test_noeviction_refuses_writes_with_oom_and_loses_nothing(
    nodes: dict[str, SynapProcess],
) -> None:
    node = nodes["none"]
    client = node.redis()
    stored = fill(client, "k", 1500)
    assert 500 < len(stored) < 1500  # the limit was reached
    with pytest.raises(redis.exceptions.OutOfMemoryError) as info:
        client.set("one-more", VALUE)
    assert str(info.value) == "command not allowed when used memory > 'maxmemory'."
    # Every acknowledged write is still there; reads and deletes still work.
    assert client.mget(stored) == [VALUE] * len(stored)
    assert client.info("stats")["evicted_keys"] == 0
    assert used_memory(client) <= LIMIT
    # Over HTTP: 507 on REST, success:false in the command envelope.
    response = node.http.post("/kv/set", json={"key": "http", "value": "x" * 1000})
    assert response.status_code == 507
    assert response.json()["code"] == "OUT_OF_MEMORY"
    body = node.http.post(
        "/api/v1/command", json={"command": "kv.set", "payload": {"key": "h", "value": "x" * 1000}}
    ).json()
    assert body["success"] is False and body["error"].startswith("OOM ")
    assert client.delete(*stored[:10]) == 10
    assert client.set("one-more", VALUE) is True


def test_lru_evicts_the_least_recently_used(nodes: dict[str, SynapProcess]) -> None:
    client = nodes["lru"].redis()
    hot = [f"hot:{i}" for i in range(20)]
    client.mset(dict.fromkeys(hot, VALUE))
    written = 0
    for batch in range(30):  # ~3 MB through a 1 MB keyspace
        written += len(fill(client, f"cold:{batch}:", 100))
        assert client.mget(hot) == [VALUE] * len(hot)  # read: now recently used
    assert written == 3000  # eviction made room every time: no OOM
    assert client.info("stats")["evicted_keys"] > 1000
    assert used_memory(client) <= LIMIT
    assert client.dbsize() < 1000


def test_lfu_keeps_the_frequently_used(nodes: dict[str, SynapProcess]) -> None:
    client = nodes["lfu"].redis()
    hot = [f"hot:{i}" for i in range(20)]
    client.mset(dict.fromkeys(hot, VALUE))
    pipe = client.pipeline(transaction=False)
    for _ in range(50):
        pipe.mget(hot)
    pipe.execute()
    written = sum(len(fill(client, f"cold:{batch}:", 100)) for batch in range(30))
    assert written == 3000
    assert client.mget(hot) == [VALUE] * len(hot)
    assert client.info("stats")["evicted_keys"] > 1000
    assert used_memory(client) <= LIMIT


def test_ttl_policy_evicts_only_keys_with_an_expiry(nodes: dict[str, SynapProcess]) -> None:
    client = nodes["ttl"].redis()
    keep = fill(client, "keep:", 200)
    assert len(keep) == 200
    written = sum(len(fill(client, f"volatile:{b}:", 100, ex=3600 + b)) for b in range(20))
    assert written == 2000
    assert client.mget(keep) == [VALUE] * len(keep)  # no TTL: never evicted
    assert client.info("stats")["evicted_keys"] > 500
    # Once only keys without an expiry are left, there is nothing to evict: OOM.
    client.delete(*client.keys("volatile:*"))
    stored = fill(client, "more:", 1500)
    assert len(stored) < 1500
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set("one-more", VALUE)
    assert client.mget(keep + stored) == [VALUE] * (len(keep) + len(stored))
