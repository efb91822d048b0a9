"""Quorum-write latency: SET with ``wait`` 0 and 1 against Redis SET + WAIT 1 0, same run.

One master and one replica of each server, on loopback. One client sends N sequential
writes per case (after a warm-up) and we report p50 / p99 / max of each round trip:

* Synap HTTP ``POST /kv/set`` with no wait, and with ``"wait": {"replicas": 1}``;
* Synap RESP ``SET`` alone, and ``SET`` + ``WAIT 1 0`` (two round trips, as with Redis);
* Redis ``SET`` alone, and ``SET`` + ``WAIT 1 0``.

Then ``--clients`` threads do quorum writes (HTTP ``wait: {replicas: 1}``) concurrently
for ``--seconds``; we report the throughput and p99.  Target (issue 11): Synap quorum
write p99 within 1.5x of Redis SET+WAIT 1.

    .venv/bin/python bench/consistency_bench.py [--writes 2000] [--clients 50] [--seconds 5]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    HOST,
    RespClient,
    fmt_num,
    free_port,
    log,
    need_tools,
    percentile,
    print_table,
    redis_server,
    running,
    synap_server,
    verdict,
    workdir,
)

VALUE = "x" * 100


def timed(op: Callable[[int], None], n: int, warmup: int = 200) -> list[float]:
    for i in range(warmup):
        op(i)
    out = []
    for i in range(n):
        start = time.perf_counter()
        op(i)
        out.append((time.perf_counter() - start) * 1000)
    return out


def wait_synced(client: RespClient, replicas: int = 1, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client.call("SET", "__sync", "1")
        if client.call("WAIT", replicas, 500) >= replicas:
            return
    raise RuntimeError("replica did not sync")


def row(name: str, ms: list[float]) -> list[str]:
    return [
        name,
        fmt_num(percentile(ms, 50), "ms"),
        fmt_num(percentile(ms, 99), "ms"),
        fmt_num(max(ms), "ms"),
    ]


def concurrent_quorum(url: str, clients: int, seconds: float) -> tuple[float, list[float]]:
    lat: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    errors: list[str] = []

    def worker(i: int) -> None:
        mine: list[float] = []
        with httpx.Client(base_url=url, timeout=30) as c:
            j = 0
            while time.monotonic() < stop and j < 1_000_000:
                start = time.perf_counter()
                r = c.post(
                    "/kv/set",
                    json={"key": f"c{i}:{j}", "value": VALUE, "wait": {"replicas": 1}},
                )
                mine.append((time.perf_counter() - start) * 1000)
                if r.status_code != 200:
                    errors.append(r.text)
                j += 1
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    elapsed = time.monotonic() - began
    if errors:
        log(f"{len(errors)} quorum writes failed, first: {errors[0][:200]}")
    return len(lat) / elapsed, lat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    need_tools("redis-server")
    n = args.writes
    with workdir("consistency") as tmp:
        repl_port = free_port()
        master, http = synap_server(
            tmp,
            name="synap-master",
            role="master",
            replica_port=repl_port,
            extra=["--data-dir", str(tmp / "m")],
        )
        replica, _ = synap_server(
            tmp,
            name="synap-replica",
            role="replica",
            master=f"{HOST}:{repl_port}",
            extra=["--data-dir", str(tmp / "r")],
        )
        rmaster = redis_server(tmp, name="redis-master")
        rreplica = redis_server(tmp, name="redis-replica")
        with running(master, replica, rmaster, rreplica):
            rr = rreplica.client()
            rr.call("REPLICAOF", HOST, str(rmaster.resp_port))
            sm, rm = master.client(), rmaster.client()
            wait_synced(sm)
            wait_synced(rm)
            results: list[list[str]] = []
            with httpx.Client(base_url=f"http://{HOST}:{http}", timeout=30) as h:

                def http_set(i: int, wait: dict | None = None) -> None:
                    body: dict = {"key": f"h{i % 1000}", "value": VALUE}
                    if wait is not None:
                        body["wait"] = wait
                    r = h.post("/kv/set", json=body)
                    if r.status_code != 200:
                        raise RuntimeError(r.text)

                log("synap HTTP wait 0")
                results.append(row("Synap HTTP SET, wait 0", timed(http_set, n)))
                log("synap HTTP wait 1")
                results.append(
                    row(
                        "Synap HTTP SET, wait replicas 1",
                        timed(lambda i: http_set(i, {"replicas": 1, "timeout_ms": 5000}), n),
                    )
                )

            def resp_set(c: RespClient) -> Callable[[int], None]:
                return lambda i: c.call("SET", f"k{i % 1000}", VALUE)

            def resp_set_wait(c: RespClient) -> Callable[[int], None]:
                def op(i: int) -> None:
                    c.call("SET", f"k{i % 1000}", VALUE)
                    if c.call("WAIT", 1, 0) < 1:
                        raise RuntimeError("WAIT returned 0")

                return op

            log("RESP cases")
            results.append(row("Synap RESP SET", timed(resp_set(sm), n)))
            results.append(row("Redis SET", timed(resp_set(rm), n)))
            synap_wait = timed(resp_set_wait(sm), n)
            redis_wait = timed(resp_set_wait(rm), n)
            results.append(row("Synap RESP SET + WAIT 1 0", synap_wait))
            results.append(row("Redis SET + WAIT 1 0", redis_wait))
            print_table(
                f"SET latency, {n} sequential writes of 100 B, one client",
                ["case", "p50", "p99", "max"],
                results,
            )
            http_quorum = [r for r in results if r[0] == "Synap HTTP SET, wait replicas 1"][0]
            redis_p99 = percentile(redis_wait, 99)
            log(f"{args.clients} concurrent quorum writers for {args.seconds}s")
            rate, lat = concurrent_quorum(f"http://{HOST}:{http}", args.clients, args.seconds)
            print_table(
                f"{args.clients} concurrent HTTP quorum writers (wait replicas 1), {args.seconds:g} s",
                ["writes/s", "p50", "p99"],
                [
                    [
                        fmt_num(rate, "req/s"),
                        fmt_num(percentile(lat, 50), "ms"),
                        fmt_num(percentile(lat, 99), "ms"),
                    ]
                ],
            )
            ours = percentile(synap_wait, 99)
            print(
                "\nTarget: quorum-write p99 <= 1.5x Redis SET+WAIT 1 p99 -> RESP "
                + verdict(ours <= 1.5 * redis_p99, f"{ours:.2f} vs {redis_p99:.2f} ms")
                + f"; HTTP wait p99 {http_quorum[2]}"
            )


if __name__ == "__main__":
    main()
