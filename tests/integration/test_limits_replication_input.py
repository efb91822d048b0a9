"""A master facing peers that lie or babble on its replication port.

Each impostor speaks through a real :class:`ReplicaSession` over a raw socket, so that
its HELLO is well formed and only the claim in it is wrong: an offset from the future,
a history the master never had. Also: a 4 GB frame length, random garbage, a value over
``kv_store.max_value_bytes``. Every time the master answers as documented
(docs/PROTOCOL.md, "Full or partial"), keeps its data, keeps serving its real replica
and logs no traceback.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from collections.abc import Iterator

import pytest
import redis

from synap.replication.framing import FrameDecoder
from synap.replication.handshake import ErrorReceived, SessionEnded
from synap.replication.messages import Error, ErrorCode, decode_message
from synap.replication.replica_session import (
    FullSyncStarted,
    PartialSyncAccepted,
    ReplicaSession,
)
from tests.support.checks import digest_report as digest
from tests.support.ports import HOST
from tests.support.server import NodeFactory, SynapProcess, wait_caught_up

FAST = {"heartbeat_interval_ms": 200, "reconnect_delay_ms": 300, "replica_timeout_secs": 3}
MAX_VALUE = 1024 * 1024
CONFIG = {"replication": FAST, "kv_store": {"max_value_bytes": MAX_VALUE}}
OTHER_HISTORY = "0123456789abcdef" * 2 + "01234567"


def impostor(master: SynapProcess, replid: str | None, offset: int) -> object:
    """HELLO as a replica at ``offset`` of ``replid``; return the master's verdict:
    FullSyncStarted, PartialSyncAccepted or the SessionEnded it closed with."""
    session = ReplicaSession("impostor", None, replid, offset, None)
    with socket.create_connection((HOST, master.replica_port), timeout=10) as sock:
        sock.sendall(session.initiate(int(time.time() * 1000)))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            events = session.receive_data(data, int(time.time() * 1000))
            for event in events:
                if isinstance(event, FullSyncStarted | PartialSyncAccepted | SessionEnded):
                    return event
            if not data:
                break
    raise AssertionError("the master neither synced nor refused the impostor")


@pytest.fixture
def cluster(node_factory: NodeFactory) -> Iterator[tuple[SynapProcess, SynapProcess]]:
    """A master that was restarted on its data (so it vouches for its history) with 100
    keys, and a replica in sync."""
    master = node_factory.master(config=CONFIG)
    master.redis().mset({f"k{i}": f"v{i}" for i in range(100)})
    master.kill()
    master.start()
    replica = node_factory.replica(master, config=CONFIG)
    wait_caught_up(master, [replica])
    before = digest(master)
    yield master, replica
    # Whatever the impostor did: the master kept its data and its real replica.
    master.redis().set("after", "impostor")
    wait_caught_up(master, [replica])
    after = digest(master)
    assert after["replication_id"] == before["replication_id"]
    assert digest(replica)["digest"] == after["digest"]
    assert master.redis().get("k42") == b"v42"
    for node in (master, replica):
        assert "Traceback" not in node.log_text(), node.name


def test_a_hello_followed_at_once_by_the_replicas_error_is_a_clean_disconnect(
    cluster: tuple[SynapProcess, SynapProcess],
) -> None:
    # A replica that changes role right after connecting: its HELLO (a sync request) and
    # its ERROR arrive in one read. The master must not answer a session that has ended
    # (it logged a LocalProtocolError traceback for the CONTINUE it tried to send).
    master, _ = cluster
    state = digest(master)
    session = ReplicaSession(
        "leaving", None, str(state["replication_id"]), int(state["offset"]), None
    )
    now = int(time.time() * 1000)
    hello = session.initiate(now)
    bye = session.close(ErrorCode.SHUTTING_DOWN, "replica is changing role or shutting down")
    with socket.create_connection((HOST, master.replica_port), timeout=10) as sock:
        sock.sendall(hello + bye)
        sock.settimeout(10)
        while sock.recv(65536):  # the master closes the connection
            pass
    deadline = time.monotonic() + 5
    while "replica leaving" not in master.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "replica leaving (" in master.log_text() and "disconnected" in master.log_text()
    assert "Traceback" not in master.log_text()


def test_replica_claiming_an_offset_from_the_future_gets_a_full_sync(
    cluster: tuple[SynapProcess, SynapProcess],
) -> None:
    master, _ = cluster
    state = digest(master)
    verdict = impostor(master, str(state["replication_id"]), int(state["offset"]) + 1000)
    assert isinstance(verdict, FullSyncStarted), verdict
    assert verdict.offset == state["offset"] and verdict.keys == 100
    assert "beyond our offset" in master.log_text()


def test_replica_of_another_history_gets_a_full_sync(
    cluster: tuple[SynapProcess, SynapProcess],
) -> None:
    master, _ = cluster
    verdict = impostor(master, OTHER_HISTORY, 50)
    assert isinstance(verdict, FullSyncStarted), verdict
    assert "replication id mismatch" in master.log_text()


def test_replica_up_to_date_gets_a_partial_sync(
    cluster: tuple[SynapProcess, SynapProcess],
) -> None:
    master, _ = cluster
    state = digest(master)
    verdict = impostor(master, str(state["replication_id"]), int(state["offset"]))
    assert isinstance(verdict, PartialSyncAccepted), verdict


def test_a_master_that_started_empty_refuses_to_wipe_a_longer_history(
    node_factory: NodeFactory,
) -> None:
    # Research anchors section 6 ("empty master wipes replicas"): a master that came up
    # empty does not overwrite a replica that claims more history than it has.
    master = node_factory.master(config=CONFIG)
    master.redis().set("k", "v")
    verdict = impostor(master, OTHER_HISTORY, 5000)
    assert isinstance(verdict, ErrorReceived) and verdict.code == ErrorCode.REFUSED, verdict
    assert "refusing to wipe" in verdict.message and "Promote that replica" in verdict.message
    assert master.redis().get("k") == b"v"


def exchange(
    port: int, payload: bytes, timeout: float = 5.0, end: bool = False
) -> tuple[bytes, float]:
    """Send ``payload`` (then our end of the stream if ``end``); return everything
    received until the master closed, and how long that took."""
    started = time.monotonic()
    received = b""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(payload)
        if end:
            sock.shutdown(socket.SHUT_WR)
        while time.monotonic() - started < timeout:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        else:
            raise AssertionError("the master did not close the connection")
    return received, time.monotonic() - started


def test_a_4gb_frame_length_is_refused_from_the_header(
    cluster: tuple[SynapProcess, SynapProcess],
) -> None:
    master, _ = cluster
    assert master.replica_port is not None
    received, took = exchange(master.replica_port, struct.pack(">I", 2**32 - 1))
    assert took < 3.0
    assert b"4294967295 bytes exceeds the 65536-byte limit" in received, received


def test_random_garbage_on_the_replication_port(
    cluster: tuple[SynapProcess, SynapProcess],
) -> None:
    master, _ = cluster
    assert master.replica_port is not None
    rng = random.Random(20240601)
    for i in range(60):
        body = rng.randbytes(rng.choice([0, 1, 3, 16, 100, 4096]))
        if i % 3 == 0:
            payload = body  # raw bytes: the first four are read as a length
        elif i % 3 == 1:
            payload = struct.pack(">I", len(body)) + body  # a whole frame of garbage
        else:  # a frame cut short, then the stream ends
            payload = struct.pack(">I", len(body) + 10) + body
        # Ending our side too: an unfinished frame would otherwise wait for the 10 s
        # handshake timeout (tests/integration/test_replication_failures.py has that).
        received, took = exchange(master.replica_port, payload, end=True)
        assert took < 3.0, f"payload {i}: closed after {took:.1f}s"
        if i % 3 == 1:  # a frame the master could read: it says why it closes
            frames = FrameDecoder().decode(received)
            assert frames, f"payload {i}: closed without an ERROR"
            error = decode_message(frames[-1])
            assert isinstance(error, Error) and error.code == ErrorCode.PROTOCOL, error
        assert master.is_running()
    assert master.http.get("/health").status_code == 200


def test_a_value_over_the_limit_is_refused_and_the_largest_allowed_replicates(
    cluster: tuple[SynapProcess, SynapProcess],
) -> None:
    master, replica = cluster
    client = master.redis()
    with pytest.raises(redis.ResponseError, match="over the 1048576-byte limit"):
        client.set("huge", b"x" * (MAX_VALUE + 1))
    assert client.set("largest", b"y" * MAX_VALUE) is True
    wait_caught_up(master, [replica])
    assert replica.redis().strlen("largest") == MAX_VALUE
    assert replica.redis().exists("huge") == 0
