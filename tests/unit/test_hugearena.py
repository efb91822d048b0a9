"""synap.hugearena (C): pymalloc arenas from one MADV_HUGEPAGE range. Each test runs a
fresh interpreter (the allocator is installed once per process and never removed) that
allocates and frees millions of objects: arenas from before the install are freed through
the previous allocator, freed arenas are reused, whole free 2 MiB blocks go back to the
kernel, and a range too small for the data falls back to plain mmap, all without a crash
and with every object's contents intact."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from synap import hugearena
from tests.support.fresh_interpreter import run_fresh

pytestmark = pytest.mark.skipif(
    not hugearena.BUILT or not sys.platform.startswith("linux"),
    reason="the C module is not built here (pure-Python build), or not Linux",
)


def _thp_mode() -> str:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "none"
    return next((w[1:-1] for w in text.split() if w.startswith("[")), "none")


THP_MODE = _thp_mode()


PRELUDE = """
import gc, json, os
from synap import hugearena

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20

def make(n, tag):
    return [b"%s:%09d" % (tag, i) for i in range(n)]

def check(objs, n, tag, step=1):
    assert len(objs) == n
    for i in range(0, n, 997):
        assert objs[i] == b"%s:%09d" % (tag, i * step), objs[i]

def in_child(body):
    # run body() in a forked child; its exit code (0: it returned, 1: it raised)
    pid = os.fork()
    if pid == 0:
        try:
            body()
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
"""


def run(code: str, timeout: float = 120) -> dict:
    """Run PRELUDE and ``code`` in a new interpreter; it prints one JSON object last."""
    return run_fresh(PRELUDE, code, timeout)


def test_churn_reuses_arenas_frees_old_ones_and_gives_memory_back() -> None:
    got = run(
        """
        gc.disable()
        before = make(400_000, b"old")  # arenas of the previous allocator (plain mmap)
        hugearena.install(1 << 30, 4 << 20)
        start, length = hugearena.address_range()
        assert start % (2 << 20) == 0 and length == 1 << 30
        peak = 0
        for cycle in range(4):
            objs = make(1_000_000, b"c%d" % cycle)
            keep = objs[::50]  # survivors pin some arenas, the rest empty out
            peak = max(peak, rss_mb())
            check(objs, 1_000_000, b"c%d" % cycle)
            if cycle == 1:
                check(before, 400_000, b"old")
                del before  # freed through the old allocator: outside the range
            del objs
            check(keep, 20_000, b"c%d" % cycle, 50)
            del keep
        after = rss_mb()
        s = hugearena.stats()
        print(json.dumps({**s, "peak_mb": peak, "after_mb": after}))
        """
    )
    assert got["installed"] is True
    assert got["arena_bytes"] == 1 << 20  # CPython 3.11's arena size
    assert got["reused"] > 50, got  # later cycles ran in the arenas earlier ones freed
    assert got["released_blocks"] > 20, got  # whole free 2 MiB blocks went back
    assert got["fallback_arenas"] == 0, got
    # more than one cycle's worth was handed out in total, never all cycles' at once
    assert got["high_water"] < 100, got
    assert got["after_mb"] < got["peak_mb"] - 30, got  # RSS fell once the objects went


def test_a_full_range_falls_back_to_plain_mmap_and_frees_both_kinds() -> None:
    got = run(
        """
        gc.disable()
        hugearena.install(8 << 20, 0)  # room for 8 arenas only
        objs = make(1_500_000, b"x")  # ~90 arenas: most from the fallback
        mid = hugearena.stats()
        check(objs, 1_500_000, b"x")
        del objs
        again = make(1_500_000, b"y")
        check(again, 1_500_000, b"y")
        del again
        end = hugearena.stats()
        print(json.dumps({"mid": mid, "end": end}))
        """
    )
    mid, end = got["mid"], got["end"]
    assert mid["high_water"] == 8 and mid["arenas"] <= 8
    assert mid["fallback_arenas"] > 50, mid
    assert end["fallback_arenas"] > mid["fallback_arenas"]
    assert end["raw_min_bytes"] == 0 and end["raw_blocks"] == 0


def test_the_range_is_madvised_and_large_raw_blocks_are_collapsed_later() -> None:
    """The arena range is MADV_HUGEPAGE; a large RAW block is not when allocated (a
    dict resize would fault fresh huge pages on the event loop), it is remembered, and
    collapse(1) advises it and puts it on huge pages."""
    got = run(
        """
        import ctypes
        hugearena.install(1 << 30, 4 << 20)
        start, length = hugearena.address_range()

        def mapping(addr):
            # (VmFlags, AnonHugePages kB) of the mapping holding addr
            flags, huge, inside = "", 0, False
            with open("/proc/self/smaps") as f:
                for line in f:
                    head = line.split()[0]
                    if "-" in head and not head.endswith(":"):
                        lo, hi = (int(x, 16) for x in head.split("-"))
                        inside = lo <= addr < hi and "rw" in line.split()[1]
                    elif inside and line.startswith("AnonHugePages:"):
                        huge = int(line.split()[1])
                    elif inside and line.startswith("VmFlags:"):
                        flags = line
            return flags, huge

        objs = make(200_000, b"z")
        big = bytearray(16 << 20)  # a RAW block of 16 MiB, written through
        big_at = ctypes.addressof((ctypes.c_char * 1).from_buffer(big))
        big_at = ((big_at + (2 << 20) - 1) & ~((2 << 20) - 1)) + (2 << 20)  # its interior
        arena_flags, _ = mapping(start)
        before = mapping(big_at)
        collapsed = hugearena.collapse(1)  # the arenas and the large blocks
        after = mapping(big_at)
        big[123] = 7
        second = None
        try:
            hugearena.install(1 << 30, 0)
        except RuntimeError as exc:
            second = str(exc)
        heap = [hugearena.heap_end(), hugearena.collapse(2)]
        untouched = bytes(16 << 20)  # calloc: pages never written, EINVAL from the kernel
        again = hugearena.collapse(1)
        print(json.dumps({**hugearena.stats(), "flags": arena_flags, "second": second,
                          "heap": heap, "before": before, "after": after, "again": again,
                          "collapsed": collapsed, "ok": big[123] == 7 and big[124] == 0}))
        """
    )
    assert " hg" in got["flags"], got["flags"]  # VM_HUGEPAGE on the arenas' writable part
    assert got["raw_blocks"] >= 1
    before_flags, before_huge = got["before"]
    assert " hg" not in before_flags, got["before"]
    if THP_MODE == "madvise":  # (with "always" the kernel faults it in huge at once)
        assert before_huge < 4096, got["before"]
    after_flags, after_huge = got["after"]
    done, failed, supported = got["collapsed"]
    assert " hg" in after_flags, got["after"]
    if supported and not failed:  # Linux >= 6.1, a huge page was free: 14 MiB interior
        assert done >= 1 and after_huge >= 12 * 1024, got
    assert got["ok"]
    # a block the kernel cannot collapse is a failure, not "this kernel has no MADV_COLLAPSE"
    assert got["again"][2] == supported, got["again"]
    assert got["second"] and "already installed" in got["second"]
    heap_end, (_, _, supported) = got["heap"]
    assert 0 < got["heap_start"] < heap_end  # /proc/self/stat start_brk .. sbrk(0)
    assert supported in (True, False)


def test_a_forked_child_allocates_and_frees_on_its_copy() -> None:
    got = run(
        """
        hugearena.install(1 << 30, 4 << 20)
        objs = make(500_000, b"p")
        def child():
            global objs
            check(objs, 500_000, b"p")
            del objs
            more = make(800_000, b"q")
            check(more, 800_000, b"q")

        code = in_child(child)
        check(objs, 500_000, b"p")
        print(json.dumps({"child": code}))
        """
    )
    assert got["child"] == 0


def test_collapse_puts_pages_split_by_copy_on_write_back_on_huge_pages() -> None:
    """The parent writes to its objects while a forked child shares them: the kernel
    splits those huge pages (4 KiB copies); collapse() merges them again."""
    got = run(
        """
        import signal, time
        hugearena.install(1 << 30, 4 << 20)
        start, length = hugearena.address_range()

        def huge_kb():
            inside, total = False, 0
            with open("/proc/self/smaps") as f:
                for line in f:
                    head = line.split()[0]
                    if "-" in head and not head.endswith(":"):
                        inside = start <= int(head.split("-")[0], 16) < start + length
                    elif inside and line.startswith("AnonHugePages:"):
                        total += int(line.split()[1])
            return total

        objs = [bytearray(b"%09d" % i) for i in range(600_000)]
        before = huge_kb()
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        for i in range(0, len(objs), 97):  # a write in every few pages
            objs[i][0] = 65
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        split = huge_kb()
        done, failed, supported = hugearena.collapse()
        print(json.dumps({"before": before, "split": split, "after": huge_kb(),
                          "done": done, "failed": failed, "supported": supported}))
        """
    )
    if not got["supported"]:
        pytest.skip("this kernel has no MADV_COLLAPSE (Linux 6.1)")
    if got["before"] == 0:
        pytest.skip("the kernel gave no huge page (THP off or memory fragmented)")
    assert got["split"] < got["before"] // 2, got  # the parent's writes split them
    assert got["done"] >= 1 and got["failed"] == 0, got
    assert got["after"] >= got["before"] - 4096, got  # back (give or take two pages)


def test_a_thread_started_first_does_not_change_the_arena_size() -> None:
    """CPython 3.11 takes a new thread's 16 KiB data stack chunk from the arena
    allocator: that request (the first after the install here) goes to the previous
    allocator, and the arenas still come from the range."""
    got = run(
        """
        import threading
        hugearena.install(1 << 30, 0)
        t = threading.Thread(target=lambda: make(50_000, b"t"))
        t.start()
        t.join()
        objs = make(400_000, b"m")
        check(objs, 400_000, b"m")
        print(json.dumps(hugearena.stats()))
        """
    )
    assert got["arena_bytes"] == 1 << 20
    assert got["other_sizes"] >= 1, got
    assert got["arenas"] >= 10 and got["fallback_arenas"] == 0, got


def test_bad_arguments_are_refused() -> None:
    got = run(
        """
        errors = []
        for args in ((1024, 0), (1 << 30, -1)):
            try:
                hugearena.install(*args)
            except ValueError as exc:
                errors.append(str(exc))
        print(json.dumps({"errors": errors, "installed": hugearena.stats()["installed"]}))
        """
    )
    assert len(got["errors"]) == 2 and got["installed"] is False


def test_the_prefault_thread_keeps_populated_memory_ahead_of_the_arenas() -> None:
    """prefault(ahead): a thread populates the range ``ahead`` bytes beyond the arenas
    handed out, so the loop's first touch of a fresh 2 MiB page finds it present. The
    pages are resident (RSS) before anything is stored in them, the objects' contents are
    intact, and a second start is refused."""
    got = run(
        """
        import time
        hugearena.install(1 << 30, 4 << 20)
        errors = []
        try:
            hugearena.prefault(1 << 20)
        except ValueError as exc:
            errors.append(str(exc))
        rss0 = rss_mb()
        hugearena.prefault(16 << 20)
        try:
            hugearena.prefault(16 << 20)
        except RuntimeError as exc:
            errors.append(str(exc))
        deadline = time.monotonic() + 10
        while hugearena.stats()["populated_bytes"] < 16 << 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        early = hugearena.stats()
        rss1 = rss_mb()
        objs = make(1_000_000, b"f")  # ~60 MB of arenas
        deadline = time.monotonic() + 10
        while True:
            st = hugearena.stats()
            if st["populated_bytes"] >= st["high_water"] * st["arena_bytes"] + (16 << 20):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        check(objs, 1_000_000, b"f")
        print(json.dumps({"early": early, "late": st, "rss": [rss0, rss1], "errors": errors}))
        """
    )
    early, late = got["early"], got["late"]
    assert early["prefault"] == "running", early
    assert early["populated_bytes"] >= 16 << 20 and early["prefault_ahead_bytes"] == 16 << 20
    rss0, rss1 = got["rss"]
    assert rss1 - rss0 >= 12, got["rss"]  # populated before any object lives there
    assert late["prefault"] == "running", late
    assert late["populated_bytes"] >= late["high_water"] * late["arena_bytes"] + (16 << 20), late
    assert late["prefaulted_blocks"] >= 16 and late["fallback_arenas"] == 0, late
    assert late["populated_bytes"] <= late["writable_bytes"], late
    assert "at least 2 MiB" in got["errors"][0] and "already started" in got["errors"][1]


def test_a_forked_child_of_a_prefaulting_process_allocates_without_the_thread() -> None:
    """fork() while the prefault thread works: the child has no such thread (its copy of
    the lock is released, its state is off) and allocates and frees on its own; the
    parent's thread carries on."""
    got = run(
        """
        import time
        hugearena.install(1 << 30, 4 << 20)
        hugearena.prefault(8 << 20)
        codes = []
        for round_ in range(5):
            objs = make(200_000, b"r%d" % round_)  # the thread is busy meanwhile
            def child():
                assert hugearena.stats()["prefault"] == "off"
                check(objs, 200_000, b"r%d" % round_)
                more = make(600_000, b"c")
                check(more, 600_000, b"c")

            codes.append(in_child(child))
        more = make(600_000, b"after")
        time.sleep(0.2)
        check(more, 600_000, b"after")
        print(json.dumps({"codes": codes, **hugearena.stats()}))
        """
    )
    assert got["codes"] == [0] * 5, got
    assert got["prefault"] == "running" and got["prefaulted_blocks"] > 4, got


def test_prefault_needs_the_allocator() -> None:
    got = run(
        """
        try:
            hugearena.prefault(8 << 20)
            error = None
        except RuntimeError as exc:
            error = str(exc)
        print(json.dumps({"error": error, **hugearena.stats()}))
        """
    )
    assert got["error"] and "install()" in got["error"] and got["prefault"] == "off"
