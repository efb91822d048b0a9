"""The Redis protocol on the wire: inline commands, pipelining, requests cut into reads at
any byte, and replies compared byte for byte with a real Redis.

Raw sockets here, so that what is tested is the bytes, not a client library's reading of
them.  One standalone node serves the module."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import pytest

from tests.support.fixtures import module_node
from tests.support.real_redis import Wire, encode, real_redis
from tests.support.server import SynapProcess

__all__ = ["real_redis"]  # a fixture, used by name


node = module_node("protocol")


@pytest.fixture
def wire(node: SynapProcess) -> Iterator[Wire]:
    w = Wire(node.resp_port)
    yield w
    w.close()


# ----------------------------------------------------------------- inline commands


def test_inline_ping_on_a_raw_socket(wire: Wire) -> None:
    assert wire.send(b"PING\r\n").replies(1) == [b"PONG"]
    assert wire.send(b"PING\n\r\nECHO hello\n").replies(2) == [b"PONG", b"hello"]


def test_inline_commands_with_quotes_as_redis_splits_them(wire: Wire) -> None:
    wire.send(b'SET "inline key" "tab\\there \\x41"\r\nGET "inline key"\r\n')
    assert wire.replies(2) == [b"OK", b"tab\there A"]
    wire.send(b"SET 'single' 'it\\'s'\r\nGET single\r\n")
    assert wire.replies(2) == [b"OK", b"it's"]


# ----------------------------------------------------------------- pipelining


def test_a_thousand_pipelined_requests_in_one_write(wire: Wire) -> None:
    batch = b"".join(encode("INCR", "pipelined") for _ in range(1000))
    assert wire.send(batch).replies(1000) == list(range(1, 1001))


def test_inline_commands_right_after_multibulk_requests_in_one_write(wire: Wire) -> None:
    wire.send(encode("SET", "mixed", "1") + b"INCR mixed\r\n\r\n" + encode("GET", "mixed"))
    assert wire.replies(3) == [b"OK", 2, b"2"]


# ----------------------------------------------------------------- reads cut anywhere
# Requests cut at exact points are unit tests of the reader (tests/unit/test_resp_reader.py);
# this is the smoke test that the server's reads go through it.


def test_request_cut_at_an_argument_boundary_is_not_taken_for_inline(wire: Wire) -> None:
    # Regression: the second read starts with "$" and hiredis reports no pending data,
    # which once made the server parse it as an inline command (and store a list).
    wire.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n")
    time.sleep(0.1)
    wire.send(b"$5\r\nsplit\r\n")
    time.sleep(0.1)
    wire.send(b"*2\r\n$3\r\nGET\r\n")
    time.sleep(0.1)
    wire.send(b"$1\r\nk\r\n")
    assert wire.replies(2) == [b"OK", b"split"]


# ----------------------------------------------------------------- RESP3


def test_hello_3_switches_the_connection_to_resp3(wire: Wire) -> None:
    wire.send(encode("HELLO", 3))
    hello = wire.replies(1)[0]
    assert isinstance(hello, dict) and hello[b"proto"] == 3
    wire.send(encode("GET", "no-such-key"))
    assert wire.raw() == b"_\r\n"
    wire.send(encode("CONFIG", "GET", "maxmemory"))
    assert wire.raw().startswith(b"%1\r\n")
    wire.send(encode("HELLO", 2) + encode("GET", "no-such-key"))
    assert wire.raw().endswith(b"$-1\r\n")


# ----------------------------------------------------------------- real Redis


# Replies that do not depend on timing or on the server's identity; compared byte for byte.
SCRIPT: list[Sequence[str | bytes | int]] = [
    ("FLUSHALL",),
    ("SET", "k", "v"),
    ("SET", "k", "v", "NX"),
    ("SET", "k", "v2", "XX", "GET"),
    ("SET", "k", "v", "EX", 0),
    ("SET", "k", "v", "EX", -1),
    ("SET", "k", "v", "EX", "abc"),
    ("SET", "k", "v", "PX", 100, "EX", 10),
    ("SET", "k", "v", "KEEPTTL", "EX", 10),
    ("SET", "k", "v", "NX", "XX"),
    ("SET", "missing", "v", "XX"),
    ("SET", "k", "v", "EX", 9999999999999999),
    ("SET", "k", "v", "PX", 9223372036854775807),
    ("SET", "k", "v", "EXAT", 1),
    ("GET", "k"),
    ("SET",),
    ("GET", "a", "b"),
    ("SETNX", "k", "v"),
    ("SETEX", "k", 0, "v"),
    ("SETEX", "k", 9999999999999999, "v"),
    ("PSETEX", "k", 100, "v"),
    ("GETSET", "k", "new"),
    ("GETSET", "nokey", "v"),
    ("GETDEL", "k"),
    ("GETDEL", "k"),
    ("MGET", "k", "nokey", "nokey2"),
    ("MSET", "a", 1, "b"),
    ("MSET", "a", 1, "b", 2),
    ("MSETNX", "a", 1, "c", 3),
    ("DEL", "a", "b", "c"),
    ("UNLINK", "a", "b"),
    ("EXISTS", "a", "a", "nokey"),
    ("SET", "n", 10),
    ("INCR", "n"),
    ("INCRBY", "n", 5),
    ("INCRBY", "n", "abc"),
    ("INCRBY", "n", "1.5"),
    ("DECR", "n"),
    ("DECRBY", "n", 3),
    ("DECRBY", "n", -9223372036854775808),
    ("SET", "n", 9223372036854775807),
    ("INCR", "n"),
    ("SET", "n", -9223372036854775808),
    ("DECR", "n"),
    ("SET", "n", "010"),
    ("INCR", "n"),
    ("SET", "n", "+1"),
    ("INCR", "n"),
    ("SET", "s", "hello"),
    ("INCR", "s"),
    ("INCRBYFLOAT", "s", 1),
    ("SET", "f", "10.5"),
    ("INCRBYFLOAT", "f", "0.1"),
    ("INCRBYFLOAT", "f", "abc"),
    ("SET", "f", 3),
    ("INCRBYFLOAT", "f", "1.5"),
    ("APPEND", "s", " world"),
    ("APPEND", "nos", "x"),
    ("STRLEN", "s"),
    ("STRLEN", "nokey"),
    ("SET", "t", "v"),
    ("EXPIRE", "t", 100),
    ("TTL", "t"),
    ("EXPIRE", "t", 100, "NX"),
    ("EXPIRE", "t", 200, "XX"),
    ("EXPIRE", "t", 50, "GT"),
    ("EXPIRE", "t", 10, "LT"),
    ("EXPIRE", "t", 10, "XX", "NX"),
    ("EXPIRE", "t", 10, "GT", "LT"),
    ("EXPIRE", "t", 10, "FOO"),
    ("PERSIST", "t"),
    ("PERSIST", "t"),
    ("TTL", "t"),
    ("PTTL", "t"),
    ("TTL", "nokey"),
    ("PTTL", "nokey"),
    ("EXPIRE", "nokey", 10),
    ("EXPIRE", "t", "abc"),
    ("EXPIRE", "t", 9223372036854775807),
    ("PEXPIRE", "t", 9223372036854775807),
    ("EXPIREAT", "t", 1),
    ("EXISTS", "t"),
    ("SET", "t", "v"),
    ("PEXPIREAT", "t", 1),
    ("EXISTS", "t"),
    ("SET", "t", "v"),
    ("EXPIRE", "t", 0),
    ("EXISTS", "t"),
    ("KEYS",),
    ("KEYS", "a", "b"),
    ("KEYS", "s*"),
    ("TYPE", "s"),
    ("TYPE", "nokey"),
    ("SET", "r1", "v"),
    ("RENAME", "r1", "r2"),
    ("RENAME", "r1", "r2"),
    ("RENAME", "r2", "r2"),
    ("RENAMENX", "r2", "s"),
    ("DBSIZE",),
    ("DBSIZE", "x"),
    ("SELECT", 0),
    ("SELECT", "abc"),
    ("PING",),
    ("PING", "hello"),
    ("PING", "a", "b"),
    ("ECHO",),
    ("ECHO", "hi"),
    ("CLIENT", "SETNAME", "foo"),
    ("CLIENT", "GETNAME"),
    ("CLIENT", "SETNAME", "a b"),
    ("CLIENT", "SETNAME"),
    ("CONFIG", "GET", "maxmemory"),
    ("CONFIG", "GET", "maxmemory-policy"),
    ("CONFIG", "GET", "save"),
    ("WAIT", 0, 0),
    ("WAIT",),
    ("WAIT", "a", 0),
    ("AUTH", "foo"),
    ("HELLO", 4),
    ("HELLO", "abc"),
    ("NOSUCHCOMMAND", "a", "b", "c", "d", "e"),
    ("SCAN", "abc"),
    ("SCAN", 0, "COUNT", 0),
    ("SCAN", 0, "MATCH"),
    ("SCAN", 0, "FOO", "bar"),
    ("TYPE",),
    ("FLUSHALL", "FOO"),
    ("FLUSHALL", "ASYNC"),
    ("DBSIZE",),
    ("MULTI",),
    ("SET", "tx", 1),
    ("INCR", "tx"),
    ("GET", "tx"),
    ("EXEC",),
    ("EXEC",),
    ("DISCARD",),
    ("MULTI",),
    ("MULTI",),
    ("SET", "tx", 5),
    ("NOSUCHCOMMAND",),
    ("EXEC",),
    ("GET", "tx"),
    ("MULTI",),
    ("SET", "tx", 9),
    ("DISCARD",),
    ("GET", "tx"),
    ("MULTI",),
    ("EXEC",),
]


def test_replies_match_real_redis_byte_for_byte(node: SynapProcess, real_redis: int) -> None:
    theirs, ours = Wire(real_redis), Wire(node.resp_port)
    try:
        mismatches = []
        for command in SCRIPT:
            request = encode(*command)
            expected = theirs.send(request).reply_bytes()
            got = ours.send(request).reply_bytes()
            if expected != got:
                mismatches.append(f"{command}: redis {expected!r}, synap {got!r}")
        assert not mismatches, "\n".join(mismatches)
    finally:
        theirs.close()
        ours.close()
