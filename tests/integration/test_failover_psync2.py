"""Random topology changes keep partial sync working (Redis tests/integration/psync2.tcl).

Four nodes. Every cycle promotes a random node, repoints the others to it (directly,
or through a node already placed, making chains), while a writer keeps writing to the
current master and replication links are sometimes reset through fault proxies. After
each cycle every node must hold the master's replication id, offset and dataset, and
the total number of full syncs must still be the three of the initial set-up: every
other (re)connection continued by partial sync (PSYNC2: replid2 after a promotion, id
adoption down the chain).

Seeded: the seed is printed; rerun one with ``SYNAP_PSYNC2_SEED=<seed>``.
"""

from __future__ import annotations

import os
import random
import threading
import time

import redis

from tests.integration.failover_support import FAST, digest, full_syncs, wait_converged
from tests.support.faultproxy import FaultProxy
from tests.support.server import NodeFactory, SynapProcess, wait_for

CYCLES = 8
NODES = 4
WRITES_PER_CYCLE = 150
KEYS = 300


class LoadWriter(threading.Thread):
    """One client writing to whichever node is the master now; ``hold()`` stops it
    between writes (so the master is quiet), ``aim(node)`` points it somewhere."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__(daemon=True, name="psync2-writer")
        self.rng = rng
        self.target: SynapProcess | None = None
        self.clients: dict[str, redis.Redis] = {}
        self.expected: dict[bytes, bytes] = {}  # last acknowledged value of each key
        self.count = 0
        self.errors: list[str] = []
        self._busy = threading.Lock()
        self._quit = threading.Event()
        self._deadline = time.monotonic() + 150

    def aim(self, node: SynapProcess | None) -> None:
        with self._busy:  # waits for a write in flight
            self.target = node

    def hold(self) -> None:
        self.aim(None)

    def wait_writes(self, count: int, timeout: float) -> None:
        """Return once ``count`` more writes were acknowledged."""
        goal = self.count + count
        wait_for(lambda: self.count >= goal, timeout, message=f"{self.errors}")

    def stop(self) -> None:
        self._quit.set()
        self.join(10)

    def run(self) -> None:
        seq = 0
        while not self._quit.is_set() and time.monotonic() < self._deadline:
            with self._busy:
                node = self.target
                if node is not None:
                    seq += 1
                    key = b"key:%d" % self.rng.randrange(KEYS)
                    value = b"%d" % seq
                    client = self.clients.get(node.name)
                    if client is None:
                        client = self.clients[node.name] = node.redis()
                    try:
                        client.set(key, value)
                    except redis.exceptions.RedisError as exc:  # must not happen
                        self.errors.append(f"{node.name}: {exc!r}")
                    else:
                        self.expected[key] = value
                        self.count += 1
            time.sleep(0.0005 if node is not None else 0.005)


def test_psync2_random_topologies_need_no_full_sync(node_factory: NodeFactory) -> None:
    seed = int(os.environ.get("SYNAP_PSYNC2_SEED", random.SystemRandom().randrange(2**32)))
    print(f"psync2 seed: {seed} (rerun with SYNAP_PSYNC2_SEED={seed})")
    rng = random.Random(seed)

    # Every node has a replica listener and a fault proxy in front of it; every
    # replication link goes through the proxy of the node it connects to.
    first = node_factory.master(config=FAST, wait=False)
    nodes = [first]
    proxies: dict[str, FaultProxy] = {first.name: node_factory.proxy(first)}
    for _ in range(NODES - 1):
        node = node_factory.replica(
            proxies[first.name], replica_listen=True, config=FAST, wait=False
        )
        proxies[node.name] = node_factory.proxy(node)
        nodes.append(node)
    for node in nodes:
        node.wait_ready()
    master = first
    for i in range(50):
        master.redis().set(f"seed:{i}", i)
    wait_converged(master, [n for n in nodes if n is not master])
    baseline = sum(full_syncs(*nodes).values())
    history: list[str] = []

    writer = LoadWriter(random.Random(seed + 1))
    writer.start()
    try:
        for cycle in range(CYCLES):
            new = rng.choice(nodes)
            via_resp = rng.random() < 0.5
            if via_resp:
                assert new.redis().execute_command("REPLICAOF", "NO", "ONE") == b"OK"
            else:
                assert new.http.post("/api/replication/promote").status_code == 200
            writer.aim(new)  # writes flow while the others are repointed

            others = [n for n in nodes if n is not new]
            rng.shuffle(others)
            placed = [new]
            shape = []
            for node in others:  # parents first: never a cycle
                parent = new if rng.random() < 0.6 else rng.choice(placed)
                host, port = proxies[parent.name].address.rsplit(":", 1)
                if rng.random() < 0.5:
                    node.redis().execute_command("REPLICAOF", host, port)
                else:
                    r = node.http.post(
                        "/api/replication/replicaof",
                        json={"master_address": f"{host}:{port}"},
                    )
                    assert r.status_code == 200, r.text
                placed.append(node)
                shape.append(f"{node.name}<-{parent.name}")
            cuts = []
            if rng.random() < 0.6:
                time.sleep(rng.uniform(0.0, 0.1))
                victim = rng.choice(nodes)
                proxies[victim.name].cut()  # reset every link into the victim
                cuts.append(victim.name)
            writer.wait_writes(WRITES_PER_CYCLE, timeout=20)
            writer.hold()
            history.append(
                f"cycle {cycle}: master {new.name} ({'RESP' if via_resp else 'HTTP'}), "
                f"{', '.join(shape)}, cut {cuts or 'none'}"
            )
            print(history[-1])

            wait_converged(new, others, timeout=20)
            syncs = full_syncs(*nodes)
            assert sum(syncs.values()) == baseline, (
                f"seed {seed}: full syncs {syncs}, expected {baseline} in total\n"
                + "\n".join(history)
            )
            assert not writer.errors, writer.errors
            master = new
    finally:
        writer.stop()

    # Every acknowledged write is on every node (the digests are already equal).
    client = master.redis()
    keys = sorted(writer.expected)
    assert client.mget(keys) == [writer.expected[k] for k in keys]
    assert writer.count >= CYCLES * WRITES_PER_CYCLE
    assert len({digest(n)["digest"] for n in nodes}) == 1
