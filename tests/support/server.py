"""Run real ``synap-server`` processes in tests.

``SynapProcess`` owns one server process: its ports (reserved for the object's lifetime, so
``restart()`` comes back on the same ones), its data directory ``<base>/<name>``, its log
``<base>/<name>.log`` (stdout and stderr of every run, appended) and clients for its HTTP and
RESP ports. ``NodeFactory`` (the ``node_factory`` fixture in ``tests/conftest.py``) starts
nodes for one test and kills every one of them at teardown.

Every server is started as ``python -m synap --host 127.0.0.1 --port P --resp-port R
--rpc-port S --data-dir <base>/<name> [--config F] [--role ...] [--master-address H:P]
[--replica-listen 127.0.0.1:P] [--auto-reconnect true|false] [extra args]`` with
cwd ``<base>``. On Linux the child is also told to die with the thread that started it
(``PR_SET_PDEATHSIG``), so a test run that is itself killed does not leak servers.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx
import redis
import yaml

from .faultproxy import FaultProxy
from .ports import HOST, release_port, reserve_ports

Role = Literal["master", "replica", "standalone"]

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 60

_T = TypeVar("_T")

# Runs in the child before the server: ask the kernel to SIGKILL us when the thread that
# forked us dies, then become the server (execvp keeps the pid). argv: ppid, command...
_LAUNCHER = """\
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    os._exit(70)  # the parent died before prctl took effect
os.execvp(sys.argv[2], sys.argv[2:])
"""


class SynapProcessError(AssertionError):
    """A server did not start, did not become ready, or did not stop (message has its log)."""


class WaitTimeout(AssertionError):
    """``wait_for`` ran out of time."""


def _default_command() -> list[str]:
    return [sys.executable, "-m", "synap"]


def _address(ref: SynapProcess | FaultProxy | tuple[str, int] | str) -> str:
    """``host:port`` of a master's replication listener, given a node, proxy, pair or string."""
    if isinstance(ref, SynapProcess):
        if ref.replica_port is None:
            raise ValueError(f"{ref.name} has no replication listener (start it as a master)")
        return ref.replica_address
    if isinstance(ref, FaultProxy):
        return ref.address
    if isinstance(ref, tuple):
        host, port = ref
        return f"{host}:{port}"
    return ref


class SynapProcess:
    """One ``synap-server`` process for a test; see the module docstring."""

    def __init__(
        self,
        base_dir: Path | str,
        name: str = "node",
        *,
        role: Role | None = None,
        master_address: SynapProcess | FaultProxy | tuple[str, int] | str | None = None,
        replica_listen: bool | None = None,
        auto_reconnect: bool | None = None,
        config: Mapping[str, Any] | Path | str | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        persistence: bool = True,
    ) -> None:
        """Prepare (not start) a node.

        ``role``: passed as ``--role`` when given. ``master_address``: the master's
        replication listener (a node, a FaultProxy in front of it, ``(host, port)`` or
        ``"host:port"``). ``replica_listen``: reserve a port and pass ``--replica-listen``;
        defaults to ``role == "master"``. ``config``: a mapping (written as YAML to
        ``<base>/<name>.yml``) or the path of a config file; passed as ``--config``.
        ``args``: extra CLI arguments, appended last. ``env``: extra environment variables.
        ``command``: what to run instead of ``python -m synap`` (for harness tests).
        ``persistence``: False runs the node without ``--data-dir`` (memory only).
        """
        self.base_dir = Path(base_dir).resolve()
        self.name = name
        self.role = role
        self.master_address = None if master_address is None else _address(master_address)
        listen = (role == "master") if replica_listen is None else replica_listen
        ports = reserve_ports(4 if listen else 3)
        self.port: int = ports[0]
        self.resp_port: int = ports[1]
        self.rpc_port: int = ports[2]  # SynapRPC (synap://)
        self.replica_port: int | None = ports[3] if listen else None
        self._ports = ports
        self.data_dir = self.base_dir / name
        self.persistence = persistence
        self.log_path = self.base_dir / f"{name}.log"
        self.config_path: Path | None = None
        if isinstance(config, Mapping):
            self.config_path = self.base_dir / f"{name}.yml"
            self.base_dir.mkdir(parents=True, exist_ok=True)
            self.config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        elif config is not None:
            self.config_path = Path(config).resolve()
        self.auto_reconnect = auto_reconnect
        self.extra_args = list(args)
        self.env = dict(env or {})
        self.command = list(command) if command is not None else _default_command()
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._frozen = False
        self._closed = False
        self._http: httpx.Client | None = None
        self._redis_clients: list[redis.Redis] = []

    # ------------------------------------------------------------------ addresses

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def rpc_url(self) -> str:
        """``synap://127.0.0.1:<rpc_port>``, what synap-sdk's ``SynapConfig`` takes."""
        return f"synap://{HOST}:{self.rpc_port}"

    @property
    def replica_address(self) -> str:
        """``127.0.0.1:<replica_port>``, what a replica's ``--master-address`` takes."""
        if self.replica_port is None:
            raise ValueError(f"{self.name} has no replication listener")
        return f"{HOST}:{self.replica_port}"

    @property
    def argv(self) -> list[str]:
        """The server's command line (without the PDEATHSIG launcher)."""
        argv = [*self.command]
        if self.config_path is not None:
            argv += ["--config", str(self.config_path)]
        argv += ["--host", HOST, "--port", str(self.port), "--resp-port", str(self.resp_port)]
        argv += ["--rpc-port", str(self.rpc_port)]
        if self.persistence:
            argv += ["--data-dir", str(self.data_dir)]
        if self.role is not None:
            argv += ["--role", self.role]
        if self.master_address is not None:
            argv += ["--master-address", self.master_address]
        if self.replica_port is not None:
            argv += ["--replica-listen", self.replica_address]
        if self.auto_reconnect is not None:
            argv += ["--auto-reconnect", "true" if self.auto_reconnect else "false"]
        return argv + self.extra_args

    def __repr__(self) -> str:
        state = "running" if self.is_running() else f"exit={self.returncode}"
        return f"<SynapProcess {self.name} http={self.port} resp={self.resp_port} {state}>"

    # ------------------------------------------------------------------ lifecycle

    def start(self, wait: bool = True, timeout: float = READY_TIMEOUT_S) -> SynapProcess:
        """Start the process (same args, data dir and ports every time)."""
        if self._closed:
            raise SynapProcessError(f"{self.name} was closed; make a new SynapProcess")
        if self.is_running():
            raise SynapProcessError(f"{self.name} is already running (pid {self.pid})")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = self.argv
        if (
            sys.platform.startswith("linux")
            and threading.current_thread() is threading.main_thread()
        ):
            popen_argv = [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *argv]
        else:
            popen_argv = argv
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1", **self.env}
        self.starts += 1
        with open(self.log_path, "ab") as log:
            stamp = time.strftime("%H:%M:%S")
            log.write(f"=== {stamp} start #{self.starts}: {shlex.join(argv)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                popen_argv,
                cwd=self.base_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._frozen = False
        _LIVE.add(self)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll until ``GET /health/live`` is 200, ``GET /health`` no longer says
        ``starting`` (the role is taken up, the replica listener bound) and the RESP port
        accepts connections.

        Not "``/health`` is 200": a replica answers 503 there until it has synced, and
        tests also start replicas that must not sync.

        Raises SynapProcessError with the log's tail if the process exits or time runs out.
        """
        proc = self._require_proc()
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            code = proc.poll()
            if code is not None:
                raise SynapProcessError(
                    f"{self.name} exited with code {code} before it was ready\n"
                    f"command: {shlex.join(self.argv)}\n{self._tail_block()}"
                )
            try:
                response = httpx.get(f"{self.http_url}/health/live", timeout=1.0)
                if response.status_code == 200:
                    # The role (and the replica listener) is taken up after the ports
                    # open: until then /health says "starting".
                    response = httpx.get(f"{self.http_url}/health", timeout=1.0)
                    if response.json().get("status") != "starting":
                        with socket.create_connection((HOST, self.resp_port), timeout=1.0):
                            return
                last = f"GET /health -> {response.status_code} {response.text[:200]!r}"
            except (httpx.HTTPError, OSError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise SynapProcessError(
                    f"{self.name} (pid {proc.pid}) not ready after {timeout}s; last: {last}\n"
                    f"command: {shlex.join(self.argv)}\n{self._tail_block()}"
                )
            time.sleep(0.05)

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        return self._require_proc().pid

    @property
    def returncode(self) -> int | None:
        """Exit status of the last run (negative = killed by that signal), None if running."""
        return None if self._proc is None else self._proc.poll()

    def kill(self, sig: int = signal.SIGKILL, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Send ``sig``. For SIGKILL, wait for the exit and return the exit status.

        Other signals return None at once (use ``wait_exit``); SIGTERM/SIGINT to a frozen
        process is followed by SIGCONT so that it can act on it.
        """
        proc = self._require_proc()
        if proc.poll() is not None:
            return proc.returncode
        proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self._frozen = False
            return self.wait_exit(timeout)
        if self._frozen and sig in (signal.SIGTERM, signal.SIGINT):
            self.thaw()
        return None

    def wait_exit(self, timeout: float = STOP_TIMEOUT_S) -> int:
        proc = self._require_proc()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise SynapProcessError(
                f"{self.name} (pid {proc.pid}) still running {timeout}s later\n{self._tail_block()}"
            ) from None

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; SIGKILL if it has not exited after ``timeout``. Returns the status
        (0 for a clean shutdown, -9 if it had to be killed)."""
        proc = self._require_proc()
        if proc.poll() is not None:
            return proc.returncode
        self.kill(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with open(self.log_path, "ab") as log:
                log.write(f"=== no exit {timeout}s after SIGTERM: SIGKILL\n".encode())
            code = self.kill(signal.SIGKILL)
            assert code is not None
            return code

    def freeze(self) -> None:
        """SIGSTOP: the process stops dead, its sockets stay open (a hung node)."""
        proc = self._require_proc()
        if proc.poll() is not None:
            raise SynapProcessError(f"{self.name} is not running (exit {proc.returncode})")
        proc.send_signal(signal.SIGSTOP)
        self._frozen = True
        self._wait_state(stopped=True)

    stop = freeze  # as in ``kill -STOP``; to shut a node down use terminate() or kill()

    def thaw(self) -> None:
        """SIGCONT after ``freeze()``."""
        proc = self._require_proc()
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            self._wait_state(stopped=False)
        self._frozen = False

    @property
    def frozen(self) -> bool:
        return self._frozen and self.is_running()

    def restart(self, wait: bool = True, timeout: float = READY_TIMEOUT_S) -> SynapProcess:
        """Stop it if running (``terminate()``), then start again with the same args,
        data dir and ports."""
        if self.is_running():
            self.terminate()
        return self.start(wait=wait, timeout=timeout)

    def close(self) -> None:
        """Kill the process (if running), close clients and release the ports. Idempotent."""
        if self._closed:
            return
        try:
            if self.is_running():
                self.kill(signal.SIGKILL)
        finally:
            self._closed = True
            _LIVE.discard(self)
            for client in self._redis_clients:
                with contextlib.suppress(Exception):
                    client.close()
            self._redis_clients.clear()
            if self._http is not None:
                self._http.close()
                self._http = None
            for port in self._ports:
                release_port(port)

    def __enter__(self) -> SynapProcess:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ clients

    @property
    def http(self) -> httpx.Client:
        """An ``httpx.Client`` with ``base_url`` = this node (kept across restarts)."""
        if self._http is None:
            self._http = httpx.Client(base_url=self.http_url, timeout=HTTP_TIMEOUT_S)
        return self._http

    def redis(self, **overrides: Any) -> redis.Redis:
        """A new ``redis.Redis`` on the RESP port (bytes replies); closed by ``close()``.

        redis-py's own defaults apply otherwise, including its 3 silent retries on
        connection errors and timeouts; where a retry would hide what the test checks
        (a dropped connection, a double INCR), pass ``retry=Retry(NoBackoff(), 0)``.
        """
        options: dict[str, Any] = {
            "host": HOST,
            "port": self.resp_port,
            "decode_responses": False,
            "socket_timeout": HTTP_TIMEOUT_S,
            "socket_connect_timeout": 5.0,
        }
        options.update(overrides)
        client = redis.Redis(**options)
        self._redis_clients.append(client)
        return client

    def health(self) -> dict[str, Any]:
        response = self.http.get("/health")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def stats(self) -> dict[str, Any]:
        """``GET /api/replication/stats`` as a dict (raises on a non-2xx answer)."""
        response = self.http.get("/api/replication/stats")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    # ------------------------------------------------------------------ logs

    def log_text(self) -> str:
        """Everything the process (all runs) wrote to stdout and stderr."""
        try:
            return self.log_path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def describe(self, lines: int = LOG_TAIL_LINES) -> str:
        """Name, ports, state and the log's tail: for failure reports."""
        if self._proc is None:
            state = "never started"
        elif self.is_running():
            state = f"running, pid {self._proc.pid}" + (", FROZEN" if self._frozen else "")
        else:
            state = f"exited with {self._proc.returncode}"
        ports = f"http={self.port} resp={self.resp_port}"
        if self.replica_port is not None:
            ports += f" replica-listen={self.replica_port}"
        return f"--- {self.name} ({state}; {ports}; log {self.log_path})\n{self.log_tail(lines)}"

    # ------------------------------------------------------------------ internals

    def _require_proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise SynapProcessError(f"{self.name} has not been started")
        return self._proc

    def _tail_block(self) -> str:
        return f"--- last {LOG_TAIL_LINES} lines of {self.log_path}:\n{self.log_tail()}"

    def _wait_state(self, stopped: bool, timeout: float = 5.0) -> None:
        """Wait until /proc says the process is (not) stopped, so SIGSTOP/SIGCONT have
        taken effect when freeze()/thaw() return. No-op where /proc is missing."""
        stat = Path(f"/proc/{self.pid}/stat")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                state = stat.read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                return
            if (state in ("T", "t")) == stopped:
                return
            time.sleep(0.005)
        raise SynapProcessError(f"{self.name}: still {'running' if stopped else 'stopped'}")


# Every started, not yet closed process: killed at interpreter exit as a last resort.
_LIVE: set[SynapProcess] = set()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        with contextlib.suppress(Exception):
            proc.close()


# ---------------------------------------------------------------------- helpers


def start_master(
    base_dir: Path | str,
    name: str = "master",
    *,
    wait: bool = True,
    ready_timeout: float = READY_TIMEOUT_S,
    **opts: Any,
) -> SynapProcess:
    """Start ``--role master`` with a replication listener on a reserved port."""
    opts.setdefault("replica_listen", True)
    node = SynapProcess(base_dir, name, role="master", **opts)
    try:
        return node.start(wait=wait, timeout=ready_timeout)
    except BaseException:
        node.close()
        raise


def start_replica(
    base_dir: Path | str,
    master: SynapProcess | FaultProxy | tuple[str, int] | str,
    name: str = "replica",
    *,
    wait: bool = True,
    ready_timeout: float = READY_TIMEOUT_S,
    **opts: Any,
) -> SynapProcess:
    """Start ``--role replica --master-address <master's replication listener>``.

    ``master`` is a master node, a FaultProxy in front of one, ``(host, port)`` or
    ``"host:port"``. Ready means the node answers /health/live, not that it has synced: use
    ``wait_caught_up`` for that.
    """
    node = SynapProcess(base_dir, name, role="replica", master_address=master, **opts)
    try:
        return node.start(wait=wait, timeout=ready_timeout)
    except BaseException:
        node.close()
        raise


def wait_for(
    predicate: Callable[[], _T],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "",
) -> _T:
    """Call ``predicate`` until it returns something truthy, and return that.

    Exceptions from ``predicate`` count as "not yet" (a node may be restarting); the last
    one is chained to the WaitTimeout raised after ``timeout`` seconds. ``message`` (or a
    callable producing it, evaluated on timeout) is added to the error.
    """
    deadline = time.monotonic() + timeout
    last_value: object = None
    last_exc: Exception | None = None
    attempts = 0
    while True:
        attempts += 1
        try:
            value = predicate()
        except Exception as exc:
            last_exc = exc
        else:
            if value:
                return value
            last_value, last_exc = value, None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            text = message() if callable(message) else message
            detail = f"last error: {last_exc!r}" if last_exc else f"last value: {last_value!r}"
            name = getattr(predicate, "__name__", repr(predicate))
            raise WaitTimeout(
                f"{text + ': ' if text else ''}{name} not true after {timeout}s "
                f"({attempts} attempts; {detail})"
            ) from last_exc
        time.sleep(min(interval, remaining))


def wait_caught_up(
    master: SynapProcess, replicas: Iterable[SynapProcess], timeout: float = 15.0
) -> int:
    """Wait until every replica is connected and its ``replica_offset`` equals the master's
    ``master_offset``; return that offset. Meant for a quiet master (no writes meanwhile)."""
    replicas = list(replicas)
    seen: dict[str, Any] = {}

    def caught_up() -> bool:
        seen.clear()
        offset = master.stats()["master_offset"]
        seen[master.name] = offset
        done = True
        for replica in replicas:
            stats = replica.stats()
            seen[replica.name] = {
                "replica_offset": stats.get("replica_offset"),
                "connected": stats.get("connected"),
            }
            if stats["replica_offset"] != offset or stats["connected"] is not True:
                done = False
        return done

    wait_for(caught_up, timeout, interval=0.05, message=lambda: f"replicas not caught up: {seen}")
    offset: int = seen[master.name]
    return offset


class NodeFactory:
    """Starts nodes and proxies for one test and tears all of them down at the end.

    ``node_factory()`` (standalone unless ``role=`` is given), ``.master()``,
    ``.replica(master)`` and ``.proxy(...)`` take the same keyword options as
    ``SynapProcess`` plus ``wait`` and ``ready_timeout``. Names default to ``node1``,
    ``master1``, ``replica1``, ...; each names the data dir and log under ``base_dir``.
    """

    def __init__(self, base_dir: Path | str) -> None:
        self.base_dir = Path(base_dir)
        self.nodes: list[SynapProcess] = []
        self.proxies: list[FaultProxy] = []
        self._counters: dict[str, int] = {}

    def _name(self, name: str | None, prefix: str) -> str:
        taken = {n.name for n in self.nodes}
        if name is not None:
            if name in taken:
                raise ValueError(f"a node named {name!r} already exists in this test")
            return name
        while True:
            self._counters[prefix] = self._counters.get(prefix, 0) + 1
            candidate = f"{prefix}{self._counters[prefix]}"
            if candidate not in taken:
                return candidate

    def _start(self, node: SynapProcess, wait: bool, ready_timeout: float) -> SynapProcess:
        self.nodes.append(node)  # tracked before start: a failed start is cleaned up too
        return node.start(wait=wait, timeout=ready_timeout)

    def __call__(
        self,
        name: str | None = None,
        *,
        wait: bool = True,
        ready_timeout: float = READY_TIMEOUT_S,
        **opts: Any,
    ) -> SynapProcess:
        node = SynapProcess(self.base_dir, self._name(name, "node"), **opts)
        return self._start(node, wait, ready_timeout)

    def master(
        self,
        name: str | None = None,
        *,
        wait: bool = True,
        ready_timeout: float = READY_TIMEOUT_S,
        **opts: Any,
    ) -> SynapProcess:
        opts.setdefault("replica_listen", True)
        node = SynapProcess(self.base_dir, self._name(name, "master"), role="master", **opts)
        return self._start(node, wait, ready_timeout)

    def replica(
        self,
        master: SynapProcess | FaultProxy | tuple[str, int] | str,
        name: str | None = None,
        *,
        wait: bool = True,
        ready_timeout: float = READY_TIMEOUT_S,
        **opts: Any,
    ) -> SynapProcess:
        node = SynapProcess(
            self.base_dir,
            self._name(name, "replica"),
            role="replica",
            master_address=master,
            **opts,
        )
        return self._start(node, wait, ready_timeout)

    def proxy(self, target: SynapProcess | tuple[str, int], listen_port: int = 0) -> FaultProxy:
        """A started FaultProxy to a master's replication listener (given the node) or to
        ``(host, port)``; point a replica at it with ``.replica(proxy)``."""
        if isinstance(target, SynapProcess):
            if target.replica_port is None:
                raise ValueError(f"{target.name} has no replication listener")
            host, port = HOST, target.replica_port
        else:
            host, port = target
        proxy = FaultProxy(host, port, listen_port)
        self.proxies.append(proxy)
        return proxy.start()

    def describe(self) -> str:
        """Every node's state and log tail, and every proxy's stats: for failure reports."""
        parts = [node.describe() for node in self.nodes]
        parts += [f"--- {p!r}: {p.stats()}" for p in self.proxies]
        return "\n".join(parts) if parts else "(no nodes)"

    def cleanup(self) -> list[str]:
        """Kill every node, stop every proxy; return the problems (never raises)."""
        problems: list[str] = []
        for node in self.nodes:
            try:
                node.close()
            except Exception as exc:
                problems.append(f"{node.name}: {exc!r}")
        for proxy in self.proxies:
            try:
                proxy.stop()
            except Exception as exc:
                problems.append(f"{proxy!r}: {exc!r}")
        return problems
