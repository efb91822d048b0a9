"""The SynapRPC request path under random input (hypothesis), without sockets.

Two levels, like tests/unit/test_fuzz_resp.py:

* the sans-IO decoder (:class:`RpcConnectionState`) fed random bytes, or valid request
  frames that are then bit-flipped, truncated or spliced with garbage, cut into random
  reads: it never raises; it returns only requests and framing errors; after a fatal
  error it returns nothing more; and valid frames decode to the same requests however the
  stream is cut;
* a real ``RpcConnection`` on a real (not started) ``Node``: ``data_received`` never
  raises and never answers "internal error"; what it writes is whole Thunder response
  frames, one per request id it could read; the seeded keys are unchanged (unless a
  request names one), and the effect records committed rebuild the dataset.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from thunder_rpc.value import Request, Value
from thunder_rpc.wire import decode_response, encode_frame

from synap.api import rpc_codec as C
from synap.api.resp import COMMANDS
from synap.api.rpc import RpcConnection
from synap.node import Node
from synap.store.digest import dataset_digest
from synap.store.effects import apply_record
from synap.store.keyspace import Keyspace
from tests.support.fuzz_node import FUZZ, MAX_VALUE, SEED, FakeTransport, fuzz_node

LIMIT = 8192

# ------------------------------------------------------------------ strategies

names = st.sampled_from(
    sorted(n.decode() for n in COMMANDS if n not in (b"REPLICAOF", b"SLAVEOF", b"FAILOVER"))
)
names = (
    names | st.sampled_from(["TXQUEUE", "SUBSCRIBE", "KV.WATCH", "get", ""]) | st.text(max_size=8)
)
scalars = st.one_of(
    st.sampled_from(
        [
            "k",
            "n",
            "seed:1",
            "EX",
            "PX",
            "NX",
            "XX",
            "GET",
            "MATCH",
            "COUNT",
            "*",
            "1",
            "-1",
            "1.5",
            "x" * (MAX_VALUE + 1),
        ]
    ).map(Value.str),  # fmt: skip
    st.text(max_size=8).map(Value.str),
    st.binary(max_size=8).map(Value.bytes),
    st.integers(-(2**63), 2**63 - 1).map(Value.int),
    st.sampled_from([0, 1, 2, 10, -1]).map(Value.int),
    st.floats(allow_nan=True).map(Value.float),
    st.booleans().map(Value.bool),
    st.just(Value.null()),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3).map(Value.array)
        | st.lists(st.tuples(inner, inner), max_size=2).map(Value.map)
    ),
    max_leaves=6,
)
requests = st.builds(
    lambda i, n, a: Request(id=i, command=n, args=a),
    st.integers(0, 2**32 - 1) | st.integers(0, 5),
    names,
    st.lists(values, max_size=5),
)
streams = st.lists(requests, min_size=1, max_size=8)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(b"".join(encode_frame(r) for r in draw(streams)))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xc1", b"\x93", b"\x81\xa3Int"]) | st.binary(max_size=8))  # fmt: skip
        else:
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


@st.composite
def cut(draw: st.DrawFn, stream: st.SearchStrategy[bytes]) -> list[bytes]:
    """A byte stream split into at most 12 reads at random points."""
    data = draw(stream)
    points = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=11))))
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a] or [b""]


# ------------------------------------------------------------------ the decoder


def decode(chunks: list[bytes]) -> list[C.Event]:
    state = C.RpcConnectionState(LIMIT)
    events: list[C.Event] = []
    for chunk in chunks:
        got = state.feed(chunk)
        if events and isinstance(events[-1], C.FrameError) and events[-1].request_id is None:
            assert got == [], "events after a fatal error"
        events += got
    for event in events:
        assert isinstance(event, (Request, C.FrameError)), event
        if isinstance(event, C.FrameError):
            assert event.message
    fatal = [
        i for i, e in enumerate(events) if isinstance(e, C.FrameError) and e.request_id is None
    ]
    assert fatal in ([], [len(events) - 1]), "a fatal error must be the last event"
    assert state.buffered <= LIMIT + 4
    return events


@FUZZ
@given(cut(st.binary(max_size=300)))
@example([b"\xff\xff\xff\xff"])
@example([b"\x03\x00\x00\x00\x93\x01"])
def test_decoder_random_bytes(chunks: list[bytes]) -> None:
    decode(chunks)


@FUZZ
@given(cut(mutated()))
def test_decoder_mutated_frames(chunks: list[bytes]) -> None:
    decode(chunks)


@FUZZ
@given(streams, st.data())
def test_decoder_valid_frames_decode_the_same_however_cut(
    reqs: list[Request], data: st.DataObject
) -> None:
    stream = b"".join(encode_frame(r) for r in reqs)
    if len(stream) > LIMIT:
        return
    chunks = data.draw(cut(st.just(stream)))
    events = decode(chunks)
    assert all(isinstance(e, Request) for e in events)
    # Compared re-encoded: a NaN argument is not equal to itself.
    assert b"".join(encode_frame(e) for e in events) == stream  # type: ignore[arg-type]


# ------------------------------------------------------------------ the connection


def run_connection(chunks: list[bytes]) -> tuple[Node, list[bytes], bytes]:
    node, records = fuzz_node()
    transport = FakeTransport()

    async def main() -> None:
        conn = RpcConnection(node)
        conn.connection_made(transport)  # type: ignore[arg-type]
        for chunk in chunks:
            if transport.closed:
                break
            for _ in range(50):  # a blocking command (WAIT) pauses reading until it ends
                if not transport.paused:
                    break
                await asyncio.sleep(0.001)
            conn.data_received(chunk)
            for _ in range(3):
                await asyncio.sleep(0)
        for _ in range(50):  # let blocking commands (two BGSAVEs in a row...) finish
            if conn._blocked is None:
                break
            await asyncio.sleep(0.001)
        conn.connection_lost(None)

    asyncio.run(main())
    return node, records, bytes(transport.out)


def responses(out: bytes) -> list[Any]:
    found = []
    buf = out
    while buf:
        decoded = decode_response(buf, max_frame_bytes=2**32 - 1)
        assert decoded is not None, f"a half-written response: {buf[-80:]!r}"
        found.append(decoded[0])
        buf = buf[decoded[1] :]
    return found


def check(chunks: list[bytes], expect: list[Request] | None = None) -> None:
    node, records, out = run_connection(chunks)
    assert b"internal error" not in out, out
    if out.startswith(b"HTTP/1.1 400"):
        # Bytes that begin like an HTTP request get an HTTP answer naming the HTTP port.
        assert b"".join(chunks)[:4] in C.HTTP_METHODS, out
        got: list[Any] = []
    else:
        got = responses(out)
    if expect is not None:  # whole valid requests: one response each, in order
        sent = b"".join(chunks)
        # QUIT and SHUTDOWN close the connection without a reply (as in Redis), CLIENT
        # REPLY OFF|SKIP drops replies: only without them is there one reply per request.
        if not any(word in sent.upper() for word in (b"QUIT", b"SHUTDOWN", b"REPLY")):
            assert [r.id for r in got] == [r.id for r in expect]
    sent = b"".join(chunks).upper()
    ks = node.keyspace
    # Valid requests may name a seeded key ("seed:1" is among the arguments): a DEL or a
    # SET of it changes it rightly, and the records' replay below checks what it became.
    if b"FLUSH" not in sent and b"SEED:" not in sent:
        for key, value in SEED.items():
            assert ks.data.get(key) == value, f"seeded key {key!r} changed"
    replayed = Keyspace(expire_on_access=False)
    replayed.replace(dict(SEED), {})
    for record in records:
        apply_record(replayed, record)
    assert dataset_digest(replayed.data, replayed.expires) == dataset_digest(ks.data, ks.expires)


def frames(*reqs: Request) -> bytes:
    return b"".join(encode_frame(r) for r in reqs)


def req(i: int, command: str, *args: Any) -> Request:
    return Request(id=i, command=command, args=[Value.str(a) if isinstance(a, str) else a for a in args])  # fmt: skip


@FUZZ
@given(cut(st.binary(max_size=300)))
def test_connection_random_bytes(chunks: list[bytes]) -> None:
    check(chunks)


@FUZZ
@given(streams, st.data())
@example([req(1, "SET", "k", "v", "EX", Value.int(2**63 - 1))], None)
@example([req(1, "WAIT", Value.int(1), Value.int(1)), req(2, "SET", "k", "v")], None)
@example([req(1, "INCRBYFLOAT", "n", Value.float(1e308))] * 2, None)
@example([req(1, "SET", "k", Value.float(float("nan")))], None)
def test_connection_valid_requests(reqs: list[Request], data: st.DataObject | None) -> None:
    stream = frames(*reqs)
    chunks = data.draw(cut(st.just(stream))) if data is not None else [stream]
    check(chunks, reqs)


@FUZZ
@given(cut(mutated()))
def test_connection_mutated_frames(chunks: list[bytes]) -> None:
    check(chunks)


def test_nothing_after_quit_runs() -> None:
    node, records, out = run_connection(
        [frames(req(1, "SET", "a", "1"), req(2, "QUIT"), req(3, "SET", "b", "2"))]
    )
    assert [r.id for r in responses(out)] == [1, 2]
    assert node.keyspace.data.get(b"a") == b"1" and b"b" not in node.keyspace.data
