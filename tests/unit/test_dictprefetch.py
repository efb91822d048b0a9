"""Prefetching a batch of keys' dictionary slots (synap/store/dictprefetch.py and its C
twin dictprefetch.c): a hint that changes nothing (the dict, its keys and values, their
reference counts), on every size of hash index, with deleted slots, absent keys, keys of
other types and dicts of other layouts; and, on the compiled build, one that reads the
dictionary's layout right (present keys find their entries, absent ones none)."""

from __future__ import annotations

import sys

import pytest

import synap.store.dictprefetch as loaded
from tests.support.twins import pure_twin

PURE = pure_twin(loaded, "dictprefetch")
TWINS = [pytest.param(PURE, id="pure")]
if loaded.BUILT:
    TWINS.append(pytest.param(loaded, id="c"))
needs_c = pytest.mark.skipif(not loaded.BUILT, reason="dictprefetch's C twin is not built here")

# Dicts whose hash index uses 1, 2, 4 bytes per slot (8 needs 2**31 slots).
SIZES = [0, 1, 5, 100, 200, 40_000, 200_000]


def keyspace(size: int) -> dict[bytes, bytes]:
    return {b"key:%012d" % i: b"v%d" % i for i in range(size)}


def refcounts(data: dict[object, object]) -> list[tuple[int, int]]:
    return [(sys.getrefcount(k), sys.getrefcount(v)) for k, v in data.items()]


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("size", SIZES)
def test_prefetch_changes_nothing(twin, size: int) -> None:
    data = keyspace(size)
    for i in range(0, size, 3):  # deleted slots (DKIX_DUMMY) in the index
        del data[b"key:%012d" % i]
    present = list(data)[:200]
    keys = [*present, b"absent", b"", b"key:%012d" % (size + 7)]
    copy, refs = dict(data), refcounts(data)
    key_refs = [sys.getrefcount(k) for k in keys]
    assert twin.prefetch(data, keys) is None
    assert refcounts(data) == refs
    assert data == copy and list(data) == list(copy)
    assert [sys.getrefcount(k) for k in keys] == key_refs
    assert keys[-3:] == [b"absent", b"", b"key:%012d" % (size + 7)]


@pytest.mark.parametrize("twin", TWINS)
def test_other_keys_and_layouts_are_left_alone(twin) -> None:
    class Key(bytes):  # a bytes subclass may hash in Python code: not hashed
        def __hash__(self) -> int:
            raise AssertionError("prefetch must not run Python code")

    mixed: dict[object, object] = {b"a": 1, "s": 2, 3: 4, (1, 2): 5}
    copy, refs = dict(mixed), refcounts(mixed)
    twin.prefetch(mixed, [b"a", "s", 3, (1, 2), Key(b"a"), None])
    assert refcounts(mixed) == refs and mixed == copy
    strings = {"a": b"1", "b": b"2"}  # str-only keys: another entry layout
    twin.prefetch(strings, [b"a", b"b"])
    assert strings == {"a": b"1", "b": b"2"}

    class Holder:
        pass

    split = Holder()
    split.x = b"1"  # an instance's dict: a split table
    twin.prefetch(split.__dict__, [b"x"])
    assert split.__dict__ == {"x": b"1"}


@pytest.mark.parametrize("twin", TWINS)
def test_any_number_of_keys(twin) -> None:
    data = keyspace(1000)
    keys = list(data)
    for n in (0, 1, 255, 256, 257, 1000):
        twin.prefetch(data, keys[:n])
    assert data == keyspace(1000)


@needs_c
def test_the_c_twin_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="prefetch"):
        loaded.prefetch([], [])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="prefetch"):
        loaded.prefetch({}, (b"a",))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        loaded.prefetch({})  # type: ignore[call-arg]


@needs_c
@pytest.mark.parametrize("size", [100, 40_000, 200_000])
def test_the_c_twin_reads_the_layout_right(size: int) -> None:
    """Present keys find an entry of their own hash at their first probe (most of them:
    the others collided into a later probe); absent keys find none. Read with a wrong
    layout, neither would hold."""
    hits = loaded.first_probe_hits  # type: ignore[attr-defined]
    data = keyspace(size)
    present = [b"key:%012d" % i for i in range(0, size, max(1, size // 256))][:256]
    absent = [b"nope:%d" % i for i in range(256)]
    assert hits(data, present) >= 0.6 * len(present)
    assert hits(data, absent) == 0
    assert hits(data, present[:10] + [b"x", 5, "s"]) >= 6  # type: ignore[list-item]
    assert hits({}, present) == 0
    assert hits(data, absent + present) == 0  # only the first 256 keys are looked at
