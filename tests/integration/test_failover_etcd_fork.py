"""The old master returns with writes the new master never had (issue 12, item 6), and
the master partitioned from its replicas only. Real etcd, real nodes, fault proxies.

Node ``a`` starts first and is elected. It reaches etcd through one fault proxy, and its
replicas reach its replica listener through another (published in etcd with
``replication.failover.announce_replica_address``), so either link can be partitioned
alone. The old master truncates its history at the fork point the new master names,
keeps the removed records in ``diverged-<replid>-<offset>.jsonl`` and continues by
partial sync (docs/OPERATIONS.md, "The old master comes back").
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

from synap.persistence.divergence import read_diverged_file
from synap.store.effects import decode_record
from tests.integration.etcd_support import (
    TTL,
    etcd_node,
    failover_status,
    set_ok,
)
from tests.integration.failover_support import digest
from tests.support.etcd import EtcdProcess
from tests.support.faultproxy import FaultProxy
from tests.support.ports import HOST
from tests.support.server import NodeFactory, SynapProcess, wait_caught_up, wait_for


@dataclass
class Group:
    a: SynapProcess  # the first master
    others: list[SynapProcess]
    to_etcd: FaultProxy  # a <-> etcd
    to_a: FaultProxy  # replicas -> a's replica listener

    @property
    def nodes(self) -> list[SynapProcess]:
        return [self.a, *self.others]


def group_with_proxies(factory: NodeFactory, etcd: EtcdProcess) -> Group:
    to_etcd = factory.proxy((HOST, etcd.client_port))
    to_a = factory.proxy((HOST, 1))  # retargeted once a's port is known
    a = etcd_node(
        factory,
        etcd,
        "a",
        endpoints=f"http://{to_etcd.address}",
        announce_replica_address=to_a.address,
        wait=False,
    )
    assert a.replica_port is not None
    to_a.retarget(HOST, a.replica_port)
    a.wait_ready()
    wait_for(lambda: failover_status(a)["is_leader"], 10.0)
    others = [etcd_node(factory, etcd, name) for name in ("b", "c")]
    wait_for(
        lambda: all(o.stats()["role"] == "replica" and o.stats()["connected"] for o in others),
        15.0,
        message="b and c never followed a",
    )
    return Group(a, others, to_etcd, to_a)


def write_and_settle(g: Group) -> tuple[int, str, dict[str, int]]:
    """Twenty writes on ``a``, replicated to both others: returns the fork point to be
    (a's offset), a's replication id, and each other node's full syncs so far (their
    first sync)."""
    a = g.a
    for i in range(20):
        assert set_ok(a, f"k{i}", f"v{i}")
    wait_caught_up(a, g.others)
    stats = a.stats()
    return (
        stats["master_offset"],
        stats["replication_id"],
        {o.name: o.stats()["full_syncs"] for o in g.others},
    )


def wait_new_master(nodes: list[SynapProcess], timeout: float) -> SynapProcess:
    def elected() -> SynapProcess | None:
        found = [n for n in nodes if n.is_running() and failover_status(n)["is_leader"]]
        return found[0] if len(found) == 1 else None

    found = wait_for(elected, timeout, interval=0.1, message="no new master elected")
    assert found is not None
    return found


def wait_all_follow(master: SynapProcess, nodes: list[SynapProcess], timeout: float = 20.0) -> None:
    """Every other node streams ``master``'s history at its offset (master quiet)."""

    def done() -> bool:
        ms = master.stats()
        for n in nodes:
            if n is master:
                continue
            s = n.stats()
            if not (
                s["role"] == "replica"
                and s["connected"]
                and s["replication_id"] == ms["replication_id"]
                and s["replica_offset"] == ms["master_offset"]
            ):
                return False
        return True

    wait_for(done, timeout, interval=0.1, message=f"nodes never converged on {master.name}")


def diverged_keys(node: SynapProcess, replid: str, fork: int) -> list[bytes]:
    path = node.data_dir / f"diverged-{replid}-{fork}.jsonl"
    header, saved = read_diverged_file(path)
    assert header["fork_offset"] == fork and header["records"] == len(saved)
    assert [o for o, _ in saved] == list(range(fork + 1, fork + 1 + len(saved)))
    return [decode_record(record)[0][1] for _, record in saved]


def check_repaired(
    old: SynapProcess, new: SynapProcess, nodes: list[SynapProcess], replid: str, fork: int
) -> dict[str, object]:
    wait_all_follow(new, nodes)
    s = old.stats()
    assert s["role"] == "replica"
    assert s["history_truncations"] == 1, s
    assert digest(old)["digest"] == digest(new)["digest"]
    for n in nodes:
        assert digest(n)["digest"] == digest(new)["digest"], n.name
    assert s["diverged_file"] == str(old.data_dir / f"diverged-{replid}-{fork}.jsonl")
    return s


def test_old_master_partitioned_from_everyone_truncates_its_writes_and_partial_syncs(
    node_factory: NodeFactory, etcd_server: EtcdProcess
) -> None:
    """Healed partition, same process: clients write to ``a`` until it fences itself
    (2/3 TTL without etcd); none of those writes reach a replica. After the heal ``a``
    follows the new master, drops exactly those writes (kept in the diverged file) and
    resumes by partial sync."""
    g = group_with_proxies(node_factory, etcd_server)
    a = g.a
    fork, replid, others_full = write_and_settle(g)
    before = a.stats()

    g.to_a.pause()  # a <-> replicas
    g.to_etcd.pause()  # a <-> etcd
    acked: list[str] = []
    deadline = time.monotonic() + TTL + 3
    i = 0
    while time.monotonic() < deadline:
        i += 1
        if not set_ok(a, f"partitioned{i}", "lost"):
            break  # fenced: it stopped writing by itself
        acked.append(f"partitioned{i}")
        time.sleep(0.05)
    assert acked, "the partitioned master acknowledged no write before fencing itself"
    assert not set_ok(a, "k0", "fenced")
    new = wait_new_master(g.others, TTL + 8)
    assert set_ok(new, "on-new", "1")

    g.to_a.cut()  # the old connections are gone when the network heals
    g.to_a.resume()
    g.to_etcd.resume()
    s = check_repaired(a, new, g.nodes, replid, fork)
    assert s["records_truncated"] == len(acked), (s, acked)
    assert s["full_syncs"] == before["full_syncs"]
    assert s["partial_syncs"] == before["partial_syncs"] + 1
    assert [k.decode() for k in diverged_keys(a, replid, fork)] == acked
    assert a.http.get(f"/kv/get/{acked[0]}").status_code == 404
    assert a.http.get("/kv/get/on-new").json()["value"] == "1"
    assert f"truncated {len(acked)} record(s) after offset {fork}" in a.log_text()
    for other in g.others:
        assert other.stats()["full_syncs"] == others_full[other.name], other.name


def test_old_master_killed_with_unreplicated_writes_truncates_them_on_restart(
    node_factory: NodeFactory, etcd_server: EtcdProcess
) -> None:
    """Restarted old master: ``a`` acknowledged three writes its replicas never
    received (async replication), then was SIGKILLed. Restarted with the same flags it
    follows the new master, truncates those three records and partial-syncs."""
    g = group_with_proxies(node_factory, etcd_server)
    a = g.a
    fork, replid, others_full = write_and_settle(g)
    g.to_a.pause()
    unreplicated = [f"unreplicated{i}" for i in range(3)]
    for key in unreplicated:
        assert set_ok(a, key, "lost")  # acknowledged: async replication
    a.kill(signal.SIGKILL)
    g.to_a.cut()
    g.to_a.resume()
    new = wait_new_master(g.others, TTL + 8)
    assert set_ok(new, "on-new", "1")

    a.start()  # --role master, as before: it sees another leader and follows it
    s = check_repaired(a, new, g.nodes, replid, fork)
    assert (s["full_syncs"], s["partial_syncs"], s["records_truncated"]) == (0, 1, 3), s
    assert [k.decode() for k in diverged_keys(a, replid, fork)] == unreplicated
    assert a.http.get("/kv/get/unreplicated0").status_code == 404
    assert "truncated 3 record(s) after offset" in a.log_text()
    for other in g.others:
        assert other.stats()["full_syncs"] == others_full[other.name], other.name


def test_master_partitioned_from_its_replicas_only_keeps_the_lease_and_they_partial_sync(
    node_factory: NodeFactory, etcd_server: EtcdProcess
) -> None:
    """Master <-> replicas partitioned, master <-> etcd fine: the master still holds the
    lease, so nobody is elected (no failover) and it keeps taking writes. After the heal
    the replicas reconnect and catch up by partial sync."""
    g = group_with_proxies(node_factory, etcd_server)
    a = g.a
    assert set_ok(a, "k", "v1")
    wait_caught_up(a, g.others)
    epoch = a.http.get("/api/replication/leader").json()["epoch"]
    before = {n.name: n.stats() for n in g.others}

    g.to_a.pause()
    # Well past the TTL: the lease is kept alive, so no replica campaigns.
    end = time.monotonic() + 2 * TTL + 1
    i = 0
    while time.monotonic() < end:
        i += 1
        assert set_ok(a, f"during{i}", "x"), "the master stopped writing while it held the lease"
        assert failover_status(a)["is_leader"]
        for n in g.others:
            assert not failover_status(n)["is_leader"], f"{n.name} was elected"
        time.sleep(0.1)
    assert a.http.get("/api/replication/leader").json()["epoch"] == epoch
    # The replicas' links are silent: cut them (a partition that lasts drops them).
    g.to_a.cut()
    g.to_a.resume()
    wait_all_follow(a, g.nodes)
    assert [n for n in g.nodes if failover_status(n)["is_leader"]] == [a]
    for n in g.others:
        s = n.stats()
        assert s["full_syncs"] == before[n.name]["full_syncs"], n.name
        assert s["partial_syncs"] >= before[n.name]["partial_syncs"] + 1, n.name
        assert digest(n)["digest"] == digest(a)["digest"], n.name
    assert a.http.get("/api/replication/leader").json()["epoch"] == epoch
