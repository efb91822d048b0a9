"""Shared plumbing for the benchmarks: tool checks, free ports, server processes that are
started and stopped by PID, a small blocking RESP client, medians and result tables.

Every benchmark starts its own servers on free loopback ports (ours with ``python -m
synap``, Redis with Debian's ``redis-server``), bounds every load by a count and by
``timeout``, and stops every process it started by its PID, also when it fails.

Needs ``apt-get install redis-server redis-tools wrk`` (the package's own Redis service
is not used) and ``util-linux`` for ``taskset``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import hiredis

T = TypeVar("T")  # what a server start returns beside the Server

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
APT_HINT = "apt-get install redis-server redis-tools wrk"
READY_TIMEOUT_S = 30.0
# On this machine's 2 cores: the server on CPU 0 and the load generator on CPU 1.
SERVER_CPU = "0"
CLIENT_CPU = "1"


def need_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: install with `{APT_HINT}`")


def can_pin() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pinned(argv: Sequence[str], cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if cpu is not None and can_pin() else list(argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# ------------------------------------------------------------------------------- RESP


class RespError(Exception):
    pass


class RespClient:
    """A blocking RESP2 client (hiredis parses the replies). Enough for probes and loading."""

    def __init__(self, port: int, host: str = HOST, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader()

    @staticmethod
    def encode(args: Sequence[bytes | str | int]) -> bytes:
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(parts)

    def _read(self) -> Any:
        while True:
            reply = self.reader.gets()
            if reply is not False:
                return reply
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("server closed the connection")
            self.reader.feed(data)

    def call(self, *args: bytes | str | int) -> Any:
        self.sock.sendall(self.encode(args))
        reply = self._read()
        if isinstance(reply, hiredis.ReplyError):
            raise RespError(str(reply))
        return reply

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_replies(self, count: int) -> list[Any]:
        return [self._read() for _ in range(count)]

    def info(self, section: str = "") -> dict[str, str]:
        text = self.call("INFO", section) if section else self.call("INFO")
        out: dict[str, str] = {}
        for line in text.decode().splitlines():
            key, sep, value = line.partition(":")
            if sep:
                out[key.strip()] = value.strip()
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def wait_resp(
    port: int, timeout: float = READY_TIMEOUT_S, alive: Callable[[], bool] = lambda: True
) -> None:
    """Wait for a PING answer on ``port``; give up early once ``alive()`` says the
    server's process is gone."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline and alive():
        try:
            c = RespClient(port, timeout=2)
            try:
                if c.call("PING") in (b"PONG", "PONG"):
                    return
            finally:
                c.close()
        except (OSError, RespError, ConnectionError) as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"no RESP server on {HOST}:{port} after {timeout}s ({last})")


def load_keys(port: int, nkeys: int, value_size: int = 100, batch: int = 1000) -> float:
    """Fill ``key:%08d`` -> ``value_size`` bytes with pipelined MSET batches; returns seconds."""
    client = RespClient(port, timeout=120)
    value = b"v" * value_size
    started = time.perf_counter()
    inflight = 0
    try:
        for first in range(0, nkeys, batch):
            args: list[bytes | str | int] = ["MSET"]
            for i in range(first, min(first + batch, nkeys)):
                args += [b"key:%08d" % i, value]
            client.send_raw(RespClient.encode(args))
            inflight += 1
            if inflight >= 16:  # 16 batches in flight: a pipeline that never stalls long
                for r in client.read_replies(inflight):
                    if isinstance(r, hiredis.ReplyError):
                        raise RespError(str(r))
                inflight = 0
        for r in client.read_replies(inflight):
            if isinstance(r, hiredis.ReplyError):
                raise RespError(str(r))
    finally:
        client.close()
    return time.perf_counter() - started


# ---------------------------------------------------------------------------- servers


class Server:
    """One server process, stopped by its PID (SIGTERM, then SIGKILL)."""

    def __init__(self, name: str, argv: list[str], resp_port: int, workdir: Path) -> None:
        self.name = name
        self.resp_port = resp_port
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True
        )
        self.pid = self.proc.pid
        self.exited_early = False  # (wait_ready: the process ended before it answered)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> Server:
        try:
            wait_resp(self.resp_port, timeout, alive=lambda: self.proc.poll() is None)
        except RuntimeError:
            self.exited_early = self.proc.poll() is not None
            self.stop()
            raise RuntimeError(f"{self.name} did not start; log:\n{self.log_tail()}") from None
        return self

    def client(self, timeout: float = 10.0) -> RespClient:
        return RespClient(self.resp_port, timeout=timeout)

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


def synap_server(
    workdir: Path,
    *,
    name: str = "synap",
    cpu: str | None = None,
    role: str | None = None,
    master: str | None = None,
    replica_port: int | None = None,
    extra: Sequence[str] = (),
    http_port: int | None = None,
    rpc_port: int = 0,
) -> tuple[Server, int]:
    """Start ``python -m synap`` (standalone unless ``role``); returns (server, http port).
    SynapRPC is off unless ``rpc_port`` is given."""

    def attempt() -> tuple[Server, int]:
        resp_port = free_port()
        http = http_port if http_port is not None else free_port()
        argv = [PYTHON, "-m", "synap", "--host", HOST, "--port", str(http)]
        argv += ["--resp-port", str(resp_port), "--rpc-port", str(rpc_port)]
        argv += ["--log-level", "warning"]
        if role:
            argv += ["--role", role]
        if master:
            argv += ["--master-address", master]
        if replica_port is not None:
            argv += ["--replica-listen", f"{HOST}:{replica_port}"]
        argv += list(extra)
        return Server(name, pinned(argv, cpu), resp_port, workdir), http

    return start_retrying(attempt)


def start_retrying(attempt: Callable[[], tuple[Server, T]], tries: int = 3) -> tuple[Server, T]:
    """``attempt()`` starts a server on ports free_port() picked; should the process exit
    before it is ready (a port taken meanwhile, e.g. as a client's ephemeral port, by
    the time it binds), try again on new ports, up to ``tries`` times."""
    for left in range(tries - 1, -1, -1):
        server, extra = attempt()
        try:
            return server.wait_ready(), extra
        except RuntimeError:
            if left == 0 or not server.exited_early:
                raise
            log(f"{server.name} exited before it was ready; starting it again on new ports")
    raise AssertionError("unreachable")


def redis_server(
    workdir: Path, *, name: str = "redis", cpu: str | None = None, extra: Sequence[str] = ()
) -> Server:
    rdir = workdir / name
    rdir.mkdir(exist_ok=True)

    def attempt() -> tuple[Server, None]:
        port = free_port()
        argv = ["redis-server", "--bind", HOST, "--port", str(port), "--save", ""]
        argv += ["--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"]
        argv += ["--dir", str(rdir), "--logfile", str(rdir / "redis.log")]
        argv += ["--enable-debug-command", "local", *extra]
        return Server(name, pinned(argv, cpu), port, workdir), None

    return start_retrying(attempt)[0]


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"synap-bench-{prefix}-") as d:
        yield Path(d)


@contextlib.contextmanager
def running(*servers: Server) -> Iterator[None]:
    try:
        yield
    finally:
        for s in servers:
            s.stop()


# ----------------------------------------------------------------------- redis-benchmark


def redis_benchmark(
    port: int,
    test: str,
    n: int,
    *,
    clients: int = 50,
    pipeline: int = 1,
    size: int = 100,
    keyspace: int = 100_000,
    cpu: str | None = None,
    timeout: float = 120,
) -> dict[str, float]:
    """Run one redis-benchmark test; returns rps and latency percentiles (ms)."""
    argv = ["redis-benchmark", "-h", HOST, "-p", str(port), "--csv", "-t", test, "-n", str(n)]
    argv += ["-c", str(clients), "-P", str(pipeline), "-d", str(size), "-r", str(keyspace)]
    out = subprocess.run(
        ["timeout", str(int(timeout)), *pinned(argv, cpu)],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in out.stdout.splitlines():
        cells = [c.strip('"') for c in line.split('","')]
        if cells and cells[0].upper() == test.upper():
            return {
                "rps": float(cells[1]),
                "avg_ms": float(cells[2]),
                "p50_ms": float(cells[4]),
                "p99_ms": float(cells[6]),
            }
    raise RuntimeError(f"redis-benchmark gave no result for {test}: {out.stdout!r} {out.stderr!r}")


# --------------------------------------------------------------------------- output


def fmt_num(value: float, unit: str = "") -> str:
    if value != value:  # NaN
        return "n/a"
    if unit in ("ops/s", "req/s", "rec/s"):
        if value >= 1e6:
            return f"{value / 1e6:.2f}M"
        return f"{value / 1e3:.1f}k"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"
    if unit == "B":
        return f"{value:.0f} B"
    return f"{value:g}"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Print (and return) a Markdown table."""
    lines = [f"\n### {title}\n", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def verdict(ok: bool, detail: str) -> str:
    return f"met ({detail})" if ok else f"MISSED ({detail})"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
