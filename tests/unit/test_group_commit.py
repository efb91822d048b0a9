"""Group commit per loop iteration on the Redis-protocol front end (issue 16, masters).

While records wait for the end-of-iteration flush, RESP replies are held by the node
(``Node.reply_after_flush``) and sent after that flush, so every read of an iteration
shares one WAL write.  A real ``Node`` with the batching the node installs at start
(``History.on_pending``) and a recording WAL in place of the data directory checks:

* nothing is answered before the records of the iteration are written out, and one
  flush serves every connection's read of that iteration;
* replies keep their order, across reads of one connection and behind held ones (a GET
  that could see a held write waits for it);
* reads alone are answered at once (nothing to wait for);
* a connection that closes (QUIT) gets its held replies first;
* a failed WAL write sends none of the held replies: their connections are aborted;
* the SynapRPC front end shares the same iteration's flush and holds its replies the
  same way, and a SynapRPC QUIT gets its held replies before the close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from thunder_rpc.value import Request, Value
from thunder_rpc.wire import decode_response, encode_frame

from synap.api.resp import RespConnection
from synap.api.rpc import RpcConnection
from synap.config import build_config
from synap.node import Node
from synap.persistence import PersistenceError


def _command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class Events:
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []


class RecordingWal:
    """What the node calls on its persistence to write out records: logged in order."""

    def __init__(self, events: Events) -> None:
        self.events = events
        self.buffered: list[bytes] = []
        self.written: list[bytes] = []
        self.fail = False

    def append(self, offset: int, record: bytes) -> None:
        self.buffered.append(record)

    def append_batch(self, first_offset: int, records: Sequence[bytes]) -> None:
        self.buffered.extend(records)

    def flush(self) -> None:
        if not self.buffered:
            return
        if self.fail:
            raise PersistenceError("cannot write WAL segment: No space left on device")
        self.events.log.append(("wal", len(self.buffered)))
        self.written += self.buffered
        self.buffered = []


class Transport:
    def __init__(self, name: str, events: Events) -> None:
        self.name = name
        self.events = events
        self.out = bytearray()
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.events.log.append((self.name, bytes(data)))
        self.out += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default


def _node(events: Events) -> tuple[Node, RecordingWal]:
    node = Node(build_config({}))
    wal = RecordingWal(events)
    node.persistence = wal  # type: ignore[assignment]
    node.history.subscribe(wal.append, wal.append_batch)
    node.history.on_pending = node._schedule_flush  # as Node.start installs it
    return node, wal


def _connect(node: Node, name: str, events: Events) -> tuple[RespConnection, Transport]:
    conn = RespConnection(node)
    transport = Transport(name, events)
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def test_one_flush_serves_every_read_of_an_iteration_and_replies_follow_it() -> None:
    events = Events()

    async def main() -> None:
        node, wal = _node(events)
        a, ta = _connect(node, "a", events)
        b, tb = _connect(node, "b", events)
        c, tc = _connect(node, "c", events)
        a.data_received(_command(b"SET", b"k", b"1") + _command(b"SET", b"j", b"2"))
        b.data_received(_command(b"INCR", b"n") + _command(b"GET", b"k"))
        c.data_received(_command(b"GET", b"k"))  # sees a held write: waits for it too
        a.data_received(_command(b"GET", b"n"))  # a second read of a: behind its first
        assert events.log == [], "a reply left before the records were written"
        await asyncio.sleep(0)
        assert events.log == [
            ("wal", 3),
            ("a", b"+OK\r\n+OK\r\n"),
            ("b", b":1\r\n$1\r\n1\r\n"),
            ("c", b"$1\r\n1\r\n"),
            ("a", b"$1\r\n1\r\n"),
        ]
        assert len(wal.written) == 3 and not wal.buffered
        # Reads alone, with nothing waiting: answered at once, no flush.
        events.log.clear()
        c.data_received(_command(b"GET", b"j"))
        assert events.log == [("c", b"$1\r\n2\r\n")]
        await asyncio.sleep(0)
        assert events.log == [("c", b"$1\r\n2\r\n")]

    asyncio.run(main())


def test_a_closing_connection_gets_its_held_replies_first() -> None:
    events = Events()

    async def main() -> None:
        node, _ = _node(events)
        a, ta = _connect(node, "a", events)
        b, tb = _connect(node, "b", events)
        a.data_received(_command(b"SET", b"k", b"1"))
        b.data_received(_command(b"SET", b"k", b"2") + _command(b"QUIT"))
        # b's close wrote out the records and every held reply, in order, at once.
        assert events.log == [("wal", 2), ("a", b"+OK\r\n"), ("b", b"+OK\r\n+OK\r\n")]
        assert tb.closed and not ta.closed
        await asyncio.sleep(0)
        assert len(events.log) == 3

    asyncio.run(main())


def test_a_failed_wal_write_sends_none_of_the_held_replies() -> None:
    events = Events()

    async def main() -> None:
        node, wal = _node(events)
        wal.fail = True
        a, ta = _connect(node, "a", events)
        b, tb = _connect(node, "b", events)
        a.data_received(_command(b"SET", b"k", b"1"))
        b.data_received(_command(b"GET", b"k"))
        await asyncio.sleep(0)
        assert events.log == [], "a reply went out although its record was not written"
        assert ta.aborted and tb.aborted
        assert wal.buffered and not wal.written  # kept for the next flush to retry
        wal.fail = False
        node.flush_writes()
        assert events.log == [("wal", 1)]

    asyncio.run(main())


def _rpc(i: int, command: str, *args: str) -> bytes:
    return encode_frame(Request(id=i, command=command, args=[Value.str(a) for a in args]))


def _rpc_ids(out: bytes) -> list[int]:
    ids = []
    while out:
        decoded = decode_response(out, max_frame_bytes=2**32 - 1)
        assert decoded is not None, f"a half-written response: {out[-80:]!r}"
        ids.append(decoded[0].id)
        out = out[decoded[1] :]
    return ids


def test_synaprpc_replies_share_the_iterations_flush() -> None:
    events = Events()

    async def main() -> None:
        node, wal = _node(events)
        a, ta = _connect(node, "a", events)
        rpc = RpcConnection(node)
        tr = Transport("rpc", events)
        rpc.connection_made(tr)  # type: ignore[arg-type]
        a.data_received(_command(b"SET", b"k", b"1"))
        rpc.data_received(_rpc(1, "SET", "j", "2") + _rpc(2, "GET", "k"))
        assert events.log == [], "a SynapRPC reply left before the records were written"
        await asyncio.sleep(0)
        assert [e[0] for e in events.log] == ["wal", "a", "rpc"]
        assert events.log[0] == ("wal", 2)  # one WAL write for both front ends' reads
        assert _rpc_ids(bytes(tr.out)) == [1, 2]
        # A QUIT closes only after the held replies went out.
        events.log.clear()
        rpc.data_received(_rpc(3, "SET", "j", "3") + _rpc(4, "QUIT"))
        assert [e[0] for e in events.log] == ["wal", "rpc"] and tr.closed
        assert _rpc_ids(bytes(tr.out)) == [1, 2, 3, 4]

    asyncio.run(main())
