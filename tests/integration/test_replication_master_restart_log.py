"""A master restarted on its data directory refills its replication log from the WAL, so
a replica that was behind continues by partial sync instead of a full one (Redis keeps
its backlog only in memory and would full-sync here)."""

from __future__ import annotations

import signal

import pytest

from tests.support.checks import assert_same_data, syncs
from tests.support.server import NodeFactory

FAST = {"replication": {"heartbeat_interval_ms": 100, "reconnect_delay_ms": 200}}


@pytest.mark.parametrize(
    "stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"]
)
def test_replica_behind_a_restarted_master_resumes_by_partial_sync(
    node_factory: NodeFactory, stop_signal: int
) -> None:
    master = node_factory.master(config=FAST)
    replica = node_factory.replica(master, config=FAST)
    client = master.redis()
    for i in range(50):
        client.set(f"before:{i}", i)
    assert_same_data(master, [replica])
    replica.terminate()
    for i in range(30):
        client.set(f"while-away:{i}", i)
    if stop_signal == signal.SIGKILL:
        # Under the default periodic fsync the WAL reaches the disk within a second.
        client.execute_command("SAVE")
        master.kill(signal.SIGKILL)
    else:
        master.terminate()
    master.restart()
    assert "replication log refilled from the WAL" in master.log_text()
    replica.restart()
    assert_same_data(master, [replica])
    # Both processes are new, so their counters cover only what happened since.
    full_syncs, partial_syncs = syncs(replica)
    assert (full_syncs, partial_syncs) == (0, 1), replica.log_tail()
    assert syncs(master) == (0, 1)
    assert replica.redis().get("while-away:29") == b"29"
