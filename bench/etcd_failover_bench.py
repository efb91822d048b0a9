"""Unplanned failover: Synap's etcd election beside Redis Sentinel, in the same run.

Each repetition starts, on free loopback ports, a group of three of each system: Synap
(one etcd, three ``synap-server --etcd-endpoints`` nodes, lease TTL 3 s) and Redis
(Debian ``redis-server``: a master, two replicas, three ``redis-server --sentinel`` with
quorum 2 and ``down-after-milliseconds`` 3000, a detection time comparable to the 3 s
lease). A writer thread sends ``SET`` to the master without pause; the master is
SIGKILLed; we measure the time from the kill to the first write acknowledged by the new
master (found through ``GET /api/replication/leader`` / ``SENTINEL
get-master-addr-by-name``), the full syncs the survivors needed, and the acknowledged
writes missing from the new master (asynchronous replication loses some; reported, not
hidden).

    .venv/bin/python bench/etcd_failover_bench.py [--reps 3]

Needs ``apt-get install etcd-server redis-server redis-tools``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    HOST,
    PYTHON,
    RespClient,
    RespError,
    Server,
    free_port,
    log,
    median,
    print_table,
    redis_server,
    workdir,
)

TTL = 3
DOWN_AFTER_MS = 3000
GROUP = "bench"
TIMEOUT_S = 30.0


class Etcd:
    def __init__(self, tmp: Path) -> None:
        self.port, peer = free_port(), free_port()
        url, peer_url = f"http://{HOST}:{self.port}", f"http://{HOST}:{peer}"
        self.url = url
        argv = ["etcd", "--name", "b", "--data-dir", str(tmp / "etcd-data")]
        argv += ["--listen-client-urls", url, "--advertise-client-urls", url]
        argv += ["--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url]
        argv += ["--initial-cluster", f"b={peer_url}", "--log-level", "warn"]
        self._log = open(tmp / "etcd.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if httpx.get(f"{url}/health", timeout=1).json().get("health") == "true":
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("etcd did not become healthy")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


class Writer(threading.Thread):
    """SETs w<n> to whatever ``target()`` names, as fast as it can; keeps the acked keys."""

    def __init__(self, target: Any) -> None:
        super().__init__(daemon=True)
        self.target = target
        self.acked: list[bytes] = []
        self.stop_flag = threading.Event()

    def run(self) -> None:
        n = 0
        client: RespClient | None = None
        port = None
        while not self.stop_flag.is_set() and n < 10_000_000:
            try:
                wanted = self.target()
                if wanted != port or client is None:
                    if client is not None:
                        client.close()
                    port, client = wanted, RespClient(wanted, timeout=1.0)
                n += 1
                key = b"w%d" % n
                if client.call("SET", key, b"x") == b"OK":
                    self.acked.append(key)
            except (OSError, RespError, ConnectionError):
                if client is not None:
                    client.close()
                client = None
                time.sleep(0.01)


def first_write_after(kill_at: float, find_master: Any, old_port: int) -> tuple[float, int]:
    """Seconds from the kill to the first SET acknowledged by a new master, and its port."""
    deadline = kill_at + TIMEOUT_S
    while time.monotonic() < deadline:
        port = None
        with contextlib.suppress(Exception):
            port = find_master()
        if port and port != old_port:
            with contextlib.suppress(OSError, RespError, ConnectionError):
                c = RespClient(port, timeout=1.0)
                try:
                    if c.call("SET", "probe", "1") == b"OK":
                        return time.monotonic() - kill_at, port
                finally:
                    c.close()
        time.sleep(0.01)
    raise RuntimeError("no new master accepted a write")


def missing(port: int, keys: list[bytes]) -> int:
    c = RespClient(port, timeout=10)
    try:
        lost = 0
        for i in range(0, len(keys), 1000):
            batch = keys[i : i + 1000]
            lost += sum(1 for v in c.call("MGET", *batch) if v is None)
        return lost
    finally:
        c.close()


# ------------------------------------------------------------------------------- synap


def synap_rep(tmp: Path) -> dict[str, float]:
    etcd = Etcd(tmp)
    nodes: list[tuple[Server, int]] = []
    cfg = tmp / "failover.yml"
    cfg.write_text(f"replication:\n  failover:\n    lease_ttl_secs: {TTL}\n")
    try:
        for i in range(3):
            http, resp, repl = free_port(), free_port(), free_port()
            argv = [PYTHON, "-m", "synap", "--config", str(cfg), "--host", HOST]
            argv += ["--port", str(http), "--resp-port", str(resp), "--log-level", "warning"]
            argv += ["--role", "master", "--replica-listen", f"{HOST}:{repl}"]
            argv += ["--etcd-endpoints", etcd.url, "--group", GROUP]
            argv += ["--data-dir", str(tmp / f"n{i}")]
            nodes.append((Server(f"synap{i}", argv, resp, tmp).wait_ready(), http))

        def leader(http_ports: list[int]) -> int | None:
            for port in http_ports:
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    r = httpx.get(f"http://{HOST}:{port}/api/replication/leader", timeout=1)
                    if r.status_code == 200:
                        return int(r.json()["master"]["resp_address"].rsplit(":", 1)[1])
            return None

        all_http = [h for _, h in nodes]
        deadline = time.monotonic() + TIMEOUT_S
        while (master_port := leader(all_http)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("no Synap master elected")
            time.sleep(0.1)
        master = next(s for s, _ in nodes if s.resp_port == master_port)
        survivors = [(s, h) for s, h in nodes if s is not master]
        writer = Writer(lambda: master_port)
        writer.start()
        time.sleep(2.0)  # replicas streaming under load
        stats0 = [
            httpx.get(f"http://{HOST}:{h}/api/replication/stats").json() for _, h in survivors
        ]
        kill_at = time.monotonic()
        os.kill(master.pid, signal.SIGKILL)
        elapsed, new_port = first_write_after(
            kill_at, lambda: leader([h for _, h in survivors]), master_port
        )
        writer.stop_flag.set()
        writer.join(5)
        time.sleep(1.0)  # the other survivor catches up
        stats1 = [
            httpx.get(f"http://{HOST}:{h}/api/replication/stats").json() for _, h in survivors
        ]
        full = sum(b["full_syncs"] - a["full_syncs"] for a, b in zip(stats0, stats1, strict=True))
        return {
            "first_write": elapsed,
            "full_syncs": float(full),
            "acked": float(len(writer.acked)),
            "lost": float(missing(new_port, writer.acked)),
        }
    finally:
        for server, _ in nodes:
            server.stop()
        etcd.stop()


# ------------------------------------------------------------------------------- redis


def sentinel(tmp: Path, name: str, master_port: int) -> Server:
    port = free_port()
    conf = tmp / f"{name}.conf"
    conf.write_text(
        f"port {port}\nbind {HOST}\nprotected-mode no\ndir {tmp}\n"
        f"sentinel monitor m {HOST} {master_port} 2\n"
        f"sentinel down-after-milliseconds m {DOWN_AFTER_MS}\n"
        "sentinel failover-timeout m 10000\nsentinel parallel-syncs m 2\n"
    )
    argv = ["redis-server", str(conf), "--sentinel", "--logfile", str(tmp / f"{name}.log")]
    return Server(name, argv, port, tmp).wait_ready()


def redis_rep(tmp: Path) -> dict[str, float]:
    # No 5 s wait before a diskless full sync (Redis's default), on any node.
    fast = ["--repl-diskless-sync-delay", "0"]
    master = redis_server(tmp, name="rmaster", extra=fast)
    replicas = [
        redis_server(
            tmp, name=f"rrep{i}", extra=[*fast, "--replicaof", HOST, str(master.resp_port)]
        )
        for i in range(2)
    ]
    sentinels: list[Server] = []
    try:
        deadline = time.monotonic() + TIMEOUT_S
        for r in replicas:  # both replicas synced before the sentinels start
            while True:
                c = r.client()
                up = c.info("replication").get("master_link_status") == "up"
                c.close()
                if up:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("Redis replicas did not sync")
                time.sleep(0.1)
        sentinels = [sentinel(tmp, f"sent{i}", master.resp_port) for i in range(3)]
        deadline = time.monotonic() + TIMEOUT_S
        while True:  # sentinels know both replicas and each other
            c = sentinels[0].client()
            state = c.call("SENTINEL", "MASTER", "m")
            c.close()
            fields = dict(zip(state[::2], state[1::2], strict=True))
            if int(fields[b"num-slaves"]) == 2 and int(fields[b"num-other-sentinels"]) == 2:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"sentinels not ready: {fields}")
            time.sleep(0.2)

        def ask() -> int | None:
            for s in sentinels:
                with contextlib.suppress(OSError, RespError, ConnectionError):
                    c = s.client(timeout=1.0)
                    try:
                        addr = c.call("SENTINEL", "get-master-addr-by-name", "m")
                    finally:
                        c.close()
                    if addr:
                        return int(addr[1])
            return None

        def sync_full() -> int:
            total = 0
            for r in replicas:
                c = r.client()
                total += int(c.info("stats")["sync_full"])
                c.close()
            return total

        writer = Writer(lambda: master.resp_port)
        writer.start()
        time.sleep(2.0)
        full0 = sync_full()
        kill_at = time.monotonic()
        os.kill(master.pid, signal.SIGKILL)
        elapsed, new_port = first_write_after(kill_at, ask, master.resp_port)
        writer.stop_flag.set()
        writer.join(5)
        time.sleep(2.0)  # the other replica is reconfigured and syncs
        return {
            "first_write": elapsed,
            "full_syncs": float(sync_full() - full0),
            "acked": float(len(writer.acked)),
            "lost": float(missing(new_port, writer.acked)),
        }
    finally:
        for s in [*sentinels, *replicas, master]:
            s.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    opts = parser.parse_args()
    for tool in ("etcd", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(f"missing {tool}: apt-get install etcd-server redis-server redis-tools")
    results: dict[str, list[dict[str, float]]] = {"synap": [], "redis": []}
    for rep in range(opts.reps):
        for system in ("synap", "redis") if rep % 2 == 0 else ("redis", "synap"):
            with workdir(f"etcd-failover-{system}") as tmp:
                r = synap_rep(tmp) if system == "synap" else redis_rep(tmp)
            results[system].append(r)
            log(
                f"rep {rep} {system}: first write {r['first_write']:.2f}s, full syncs "
                f"{r['full_syncs']:.0f}, lost {r['lost']:.0f} of {r['acked']:.0f} acked"
            )

    def col(system: str, key: str, fmt: str) -> str:
        values = [r[key] for r in results[system]]
        return f"{median(values):{fmt}} (min {min(values):{fmt}}, max {max(values):{fmt}})"

    print_table(
        f"Unplanned failover, 3 nodes, SIGKILL of the master under write load "
        f"({opts.reps} reps; Synap lease TTL {TTL}s, Sentinel down-after {DOWN_AFTER_MS} ms)",
        ["measure (median)", "Synap + etcd", "Redis Sentinel"],
        [
            [
                "kill → first acknowledged write on the new master (s)",
                col("synap", "first_write", ".2f"),
                col("redis", "first_write", ".2f"),
            ],
            [
                "full syncs of the two survivors",
                col("synap", "full_syncs", ".0f"),
                col("redis", "full_syncs", ".0f"),
            ],
            [
                "acknowledged writes lost",
                col("synap", "lost", ".0f"),
                col("redis", "lost", ".0f"),
            ],
            [
                "writes acknowledged in the run",
                col("synap", "acked", ".0f"),
                col("redis", "acked", ".0f"),
            ],
        ],
    )


if __name__ == "__main__":
    main()
