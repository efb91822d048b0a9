"""A streaming replica ACKs each applied batch at once on a busy link, but records after a
quiet link ``ACK_DELAY_SECONDS`` later, one ACK for every batch meanwhile
(replication/replica.py); a heartbeat is ACKed at once (covering the one still due); a
master waiting for ACKs asks for them with a HEARTBEAT."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from synap.replication import replica
from synap.replication.framing import FrameDecoder
from synap.replication.master import MasterServer
from synap.replication.master_session import MasterSession
from synap.replication.messages import Ack, Heartbeat, decode_message, encode_records
from synap.replication.replica_session import ReplicaSession, ReplicaState
from synap.store.effects import encode_record
from synap.store.history import History
from synap.store.keyspace import Keyspace

REPLID = "1" * 40


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def acks(self) -> list[int]:
        decoder = FrameDecoder()
        out = []
        for body in decoder.decode(b"".join(self.written)):
            message = decode_message(body)
            assert isinstance(message, Ack), message
            out.append(message.offset)
        return out


def connection() -> tuple[Any, Transport, Keyspace]:
    master = MasterSession(None, 0)
    session = ReplicaSession("replica-1", "10.0.0.5:15501", REPLID, 10, None)
    master.receive_data(session.initiate(0), 0)
    session.receive_data(master.data_to_send(), 0)
    session.receive_data(master.send_continue(REPLID, 0), 0)
    assert session.state is ReplicaState.STREAMING
    keyspace = Keyspace()
    node = SimpleNamespace(
        keyspace=keyspace,
        history=History(REPLID, 10),
        persistence=None,
        flush_writes=lambda: None,
    )
    link: Any = SimpleNamespace(
        bytes_received=0,
        last_io=0.0,
        known_master_offset=0,
        records_applied=0,
        node=node,
        manager=SimpleNamespace(epoch=0, apply_seconds=SimpleNamespace(observe=lambda s: None)),
    )
    conn = replica._MasterConnection(link, session)
    transport = Transport()
    conn.transport = transport  # type: ignore[assignment]
    return conn, transport, keyspace


def frame(first: int, count: int) -> bytes:
    records = [encode_record([[0, b"k%d" % o, b"v%d" % o, 0]]) for o in range(first, first + count)]
    return encode_records(first, records, 5)


def test_after_a_quiet_link_batches_applied_within_the_delay_share_one_ack(monkeypatch):
    monkeypatch.setattr(replica, "ACK_QUIET_SECONDS", 0.0)  # every frame finds it quiet

    async def main() -> None:
        conn, transport, keyspace = connection()
        conn.data_received(frame(11, 2))
        conn.data_received(frame(13, 1))
        assert keyspace.lookup(b"k13") == b"v13"  # applied at once ...
        assert transport.acks() == []  # ... acknowledged later
        await asyncio.sleep(replica.ACK_DELAY_SECONDS * 5)
        assert transport.acks() == [13]
        conn.data_received(frame(14, 1))
        await asyncio.sleep(replica.ACK_DELAY_SECONDS * 5)
        assert transport.acks() == [13, 14]

    asyncio.run(main())


def test_on_a_busy_link_each_batch_is_acked_at_once(monkeypatch):
    monkeypatch.setattr(replica, "ACK_QUIET_SECONDS", 60.0)  # quiet only before the first

    async def main() -> None:
        conn, transport, _ = connection()
        conn.data_received(frame(11, 1))  # the first records on the link: a moment later
        assert transport.acks() == []
        await asyncio.sleep(replica.ACK_DELAY_SECONDS * 5)
        assert transport.acks() == [11]
        conn.data_received(frame(12, 2))  # right after: at once, no timer
        assert transport.acks() == [11, 13]
        conn.data_received(frame(14, 1))
        assert transport.acks() == [11, 13, 14]
        assert conn._ack_timer is None

    asyncio.run(main())


def test_a_heartbeat_acks_at_once_and_covers_the_ack_still_due():
    async def main() -> None:
        conn, transport, _ = connection()
        conn.data_received(frame(11, 3))
        conn.data_received(Heartbeat(13, 6).encode())
        assert transport.acks() == [13]
        await asyncio.sleep(replica.ACK_DELAY_SECONDS * 5)
        assert transport.acks() == [13]  # the delayed one was cancelled

    asyncio.run(main())


def test_no_ack_after_the_connection_is_lost():
    async def main() -> None:
        conn, transport, _ = connection()
        conn.data_received(frame(11, 1))
        conn.connection_lost(None)
        await asyncio.sleep(replica.ACK_DELAY_SECONDS * 5)
        assert transport.acks() == []

    asyncio.run(main())


class AckingReplica:
    """Stands in for a master's ReplicaConnection: a HEARTBEAT is answered by an ACK of
    everything it holds (as replica.py does at once), records alone by none here."""

    def __init__(self, server: MasterServer, holds: int) -> None:
        self.server = server
        self.streaming = True
        self.holds = holds
        self.session = SimpleNamespace(acked_offset=0, fsynced_offset=0)
        self.heartbeats: list[int] = []

    def catch_up(self, frames: dict[int, Any] | None = None) -> None:
        pass

    def heartbeat(self, offset: int) -> None:
        self.heartbeats.append(offset)
        self.session.acked_offset = self.holds
        self.server.on_ack()


def test_a_wait_for_acks_asks_the_replicas_with_a_heartbeat_at_once():
    async def main() -> tuple[int, list[int], list[int], float]:
        manager: Any = SimpleNamespace(config=SimpleNamespace(output_buffer_limit_mb=1))
        node: Any = SimpleNamespace(history=SimpleNamespace(offset=7))
        srv = MasterServer(manager, node, "127.0.0.1", 0)
        behind, current = AckingReplica(srv, 5), AckingReplica(srv, 7)
        srv.connections.update([behind, current])  # type: ignore[list-item]
        started = asyncio.get_running_loop().time()
        count = await srv.wait_for_acks(7, 1, 5.0)
        took = asyncio.get_running_loop().time() - started
        return count, behind.heartbeats, current.heartbeats, took

    count, behind, current, took = asyncio.run(main())
    assert (count, behind, current) == (1, [7], [7])
    assert took < 1.0  # answered by the heartbeat, not by the 5 s timeout
