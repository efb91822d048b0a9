"""``make run``: a local demo group of one master and two replicas on 127.0.0.1.

========  ==========  ==========  ==========  =================
node      HTTP        RESP        SynapRPC    replica listener
========  ==========  ==========  ==========  =================
master    :5500       :6379       :15500      :15501
replica1  :5501       :6380       :15510      :15502
replica2  :5502       :6381       :15520      :15503
========  ==========  ==========  ==========  =================

Every node has its own replica listener, so any of them can be promoted (``synap-cli
promote`` / ``failover``) and the others repointed to it. Each node keeps its data under
``./demo-data/<name>`` and its PID in ``./demo-data/<name>.pid``. The demo keeps running
when a node dies (kill the master to practise ``synap-cli promote``); Ctrl-C or SIGTERM
stops every node. It exits non-zero, without starting anything, if a port is taken.

``SYNAP_DEMO_DIR`` moves the data (default ``./demo-data``); ``SYNAP_DEMO_PORT_OFFSET``
adds a number to every port (the tests run demos beside each other with it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx

HOST = "127.0.0.1"


def _nodes(offset: int) -> list[tuple[str, int, int, int, int, list[str]]]:
    """name, HTTP port, RESP port, SynapRPC port, replica listener port, role arguments."""
    master = f"{HOST}:{15501 + offset}"
    return [
        ("master", 5500 + offset, 6379 + offset, 15500 + offset, 15501 + offset,
         ["--role", "master"]),
        ("replica1", 5501 + offset, 6380 + offset, 15510 + offset, 15502 + offset,
         ["--role", "replica", "--master-address", master]),
        ("replica2", 5502 + offset, 6381 + offset, 15520 + offset, 15503 + offset,
         ["--role", "replica", "--master-address", master]),
    ]  # fmt: skip


NODES = _nodes(int(os.environ.get("SYNAP_DEMO_PORT_OFFSET", "0") or 0))
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class _Stop(Exception):
    """SIGTERM / SIGHUP: stop the demo like Ctrl-C does."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _ports_in_use() -> list[int]:
    taken: list[int] = []
    for _, *ports, _ in NODES:
        for port in ports:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                # As the nodes bind: a port left in TIME_WAIT by the last run is free.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((HOST, int(port)))
                except OSError:
                    taken.append(int(port))
    return sorted(taken)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the node gets SIGTERM if the demo dies without cleaning up (SIGKILL)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main() -> int:
    base = Path(os.environ.get("SYNAP_DEMO_DIR", "demo-data")).resolve()
    taken = _ports_in_use()
    if taken:
        print(
            f"error: port(s) {', '.join(map(str, taken))} on {HOST} are in use, so the demo "
            "cannot start. Is another `make run` (or synap-server) running? Stop it first "
            f"(Ctrl-C in its terminal, or kill the PIDs in {base}/*.pid)",
            file=sys.stderr,
            flush=True,
        )
        return 1
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, http, resp, rpc, listen, role_args in NODES:
            data_dir = base / name
            data_dir.mkdir(parents=True, exist_ok=True)
            args = [
                "--host", HOST, "--port", str(http), "--resp-port", str(resp), "--rpc-port", str(rpc),
                "--replica-listen", f"{HOST}:{listen}", "--data-dir", str(data_dir), *role_args,
            ]  # fmt: skip
            print(f"$ synap-server {' '.join(args)}", flush=True)
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "synap", *args],
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
            (base / f"{name}.pid").write_text(f"{procs[name].pid}\n")
            # One after the other: the replicas find a listening master (no reconnect
            # delay to sit out), and a client that waits for the last node's port
            # (the README's quick start) finds every node listening.
            problem = _wait_ready(procs[name], name, http)
            if problem:
                print(f"error: {problem}; stopping the demo", file=sys.stderr, flush=True)
                return 1
        problem = _wait_synced(procs, NODES[0][1], len(NODES) - 1)
        if problem:
            print(f"error: {problem}; stopping the demo", file=sys.stderr, flush=True)
            return 1
        pids = ", ".join(f"{name} {p.pid}" for name, p in procs.items())
        (m, mh, mr, mrpc, _, _), (_, r1h, r1r, r1rpc, _, _), (_, r2h, _, r2rpc, _, _) = NODES
        urls = f"--node localhost:{mh} --node localhost:{r1h} --node localhost:{r2h}"
        print(
            f"\nDemo group is up (PIDs: {pids}):\n"
            f"  curl -s localhost:{mh}/api/replication/stats      # master\n"
            f"  curl -s localhost:{r1h}/api/replication/stats      # replica1\n"
            f"  redis-cli -p {mr} set hello world && redis-cli -p {r1r} get hello\n"
            f"  synap-sdk: SynapConfig('synap://127.0.0.1:{mrpc}')  # replicas :{r1rpc} :{r2rpc}\n"
            f"  synap-cli replication status {urls}\n"
            f"Practise a failover: kill $(cat {base}/{m}.pid), then\n"
            f"  synap-cli promote {urls}\n"
            "Press Ctrl-C to stop every node.\n",
            flush=True,
        )
        return _watch(procs)
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        _stop_all(procs)
        for name in procs:
            (base / f"{name}.pid").unlink(missing_ok=True)


def _watch(procs: dict[str, subprocess.Popen[bytes]]) -> int:
    """Run until every node has exited; a node that exits is reported, the rest go on."""
    reported: set[str] = set()
    while True:
        for name, p in procs.items():
            code = p.poll()
            if code is not None and name not in reported:
                reported.add(name)
                left = [n for n, q in procs.items() if q.poll() is None]
                print(
                    f"demo: {name} (pid {p.pid}) exited with code {code}; still running: "
                    f"{', '.join(left) or 'none'}",
                    file=sys.stderr,
                    flush=True,
                )
        if len(reported) == len(procs):
            print("demo: every node has exited", file=sys.stderr, flush=True)
            return 1
        time.sleep(0.2)


def _stop_all(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    # Signals that arrive while stopping must not interrupt the clean-up.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for p in procs.values():
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def _wait_synced(procs: dict[str, subprocess.Popen[bytes]], port: int, count: int) -> str | None:
    """None once the master lists ``count`` streaming replicas; else why not."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    online = 0
    while time.monotonic() < deadline:
        dead = [name for name, p in procs.items() if p.poll() is not None]
        if dead:
            return f"{', '.join(dead)} exited before the group was in sync"
        try:
            stats = httpx.get(f"http://{HOST}:{port}/api/replication/stats", timeout=1).json()
            online = sum(1 for r in stats.get("replicas", []) if r.get("state") == "online")
            if online >= count:
                return None
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    return f"only {online} of {count} replicas in sync after {READY_TIMEOUT_S:.0f}s"


def _wait_ready(proc: subprocess.Popen[bytes], name: str, port: int) -> str | None:
    """None once the node answers /health; else why it never will."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            return f"{name} exited with code {code} before it was ready (see its output above)"
        try:
            if httpx.get(f"http://{HOST}:{port}/health/live", timeout=1).status_code == 200:
                return None
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return f"{name} did not answer on port {port} within {READY_TIMEOUT_S:.0f}s"


if __name__ == "__main__":
    sys.exit(main())
