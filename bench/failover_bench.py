"""Planned failover time: ``synap-cli failover`` against Redis ``FAILOVER``, in the same run.

Each side runs a master and one replica (ours with ``python -m synap``, Redis with
Debian's ``redis-server``), started by this script on free loopback ports and stopped by
PID. The dataset is ``--keys`` keys of 100 bytes, and a client writes to whichever
node is the master (about 1000 writes/s, switching on READONLY) during every
measurement. Repetitions alternate the direction (A->B, then B->A) and interleave the
two systems, so that machine drift hits both.

Measured per failover:

* **to first write**: from the start of the failover command to the first write
  accepted by the new master (polled with SET on a separate connection);
* **command done**: until ``synap-cli`` exits (every node repointed and checked), or
  for Redis until both nodes report ``master_failover_state:no-failover`` and a link up;
* **write gap**: the longest time the background writer went without an acknowledged
  write (the unavailability a client sees).

Two ways to start it: ``cli`` runs the command-line tool as a new process (``synap-cli
failover`` / ``redis-cli FAILOVER``; includes interpreter start-up, ~0.3 s for Python),
``api`` calls it from this process (``synap.failover.run_failover`` / ``FAILOVER`` on an
open connection).

    .venv/bin/python bench/failover_bench.py [--reps 8] [--keys 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from _common import (  # noqa: E402
    HOST,
    PYTHON,
    RespClient,
    RespError,
    Server,
    free_port,
    load_keys,
    log,
    median,
    need_tools,
    percentile,
    print_table,
    redis_server,
    running,
    synap_server,
    workdir,
)

from synap.failover import run_failover  # noqa: E402

SYNAP_CLI = shutil.which("synap-cli", path=str(Path(PYTHON).parent)) or "synap-cli"
STEP_TIMEOUT_S = 30.0
WRITER_PACE_S = 0.001


class Node:
    """One side of a pair: RESP port, plus HTTP URL for Synap or the port for Redis."""

    def __init__(self, server: Server, http: int | None = None) -> None:
        self.server = server
        self.port = server.resp_port
        self.url = f"http://{HOST}:{http}" if http else ""


class GapWriter(threading.Thread):
    """Writes to the current master every ``WRITER_PACE_S``; on READONLY it moves to the
    other node. Records the longest time between two acknowledged writes."""

    def __init__(self, nodes: list[Node], master: int) -> None:
        super().__init__(daemon=True)
        self.nodes = nodes
        self.master = master
        self.stop_event = threading.Event()
        self.max_gap = 0.0
        self.acked = 0
        self.error: str | None = None

    def run(self) -> None:
        clients = [RespClient(n.port, timeout=STEP_TIMEOUT_S) for n in self.nodes]
        last_ok = time.perf_counter()
        i = 0
        try:
            while not self.stop_event.is_set():
                i += 1
                try:
                    clients[self.master].call("SET", f"bench:w:{i % 1000}", i)
                except RespError as exc:
                    if str(exc).startswith("READONLY"):
                        self.master = 1 - self.master
                    elif not str(exc).startswith("TRYAGAIN"):
                        raise
                    time.sleep(0.0002)
                    continue
                now = time.perf_counter()
                self.max_gap = max(self.max_gap, now - last_ok)
                last_ok = now
                self.acked += 1
                time.sleep(WRITER_PACE_S)
        except Exception as exc:  # reported by the caller
            self.error = repr(exc)
        finally:
            for c in clients:
                c.close()


def first_write(port: int, started: float) -> float:
    """Seconds from ``started`` until SET succeeds on ``port``."""
    client = RespClient(port, timeout=STEP_TIMEOUT_S)
    try:
        deadline = started + STEP_TIMEOUT_S
        while True:
            try:
                client.call("SET", "bench:probe", "1")
                return time.perf_counter() - started
            except RespError:
                if time.perf_counter() > deadline:
                    raise RuntimeError("the new master never accepted a write") from None
                time.sleep(0.0002)
    finally:
        client.close()


def measure(
    nodes: list[Node],
    master: int,
    start: Callable[[], Callable[[], None]],
    settle: Callable[[int], None],
) -> dict[str, float]:
    """One failover from ``nodes[master]`` to the other node under the gap writer.

    ``start()`` launches the failover and returns a function that waits for it to
    finish; ``settle(new_master)`` waits until the pair is healthy again."""
    writer = GapWriter(nodes, master)
    writer.start()
    time.sleep(0.2)  # the load is on
    t0 = time.perf_counter()
    finish = start()
    to_write = first_write(nodes[1 - master].port, t0)
    finish()
    done = time.perf_counter() - t0
    settle(1 - master)
    time.sleep(0.1)
    writer.stop_event.set()
    writer.join(10)
    if writer.error:
        raise RuntimeError(f"writer failed: {writer.error}")
    return {"first_write": to_write, "done": done, "gap": writer.max_gap}


# --------------------------------------------------------------------------- synap


def synap_pair(tmp: Path) -> tuple[list[Node], list[int]]:
    rports = [free_port(), free_port()]
    a, a_http = synap_server(tmp, name="synap-a", role="master", replica_port=rports[0])
    b, b_http = synap_server(
        tmp,
        name="synap-b",
        role="replica",
        master=f"{HOST}:{rports[0]}",
        replica_port=rports[1],
        extra=["--config", str(_synap_config(tmp))],
    )
    return [Node(a, a_http), Node(b, b_http)], rports


def _synap_config(tmp: Path) -> Path:
    path = tmp / "synap.yml"
    # A repointed node reconnects after reconnect_delay_ms; keep it short as in Redis,
    # whose replicas reconnect on the next 1 s cron tick at most.
    path.write_text("replication:\n  reconnect_delay_ms: 100\n")
    return path


def synap_settle(nodes: list[Node], master: int) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    with httpx.Client(timeout=5) as http:
        while time.monotonic() < deadline:
            m = http.get(nodes[master].url + "/api/replication/stats").json()
            r = http.get(nodes[1 - master].url + "/api/replication/stats").json()
            if (
                m["role"] == "master"
                and r.get("connected")
                and r["replication_id"] == m["replication_id"]
                and r["replica_offset"] == m["master_offset"]
            ):
                return
            time.sleep(0.02)
    raise RuntimeError("synap pair did not settle")


def synap_start(nodes: list[Node], master: int, mode: str) -> Callable[[], None]:
    src, dst = nodes[master].url, nodes[1 - master].url
    if mode == "cli":
        proc = subprocess.Popen(
            [SYNAP_CLI, "failover", "--node", src, "--to", dst, "--timeout", "10"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

        def wait_cli() -> None:
            out, _ = proc.communicate(timeout=STEP_TIMEOUT_S)
            if proc.returncode != 0:
                raise RuntimeError(f"synap-cli failover failed:\n{out.decode()}")

        return wait_cli
    result: dict[str, Any] = {}
    lines: list[str] = []
    thread = threading.Thread(
        target=lambda: result.update(ok=run_failover(src, dst, 10.0, None, lines.append))
    )
    thread.start()

    def wait_api() -> None:
        thread.join(STEP_TIMEOUT_S)
        if not result.get("ok"):
            raise RuntimeError("run_failover failed:\n" + "\n".join(lines))

    return wait_api


# --------------------------------------------------------------------------- redis


def redis_pair(tmp: Path) -> list[Node]:
    a = redis_server(tmp, name="redis-a")
    b = redis_server(tmp, name="redis-b", extra=["--replicaof", HOST, str(a.resp_port)])
    nodes = [Node(a), Node(b)]
    redis_settle(nodes, 0)
    return nodes


def redis_settle(nodes: list[Node], master: int) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        m = nodes[master].server.client()
        r = nodes[1 - master].server.client()
        try:
            mi, ri = m.info("replication"), r.info("replication")
        finally:
            m.close()
            r.close()
        if (
            mi.get("role") == "master"
            and mi.get("master_failover_state") == "no-failover"
            and ri.get("master_link_status") == "up"
            and ri.get("slave_repl_offset") == mi.get("master_repl_offset")
        ):
            return
        time.sleep(0.02)
    raise RuntimeError("redis pair did not settle")


def redis_start(nodes: list[Node], master: int, mode: str) -> Callable[[], None]:
    src, dst = nodes[master], nodes[1 - master]
    args = ["FAILOVER", "TO", HOST, str(dst.port), "TIMEOUT", "10000"]
    if mode == "cli":
        out = subprocess.run(
            ["redis-cli", "-h", HOST, "-p", str(src.port), *args],
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
        )
        if out.stdout.strip() != "OK":
            raise RuntimeError(f"redis-cli FAILOVER: {out.stdout} {out.stderr}")
    else:
        client = src.server.client()
        try:
            client.call(*args)
        finally:
            client.close()

    def wait_done() -> None:  # FAILOVER answers at once and works in the background
        redis_settle(nodes, 1 - master)

    return wait_done


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=8, help="failovers per system and mode")
    parser.add_argument("--keys", type=int, default=10_000)
    opts = parser.parse_args()
    need_tools("redis-server", "redis-cli")

    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with workdir("failover") as tmp:
        synap_nodes, _ = synap_pair(tmp)
        redis_nodes = redis_pair(tmp)
        servers = [n.server for n in synap_nodes + redis_nodes]
        with running(*servers):
            load_keys(synap_nodes[0].port, opts.keys)
            load_keys(redis_nodes[0].port, opts.keys)
            synap_settle(synap_nodes, 0)
            redis_settle(redis_nodes, 0)
            masters = {"synap": 0, "redis": 0}
            for rep in range(opts.reps):
                for mode in ("cli", "api"):
                    for system in ("synap", "redis") if rep % 2 == 0 else ("redis", "synap"):
                        m = masters[system]
                        if system == "synap":
                            r = measure(
                                synap_nodes,
                                m,
                                functools.partial(synap_start, synap_nodes, m, mode),
                                functools.partial(synap_settle, synap_nodes),
                            )
                        else:
                            r = measure(
                                redis_nodes,
                                m,
                                functools.partial(redis_start, redis_nodes, m, mode),
                                functools.partial(redis_settle, redis_nodes),
                            )
                        masters[system] = 1 - m
                        results.setdefault((system, mode), []).append(r)
                        log(
                            f"rep {rep} {system:5} {mode}: first write "
                            f"{r['first_write'] * 1000:.1f} ms, done {r['done'] * 1000:.1f} ms, "
                            f"gap {r['gap'] * 1000:.1f} ms"
                        )

    rows = []
    for mode, label in (("cli", "CLI process"), ("api", "in-process")):
        for metric, what in (
            ("first_write", "start -> first write on new master"),
            ("done", "start -> command done"),
            ("gap", "longest write gap seen by a client"),
        ):
            s = [r[metric] * 1000 for r in results[("synap", mode)]]
            rd = [r[metric] * 1000 for r in results[("redis", mode)]]
            rows.append(
                [
                    f"{what} ({label})",
                    f"{median(s):.1f} / {percentile(s, 90):.1f}",
                    f"{median(rd):.1f} / {percentile(rd, 90):.1f}",
                    f"{median(s) / median(rd):.2f}x" if median(rd) else "n/a",
                ]
            )
    print_table(
        f"Planned failover, {opts.keys} keys, light write load, {opts.reps} failovers each "
        "(median / p90, ms)",
        ["measure", "Synap", "Redis FAILOVER", "Synap / Redis"],
        rows,
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
