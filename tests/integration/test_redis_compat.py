"""Replies compared byte for byte with a real ``redis-server`` 7.0.15 (issue 9): the same
request goes to both, on raw sockets, and the reply bytes must be equal.

Each script runs on one synap node and one Redis, both emptied first.  A step is a
command (a tuple of arguments), ``(N, command...)`` to send it on connection N (for
WATCH and CLIENT KILL, which involve two clients), ``("unchecked", ...)`` for a step whose
reply is expected to differ (HELLO: client ids), or ``("sleep", seconds)``.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Sequence

import pytest
import redis

from tests.support.checks import assert_same_data, digest
from tests.support.fixtures import module_node
from tests.support.ports import HOST
from tests.support.real_redis import Wire, encode, real_redis
from tests.support.server import NodeFactory, SynapProcess, wait_caught_up, wait_for

__all__ = ["real_redis"]  # a fixture, used by name

Step = tuple[object, ...]


node = module_node("compat")


class Pair:
    """Connection N to Redis and to synap, opened on first use."""

    def __init__(self, redis_port: int, synap_port: int) -> None:
        self.ports = (redis_port, synap_port)
        self.wires: dict[int, tuple[Wire, Wire]] = {}

    def __call__(self, n: int) -> tuple[Wire, Wire]:
        if n not in self.wires:
            self.wires[n] = (Wire(self.ports[0]), Wire(self.ports[1]))
        return self.wires[n]

    def close(self) -> None:
        for theirs, ours in self.wires.values():
            theirs.close()
            ours.close()


def compare(redis_port: int, synap_port: int, script: Sequence[Step]) -> None:
    pair = Pair(redis_port, synap_port)
    try:
        mismatches = []
        for wire in pair(0):
            assert wire.send(encode("FLUSHALL")).reply_bytes() == b"+OK\r\n"
        for step in script:
            if step[0] == "sleep":
                time.sleep(float(step[1]))  # type: ignore[arg-type]
                continue
            quiet = step[0] == "unchecked"
            if quiet:
                step = step[1:]
            n, command = (step[0], step[1:]) if isinstance(step[0], int) else (0, step)
            theirs, ours = pair(n)  # type: ignore[arg-type]
            request = encode(*command)  # type: ignore[arg-type]
            expected = theirs.send(request).reply_bytes()
            got = ours.send(request).reply_bytes()
            if expected != got and not quiet:
                mismatches.append(f"{command}: redis {expected!r}, synap {got!r}")
        assert not mismatches, "\n".join(mismatches)
    finally:
        pair.close()


Check = Callable[[Sequence[Step]], None]


@pytest.fixture
def check(node: SynapProcess, real_redis: int) -> Check:
    return lambda script: compare(real_redis, node.resp_port, script)


def test_transactions_are_all_or_nothing(check: Check) -> None:
    check(
        [
            ("MULTI",),
            ("SET", "a", "1"),
            ("SET", "b"),  # wrong arity: refused while queueing
            ("INCR",),
            ("NOSUCH", "x"),
            ("SET", "c", "3"),
            ("EXEC",),  # EXECABORT: nothing ran
            ("EXISTS", "a", "c"),
            ("MULTI",),
            ("CLIENT", "ID", "x"),
            ("EXEC",),
            ("MULTI",),
            ("GET",),
            ("DISCARD",),
            ("MULTI",),
            ("WATCH", "a"),  # an error, but the transaction goes on
            ("SET", "a", "1"),
            ("EXEC",),
            ("MULTI",),
            ("MULTI",),
            ("INCR", "a"),
            ("EXEC",),
            ("GET", "a"),
            ("MULTI",),
            ("SET", "a", "x"),
            ("INCR", "a"),  # a run-time error does not undo the rest
            ("GET", "a"),
            ("EXEC",),
            ("EXEC",),
            ("DISCARD",),
        ]
    )


def test_watch_aborts_exec_when_a_watched_key_changes(check: Check) -> None:
    check(
        [
            ("SET", "w", "1"),
            ("WATCH",),
            ("WATCH", "w", "other"),
            ("MULTI",),
            ("INCR", "w"),
            ("EXEC",),  # untouched: runs
            ("WATCH", "w"),
            (1, "SET", "w", "changed"),  # another client writes
            ("MULTI",),
            ("INCR", "w"),
            ("EXEC",),  # null: aborted
            ("GET", "w"),
            ("WATCH", "w"),
            (1, "SET", "w", "5"),
            ("UNWATCH",),
            ("MULTI",),
            ("INCR", "w"),
            ("EXEC",),  # unwatched: runs
            ("WATCH", "w"),
            (1, "EXPIRE", "w", "100"),  # an expiry change counts
            ("MULTI",),
            ("PING",),
            ("EXEC",),
            ("WATCH", "nokey"),
            (
                1,
                "FLUSHALL",
            ),  # a key that did not exist is not touched by FLUSHALL
            ("MULTI",),
            ("PING",),
            ("EXEC",),
            (1, "SET", "w", "1"),
            ("WATCH", "w"),
            (
                1,
                "FLUSHALL",
            ),
            ("MULTI",),
            ("PING",),
            ("EXEC",),
            ("SET", "w", "1"),
            ("WATCH", "w"),
            ("SET", "w", "2"),  # the watching client's own write counts too
            ("MULTI",),
            ("DISCARD",),  # DISCARD unwatches
            ("MULTI",),
            ("INCR", "w"),
            ("EXEC",),
            ("SET", "w", "1", "PX", "50"),
            ("WATCH", "w"),
            ("sleep", 0.2),  # expired after WATCH (actively or on access): aborts
            ("MULTI",),
            ("PING",),
            ("EXEC",),
            ("UNWATCH", "x"),
        ]
    )


def test_client_reply_off_skip_on(node: SynapProcess, real_redis: int) -> None:
    pipeline = (
        encode("CLIENT", "REPLY", "OFF")
        + encode("PING", "a")
        + encode("SET", "k", "v")
        + encode("CLIENT", "REPLY", "ON")
        + encode("PING", "b")
        + encode("CLIENT", "REPLY", "SKIP")
        + encode("PING", "c")
        + encode("PING", "d")
        + encode("CLIENT", "REPLY", "SKIP")
        + encode("CLIENT", "REPLY", "FOO")
        + encode("CLIENT", "REPLY", "FOO")
        + encode("GET", "k")
        + encode("CLIENT", "REPLY", "SKIP")
        + encode("CLIENT", "REPLY", "ON")  # answered: ON also cancels a pending SKIP
        + encode("PING", "e")
    )
    replies = []
    for port in (real_redis, node.resp_port):
        wire = Wire(port)
        try:
            replies.append(wire.send(pipeline).raw())
        finally:
            wire.close()
    assert replies[0] == replies[1]
    assert replies[1] == (
        b"+OK\r\n$1\r\nb\r\n$1\r\nd\r\n-ERR syntax error\r\n$1\r\nv\r\n+OK\r\n$1\r\ne\r\n"
    )


def test_command_introspection(check: Check) -> None:
    check(
        [
            ("COMMAND", "INFO", "get", "set", "mset", "incrbyfloat", "client|id", "nosuch"),
            ("COMMAND", "INFO", "get|key", "config|get|key"),
            ("COMMAND", "DOCS", "get", "set"),
            ("COMMAND", "GETKEYS", "get", "k"),
            ("COMMAND", "GETKEYS", "mset", "a", "1", "b", "2"),
            ("COMMAND", "GETKEYS", "rename", "a", "b"),
            ("COMMAND", "GETKEYS", "get"),
            ("COMMAND", "GETKEYS", "ping", "x"),
            ("COMMAND", "GETKEYS", "nosuch", "x"),
            ("COMMAND", "GETKEYS", "set", "k"),
            ("COMMAND", "GETKEYSANDFLAGS", "set", "k", "v"),
            ("COMMAND", "GETKEYSANDFLAGS", "set", "k", "v", "GET"),
            ("COMMAND", "GETKEYSANDFLAGS", "mset", "k1", "v1", "k2", "v2"),
            ("COMMAND", "GETKEYSANDFLAGS", "del", "k1", "k2"),
            ("COMMAND", "LIST", "FILTERBY", "PATTERN", "get"),
            ("COMMAND", "LIST", "FILTERBY", "PATTERN", "client|getn*"),
            ("COMMAND", "LIST", "FILTERBY", "ACLCAT", "nosuch"),
            ("COMMAND", "LIST", "FILTERBY", "MODULE", "nosuch"),
            ("COMMAND", "LIST", "bad"),
            ("COMMAND", "LIST", "FILTERBY", "bad", "x"),
            ("COMMAND", "COUNT", "x"),
            ("COMMAND", "NOSUCH"),
            ("COMMAND", "HELP"),
            ("unchecked", "HELLO", "3"),
            ("COMMAND", "INFO", "get", "client|setname"),
            ("COMMAND", "INFO", "nosuch"),
            ("COMMAND", "DOCS", "get"),
            ("COMMAND", "GETKEYSANDFLAGS", "set", "k", "v"),
        ]
    )


def test_negative_multibulk_count_is_an_empty_request(node: SynapProcess, real_redis: int) -> None:
    stream = b"*-10\r\n" + encode("PING") + b"*0\r\n*-1\r\n" + encode("ECHO", "*-3") + b"*-5\r\n"
    replies = []
    for port in (real_redis, node.resp_port):
        wire = Wire(port)
        try:
            replies.append(wire.send(stream).send(encode("PING", "after")).raw())
        finally:
            wire.close()
    assert replies[0] == replies[1] == b"+PONG\r\n$3\r\n*-3\r\n$5\r\nafter\r\n"


def test_expiry_bounds(check: Check) -> None:
    script: list[Step] = []
    for command, value, check_after in [
        ("PEXPIREAT", "9223372036854770000", "EXISTS"),
        ("EXPIREAT", "9223372036854775", "EXISTS"),
        ("EXPIREAT", "9223372036854776", "EXISTS"),
        ("PEXPIREAT", "9223372036854775807", "EXISTS"),
        ("EXPIRE", "9223372036854775807", "EXISTS"),
        ("PEXPIRE", "9223372036854775807", "EXISTS"),
        ("PEXPIRE", "9223370000000000000", "EXISTS"),
        ("EXPIRE", "-9223372036854775", "EXISTS"),  # large negative: deleted
        ("EXPIRE", "-9223372036854776", "EXISTS"),
        ("PEXPIREAT", "-9223372036854770000", "EXISTS"),
        ("EXPIREAT", "-9223372036854775808", "EXISTS"),
        ("PEXPIRE", "-9223372036854775808", "EXISTS"),
        ("EXPIRE", "abc", "EXISTS"),
    ]:
        script += [("SET", "foo", "bar"), (command, "foo", value), (check_after, "foo")]
    script += [
        ("SET", "foo", "bar", "PXAT", "9223372036854775807"),
        ("SET", "foo", "bar", "EXAT", "9223372036854775"),
        ("SET", "foo", "bar", "EXAT", "9223372036854776"),
        ("SET", "foo", "bar", "EX", "9223372036854775"),
        ("SET", "foo", "bar", "EX", "0"),
        ("SET", "foo", "bar", "PX", "-5"),
        ("SET", "foo", "bar", "EX", "10", "EX", "20"),  # the same option twice: allowed
        ("TTL", "foo"),
        ("SET", "foo", "bar", "PX", "10", "PX", "100000"),
        ("SET", "foo", "bar", "EX", "-1", "EX", "10"),  # only the last value counts
        ("SET", "foo", "bar", "EX", "10", "PX", "20"),
        ("SET", "foo", "bar", "EX", "10", "KEEPTTL"),
        ("SET", "foo", "bar", "NX", "NX"),
        ("SET", "foo", "bar", "XX", "XX", "GET", "GET"),
        ("SET", "foo", "bar", "NX", "XX"),
    ]
    check(script)


def test_incrbyfloat_in_long_double(check: Check) -> None:
    script: list[Step] = [
        ("SET", "f", "0.1"),
        ("INCRBYFLOAT", "f", "0.2"),  # 0.3, as with long double
        ("INCRBYFLOAT", "f", " 1"),
        ("INCRBYFLOAT", "f", "1 "),
        ("INCRBYFLOAT", "f", ""),
        ("INCRBYFLOAT", "f", "0x10"),
        ("INCRBYFLOAT", "f", "0X1p-3"),
        ("INCRBYFLOAT", "f", "1e400"),  # finite in long double
        ("INCRBYFLOAT", "f", "1e5000"),
        ("INCRBYFLOAT", "f", "1e-5000"),
        ("INCRBYFLOAT", "f", "inf"),
        ("INCRBYFLOAT", "f", "-Infinity"),
        ("INCRBYFLOAT", "f", "nan"),
        ("INCRBYFLOAT", "f", "1e"),
        ("SET", "f", "17179869184"),
        ("INCRBYFLOAT", "f", "1.5"),
        ("INCRBYFLOAT", "f", "-1.1"),
        ("INCRBYFLOAT", "f", ".5"),
        ("INCRBYFLOAT", "f", "5."),
        ("INCRBYFLOAT", "f", "+3"),
        ("INCRBYFLOAT", "f", "-17179869189.90000000037252903"),
        ("SET", "f", "3"),
        ("INCRBYFLOAT", "f", "1.1e-10"),
        ("INCRBYFLOAT", "f", "1e17"),
        ("INCRBYFLOAT", "f", "0.000000000000000000001"),
        ("SET", "f", "1.79769313486231570e+308"),
        ("INCRBYFLOAT", "f", "1.79769313486231570e+308"),
        ("SET", "f", " 10"),
        ("INCRBYFLOAT", "f", "1"),
        ("SET", "f", "0x10"),
        ("INCRBYFLOAT", "f", "1"),
        ("SET", "f", "inf"),
        ("INCRBYFLOAT", "f", "1"),
        ("INCRBYFLOAT", "f", "x"),
        ("SET", "f", "-0.5"),
        ("INCRBYFLOAT", "f", "0.5"),
        ("INCRBYFLOAT", "f", "-0.000000000000000001"),
        ("INCRBYFLOAT", "nokey", "2.5e-3"),
        ("INCRBYFLOAT", "nokey", "1e-18"),
    ]
    check(script)


def test_auth_and_hello(check: Check) -> None:
    check(
        [
            ("AUTH", "default", "anything"),  # nopass default user: OK
            ("AUTH", "someone", "pw"),
            ("AUTH", "pw"),
            ("AUTH",),
            ("HELLO", "2", "AUTH", "someone", "pw"),
            ("HELLO", "2", "AUTH", "default"),
            ("HELLO", "2", "SETNAME", "a b"),
            ("HELLO", "2", "SETNAME"),
            ("HELLO", "2", "FOO"),
            ("HELLO", "4"),
            ("HELLO", "x"),
            ("CLIENT", "GETNAME"),
            ("HELLO", "3", "SETNAME", "nm", "FOO"),
            ("CLIENT", "GETNAME"),
            ("ROLE", "x"),
            ("CLIENT", "ID", "x"),
            ("CLIENT",),
            ("CLIENT", "NOSUCH"),
            ("CLIENT", "NO-EVICT", "maybe"),
            ("CLIENT", "NO-EVICT", "on"),
            ("CLIENT", "NO-EVICT", "off"),
            ("CLIENT", "LIST", "ID", "abc"),
            ("CLIENT", "LIST", "ID", "0"),
            ("CLIENT", "LIST", "ID", "99999"),
            ("CLIENT", "LIST", "TYPE", "foo"),
            ("CLIENT", "LIST", "TYPE", "master"),
            ("CLIENT", "LIST", "foo"),
            ("CLIENT", "KILL"),
            ("CLIENT", "KILL", "ID", "str"),
            ("CLIENT", "KILL", "ID", "0"),
            ("CLIENT", "KILL", "ID", "10", "wrong"),
            ("CLIENT", "KILL", "TYPE", "wrong"),
            ("CLIENT", "KILL", "USER", "wrong"),
            ("CLIENT", "KILL", "SKIPME", "maybe"),
            ("CLIENT", "KILL", "1.2.3.4:5"),
            ("CLIENT", "KILL", "ID", "99999"),
            ("CLIENT", "KILL", "ADDR", "1.2.3.4:5"),
            ("RESET",),
            ("MULTI",),
            ("RESET",),
            ("EXEC",),
        ]
    )


def test_scan_cursor_bounds(check: Check) -> None:
    check(
        [
            ("SCAN", "18446744073709551615"),
            ("SCAN", "18446744073709551616"),
            ("SCAN", "-1"),
            ("SCAN", "-18446744073709551616"),
            ("SCAN", "+0"),
            ("SCAN", " 1"),
            ("SCAN", "1 "),
            ("SCAN", "-"),
            ("SCAN", "abc"),
        ]
    )


# One command a line, split as redis-cli splits them (shlex).
STRING_SCRIPT = """
    SET s "Hello World"
    GETRANGE s 0 4
    GETRANGE s -5 -1
    GETRANGE s -1 -5
    GETRANGE s 5 100
    GETRANGE s 100 200
    GETRANGE s -100 2
    GETRANGE nokey 0 1
    GETRANGE s a 1
    SUBSTR s 1 3
    SETRANGE s 6 Redis
    GET s
    SETRANGE s 20 X
    GET s
    SETRANGE nokey 0 ""
    SETRANGE s 0 ""
    SETRANGE s -1 x
    SETRANGE s 536870911 xx
    SETRANGE k2 3 abc
    GET k2
    SET n 123
    OBJECT ENCODING n
    SET big aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
    OBJECT ENCODING big
    OBJECT ENCODING nokey
    OBJECT REFCOUNT s
    OBJECT FREQ s
    OBJECT FOO s
    OBJECT ENCODING
    SETBIT b 7 1
    SETBIT b 7 1
    SETBIT b 100 1
    GET b
    GETBIT b 7
    GETBIT b 6
    GETBIT b 1000
    GETBIT nokey 1
    SETBIT b -1 1
    SETBIT b 4294967296 1
    SETBIT b 1 2
    SETBIT b 1 x
    BITCOUNT b
    BITCOUNT b 0 0
    BITCOUNT b 0
    BITCOUNT b 0 -1 BIT
    BITCOUNT b 5 30 BIT
    BITCOUNT b 1 0
    BITCOUNT b 0 0 FOO
    BITCOUNT nokey
    BITCOUNT nokey 0
    SET bp "\xff\xf0\x00"
    BITPOS bp 0
    BITPOS bp 1
    BITPOS bp 0 1
    BITPOS bp 0 0 0
    BITPOS bp 1 2
    BITPOS bp 1 2 -1
    BITPOS bp 0 0 -1 BIT
    BITPOS bp 0 3 7 BIT
    BITPOS bp 1 20 23 BIT
    BITPOS bp 2
    BITPOS bp x
    BITPOS nokey 0
    BITPOS nokey 1
    SET full "\xff\xff"
    BITPOS full 0
    BITPOS full 0 0
    BITPOS full 0 0 -1
    BITPOS full 0 0 -1 BIT
    SET empty ""
    BITPOS empty 0
    BITPOS empty 1
    BITCOUNT empty
    SET l1 ohmytext
    SET l2 mynewtext
    LCS l1 l2
    LCS l1 l2 LEN
    LCS l1 l2 IDX
    LCS l1 l2 IDX MINMATCHLEN 4
    LCS l1 l2 IDX MINMATCHLEN 4 WITHMATCHLEN
    LCS l1 l2 IDX WITHMATCHLEN
    LCS l1 l2 IDX LEN
    LCS l1 l2 FOO
    LCS l1 nokey
    LCS l1 nokey IDX
    COPY l1 l3
    COPY l1 l3
    COPY l1 l3 REPLACE
    COPY l1 l1
    COPY nokey l9
    COPY l1 l4 DB 0
    COPY l1 l5 FOO
    SET e1 v EX 100
    COPY e1 e2
    TTL e2
    TOUCH l1 l2 nokey
    TOUCH
    EXPIRETIME l1
    PEXPIRETIME l1
    EXPIRETIME nokey
    SET e3 v EXAT 4000000000
    EXPIRETIME e3
    PEXPIRETIME e3
    GETEX l1
    GETEX l1 EX 100
    TTL l1
    GETEX l1 PERSIST
    TTL l1
    GETEX l1 PX 100000 EX 10
    GETEX l1 EX 0
    GETEX l1 EX -1
    GETEX l1 PERSIST EX 10
    GETEX l1 EX 10 PERSIST
    GETEX l1 FOO
    GETEX l1 EXAT 4000000000
    EXPIRETIME l1
    GETEX l1 EXAT 1
    EXISTS l1
    GETEX nokey EX 10
    GETEX l2 EX 9223372036854775
    GETEX l2 PX 9223372036854775807
    RANDOMKEY x
    FLUSHALL
    RANDOMKEY
    SET only 1
    RANDOMKEY
"""


def test_string_and_keyspace_commands(check: Check) -> None:
    script: list[Step] = [tuple(shlex.split(line)) for line in STRING_SCRIPT.strip().splitlines()]
    # Binary values for the bit commands.
    script += [
        ("SET", "bin", b"\xff\xf0\x00"),
        ("BITPOS", "bin", "0"),
        ("BITPOS", "bin", "1", "1"),
        ("BITPOS", "bin", "0", "0", "0"),
        ("BITPOS", "bin", "1", "12", "23", "BIT"),
        ("BITCOUNT", "bin", "4", "11", "BIT"),
        ("BITCOUNT", "bin", "-2", "-1"),
        ("SETBIT", "bin", "23", "1"),
        ("GET", "bin"),
        ("SET", "ones", b"\xff\xff"),
        ("BITPOS", "ones", "0"),
        ("BITPOS", "ones", "0", "0", "-1"),
        ("BITPOS", "ones", "0", "1"),
    ]
    check(script)


CONFIG_SCRIPT = """
    CONFIG GET maxmemory
    CONFIG SET maxmemory 100mb
    CONFIG GET maxmemory
    CONFIG SET maxmemory 1gb
    CONFIG GET maxmemory
    CONFIG SET maxmemory abc
    CONFIG SET maxmemory 10 maxmemory 20
    CONFIG SET maxmemory 0
    CONFIG SET maxmemory-policy allkeys-lru
    CONFIG GET maxmemory-policy
    CONFIG SET maxmemory-policy foo
    CONFIG SET maxmemory-policy noeviction
    CONFIG SET timeout 0
    CONFIG SET timeout abc
    CONFIG GET timeout
    CONFIG SET nosuch 1
    CONFIG SET databases 4
    CONFIG SET maxmemory
    CONFIG SET maxmemory 1 timeout
    CONFIG GET
    CONFIG FOO
    CONFIG RESETSTAT x
    CONFIG REWRITE
    DEBUG SET-ACTIVE-EXPIRE 0
    DEBUG SET-ACTIVE-EXPIRE 1
    DEBUG SLEEP 0
    DEBUG FOO
    CONFIG SET maxmemory 0 maxmemory-policy noeviction
"""


LIMITS_SCRIPT = """
    DEBUG PROTOCOL string
    DEBUG PROTOCOL integer
    DEBUG PROTOCOL double
    DEBUG PROTOCOL bignum
    DEBUG PROTOCOL null
    DEBUG PROTOCOL array
    DEBUG PROTOCOL set
    DEBUG PROTOCOL map
    DEBUG PROTOCOL attrib
    DEBUG PROTOCOL push
    DEBUG PROTOCOL true
    DEBUG PROTOCOL false
    DEBUG PROTOCOL verbatim
    DEBUG PROTOCOL nosuch
    unchecked HELLO 3
    DEBUG PROTOCOL string
    DEBUG PROTOCOL integer
    DEBUG PROTOCOL double
    DEBUG PROTOCOL bignum
    DEBUG PROTOCOL null
    DEBUG PROTOCOL array
    DEBUG PROTOCOL set
    DEBUG PROTOCOL map
    DEBUG PROTOCOL true
    DEBUG PROTOCOL false
    DEBUG PROTOCOL verbatim
    unchecked HELLO 2
    SET x 1
    CONFIG SET maxmemory 1
    MULTI
    SET y 1
    GET x
    DISCARD
    GET x
    MULTI
    GET x
    PING
    EXEC
    SET z 1
    CONFIG SET maxmemory 0
    MULTI
    SET a 1
    CONFIG SET maxmemory 1
    EXEC
    CONFIG SET maxmemory 0
    CONFIG SET min-replicas-to-write 2
    SET q 1
    GET x
    MULTI
    GET x
    EXEC
    MULTI
    INCR x
    EXEC
    CONFIG SET min-replicas-max-lag abc
    CONFIG SET min-replicas-to-write 0
    SET q 1
    CONFIG GET min-replicas-to-write
    CONFIG GET min-replicas-max-lag
"""


def test_debug_protocol_oom_and_min_replicas(check: Check) -> None:
    """DEBUG PROTOCOL in RESP2 and RESP3; a transaction over maxmemory or without the
    replicas min-replicas-to-write asks for (a standalone node has none)."""
    check([tuple(shlex.split(line)) for line in LIMITS_SCRIPT.strip().splitlines()])


def test_min_replicas_to_write_counts_connected_replicas(node_factory: NodeFactory) -> None:
    master = node_factory.master()
    replica = node_factory.replica(master)
    wait_caught_up(master, [replica])
    m = master.redis()
    m.config_set("min-replicas-to-write", "1")
    assert m.set("k", "v") is True
    m.config_set("min-replicas-to-write", "2")
    with pytest.raises(redis.exceptions.ResponseError, match="NOREPLICAS"):
        m.set("k", "w")
    response = master.http.post("/kv/set", json={"key": "k", "value": "rest"})
    assert response.status_code == 503
    m.config_set("min-replicas-to-write", "0")
    assert m.set("k", "x") is True


def test_config_get_set_and_debug(check: Check) -> None:
    check([tuple(shlex.split(line)) for line in CONFIG_SCRIPT.strip().splitlines()])


def test_config_set_takes_effect_and_rewrite_keeps_the_yaml(node_factory: NodeFactory) -> None:
    node = node_factory(config={"server": {"max_clients": 50}, "kv_store": {"max_memory_mb": 0}})
    original = node.config_path.read_text() if node.config_path else ""
    r = node.redis()
    r.set("a", "x" * 1000)
    assert r.config_set("maxmemory", "1500") is True
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        r.set("b", "y" * 1000)
    assert r.config_set("maxmemory-policy", "allkeys-lru") is True
    assert r.set("b", "y" * 1000) is True  # the LRU policy evicts "a" to make room
    assert r.exists("a") == 0
    r.config_set("maxmemory", "3mb")
    r.config_set("timeout", "1")
    idle = Wire(node.resp_port)
    assert idle.send(encode("PING")).replies(1) == [b"PONG"]
    assert r.execute_command("CONFIG", "REWRITE") == b"OK"
    text = node.config_path.read_text() if node.config_path else ""
    assert "max_memory_mb: 3" in text and "eviction_policy: lru" in text
    assert "client_timeout_secs: 1" in text and "max_clients: 50" in text
    assert text != original
    try:
        idle.sock.settimeout(10)  # closed by the server after about a second idle
        assert idle.sock.recv(100) == b""
    finally:
        idle.close()
    node.restart()
    assert node.redis().config_get("maxmemory") == {"maxmemory": str(3 * 1024 * 1024)}
    assert node.redis().config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}


_FIELD = re.compile(rb"([a-z-]+)=")


def test_client_list_and_info_fields(node: SynapProcess, real_redis: int) -> None:
    """Same fields in the same order, with the values a fresh idle client shows."""
    lines = []
    for port in (real_redis, node.resp_port):
        wire, other = Wire(port), Wire(port)
        try:
            other_id = other.send(encode("CLIENT", "ID")).replies(1)[0]
            my_id = wire.send(encode("CLIENT", "ID")).replies(1)[0]
            assert isinstance(my_id, int) and isinstance(other_id, int)
            info = wire.send(encode("CLIENT", "INFO")).replies(1)[0]
            listed = wire.send(encode("CLIENT", "LIST", "ID", my_id, other_id)).replies(1)[0]
            assert isinstance(listed, bytes) and isinstance(info, bytes)
            lines.append((info, listed))
            rows = listed.splitlines()
            assert [r.split(b" ")[0] for r in rows] == [b"id=%d" % my_id, b"id=%d" % other_id]
            assert b" cmd=client|list " in rows[0] and b" qbuf=26 " not in rows[0]
            assert b" flags=N " in info and b" cmd=client|info " in info and b" qbuf=26 " in info
        finally:
            wire.close()
            other.close()
    (redis_info, redis_list), (synap_info, synap_list) = lines
    assert _FIELD.findall(synap_info) == _FIELD.findall(redis_info)
    assert _FIELD.findall(synap_list) == _FIELD.findall(redis_list)


def test_client_kill_closes_the_other_connection(check: Check) -> None:
    check(
        [
            (1, "PING"),
            ("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"),
            ("CLIENT", "KILL", "SKIPME", "yes"),
        ]
    )


def test_watch_on_a_replica_sees_the_replication_stream(node_factory: NodeFactory) -> None:
    """A key watched on a replica and changed by the master (through the replication
    stream) aborts the replica client's EXEC."""
    master = node_factory.master(config={"replication": {"heartbeat_interval_ms": 100}})
    replica = node_factory.replica(master)
    m = master.redis()
    m.set("w", "1")
    r = replica.redis()
    wait_for(lambda: r.get("w") == b"1", 10, message="replica did not catch up")
    wire = Wire(replica.resp_port)
    try:
        assert wire.send(encode("WATCH", "w")).replies(1) == [b"OK"]
        m.set("w", "2")
        wait_for(lambda: r.get("w") == b"2", 10, message="replica did not catch up")
        wire.send(encode("MULTI") + encode("GET", "w") + encode("EXEC"))
        assert wire.replies(3) == [b"OK", b"QUEUED", None]
        # Not changed since WATCH: EXEC runs.
        wire.send(encode("WATCH", "w") + encode("MULTI") + encode("GET", "w") + encode("EXEC"))
        assert wire.replies(4) == [b"OK", b"OK", b"QUEUED", [b"2"]]
        # FLUSHALL on the master reaches the replica and aborts it too.
        wire.send(encode("WATCH", "w"))
        assert wire.replies(1) == [b"OK"]
        m.flushall()
        wait_for(lambda: r.dbsize() == 0, 10, message="replica did not catch up")
        wire.send(encode("MULTI") + encode("GET", "w") + encode("EXEC"))
        assert wire.replies(3) == [b"OK", b"QUEUED", None]
    finally:
        wire.close()


def test_redis_py_optimistic_locking(node: SynapProcess) -> None:
    """redis-py's ``transaction()`` retries its function until no watched key changed."""
    client = node.redis()
    other = node.redis()
    client.set("counter", 0)
    attempts: list[int] = []

    def increment(pipe: redis.client.Pipeline) -> None:
        value = int(pipe.get("counter") or 0)
        if not attempts:
            other.set("counter", 100)  # a concurrent writer: the first attempt must fail
        attempts.append(value)
        pipe.multi()
        pipe.set("counter", value + 1)

    client.transaction(increment, "counter")
    assert attempts == [0, 100]
    assert client.get("counter") == b"101"


def test_new_writes_replicate_and_survive_a_restart(node_factory: NodeFactory) -> None:
    """GETEX, SETRANGE, SETBIT and COPY each commit one effect record: a replica ends up
    with the same data (and expiries) as the master, and so does the master's own WAL
    after a restart."""
    master = node_factory.master()
    replica = node_factory.replica(master)
    m = master.redis()
    m.set("s", "Hello World")
    m.set("g", "v")
    assert m.execute_command("SETRANGE", "s", 6, "Redis") == 11
    assert m.execute_command("SETRANGE", "pad", 3, "x") == 4
    assert m.execute_command("SETBIT", "bits", 9, 1) == 0
    assert m.execute_command("GETEX", "g", "EX", 500) == b"v"
    assert m.execute_command("COPY", "g", "g2") == 1
    m.set("p", "v", ex=100)
    assert m.execute_command("GETEX", "p", "PERSIST") == b"v"
    m.set("gone", "v")
    assert m.execute_command("GETEX", "gone", "PXAT", 1) == b"v"
    wait_caught_up(master, [replica])
    assert_same_data(master, [replica])
    r = replica.redis()
    assert r.get("s") == b"Hello Redis" and r.get("pad") == b"\0\0\0x"
    assert r.get("bits") == b"\x00\x40" and r.get("g2") == b"v" and r.exists("gone") == 0
    assert 490 < r.ttl("g2") <= 500 and r.ttl("p") == -1
    before = digest(master)
    master.restart()
    assert digest(master) == before


_MONITOR_LINE = re.compile(rb"^\d+\.\d{6} \[0 127\.0\.0\.1:\d+\] (.*)$")


def test_monitor_shows_commands_as_redis_does(node: SynapProcess, real_redis: int) -> None:
    """The part after the timestamp and address is the same as Redis's, byte for byte."""
    commands = [
        encode("SET", "mon", 'a "quoted"\n\x01 value'),
        encode("GET", "mon"),
        encode("AUTH", "default", "secret"),
        encode("MULTI"),
        encode("INCR", "n"),
        encode("EXEC"),
        encode("CONFIG", "GET", "maxmemory"),  # admin: not shown
        encode("PING"),
    ]
    seen = []
    for port in (real_redis, node.resp_port):
        monitor, client = Wire(port), Wire(port)
        try:
            assert monitor.send(encode("MONITOR")).replies(1) == [b"OK"]
            for request in commands:
                client.send(request).reply_bytes()
            lines = monitor.replies(7)
            seen.append([_MONITOR_LINE.match(line).group(1) for line in lines])  # type: ignore[union-attr]
        finally:
            monitor.close()
            client.close()
    assert seen[0] == seen[1]
    assert seen[1][0] == b'"SET" "mon" "a \\"quoted\\"\\n\\x01 value"'
    assert seen[1][2] == b'"AUTH" "(redacted)" "(redacted)"'


def test_shutdown(check: Check, node_factory: NodeFactory) -> None:
    check(
        [
            ("SHUTDOWN", "ABORT"),
            ("SHUTDOWN", "FOO"),
            ("SHUTDOWN", "NOSAVE", "ABORT"),
        ]
    )
    doomed = node_factory(name="doomed")
    doomed.redis().set("k", "v")
    wire = Wire(doomed.resp_port)
    try:
        wire.send(encode("SHUTDOWN", "SAVE"))
        wire.sock.settimeout(10)
        assert wire.sock.recv(100) == b""  # closed without a reply, as Redis does
    finally:
        wire.close()
    assert doomed.wait_exit(15) == 0
    doomed.start()
    assert doomed.redis().get("k") == b"v"


def _info(wire: Wire, *sections: str) -> bytes:
    reply = wire.send(encode("INFO", *sections)).replies(1)[0]
    assert isinstance(reply, bytes)
    return reply


def _fields(text: bytes) -> dict[bytes, list[bytes]]:
    """Section header -> the field names under it."""
    out: dict[bytes, list[bytes]] = {}
    current = b""
    for line in text.split(b"\r\n"):
        if line.startswith(b"# "):
            current = line[2:]
            out[current] = []
        elif b":" in line:
            out[current].append(line.split(b":", 1)[0])
    return out


# Fields of ours that Redis does not have (named so, or for the Python runtime).
_OURS = (b"synap_", b"python_version")


def test_info_sections_and_field_names(node: SynapProcess, real_redis: int) -> None:
    theirs, ours = Wire(real_redis), Wire(node.resp_port)
    try:
        for wire in (theirs, ours):
            wire.send(encode("CONFIG", "RESETSTAT") + encode("SET", "i", "1") + encode("NOSUCH"))
            wire.replies(3)
        for sections in [
            (),
            ("default",),
            ("all",),
            ("everything",),
            ("cpu", "default"),
            ("cpu", "sentinel"),
            ("commandSTATS",),
            ("server", "keyspace"),
            ("nosuch",),
        ]:
            expected, got = _fields(_info(theirs, *sections)), _fields(_info(ours, *sections))
            expected.pop(b"Latencystats", None)  # per-command latency percentiles: not kept
            assert list(got) == list(expected), sections
            for header, names in got.items():
                if header == b"Commandstats":
                    continue  # per command: compared below
                extra = [n for n in names if n not in expected[header] and not n.startswith(_OURS)]
                assert not extra, f"{header!r}: fields Redis does not have: {extra}"
        stats = _info(ours, "commandstats", "errorstats")
        assert re.search(
            rb"cmdstat_set:calls=1,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=0,failed_calls=0",
            stats,
        )
        assert b"errorstat_ERR:count=1\r\n" in stats
        for wire in (theirs, ours):
            wire.send(encode("HELLO", "3")).replies(1)
        verbatim = [w.send(encode("INFO", "cpu")).reply_bytes() for w in (theirs, ours)]
        assert all(v.startswith(b"=") and b"\r\ntxt:# CPU\r\n" in v for v in verbatim), verbatim
    finally:
        theirs.close()
        ours.close()


def test_commandstats_count_from_the_start_and_from_resetstat(node_factory: NodeFactory) -> None:
    """INFO commandstats counts every command from the node's start (it reads the timing
    /metrics keeps; an INFO is counted once it has answered), and from CONFIG RESETSTAT."""
    wire = Wire(node_factory(name="fresh-stats").resp_port)
    try:
        wire.send(encode("SET", "a", "1") + encode("NOSUCH") + encode("INFO", "server"))
        wire.replies(3)
        stats = _info(wire, "commandstats", "errorstats")
        assert b"cmdstat_info:calls=1," in stats
        assert b"cmdstat_set:calls=1," in stats
        assert b"errorstat_ERR:count=1\r\n" in stats
        wire.send(encode("CONFIG", "RESETSTAT") + encode("SET", "b", "2")).replies(2)
        stats = _info(wire, "commandstats", "errorstats")
        assert b"cmdstat_set:calls=1," in stats
        assert b"cmdstat_config|resetstat:calls=1," in stats
        assert b"cmdstat_info" not in stats and b"errorstat_ERR" not in stats
    finally:
        wire.close()


def test_config_set_appendfsync_switches_the_fsync_policy_live(
    node_factory: NodeFactory, real_redis: int
) -> None:
    """appendfsync always|everysec|no maps onto persistence.fsync_mode at run time: WAITAOF
    sees the new policy at once, CONFIG REWRITE writes it, wrong values are worded as Redis."""
    node = node_factory(config={"persistence": {"fsync_mode": "never"}})
    r = node.redis()
    theirs = redis.Redis(host=HOST, port=real_redis)
    for value in ("sometimes", "yes"):
        with pytest.raises(redis.ResponseError) as ours:
            r.config_set("appendfsync", value)
        with pytest.raises(redis.ResponseError) as expected:
            theirs.config_set("appendfsync", value)
        assert str(ours.value) == str(expected.value)
    r.set("k", "v")
    with pytest.raises(redis.ResponseError):  # nothing is ever fsynced under "no"
        r.execute_command("WAITAOF", 1, 0, 100)
    assert r.config_set("appendfsync", "always") is True
    assert r.config_get("appendfsync") == {"appendfsync": "always"}
    r.set("k", "v2")
    assert r.execute_command("WAITAOF", 1, 0, 1000) == [1, 0]
    assert r.config_set("appendfsync", "everysec") is True
    r.set("k", "v3")
    assert r.execute_command("WAITAOF", 1, 0, 5000) == [1, 0]  # the periodic timer fsyncs
    # All or nothing: a bad second pair leaves appendfsync as it was.
    with pytest.raises(redis.ResponseError):
        r.execute_command("CONFIG", "SET", "appendfsync", "always", "maxmemory-policy", "bogus")
    assert r.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert r.execute_command("CONFIG", "REWRITE") == b"OK"
    text = node.config_path.read_text() if node.config_path else ""
    assert "fsync_mode: periodic" in text, text
    node.restart()
    assert node.redis().config_get("appendfsync") == {"appendfsync": "everysec"}
