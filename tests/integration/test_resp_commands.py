"""The Redis-protocol command list of synap-api.md, through redis-py, in RESP2 and RESP3.

One standalone node serves the whole module; every test works under its own key prefix,
so tests do not see each other's keys (FLUSHALL is only used by the test that checks it,
which writes its own keys afterwards)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.fixtures import module_node
from tests.support.server import NodeFactory, SynapProcess, wait_for

node = module_node("resp")


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def r(request: pytest.FixtureRequest, node: SynapProcess) -> Iterator[redis.Redis]:
    client = node.redis(protocol=request.param)
    yield client
    client.close()


@pytest.fixture
def k(request: pytest.FixtureRequest) -> str:
    """A key prefix unique to this test (and protocol), free of glob characters."""
    return request.node.name.replace("[", "(").replace("]", ")") + ":"


def error_of(client: redis.Redis, *args: object) -> str:
    with pytest.raises(redis.ResponseError) as info:
        client.execute_command(*args)
    return str(info.value)


# ----------------------------------------------------------------- connection


def test_ping_echo_select_and_hello(r: redis.Redis) -> None:
    assert r.ping() is True
    assert r.echo(b"\x00bin\r\n") == b"\x00bin\r\n"
    assert r.execute_command("SELECT", 0) in (b"OK", True, "OK")
    assert error_of(r, "SELECT", 1) == "DB index is out of range"
    hello = r.execute_command("HELLO", 3)
    assert hello[b"proto"] == 3 and hello[b"server"] == b"redis"
    assert hello[b"role"] == b"master"


def test_auth_without_configured_password_is_redis_error(node: SynapProcess) -> None:
    # Raw socket: redis-py retries authentication errors with a back-off.
    with socket.create_connection(("127.0.0.1", node.resp_port), timeout=5) as sock:
        sock.sendall(b"AUTH secret\r\nPING\r\n")
        reply = b""
        while not reply.endswith(b"+PONG\r\n"):
            chunk = sock.recv(4096)
            assert chunk, reply
            reply += chunk
    assert reply.startswith(b"-ERR AUTH <password> called without any password configured")


def test_client_setname_getname_id(r: redis.Redis) -> None:
    assert r.client_getname() is None
    assert r.client_setname("worker-1") is True
    assert r.client_getname() in (b"worker-1", "worker-1")
    # CLIENT ID is this connection's id: the one CLIENT LIST shows beside the name we set.
    (me,) = [c for c in r.client_list() if c["name"] == "worker-1"]
    assert r.client_id() == int(me["id"])
    assert "Client names cannot contain spaces" in error_of(r, "CLIENT", "SETNAME", "a b")
    assert "wrong number of arguments for 'client|setname'" in error_of(r, "CLIENT", "SETNAME")


# ----------------------------------------------------------------- strings


def test_set_get_and_binary_safe_keys_and_values(r: redis.Redis, k: str) -> None:
    key = k.encode() + b"\x00\xff\r\n key"
    value = bytes(range(256)) * 4
    assert r.set(key, value) is True
    assert r.get(key) == value
    assert r.strlen(key) == 1024
    assert r.get(k + "missing") is None
    assert r.set(k + "empty", b"") is True
    assert r.get(k + "empty") == b""


def test_set_expiry_options(r: redis.Redis, k: str) -> None:
    assert r.set(k + "ex", "v", ex=100)
    assert 99 <= r.ttl(k + "ex") <= 100
    assert r.set(k + "px", "v", px=100_000)
    assert 99_000 < r.pttl(k + "px") <= 100_000
    at = int(time.time()) + 200
    assert r.set(k + "exat", "v", exat=at)
    assert 198 <= r.ttl(k + "exat") <= 200
    assert r.set(k + "pxat", "v", pxat=at * 1000)
    assert 198_000 <= r.pttl(k + "pxat") <= 200_000
    # An absolute time in the past: the key is gone at once.
    assert r.set(k + "past", "v", exat=1)
    assert r.exists(k + "past") == 0
    assert error_of(r, "SET", k + "x", "v", "EX", 0) == "invalid expire time in 'set' command"
    assert error_of(r, "SET", k + "x", "v", "PX", -5) == "invalid expire time in 'set' command"
    assert (
        error_of(r, "SET", k + "x", "v", "EX", 2**63 - 1) == "invalid expire time in 'set' command"
    )
    assert (
        error_of(r, "SET", k + "x", "v", "EX", "ten") == "value is not an integer or out of range"
    )
    assert error_of(r, "SET", k + "x", "v", "EX", 1, "PX", 1) == "syntax error"
    assert error_of(r, "SET", k + "x", "v", "NX", "XX") == "syntax error"
    assert r.exists(k + "x") == 0


def test_set_nx_xx_keepttl_get(r: redis.Redis, k: str) -> None:
    assert r.set(k + "a", "1", nx=True) is True
    assert r.set(k + "a", "2", nx=True) is None
    assert r.get(k + "a") == b"1"
    assert r.set(k + "missing", "v", xx=True) is None
    assert r.exists(k + "missing") == 0
    assert r.set(k + "a", "3", xx=True, ex=100) is True
    assert r.set(k + "a", "4", keepttl=True) is True
    assert r.get(k + "a") == b"4" and r.ttl(k + "a") > 90
    assert r.set(k + "a", "5") is True
    assert r.ttl(k + "a") == -1  # a plain SET clears the TTL
    assert r.set(k + "a", "6", get=True) == b"5"
    assert r.set(k + "new", "v", get=True) is None
    assert r.set(k + "a", "7", nx=True, get=True) == b"6"  # NX failed, old value returned
    assert r.get(k + "a") == b"6"


def test_setnx_setex_psetex_getset_getdel(r: redis.Redis, k: str) -> None:
    assert r.setnx(k + "a", "1") is True
    assert r.setnx(k + "a", "2") is False
    assert r.execute_command("SETEX", k + "b", 100, "v") in (b"OK", True)
    assert 99 <= r.ttl(k + "b") <= 100
    assert r.psetex(k + "c", 100_000, "v") is True
    assert 99_000 < r.pttl(k + "c") <= 100_000
    assert error_of(r, "SETEX", k + "d", 0, "v") == "invalid expire time in 'setex' command"
    assert error_of(r, "PSETEX", k + "d", -1, "v") == "invalid expire time in 'psetex' command"
    assert r.getset(k + "a", "new") == b"1"
    assert r.getset(k + "fresh", "v") is None
    assert r.getdel(k + "a") == b"new"
    assert r.getdel(k + "a") is None
    assert r.exists(k + "a") == 0


def test_mget_mset_msetnx(r: redis.Redis, k: str) -> None:
    assert r.mset({k + "a": "1", k + "b": "2"}) is True
    assert r.mget([k + "a", k + "missing", k + "b"]) == [b"1", None, b"2"]
    assert r.msetnx({k + "b": "x", k + "c": "3"}) is False
    assert r.exists(k + "c") == 0
    assert error_of(r, "MSET", k + "a", "1", k + "b") == (
        "wrong number of arguments for 'mset' command"
    )


def test_del_unlink_exists(r: redis.Redis, k: str) -> None:
    r.mset({k + "a": "1", k + "b": "2", k + "c": "3"})
    assert r.exists(k + "a", k + "a", k + "missing") == 2  # counted per argument, as Redis
    assert r.delete(k + "a", k + "missing") == 1
    assert r.unlink(k + "b", k + "c") == 2
    assert r.exists(k + "a", k + "b", k + "c") == 0


def test_counters(r: redis.Redis, k: str) -> None:
    assert r.incr(k + "n") == 1
    assert r.incrby(k + "n", 10) == 11
    assert r.decr(k + "n") == 10
    assert r.decrby(k + "n", 15) == -5
    assert r.incrbyfloat(k + "f", 10.5) == 10.5
    assert r.incrbyfloat(k + "f", 0.1) == pytest.approx(10.6)
    assert r.get(k + "f") == b"10.6"
    assert r.incrbyfloat(k + "f", -0.6) == 10.0
    assert r.get(k + "f") == b"10"
    r.set(k + "s", "abc")
    assert error_of(r, "INCR", k + "s") == "value is not an integer or out of range"
    assert error_of(r, "INCRBYFLOAT", k + "s", 1) == "value is not a valid float"
    assert error_of(r, "INCRBY", k + "n", "1.5") == "value is not an integer or out of range"
    for text in ("010", "+1", " 1", "1_000", "1e3"):
        r.set(k + "odd", text)
        assert error_of(r, "INCR", k + "odd") == "value is not an integer or out of range", text
    r.set(k + "max", str(2**63 - 1))
    assert error_of(r, "INCR", k + "max") == "increment or decrement would overflow"
    assert r.get(k + "max") == str(2**63 - 1).encode()
    r.set(k + "ttl", "1", ex=100)
    assert r.incr(k + "ttl") == 2
    assert r.ttl(k + "ttl") > 90  # INCR keeps the TTL


def test_append_strlen(r: redis.Redis, k: str) -> None:
    assert r.append(k + "s", "hello") == 5
    assert r.append(k + "s", b" \x00world") == 12
    assert r.get(k + "s") == b"hello \x00world"
    assert r.strlen(k + "s") == 12
    assert r.strlen(k + "missing") == 0


# ----------------------------------------------------------------- expiry


def test_expire_family(r: redis.Redis, k: str) -> None:
    r.set(k + "a", "v")
    assert r.ttl(k + "a") == -1
    assert r.pttl(k + "a") == -1
    assert r.ttl(k + "missing") == -2
    assert r.pttl(k + "missing") == -2
    assert r.expire(k + "a", 100) is True
    assert 99 <= r.ttl(k + "a") <= 100
    assert r.pexpire(k + "a", 200_000) is True
    assert 199_000 < r.pttl(k + "a") <= 200_000
    assert r.expireat(k + "a", int(time.time()) + 300) is True
    assert 298 <= r.ttl(k + "a") <= 300
    assert r.pexpireat(k + "a", int(time.time() * 1000) + 400_000) is True
    assert 398 <= r.ttl(k + "a") <= 400
    assert r.persist(k + "a") is True
    assert r.persist(k + "a") is False
    assert r.ttl(k + "a") == -1
    assert r.expire(k + "missing", 10) is False
    # NX / XX / GT / LT (Redis 7)
    assert r.expire(k + "a", 100, xx=True) is False
    assert r.expire(k + "a", 100, nx=True) is True
    assert r.expire(k + "a", 200, nx=True) is False
    assert r.expire(k + "a", 50, gt=True) is False
    assert r.expire(k + "a", 500, gt=True) is True
    assert r.expire(k + "a", 10, lt=True) is True
    assert r.ttl(k + "a") <= 10
    assert error_of(r, "EXPIRE", k + "a", 10, "NX", "XX").startswith("NX and XX, GT or LT")
    assert error_of(r, "EXPIRE", k + "a", "soon") == "value is not an integer or out of range"
    assert error_of(r, "EXPIRE", k + "a", 2**63 - 1) == "invalid expire time in 'expire' command"
    # A time in the past deletes the key.
    assert r.expire(k + "a", -1) is True
    assert r.exists(k + "a") == 0
    r.set(k + "b", "v")
    assert r.pexpireat(k + "b", 1) is True
    assert r.exists(k + "b") == 0


def test_lazy_expiry_in_seconds_and_milliseconds(r: redis.Redis, k: str) -> None:
    r.set(k + "ms", "v", px=150)
    r.execute_command("SETEX", k + "s", 1, "v")
    assert r.get(k + "ms") == b"v"
    time.sleep(0.25)
    assert r.get(k + "ms") is None
    assert r.ttl(k + "ms") == -2
    assert r.get(k + "s") == b"v"
    wait_for(lambda: r.get(k + "s") is None, timeout=3, message="1 s TTL did not expire")


# ----------------------------------------------------------------- keys


def test_keys_scan_type_rename_dbsize(r: redis.Redis, k: str) -> None:
    names = [f"{k}user:{i}".encode() for i in range(25)]
    r.mset(dict.fromkeys(names, b"x"))
    r.set(k + "other", "y")
    assert sorted(r.keys(k + "user:*")) == sorted(names)
    # `?` is exactly one character: user:10..user:19, not user:1 and not user:1x...
    assert sorted(r.keys(k + "user:1?")) == sorted(f"{k}user:{i}".encode() for i in range(10, 20))
    assert sorted(r.keys(k + "user:[12]")) == sorted([f"{k}user:1".encode(), f"{k}user:2".encode()])
    # SCAN: every key exactly once over the whole iteration, with COUNT and MATCH.
    seen: list[bytes] = []
    cursor = 0
    for _ in range(100):
        cursor, batch = r.scan(cursor, match=k + "user:*", count=7)
        seen.extend(batch)
        if cursor == 0:
            break
    assert sorted(seen) == sorted(names)
    assert sorted(r.scan_iter(match=k + "*", count=1000)) == sorted(
        [*names, (k + "other").encode()]
    )
    assert error_of(r, "SCAN", "abc") == "invalid cursor"
    assert r.type(k + "other") in (b"string", "string")
    assert r.type(k + "missing") in (b"none", "none")
    r.set(k + "src", "v", ex=100)
    assert r.rename(k + "src", k + "dst") is True
    assert r.get(k + "dst") == b"v" and r.ttl(k + "dst") > 90
    assert r.exists(k + "src") == 0
    assert error_of(r, "RENAME", k + "src", k + "dst") == "no such key"
    assert r.renamenx(k + "dst", k + "other") is False
    assert isinstance(r.dbsize(), int) and r.dbsize() >= 27


def test_flushdb_and_flushall(r: redis.Redis, k: str) -> None:
    r.set(k + "a", "1")
    assert r.flushdb() is True
    assert r.dbsize() == 0
    r.set(k + "b", "2")
    assert r.flushall() is True
    assert r.dbsize() == 0
    assert error_of(r, "FLUSHALL", "NOW") == "syntax error"


# ----------------------------------------------------------------- server


def test_info_has_redis_sections_and_replication_fields(r: redis.Redis) -> None:
    info = r.info()
    assert info["redis_version"]
    assert "used_memory" in info and "connected_clients" in info
    repl = r.info("replication")
    assert repl["role"] == "master"
    assert repl["connected_slaves"] == 0
    for field in ("master_replid", "master_repl_offset", "repl_backlog_active"):
        assert field in repl, field


def test_role_wait_config_command(r: redis.Redis) -> None:
    role = r.execute_command("ROLE")
    assert role[0] in (b"master", "master") and list(role[2]) == []
    assert role[1] == r.info("replication")["master_repl_offset"]  # the master's offset
    assert r.execute_command("WAIT", 0, 0) == 0
    assert r.execute_command("WAIT", 1, 50) == 0  # no replicas: times out with 0
    config = r.config_get("maxmemory*")
    assert set(config) >= {"maxmemory", "maxmemory-policy"}
    assert config["maxmemory-policy"] == "noeviction"
    assert r.config_get("save") == {"save": ""}
    assert r.command_count() >= 50
    assert r.execute_command("COMMAND", "INFO", "get")["get"]["first_key_pos"] == 1
    assert {"get", "set", "scan", "info", "hello"} <= set(r.command())


def test_replicaof_no_one_on_a_master_is_ok(r: redis.Redis) -> None:
    assert r.execute_command("REPLICAOF", "NO", "ONE") in (b"OK", "OK", True)
    assert r.execute_command("SLAVEOF", "NO", "ONE") in (b"OK", "OK", True)
    assert r.info("replication")["role"] == "master"


def test_error_wording(r: redis.Redis, k: str) -> None:
    assert error_of(r, "GET") == "wrong number of arguments for 'get' command"
    assert error_of(r, "GET", "a", "b") == "wrong number of arguments for 'get' command"
    assert error_of(r, "NOSUCH", "a", "b") == (
        "unknown command 'NOSUCH', with args beginning with: 'a' 'b' "
    )
    assert error_of(r, "SET", k, "v", "BOGUS") == "syntax error"


def test_unknown_command_keeps_connection_usable(r: redis.Redis, k: str) -> None:
    error_of(r, "HSET", k + "h", "f", "v")
    assert r.set(k + "after", "ok") and r.get(k + "after") == b"ok"


# ----------------------------------------------------------------- RESP3 shapes


def test_resp3_replies_are_typed(node: SynapProcess, k: str) -> None:
    r3 = node.redis(protocol=3)
    try:
        assert r3.get(k + "missing") is None
        assert r3.mget([k + "missing"]) == [None]
        assert isinstance(r3.config_get("maxmemory"), dict)
        stats = r3.execute_command("KVSTATS")
        assert isinstance(stats, dict) and b"total_keys" in stats
        assert isinstance(stats[b"operations"], dict)
        ops = stats[b"operations"]
        assert ops[b"misses"] >= 1  # the GET of a missing key above
        assert stats[b"hit_rate"] == pytest.approx(ops[b"hits"] / (ops[b"hits"] + ops[b"misses"]))
        r3.set(k + "f", "1.5")
        assert r3.incrbyfloat(k + "f", 1) == 2.5
    finally:
        r3.close()


def test_kvstats_matches_rest_stats_shape(r: redis.Redis, node: SynapProcess) -> None:
    stats = r.execute_command("KVSTATS")
    if isinstance(stats, list):  # RESP2: a flat key/value list
        stats = dict(zip(stats[::2], stats[1::2], strict=True))
    rest = node.http.get("/kv/stats").json()
    assert {key.decode() for key in stats} >= set(rest) - {"evicted_keys", "expired_keys"}


# ----------------------------------------------------------------- pipelining


def test_pipeline_of_a_thousand_commands_answers_in_order(r: redis.Redis, k: str) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(500):
        pipe.set(f"{k}{i}", i)
        pipe.incr(f"{k}{i}")
    results = pipe.execute()
    assert results[0::2] == [True] * 500
    assert results[1::2] == list(range(1, 501))
    pipe = r.pipeline(transaction=False)
    for i in range(500):
        pipe.get(f"{k}{i}")
    assert pipe.execute() == [str(i + 1).encode() for i in range(500)]


def test_pipeline_with_errors_in_the_middle(r: redis.Redis, k: str) -> None:
    r.set(k + "s", "abc")
    pipe = r.pipeline(transaction=False)
    pipe.set(k + "a", 1).incr(k + "s").get(k + "a")
    results = pipe.execute(raise_on_error=False)
    assert results[0] is True
    assert isinstance(results[1], redis.ResponseError)
    assert results[2] == b"1"


def test_default_redis_py_pipeline_is_a_multi_exec_transaction(r: redis.Redis, k: str) -> None:
    pipe = r.pipeline()  # transaction=True: MULTI ... EXEC
    pipe.set(k + "a", 1).incr(k + "a").get(k + "a").delete(k + "missing")
    assert pipe.execute() == [True, 2, b"2", 0]
    r.set(k + "s", "text")
    pipe = r.pipeline()
    pipe.set(k + "b", 1).incr(k + "s").get(k + "b")
    with pytest.raises(redis.ResponseError, match="not an integer"):
        pipe.execute()
    assert r.get(k + "b") == b"1"  # as in Redis: the other commands of EXEC ran


def test_multi_discard_and_errors(r: redis.Redis, k: str) -> None:
    assert error_of(r, "EXEC") == "EXEC without MULTI"
    assert error_of(r, "DISCARD") == "DISCARD without MULTI"
    with r.pipeline() as pipe:
        pipe.multi()
        pipe.set(k + "never", 1)
        pipe.reset()  # DISCARD
    assert r.exists(k + "never") == 0


# ----------------------------------------------------------------- REPLICAOF


def test_replicaof_host_port_turns_a_node_into_a_replica(tmp_path: Path) -> None:
    factory = NodeFactory(tmp_path)
    try:
        master = factory.master()
        follower = factory()
        master.redis().set("from-master", "v")
        assert follower.redis().execute_command("REPLICAOF", "127.0.0.1", master.replica_port) in (
            b"OK",
            True,
        )
        wait_for(lambda: follower.redis().get("from-master") == b"v", timeout=10)
        client = follower.redis()
        with pytest.raises(redis.ReadOnlyError) as info:
            client.set("x", "y")
        assert str(info.value) == "You can't write against a read only replica."
        refused = follower.http.post("/kv/set", json={"key": "x", "value": 1})
        assert refused.status_code == 409
        body = refused.json()
        assert body["code"] == "READONLY" and "read-only replica" in body["detail"]
        assert master.replica_address in body["master"]
        assert client.info("replication")["role"] == "slave"
        assert client.execute_command("REPLICAOF", "NO", "ONE") in (b"OK", True)
        assert client.set("x", "y") is True
    finally:
        problems = factory.cleanup()
    assert not problems
