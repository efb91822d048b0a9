"""Per-read batching of the durable path (issue 16, lever 3): a master hands one read's
records to the WAL, the replication log and the replica streams as one batch. Two
promises must survive that:

* **reply only after the WAL write**: pipelined bursts (each sent as one write, so the
  server reads it in one go) are acknowledged, then the master is killed with SIGKILL
  mid-load; after a restart every acknowledged write is there — for each fsync mode
  the crash of a process cannot lose what was written to the OS before the reply.
* **records in order**: several pipelined clients race on shared keys; the master's WAL
  holds the counter's increments in the order their replies were numbered, and the
  replica's WAL holds exactly the master's records at the same offsets.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import hiredis
import pytest

from synap.persistence.wal import iter_segment, list_segments
from synap.store.effects import decode_record
from tests.support.server import NodeFactory, SynapProcess, wait_caught_up, wait_for

BURST = 200
LOAD_SECONDS = 1.5


def command(*args: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Burster:
    """One connection that sends whole pipelined bursts with one ``sendall`` each."""

    def __init__(self, node: SynapProcess) -> None:
        self.sock = socket.create_connection(("127.0.0.1", node.resp_port), timeout=10)
        self.reader = hiredis.Reader()

    def burst(self, commands: list[bytes]) -> list[object]:
        self.sock.sendall(b"".join(commands))
        replies: list[object] = []
        while len(replies) < len(commands):
            reply = self.reader.gets()
            if reply is False:
                data = self.sock.recv(1 << 16)
                if not data:
                    raise ConnectionError("closed")
                self.reader.feed(data)
                continue
            replies.append(reply)
        return replies

    def close(self) -> None:
        self.sock.close()


def wal_records(data_dir: Path) -> dict[int, bytes]:
    """Every record in a node's live WAL segments (read-only), by offset."""
    records: dict[int, bytes] = {}
    for segment in list_segments(data_dir):
        records.update(iter_segment(segment.path))
    return records


@pytest.mark.parametrize("mode", ["always", "periodic"])
def test_pipelined_bursts_acknowledged_before_a_kill_are_all_recovered(
    node_factory: NodeFactory, mode: str
) -> None:
    node = node_factory(
        "bursts",
        config={"persistence": {"fsync_mode": mode, "snapshot_interval_secs": 0}},
    )
    acked: list[str] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(name: str) -> None:
        client = Burster(node)
        i = 0
        try:
            while not stop.is_set():
                keys = [f"{name}:{i + n}" for n in range(BURST)]
                replies = client.burst([command("SET", key, "v-" + key) for key in keys])
                assert replies == [b"OK"] * BURST, replies[:3]
                acked.extend(keys)  # only after every reply of the burst arrived
                i += BURST
        except (ConnectionError, OSError):
            pass  # the kill
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()

    writers = [threading.Thread(target=write, args=(f"w{n}",)) for n in range(3)]
    for thread in writers:
        thread.start()
    wait_for(lambda: len(acked) >= 20 * BURST, 20, message="the writers make no progress")
    time.sleep(LOAD_SECONDS)
    node.kill()  # SIGKILL in the middle of the bursts
    stop.set()
    for thread in writers:
        thread.join(10)
    assert not errors, errors
    count = len(acked)
    node.start()
    client = Burster(node)
    try:
        got = []
        for start in range(0, count, 1000):
            keys = acked[start : start + 1000]
            got += client.burst([command("GET", key) for key in keys])
        lost = [key for key, value in zip(acked, got, strict=True) if value != b"v-" + key.encode()]
    finally:
        client.close()
    assert count >= 20 * BURST
    assert not lost, f"{len(lost)} of {count} acknowledged writes lost after kill -9 ({mode})"


def test_a_replica_holds_the_masters_records_in_the_masters_order(
    node_factory: NodeFactory,
) -> None:
    persistence = {"persistence": {"snapshot_interval_secs": 0}}
    master = node_factory.master(config=persistence)
    replica = node_factory.replica(master, config=persistence)
    wait_caught_up(master, [replica])
    numbered: dict[int, str] = {}  # INCR reply -> which client got it
    lock = threading.Lock()

    def write(name: str) -> None:
        client = Burster(master)
        try:
            for round_ in range(40):
                burst = []
                for n in range(50):
                    burst.append(command("INCR", "counter"))
                    burst.append(command("SET", f"shared:{n % 7}", f"{name}-{round_}-{n}"))
                    burst.append(command("DEL", f"shared:{(n + 3) % 7}"))
                replies = client.burst(burst)
                with lock:
                    for value in replies[0::3]:
                        assert isinstance(value, int)
                        numbered[value] = name
        finally:
            client.close()

    writers = [threading.Thread(target=write, args=(f"c{n}",)) for n in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(60)
    assert sorted(numbered) == list(range(1, 4 * 40 * 50 + 1))
    offset = wait_caught_up(master, [replica], 30)
    wait_for(
        lambda: (
            max(wal_records(master.data_dir), default=0) == offset
            and max(wal_records(replica.data_dir), default=0) == offset
        ),
        10,
        message="the WAL files do not reach the offset",
    )
    ours, theirs = wal_records(master.data_dir), wal_records(replica.data_dir)
    # The replica logs what it was sent after its full sync: the same bytes, same offsets.
    common = sorted(set(theirs))
    # (a DEL of a missing key writes no record; INCR and SET always do)
    assert common and common[-1] == offset and len(common) >= 2 * 4 * 40 * 50
    assert [theirs[o] for o in common] == [ours[o] for o in common]
    # The master's own log numbers the increments in its offset order: 1, 2, 3, ...
    counter = [
        int(op[2])
        for o in sorted(ours)
        for op in decode_record(ours[o])
        if op[0] == 0 and op[1] == b"counter"
    ]
    assert counter == list(range(1, 4 * 40 * 50 + 1))
