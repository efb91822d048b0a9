"""A former replica restarted with ``--role master`` while its master lives on (manual
failover mode, with a data directory) starts a new history, like a promotion: repointed
at the real master it full-syncs instead of continuing by partial sync across a
divergence (docs/OPERATIONS.md, "Full sync instead, and why")."""

from __future__ import annotations

import json

from tests.integration.failover_support import FAST, digest, replicaof, wait_converged
from tests.support.server import NodeFactory, wait_caught_up


def test_replica_restarted_as_master_starts_a_new_history_and_full_syncs_when_repointed(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=FAST)
    replica = node_factory.replica(master, config=FAST)
    c = master.redis()
    for i in range(20):
        c.set(f"k{i}", i)
    wait_caught_up(master, [replica])
    followed = master.stats()["replication_id"]
    assert replica.stats()["replication_id"] == followed
    assert json.loads((replica.data_dir / "role.json").read_text())["role"] == "replica"

    replica.terminate()  # SIGTERM
    replica.role = "master"
    replica.master_address = None
    replica.start()
    s = replica.stats()
    assert s["role"] == "master"
    assert s["replication_id"] != followed  # a new history ...
    assert s["previous_replication_id"] == followed  # ... remembering the old one
    assert s["master_offset"] == 20 and s["full_syncs"] == 0
    assert "started as master on a history this node was following" in replica.log_text()
    assert json.loads((replica.data_dir / "role.json").read_text())["role"] == "master"

    # Both take writes at the same offsets: a split brain.
    for i in range(3):
        replica.redis().set(f"on-replica{i}", "lost")
    for i in range(5):
        c.set(f"on-master{i}", i)
    assert master.stats()["replication_id"] == followed

    replicaof(replica, master.replica_address)
    wait_converged(master, [replica])
    after = replica.stats()
    assert after["full_syncs"] == 1 and after["partial_syncs"] == 0
    assert after["replication_id"] == followed
    assert digest(replica)["digest"] == digest(master)["digest"]
    assert replica.redis().get("on-replica0") is None  # its writes as master are gone
    assert replica.redis().get("on-master4") == b"4"


def test_master_restarted_as_master_keeps_its_replication_id(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=FAST)
    for i in range(10):
        master.redis().set(f"k{i}", i)
    before = master.stats()["replication_id"]
    assert json.loads((master.data_dir / "role.json").read_text())["role"] == "master"
    master.terminate()
    master.start()
    s = master.stats()
    assert (s["replication_id"], s["master_offset"]) == (before, 10)
    assert "following as a replica" not in master.log_text()
