"""Replication authentication end to end (``replication.auth_secret``, ``--replication-secret``).

The promises (docs/SECURITY.md, docs/PROTOCOL.md "Authentication"):

* the same secret on both nodes: the replica syncs;
* a different secret, or a secret on the master only: the replica receives not one byte
  of the dataset, and both logs say the secrets differ and what to set;
* a secret on the replica only: the replica refuses the master and applies nothing;
* the secret itself never crosses the wire.

Every link here runs through a ``RecordingProxy``, so the tests check the bytes on the
wire, not only what the nodes report.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from synap.replication.master_session import MasterSession, SyncRequested
from tests.support.recorder import RecordingProxy
from tests.support.server import NodeFactory, SynapProcess, wait_caught_up, wait_for

SECRET = "correct horse battery staple 6f1d"
WRONG = "not the secret at all 93be"
# A value no protocol field could contain by chance: if it is on the wire, data crossed.
MARKER = b"payload-marker-7d41c2-"
KEYS = 50
FIX_HINT = "set the same replication.auth_secret on both nodes"


@pytest.fixture
def master(node_factory: NodeFactory) -> SynapProcess:
    return node_factory.master(args=["--replication-secret", SECRET])


def _fill(master: SynapProcess) -> None:
    client = master.redis()
    client.mset({f"k{i}".encode(): MARKER + str(i).encode() for i in range(KEYS)})


@pytest.fixture
def wire(master: SynapProcess) -> Iterator[RecordingProxy]:
    assert master.replica_port is not None
    with RecordingProxy(("127.0.0.1", master.replica_port)) as proxy:
        yield proxy


def _wait_log(node: SynapProcess, *needles: str, timeout: float = 15.0) -> str:
    def found() -> bool:
        text = node.log_text()
        return all(n in text for n in needles)

    wait_for(found, timeout, message=lambda: f"{node.name} log lacks {needles}")
    return node.log_text()


def test_same_secret_on_both_nodes_syncs_and_the_secret_never_crosses_the_wire(
    node_factory: NodeFactory, master: SynapProcess, wire: RecordingProxy
) -> None:
    _fill(master)
    replica = node_factory.replica(wire.address, args=["--replication-secret", SECRET])
    wait_caught_up(master, [replica])
    assert replica.redis().dbsize() == KEYS
    assert (
        master.http.get("/api/replication/digest").json()["digest"]
        == (replica.http.get("/api/replication/digest").json()["digest"])
    )
    master.redis().set(b"after", MARKER + b"stream")
    wait_caught_up(master, [replica])
    captured = wire.captured()
    assert MARKER in captured  # the recorder saw the sync: the next check means something
    assert SECRET.encode() not in captured


def test_wrong_secret_on_the_replica_gets_not_a_byte_of_the_dataset(
    node_factory: NodeFactory, master: SynapProcess, wire: RecordingProxy
) -> None:
    _fill(master)
    replica = node_factory.replica(wire.address, args=["--replication-secret", WRONG])
    master_log = _wait_log(master, "secret differs", FIX_HINT)
    replica_log = _wait_log(replica, "secret differs", FIX_HINT)
    assert "failed authentication" in master_log
    assert "disconnected from master" in replica_log
    stats = replica.stats()
    assert stats["connected"] is False
    assert replica.redis().dbsize() == 0
    assert master.stats().get("replicas", []) == []
    captured = wire.captured()
    assert wire.connections >= 1 and captured  # the handshake did happen, through us
    assert MARKER not in captured
    assert SECRET.encode() not in captured and WRONG.encode() not in captured


def test_replica_without_a_secret_gets_not_a_byte_from_a_master_with_one(
    node_factory: NodeFactory, master: SynapProcess, wire: RecordingProxy
) -> None:
    _fill(master)
    replica = node_factory.replica(wire.address)
    needle = "the master requires authentication but this replica has no replication.auth_secret"
    _wait_log(replica, needle)
    _wait_log(master, needle)  # the replica's ERROR names the cause in the master's log too
    assert replica.redis().dbsize() == 0
    assert replica.stats()["connected"] is False
    assert MARKER not in wire.captured()


def test_replica_with_a_secret_refuses_a_master_without_one(node_factory: NodeFactory) -> None:
    open_master = node_factory.master()
    _fill(open_master)
    replica = node_factory.replica(open_master, args=["--replication-secret", SECRET])
    needle = "this replica has replication.auth_secret set but the master did not ask"
    _wait_log(replica, needle)
    _wait_log(open_master, needle)
    # The master (which has no secret) may have started sending; the replica applied none
    # of it, because it insists on the master's proof before it accepts a sync.
    assert replica.redis().dbsize() == 0
    assert replica.stats()["connected"] is False


def test_fixing_the_secret_and_restarting_lets_the_replica_sync(
    node_factory: NodeFactory, master: SynapProcess
) -> None:
    _fill(master)
    replica = node_factory.replica(master, args=["--replication-secret", WRONG])
    _wait_log(replica, "secret differs")
    replica.terminate()
    replica.extra_args = ["--replication-secret", SECRET]
    replica.start()
    wait_caught_up(master, [replica])
    assert replica.redis().dbsize() == KEYS


def test_empty_secret_is_refused_at_startup(node_factory: NodeFactory) -> None:
    node = node_factory.master(args=["--replication-secret", ""], wait=False)
    assert node.wait_exit() == 2
    assert "replication.auth_secret: must not be empty" in node.log_text()


def _fake_master_without_a_secret(listener: socket.socket, outcome: dict[str, object]) -> None:
    """Accept one replica, answer its HELLO with a full sync of several MiB (no AUTH
    challenge), and record what happened: did the sends go through, and what came back."""
    conn, _ = listener.accept()
    conn.settimeout(10)
    with conn:
        session = MasterSession(None, int(time.time() * 1000))
        events: list[object] = []
        while not any(isinstance(e, SyncRequested) for e in events):
            events += session.receive_data(conn.recv(65536), int(time.time() * 1000))
        entries = [(b"fk%06d" % i, b"v" * 1000, 0) for i in range(4000)]
        stream = [session.send_fullsync("ab" * 20, 1, len(entries), int(time.time() * 1000))]
        stream += [session.snapshot_chunk(entries[i : i + 100]) for i in range(0, 4000, 100)]
        try:
            for frame in stream:  # the replica refuses the first one; these stay unread
                conn.sendall(frame)
            time.sleep(0.2)  # the replica has closed (or half-closed) by now
            conn.sendall(session.heartbeat(1, int(time.time() * 1000)))
            outcome["sent"] = True
        except OSError as exc:
            outcome["sent"] = exc
        received = bytearray()
        try:
            while chunk := conn.recv(65536):
                received += chunk
            outcome["eof"] = True
        except OSError as exc:
            outcome["eof"] = exc
        outcome["received"] = bytes(received)


def test_a_replica_refusing_a_master_closes_cleanly_so_the_master_reads_why(
    node_factory: NodeFactory,
) -> None:
    """The replica half-closes after its ERROR and drains what the master still sends: a
    plain close with the master's full sync unread would send an RST, and the master's
    next write would fail before it read the ERROR (its log would only say
    "disconnected")."""
    outcome: dict[str, object] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(15)
        port = listener.getsockname()[1]
        master = threading.Thread(
            target=_fake_master_without_a_secret, args=(listener, outcome), daemon=True
        )
        master.start()
        replica = node_factory.replica(f"127.0.0.1:{port}", args=["--replication-secret", SECRET])
        master.join(20)
    assert not master.is_alive()
    assert outcome["sent"] is True, f"the master's writes failed: {outcome['sent']!r}"
    assert outcome["eof"] is True, f"the replica reset the connection: {outcome['eof']!r}"
    received = outcome["received"]
    assert isinstance(received, bytes)
    assert b"did not ask for authentication" in received
    _wait_log(replica, "this replica has replication.auth_secret set but the master did not ask")
    assert replica.redis().dbsize() == 0
