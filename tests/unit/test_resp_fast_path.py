"""The RESP fast path (plain GET / SET runs, ``RespConnection._run_fast``) against the
general path (``_dispatch``), under random command sequences (hypothesis).

The same commands, cut into the same reads, go through two fresh nodes: one connection
with the fast path, one without.  Everything either could change must come out equal:
the bytes answered, the effect records committed, the keyspace (values, expiries,
memory accounting), the GET/SET counters, INFO commandstats' calls and errors, the
metrics' call counts, and the connection's last command and write offset.  The
sequences mix plain GETs and SETs with what makes the fast path step aside: expiries
(absolute, so both runs are alike), over-long keys and values, a memory cap, WATCH,
MULTI, CLIENT REPLY OFF / SKIP, paused writes, authentication, mixed-case names and
wrong argument counts.
"""

from __future__ import annotations

import asyncio
import types
from typing import Any
from unittest import mock

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from synap.api.resp import RespConnection
from synap.config import build_config
from synap.node import Node
from synap.replication.roles import Role
from tests.support.build import needs_pure
from tests.support.fuzz_node import FUZZ, FakeTransport

MAX_KEY = 64
MAX_VALUE = 256
KEYS = [b"k1", b"k2", b"k3", b"seed"]
PASSWORD = b"secret-key"


def _encode(command: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(command) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in command)


keys = st.sampled_from(KEYS) | st.just(b"x" * (MAX_KEY + 1))
values = st.sampled_from([b"v", b"12", b"", b"hello world"]) | st.just(b"y" * (MAX_VALUE + 1))
get_name = st.sampled_from([b"GET", b"get", b"Get"])
set_name = st.sampled_from([b"SET", b"set", b"sEt"])
far, past = b"99999999999999", b"1"
# The clock the keyspace reads (now_ms) in these runs: it starts at START_MS and moves
# on TICK_MS before each read, so both runs see the same times and keys set to expire
# a read or two later expire lazily, on access.
START_MS, TICK_MS = 1_700_000_000_000, 700
soon = st.sampled_from([b"500", b"1000", b"1500"])

_SPECIAL: list[list[bytes]] = [
    [b"GET"],
    [b"SET", b"k1"],
    [b"GET", b"k1", b"k2"],
    [b"NOSUCH", b"k1"],
    [b"MULTI"],
    [b"EXEC"],
    [b"DISCARD"],
    [b"WATCH", b"k1"],
    [b"UNWATCH"],
    [b"CLIENT", b"REPLY", b"OFF"],
    [b"CLIENT", b"REPLY", b"SKIP"],
    [b"CLIENT", b"REPLY", b"ON"],
    [b"CLIENT", b"PAUSE", b"100000", b"WRITE"],
    [b"CLIENT", b"UNPAUSE"],
    [b"CONFIG", b"SET", b"maxmemory", b"600"],
    [b"CONFIG", b"SET", b"maxmemory", b"0"],
    [b"AUTH", PASSWORD],
    [b"AUTH", b"wrong"],
    [b"DBSIZE"],
    [b"SYNAP.OFFSET"],
]
fast_command = st.one_of(
    st.tuples(get_name, keys).map(list), st.tuples(set_name, keys, values).map(list)
)
special_command = st.one_of(
    st.sampled_from(_SPECIAL),
    st.tuples(st.just(b"SET"), keys, values, st.sampled_from([b"PXAT", b"EXAT"]),
              st.sampled_from([far, past])).map(list),
    st.tuples(st.just(b"SET"), keys, values, st.sampled_from([b"NX", b"XX", b"GET"])).map(list),
    st.tuples(st.just(b"PEXPIREAT"), keys, st.sampled_from([far, past])).map(list),
    st.tuples(st.just(b"SET"), keys, values, st.just(b"PX"), soon).map(list),
    st.tuples(st.just(b"PEXPIRE"), keys, soon).map(list),
    st.tuples(st.sampled_from([b"DEL", b"PERSIST", b"INCR", b"GETDEL"]), keys).map(list),
    st.tuples(st.just(b"APPEND"), keys, values).map(list),
    st.tuples(st.just(b"MGET"), keys, keys).map(list),
)  # fmt: skip
# Half plain GET / SET, half the rest.
command = st.one_of(fast_command, special_command)
# A guard, then plain GETs and SETs: each of these must make the fast path step aside.
_GUARDED = [
    [[b"CLIENT", b"REPLY", b"OFF"], [b"SET", b"k1", b"v"], [b"GET", b"k1"]],
    [[b"CLIENT", b"REPLY", b"SKIP"], [b"GET", b"k1"], [b"GET", b"seed"]],
    [[b"MULTI"], [b"SET", b"k1", b"v"], [b"GET", b"k1"], [b"EXEC"]],
    [[b"WATCH", b"k1"], [b"SET", b"k1", b"v"], [b"MULTI"], [b"GET", b"k1"], [b"EXEC"]],
    [[b"CLIENT", b"PAUSE", b"100000", b"WRITE"], [b"SET", b"k1", b"v"], [b"GET", b"k1"]],
    [[b"CONFIG", b"SET", b"maxmemory", b"600"]] + [[b"SET", k, b"y" * 200] for k in KEYS],
    [[b"SET", b"x" * (MAX_KEY + 1), b"v"], [b"SET", b"k1", b"y" * (MAX_VALUE + 1)]],
    [[b"SET", b"k1", b"v", b"PXAT", far], [b"SET", b"k1", b"w"], [b"GET", b"k1"]],
    [[b"SET", b"k1", b"v", b"PX", b"500"], [b"PEXPIRE", b"seed", b"1000"], [b"GET", b"k1"]]
    + [[b"GET", b"k1"], [b"SET", b"k1", b"w"], [b"SET", b"seed", b"x"], [b"GET", b"seed"]],
    [[b"GET", b"seed"], [b"AUTH", PASSWORD], [b"GET", b"seed"], [b"SET", b"k2", b"v"]],
]


def _inline(command: list[bytes]) -> bytes | None:
    """``command`` as an inline (telnet-style) line, when its arguments allow one."""
    if all(a and not any(c in a for c in b" \t\r\n\"'") for a in command):
        return b" ".join(command) + b"\r\n"
    return None


def _run(
    commands: list[list[bytes]],
    cuts: list[int],
    fast: bool,
    secured: bool,
    reset_stats: bool,
    inline: frozenset[int] = frozenset(),
) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "kv_store": {"max_value_bytes": MAX_VALUE, "max_key_bytes": MAX_KEY}
    }
    if secured:
        settings["server"] = {"api_keys": [PASSWORD.decode()]}
    node = Node(build_config(settings))
    node.commands.set(b"seed", b"seeded")
    records: list[bytes] = []
    node.history.subscribe(lambda _offset, record: records.append(record))
    transport = FakeTransport()
    # Commands at the ``inline`` indices are sent as inline lines where they can be (a
    # boundary the C read loop stops at), the rest as clients encode them.
    stream = b"".join((i in inline and _inline(c)) or _encode(c) for i, c in enumerate(commands))
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})

    clock = [START_MS]
    fake_time = types.SimpleNamespace(time_ns=lambda: clock[0] * 1_000_000)

    async def main() -> RespConnection:
        conn = RespConnection(node)
        conn.fast_path = fast
        conn.connection_made(transport)  # type: ignore[arg-type]
        if reset_stats:  # CONFIG RESETSTAT: INFO commandstats then counts from a baseline
            conn.data_received(_encode([b"GET", b"seed"]) + _encode([b"SET", b"seed", b"s"]))
            node.command_stats.reset()
        for a, b in zip(bounds, bounds[1:], strict=False):
            if transport.closed:
                break
            clock[0] += TICK_MS
            conn.data_received(stream[a:b])
            await asyncio.sleep(0)
        return conn

    with mock.patch("synap.clock.time", fake_time):
        conn = asyncio.run(main())
    ks = node.commands.keyspace
    stats = node.commands.stats
    return {
        "out": bytes(transport.out),
        "records": records,
        "offset": node.history.offset,
        "data": dict(ks.data),
        "expires": dict(ks.expires),
        "used_memory": ks.used_memory,
        "opstats": (stats.gets, stats.sets, stats.hits, stats.misses, stats.dels),
        "commandstats": {
            name: (calls, rejected, failed)
            for name, (calls, _usec, rejected, failed) in node.command_stats.rows().items()
        },
        "errorstats": dict(node.command_stats.errors),
        "timings": {name: h.count for name, h in node.resp_timings.latency.items()},
        "processed": node.commands_processed,
        "last_cmd": conn.last_cmd,
        "last_write_offset": conn.last_write_offset,
    }


@FUZZ
@example(commands=_GUARDED[0], cuts=[], secured=False, reset_stats=True, inline=frozenset())
@example(commands=_GUARDED[1], cuts=[], secured=False, reset_stats=False, inline=frozenset())
@example(commands=_GUARDED[2], cuts=[], secured=False, reset_stats=False, inline=frozenset())
@example(commands=_GUARDED[3], cuts=[], secured=False, reset_stats=False, inline=frozenset())
@example(commands=_GUARDED[4], cuts=[], secured=False, reset_stats=False, inline=frozenset())
@example(commands=_GUARDED[5], cuts=[], secured=False, reset_stats=False, inline=frozenset())
@example(commands=_GUARDED[6], cuts=[], secured=False, reset_stats=False, inline=frozenset())
@example(commands=_GUARDED[7], cuts=[], secured=False, reset_stats=True, inline=frozenset())
@example(commands=_GUARDED[9], cuts=[], secured=True, reset_stats=True, inline=frozenset())
@example(
    commands=_GUARDED[8],
    cuts=[30, 60, 90, 120, 150, 180],
    secured=False,
    reset_stats=True,
    inline=frozenset(),
)
@example(
    commands=[[b"SET", b"k1", b"v"], [b"GET", b"k1"], [b"SET", b"k2", b"12"], [b"GET", b"k2"]],
    cuts=[],
    secured=False,
    reset_stats=False,
    inline=frozenset({1}),
)
@given(
    commands=st.lists(command, min_size=1, max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=6),
    secured=st.booleans(),
    reset_stats=st.booleans(),
    inline=st.frozensets(st.integers(min_value=0, max_value=39), max_size=6),
)
def test_fast_path_matches_the_general_path(
    commands: list[list[bytes]],
    cuts: list[int],
    secured: bool,
    reset_stats: bool,
    inline: frozenset[int],
) -> None:
    """With the C read loop built (synap/api/resp_plain.pyx), the fast connection runs
    plain reads through it and the rest of each read through ``_run_fast``; without it,
    through ``_run_fast`` alone."""
    general = _run(commands, cuts, False, secured, reset_stats, inline)
    fast = _run(commands, cuts, True, secured, reset_stats, inline)
    assert fast == general


# Reads of long runs of plain GETs and SETs: the C loop parses 32 requests ahead of
# running them (their keys' slots prefetched together), so runs longer than that, broken
# by a request it does not take or a SET it refuses anywhere in a batch, must still be
# answered exactly as the general path answers them.
_AHEAD = 32
mostly_fast = st.one_of(*[fast_command] * 9, special_command)
_LONG = [
    [b"SET", b"k%d" % (i % 3 + 1), b"%d" % i] if i % 2 else [b"GET", b"k2"] for i in range(100)
]


@FUZZ
@example(commands=_LONG, cuts=[])
@example(commands=_LONG[:_AHEAD] + [[b"DBSIZE"]] + _LONG[:40], cuts=[])
@example(commands=_LONG[: _AHEAD - 1] + [[b"MULTI"], [b"EXEC"]] + _LONG, cuts=[])
@example(commands=_LONG[:40] + [[b"SET", b"k1", b"y" * (MAX_VALUE + 1)]] + _LONG[:30], cuts=[])
@example(commands=_LONG[: 2 * _AHEAD] + [[b"SET", b"k1", b"v", b"PX", b"500"]] + _LONG, cuts=[])
@given(
    commands=st.lists(mostly_fast, min_size=_AHEAD, max_size=4 * _AHEAD),
    cuts=st.lists(st.integers(min_value=0, max_value=6000), max_size=2),
)
def test_long_plain_runs_match_the_general_path(
    commands: list[list[bytes]], cuts: list[int]
) -> None:
    general = _run(commands, cuts, False, False, False)
    fast = _run(commands, cuts, True, False, False)
    assert fast == general


@needs_pure("synap.api.resp")
def test_a_run_of_plain_gets_and_sets_takes_the_fast_path() -> None:
    """The comparison above would pass if the fast path never ran: check it does (a
    plain GET/SET read leaves ``_dispatch`` unused) and that it steps aside for a key
    with an expiry."""
    node = Node(build_config({}))
    conn = RespConnection(node)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    dispatched: list[bytes] = []
    general = conn._dispatch

    def spy(request: list[bytes]) -> object:
        dispatched.append(request[0])
        return general(request)

    conn._dispatch = spy  # type: ignore[method-assign]
    conn.data_received(_encode([b"SET", b"a", b"1"]) + _encode([b"GET", b"a"]) * 3)
    assert bytes(transport.out) == b"+OK\r\n" + b"$1\r\n1\r\n" * 3
    assert dispatched == []
    assert node.resp_timings.latency[b"GET"].count == 3
    assert node.commands_processed == 4 and node.history.offset == 1
    conn.data_received(_encode([b"SET", b"b", b"2", b"PXAT", far]) + _encode([b"SET", b"b", b"3"]))
    assert dispatched == [b"SET", b"SET"]  # SET with an option; then b has an expiry
    assert node.commands.keyspace.expires == {}


@needs_pure("synap.commands.layer")
def test_a_fast_path_failure_leaves_the_request_to_the_general_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = Node(build_config({}))
    node.commands.set(b"a", b"1")
    conn = RespConnection(node)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]

    def broken(key: bytes) -> bytes | None:
        raise RuntimeError("bug")

    node.commands.get_fast = broken  # type: ignore[method-assign]
    conn.data_received(_encode([b"GET", b"a"]))
    assert bytes(transport.out) == b"$1\r\n1\r\n"
    assert "internal error in the RESP fast path" in caplog.text


def test_set_fast_first_is_fast_writes_then_set_fast_and_does_nothing_unless_stored() -> None:
    """The C loop's first SET of a read asks ``set_fast_first`` (one call for
    ``fast_writes()`` and ``set_fast()``): 1 stored and committed; -1 (fast writes off:
    a memory cap, a replica) and 0 (set_fast refused: a size limit) change nothing."""
    node = Node(build_config({}))
    cmds = node.commands
    assert cmds.set_fast_first(b"a", b"1") == 1
    assert cmds.keyspace.data == {b"a": b"1"} and node.history.offset == 1
    assert cmds.stats.sets == 1
    cmds.keyspace.max_memory_bytes = 1 << 20  # fast_writes() is false
    assert cmds.set_fast_first(b"b", b"2") == -1
    cmds.keyspace.max_memory_bytes = 0
    cmds.limits.max_value_bytes = 1  # set_fast() refuses
    assert cmds.set_fast_first(b"c", b"33") == 0
    assert cmds.keyspace.data == {b"a": b"1"} and node.history.offset == 1
    assert cmds.stats.sets == 1
    node.roles.transition(Role.REPLICA, "test", "127.0.0.1:1")  # a replica: not writable
    cmds.limits.max_value_bytes = 100
    assert cmds.set_fast_first(b"d", b"4") == -1
    assert cmds.keyspace.data == {b"a": b"1"} and node.history.offset == 1
