"""Replication: full sync, write-to-visible latency, catch-up rate, log append rate and
master latency during a full sync, ours against Redis (REPLICAOF) in the same run.

Parts (``--parts``, default all):

sync
    (i) Full sync of 1M keys x 100 B (loaded with pipelined MSET batches): an empty
    replica that is already running is sent ``REPLICAOF``; we time from the command to
    ``master_link_status:up`` with the replica's offset equal to the master's (both
    polled with ``INFO replication`` every 5 ms). Redis runs diskless with
    ``repl-diskless-sync-delay 0``, and also in its fastest mode (the replica loads with
    ``repl-diskless-load swapdb``). Target: <= 0.5x Redis's diskless time.
    (v) Meanwhile a probe process on the master's client port sends PING / GET in a
    loop; we report its worst round trip over the sync and the 0.5 s after it, and the
    master's fork time (ours from its log, Redis's ``latest_fork_usec``). Target: <= 10
    ms. Ours and Redis alternate within each repetition; nothing is pinned (master,
    forked child, replica and probe share the cores as they would on one machine).
lag
    (ii) A replica in sync; ``redis-benchmark -t set -c 50 -d 100 -r 1000000`` writes to
    the master, unpipelined and with ``-P 16``; every ~20 ms a probe writes
    ``SET __probe i`` on the master and polls ``GET __probe`` on the replica until ``i``
    appears. Write-to-visible latency p50 / p99 / max. Target for the ``-P 16`` flood:
    p99 <= 100 ms.
catchup
    (iii) A replica in sync is stopped (SIGSTOP); N SETs (``-P 16``) go to the master;
    the replica is resumed (SIGCONT) and timed until its offset equals the master's.
    Records per second = N / that time. Target >= 1M records/s. Also the replica's CPU
    time per record meanwhile (what a loaded machine distorts least).
append
    (iv) In-process micro-benchmark of ``ReplicationBacklog.append`` (target >= 10M/s),
    ``extend`` and ``History.commit`` (encode + backlog listener, also batched per read
    as on a master), per CPU second, best of 5.
stall
    (vi) In process: the longest step a master's full sync of ``--keys`` keys takes
    between two client reads: the ``fork()`` of the default path, and for the in-process
    path (TLS, small data sets) the key list, the longest slice of snapshot chunks and
    of the key list's release; beside them the one-step dictionary copy it replaced.
    Target <= 10 ms.

    .venv/bin/python bench/replication_bench.py [--parts sync,lag,catchup,append,stall]
        [--reps 3] [--keys 1000000] [--catchup-records 500000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    HOST,
    PYTHON,
    RespClient,
    Server,
    can_pin,
    fmt_num,
    free_port,
    load_keys,
    log,
    median,
    need_tools,
    percentile,
    print_table,
    redis_server,
    synap_server,
    verdict,
    workdir,
)
from _summary import cell, summary  # noqa: E402

SYNC_TIMEOUT_S = 120.0
POLL_S = 0.005


# ------------------------------------------------------------------------- servers


class Pair:
    """A master and an (empty, running) replica of one kind; ``attach()`` starts the sync."""

    def __init__(
        self,
        kind: str,
        tmp: Path,
        replica_extra: tuple[str, ...] = (),
        master_extra: tuple[str, ...] = (),
        cpus: tuple[str, str] | None = None,
    ) -> None:
        """``cpus``: the CPUs of the master and of the replica (``taskset``), else unpinned."""
        self.kind = kind
        self.tmp = tmp
        self.replica_extra = replica_extra
        self.replica: Server | None = None
        self.master_cpu: str | None = cpus[0] if cpus is not None else None
        self.replica_cpu: str | None = cpus[1] if cpus is not None else None
        if kind == "synap":
            self.repl_port = free_port()
            # INFO level: the master logs each full sync's fork time (read by part_sync).
            self.master, _ = synap_server(
                tmp,
                name="synap-master",
                cpu=self.master_cpu,
                role="master",
                replica_port=self.repl_port,
                extra=("--log-level", "info", *master_extra),
            )
        else:
            self.master = redis_server(tmp, name="redis-master", cpu=self.master_cpu)
            self.repl_port = self.master.resp_port
            mc = self.master.client()
            mc.call("CONFIG", "SET", "repl-diskless-sync", "yes")
            mc.call("CONFIG", "SET", "repl-diskless-sync-delay", "0")
            # Keep a stopped replica connected (catch-up part), as our 256 MB limit does.
            mc.call("CONFIG", "SET", "client-output-buffer-limit", "replica 0 0 0")
            mc.close()

    def new_replica(self) -> Server:
        self.drop_replica()
        name = f"{self.kind}-replica-{time.monotonic_ns()}"
        if self.kind == "synap":
            self.replica, _ = synap_server(self.tmp, name=name, cpu=self.replica_cpu)
        else:
            self.replica = redis_server(
                self.tmp, name=name, cpu=self.replica_cpu, extra=self.replica_extra
            )
        return self.replica

    def attach(self) -> None:
        assert self.replica is not None
        rc = self.replica.client()
        rc.call("REPLICAOF", HOST, str(self.repl_port))
        rc.close()

    def drop_replica(self) -> None:
        if self.replica is not None:
            self.replica.stop()
            self.replica = None

    def stop(self) -> None:
        self.drop_replica()
        self.master.stop()


def offsets(master: RespClient, replica: RespClient) -> tuple[int, int, bool]:
    m = master.info("replication")
    r = replica.info("replication")
    return (
        int(m.get("master_repl_offset", -1)),
        int(r.get("slave_repl_offset", -2)),
        r.get("master_link_status") == "up",
    )


def wait_in_sync(pair: Pair, started: float, timeout: float = SYNC_TIMEOUT_S) -> float:
    """Poll until the replica's link is up and its offset equals the master's."""
    assert pair.replica is not None
    mc, rc = pair.master.client(), pair.replica.client(timeout=30)
    try:
        while time.perf_counter() - started < timeout:
            moff, roff, up = offsets(mc, rc)
            if up and moff == roff:
                return time.perf_counter() - started
            time.sleep(POLL_S)
    finally:
        mc.close()
        rc.close()
    raise RuntimeError(f"{pair.kind} replica not in sync after {timeout}s")


# --------------------------------------------------------------------- latency probe


def probe_main(port: int, stop_file: str, max_seconds: float, writes: int = 0) -> None:
    """Child process: PING / GET round trips on ``port`` until ``stop_file`` exists; with
    ``writes`` > 0, PING / SET of a random one of the first ``writes`` loaded keys (the
    master's copy-on-write faults while a forked child holds its pages)."""
    import random

    c = RespClient(port, timeout=30)
    lat: list[float] = []
    deadline = time.monotonic() + max_seconds
    i = 0
    value = b"w" * 100
    while time.monotonic() < deadline:
        t = time.perf_counter()
        if i % 2 == 0:
            c.call("PING")
        elif writes:
            c.call("SET", b"key:%08d" % random.randrange(writes), value)
        else:
            c.call("GET", "key:00000042")
        lat.append((time.perf_counter() - t) * 1000)
        i += 1
        if i % 50 == 0 and os.path.exists(stop_file):
            break
    print(json.dumps({"n": len(lat), "max": max(lat), "p99": percentile(lat, 99),
                      "p50": percentile(lat, 50)}))  # fmt: skip


class Probe:
    def __init__(self, port: int, tmp: Path, writes: int = 0) -> None:
        self.stop_file = tmp / f"probe-stop-{time.monotonic_ns()}"
        self.proc = subprocess.Popen(
            [PYTHON, __file__, "--probe", str(port), str(self.stop_file), str(writes)],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.3)  # let it connect and start measuring

    def finish(self) -> dict[str, float]:
        self.stop_file.touch()
        out, _ = self.proc.communicate(timeout=30)
        result: dict[str, float] = json.loads(out)
        return result


# ------------------------------------------------------------------------------ (i)+(v)


def last_fork_ms(pair: Pair) -> float:
    """How long the master's last fork took: Redis's ``latest_fork_usec``, ours from the
    master's log line for a forked full sync (NaN when it copied in process)."""
    if pair.kind == "redis":
        mc = pair.master.client()
        try:
            return int(mc.info("stats").get("latest_fork_usec", 0)) / 1000
        finally:
            mc.close()
    found = float("nan")
    for line in pair.master.log_path.read_text(errors="replace").splitlines():
        if "by process" in line and "(fork " in line:
            found = float(line.rsplit("(fork ", 1)[1].split()[0])  # wall ms
    return found


def part_sync(tmp: Path, reps: int, nkeys: int, probe_writes: bool = False) -> list[str]:
    # The second Synap master runs with huge pages (kv_store.huge_pages: auto, opt-in):
    # the fork() it saves against the default's 4 KiB pages (docs/OPERATIONS.md, "Full
    # syncs").
    auto = tmp / "huge-pages-auto.yml"
    auto.write_text("kv_store:\n  huge_pages: auto\n")
    kinds: list[tuple[str, str, tuple[str, ...]]] = [
        ("synap", "Synap", ()),
        ("synap", "Synap, huge_pages auto", ("--config", str(auto))),
        ("redis", "Redis diskless, delay 0", ()),
        ("redis", "Redis diskless, delay 0, replica swapdb", ("--repl-diskless-load", "swapdb")),
    ]
    results: dict[str, dict[str, list[float]]] = {}
    load_times: dict[str, float] = {}
    pairs: dict[str, Pair] = {}
    try:
        for kind, label, extra in kinds:
            # Ours logs each full sync's fork time (INFO level); the probe reads the RESP port.
            if kind == "synap":
                pairs[label] = pair = Pair(kind, tmp, master_extra=extra)
            else:
                pairs[label] = pair = Pair(kind, tmp, extra)
            log(f"sync: loading {nkeys} keys into the {label} master")
            load_times[label] = load_keys(pair.master.resp_port, nkeys)
            results[label] = {"sync": [], "probe_max": [], "probe_p99": [], "fork_ms": []}
        for rep in range(reps):
            # Ours and Redis alternate, the order rotating each repetition.
            order = kinds[rep % len(kinds) :] + kinds[: rep % len(kinds)]
            for _kind, label, _extra in order:
                pair, res = pairs[label], results[label]
                pair.new_replica()
                probe = Probe(pair.master.resp_port, tmp, nkeys if probe_writes else 0)
                started = time.perf_counter()
                pair.attach()
                elapsed = wait_in_sync(pair, started)
                time.sleep(0.5)  # the master's clean-up after the sync counts too
                p = probe.finish()
                rc = pair.replica.client() if pair.replica else None
                keys = rc.call("DBSIZE") if rc else -1
                if rc:
                    rc.close()
                if keys != nkeys:
                    raise RuntimeError(f"{label}: replica holds {keys} keys, expected {nkeys}")
                fork_ms = last_fork_ms(pair)
                pair.drop_replica()
                log(f"sync: {label} rep {rep + 1}: {elapsed:.2f}s, probe max {p['max']:.1f} ms, "
                    f"p99 {p['p99']:.2f} ms, n {p['n']:.0f}, fork {fork_ms:.1f} ms, "
                    f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
                res["sync"].append(elapsed)
                res["probe_max"].append(p["max"])
                res["probe_p99"].append(p["p99"])
                res["fork_ms"].append(fork_ms)
    finally:
        for pair in pairs.values():
            pair.stop()
    ours = median(results["Synap"]["sync"])
    base = median(results["Redis diskless, delay 0"]["sync"])
    rows = []
    for label, res in results.items():
        t = median(res["sync"])
        rows.append(
            [
                label,
                f"{t:.2f} s ({', '.join(f'{x:.2f}' for x in res['sync'])})",
                f"{t / base:.2f}" if label != "Redis diskless, delay 0" else "1.00",
                "≤ 0.50" if label == "Synap" else "",
                verdict(ours / base <= 0.5, f"{ours / base:.2f}x") if label == "Synap" else "",
                f"{load_times[label]:.1f} s",
            ]
        )
    tables = [
        print_table(
            f"(i) Full sync of {nkeys:,} keys x 100 B, REPLICAOF -> offsets equal, median of {reps}",
            ["server", "time (runs)", "vs Redis diskless", "target", "verdict", "MSET load"],
            rows,
        )
    ]
    rows = []
    for label, res in results.items():
        worst = max(res["probe_max"])
        rows.append(
            [
                label,
                f"{median(res['probe_max']):.1f} ms ({', '.join(f'{x:.1f}' for x in res['probe_max'])})",
                f"{worst:.1f} ms",
                f"{median(res['probe_p99']):.2f} ms",
                f"{median(res['fork_ms']):.1f} ms ({', '.join(f'{x:.1f}' for x in res['fork_ms'])})",
                "≤ 10 ms" if label == "Synap" else "",
                verdict(median(res["probe_max"]) <= 10, f"median {median(res['probe_max']):.1f} ms")
                if label == "Synap"
                else "",
            ]
        )
    ms = lambda v: fmt_num(v, "ms")  # noqa: E731
    redis_max = results["Redis diskless, delay 0"]["probe_max"]
    for key, label in (("fullsync_rtt", "Synap"), ("fullsync_rtt_huge", "Synap, huge_pages auto")):
        ours_max = results[label]["probe_max"]
        summary(
            key,
            cell(ms(median(ours_max)), ours_max, ms),
            cell(ms(median(redis_max)), redis_max, ms),
            f"{median(ours_max) / median(redis_max):.2f}",
            median(ours_max) <= 10,
        )
    tables.append(
        print_table(
            "(v) Master client latency during that full sync (probe: PING / GET loop; worst "
            "round trip over the sync and the 0.5 s after it)",
            [
                "server",
                "worst round trip, median of runs (runs)",
                "worst of all runs",
                "p99",
                "master fork (runs)",
                "target",
                "verdict",
            ],
            rows,
        )
    )
    return tables


# ------------------------------------------------------------------------------- (ii)


def writer(port: int, n: int, pipeline: int) -> subprocess.Popen[str]:
    argv = ["timeout", "40", "redis-benchmark", "-h", HOST, "-p", str(port), "--csv"]
    argv += ["-t", "set", "-n", str(n), "-c", "50", "-d", "100", "-r", "1000000"]
    argv += ["-P", str(pipeline)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def writer_rps(proc: subprocess.Popen[str]) -> float:
    out, _ = proc.communicate(timeout=60)
    for line in out.splitlines():
        if line.startswith('"SET"'):
            return float(line.split('","')[1])
    return float("nan")


def commands_processed(client: RespClient) -> int:
    return int(client.info("stats").get("total_commands_processed", 0))


IDLE_PROBES = 300


def visible_latencies(pair: Pair, proc: subprocess.Popen[str] | None) -> list[float]:
    """Probe write-to-visible latency while ``proc`` (the writer) runs, or
    IDLE_PROBES times on an idle pair when there is no writer."""
    assert pair.replica is not None
    mc, rc = pair.master.client(), pair.replica.client()
    lat: list[float] = []
    i = 0
    try:
        time.sleep(0.5)  # let the writer reach full speed
        while proc.poll() is None if proc is not None else i < IDLE_PROBES:
            i += 1
            want = b"%d" % i
            t = time.perf_counter()
            mc.call("SET", "__probe", want)
            while rc.call("GET", "__probe") != want:
                if time.perf_counter() - t > 10:
                    raise RuntimeError(f"{pair.kind}: probe {i} not visible after 10 s")
            lat.append((time.perf_counter() - t) * 1000)
            time.sleep(0.02)
    finally:
        mc.close()
        rc.close()
    return lat


def part_lag(tmp: Path, reps: int, pin: bool = False) -> list[str]:
    """``pin`` (``--lag-pin on``): the master on CPU 0 and the replica on CPU 1, as on two
    machines, for Redis alike; the writer and the probe stay unpinned. Off by default:
    the master then shares CPU 0 with part of the writer, which costs both servers under
    load (docs/BENCHMARKS.md §4 (ii))."""
    loads = [(0, 0), (1, 300_000), (16, 2_000_000)]  # pipeline 0: no writer (idle)
    results: dict[tuple[str, int], dict[str, list[float]]] = {}
    cpus = ("0", "1") if pin and can_pin() else None
    for kind in ("synap", "redis"):
        pair = Pair(kind, tmp, cpus=cpus)
        try:
            for rep in range(reps):
                pair.new_replica()
                started = time.perf_counter()
                pair.attach()
                wait_in_sync(pair, started)
                for pipeline, n in loads:
                    mc = pair.master.client()
                    done0, t0 = commands_processed(mc), time.perf_counter()
                    proc = writer(pair.master.resp_port, n, pipeline) if n else None
                    lat = visible_latencies(pair, proc)
                    if proc is not None:
                        writer_rps(proc)
                    rps = (commands_processed(mc) - done0) / (time.perf_counter() - t0)
                    mc.close()
                    r = results.setdefault(
                        (kind, pipeline), {"p50": [], "p99": [], "max": [], "rps": []}
                    )
                    r["p50"].append(percentile(lat, 50))
                    r["p99"].append(percentile(lat, 99))
                    r["max"].append(max(lat))
                    r["rps"].append(rps)
                    log(f"lag: {kind} -P {pipeline} rep {rep + 1}: {len(lat)} probes, "
                        f"p50 {percentile(lat, 50):.2f} p99 {percentile(lat, 99):.2f} ms, "
                        f"writer {rps:,.0f}/s")  # fmt: skip
        finally:
            pair.stop()
    rows = []
    for pipeline, _ in loads:
        for kind, label in (("synap", "Synap"), ("redis", "Redis")):
            r = results[(kind, pipeline)]
            p99 = median(r["p99"])
            target = "p99 ≤ 100 ms" if pipeline == 16 and kind == "synap" else ""
            if pipeline == 0 and kind == "synap":
                target = "p50 < 1 ms"
            rows.append(
                [
                    f"-c 50{' -P 16' if pipeline > 1 else ''}" if pipeline else "none (idle)",
                    label,
                    fmt_num(median(r["rps"]), "ops/s"),
                    fmt_num(median(r["p50"]), "ms"),
                    f"{fmt_num(p99, 'ms')} ({', '.join(fmt_num(x, 'ms') for x in r['p99'])})",
                    fmt_num(median(r["max"]), "ms"),
                    target,
                    (
                        verdict(median(r["p50"]) < 1, f"p50 {median(r['p50']):.2f} ms")
                        if pipeline == 0
                        else verdict(p99 <= 100, f"p99 {p99:.1f} ms")
                    )
                    if target
                    else "",
                ]
            )
    ms = lambda v: fmt_num(v, "ms")  # noqa: E731
    if ("synap", 0) in results and ("redis", 0) in results:  # issue 16: the idle probe
        ours, theirs = results[("synap", 0)]["p50"], results[("redis", 0)]["p50"]
        summary(
            "visible_idle_p50",
            cell(ms(median(ours)), ours, ms),
            cell(ms(median(theirs)), theirs, ms),
            f"{median(ours) / median(theirs):.2f}",
            median(ours) < 1,
        )
    if ("synap", 1) in results and ("redis", 1) in results:  # issue 16: unpipelined writer
        for q in ("p50", "p99"):
            ours, theirs = results[("synap", 1)][q], results[("redis", 1)][q]
            ratio = median(ours) / median(theirs)
            summary(
                f"visible_{q}",
                cell(ms(median(ours)), ours, ms),
                cell(ms(median(theirs)), theirs, ms),
                f"{ratio:.2f}",
                ratio <= 1.0,
            )
    return [
        print_table(
            f"(ii) Write-to-visible latency on the replica under a SET load, median of {reps}"
            + (", master on CPU 0 and replica on CPU 1" if cpus else ", unpinned"),
            ["writer", "server", "writer SET/s", "p50", "p99 (runs)", "max", "target", "verdict"],
            rows,
        )
    ]


# ------------------------------------------------------------------------------ (iii)


def part_catchup(tmp: Path, reps: int, records: int) -> list[str]:
    rates: dict[str, list[float]] = {"synap": [], "redis": []}
    # Replica CPU seconds per record during the catch-up: what contention on a loaded
    # machine distorts least (wall-clock rates there measure the scheduler too).
    cpu: dict[str, list[float]] = {"synap": [], "redis": []}
    for kind in ("synap", "redis"):
        pair = Pair(kind, tmp)
        try:
            for rep in range(reps):
                replica = pair.new_replica()
                started = time.perf_counter()
                pair.attach()
                wait_in_sync(pair, started)
                replica.pause()
                try:
                    proc = writer(pair.master.resp_port, records, 16)
                    writer_rps(proc)
                finally:
                    cpu0 = replica.cpu_seconds()
                    replica.resume()
                started = time.perf_counter()
                elapsed = wait_in_sync(pair, started)
                cpu[kind].append((replica.cpu_seconds() - cpu0) / records)
                rates[kind].append(records / elapsed)
                log(f"catchup: {kind} rep {rep + 1}: {records} records in {elapsed:.3f}s, "
                    f"replica CPU {cpu[kind][-1] * 1e6:.2f} us/record")  # fmt: skip
        finally:
            pair.stop()
    ours, theirs = median(rates["synap"]), median(rates["redis"])
    our_cpu, their_cpu = median(cpu["synap"]), median(cpu["redis"])

    def cpu_text(kind: str) -> str:
        runs = ", ".join(f"{x * 1e6:.2f}" for x in cpu[kind])
        return f"{median(cpu[kind]) * 1e6:.2f} µs ({runs})"

    rows = [
        [
            "Synap",
            f"{fmt_num(ours, 'rec/s')} ({', '.join(fmt_num(x, 'rec/s') for x in rates['synap'])})",
            f"{ours / theirs:.2f}",
            cpu_text("synap"),
            f"{their_cpu / our_cpu:.2f}" if our_cpu else "",
            "≥ 1M rec/s",
            verdict(ours >= 1e6, f"{ours / 1e6:.2f}M/s"),
        ],
        [
            "Redis",
            f"{fmt_num(theirs, 'rec/s')} ({', '.join(fmt_num(x, 'rec/s') for x in rates['redis'])})",
            "1.00",
            cpu_text("redis"),
            "1.00",
            "",
            "",
        ],
    ]
    rec = lambda v: fmt_num(v, "rec/s")  # noqa: E731
    summary(
        "catchup",
        cell(rec(ours) + " rec/s", rates["synap"], rec),
        cell(rec(theirs) + " rec/s", rates["redis"], rec),
        f"{ours / theirs:.2f}",
        ours / theirs >= 1.2,
    )
    return [
        print_table(
            f"(iii) Replica catch-up from the log: {records:,} SETs written while the replica "
            f"was stopped, median of {reps}",
            [
                "server",
                "records/s (runs)",
                "vs Redis",
                "replica CPU per record (runs)",
                "vs Redis (CPU)",
                "target",
                "verdict",
            ],
            rows,
        )
    ]


# ------------------------------------------------------------------------------- (iv)


def best_rate(fn: Callable[[], int], reps: int = 5) -> float:
    """Operations per CPU second of this process, best of ``reps`` (CPU time, not wall
    time: on a loaded machine a wall clock measures the other processes too)."""
    best = 0.0
    for _ in range(reps):
        t = time.process_time()
        n = fn()
        best = max(best, n / max(time.process_time() - t, 1e-9))
    return best


def part_append() -> list[str]:
    from synap import sizeclasses
    from synap.replication.backlog import ReplicationBacklog
    from synap.store.history import History

    # As in a server, with the allocator installed: each roll passes the sealed segment
    # through synap.tightalloc.detach_many. These 125-byte records are under its 512-byte
    # threshold, so none is copied; the figure is the small-record path.
    sizeclasses.start("fine", False)

    n = 2_000_000
    records = [b"\x91\x94\x00\xc4\x0ckey:%08d\xc4\x64%s\x00" % (i, b"v" * 100) for i in range(1000)]
    records = records * (n // len(records))

    def bare() -> int:
        backlog = ReplicationBacklog()
        append = backlog.append
        for r in records:
            append(r)
        return n

    def extend() -> int:
        backlog = ReplicationBacklog()
        for i in range(0, n, 4096):
            backlog.extend(records[i : i + 4096])
        return n

    ops = [[[0, b"key:%08d" % i, b"v" * 100, 0]] for i in range(1000)] * (n // 1000 // 4)

    def extend16() -> int:
        backlog = ReplicationBacklog()
        for i in range(0, n, 16):
            backlog.extend(records[i : i + 16])
        return n

    def commit() -> int:
        backlog = ReplicationBacklog()
        history = History()
        history.subscribe(lambda offset, record: backlog.append(record))
        c = history.commit
        for o in ops:
            c(o)
        return len(ops)

    def commit_batched() -> int:
        # A master's path: records queued per read, published once (History.publish).
        backlog = ReplicationBacklog()
        history = History()
        history.subscribe(
            lambda offset, record: backlog.append(record),
            lambda first, batch: backlog.extend(batch),
        )
        history.on_pending = lambda: None
        c, publish = history.commit, history.publish
        for i in range(0, len(ops), 16):
            for o in ops[i : i + 16]:
                c(o)
            publish()
        return len(ops)

    rows = []
    for label, fn, target in (
        ("ReplicationBacklog.append (bound method, 1M-record log)", bare, 10e6),
        ("ReplicationBacklog.extend (batches of 16: a master's read of -P 16)", extend16, None),
        ("ReplicationBacklog.extend (batches of 4096, replica side)", extend, None),
        ("History.commit (msgpack encode + backlog listener)", commit, None),
        ("History.commit, published per read of 16 (master path)", commit_batched, None),
    ):
        rate = best_rate(fn)
        rows.append(
            [
                label,
                fmt_num(rate, "ops/s"),
                "≥ 10M/s" if target else "",
                verdict(rate >= target, f"{rate / 1e6:.1f}M/s") if target else "",
            ]
        )
        log(f"append: {label}: {rate / 1e6:.2f}M/s")
        if fn is bare:
            summary("log_append", f"{fmt_num(rate, 'ops/s')}/s (best of 5)", met=rate >= 10e6)
    return [
        print_table(
            "(iv) Replication log append rate (in-process, per CPU second, best of 5; Redis has "
            "no equivalent)",
            ["operation", "rate", "target", "verdict"],
            rows,
        )
    ]


# ------------------------------------------------------------------------------- (vi)


def part_stall(nkeys: int) -> list[str]:
    """The longest step a master's full sync takes between two client reads, in process.

    What (v) measures from outside, without the machine's noise. The keyspace is built as
    a master's is (a distinct value object per key, allocated between the keys), not with
    one shared value: a step that touches every key costs cache and TLB misses, which a
    compact test keyspace hides. Default path: ``fork()`` (the master's only step; the
    child sends the snapshot), timed through :class:`SnapshotChild` on a socket pair.
    In-process path (TLS, small data sets): the key list, the longest time-bounded slice
    of chunks, the longest slice of the key list's release; beside them the one-step
    dictionary copy it replaced."""
    import asyncio
    import gc
    import socket
    import threading
    import types
    import zlib

    from synap.replication import master as master_module
    from synap.replication.fork_snapshot import SnapshotChild
    from synap.replication.master_session import MasterSession, batch_entries
    from synap.replication.messages import PROTOCOL_VERSION, Hello, encode_snapshot_payload
    from synap.store.keyspace import Keyspace

    keyspace = Keyspace()
    for i in range(nkeys):
        keyspace.put(b"key:%08d" % i, b"%08d" % i + b"v" * 92, 0)
    node = types.SimpleNamespace(keyspace=keyspace)
    conn = types.SimpleNamespace(server=types.SimpleNamespace(node=node))
    rss_mb = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGESIZE") / 1e6
    one_step: list[float] = []
    key_list: list[float] = []
    slice_max: list[float] = []
    slice_median: list[float] = []
    release_max: list[float] = []
    fork_ms: list[float] = []
    fork_cpu_ms: list[float] = []
    child_s: list[float] = []

    def forked_sync() -> None:
        session = MasterSession(None, 0)
        session.receive_data(Hello(PROTOCOL_VERSION, "bench", None, "?", 0).encode(), 0)
        ours, theirs = socket.socketpair()
        ours.setblocking(False)

        def drain() -> None:
            while theirs.recv(1 << 20):
                pass

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()

        async def run() -> SnapshotChild:
            head = session.send_fullsync("1" * 40, 1, len(keyspace), 0)
            child = SnapshotChild.start(ours.fileno(), head, session, keyspace, 60.0)
            try:
                await child.result(lambda keys, sent: None)
            finally:
                child.stop()
            return child

        t = time.perf_counter()
        child = asyncio.run(run())
        child_s.append(time.perf_counter() - t)
        fork_ms.append(child.fork_ms)
        fork_cpu_ms.append(child.fork_cpu_ms)
        ours.close()
        reader.join(10)
        theirs.close()

    for _ in range(3):
        gc.collect()
        forked_sync()
        t = time.process_time()
        copies = (dict(keyspace.data), dict(keyspace.expires), set(keyspace.json_keys))
        one_step.append(time.process_time() - t)
        del copies
        t = time.process_time()
        keys = list(keyspace.data)
        key_list.append(time.process_time() - t)
        master_module._freeze_gc()  # as _full_sync_in_process does
        steps: list[float] = []
        clock = time.perf_counter
        entries = master_module.ReplicaConnection._snapshot_entries(conn, keys)  # type: ignore[arg-type]
        t = time.process_time()
        slice_started = clock()
        for batch in batch_entries(entries):
            payload = encode_snapshot_payload(batch)
            zlib.crc32(payload)
            if clock() - slice_started >= master_module.SLICE_SECONDS:
                now = time.process_time()
                steps.append(now - t)
                t, slice_started = now, clock()
        steps.append(time.process_time() - t)
        slice_max.append(max(steps))
        slice_median.append(median(steps))
        released: list[float] = []
        while keys:
            t = time.process_time()
            del keys[-master_module.RELEASE_SLICE_KEYS :]
            released.append(time.process_time() - t)
        release_max.append(max(released))
        master_module._unfreeze_gc()
        del keys
    ms = lambda v: fmt_num(v * 1000, "ms")  # noqa: E731
    rows = [
        [
            f"default: fork() of the master ({rss_mb:.0f} MB RSS here), CPU",
            f"{fmt_num(median(fork_cpu_ms), 'ms')} ({', '.join(f'{x:.1f}' for x in fork_cpu_ms)})",
            "≤ 10 ms",
            verdict(median(fork_cpu_ms) <= 10, f"{median(fork_cpu_ms):.1f} ms"),
        ],
        [
            "default: fork(), wall (preemption by other processes included)",
            f"{fmt_num(median(fork_ms), 'ms')} ({', '.join(f'{x:.1f}' for x in fork_ms)})",
            "",
            "",
        ],
        [
            "default: the child's whole snapshot (other core), wall",
            f"{median(child_s):.2f} s",
            "",
            "",
        ],
        ["in process, before: one-step copy of the dictionaries", ms(median(one_step)), "", ""],
        ["in process: the key list (one step)", ms(median(key_list)), "≤ 10 ms", ""],
        [
            f"in process: a slice (≥ {master_module.SLICE_SECONDS * 1000:.0f} ms of chunks), median",
            ms(median(slice_median)),
            "",
            "",
        ],
        ["in process: longest slice", ms(median(slice_max)), "≤ 10 ms", ""],
        [
            f"in process: longest release slice ({master_module.RELEASE_SLICE_KEYS} keys)",
            ms(median(release_max)),
            "≤ 10 ms",
            "",
        ],
    ]
    worst = max(median(key_list), median(slice_max), median(release_max)) * 1000
    rows[4][3] = verdict(worst <= 10, f"worst step {worst:.1f} ms")
    return [
        print_table(
            f"(vi) Longest master step between client reads during a full sync of {nkeys:,} keys "
            "(in-process CPU time; fork: wall time; median of 3)",
            ["step", "time", "target", "verdict"],
            rows,
        )
    ]


PARTS = ("sync", "lag", "catchup", "append", "stall")


def main(argv: list[str] | None = None) -> list[str]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated, of {', '.join(PARTS)} (default: all)",
    )
    ap.add_argument("--reps", type=int, default=3, help="repetitions per figure (median)")
    ap.add_argument("--keys", type=int, default=1_000_000, help="(i), (v), (vi): keys loaded")
    ap.add_argument(
        "--catchup-records", type=int, default=500_000, help="(iii): SETs written while away"
    )
    ap.add_argument(
        "--probe-writes",
        action="store_true",
        help="(v): the probe SETs random loaded keys instead of GET (copy-on-write faults)",
    )
    ap.add_argument(
        "--lag-pin",
        choices=("on", "off"),
        default="off",
        help="(ii): master on CPU 0 and replica on CPU 1 (on), or both unpinned (off)",
    )
    ap.add_argument("--probe", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.probe:
        probe_main(int(args.probe[0]), args.probe[1], 120, int(args.probe[2]))
        return []
    parts = args.parts.split(",")
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)}; have {', '.join(PARTS)}")
    need_tools("redis-server", "redis-benchmark")
    tables: list[str] = []
    with workdir("repl") as tmp:
        handlers: dict[str, Callable[[], list[str]]] = {
            "sync": lambda: part_sync(tmp, args.reps, args.keys, args.probe_writes),
            "lag": lambda: part_lag(tmp, args.reps, args.lag_pin == "on"),
            "catchup": lambda: part_catchup(tmp, args.reps, args.catchup_records),
            "append": part_append,
            "stall": lambda: part_stall(args.keys),
        }
        for part in parts:
            tables += handlers[part]()
    return tables


if __name__ == "__main__":
    main()
