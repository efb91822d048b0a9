"""synap.tightalloc's shared values (C): ``share()`` copies a value into memory mapped
``MAP_SHARED`` that a forked child reads without ``fork()`` copying its page tables. The
copies are exact; only exact bytes of 2-471 bytes are copied; a block freed while a child
may read (``reader_started`` .. ``reader_ended``) is quarantined, not reused, so a child
reading the master's values at the fork still finds them while the master frees and
rewrites (and without the quarantine it would not: the control case); the quarantine is
given back in slices afterwards; a forked child shares nothing; and the decision
(``kv_store.shared_values``, ``SYNAP_SHARED_VALUES``) says why when it is off. Each test
that installs runs a fresh interpreter (the allocator is installed once per process)."""

from __future__ import annotations

import sys

import pytest

from synap import sizeclasses, tightalloc
from synap.sizeclasses import Status, decide_sharing
from tests.support.fresh_interpreter import run_fresh

built = pytest.mark.skipif(
    not tightalloc.BUILT or not sys.platform.startswith("linux"),
    reason="the C module is not built here (pure-Python build), or not Linux",
)

PRELUDE = """
import ctypes, gc, json, os
from synap import tightalloc

def value(i, n=100):
    return (b"%d-" % i).ljust(n, b"v")[:n]

DATA = 32  # offsetof(PyBytesObject, ob_sval) on 64-bit CPython
"""


def run(code: str, timeout: float = 120) -> dict:
    return run_fresh(PRELUDE, code, timeout)


@built
def test_share_copies_exact_bytes_of_2_to_471_bytes_and_nothing_else() -> None:
    got = run(
        """
        tightalloc.install(129, 504, False, 512, True)
        sizes = list(range(0, 480))
        copies = {n: tightalloc.share(value(7, n) if n > 1 else b"a" * n) for n in sizes}
        shared = {n: tightalloc.is_shared(c) for n, c in copies.items()}
        exact = all(c == (value(7, n) if n > 1 else b"a" * n) and type(c) is bytes
                    for n, c in copies.items())
        once = tightalloc.share(copies[100])
        other = [tightalloc.is_shared(tightalloc.share(x)) for x in
                 (bytearray(b"abc" * 10), "text" * 10, memoryview(b"x" * 50))]
        class B(bytes):
            pass
        sub = tightalloc.is_shared(tightalloc.share(B(b"y" * 50)))
        h = hash(value(3)); hashed = tightalloc.share(value(3))
        s = tightalloc.stats()
        print(json.dumps({"shared": [n for n in sizes if shared[n]], "exact": exact,
                          "same": once is copies[100], "other": other, "sub": sub,
                          "hash": hash(hashed) == h, "stats": s}))
        """
    )
    assert got["shared"] == list(range(2, 472))
    assert got["exact"] and got["same"] and got["hash"]
    assert got["other"] == [False, False, False] and not got["sub"]
    s = got["stats"]
    assert s["sharing"] == 1 and s["shared_objects"] == 470 + 1 and s["share_fallbacks"] == 0
    assert s["quarantined"] == 0 and s["readers"] == 0


@built
def test_without_sharing_share_returns_the_value_itself() -> None:
    got = run(
        """
        before = tightalloc.share(value(1))
        tightalloc.install(129, 504, False)
        v = value(2)
        print(json.dumps({"before": tightalloc.is_shared(before), "same": tightalloc.share(v) is v,
                          "objects": tightalloc.stats()["shared_objects"]}))
        """
    )
    assert got == {"before": False, "same": True, "objects": 0}


@built
def test_freed_blocks_wait_in_quarantine_while_a_reader_lives_and_come_back_after() -> None:
    got = run(
        """
        tightalloc.install(129, 504, False, 512, True)
        vals = [tightalloc.share(value(i)) for i in range(20000)]
        ids = {id(v) for v in vals}
        tightalloc.reader_started()
        del vals
        quarantined = tightalloc.stats()["quarantined"]
        during = [tightalloc.share(value(i)) for i in range(20000)]
        reused_during = len(ids & {id(v) for v in during})
        peak = tightalloc.stats()
        none_while_reading = tightalloc.release_quarantined(10**9)
        left_readers = tightalloc.reader_ended()
        steps = []
        while True:
            left = tightalloc.release_quarantined(5000)
            steps.append(left)
            if not left:
                break
        released = tightalloc.stats()
        print(json.dumps({"quarantined": quarantined, "reused_during": reused_during,
                          "none_while_reading": none_while_reading, "readers": left_readers,
                          "steps": steps, "peak": peak, "released": released}))
        """
    )
    assert got["quarantined"] == 20000
    assert got["reused_during"] == 0  # a child may still read those
    assert got["none_while_reading"] == 0 and got["readers"] == 0
    assert got["steps"] == [15000, 10000, 5000, 0]
    peak, released = got["peak"], got["released"]
    assert peak["shared_objects"] == 40000  # the quarantined ones still count
    assert released["quarantined"] == 0 and released["shared_objects"] == 20000
    assert released["shared_chunks"] < peak["shared_chunks"]  # their memory went back


@built
@pytest.mark.parametrize("quarantine", [True, False], ids=["reader-counted", "control"])
def test_a_forked_child_reads_the_values_of_the_fork_while_the_parent_rewrites(
    quarantine: bool,
) -> None:
    """The child reads the shared values' bytes at their addresses (no reference, as the
    snapshot encoder reads them) after the parent freed them all and shared as many new
    ones. Counted as a reader, it finds every value of the fork; not counted (the
    control), the parent reuses the blocks and the child reads the new values: the
    quarantine is what makes the shared memory a snapshot."""
    got = run(
        f"""
        tightalloc.install(129, 504, False, 512, True)
        N = 20000
        vals = [tightalloc.share(value(i)) for i in range(N)]
        addrs = [id(v) + DATA for v in vals]
        go_r, go_w = os.pipe(); out_r, out_w = os.pipe()
        if {quarantine}:
            tightalloc.reader_started()
        gc.disable()
        pid = os.fork()
        if pid == 0:
            os.read(go_r, 1)
            bad = sum(ctypes.string_at(a, 100) != value(i) for i, a in enumerate(addrs))
            y = tightalloc.share(value(1))
            os.write(out_w, json.dumps([bad, tightalloc.is_shared(y)]).encode())
            os._exit(0)
        del vals                                   # freed in the parent ...
        new = [tightalloc.share(b"N" * 100) for _ in range(N)]   # ... and reused if it may
        os.write(go_w, b"x")
        bad, child_shared = json.loads(os.read(out_r, 1000))
        os.waitpid(pid, 0)
        left = tightalloc.reader_ended()
        while tightalloc.release_quarantined(4096):
            pass
        print(json.dumps({{"bad": bad, "child_shared": child_shared, "left": left,
                          "quarantined": tightalloc.stats()["quarantined"]}}))
        """
    )
    assert not got["child_shared"]  # a forked child never allocates shared blocks
    assert got["left"] == 0 and got["quarantined"] == 0
    if quarantine:
        assert got["bad"] == 0
    else:  # (chunks emptied whole are unmapped in the parent: the child keeps those)
        assert got["bad"] > 1000


def test_sharing_needs_the_size_classes_and_says_why_it_is_off() -> None:
    fine = Status(True, "kv_store.size_classes is fine")
    assert decide_sharing(fine, True).describe_switch() == "on"
    assert decide_sharing(fine, True).reason == "kv_store.shared_values is true"
    assert decide_sharing(fine, False).describe_switch() == (
        "off (kv_store.shared_values is false)"
    )
    assert decide_sharing(fine, False, "on").active
    assert (
        decide_sharing(fine, True, " OFF ").describe_switch() == "off (SYNAP_SHARED_VALUES is off)"
    )
    assert decide_sharing(fine, True, "0").describe_switch() == "off (SYNAP_SHARED_VALUES is off)"
    pym = Status(False, "kv_store.size_classes is pymalloc")
    assert decide_sharing(pym, True).describe_switch() == (
        "off (size classes are pymalloc: kv_store.size_classes is pymalloc)"
    )
    assert not decide_sharing(pym, True, "on").active
    assert decide_sharing(fine, True, None, huge_pages=True).describe_switch() == (
        "off (huge pages are active: fork() copies few page tables already)"
    )
    assert decide_sharing(fine, True, "on", huge_pages=True).active
    assert sizeclasses.SHARED_MAX_VALUE == 504 - 33
