"""The published synap-sdk's three transports against one node, in the same run:
``synap://`` (SynapRPC), ``resp3://`` (the Redis port) and HTTP (``POST /api/v1/command``).

One server (pinned to CPU 0 where ``taskset`` exists) holds nothing at the start; a client
process (pinned to CPU 1) runs the SDK's ``kv.set`` then ``kv.get`` on 100-byte string
values: once with one request in flight at a time (latency), once with 32 coroutines
sharing one ``SynapClient`` (throughput).  Every run is bounded by an operation count and
a timeout (HTTP runs a tenth of the operations).  As a yardstick the same client runs ``resp3://`` against Debian's
``redis-server``: the SDK's own cost per operation, which no server can remove.

    .venv/bin/python bench/sdk_bench.py [--reps 3] [--ops 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    CLIENT_CPU,
    HOST,
    PYTHON,
    SERVER_CPU,
    fmt_num,
    free_port,
    log,
    median,
    pinned,
    print_table,
    redis_server,
    running,
    synap_server,
    workdir,
)

VALUE = "v" * 100
CONCURRENCY = 32
TIMEOUT_S = 300


async def _client(url: str, ops: int, concurrency: int) -> dict[str, float]:
    from synap_sdk import SynapClient, SynapConfig

    async with SynapClient(SynapConfig(url, timeout=30)) as client:
        await client.kv.set("warm", VALUE)
        for _ in range(200):
            await client.kv.get("warm")
        per = max(1, ops // (2 * concurrency))

        async def worker(w: int) -> None:
            for i in range(per):
                key = f"k:{w}:{i % 1000}"
                await client.kv.set(key, VALUE)
                if await client.kv.get(key) != VALUE:
                    raise RuntimeError(f"{url}: {key} came back wrong")

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - started
    done = 2 * per * concurrency
    return {"ops": done, "seconds": elapsed, "ops_s": done / elapsed}


def measure(url: str, ops: int, concurrency: int) -> dict[str, float]:
    """One client run in its own (pinned) process; its result."""
    argv = [PYTHON, __file__, "--client", url, "--ops", str(ops), "--concurrency", str(concurrency)]
    out = subprocess.run(
        ["timeout", str(TIMEOUT_S), *pinned(argv, CLIENT_CPU)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"client for {url} failed ({out.returncode}): {out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> list[str]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ops", type=int, default=20_000, help="operations per 32-way run")
    ap.add_argument("--client", help=argparse.SUPPRESS)
    ap.add_argument("--concurrency", type=int, default=CONCURRENCY, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.client:
        print(json.dumps(asyncio.run(_client(args.client, args.ops, args.concurrency))))
        return []
    rows = []
    with workdir("sdk") as tmp:
        rpc_port = free_port()
        server, http_port = synap_server(tmp, name="synap-sdk", cpu=SERVER_CPU, rpc_port=rpc_port)
        redis = redis_server(tmp, cpu=SERVER_CPU)
        with running(server, redis):
            # (name, URL, share of --ops): HTTP is an order of magnitude slower.
            targets = [
                ("synap:// (SynapRPC)", f"synap://{HOST}:{rpc_port}", 1.0),
                ("resp3:// (RESP port)", f"resp3://{HOST}:{server.resp_port}", 1.0),
                ("HTTP (/api/v1/command)", f"http://{HOST}:{http_port}", 0.1),
                ("resp3:// to redis-server", f"resp3://{HOST}:{redis.resp_port}", 1.0),
            ]
            results: dict[str, dict[int, list[float]]] = {}
            for rep in range(args.reps):
                for name, url, share in targets:  # interleaved: load drift hits all alike
                    for conc in (1, CONCURRENCY):
                        ops = int(args.ops * share) if conc > 1 else int(args.ops * share / 4)
                        ops = max(2 * conc, ops)
                        r = measure(url, ops, conc)
                        results.setdefault(name, {}).setdefault(conc, []).append(r["ops_s"])
                        log(f"sdk: rep {rep + 1} {name} c={conc}: {r['ops_s']:,.0f} ops/s")
    redis_c = median(results["resp3:// to redis-server"][CONCURRENCY])
    for name, _, _ in targets:
        one = results[name][1]
        many = results[name][CONCURRENCY]
        rows.append(
            [
                name,
                f"{fmt_num(median(one), 'ops/s')} ({', '.join(fmt_num(x, 'ops/s') for x in one)})",
                f"{1e6 / median(one):.0f} µs",
                f"{fmt_num(median(many), 'ops/s')} ({', '.join(fmt_num(x, 'ops/s') for x in many)})",
                f"{median(many) / redis_c:.2f}",
            ]
        )
    return [
        print_table(
            f"synap-sdk kv.set + kv.get, 100 B values, server on CPU 0, client on CPU 1, "
            f"median of {args.reps}",
            [
                "transport",
                "1 in flight ops/s (runs)",
                "per op",
                f"{CONCURRENCY} in flight ops/s (runs)",
                f"{CONCURRENCY} in flight / redis-server",
            ],
            rows,
        )
    ]


if __name__ == "__main__":
    main()
