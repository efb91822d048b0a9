"""A real etcd (Debian's ``etcd-server``) for tests, on free 127.0.0.1 ports.

``EtcdProcess`` runs one etcd member with a temporary data directory (alone, or as one of
an ``EtcdCluster`` of three on loopback); the ``etcd_server`` fixture starts a single
node per test and kills it by PID at teardown. Tests that
use it are skipped, with the reason, when no ``etcd`` binary is installed
(``apt-get install etcd-server``; ``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .ports import HOST, release_port, reserve_ports
from .server import _LAUNCHER, SynapProcessError

READY_TIMEOUT_S = 20.0


def etcd_binary() -> str | None:
    return shutil.which("etcd")


class EtcdProcess:
    def __init__(self, base_dir: Path, name: str = "etcd") -> None:
        self.base_dir = Path(base_dir)
        self.name = name
        self.client_port, self.peer_port = reserve_ports(2)
        self.data_dir = self.base_dir / f"{name}-data"
        self.log_path = self.base_dir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.initial_cluster: str | None = None  # set by EtcdCluster

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.client_port}"

    @property
    def argv(self) -> list[str]:
        client = self.url
        peer = f"http://{HOST}:{self.peer_port}"
        return [
            etcd_binary() or "etcd",
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", self.initial_cluster or f"{self.name}={peer}",
            "--initial-cluster-state", "new",
            "--initial-cluster-token", f"synap-test-{self.base_dir.name}",
            "--heartbeat-interval", "100",
            "--election-timeout", "1000",
            "--log-level", "warn",
        ]  # fmt: skip

    @property
    def peer_url(self) -> str:
        return f"http://{HOST}:{self.peer_port}"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, wait: bool = True) -> EtcdProcess:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        argv = self.argv
        if threading.current_thread() is threading.main_thread() and sys.platform == "linux":
            argv = [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *argv]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self._proc.poll() is not None:
                raise SynapProcessError(f"etcd exited with {self._proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).json().get("health") == "true":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise SynapProcessError(f"etcd not healthy after {READY_TIMEOUT_S}s:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def call(self, path: str, body: dict[str, Any]) -> Any:
        """One JSON-gateway request (``/v3/kv/range`` ...), for checks in tests."""
        response = httpx.post(f"{self.url}{path}", json=body, timeout=5.0)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        self._proc = None

    def close(self) -> None:
        self.stop()
        for port in (self.client_port, self.peer_port):
            release_port(port)
        shutil.rmtree(self.data_dir, ignore_errors=True)


class EtcdCluster:
    """Three etcd members on loopback (one raft group)."""

    def __init__(self, base_dir: Path, size: int = 3) -> None:
        self.members = [EtcdProcess(base_dir, f"etcd{i}") for i in range(size)]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for member in self.members:
            member.initial_cluster = initial

    @property
    def endpoints(self) -> str:
        return ",".join(m.url for m in self.members)

    def start(self) -> EtcdCluster:
        for member in self.members:
            member.start(wait=False)
        for member in self.members:
            member.wait_healthy()
        return self

    def raft_leader(self) -> EtcdProcess:
        """The member that currently leads the raft group."""
        for member in self.members:
            if not member.is_running():
                continue
            status = member.call("/v3/maintenance/status", {})
            if status.get("leader") == status.get("header", {}).get("member_id"):
                return member
        raise AssertionError("no etcd member reports itself as the raft leader")

    def close(self) -> None:
        for member in self.members:
            member.close()


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A started 3-member etcd cluster for this test; every member killed at teardown."""
    if etcd_binary() is None:
        pytest.skip("etcd is not installed (apt-get install etcd-server; .ci/run installs it)")
    cluster = EtcdCluster(tmp_path)
    try:
        yield cluster.start()
    finally:
        cluster.close()


@pytest.fixture
def etcd_server(tmp_path: Path) -> Iterator[EtcdProcess]:
    """A started single-node etcd for this test; killed (by PID) at teardown."""
    if etcd_binary() is None:
        pytest.skip("etcd is not installed (apt-get install etcd-server; .ci/run installs it)")
    server = EtcdProcess(tmp_path)
    try:
        yield server.start()
    finally:
        server.close()
