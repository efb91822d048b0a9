"""Memory per key: 1M keys x 100 B loaded with pipelined MSET batches, ours against Redis.

For each server: start it, read its RSS (and Redis's ``used_memory``), load
``key:%08d`` -> 100 bytes with MSET batches of 1000 keys (16 batches in flight), read
them again. Bytes per key = delta / keys. Ours is measured twice:

* with the default configuration, which keeps the replication log (1M records / 256 MB)
  on every node, standalone included. Each MSET is one record holding a copy of its
  1000 values, so after the load the log holds a second copy of the data set;
* with ``replication.log_max_mb: 1``, Redis's default ``repl-backlog-size`` (and Redis
  allocates its backlog only once a replica attaches): the cost of the keyspace alone;
* the same with ``kv_store.huge_pages: auto`` (Python's memory on transparent huge
  pages, opt-in): what huge pages cost or save in RSS.

Target: RSS per key <= 1.4x Redis's RSS per key.

    .venv/bin/python bench/memory_bench.py [--reps 3] [--keys 1000000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    load_keys,
    log,
    median,
    print_table,
    redis_server,
    running,
    synap_server,
    verdict,
    workdir,
)
from _summary import cell, summary  # noqa: E402

TARGET = 1.4


def measure(kind: str, tmp: Path, nkeys: int) -> dict[str, float]:
    if kind == "redis":
        server = redis_server(tmp, name=f"redis-mem-{time.monotonic_ns()}")
    else:
        extra: list[str] = []
        if kind.startswith("synap-small-log"):
            cfg = tmp / f"{kind}.yml"
            text = "replication:\n  log_max_mb: 1\n"
            if kind.endswith("-huge"):  # memory on huge pages (opt-in; docs/OPERATIONS.md)
                text += "kv_store:\n  huge_pages: auto\n"
            cfg.write_text(text)
            extra = ["--config", str(cfg)]
        server, _ = synap_server(tmp, name=f"{kind}-{time.monotonic_ns()}", extra=extra)
    with running(server):
        c = server.client()
        try:
            time.sleep(0.5)
            rss0 = server.rss_bytes()
            used0 = int(c.info("memory").get("used_memory", 0)) if kind == "redis" else 0
            seconds = load_keys(server.resp_port, nkeys)
            time.sleep(0.5)
            keys = c.call("DBSIZE")
            if keys != nkeys:
                raise RuntimeError(f"{kind} holds {keys} keys after loading {nkeys}")
            rss1 = server.rss_bytes()
            used1 = int(c.info("memory").get("used_memory", 0)) if kind == "redis" else 0
        finally:
            c.close()
    return {
        "rss": (rss1 - rss0) / nkeys,
        "used": (used1 - used0) / nkeys,
        "rss_total": rss1 / 1e6,
        "load_s": seconds,
    }


def main(argv: list[str] | None = None) -> list[str]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keys", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    kinds = ["synap", "synap-small-log", "synap-small-log-huge", "redis"]
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    with workdir("mem") as tmp:
        for rep in range(args.reps):
            for kind in kinds:
                r = measure(kind, tmp, args.keys)
                log(
                    f"memory: {kind} rep {rep + 1}: {r['rss']:.0f} B/key RSS, load {r['load_s']:.1f}s"
                )
                runs[kind].append(r)
    redis_rss = median([r["rss"] for r in runs["redis"]])
    redis_used = median([r["used"] for r in runs["redis"]])
    labels = {
        "synap": "Synap, default config (1M-record / 256 MB replication log)",
        "synap-small-log": "Synap, replication.log_max_mb: 1",
        "synap-small-log-huge": "Synap, replication.log_max_mb: 1, kv_store.huge_pages: auto",
        "redis": "Redis 7 (no replica: no backlog)",
    }
    rows = []
    for kind in kinds:
        rss = median([r["rss"] for r in runs[kind]])
        ratio = rss / redis_rss
        rows.append(
            [
                labels[kind],
                f"{rss:.0f} B ({', '.join(str(round(r['rss'])) for r in runs[kind])})",
                f"{redis_used:.0f} B used_memory" if kind == "redis" else "",
                f"{median([r['rss_total'] for r in runs[kind]]):.0f} MB",
                f"{median([r['load_s'] for r in runs[kind]]):.1f} s",
                f"{ratio:.2f}",
                "" if kind == "redis" else f"≤ {TARGET}",
                "" if kind == "redis" else verdict(ratio <= TARGET, f"{ratio:.2f}x"),
            ]
        )
        if kind == "synap":  # issue 16's row: the default configuration
            per_key = lambda v: f"{v:.0f} B"  # noqa: E731
            ours_runs = [r["rss"] for r in runs[kind]]
            theirs = [r["rss"] for r in runs["redis"]]
            summary(
                "memory",
                cell(per_key(rss), ours_runs, per_key),
                cell(per_key(redis_rss), theirs, per_key),
                f"{ratio:.2f}",
                ratio <= 1.2,
            )
    return [
        print_table(
            f"Memory per key, {args.keys:,} keys x 100 B via MSET batches of 1000, "
            f"median of {args.reps}",
            [
                "server",
                "RSS delta per key (runs)",
                "Redis accounting",
                "RSS after",
                "load time",
                "vs Redis RSS",
                "target",
                "verdict",
            ],
            rows,
        )  # fmt: skip
    ]


if __name__ == "__main__":
    main()
