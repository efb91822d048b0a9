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
        seal = tightalloc.reader_started()
        del vals
        quarantined = tightalloc.stats()["quarantined"]
        during = [tightalloc.share(value(i)) for i in range(20000)]
        reused_during = len(ids & {id(v) for v in during})
        peak = tightalloc.stats()
        none_while_reading = tightalloc.release_quarantined(10**9)
        left_readers = tightalloc.reader_ended(seal)
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
    assert peak["shared_objects"] == 20000 and peak["quarantined"] == 20000
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
            seal = tightalloc.reader_started()
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
        left = tightalloc.reader_ended(seal) if {quarantine} else 0
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


@built
def test_only_blocks_that_existed_at_the_fork_wait_and_readers_nest() -> None:
    """The quarantine is bounded by the heap at the fork, not by the writes during the
    sync: a value stored after reader_started() and overwritten at once is freed at once
    (one key overwritten a million times holds no memory); with two readers, what existed
    at either fork waits until both are gone; an unmatched reader_ended() is an error."""
    got = run(
        """
        tightalloc.install(129, 504, False, 512, True)
        old = [tightalloc.share(value(i)) for i in range(5000)]
        first = tightalloc.reader_started()
        hot = None
        for i in range(200_000):           # a hot key rewritten during the sync
            hot = tightalloc.share(value(i))
        after_hot = tightalloc.stats()
        mid = [tightalloc.share(value(i)) for i in range(3000)]   # made between two forks
        second = tightalloc.reader_started()
        del old, mid
        both = tightalloc.stats()
        first_gone = tightalloc.reader_ended(first)
        still = tightalloc.release_quarantined(10**9)
        second_gone = tightalloc.reader_ended(second)
        while tightalloc.release_quarantined(1000):
            pass
        try:
            tightalloc.reader_ended(second)
            unmatched = "no error"
        except RuntimeError as exc:
            unmatched = str(exc)
        print(json.dumps({"after_hot": after_hot, "both": both, "first_gone": first_gone,
                          "still": still, "second_gone": second_gone,
                          "end": tightalloc.stats(), "unmatched": unmatched}))
        """
    )
    assert got["after_hot"]["quarantined"] == 0  # the hot key's blocks came after the fork
    assert got["after_hot"]["shared_objects"] == 5001
    assert got["both"]["quarantined"] == 8000 and got["both"]["readers"] == 2
    assert got["both"]["quarantined_bytes"] == 8000 * 136
    assert got["first_gone"] == 1 and got["still"] == 0  # the second child may still read
    assert got["second_gone"] == 0
    assert got["end"]["quarantined"] == 0 and got["end"]["shared_objects"] == 1
    assert got["unmatched"].endswith(") without reader_started()")


@built
@pytest.mark.parametrize("order", ["oldest-first", "newest-first"])
def test_overlapping_readers_each_end_gives_back_what_only_it_and_older_ones_could_read(
    order: str,
) -> None:
    """Full syncs that keep overlapping (replicas re-syncing in turn) do not hold every
    freed value until none runs: what was freed while only the first child lived comes
    back when it ends, though the second still runs; what the second may read waits
    for it. Ended newest first, nothing the older child may read comes back early."""
    got = run(
        f"""
        tightalloc.install(129, 504, False, 512, True)
        old = [tightalloc.share(value(i)) for i in range(4000)]   # live at A's fork
        a = tightalloc.reader_started()
        old_ids = {{id(v) for v in old}}
        del old                                                   # freed while only A runs
        mid = [tightalloc.share(value(i)) for i in range(3000)]   # made after A's fork
        mid_ids = {{id(v) for v in mid}}
        b = tightalloc.reader_started()
        del mid                                                   # freed while both run
        both = tightalloc.stats()["quarantined"]
        first, second = (a, b) if "{order}" == "oldest-first" else (b, a)
        left = tightalloc.reader_ended(first)
        while tightalloc.release_quarantined(1000):
            pass
        one_gone = tightalloc.stats()
        new = [tightalloc.share(value(i)) for i in range(8000)]
        new_ids = {{id(v) for v in new}}
        reused_old, reused_mid = len(new_ids & old_ids), len(new_ids & mid_ids)
        tightalloc.reader_ended(second)
        while tightalloc.release_quarantined(1000):
            pass
        print(json.dumps({{"both": both, "left": left, "one_gone": one_gone,
                          "reused_old": reused_old, "reused_mid": reused_mid,
                          "end": tightalloc.stats()}}))
        """
    )
    assert got["both"] == 7000 and got["left"] == 1
    if order == "oldest-first":
        assert got["one_gone"]["quarantined"] == 3000  # the second child may read those
        assert got["reused_old"] > 0  # A's values came back for new writes ...
    else:
        assert got["one_gone"]["quarantined"] == 7000  # A may read old, and it still runs
        assert got["reused_old"] == 0
    assert got["reused_mid"] == 0  # ... never B's while it runs
    assert got["end"]["quarantined"] == 0 and got["end"]["readers"] == 0
    assert got["end"]["shared_objects"] == 8000


@built
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_live_reader_ever_sees_a_value_of_its_fork_change(seed: int) -> None:
    """A random mix of writes, deletes, children starting and ending in any order and
    partial releases: every child still running reads, at the addresses of its fork,
    exactly the bytes of the values that were live then (as the snapshot encoder reads
    them, without a reference); and once none runs, nothing is left in quarantine."""
    got = run(
        f"""
        import random
        rng = random.Random({seed})
        tightalloc.install(129, 504, False, 512, True)
        live = {{}}
        readers = {{}}   # seal -> [(address of the bytes, expected bytes)]
        bad = checks = starts = 0
        for step in range(30000):
            op = rng.random()
            if op < 0.55:
                k = rng.randrange(2500)
                v = value(rng.randrange(10**9), rng.choice((40, 100, 200, 400)))
                live[k] = tightalloc.share(v)
            elif op < 0.75:
                live.pop(rng.randrange(2500), None)
            elif op < 0.7505 and len(readers) < 6:
                starts += 1
                seal = tightalloc.reader_started()
                readers[seal] = [(id(v) + DATA, bytes(memoryview(v))) for v in live.values()]
            elif op < 0.751 and readers:
                seal = rng.choice(list(readers))
                tightalloc.reader_ended(seal)
                del readers[seal]
            elif op < 0.76:
                tightalloc.release_quarantined(rng.choice((1, 50, 10**9)))
            if step % 500 == 0:
                for seen in readers.values():
                    checks += len(seen)
                    bad += sum(ctypes.string_at(a, len(b)) != b for a, b in seen)
        for seal in list(readers):
            tightalloc.reader_ended(seal)
        while tightalloc.release_quarantined(1000):
            pass
        end = tightalloc.stats()
        print(json.dumps({{"bad": bad, "checks": checks, "starts": starts, "end": end,
                          "live": len(live)}}))
        """
    )
    assert got["bad"] == 0
    assert got["starts"] >= 5 and got["checks"] > 10000
    assert got["end"]["quarantined"] == 0 and got["end"]["readers"] == 0
    assert got["end"]["shared_objects"] == got["live"]


@built
def test_at_most_64_children_read_at_once_and_a_refused_one_leaves_no_trace() -> None:
    """Beyond 64 children reading at once, reader_started() refuses (the full sync then
    fails and the replica retries) rather than lose track of one; the others still end."""
    got = run(
        """
        tightalloc.install(129, 504, False, 512, True)
        seals = [tightalloc.reader_started() for _ in range(64)]
        try:
            tightalloc.reader_started()
            refused = "no"
        except RuntimeError as exc:
            refused = str(exc)
        readers = tightalloc.stats()["readers"]
        left = [tightalloc.reader_ended(s) for s in seals]
        print(json.dumps({"refused": refused, "readers": readers, "left": left[-1],
                          "distinct": len(set(seals))}))
        """
    )
    assert got["refused"] == "too many children reading shared values at once"
    assert got["readers"] == 64 and got["left"] == 0 and got["distinct"] == 64


@built
def test_shared_chunks_are_carved_from_one_mapping_and_their_pages_go_back() -> None:
    """40 MiB of values take 40 chunks but one memory mapping (a master with many GiB of
    values stays far below vm.max_map_count, and fork() walks one mapping, not one per
    MiB); freed, the chunks' pages go back to the kernel; shared again, they are reused."""
    got = run(
        """
        def maps():
            return sum(1 for line in open("/proc/self/maps") if "/dev/zero" in line)

        def shmem_kb():
            line = [x for x in open("/proc/self/status") if x.startswith("RssShmem")][0]
            return int(line.split()[1])

        tightalloc.install(129, 504, False, 512, True)
        before = maps()
        vals = [tightalloc.share(value(i)) for i in range(300_000)]
        full = tightalloc.stats(), maps(), shmem_kb()
        del vals
        freed = tightalloc.stats(), shmem_kb()
        vals = [tightalloc.share(value(i)) for i in range(300_000)]
        again = tightalloc.stats(), maps()
        print(json.dumps({"before": before, "full": full, "freed": freed, "again": again}))
        """
    )
    (stats, maps, shmem), (freed, freed_shmem), (again, again_maps) = (
        got["full"],
        got["freed"],
        got["again"],
    )
    assert got["before"] == 0 and maps == 1 and stats["shared_ranges"] == 1
    assert stats["shared_chunks"] >= 39 and shmem >= 39 * 1024
    assert freed["shared_chunks"] <= 1 and freed_shmem <= 2 * 1024
    assert again["shared_chunks"] == stats["shared_chunks"] and again_maps == 1


@built
def test_a_free_that_finds_no_memory_for_its_batch_still_waits_for_the_child() -> None:
    """Quarantining a block needs a batch record; with no memory for one (every
    allocation failing), the block still waits (a spare batch takes it) instead of being
    freed and reused under a child that may read it."""
    got = run(
        """
        try:
            import _testcapi
        except ImportError:
            print(json.dumps({"skip": True}))
            raise SystemExit
        vals = None
        tightalloc.install(129, 504, False, 512, True)
        vals = [tightalloc.share(value(i)) for i in range(1000)]   # full pools
        victim = vals.pop(0)
        addr = id(victim)
        seal = tightalloc.reader_started()
        _testcapi.set_nomemory(0, 0)    # every allocation fails from here ...
        victim = None                   # ... the free among them
        _testcapi.remove_mem_hooks()
        after = tightalloc.stats()
        new = [tightalloc.share(value(10**6 + i)) for i in range(50)]
        reused = any(id(x) == addr for x in new)
        tightalloc.reader_ended(seal)
        while tightalloc.release_quarantined(1000):
            pass
        print(json.dumps({"skip": False, "quarantined": after["quarantined"],
                          "reused": reused, "end": tightalloc.stats()["quarantined"]}))
        """
    )
    if got["skip"]:
        pytest.skip("_testcapi is not built here")
    assert got["quarantined"] == 1 and not got["reused"] and got["end"] == 0


@built
def test_values_stored_after_an_overlapping_childs_release_are_freed_at_once() -> None:
    """Child A ends while B runs: the blocks only A could read come back, but into the
    pools of the forks, which wait for B; values stored meanwhile take fresh pools, so
    rewriting them holds nothing in quarantine (B never saw them)."""
    got = run(
        """
        tightalloc.install(129, 504, False, 512, True)
        live = {k: tightalloc.share(value(k)) for k in range(12000)}   # full pools
        a = tightalloc.reader_started()
        for k in range(0, 12000, 2):
            live[k] = None                                             # only A may read
        b = tightalloc.reader_started()
        tightalloc.reader_ended(a)
        while tightalloc.release_quarantined(10**9):
            pass
        released = tightalloc.stats()["quarantined"]
        for r in range(5):                                             # churn during B
            for k in range(0, 12000, 2):
                live[k] = tightalloc.share(value(10**6 * (r + 1) + k))
        churned = tightalloc.stats()["quarantined"]
        tightalloc.reader_ended(b)
        print(json.dumps({"released": released, "churned": churned}))
        """
    )
    assert got["released"] == 0 and got["churned"] == 0


@built
def test_a_refused_or_failed_fork_leaves_no_descriptor_open() -> None:
    """The 65th child at once (refused) and a fork() that fails both undo what the start
    opened: no descriptor is left behind, and no reader is counted."""
    got = run(
        """
        from synap import sizeclasses
        from synap.replication import fork_snapshot
        tightalloc.install(129, 504, False, 512, True)
        sizeclasses._sharing = sizeclasses.Status(True, "test")   # as on a master

        def fds():
            return len(os.listdir("/proc/self/fd"))

        held = [tightalloc.reader_started() for _ in range(64)]
        before = fds()
        refused = 0
        for _ in range(5):
            try:
                fork_snapshot.SnapshotChild.start(-1, b"", None, None, 1.0)
            except RuntimeError:
                refused += 1
        after_refused = fds()
        for seal in held:
            tightalloc.reader_ended(seal)

        def no_fork():
            raise BlockingIOError(11, "Resource temporarily unavailable")

        os.fork = no_fork
        failed = 0
        for _ in range(5):
            try:
                fork_snapshot.SnapshotChild.start(-1, b"", None, None, 1.0)
            except OSError:
                failed += 1
        print(json.dumps({"refused": refused, "failed": failed, "before": before,
                          "after_refused": after_refused, "after_failed": fds(),
                          "readers": tightalloc.stats()["readers"]}))
        """
    )
    assert got["refused"] == 5 and got["failed"] == 5
    assert got["after_refused"] == got["before"] == got["after_failed"]
    assert got["readers"] == 0


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


E2E = """
import asyncio, socket, sys, threading
from synap import sizeclasses
from synap.replication import fork_snapshot
from synap.replication.fork_snapshot import SnapshotChild, SnapshotFailed
from synap.replication.master_session import MasterSession
from synap.replication.replica_session import (FullSyncCompleted, ReplicaSession,
                                               SnapshotChunkReceived)
from synap.store.keyspace import Keyspace

sizeclasses.start("fine", False, True)      # as synap-server does
assert sizeclasses.sharing().active
T0 = 1_000_000
KEYS = 20_000
ks = Keyspace(share_values=True)
for i in range(KEYS):
    ks.put(b"key:%06d" % i, (b"value-%d-" % i).ljust(20 + i % 460, b"x"),
           T0 + 10_000 if i % 7 == 0 else 0)
ks.put(b"json", b"[1,2]", 0, is_json=True)
shared = sum(tightalloc.is_shared(v) for v in ks.data.values())
expected = {k: (bytes(bytearray(v)), ks.expiry_of(k), ks.is_json(k)) for k, v in ks.data.items()}
if TOUCH:   # the control: a child that takes references to the values
    real_child = fork_snapshot._child
    def touching(*args):
        list(args[5].data.values())
        real_child(*args)
    fork_snapshot._child = touching
master = MasterSession(None, T0)
replica = ReplicaSession("replica-1", "127.0.0.1:1", None, 0, None)
master.receive_data(replica.initiate(T0), T0)
ours, theirs = socket.socketpair()
ours.setblocking(False)
received = bytearray()
def drain():
    while chunk := theirs.recv(1 << 20):
        received.extend(chunk)
reader = threading.Thread(target=drain, daemon=True)

async def sync():
    head = master.send_fullsync("1" * 40, 7, len(ks), T0)
    child = SnapshotChild.start(ours.fileno(), head, master, ks, 30.0)
    for r in range(2):                       # rewrite everything while the child runs ...
        for i in range(KEYS):
            ks.put(b"key:%06d" % i, b"NEW%d-" % r + b"y" * (20 + (i * 7) % 460))
    for i in range(0, KEYS, 2):              # ... and delete half
        ks.remove(b"key:%06d" % i)
    during = tightalloc.stats()
    reader.start()                           # only now does the replica read
    try:
        result = await child.result(lambda keys, sent: None)
    except SnapshotFailed as exc:
        result = str(exc)
    finally:
        child.stop()
    for _ in range(100):                     # the quarantine goes back a slice per step
        if not tightalloc.stats()["quarantined"]:
            break
        await asyncio.sleep(0.01)
    return result, during

result, during = asyncio.run(sync())
ours.close()
reader.join(10)
out = {"shared": shared, "during": during, "after": tightalloc.stats()}
if isinstance(result, str):
    out["failed"] = result
else:
    keys, seq, crc, sent = result
    master.snapshot_sent_elsewhere(keys, seq, crc)
    events = replica.receive_data(bytes(received) + master.snapshot_end(T0), T0)
    got = {}
    for event in events:
        if isinstance(event, SnapshotChunkReceived):
            for entry in event.entries:
                got[entry[0]] = (entry[1], entry[2], len(entry) > 3 and entry[3] == 1)
    out["bad"] = sum(got.get(k) != v for k, v in expected.items())
    out["keys"] = keys
    out["complete"] = isinstance(events[-1], FullSyncCompleted)
print(json.dumps(out))
"""


@built
def test_a_forked_full_sync_sends_the_values_of_the_fork_while_the_master_rewrites() -> None:
    """A real SnapshotChild over a keyspace that shares its values, as on a master: the
    master overwrites every key twice and deletes half of them while the child waits for
    a replica that reads nothing yet; the replica still gets every value of the fork, the
    reader count goes back to 0 and the quarantine (the blocks that existed at the fork
    and were freed) drains once the child is reaped."""
    got = run("TOUCH = False\n" + E2E, timeout=180)
    assert got["shared"] >= 20_000 * 0.9  # values of 2-471 bytes (20-479 here)
    assert got["complete"] and got["keys"] == 20_001 and got["bad"] == 0
    assert got["during"]["readers"] == 1 and got["during"]["quarantined"] >= 15_000
    assert got["after"]["readers"] == 0 and got["after"]["quarantined"] == 0


@built
def test_a_child_that_touches_shared_values_dies_and_the_master_is_unharmed() -> None:
    """The backstop: a forked child finds the master's shared values read-only, so a child
    that took references to them (a reference count is a write) dies of SIGSEGV, the sync
    fails and the master's reference counts are untouched (with the memory writable the
    child's increments would land in the master)."""
    got = run("TOUCH = True\n" + E2E, timeout=180)
    assert "status -11" in got["failed"], got
    assert got["after"]["readers"] == 0 and got["after"]["quarantined"] == 0
