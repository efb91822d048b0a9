"""RESP throughput: redis-benchmark SET/GET against our server and Redis, in the same run.

``redis-benchmark -c 50 -d 100 -r 100000``, without pipelining and with ``-P 16`` (the
pipelined runs use 8x the request count so they last as long). Each repetition starts a
fresh server; the order of the two servers alternates between repetitions so that slow
drifts of the shared machine hit both. Two placements:

* pinned: the server on CPU 0, redis-benchmark on CPU 1 (``taskset``), as in
  research/perf-baseline.md;
* unpinned: the scheduler places both.

Targets: unpipelined >= 0.95x Redis, ``-P 16`` >= 0.85x Redis (medians).

    .venv/bin/python bench/resp_bench.py [--reps 3] [--n 200000] [--pin both|on|off]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    CLIENT_CPU,
    SERVER_CPU,
    fmt_num,
    log,
    median,
    need_tools,
    print_table,
    redis_benchmark,
    redis_server,
    running,
    synap_server,
    verdict,
    workdir,
)

TESTS = [("SET", 1), ("GET", 1), ("SET", 16), ("GET", 16)]
TARGETS = {1: 0.95, 16: 0.85}


def measure(
    server: str, pin: bool, n: int, tmp: Path
) -> dict[tuple[str, int], tuple[float, float]]:
    """One repetition on a fresh server: {(test, pipeline): (rps, server CPU %)}."""
    cpu = SERVER_CPU if pin else None
    client_cpu = CLIENT_CPU if pin else None
    if server == "synap":
        proc, _ = synap_server(tmp, name=f"synap-{time.monotonic_ns()}", cpu=cpu)
    else:
        proc = redis_server(tmp, name=f"redis-{time.monotonic_ns()}", cpu=cpu)
    out = {}
    with running(proc):
        for test, pipeline in TESTS:
            count = n * 8 if pipeline > 1 else n
            cpu0, t0 = proc.cpu_seconds(), time.monotonic()
            res = redis_benchmark(
                proc.resp_port, test.lower(), count, pipeline=pipeline, cpu=client_cpu
            )
            busy = (proc.cpu_seconds() - cpu0) / (time.monotonic() - t0) * 100
            out[(test, pipeline)] = (res["rps"], busy)
    return out


def main(argv: list[str] | None = None) -> list[str]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n", type=int, default=200_000, help="requests per unpipelined test")
    ap.add_argument("--pin", choices=["both", "on", "off"], default="both")
    args = ap.parse_args(argv)
    need_tools("redis-server", "redis-benchmark")
    modes = {"both": [True, False], "on": [True], "off": [False]}[args.pin]
    tables = []
    with workdir("resp") as tmp:
        for pin in modes:
            runs: dict[str, dict[tuple[str, int], list[tuple[float, float]]]] = {
                "synap": {t: [] for t in TESTS},
                "redis": {t: [] for t in TESTS},
            }
            for rep in range(args.reps):
                order = ["synap", "redis"] if rep % 2 == 0 else ["redis", "synap"]
                for server in order:
                    log(f"resp: {server} rep {rep + 1}/{args.reps} pinned={pin}")
                    for key, value in measure(server, pin, args.n, tmp).items():
                        runs[server][key].append(value)
            rows = []
            for test, pipeline in TESTS:
                ours = [r for r, _ in runs["synap"][(test, pipeline)]]
                theirs = [r for r, _ in runs["redis"][(test, pipeline)]]
                cpu_ours = median([c for _, c in runs["synap"][(test, pipeline)]])
                cpu_theirs = median([c for _, c in runs["redis"][(test, pipeline)]])
                ratio = median(ours) / median(theirs)
                target = TARGETS[pipeline]
                rows.append(
                    [
                        f"{test}" + (f" -P {pipeline}" if pipeline > 1 else ""),
                        f"{fmt_num(median(ours), 'ops/s')} ({', '.join(fmt_num(r, 'ops/s') for r in ours)})",
                        f"{fmt_num(median(theirs), 'ops/s')} ({', '.join(fmt_num(r, 'ops/s') for r in theirs)})",
                        f"{ratio:.2f}",
                        f"≥ {target:.2f}",
                        verdict(ratio >= target, f"{ratio / target - 1:+.0%}"),
                        f"{cpu_ours:.0f} % / {cpu_theirs:.0f} %",
                    ]
                )
            placement = (
                "server on CPU 0, client on CPU 1" if pin else "unpinned (scheduler places both)"
            )
            tables.append(
                print_table(
                    f"RESP throughput, redis-benchmark -c 50 -d 100 -r 100000, {placement}, "
                    f"median of {args.reps}",
                    [
                        "test",
                        "Synap (runs)",
                        "Redis (runs)",
                        "ratio",
                        "target",
                        "verdict",
                        "server CPU ours / Redis",
                    ],
                    rows,
                )  # fmt: skip
            )
    return tables


if __name__ == "__main__":
    main()
