"""A full sync's snapshot chunks (synap/replication/snapcodec.py and its C twin
snapcodec.c): both twins cut the keyspace where ``batch_entries`` cuts it and encode each
chunk byte for byte as ``encode_snapshot_payload`` does, for every msgpack size boundary
of keys, values, expiries and entry counts; the C encoder changes no value's reference
count (nor, once it is gone, a key's or a container's); non-bytes and a keyspace that
changes size are refused."""

from __future__ import annotations

import gc
import json
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import synap.replication.snapcodec as loaded
from synap.replication.master_session import batch_entries
from synap.replication.messages import SNAPSHOT_KIND_JSON, encode_snapshot_payload
from tests.support.twins import pure_twin

PURE = pure_twin(loaded, "snapcodec")
SOURCE = Path(PURE.__file__ or "")
TWINS = [pytest.param(PURE, id="pure")]
if loaded.BUILT:
    TWINS.append(pytest.param(loaded, id="c"))
needs_c = pytest.mark.skipif(not loaded.BUILT, reason="snapcodec's C twin is not built here")

INT_EDGES = [
    0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 1_700_000_000_000,
    2**63 - 1, 2**63, 2**64 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63),
]  # fmt: skip


def reference_entries(
    data: dict[bytes, bytes], expires: dict[bytes, int], json_keys: set[bytes]
) -> Iterator[tuple[Any, ...]]:
    """What the forked child encoded before snapcodec (fork_snapshot._entries)."""
    for key, value in data.items():
        if key in json_keys:
            yield (key, value, expires.get(key, 0), SNAPSHOT_KIND_JSON)
        else:
            yield (key, value, expires.get(key, 0))


def reference(
    data: dict[bytes, bytes], expires: dict[bytes, int], json_keys: set[bytes], target: int
) -> list[tuple[bytes, int]]:
    batches = batch_entries(reference_entries(data, expires, json_keys), target)
    return [(encode_snapshot_payload(batch), len(batch)) for batch in batches]


def chunks(
    twin: ModuleType,
    data: dict[bytes, bytes],
    expires: dict[bytes, int],
    json_keys: set[bytes],
    target: int,
) -> list[tuple[bytes, int]]:
    encoder = twin.ChunkEncoder(data, expires, json_keys, target)
    out = []
    while (chunk := encoder.next_chunk()) is not None:
        out.append(chunk)
    assert encoder.next_chunk() is None  # and it stays done
    return out


def check(
    twin: ModuleType,
    data: dict[bytes, bytes],
    expires: dict[bytes, int] | None = None,
    json_keys: set[bytes] | None = None,
    target: int = 64 * 1024,
) -> list[tuple[bytes, int]]:
    expires = expires or {}
    json_keys = json_keys or set()
    got = chunks(twin, data, expires, json_keys, target)
    assert got == reference(data, expires, json_keys, target)
    decoded = [list(entry) for payload, _ in got for entry in msgpack.unpackb(payload)]
    assert decoded == [list(e) for e in reference_entries(data, expires, json_keys)]
    return got


@pytest.mark.parametrize("twin", TWINS)
def test_an_empty_keyspace_has_no_chunk(twin: ModuleType) -> None:
    assert check(twin, {}) == []


@pytest.mark.parametrize("twin", TWINS)
def test_one_entry_is_one_chunk(twin: ModuleType) -> None:
    assert check(twin, {b"k": b"v"}) == [(b"\x91\x93\xc4\x01k\xc4\x01v\x00", 1)]
    assert check(twin, {b"k": b""}, {b"k": 5}, {b"k"}) == [
        (b"\x91\x94\xc4\x01k\xc4\x00\x05\x01", 1)
    ]


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("target", [1, 40, 100, 1000, 64 * 1024])
def test_many_small_entries_cut_as_batch_entries_cuts_them(twin: ModuleType, target: int) -> None:
    rng = random.Random(target)
    data = {b"key:%d" % i: rng.randbytes(rng.randrange(0, 40)) for i in range(3000)}
    got = check(twin, data, target=target)
    assert sum(n for _, n in got) == len(data)


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("size", [0, 1, 31, 32, 255, 256, 65535, 65536, 200_000])
def test_keys_and_values_at_the_bin8_bin16_bin32_boundaries(twin: ModuleType, size: int) -> None:
    data = {b"before": b"x", b"v" * size: b"w" * size, b"k%d" % size: b"y" * size, b"after": b""}
    check(twin, data, target=1000)
    check(twin, data, target=10**9)


@pytest.mark.parametrize("twin", TWINS)
def test_a_value_larger_than_the_target_is_a_chunk_of_its_own(twin: ModuleType) -> None:
    data = {b"a": b"1", b"huge": b"h" * 100_000, b"b": b"2"}
    got = check(twin, data, target=1000)
    assert [n for _, n in got] == [2, 1]


@pytest.mark.parametrize("twin", TWINS)
def test_expiries_at_every_int_size_boundary(twin: ModuleType) -> None:
    data = {b"k%d" % i: b"v" for i in range(len(INT_EDGES) + 3)}
    expires = {b"k%d" % i: at for i, at in enumerate(INT_EDGES)}
    check(twin, data, expires)
    check(twin, data, expires, target=1)  # one entry per chunk
    check(twin, data, expires, set(list(data)[::2]))


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("at", [2**64, -(2**63) - 1])
def test_an_expiry_outside_msgpack_ints_is_refused(twin: ModuleType, at: int) -> None:
    with pytest.raises(OverflowError):
        chunks(twin, {b"k": b"v"}, {b"k": at}, set(), 100)


@pytest.mark.parametrize("twin", TWINS)
def test_json_keys_get_the_json_kind(twin: ModuleType) -> None:
    data = {b"j%d" % i: b'{"a":%d}' % i for i in range(40)}
    data[b"plain"] = b"p"
    json_keys = {k for k in data if k.startswith(b"j")} | {b"not-in-data"}
    got = check(twin, data, {b"j3": 1_700_000_000_000}, json_keys, target=200)
    entries = [e for payload, _ in got for e in msgpack.unpackb(payload)]
    assert all(e[3] == SNAPSHOT_KIND_JSON for e in entries if e[0] != b"plain")


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("count", [1, 15, 16, 17, 65535, 65536, 70_000])
def test_outer_array_headers_for_every_count(twin: ModuleType, count: int) -> None:
    data = {b"%d" % i: b"" for i in range(count)}
    got = check(twin, data, target=10**9)
    assert [n for _, n in got] == [count]


keys = st.binary(max_size=20)
ints = st.one_of(st.sampled_from(INT_EDGES), st.integers(-(2**63), 2**64 - 1))


@st.composite
def keyspaces(draw: st.DrawFn) -> tuple[dict[bytes, bytes], dict[bytes, int], set[bytes], int]:
    data = draw(st.dictionaries(keys, st.binary(max_size=300), max_size=60))
    names = sorted(data)
    expires = {k: draw(ints) for k in names if draw(st.booleans())}
    json_keys = {k for k in names if draw(st.booleans())}
    return data, expires, json_keys, draw(st.integers(-5, 3000))


@settings(max_examples=300, deadline=None)
@given(keyspaces())
def test_random_keyspaces_match_the_reference(
    space: tuple[dict[bytes, bytes], dict[bytes, int], set[bytes], int],
) -> None:
    data, expires, json_keys, target = space
    for twin in (PURE, loaded):
        check(twin, data, expires, json_keys, target)


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("bad", ["text", bytearray(b"x"), memoryview(b"x"), 7, None])
def test_a_value_that_is_not_bytes_is_a_type_error(twin: ModuleType, bad: object) -> None:
    data: dict[Any, Any] = {b"a": b"1", b"b": bad}
    with pytest.raises(TypeError, match="values must be bytes"):
        chunks(twin, data, {}, set(), 10**9)
    with pytest.raises(TypeError, match="keys must be bytes"):
        bad_key: dict[Any, Any] = {b"a": b"1", "b": b"2"}
        chunks(twin, bad_key, {}, set(), 10**9)


@pytest.mark.parametrize("twin", TWINS)
def test_a_bytes_subclass_is_a_type_error(twin: ModuleType) -> None:
    class Sub(bytes):
        pass

    with pytest.raises(TypeError, match="values must be bytes"):
        chunks(twin, {b"a": Sub(b"1")}, {}, set(), 10**9)
    with pytest.raises(TypeError, match="expiries must be int"):
        chunks(twin, {b"a": b"1"}, {b"a": True}, set(), 10**9)


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("change", ["add", "delete"])
def test_a_keyspace_that_changes_size_is_a_runtime_error(twin: ModuleType, change: str) -> None:
    data = {b"k%d" % i: b"v" * 50 for i in range(100)}
    encoder = twin.ChunkEncoder(data, {}, set(), 200)
    assert encoder.next_chunk() is not None
    if change == "add":
        data[b"new"] = b"v"
    else:
        del data[b"k99"]
    with pytest.raises(RuntimeError, match="keyspace changed size during the snapshot"):
        encoder.next_chunk()


def refcounts(objects: Any) -> list[int]:
    """The reference counts of ``objects``, as a list (no container of them outlives the
    call; pytest's assertion rewriting would keep one if taken inside an ``assert``)."""
    return [sys.getrefcount(o) - 1 for o in objects]  # (- the loop variable's own)


@needs_c
@pytest.mark.parametrize("target", [1, 500, 10**9])
def test_the_c_encoder_never_changes_a_values_reference_count(target: int) -> None:
    rng = random.Random(target)
    data = {
        b"key-%d" % i: rng.randbytes(rng.choice([0, 1, 10, 300, 70_000])) + b"%d" % i
        for i in range(500)
    }
    expires = {k: rng.choice(INT_EDGES) for k in list(data)[::3]}
    json_keys = set(list(data)[::5])
    containers = (data, expires, json_keys)
    gc.collect()
    values = refcounts(data.values())
    keys = refcounts(data)
    held = refcounts(containers)
    encoder = loaded.ChunkEncoder(data, expires, json_keys, target)
    payloads = []
    while (chunk := encoder.next_chunk()) is not None:
        payloads.append(chunk)
        now = refcounts(data.values())
        assert now == values
    now = refcounts(data.values())
    assert now == values
    del encoder
    now = refcounts(data.values())
    assert now == values
    now = refcounts(data)
    assert now == keys
    now = refcounts(containers)
    assert now == held
    assert payloads == reference(data, expires, json_keys, target)


@needs_c
def test_the_c_encoder_lets_go_of_everything_after_an_error() -> None:
    data: dict[Any, Any] = {b"a": b"x" * 1000, b"b": "text"}
    expires = {b"a": 5}
    json_keys = {b"a"}
    containers = (data, expires, json_keys)
    held = refcounts(containers)
    values = refcounts(data.values())
    encoder = loaded.ChunkEncoder(data, expires, json_keys, 10**9)
    with pytest.raises(TypeError):
        encoder.next_chunk()
    del encoder
    now = refcounts(containers)
    assert now == held
    now = refcounts(data.values())
    assert now == values


# A child's view of values in memory it must not write: the values are copies of bytes
# objects in an mmap that is then made read-only, so that any write to one (a reference
# count change) is a SIGSEGV. Their counts start high: nothing ever frees them.
READ_ONLY_VALUES = """
import ctypes, json, mmap, os, sys
import msgpack
TWIN = sys.argv[1]
if TWIN == "c":
    from synap.replication.snapcodec import ChunkEncoder
else:
    import importlib.util
    spec = importlib.util.spec_from_file_location("snapcodec_source", sys.argv[2])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ChunkEncoder = module.ChunkEncoder
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
originals = [bytes([i % 251]) * n for i, n in enumerate([0, 1, 255, 256, 65536, 7] * 20)]
size = sum(sys.getsizeof(v) + 16 for v in originals)
size = (size // mmap.PAGESIZE + 1) * mmap.PAGESIZE
area = mmap.mmap(-1, size)
base = ctypes.addressof(ctypes.c_char.from_buffer(area))
data, at = {}, base
for i, value in enumerate(originals):
    ctypes.memmove(at, id(value), sys.getsizeof(value))
    ctypes.c_ssize_t.from_address(at).value = 1 << 40
    data[b"key-%d" % i] = ctypes.cast(at, ctypes.py_object).value
    at += (sys.getsizeof(value) + 15) // 16 * 16
expires = {b"key-%d" % i: i * 1000 for i in range(0, len(originals), 3)}
json_keys = {b"key-%d" % i for i in range(0, len(originals), 4)}
encoder = ChunkEncoder(data, expires, json_keys, 20_000)
assert libc.mprotect(base, size, mmap.PROT_READ) == 0, ctypes.get_errno()
payloads = []
while (chunk := encoder.next_chunk()) is not None:
    payloads.append(chunk)
del encoder
assert libc.mprotect(base, size, mmap.PROT_READ | mmap.PROT_WRITE) == 0
entries = [e for payload, _ in payloads for e in msgpack.unpackb(payload)]
assert [e[1] for e in entries] == originals
print(json.dumps({"chunks": len(payloads), "entries": len(entries)}), flush=True)
os._exit(0)  # (no teardown: the values must not outlive their mmap)
"""


def _read_only_run(twin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", READ_ONLY_VALUES, twin, str(SOURCE)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_c
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mprotect via libc: Linux")
def test_the_c_encoder_reads_values_in_read_only_memory() -> None:
    out = _read_only_run("c")
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    assert json.loads(out.stdout.splitlines()[-1]) == {"chunks": 21, "entries": 120}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mprotect via libc: Linux")
def test_the_read_only_check_catches_an_encoder_that_writes_to_values() -> None:
    # The pure twin's lists hold the values (a reference count write): it crashes there.
    out = _read_only_run("pure")
    assert out.returncode == -signal.SIGSEGV, f"exit {out.returncode}\n{out.stderr}"


def test_the_build_says_which_twin_it_runs() -> None:
    print(f"snapcodec loaded from {loaded.__file__}")
    assert loaded.BUILT in (0, 1) and PURE.BUILT == 0
    assert (loaded.__file__ or "").endswith(".py") == (loaded.BUILT == 0)
