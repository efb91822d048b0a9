"""Helpers for the failover, topology and chain tests (tests/integration/test_failover_*.py,
test_chain_*.py): role changes over the admin API, convergence checks and a writer
thread that counts acknowledged writes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from tests.support.checks import digest_report as digest
from tests.support.server import SynapProcess, wait_for

# Reconnect fast, so a test does not sit out the spec's 5 s reconnect delay after every
# role change (a repointed or dropped replica reconnects after this).
FAST: dict[str, Any] = {"replication": {"reconnect_delay_ms": 100}}


def full_syncs(*nodes: SynapProcess) -> dict[str, int]:
    """Each node's full syncs, served as a master (``sync_full``) plus performed as a
    replica (``full_syncs``)."""
    out = {}
    for n in nodes:
        s = n.stats()
        out[n.name] = int(s["sync_full"]) + int(s["full_syncs"])
    return out


def promote(node: SynapProcess, listen: str | None = None) -> dict[str, Any]:
    body = {"replica_listen_address": listen} if listen else None
    response = node.http.post("/api/replication/promote", json=body)
    assert response.status_code == 200, response.text
    out: dict[str, Any] = response.json()
    return out


def replicaof(node: SynapProcess, address: str | None) -> dict[str, Any]:
    response = node.http.post("/api/replication/replicaof", json={"master_address": address})
    assert response.status_code == 200, response.text
    out: dict[str, Any] = response.json()
    return out


def wait_converged(
    master: SynapProcess, replicas: list[SynapProcess], timeout: float = 15.0
) -> dict[str, Any]:
    """Wait until every replica streams ``master``'s history at its offset, then check
    that all datasets are equal. Returns the master's stats. The master must be quiet."""
    seen: dict[str, Any] = {}

    def converged() -> bool:
        ms = master.stats()
        seen.clear()
        seen[master.name] = (ms["role"], ms["replication_id"][:8], ms["master_offset"])
        ok = ms["role"] == "master"
        for r in replicas:
            rs = r.stats()
            seen[r.name] = (
                rs["role"],
                rs["replication_id"][:8],
                rs.get("replica_offset"),
                rs.get("connected"),
            )
            ok = ok and (
                rs["role"] == "replica"
                and rs.get("connected") is True
                and rs["replication_id"] == ms["replication_id"]
                and rs["replica_offset"] == ms["master_offset"]
            )
        return ok

    wait_for(converged, timeout, message=lambda: f"not converged: {seen}")
    digests = {n.name: digest(n)["digest"] for n in [master, *replicas]}
    assert len(set(digests.values())) == 1, f"datasets differ: {digests}"
    return master.stats()


class Writer(threading.Thread):
    """Writes ``w:<n>`` = ``<n>`` to the current master until stopped (or ``limit``).

    A write counts as acknowledged only when the server answered OK. TRYAGAIN (writes
    paused) is retried on the same node; READONLY or a broken connection asks
    ``find_master`` where to write next (None: keep trying the same node)."""

    def __init__(
        self,
        node: SynapProcess,
        find_master: Callable[[], SynapProcess | None] = lambda: None,
        limit: int = 100_000,
        pace_s: float = 0.0,
        deadline_s: float = 60.0,
    ) -> None:
        super().__init__(daemon=True, name="writer")
        self.node = node
        self.find_master = find_master
        self.limit = limit
        self.pace_s = pace_s
        self.deadline = time.monotonic() + deadline_s
        self.acked: dict[bytes, bytes] = {}
        self.errors: dict[str, int] = {}
        self.switches: list[str] = []
        self.stop_event = threading.Event()
        self.failure: BaseException | None = None

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self.join(timeout)
        assert not self.is_alive(), "writer did not stop"
        if self.failure is not None:
            raise self.failure

    def _count(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by stop()
            self.failure = exc

    def _run(self) -> None:
        n = 0
        client = self.node.redis(socket_timeout=5.0)
        while not self.stop_event.is_set() and n < self.limit and time.monotonic() < self.deadline:
            key, value = b"w:%d" % n, b"%d" % n
            try:
                client.set(key, value)
            except redis.exceptions.ReadOnlyError:
                self._count("READONLY")
                self._switch()
                client = self.node.redis(socket_timeout=5.0)
                continue
            except redis.exceptions.TryAgainError:
                self._count("TRYAGAIN")
                time.sleep(0.001)
                continue
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                self._count("connection")
                time.sleep(0.01)
                self._switch()
                client = self.node.redis(socket_timeout=5.0)
                continue
            self.acked[key] = value
            n += 1
            if self.pace_s:
                time.sleep(self.pace_s)

    def _switch(self) -> None:
        nxt = self.find_master()
        if nxt is not None and nxt is not self.node:
            self.switches.append(f"{self.node.name}->{nxt.name}")
            self.node = nxt
        else:
            time.sleep(0.005)


def assert_has_all(node: SynapProcess, acked: dict[bytes, bytes]) -> None:
    """Every acknowledged write is on ``node`` with its value."""
    client = node.redis()
    keys = list(acked)
    missing = []
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        for key, got in zip(chunk, client.mget(chunk), strict=True):
            if got != acked[key]:
                missing.append((key, got))
    assert not missing, f"{len(missing)} acknowledged writes lost on {node.name}: {missing[:5]}"


def ready(*nodes: SynapProcess) -> None:
    """Wait for nodes started with ``wait=False``: they start in parallel, which saves
    about a second and a half per node (interpreter start-up)."""
    for node in nodes:
        node.wait_ready()
