"""RespConnection runs against the narrow interface of synap/api/services.py: a small fake
with a real keyspace and command layer, and no node, persistence or replication."""

from __future__ import annotations

from typing import Any

import pytest

from synap.api.cmdstats import CommandStats
from synap.api.resp import RespConnection
from synap.commands.layer import Commands, Limits
from synap.config import Config
from synap.latency import CommandTimings, Count
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
        self.processed = Count()
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


@pytest.mark.parametrize("listening", [True, False], ids=["with-a-log", "nothing-listens"])
def test_a_connection_serves_data_commands_from_a_fake_node(listening: bool) -> None:
    node = FakeNode()
    records: list[bytes] = []
    if listening:  # a WAL or replication log: the history is not settled
        node.history.subscribe(lambda offset, record: records.append(record))
    conn = RespConnection(node)  # type: ignore[arg-type]
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n"
    )
    assert bytes(transport.out) == b"+OK\r\n$1\r\nv\r\n+PONG\r\n"
    assert node.keyspace.data == {b"k": b"v"} and node.history.offset == 1
    # One read, one write; the command count is the node's.  With a listener the node
    # writes the records out before it (one flush); with none the reply goes at once
    # (History.settled: nothing can wait) and the node is not asked.
    assert node.processed.value == 3
    assert node.flushes == (1 if listening else 0)
    assert len(records) == (1 if listening else 0)
    assert node.open == [conn]
    conn.connection_lost(None)
    assert node.open == []
