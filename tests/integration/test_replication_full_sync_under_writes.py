"""A full sync under writes (issue 16, lever 6): writes keep going while the snapshot is
taken and sent, and the replica still ends with exactly the master's dataset — values
overwritten, keys deleted before or after their slice was copied, expiries set, changed
and removed, keys created during the copy.

Both ways a master sends a snapshot are run (``SYNAP_FULL_SYNC_FORK``): a forked child's
copy-on-write image of the keyspace at the sync's offset (the default for this many
keys), and the in-process copy in slices between client reads (TLS connections, small
data sets). For the latter the writer works from the end of the keyspace (the keys copied
last) towards its start, so that most of its deletes hit keys whose slice has not been
copied yet: those become placeholders in the snapshot, removed again when the records
after the snapshot replay.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from tests.support.checks import assert_same_data, syncs
from tests.support.server import NodeFactory, SynapProcess, wait_for

KEYS = 60_000
WRITE_SECONDS_MAX = 20.0
FAST = {"heartbeat_interval_ms": 100, "reconnect_delay_ms": 200, "replica_timeout_secs": 5}


def fill(node: SynapProcess, count: int) -> None:
    client = node.redis()
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.set(f"key:{i:06d}", f"value-{i}-".ljust(100, "x"))
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


class Writer(threading.Thread):
    """Pipelined mixed writes, newest keys first, until stopped (bounded in time)."""

    def __init__(self, node: SynapProcess) -> None:
        super().__init__(daemon=True)
        self.client = node.redis()
        self.stop = threading.Event()
        self.writes = 0
        self.writes_at: list[tuple[float, int]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random(16)
        deadline = time.monotonic() + WRITE_SECONDS_MAX
        i = KEYS - 1
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                pipe = self.client.pipeline(transaction=False)
                for _ in range(50):
                    key = f"key:{i:06d}"
                    op = rng.randrange(7)
                    if op == 0:
                        pipe.delete(key)
                    elif op == 1:
                        pipe.set(key, f"new-{i}-{self.writes}")
                    elif op == 2:
                        pipe.pexpire(key, rng.choice([1, 5, 3_600_000]))  # some expire now
                    elif op == 3:
                        pipe.persist(key)
                    elif op == 4:
                        pipe.set(f"created:{self.writes}:{i}", "during the copy", px=3_600_000)
                    elif op == 5:
                        pipe.incr(f"counter:{i % 10}")
                    else:
                        pipe.delete(f"key:{rng.randrange(KEYS):06d}")
                    i = i - 1 if i > 0 else KEYS - 1
                pipe.execute()
                self.writes += 50
                self.writes_at.append((time.monotonic(), self.writes))
        except BaseException as exc:  # reported by the test
            self.error = exc


@pytest.mark.parametrize("mode", ["always", "never"], ids=["forked-child", "in-process"])
def test_replica_full_synced_during_writes_ends_with_the_masters_dataset(
    node_factory: NodeFactory, mode: str
) -> None:
    master = node_factory.master(config={"replication": FAST}, env={"SYNAP_FULL_SYNC_FORK": mode})
    fill(master, KEYS)
    writer = Writer(master)
    writer.start()
    wait_for(lambda: writer.writes > 500, 10, message="the writer makes no progress")
    replica = node_factory.replica(master, config={"replication": FAST})
    during = writer.writes
    wait_for(lambda: syncs(replica)[0] == 1, 60, message="no full sync completed")
    synced_at = writer.writes
    time.sleep(0.5)  # writes after the sync stream in as records
    writer.stop.set()
    writer.join(10)
    assert writer.error is None, f"writer failed: {writer.error!r}"
    # Writes ran while the snapshot was copied and sent (not only before or after).
    assert synced_at - during > 0, "no write happened during the full sync"
    # Keys given 1-5 ms to live are due by now; the master's active expiry removes them
    # only bit by bit (each removal a DEL record), so read every key once: the reads
    # remove the rest at once, and the master stands still for the comparison.
    time.sleep(0.05)
    pipe = master.redis().pipeline(transaction=False)
    for i in range(KEYS):
        pipe.exists(f"key:{i:06d}")
    pipe.execute()
    assert_same_data(master, [replica], timeout=30)
    assert syncs(replica) == (1, 0)
    assert replica.redis().dbsize() == master.redis().dbsize()
    # The snapshot went the way asked for (the fork path logs the child's pid).
    forked = "by process" in master.log_text()
    assert forked == (mode == "always"), master.log_tail()
