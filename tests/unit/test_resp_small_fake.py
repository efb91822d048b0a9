"""RespConnection runs against the narrow interface of synap/api/services.py: a small fake
with a real keyspace and command layer, and no node, persistence or replication."""

from __future__ import annotations

from typing import Any

from synap.api.cmdstats import CommandStats
from synap.api.resp import RespConnection
from synap.commands.layer import Commands, Limits
from synap.config import Config
from synap.latency import CommandTimings
from synap.replication.roles import RoleMachine
from synap.store.history import History
from synap.store.keyspace import EvictionPolicy, Keyspace
from tests.support.fuzz_node import FakeTransport


class FakeNode:
    """Just what a RESP connection reads and writes for data commands."""

    def __init__(self) -> None:
        self.config = Config()
        self.roles = RoleMachine()
        self.keyspace = Keyspace(0, EvictionPolicy.NONE)
        self.history = History()
        self.commands = Commands(
            self.keyspace,
            self.history,
            Limits(512, 1 << 20),
            check_writable=self.roles.check_writable,
        )
        self.resp_timings = CommandTimings()
        self.command_stats = CommandStats(self.resp_timings)
        self.monitors: set[Any] = set()
        self.commands_processed = 0
        self.connections_received = 0
        self.flushes = 0
        self._ids = 0
        self.open: list[Any] = []

    def next_client_id(self) -> int:
        self._ids += 1
        return self._ids

    def client_opened(self, client: Any) -> bool:
        self.open.append(client)
        return True

    def client_closed(self, client: Any) -> None:
        self.open.remove(client)

    def enough_good_replicas(self) -> bool:
        return True

    def flush_writes(self) -> None:
        self.flushes += 1

    def reply_after_flush(self, transport: Any, data: bytes) -> None:
        self.flush_writes()
        transport.write(data)

    def flush_replies(self) -> None:
        self.flush_writes()


def test_a_connection_serves_data_commands_from_a_fake_node() -> None:
    node = FakeNode()
    conn = RespConnection(node)  # type: ignore[arg-type]
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n"
    )
    assert bytes(transport.out) == b"+OK\r\n$1\r\nv\r\n+PONG\r\n"
    assert node.keyspace.data == {b"k": b"v"} and node.history.offset == 1
    # One read, one write, one WAL flush before it; the command count is the node's.
    assert node.flushes == 1 and node.commands_processed == 3
    assert node.open == [conn]
    conn.connection_lost(None)
    assert node.open == []
