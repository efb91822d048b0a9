"""Run every benchmark in bench/ (``make bench``) and collect their tables in one report.

Each ``bench/*_bench.py`` runs as its own process, one after the other (they would
disturb each other on a 2-core machine), and starts and stops its own servers. Their
tables (stdout) are printed as they come and gathered, with the date and the machine,
into ``--out`` (Markdown) when given. Progress lines go to stderr. A benchmark that fails
is reported and the others still run; the exit status is then 1.

The report closes with issue 16's target table: every row, with ours, Redis's, the ratio
and the noise (min–max of the runs) beside each median, collected from the ``SUMMARY``
lines the benchmarks print (bench/_summary.py); a row no benchmark measured says so.

    .venv/bin/python bench/run_all.py [--reps N] [--only resp,http] [--out report.md]

Needs ``apt-get install redis-server redis-tools wrk etcd-server``. Takes about 20 minutes.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from _summary import parse, table  # noqa: E402

# Which benchmark measures each of issue 16's rows (named when a row is missing).
SOURCES = {
    **dict.fromkeys(
        ["resp_set_p16", "resp_get_p16", "resp_set_p16_master", "resp_get_p16_master"], "resp"
    ),
    **dict.fromkeys(["resp_set_p1_cpu", "resp_get_p1_cpu"], "resp"),
    "http_get": "http",
    "memory": "memory",
    **dict.fromkeys(
        ["catchup", "visible_p50", "visible_p99", "visible_idle_p50", "log_append", "fullsync_rtt"],
        "replication",
    ),
}
ORDER = ["resp", "http", "memory", "replication", "failover", "etcd_failover"]


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, load average at start {load:.2f}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, help="repetitions for every benchmark (default: theirs)")
    ap.add_argument("--only", help="comma-separated names, e.g. resp,replication")
    ap.add_argument("--out", type=Path, help="write the collected tables here (Markdown)")
    args = ap.parse_args()
    found = {p.name.removesuffix("_bench.py"): p for p in BENCH.glob("*_bench.py")}
    names = [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - set(found)
        if unknown:
            sys.exit(f"unknown benchmark(s) {', '.join(sorted(unknown))}; have {', '.join(names)}")
        names = [n for n in names if n in wanted]
    report = [
        f"# Synap benchmarks, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"Machine: {machine()}.",
    ]
    failed = []
    rows: list[dict[str, object]] = []
    for name in names:
        argv = [sys.executable, str(found[name])]
        if args.reps:
            argv += ["--reps", str(args.reps)]
        print(f"\n## {name}", flush=True)
        started = time.monotonic()
        proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
        text, found_rows = parse(proc.stdout)
        rows += found_rows
        print(text, flush=True)
        took = time.monotonic() - started
        report += ["", f"## {name} ({took:.0f} s)", text.strip()]
        if proc.returncode != 0:
            failed.append(name)
            report.append(f"\n**{name} failed with exit status {proc.returncode}** (see stderr).")
    closing = [
        "",
        "## Issue 16 targets (medians; min–max of the runs in brackets)",
        "",
        f"Machine: {machine()}.",
        "",
        table(rows, SOURCES),
    ]
    print("\n".join(closing), flush=True)
    report += closing
    if args.out:
        args.out.write_text("\n".join(report) + "\n")
        print(f"\nreport written to {args.out}", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
