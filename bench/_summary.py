"""Summary rows: each benchmark prints its figures for issue 16's target table as one
machine-readable line (``SUMMARY {json}``) beside its own tables; ``run_all.py`` collects
them, in the issue's order, into the closing table of ``make bench``.

A row carries the figure's key (one of :data:`ROWS`), our median, Redis's median, the
ratio, and the noise: the min–max of the runs behind each median.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

PREFIX = "SUMMARY "

# key -> (figure, target), in the order of issue 16's table.
ROWS: dict[str, tuple[str, str]] = {
    "resp_set_p16": ("RESP SET -P 16, standalone, vs Redis", "≥ 0.85"),
    "resp_get_p16": ("RESP GET -P 16, standalone, vs Redis", "≥ 0.85"),
    "resp_set_p16_master": (
        "RESP SET -P 16, master WAL (fsync periodic) + 1 replica, vs Redis AOF everysec + 1 replica",
        "≥ 0.85",
    ),
    "resp_get_p16_master": ("RESP GET -P 16, same master vs same Redis", "≥ 0.85"),
    "resp_set_p1_cpu": (
        "RESP SET -c 50 unpipelined, server CPU per command (Redis / ours)",
        "≥ 0.9",
    ),
    "resp_get_p1_cpu": (
        "RESP GET -c 50 unpipelined, server CPU per command (Redis / ours)",
        "≥ 0.9",
    ),
    "http_get": ("HTTP GET /kv/get/{key}, 50 connections", "≥ 70k req/s"),
    "catchup": ("replica catch-up after a disconnect, records/s vs Redis", "≥ 1.2"),
    "visible_p50": (
        "write → visible on a replica, unpipelined writer, p50 (ratio ours / Redis)",
        "≤ 1.0",
    ),
    "visible_p99": (
        "write → visible on a replica, unpipelined writer, p99 (ratio ours / Redis)",
        "≤ 1.0",
    ),
    "visible_idle_p50": ("write → visible on a replica, idle probe, p50", "< 1 ms"),
    "log_append": ("replication log append", "≥ 10M/s"),
    "memory": ("memory per key, 1M × 100 B, vs Redis", "≤ 1.2"),
    "fullsync_rtt": ("worst client round trip on the master during a 1M-key full sync", "≤ 10 ms"),
    "fullsync_rtt_huge": (
        "same, with kv_store.huge_pages: auto (opt-in; docs/OPERATIONS.md)",
        "≤ 10 ms",
    ),
}


def noise(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """``min–max`` of the runs (a single run has no spread)."""
    if len(values) < 2:
        return "1 run"
    return f"{fmt(min(values))}–{fmt(max(values))}"


def cell(median: str, values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """A median with the noise of its runs beside it: ``123k (118k–131k)``."""
    return f"{median} ({noise(values, fmt)})"


def summary(
    key: str, ours: str, redis: str = "—", ratio: str = "—", met: bool | None = None
) -> None:
    """Print one row for run_all.py (``ours`` / ``redis``: the medians with their noise)."""
    if key not in ROWS:
        raise KeyError(f"unknown summary row {key!r}; add it to bench/_summary.py ROWS")
    row = {"key": key, "ours": ours, "redis": redis, "ratio": ratio, "met": met}
    print(PREFIX + json.dumps(row, ensure_ascii=False), flush=True)


def parse(stdout: str) -> tuple[str, list[dict[str, object]]]:
    """Split a benchmark's stdout into its own text and its summary rows."""
    text, rows = [], []
    for line in stdout.splitlines():
        if line.startswith(PREFIX):
            rows.append(json.loads(line[len(PREFIX) :]))
        else:
            text.append(line)
    return "\n".join(text), rows


def table(rows: Sequence[dict[str, object]], where: dict[str, str]) -> str:
    """The closing table: every row of issue 16, measured or not (``where``: key -> the
    benchmark that should have measured it, for the rows that are missing)."""
    got = {str(r["key"]): r for r in rows}
    lines = [
        "| figure | ours (min–max) | Redis (min–max) | ratio | target | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for key, (figure, target) in ROWS.items():
        r = got.get(key)
        if r is None:
            source = where.get(key, "?")
            why = source if source.startswith("no ") else f"{source} not run or failed"
            lines.append(f"| {figure} | not measured ({why}) | | | {target} | |")
            continue
        met = r.get("met")
        verdict = "" if met is None else ("met" if met else "MISSED")
        lines.append(
            f"| {figure} | {r['ours']} | {r['redis']} | {r['ratio']} | {target} | {verdict} |"
        )
    return "\n".join(lines)
