"""``make run``: a local demo group of one master and two replicas on 127.0.0.1.

master   HTTP :5500  RESP :6379  SynapRPC :15500  replicas connect to :15501
replica1 HTTP :5501  RESP :6380  SynapRPC :15510
replica2 HTTP :5502  RESP :6381  SynapRPC :15520

Each node keeps its data under ``./demo-data/<name>``.  Ctrl-C stops all three.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

NODES = [
    (
        "master",
        [
            "--role",
            "master",
            "--replica-listen",
            "127.0.0.1:15501",
            "--port",
            "5500",
            "--resp-port",
            "6379",
            "--rpc-port",
            "15500",
        ],
    ),
    (
        "replica1",
        [
            "--role",
            "replica",
            "--master-address",
            "127.0.0.1:15501",
            "--port",
            "5501",
            "--resp-port",
            "6380",
            "--rpc-port",
            "15510",
        ],
    ),
    (
        "replica2",
        [
            "--role",
            "replica",
            "--master-address",
            "127.0.0.1:15501",
            "--port",
            "5502",
            "--resp-port",
            "6381",
            "--rpc-port",
            "15520",
        ],
    ),
]


def main() -> int:
    base = Path(os.environ.get("SYNAP_DEMO_DIR", "demo-data")).resolve()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, args in NODES:
            data_dir = base / name
            data_dir.mkdir(parents=True, exist_ok=True)
            cmd = [
                sys.executable,
                "-m",
                "synap",
                "--host",
                "127.0.0.1",
                "--data-dir",
                str(data_dir),
                *args,
            ]
            print(f"$ synap-server {' '.join(cmd[3:])}", flush=True)
            procs.append(subprocess.Popen(cmd))
            time.sleep(0.3)
        for port in (5500, 5501, 5502):
            _wait_healthy(port)
        print(
            "\nDemo group is up:\n"
            "  curl -s localhost:5500/api/replication/stats      # master\n"
            "  curl -s localhost:5501/api/replication/stats      # replica1\n"
            "  redis-cli -p 6379 set hello world && redis-cli -p 6380 get hello\n"
            "  synap-sdk: SynapConfig('synap://127.0.0.1:15500')  # master; replicas :15510 :15520\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("a node exited; stopping the demo", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def _wait_healthy(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"node on port {port} did not become healthy in {timeout:.0f}s")


if __name__ == "__main__":
    sys.exit(main())
