"""Election epochs in the replication protocol: masters announce theirs in CONTINUE,
FULLSYNC and HEARTBEAT (optional trailing field, absent in manual mode), and a replica
that knows a newer epoch refuses an older master (synap/replication/messages.py,
replica_session.py)."""

from __future__ import annotations

import msgpack
import pytest

from synap.replication.framing import FrameDecoder, ProtocolError
from synap.replication.handshake import SessionEnded
from synap.replication.master_session import MasterSession
from synap.replication.messages import Continue, FullSync, Heartbeat, Hello, decode_message
from synap.replication.replica_session import (
    PartialSyncAccepted,
    ReplicaSession,
    ReplicaState,
)

REPLID = "1" * 40
T0 = 1_000_000


def decode_one(frame: bytes) -> object:
    decoder = FrameDecoder(1 << 20)
    decoder.feed(frame)
    body = decoder.next_frame()
    assert body is not None and decoder.next_frame() is None
    return decode_message(body)


@pytest.mark.parametrize(
    "message",
    [
        Continue(REPLID, 5, T0, 7),
        Continue(REPLID, 5, T0),
        FullSync(REPLID, 5, 3, T0, 9),
        FullSync(REPLID, 5, 3, T0),
        Heartbeat(12, T0, 4),
        Heartbeat(12, T0),
    ],
)
def test_epoch_round_trips_and_is_optional(message: object) -> None:
    frame = message.encode()  # type: ignore[attr-defined]
    assert decode_one(frame) == message


def test_without_an_epoch_the_wire_is_unchanged() -> None:
    # Manual mode sends exactly what older nodes send and expect.
    assert len(Heartbeat(12, T0).encode()) < len(Heartbeat(12, T0, 3).encode())


def pair(min_epoch: int) -> tuple[MasterSession, ReplicaSession]:
    master = MasterSession(None, T0)
    replica = ReplicaSession("replica-1", "127.0.0.1:1", REPLID, 10, None)
    replica.min_epoch = min_epoch
    master.receive_data(replica.initiate(T0), T0)
    return master, replica


def test_replica_accepts_a_master_of_its_epoch_or_newer() -> None:
    master, replica = pair(min_epoch=3)
    events = replica.receive_data(master.send_continue(REPLID, T0, epoch=3), T0)
    assert events == [PartialSyncAccepted(REPLID, 10, None)]
    events = replica.receive_data(master.heartbeat(10, T0 + 1000, epoch=4), T0 + 1000)
    assert not any(isinstance(e, SessionEnded) for e in events)
    assert replica.master_epoch == 4


@pytest.mark.parametrize("announced", [0, 2])
def test_replica_refuses_an_older_master_at_the_handshake(announced: int) -> None:
    master, replica = pair(min_epoch=3)
    events = replica.receive_data(master.send_continue(REPLID, T0, epoch=announced), T0)
    assert isinstance(events[-1], SessionEnded)
    assert "older than epoch 3" in str(events[-1])
    assert replica.state is not ReplicaState.STREAMING


def test_replica_that_learns_a_newer_epoch_drops_the_old_master_at_its_next_heartbeat() -> None:
    master, replica = pair(min_epoch=3)
    replica.receive_data(master.send_continue(REPLID, T0, epoch=3), T0)
    replica.min_epoch = 4  # a new master was elected
    events = replica.receive_data(master.heartbeat(10, T0 + 1000, epoch=3), T0 + 1000)
    assert isinstance(events[-1], SessionEnded)
    assert "no longer the elected master" in str(events[-1])


def test_full_sync_from_an_older_master_is_refused() -> None:
    master, replica = pair(min_epoch=5)
    events = replica.receive_data(master.send_fullsync(REPLID, 20, 0, T0, epoch=4), T0)
    assert isinstance(events[-1], SessionEnded)


def test_manual_mode_checks_nothing() -> None:
    master, replica = pair(min_epoch=0)
    events = replica.receive_data(master.send_continue(REPLID, T0), T0)
    assert events == [PartialSyncAccepted(REPLID, 10, None)]


@pytest.mark.parametrize(
    "hello",
    [
        Hello(1, "r1", "127.0.0.1:1", REPLID, 5),
        Hello(1, "r1", "127.0.0.1:1", REPLID, 5, 6380),
        Hello(1, "r1", "127.0.0.1:1", REPLID, 5, 6380, 4),
        Hello(1, "r1", None, REPLID, 5, None, 4),
    ],
)
def test_hello_carries_the_replicas_epoch_optionally(hello: Hello) -> None:
    assert decode_one(hello.encode()) == hello


def test_hello_without_an_epoch_keeps_the_old_layout() -> None:
    assert (
        Hello(1, "r1", None, REPLID, 5, 6380).encode()
        == Hello(1, "r1", None, REPLID, 5, 6380, 0).encode()
    )
    with pytest.raises(ProtocolError):  # a 7-field HELLO still needs a real resp_port
        decode_message(msgpack.packb([1, 1, "r1", None, REPLID, 5, None]))
    with pytest.raises(ProtocolError):  # and the epoch is a number
        decode_message(msgpack.packb([1, 1, "r1", None, REPLID, 5, None, "x"]))


def test_replica_announces_the_epoch_it_knows_in_hello() -> None:
    master, replica = pair(min_epoch=6)
    assert master.hello is not None and master.hello.epoch == 6
