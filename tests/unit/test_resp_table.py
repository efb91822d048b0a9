"""The RESP command table (synap/api/resp_table.py): every command's arity is checked by
the dispatcher with Redis's wording, COMMAND describes exactly the commands there are,
and the auth / admin / MULTI policies come from the flags."""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
import pytest

from synap.api.resp import COMMANDS, SPECS, RespConnection
from synap.api.resp_table import build
from synap.config import build_config
from synap.node import Node
from tests.support.fuzz_node import FakeTransport


def _encode(command: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(command) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in command)


def _replies(commands: list[list[bytes]], settings: dict[str, Any] | None = None) -> list[Any]:
    node = Node(build_config(settings or {}))
    transport = FakeTransport()

    async def main() -> None:
        conn = RespConnection(node)
        conn.connection_made(transport)  # type: ignore[arg-type]
        conn.data_received(b"".join(_encode(c) for c in commands))
        await asyncio.sleep(0)

    asyncio.run(main())
    reader = hiredis.Reader()
    reader.feed(bytes(transport.out))
    out = []
    while (reply := reader.gets()) is not False:
        out.append(reply)
    return out


def _wrong_count(arity: int) -> int:
    """An argument count (name included) that arity refuses."""
    return arity + 1 if arity > 0 else -arity - 1


CASES = [
    (spec.lower, spec.arity, [spec.name.split(b"|")[0]] + ([spec.name.split(b"|")[1]] if b"|" in spec.name else []))
    for top in SPECS.values()
    for spec in [top, *top.subcommands.values()]
    if _wrong_count(spec.arity) >= (2 if b"|" in spec.name else 1)
]  # fmt: skip


@pytest.mark.parametrize(("name", "arity", "prefix"), CASES, ids=[c[0] for c in CASES])
def test_the_dispatcher_checks_every_arity_with_redis_wording(
    name: str, arity: int, prefix: list[bytes]
) -> None:
    argc = _wrong_count(arity)
    request = (prefix + [b"x"] * argc)[:argc]
    [reply] = _replies([request])
    assert isinstance(reply, hiredis.ReplyError)
    assert str(reply) == f"ERR wrong number of arguments for '{name}' command"


def test_a_wrong_arity_is_a_rejected_call_not_a_failed_one() -> None:
    info = _replies([[b"CONFIG", b"RESETSTAT"], [b"GET"], [b"INFO", b"commandstats"]])[-1]
    assert b"cmdstat_get:calls=0,usec=0,usec_per_call=0.00,rejected_calls=1,failed_calls=0" in info


def test_command_lists_exactly_the_implemented_commands() -> None:
    count, names, everything, docs = _replies(
        [[b"COMMAND", b"COUNT"], [b"COMMAND", b"LIST"], [b"COMMAND"], [b"COMMAND", b"DOCS"]]
    )
    implemented = {n.decode().lower() for n in COMMANDS}
    assert count == len(COMMANDS) == len(everything)
    assert {row[0].decode() for row in everything} == implemented
    assert {n.decode() for n in names if b"|" not in n} == implemented
    assert {n.decode() for n in names if b"|" in n} == {
        s.lower for spec in SPECS.values() for s in spec.subcommands.values()
    }
    assert {docs[i].decode() for i in range(0, len(docs), 2)} == implemented
    # and truthfully: the arity and first key COMMAND INFO gives are the ones enforced
    by_name = {row[0].decode(): row for row in everything}
    for spec in SPECS.values():
        assert by_name[spec.lower][1] == spec.arity


def test_command_info_and_getkeys_of_our_own_commands() -> None:
    info, keys, none = _replies(
        [
            [b"COMMAND", b"INFO", b"waitaof", b"synap.offset", b"client|setinfo", b"lastsave"],
            [b"COMMAND", b"GETKEYS", b"mset", b"a", b"1", b"b", b"2"],
            [b"COMMAND", b"GETKEYS", b"synap.waitoffset", b"1", b"0"],
        ]
    )
    assert [r[:2] if r else r for r in info] == [
        [b"waitaof", 4],
        [b"synap.offset", 1],
        [b"client|setinfo", 4],
        None,  # Redis has LASTSAVE; this server does not
    ]
    assert b"no_multi" in info[0][2]  # WAITAOF waits: refused inside MULTI, and says so
    assert keys == [b"a", b"b"]
    assert str(none) == "ERR The command has no key arguments"


def test_policies_come_from_the_flags() -> None:
    def having(flag: str) -> set[str]:
        return {s.name.decode() for s in SPECS.values() if flag in s.flags}

    assert having("no_auth") == {"AUTH", "HELLO", "QUIT", "RESET"}
    assert having("admin_key") == {
        "REPLICAOF", "SLAVEOF", "FAILOVER", "FLUSHALL", "FLUSHDB", "SHUTDOWN", "MONITOR"
    }  # fmt: skip
    assert having("transaction") == {"MULTI", "EXEC", "DISCARD", "WATCH", "QUIT", "RESET"}
    assert having("no_multi") == {
        "WAIT", "WAITAOF", "SYNAP.WAITOFFSET", "SAVE", "BGSAVE", "FAILOVER", "REPLICAOF",
        "SLAVEOF", "MONITOR", "SHUTDOWN",
    }  # fmt: skip
    # COMMAND does not report our own policy flags
    [info] = _replies([[b"COMMAND", b"INFO", b"flushall", b"multi"]])
    assert all(b"admin_key" not in row[2] and b"transaction" not in row[2] for row in info)


def test_the_policies_apply() -> None:
    secured = {"server": {"api_keys": ["k"], "admin_key": "adm"}}
    noauth, hello, auth, noperm, multi, wait, unknown_sub, exec_ = _replies(
        [
            [b"GET", b"a"],
            [b"HELLO"],
            [b"AUTH", b"k"],
            [b"FLUSHALL"],
            [b"MULTI"],
            [b"WAIT", b"0", b"0"],
            [b"CONFIG", b"NOSUCH"],
            [b"EXEC"],
        ],
        secured,
    )
    assert str(noauth) == "NOAUTH Authentication required."
    assert str(hello).startswith("NOAUTH HELLO must be called")  # no_auth: HELLO ran
    assert auth == b"OK"
    assert str(noperm).startswith("NOPERM")
    assert multi == b"OK"
    assert str(wait) == "ERR Command not allowed inside a transaction"
    assert str(unknown_sub) == "ERR unknown subcommand 'NOSUCH'. Try CONFIG HELP."
    assert str(exec_).startswith("EXECABORT")


def test_a_handler_needs_a_row() -> None:
    with pytest.raises(LookupError, match="NOSUCH has no row"):
        build({b"NOSUCH": COMMANDS[b"PING"]})


def test_metrics_add_subcommand_timings_up_under_the_command() -> None:
    """RESP keeps one timing per subcommand (INFO commandstats' cmdstat_client|id);
    /metrics shows them under the command, as before."""
    from synap.api.metrics import _by_command
    from synap.latency import CommandTimings

    timings = CommandTimings()
    timings.observe(b"CLIENT|ID", 0.001)
    timings.observe(b"CLIENT|LIST", 0.002)
    timings.observe(b"CLIENT|LIST", 0.003)
    timings.observe(b"GET", 0.0001)
    merged = _by_command(timings)
    assert sorted(merged) == [b"CLIENT", b"GET"]
    assert merged[b"CLIENT"].count == 3 and sum(merged[b"CLIENT"].counts) == 3
    assert abs(merged[b"CLIENT"].total - 0.006) < 1e-9
    assert timings.latency[b"CLIENT|ID"].count == 1  # the table itself is not changed
