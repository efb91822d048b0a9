"""The WAL as the replication log (issue 13): catch-up from disk vs from memory vs a full
sync, and write throughput with the unified log vs before.

Parts (``--parts``, default all):

catchup
    A master with a data directory holds ``--keys`` keys (pipelined MSET) and a replica
    in sync (an empty node sent ``REPLICAOF``).  The replica is stopped (SIGSTOP),
    ``--records`` SETs (``redis-benchmark -P 16 -d 100``) go to the master, the replica
    is resumed (SIGCONT) and timed until its offset equals the master's, while a probe
    process sends PING / GET to the master (worst round trip reported).  Twice: with
    ``log_max_ops`` above ``--records`` (served from the memory log) and with
    ``log_max_ops: 1000`` (served from the WAL segments on disk).  Records/s = records /
    time; MB/s = WAL bytes of those records / time.  Then a full sync of the resulting
    data set: a new empty node sent ``REPLICAOF``, timed until in sync.  Target (issue
    13): a replica 5M records behind catches up from disk faster than a full sync of 1M
    keys (the 5M figure is the measured disk rate applied to 5M records).
write
    ``redis-benchmark -t set -P 16 -d 100 -n 1000000`` against a master with a data
    directory (fsync periodic); this tree, and, with ``--baseline DIR`` (a copy of the
    code before the change, e.g. ``git archive <commit> | tar -x -C DIR``), the same with
    ``PYTHONPATH=DIR``, runs alternating.  Target: no regression beyond 5 %.
wal
    In-process: ``WriteAheadLog.append`` + a ``flush`` per 100 records for 1M records,
    with 64 MiB segments rolling vs one segment, best of 5.

    .venv/bin/python bench/log_bench.py [--parts catchup,write,wal] [--reps 3]
        [--keys 1000000] [--records 1000000] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    HOST,
    Server,
    fmt_num,
    free_port,
    load_keys,
    log,
    median,
    need_tools,
    print_table,
    synap_server,
    verdict,
    workdir,
)
from replication_bench import Probe, writer, writer_rps  # noqa: E402

SYNC_TIMEOUT_S = 300.0
POLL_S = 0.005


def start_master(
    tmp: Path, name: str, log_max_ops: int, pythonpath: str | None = None
) -> tuple[Server, int]:
    config = tmp / f"{name}.yml"
    config.write_text(
        f"replication:\n  log_max_ops: {log_max_ops}\n  log_max_mb: 4096\n"
        "persistence:\n  snapshot_interval_secs: 0\n"
    )
    repl_port = free_port()
    extra = ("--config", str(config), "--data-dir", str(tmp / name))
    if pythonpath is None:
        server, _ = synap_server(tmp, name=name, role="master", replica_port=repl_port, extra=extra)
        return server, repl_port
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = pythonpath
    try:
        server, _ = synap_server(tmp, name=name, role="master", replica_port=repl_port, extra=extra)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    return server, repl_port


def in_sync_after(master: Server, replica: Server, started: float) -> float:
    mc, rc = master.client(), replica.client(timeout=30)
    try:
        while time.perf_counter() - started < SYNC_TIMEOUT_S:
            m = int(mc.info("replication").get("master_repl_offset", -1))
            r = rc.info("replication")
            if r.get("master_link_status") == "up" and int(r.get("slave_repl_offset", -2)) == m:
                return time.perf_counter() - started
            time.sleep(POLL_S)
    finally:
        mc.close()
        rc.close()
    raise RuntimeError(f"replica not in sync after {SYNC_TIMEOUT_S}s:\n{master.log_tail()}")


def attach(replica: Server, repl_port: int) -> None:
    rc = replica.client()
    rc.call("REPLICAOF", HOST, str(repl_port))
    rc.close()


def wal_bytes(server: Server) -> int:
    c = server.client()
    try:
        return int(c.info("persistence").get("synap_wal_bytes_written", 0))
    finally:
        c.close()


def disk_records(server: Server) -> int:
    c = server.client()
    try:
        return int(c.info("replication").get("repl_records_sent_from_disk", 0))
    finally:
        c.close()


# ------------------------------------------------------------------------- catch-up


def part_catchup(tmp: Path, reps: int, nkeys: int, records: int) -> list[str]:
    modes = [("memory", records * 2), ("disk", 1000)]
    rates: dict[str, list[tuple[float, float]]] = {m: [] for m, _ in modes}
    probes: dict[str, list[float]] = {m: [] for m, _ in modes}
    full: list[tuple[float, int]] = []
    for mode, log_max_ops in modes:
        master, repl_port = start_master(tmp, f"master-{mode}", log_max_ops)
        replicas: list[Server] = []
        try:
            log(f"catchup/{mode}: loading {nkeys} keys")
            load_keys(master.resp_port, nkeys)
            replica, _ = synap_server(tmp, name=f"replica-{mode}")
            replicas.append(replica)
            attach(replica, repl_port)
            in_sync_after(master, replica, time.perf_counter())
            for rep in range(reps):
                before_disk = disk_records(master)
                replica.pause()
                try:
                    bytes0 = wal_bytes(master)
                    writer_rps(writer(master.resp_port, records, 16))
                    written = wal_bytes(master) - bytes0
                    probe = Probe(master.resp_port, tmp)
                finally:
                    replica.resume()
                started = time.perf_counter()
                elapsed = in_sync_after(master, replica, started)
                probes[mode].append(probe.finish()["max"])
                rates[mode].append((records / elapsed, written / elapsed / 1e6))
                log(
                    f"catchup/{mode} rep {rep + 1}: {records} records ({written / 1e6:.0f} MB) "
                    f"in {elapsed:.2f}s; {disk_records(master) - before_disk} of them sent "
                    "from the segments on disk"
                )
            if mode == "disk":
                mc = master.client()
                keys = int(mc.call("DBSIZE"))
                mc.close()
                for rep in range(reps):
                    fresh, _ = synap_server(tmp, name=f"replica-full-{rep}")
                    replicas.append(fresh)
                    started = time.perf_counter()
                    attach(fresh, repl_port)
                    elapsed = in_sync_after(master, fresh, started)
                    full.append((elapsed, keys))
                    log(f"full sync rep {rep + 1}: {keys} keys in {elapsed:.2f}s")
                    fresh.stop()
                    replicas.remove(fresh)
        finally:
            for r in replicas:
                r.stop()
            master.stop()
    rows = []
    for mode, _ in modes:
        rps = median([r for r, _ in rates[mode]])
        mbs = median([m for _, m in rates[mode]])
        runs = ", ".join(fmt_num(r, "rec/s") for r, _ in rates[mode])
        worst = median(probes[mode])
        rows.append(
            [
                f"partial sync from {mode}",
                f"{fmt_num(rps, 'rec/s')} ({runs})",
                f"{mbs:.1f} MB/s",
                f"{fmt_num(worst, 'ms')} ({', '.join(fmt_num(x, 'ms') for x in probes[mode])})",
            ]
        )
    full_s = median([t for t, _ in full])
    keys = full[0][1] if full else 0
    rows.append(
        [
            f"full sync of {keys:,} keys",
            f"{fmt_num(full_s, 's')} ({', '.join(fmt_num(t, 's') for t, _ in full)})",
            "",
            "",
        ]
    )
    disk_rate = median([r for r, _ in rates["disk"]])
    five_m = 5_000_000 / disk_rate
    # The full sync here moves at least 1M keys (nkeys plus the benchmark's keys).
    target = verdict(
        five_m < full_s,
        f"5M records from disk ≈ {five_m:.1f} s vs full sync {full_s:.1f} s of {keys:,} keys",
    )
    rows.append(["target: 5M behind from disk < full sync of 1M keys", target, "", ""])
    return [
        print_table(
            f"Catch-up: {records:,} SETs written while the replica was stopped "
            f"(master holds {nkeys:,} + written keys), median of {reps}",
            ["how", "records/s or time (runs)", "log bytes/s", "worst master PING/GET (runs)"],
            rows,
        )
    ]


# ---------------------------------------------------------------------------- write


def set_rate(tmp: Path, name: str, pythonpath: str | None, n: int) -> float:
    master, _ = start_master(tmp, name, 1_000_000, pythonpath)
    try:
        return writer_rps(writer(master.resp_port, n, 16))
    finally:
        master.stop()


def part_write(tmp: Path, reps: int, baseline: str | None) -> list[str]:
    n = 1_000_000
    ours: list[float] = []
    theirs: list[float] = []
    for rep in range(reps):
        ours.append(set_rate(tmp, f"write-new-{rep}", None, n))
        log(f"write rep {rep + 1}: unified log {ours[-1]:.0f} SET/s")
        if baseline:
            theirs.append(set_rate(tmp, f"write-old-{rep}", baseline, n))
            log(f"write rep {rep + 1}: before {theirs[-1]:.0f} SET/s")
    new = median(ours)
    rows = [["unified log (this tree)", f"{fmt_num(new, 'ops/s')} "
             f"({', '.join(fmt_num(x, 'ops/s') for x in ours)})", "", ""]]  # fmt: skip
    if theirs:
        old = median(theirs)
        change = (new - old) / old * 100
        rows.append(
            [
                "before (--baseline)",
                f"{fmt_num(old, 'ops/s')} ({', '.join(fmt_num(x, 'ops/s') for x in theirs)})",
                f"{change:+.1f} %",
                verdict(change >= -5, f"{change:+.1f} %"),
            ]
        )
    return [
        print_table(
            f"Write throughput, master with a data directory, redis-benchmark SET -P 16 "
            f"-d 100 -n {n:,}, median of {reps}",
            ["server", "SET/s (runs)", "change", "target: ≥ -5 %"],
            rows,
        )
    ]


# ------------------------------------------------------------------------------ wal


def part_wal() -> list[str]:
    from synap.persistence.wal import WriteAheadLog
    from synap.store.effects import OP_SET, encode_record

    record = encode_record([[OP_SET, b"key:000000123456", b"v" * 100, 0]])
    n = 1_000_000
    rows = []
    for label, seg_bytes in (("64 MiB segments, rolling", 64 << 20), ("one segment", 1 << 40)):
        best = float("inf")
        rolled = 0
        for _ in range(5):
            with tempfile.TemporaryDirectory(prefix="synap-bench-wal-") as d:
                wal = WriteAheadLog(Path(d), "never", seg_bytes)
                list(wal.replay())
                wal.open_for_append(1)
                append, flush = wal.append, wal.flush
                t = time.perf_counter()
                for i in range(1, n + 1):
                    append(i, record)
                    if i % 100 == 0:
                        flush()
                flush()
                best = min(best, time.perf_counter() - t)
                rolled = wal.segments_rolled
                wal.close()
        rows.append([label, fmt_num(n / best, "rec/s"), str(rolled)])
    return [
        print_table(
            f"WAL append + flush every 100 records, {n:,} records of {len(record)} B, best of 5",
            ["segments", "records/s", "segments rolled"],
            rows,
        )
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="catchup,write,wal")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--baseline", help="directory holding the code before the change")
    args = ap.parse_args()
    need_tools("redis-benchmark")
    parts = args.parts.split(",")
    out: list[str] = []
    with workdir("log") as tmp:
        if "catchup" in parts:
            out += part_catchup(tmp, args.reps, args.keys, args.records)
        if "write" in parts:
            out += part_write(tmp, args.reps, args.baseline)
        if "wal" in parts:
            out += part_wal()
    return 0


if __name__ == "__main__":
    sys.exit(main())
