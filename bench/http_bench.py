"""HTTP throughput: ``GET /kv/get/{key}`` with wrk against our HTTP API.

The server holds 10k keys with 100-character values (loaded over RESP); wrk fetches
one of them: ``wrk -t2 -c50 -d10s --latency http://127.0.0.1:PORT/kv/get/key:00000042``.
Nothing is pinned (wrk's two threads and the server share the two cores), as in
research/perf-baseline.md. Redis has no HTTP API, so the table shows the target instead:
>= 40k req/s (the research measured raw ASGI on uvicorn at 42k on this machine).

As a yardstick for the load on the shared machine, the same run measures
``bench/_asgi_ref.py``: a raw-ASGI app that returns a fixed body of the same size on
uvicorn with the node's settings. No ASGI app on uvicorn can beat it, so "ours / reference"
is the part the code controls.

    .venv/bin/python bench/http_bench.py [--reps 3] [--duration 10]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    HOST,
    PYTHON,
    Server,
    fmt_num,
    free_port,
    load_keys,
    log,
    median,
    need_tools,
    print_table,
    running,
    synap_server,
    verdict,
    workdir,
)
from _summary import cell, summary  # noqa: E402

TARGET = 40_000
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(url: str, duration: int) -> dict[str, float]:
    argv = ["timeout", str(duration + 20), "wrk", "-t2", "-c50", f"-d{duration}s", "--latency", url]
    out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if rps is None or p50 is None or p99 is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    if bad or errors:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    return {"rps": float(rps.group(1)), "p50": _ms(p50.group(1)), "p99": _ms(p99.group(1))}


def reference(tmp: Path, duration: int, reps: int) -> list[dict[str, float]]:
    """wrk against bench/_asgi_ref.py on uvicorn (httptools, uvloop), as the node runs it."""
    port = free_port()
    argv = [PYTHON, "-m", "uvicorn", "--app-dir", str(Path(__file__).resolve().parent)]
    argv += ["--host", HOST, "--port", str(port), "--loop", "uvloop", "--http", "httptools"]
    argv += ["--no-access-log", "--log-level", "warning", "_asgi_ref:app"]
    server = Server("asgi-ref", argv, port, tmp)
    out = []
    with running(server):
        wait_http(port)
        url = f"http://{HOST}:{port}/kv/get/key:00000042"
        wrk(url, 2)
        for rep in range(reps):
            r = wrk(url, duration)
            log(f"http: reference rep {rep + 1}: {r['rps']:,.0f} req/s")
            out.append(r)
    return out


def wait_http(port: int) -> None:
    import socket
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no HTTP server on port {port}")


def main(argv: list[str] | None = None) -> list[str]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    args = ap.parse_args(argv)
    need_tools("wrk")
    results = []
    with workdir("http") as tmp:
        server, http_port = synap_server(tmp, name="synap-http")
        with running(server):
            load_keys(server.resp_port, 10_000)
            url = f"http://{HOST}:{http_port}/kv/get/key:00000042"
            wrk(url, 2)  # warm-up
            for rep in range(args.reps):
                r = wrk(url, args.duration)
                log(f"http: rep {rep + 1}: {r['rps']:,.0f} req/s, p99 {r['p99']:.2f} ms")
                results.append(r)
        refs = reference(tmp, args.duration, args.reps)
    rps = median([r["rps"] for r in results])
    ref = median([r["rps"] for r in refs])
    row = [
        "GET /kv/get/{key}",
        f"{fmt_num(rps, 'req/s')} ({', '.join(fmt_num(r['rps'], 'req/s') for r in results)})",
        fmt_num(median([r["p50"] for r in results]), "ms"),
        fmt_num(median([r["p99"] for r in results]), "ms"),
        f"≥ {TARGET / 1000:.0f}k req/s (no Redis equivalent)",
        verdict(rps >= TARGET, f"{rps / TARGET - 1:+.0%}"),
        f"{fmt_num(ref, 'req/s')} ({', '.join(fmt_num(r['rps'], 'req/s') for r in refs)})",
        f"{rps / ref:.2f}",
    ]
    rates = [r["rps"] for r in results]
    summary(
        "http_get",
        cell(fmt_num(rps, "req/s") + " req/s", rates, lambda v: fmt_num(v, "req/s")),
        "— (raw-ASGI reference " + fmt_num(ref, "req/s") + ")",
        met=rps >= 70_000,
    )
    return [
        print_table(
            f"HTTP, wrk -t2 -c50 -d{args.duration}s, unpinned, median of {args.reps}",
            [
                "request",
                "Synap req/s (runs)",
                "p50",
                "p99",
                "target",
                "verdict",
                "reference raw ASGI (runs)",
                "ours / reference",
            ],  # fmt: skip
            [row],
        )
    ]


if __name__ == "__main__":
    main()
