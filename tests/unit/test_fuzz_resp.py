"""The Redis-protocol request path under random input (hypothesis), without sockets.

A real ``RespConnection`` on a real (not started) ``Node`` is fed random bytes, or
random commands that are then truncated, bit-flipped or spliced with garbage, cut into
random reads.  Properties, for every input:

* ``data_received`` never raises and never answers "internal error";
* what the server wrote parses as complete RESP replies, nothing half-written;
* when the server closes the connection, its last reply says why (a protocol error),
  unless the client asked with QUIT;
* the seeded keys are unchanged, and the effect records committed rebuild the dataset.

Each example runs in its own event loop with a bounded number of reads, and hypothesis's
deadline catches a hang.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
from hypothesis import example, given
from hypothesis import strategies as st

from synap.api.resp import COMMANDS, RespConnection
from synap.node import Node
from synap.store.digest import dataset_digest
from synap.store.effects import apply_record
from synap.store.keyspace import Keyspace
from tests.support.fuzz_node import FUZZ, MAX_VALUE, SEED, FakeTransport, fuzz_node


def run_connection(chunks: list[bytes]) -> tuple[Node, list[bytes], bytes, bool]:
    """Feed ``chunks`` to a fresh connection; return the node, the records it committed,
    the bytes it wrote and whether it closed the connection."""
    node, records = fuzz_node()
    transport = FakeTransport()

    async def main() -> None:
        conn = RespConnection(node)
        conn.connection_made(transport)  # type: ignore[arg-type]
        for chunk in chunks:
            if transport.closed:
                break
            conn.data_received(chunk)
            for _ in range(3):  # let a blocking command (WAIT) finish
                await asyncio.sleep(0)
        conn.connection_lost(None)

    asyncio.run(main())
    return node, records, bytes(transport.out), transport.closed


def parse_replies(out: bytes) -> list[Any]:
    reader = hiredis.Reader()
    reader.feed(out)
    replies = []
    while True:
        reply = reader.gets()
        if reply is False:
            break
        replies.append(reply)
    assert not reader.has_data(), f"a half-written reply: {out[-80:]!r}"
    return replies


def check(chunks: list[bytes]) -> None:
    node, records, out, closed = run_connection(chunks)
    assert b"internal error" not in out, out
    replies = parse_replies(out)
    sent = b"".join(chunks).upper()
    # QUIT and SHUTDOWN close without a protocol error (SHUTDOWN answers nothing, as
    # in Redis); hypothesis finds the name among the source's constants.
    if closed and b"QUIT" not in sent and b"SHUTDOWN" not in sent:
        assert replies, "closed without a word"
        last = replies[-1]
        assert isinstance(last, hiredis.ReplyError), last
        assert str(last).startswith(("ERR Protocol error", "ERR max number")), last
    ks = node.keyspace
    if b"FLUSH" not in b"".join(chunks).upper():  # RESP FLUSHALL is always allowed
        for key, value in SEED.items():
            assert ks.data.get(key) == value, f"seeded key {key!r} changed"
    replayed = Keyspace(expire_on_access=False)
    replayed.replace(dict(SEED), {})
    for record in records:
        apply_record(replayed, record)
    assert dataset_digest(replayed.data, replayed.expires, replayed.json_keys) == (
        dataset_digest(ks.data, ks.expires, ks.json_keys)
    )
    assert ks.json_keys <= ks.data.keys(), "a json-kind mark outlived its key"


# ------------------------------------------------------------------ strategies

names = st.sampled_from(
    sorted(n for n in COMMANDS if n not in (b"REPLICAOF", b"SLAVEOF", b"SHUTDOWN"))
)
names = names.flatmap(lambda n: st.sampled_from([n, n.lower(), n.capitalize()])) | st.binary(
    max_size=12
)
ARGS = [b"k", b"n", b"other", b"f", b"0", b"1", b"-1", b"10", b"1.5", b"-0", b"00", b"+1",
        b"9223372036854775807", b"9223372036854775808", b"-9223372036854775809", b"1e400",
        b"nan", b"inf", b"EX", b"PX", b"EXAT", b"PXAT", b"NX", b"XX", b"GT", b"LT", b"GET",
        b"KEEPTTL", b"MATCH", b"COUNT", b"TYPE", b"*", b"k*", b"[", b"[]", b"\\", b"WITHSCORES",
        b"", b"\r\n", b"*1\r\n", b"$-1", b"x" * (MAX_VALUE + 1), b"GETNAME", b"SETNAME",
        b"PAUSE", b"10", b"DIGEST", b"3", b"2"]  # fmt: skip
args = st.sampled_from(ARGS) | st.binary(max_size=16)
commands = st.tuples(names, st.lists(args, max_size=5)).map(lambda t: [t[0], *t[1]])


def encode_resp(command: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(command) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in command)


def encode_inline(command: list[bytes]) -> bytes:
    return b" ".join(command) + b"\r\n"


requests = st.lists(
    st.tuples(commands, st.booleans()).map(
        lambda t: encode_inline(t[0]) if t[1] else encode_resp(t[0])
    ),
    min_size=1,
    max_size=8,
).map(b"".join)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(requests))
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
            data[at:at] = draw(st.sampled_from([b"*", b"$", b"\r\n", b"$4294967296\r\n", b"\x00", b"*-1\r\n"]) | st.binary(max_size=8))  # fmt: skip
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


# ------------------------------------------------------------------ properties


@FUZZ
@given(cut(st.binary(max_size=300)))
@example([b"\x00\x01\x02garbage \xff\xfe\r\n"])
@example([b"*1\r\n$4294967296\r\n"])
@example([b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$42949", b"67296\r\nxx"])
def test_random_bytes(chunks: list[bytes]) -> None:
    check(chunks)


@FUZZ
@given(cut(requests))
@example([encode_resp([b"KEYS", b"*a*a*a*a*a*a*a*a*a*a*a*ab"])])
@example([encode_resp([b"KEYS", b"[]"]), encode_resp([b"KEYS", b"[z-a]"])])
@example([encode_resp([b"SET", b"k", b"v", b"EX", b"9223372036854775807"])])
@example([encode_resp([b"INCRBYFLOAT", b"n", b"1e308"]) * 2])
@example([encode_resp([b"CLIENT", b"PAUSE", b"10"]), encode_resp([b"SET", b"k", b"v"])])
@example([encode_resp([b"WAIT", b"1", b"1"]) + encode_resp([b"SET", b"k", b"v"])])
def test_random_commands(chunks: list[bytes]) -> None:
    check(chunks)


@FUZZ
@given(cut(mutated()))
def test_mutated_commands(chunks: list[bytes]) -> None:
    check(chunks)
