"""Chaos: a master and two replicas under write load and a seeded schedule of faults.

Topology: ``master`` (persistence with ``fsync_mode: always``) and ``replica1`` /
``replica2``, each connected to the master through its own FaultProxy.

Writers (three RESP, one REST) run the whole time against the master: unique SETs,
INCRs of a per-writer counter and DELs of their own earlier keys.  Each writer records
what was acknowledged, and what was sent without an answer (which may or may not have
happened).

Faults, drawn from ``random.Random(CHAOS_SEED)``, at most two at a time:

=================  ===========================================================
``cut``            reset the replica's link (proxy ``cut()``: RST both ways)
``pause``          freeze the link, one or both directions, 0.3-6 s
``delay``          20-400 ms latency on the link for 0.5-5 s
``freeze``         SIGSTOP a replica for 0.3-6 s (past the 3 s replica timeout)
``restart``        SIGKILL a replica, start it again on its data directory
``master-crash``   SIGKILL the master, start it again on its data directory
=================  ===========================================================

After ``CHAOS_SECONDS`` the faults are healed and the writers stopped. Asserted:

1. **No acknowledged write is missing on the master** (it was killed with SIGKILL
   under ``always``): every acknowledged SET has its value, every acknowledged DEL its
   absence, every counter is at least its acknowledged INCRs (at most the attempts);
   unanswered writes may be in either state.
2. **Every node converges**: the replicas report the master's offset, connected, and
   ``GET /api/replication/digest`` is the same on all three.
3. **Full syncs only where justified.**  The master logs why it decided each one;
   allowed reasons are "no replication history" (a new replica, or one whose history
   was lost or never completed) and, only if the master was restarted, "no longer in
   the log" (a restarted master's log starts at its recovered offset, so a replica
   that was behind it cannot continue). A replication id mismatch or a replica ahead of
   the master are never allowed (under ``always`` the master's WAL holds every record
   it streamed).  Completed full syncs per replica (its own log) are at most
   1 + its restarts + master restarts; with no restart at all, exactly 1.
4. No node logged a traceback.

``make chaos`` runs it for 600 s; CI runs ``CHAOS_SECONDS`` (default 40).  A failure
prints the seed; ``CHAOS_SEED=<seed> CHAOS_SECONDS=<s> pytest -s tests/chaos`` replays
the same schedule of faults (the timing of the writers still varies).
``CHAOS_FAULTS=cut,pause,delay,freeze`` draws only from those kinds (then no full sync
beyond the first one per replica is allowed at all).
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.faultproxy import FaultProxy
from tests.support.server import NodeFactory, SynapProcess, wait_for

CHAOS_SECONDS = float(os.environ.get("CHAOS_SECONDS", "40"))
CHAOS_SEED = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(2**32))
# Relative weights of the fault kinds; CHAOS_FAULTS=cut,pause,delay,freeze keeps a subset.
FAULT_WEIGHTS = {"cut": 4, "pause": 4, "delay": 3, "freeze": 3, "restart": 2, "master-crash": 1}
FAULTS = [f for f in os.environ.get("CHAOS_FAULTS", ",".join(FAULT_WEIGHTS)).split(",") if f]
MAX_CONCURRENT_FAULTS = 2
CONVERGE_TIMEOUT_S = 90.0

REPLICATION = {
    "heartbeat_interval_ms": 200,
    "reconnect_delay_ms": 300,
    "replica_timeout_secs": 3,
}
MASTER_CONFIG = {
    "persistence": {"fsync_mode": "always", "snapshot_interval_secs": 5},
    "replication": REPLICATION,
}
REPLICA_CONFIG = {
    "persistence": {"fsync_mode": "periodic", "snapshot_interval_secs": 5},
    "replication": REPLICATION,
}
FULL_SYNC_RE = re.compile(r"Full sync required for replica (\S+): (.*)$", re.M)


# ---------------------------------------------------------------------- writers


@dataclass
class Ledger:
    """What one writer knows about its keys."""

    name: str
    acked: dict[str, bytes | None] = field(default_factory=dict)  # None: acked DEL
    unsure: dict[str, bytes] = field(default_factory=dict)  # sent, no answer
    increments: int = 0
    incr_attempts: int = 0
    ops: int = 0
    errors: int = 0

    @property
    def counter(self) -> str:
        return f"{self.name}:counter"


class Writer(threading.Thread):
    def __init__(self, master: SynapProcess, ledger: Ledger, seed: int, http: bool) -> None:
        super().__init__(name=f"chaos-{ledger.name}", daemon=True)
        self.master = master
        self.ledger = ledger
        self.rng = random.Random(seed)
        self.http = http
        self.stop_event = threading.Event()

    def run(self) -> None:
        if self.http:
            self._run_http()
        else:
            self._run_resp()

    def _pause_after_error(self) -> None:
        self.ledger.errors += 1
        self.stop_event.wait(self.rng.uniform(0.05, 0.3))

    def _run_resp(self) -> None:
        ledger, rng = self.ledger, self.rng
        client = redis.Redis(
            host="127.0.0.1",
            port=self.master.resp_port,
            socket_timeout=5,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),  # a silent retry could apply an INCR twice
        )
        i = 0
        try:
            while not self.stop_event.is_set():
                i += 1
                ledger.ops += 1
                roll = rng.random()
                live = [k for k, v in ledger.acked.items() if v is not None]
                if roll < 0.15:
                    ledger.incr_attempts += 1
                    try:
                        client.incr(ledger.counter)
                    except redis.RedisError:
                        self._pause_after_error()
                        continue
                    ledger.increments += 1
                elif roll < 0.27 and live:
                    key = rng.choice(live)
                    try:
                        client.delete(key)
                    except redis.RedisError:
                        ledger.unsure[key] = ledger.acked.pop(key) or b""
                        self._pause_after_error()
                        continue
                    ledger.acked[key] = None
                else:
                    key = f"{ledger.name}:{i}"
                    value = f"{i}:{rng.getrandbits(64):x}".encode() * rng.randint(1, 8)
                    try:
                        client.set(key, value)
                    except redis.RedisError:
                        ledger.unsure[key] = value
                        self._pause_after_error()
                        continue
                    ledger.acked[key] = value
        finally:
            client.close()

    def _run_http(self) -> None:
        ledger, rng = self.ledger, self.rng
        i = 0
        with httpx.Client(base_url=self.master.http_url, timeout=5) as client:
            while not self.stop_event.is_set():
                i += 1
                ledger.ops += 1
                key = f"{ledger.name}:{i}"
                value = f"{i}:{rng.getrandbits(64):x}"
                try:
                    response = client.post("/kv/set", json={"key": key, "value": value})
                except httpx.HTTPError:
                    ledger.unsure[key] = value.encode()
                    self._pause_after_error()
                    continue
                if response.status_code == 200:
                    ledger.acked[key] = value.encode()
                else:
                    ledger.unsure[key] = value.encode()
                    self._pause_after_error()


# ---------------------------------------------------------------------- faults


@dataclass
class Fault:
    kind: str
    target: str
    ends_at: float
    undo: Any  # callable


class Chaos:
    def __init__(
        self,
        rng: random.Random,
        master: SynapProcess,
        replicas: list[SynapProcess],
        proxies: dict[str, FaultProxy],
    ) -> None:
        self.rng = rng
        self.master = master
        self.replicas = replicas
        self.proxies = proxies
        self.active: list[Fault] = []
        self.events: list[str] = []
        self.counts: Counter[str] = Counter()
        self.restarts: Counter[str] = Counter()
        self.replica_ids: dict[str, set[str]] = {r.name: set() for r in replicas}
        self.started = time.monotonic()

    def log(self, text: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:7.2f}s {text}")

    def busy(self, target: str) -> bool:
        return any(f.target == target for f in self.active)

    def record_replica_id(self, replica: SynapProcess) -> None:
        replica_id = wait_for(lambda: replica.stats()["replica_id"], 20, 0.1)
        self.replica_ids[replica.name].add(str(replica_id))

    def step(self, now: float) -> None:
        for fault in [f for f in self.active if f.ends_at <= now]:
            self.active.remove(fault)
            fault.undo()
            self.log(f"end {fault.kind} {fault.target}")
        if len(self.active) >= MAX_CONCURRENT_FAULTS or self.rng.random() < 0.3:
            return
        kind = self.rng.choices(FAULTS, [FAULT_WEIGHTS[f] for f in FAULTS])[0]
        replica = self.rng.choice(self.replicas)
        proxy = self.proxies[replica.name]
        hold = self.rng.uniform(0.3, 6.0)
        link = f"link-{replica.name}"
        if kind == "cut" and not self.busy(link):
            self.log(f"cut {link}: {proxy.cut()} connections reset")
        elif kind == "pause" and not self.busy(link):
            direction = self.rng.choice(["both", "both", "to_target", "to_client"])
            proxy.pause(direction)
            self._begin(kind, link, now + hold, proxy.resume, f"{direction} {hold:.1f}s")
        elif kind == "delay" and not self.busy(link):
            ms = self.rng.randint(20, 400)
            proxy.delay(ms)
            self._begin(kind, link, now + hold, lambda: proxy.delay(0), f"{ms} ms {hold:.1f}s")
        elif kind == "freeze" and not self.busy(replica.name):
            replica.freeze()
            self._begin(kind, replica.name, now + hold, replica.thaw, f"{hold:.1f}s")
        elif kind == "restart" and not self.busy(replica.name):
            replica.kill()
            self.restarts[replica.name] += 1
            down = self.rng.uniform(0.0, 2.0)
            self._begin(kind, replica.name, now + down, lambda: self._start(replica), f"down {down:.1f}s")  # fmt: skip
        elif kind == "master-crash" and not self.busy("master"):
            self.master.kill()
            self.restarts["master"] += 1
            down = self.rng.uniform(0.0, 1.5)
            self._begin(kind, "master", now + down, lambda: self._start(self.master), f"down {down:.1f}s")  # fmt: skip
        else:
            return
        self.counts[kind] += 1

    def _begin(self, kind: str, target: str, ends_at: float, undo: Any, detail: str) -> None:
        self.active.append(Fault(kind, target, ends_at, undo))
        self.log(f"begin {kind} {target} ({detail})")

    def _start(self, node: SynapProcess) -> None:
        node.start()
        if node is not self.master:
            self.record_replica_id(node)

    def heal(self) -> None:
        for fault in list(self.active):
            self.active.remove(fault)
            fault.undo()
            self.log(f"heal {fault.kind} {fault.target}")
        for proxy in self.proxies.values():
            proxy.clear()
        for node in [self.master, *self.replicas]:
            assert node.is_running(), f"{node.name} died: exit {node.returncode}"


# ---------------------------------------------------------------------- checks


def digest(node: SynapProcess) -> dict[str, Any]:
    body: dict[str, Any] = node.http.get("/api/replication/digest").json()
    return body


def check_acknowledged_writes(master: SynapProcess, ledgers: list[Ledger]) -> list[str]:
    client = master.redis()
    problems: list[str] = []
    for ledger in ledgers:
        keys = list(ledger.acked) + list(ledger.unsure)
        got: dict[str, bytes | None] = {}
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            got.update(zip(batch, client.mget(batch), strict=True))
        for key, want in ledger.acked.items():
            if got[key] != want:
                problems.append(
                    f"acknowledged {key}: want {want!r:.40}, master has {got[key]!r:.40}"
                )
        for key, maybe in ledger.unsure.items():
            if got[key] not in (None, maybe):
                problems.append(f"unanswered {key}: master has {got[key]!r:.40}, never written")
        if ledger.incr_attempts:
            value = int(client.get(ledger.counter) or 0)
            if not ledger.increments <= value <= ledger.incr_attempts:
                problems.append(
                    f"{ledger.counter} = {value}, acknowledged {ledger.increments} of "
                    f"{ledger.incr_attempts} INCRs"
                )
    return problems


def wait_converged(master: SynapProcess, replicas: list[SynapProcess]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def converged() -> bool:
        want = digest(master)
        seen["master"] = want
        ok = True
        for replica in replicas:
            stats = replica.stats()
            got = digest(replica)
            seen[replica.name] = {**got, "connected": stats["connected"], "state": stats["state"]}
            ok = ok and stats["connected"] is True and got["offset"] == want["offset"]
            ok = ok and got["digest"] == want["digest"]
        return ok

    wait_for(converged, CONVERGE_TIMEOUT_S, 0.25, lambda: f"no convergence: {seen}")
    return seen


def classify_full_syncs(
    master: SynapProcess, chaos: Chaos
) -> tuple[dict[str, list[str]], list[str]]:
    """The master's full-sync decisions per replica name, and the unjustified ones."""
    owner = {rid: name for name, ids in chaos.replica_ids.items() for rid in ids}
    decisions: dict[str, list[str]] = {name: [] for name in chaos.replica_ids}
    bad: list[str] = []
    for replica_id, reason in FULL_SYNC_RE.findall(master.log_text()):
        name = owner.get(replica_id, f"unknown {replica_id}")
        decisions.setdefault(name, []).append(reason)
        if "no replication history" in reason:
            continue
        if "no longer in the log" in reason and chaos.restarts["master"]:
            continue
        bad.append(f"{name}: {reason}")
    return decisions, bad


# ---------------------------------------------------------------------- the test


@pytest.mark.timeout(int(CHAOS_SECONDS) + 300)
def test_chaos(node_factory: NodeFactory) -> None:
    seed, seconds = CHAOS_SEED, CHAOS_SECONDS
    unknown = set(FAULTS) - set(FAULT_WEIGHTS)
    assert not unknown, f"CHAOS_FAULTS: unknown {sorted(unknown)}; known: {list(FAULT_WEIGHTS)}"
    print(f"\nCHAOS_SEED={seed} CHAOS_SECONDS={seconds:g} CHAOS_FAULTS={','.join(FAULTS)}")
    rng = random.Random(seed)
    master = node_factory.master("master", config=MASTER_CONFIG)
    proxies = {name: node_factory.proxy(master) for name in ("replica1", "replica2")}
    replicas = [
        node_factory.replica(proxies[name], name, config=REPLICA_CONFIG) for name in proxies
    ]
    chaos = Chaos(rng, master, replicas, proxies)
    for replica in replicas:
        chaos.record_replica_id(replica)

    ledgers = [Ledger(f"w{i}") for i in range(4)]
    writers = [
        Writer(master, ledger, rng.getrandbits(32), http=(i == 3))
        for i, ledger in enumerate(ledgers)
    ]
    try:
        for writer in writers:
            writer.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            chaos.step(time.monotonic())
            time.sleep(rng.uniform(0.1, 0.8))
        chaos.heal()
        time.sleep(1.0)  # writes on a healed cluster too
    finally:
        for writer in writers:
            writer.stop_event.set()
        for writer in writers:
            writer.join(15)
    try:
        assert not any(w.is_alive() for w in writers), "a writer did not stop"
        problems = check_acknowledged_writes(master, ledgers)
        assert not problems, f"{len(problems)} problems, first: " + "\n".join(problems[:20])
        final = wait_converged(master, replicas)
        decisions, unjustified = classify_full_syncs(master, chaos)
        assert not unjustified, f"unjustified full syncs: {unjustified}"
        completed = {r.name: r.log_text().count("full sync complete:") for r in replicas}
        for replica in replicas:
            allowed = 1 + chaos.restarts[replica.name] + chaos.restarts["master"]
            assert 1 <= completed[replica.name] <= allowed, (
                f"{replica.name}: {completed[replica.name]} full syncs completed, at most "
                f"{allowed} justified (decisions: {decisions[replica.name]})"
            )
        for node in [master, *replicas]:
            assert "Traceback" not in node.log_text(), f"{node.name} logged a traceback"
    except BaseException as exc:
        raise AssertionError(
            f"chaos failed: CHAOS_SEED={seed} CHAOS_SECONDS={seconds:g} "
            f"CHAOS_FAULTS={','.join(FAULTS)}: {exc}\n"
            f"events:\n" + "\n".join(chaos.events)
        ) from exc

    summary = {
        "seed": seed,
        "seconds": seconds,
        "faults": dict(chaos.counts),
        "restarts": dict(chaos.restarts),
        "writes_acknowledged": sum(len(x.acked) + x.increments for x in ledgers),
        "writes_unanswered": sum(len(x.unsure) + x.incr_attempts - x.increments for x in ledgers),
        "keys": final["master"]["keys"],
        "offset": final["master"]["offset"],
        "full_syncs_completed": completed,
        "full_sync_reasons": {k: Counter(r.split(" (")[0][:40] for r in v) for k, v in decisions.items()},
        "partial_syncs_on_master_log": master.log_text().count("partial sync for replica"),
    }  # fmt: skip
    print("[chaos] " + json.dumps(summary, default=dict))
