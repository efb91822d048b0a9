"""The master's stall rule for replicas that stop reading (``ReplicaConnection._check_stalled``).

A replica loading a full sync sends nothing, so the session's ACK timeout cannot tell a
dead one from a busy one; the master watches its own write buffer instead. These tests
drive the rule with a fake transport and a fake clock.
"""

from __future__ import annotations

import types
from typing import Any

import pytest

from synap.config import ReplicationConfig
from synap.replication import master as master_mod
from synap.replication.master import ReplicaConnection

TIMEOUT_S = 2


class FakeTransport:
    def __init__(self) -> None:
        self.buffered = 0
        self.aborted = False
        self.closed = False
        self.written = b""

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else None

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.written += data

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(
        master_mod, "time", types.SimpleNamespace(monotonic=fake.monotonic, time=fake.time)
    )
    return fake


def connection() -> tuple[ReplicaConnection, FakeTransport]:
    cfg = ReplicationConfig(replica_timeout_secs=TIMEOUT_S)
    server: Any = types.SimpleNamespace(
        manager=types.SimpleNamespace(config=cfg), connections=set()
    )
    conn = ReplicaConnection(server)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def test_a_replica_that_drains_nothing_is_dropped_after_the_replica_timeout(clock: Clock) -> None:
    conn, transport = connection()
    transport.buffered = 5_000_000
    conn.pause_writing()
    clock.now += TIMEOUT_S - 0.1
    conn._check_stalled()
    assert not transport.aborted
    clock.now += 0.2
    conn._check_stalled()
    assert transport.aborted and conn.closed  # aborted: a close would wait for the drain


def test_a_slow_replica_that_drains_something_is_not_dropped(clock: Clock) -> None:
    conn, transport = connection()
    transport.buffered = 5_000_000
    conn.pause_writing()
    for _ in range(20):  # 20 s at 50 KB/s, checked every second
        clock.now += 1
        transport.buffered -= 50_000
        conn._check_stalled()
    assert not transport.aborted and not conn.closed


def test_the_stall_clock_stops_when_the_buffer_drains_below_the_low_mark(clock: Clock) -> None:
    conn, transport = connection()
    transport.buffered = 5_000_000
    conn.pause_writing()
    clock.now += TIMEOUT_S - 0.5
    transport.buffered = 900_000
    conn.resume_writing()
    clock.now += 10
    conn._check_stalled()
    assert not transport.aborted
    # Paused again later: the clock starts from the new pause, not the old one.
    transport.buffered = 5_000_000
    conn.pause_writing()
    clock.now += TIMEOUT_S - 0.5
    conn._check_stalled()
    assert not transport.aborted
