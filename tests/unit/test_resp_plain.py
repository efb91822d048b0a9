"""The Cython read loop (synap/api/resp_plain.pyx) on its own: what it takes from a read,
where it stops, and what it answers.  (``test_resp_fast_path.py`` checks a connection
that uses it against the general path under random reads.)  Skipped where it is not
built (no Cython or compiler, or ``SYNAP_PURE_PYTHON=1``)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from synap.api import resp_codec as R
from synap.commands.layer import Commands
from synap.config import build_config
from synap.node import Node

plain: Any = pytest.importorskip("synap.api.resp_plain", reason="the Cython read loop is not built")
MAX_BULK = 512 * 1024 * 1024


def _encode(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _cmds() -> Commands:
    node = Node(build_config({}))
    node.commands.set(b"seed", b"seeded")
    return node.commands


def run(
    data: bytes, cmds: Commands | None = None, readable: bool = True, null: bytes = R.NULL2
) -> tuple[Any, ...]:
    """``(taken, ran, gets, last_set, replies, error)``"""
    result: list[object] = [None] * 7
    before = time.monotonic_ns()
    taken = plain.run(data, cmds or _cmds(), readable, null, MAX_BULK, result)
    started, elapsed = result[5:]
    assert isinstance(started, int) and isinstance(elapsed, int)
    assert before <= started <= started + elapsed <= time.monotonic_ns()  # the same clock
    return (taken, *result[:5])


def test_a_read_of_plain_gets_and_sets_is_taken_whole() -> None:
    cmds = _cmds()
    data = _encode(b"SET", b"a", b"1") + _encode(b"get", b"a") + _encode(b"GET", b"nope")
    data += _encode(b"set", b"", b"x" * 300) + _encode(b"GET", b"") + _encode(b"GET", b"seed")
    taken, ran, gets, last_set, replies, error = run(data, cmds)
    assert (taken, ran, gets, last_set, error) == (len(data), 6, 4, False, None)
    assert (
        replies
        == b"+OK\r\n$1\r\n1\r\n$-1\r\n+OK\r\n$300\r\n" + b"x" * 300 + b"\r\n$6\r\nseeded\r\n"
    )
    assert cmds.keyspace.data[b"a"] == b"1" and cmds.keyspace.data[b""] == b"x" * 300
    assert (cmds.stats.gets, cmds.stats.hits, cmds.stats.misses) == (4, 3, 1)
    assert cmds.history.offset == 3  # the seed and two SETs


@pytest.mark.parametrize(
    "tail",
    [
        b"GET seed\r\n",  # inline
        _encode(b"Get", b"seed"),  # neither upper nor lower case
        _encode(b"SET", b"k", b"v", b"NX"),  # options
        _encode(b"GET", b"k", b"extra"),  # wrong argument count
        _encode(b"DEL", b"k"),  # another command of three letters
        _encode(b"PING"),
        b"*2\r\n$03\r\nGET\r\n$1\r\nk\r\n",  # a length with a leading zero
        b"*2\r\n$3\r\nGET\r\n$-1\r\n",  # a negative length
        b"*02\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"*2\r\n$3\r\nGETX\r\n$1\r\nk\r\n",  # payload longer than declared
        b"*2\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"*0\r\n",
        b"*-1\r\n",
    ],
)
def test_it_stops_before_a_request_it_does_not_take(tail: bytes) -> None:
    head = _encode(b"SET", b"k", b"v")
    taken, ran, gets, last_set, replies, error = run(head + tail + _encode(b"GET", b"k"))
    assert (taken, ran, gets, last_set, replies, error) == (len(head), 1, 0, True, R.OK, None)


def test_it_takes_only_whole_requests_of_a_read_cut_anywhere() -> None:
    data = _encode(b"SET", b"key:000000000001", b"x" * 100) + _encode(b"GET", b"key:000000000001")
    first = len(_encode(b"SET", b"key:000000000001", b"x" * 100))
    for cut in range(len(data) + 1):
        taken, ran, *_ = run(data[:cut])
        expected = len(data) if cut == len(data) else first if cut >= first else 0
        assert (taken, ran) == (expected, {0: 0, first: 1, len(data): 2}[expected]), cut


def test_a_guarded_read_or_write_is_left_to_the_general_path() -> None:
    data = _encode(b"GET", b"seed")
    assert run(data, readable=False)[:2] == (0, 0)  # serve_stale_reads off on a replica
    cmds = _cmds()
    cmds.keyspace.max_memory_bytes = 1 << 20  # a memory cap: Commands.fast_writes() is false
    assert run(_encode(b"GET", b"seed") + _encode(b"SET", b"a", b"1"), cmds)[:2] == (len(data), 1)
    limited = _cmds()
    limited.limits.max_value_bytes = 2  # set_fast refuses: the limit's error is the general path's
    taken, ran, *_ = run(_encode(b"SET", b"a", b"12") + _encode(b"SET", b"a", b"123"), limited)
    assert (taken, ran) == (len(_encode(b"SET", b"a", b"12")), 1)


class _Broken:
    """A command layer whose GET raises (a bug): the loop stops before that request."""

    def __init__(self, cmds: Commands) -> None:
        self.cmds = cmds

    def get_fast(self, key: bytes) -> bytes | None:
        raise RuntimeError("bug")

    def set_fast(self, key: bytes, value: bytes) -> bool:
        return self.cmds.set_fast(key, value)

    def fast_writes(self) -> bool:
        return self.cmds.fast_writes()

    def set_fast_first(self, key: bytes, value: bytes) -> int:
        return self.cmds.set_fast_first(key, value)

    def prefetch(self, keys: list[bytes]) -> None:
        self.cmds.prefetch(keys)


def test_an_exception_in_the_command_layer_is_returned_and_its_request_left() -> None:
    head = _encode(b"SET", b"a", b"1")
    taken, ran, gets, _, replies, error = run(head + _encode(b"GET", b"a"), _Broken(_cmds()))  # type: ignore[arg-type]
    assert (taken, ran, gets, replies) == (len(head), 1, 0, R.OK)
    assert isinstance(error, RuntimeError)


def test_a_long_read_runs_in_batches_and_stops_where_a_request_raises() -> None:
    """Requests are parsed 32 ahead of running: an exception in the 41st still leaves
    exactly it and what follows, with the 40 before it run and answered."""
    sets = b"".join(_encode(b"SET", b"k%d" % i, b"v%d" % i) for i in range(40))
    rest = _encode(b"GET", b"k1") + _encode(b"SET", b"z", b"1") * 30
    cmds = _cmds()
    taken, ran, gets, _, replies, error = run(sets + rest, _Broken(cmds))  # type: ignore[arg-type]
    assert (taken, ran, gets, replies) == (len(sets), 40, 0, R.OK * 40)
    assert isinstance(error, RuntimeError)
    assert cmds.keyspace.data == {b"seed": b"seeded"} | {b"k%d" % i: b"v%d" % i for i in range(40)}
    taken, ran, gets, _, replies, error = run(sets + sets + sets, cmds)
    assert (taken, ran, error) == (3 * len(sets), 120, None)


def test_resp3_nil_and_a_large_value() -> None:
    cmds = _cmds()
    big = bytes(range(256)) * 4096  # 1 MiB, any byte values
    run(_encode(b"SET", b"big", big), cmds)
    taken, ran, gets, last_set, replies, error = run(
        _encode(b"GET", b"big") + _encode(b"GET", b"none"), cmds, null=R.NULL3
    )
    assert replies == b"$%d\r\n%s\r\n" % (len(big), big) + R.NULL3
