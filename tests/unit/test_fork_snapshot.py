"""A full sync sent by a forked child (synap.replication.fork_snapshot): the snapshot is
the keyspace as it was at the fork, whatever the master writes afterwards, and a
replica session accepts it (counts and CRCs) once the master adopts the child's counters.
Real fork, real socket pair; the replica side is the real ReplicaSession."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import pytest

from synap.replication.fork_snapshot import SnapshotChild, SnapshotFailed, usable
from synap.replication.master_session import MasterSession, MasterState
from synap.replication.replica_session import (
    FullSyncCompleted,
    ReplicaSession,
    SnapshotChunkReceived,
)
from synap.store.keyspace import Keyspace

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")

REPLID = "1" * 40
T0 = 1_000_000
KEYS = 20_000


def ready_pair() -> tuple[MasterSession, ReplicaSession]:
    master = MasterSession(None, T0)
    replica = ReplicaSession("replica-1", "127.0.0.1:1", None, 0, None)
    master.receive_data(replica.initiate(T0), T0)
    assert master.state is MasterState.READY
    return master, replica


def loaded_keyspace() -> Keyspace:
    keyspace = Keyspace()
    for i in range(KEYS):
        keyspace.put(
            b"key:%06d" % i, b"value-%d-" % i + b"x" * 90, T0 + 10_000 if i % 7 == 0 else 0
        )
    keyspace.put(b"json", b"[1,2]", 0, is_json=True)
    return keyspace


def entries_of(keyspace: Keyspace) -> dict[bytes, tuple[bytes, int, bool]]:
    return {k: (v, keyspace.expiry_of(k), keyspace.is_json(k)) for k, v in keyspace.data.items()}


class Drain(threading.Thread):
    """Reads one end of the socket pair until EOF."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.data = bytearray()

    def run(self) -> None:
        while chunk := self.sock.recv(1 << 20):
            self.data += chunk


def test_the_snapshot_is_the_keyspace_at_the_fork_and_the_replica_accepts_it() -> None:
    master, replica = ready_pair()
    keyspace = loaded_keyspace()
    expected = entries_of(keyspace)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)  # as a transport's socket is
    drain = Drain(theirs)
    drain.start()

    async def run() -> tuple[int, int, int, int]:
        head = master.send_fullsync(REPLID, 7, len(keyspace), T0)
        child = SnapshotChild.start(ours.fileno(), head, master, keyspace, 10.0)
        # Written after the fork: none of it may reach the snapshot.
        keyspace.put(b"key:000000", b"changed")
        keyspace.remove(b"key:000001")
        keyspace.put(b"created", b"after the fork")
        keyspace.clear()
        progress: list[int] = []
        try:
            return await child.result(lambda keys, sent: progress.append(keys))
        finally:
            child.stop()
            assert progress == sorted(progress)

    keys, seq, crc, sent = asyncio.run(run())
    ours.close()  # the child's copy closed when it exited: EOF for the reader
    drain.join(10)
    assert keys == len(expected)
    assert sent == len(drain.data)
    master.snapshot_sent_elsewhere(keys, seq, crc)
    events = list(replica.receive_data(bytes(drain.data) + master.snapshot_end(T0), T0))
    assert isinstance(events[-1], FullSyncCompleted) and events[-1].offset == 7
    got: dict[bytes, tuple[bytes, int, bool]] = {}
    for event in events:
        if isinstance(event, SnapshotChunkReceived):
            for entry in event.entries:
                got[entry[0]] = (entry[1], entry[2], len(entry) > 3 and entry[3] == 1)
    assert got == expected
    assert master.state is MasterState.STREAMING


def test_a_replica_that_went_away_fails_the_snapshot() -> None:
    master, _ = ready_pair()
    keyspace = loaded_keyspace()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.close()

    async def run() -> None:
        head = master.send_fullsync(REPLID, 7, len(keyspace), T0)
        child = SnapshotChild.start(ours.fileno(), head, master, keyspace, 10.0)
        try:
            with pytest.raises(SnapshotFailed):
                await child.result(lambda keys, sent: None)
        finally:
            child.stop()

    asyncio.run(run())
    ours.close()


def test_stop_kills_a_child_blocked_on_a_replica_that_does_not_read() -> None:
    master, _ = ready_pair()
    keyspace = loaded_keyspace()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)

    async def run() -> int:
        head = master.send_fullsync(REPLID, 7, len(keyspace), T0)
        child = SnapshotChild.start(ours.fileno(), head, master, keyspace, 60.0)
        await asyncio.sleep(0.2)  # it fills the socket buffers and blocks
        assert os.waitpid(child.pid, os.WNOHANG) == (0, 0), "the child should still run"
        child.stop()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            if child._reaped:  # reaped in the background by stop()
                break
        return child.pid

    pid = asyncio.run(run())
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # gone and reaped: no zombie left
    ours.close()
    theirs.close()


def test_small_data_sets_and_forced_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = socket.socketpair()

    class Transport(asyncio.Transport):
        def get_extra_info(self, name: str, default: object = None) -> object:
            return a if name == "socket" else default

    transport = Transport()
    monkeypatch.delenv("SYNAP_FULL_SYNC_FORK", raising=False)
    assert not usable(transport, 100)
    assert usable(transport, 100_000)
    monkeypatch.setenv("SYNAP_FULL_SYNC_FORK", "always")
    assert usable(transport, 100)
    monkeypatch.setenv("SYNAP_FULL_SYNC_FORK", "never")
    assert not usable(transport, 100_000)
    assert not usable(None, 100_000)
    a.close()
    b.close()
