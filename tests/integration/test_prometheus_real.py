"""A real Prometheus (Debian's package) scrapes a master and two replicas with the rules
of deploy/prometheus/alerts.yml (``for:`` shortened): the lag and role series arrive at
``/api/v1/query``, and killing a replica makes SynapReplicaDisconnected fire at
``/api/v1/alerts``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.prom import PrometheusServer
from tests.support.server import NodeFactory, wait_caught_up, wait_for


@pytest.fixture
def group(node_factory: NodeFactory) -> Iterator[tuple[Any, ...]]:
    master = node_factory.master()
    replicas = [node_factory.replica(master), node_factory.replica(master)]
    targets = [f"127.0.0.1:{n.port}" for n in (master, *replicas)]
    prom = PrometheusServer(node_factory.base_dir, targets)
    try:
        prom.start()
        yield master, replicas, prom
    except BaseException:
        print(prom.log_text())
        raise
    finally:
        prom.stop()


def firing(prom: PrometheusServer, name: str) -> list[dict[str, Any]]:
    return [
        a
        for a in prom.api("alerts")["alerts"]
        if a["labels"]["alertname"] == name and a["state"] == "firing"
    ]


def test_prometheus_scrapes_the_group_and_the_disconnect_alert_fires(
    group: tuple[Any, ...],
) -> None:
    master, replicas, prom = group
    client = master.redis()
    for i in range(50):
        client.set(f"k{i}", i)
    wait_caught_up(master, replicas)
    master_target = f"127.0.0.1:{master.port}"

    def all_up() -> bool:
        return len(prom.query("up == 1")) == 3

    wait_for(all_up, 30, message=lambda: str(prom.api("targets")))
    lag = wait_for(
        lambda: (
            r if len(r := prom.query("synap_replication_replica_lag_operations")) == 2 else None
        ),
        20,
    )
    ids = {r["id"] for r in master.stats()["replicas"]}
    assert {s["metric"]["replica"] for s in lag} == ids
    assert all(s["metric"]["instance"] == master_target for s in lag)
    roles = prom.query("synap_node_role == 1")
    assert sorted((s["metric"]["instance"], s["metric"]["role"]) for s in roles) == sorted(
        [(master_target, "master")] + [(f"127.0.0.1:{r.port}", "replica") for r in replicas]
    )
    own = wait_for(
        lambda: r if len(r := prom.query("synap_replication_lag_seconds")) == 2 else None, 20
    )
    assert {s["metric"]["instance"] for s in own} == {f"127.0.0.1:{r.port}" for r in replicas}
    query = f'synap_replication_offset{{instance="{master_target}"}}'
    wait_for(lambda: [float(s["value"][1]) for s in prom.query(query)] == [50.0], 20)
    assert firing(prom, "SynapReplicaDisconnected") == []
    assert firing(prom, "SynapNoMaster") == []

    replicas[1].kill()
    alerts = wait_for(lambda: firing(prom, "SynapReplicaDisconnected") or None, 40,
                      message=lambda: str(prom.api("alerts")))  # fmt: skip
    assert [a["labels"]["instance"] for a in alerts] == [master_target]
    assert alerts[0]["labels"]["severity"] == "critical"
    assert firing(prom, "SynapNoMaster") == []  # the master is still there

    # Without its master, the remaining replica is a group with no master.
    master.kill()
    wait_for(lambda: firing(prom, "SynapNoMaster") or None, 40,
             message=lambda: str(prom.api("alerts")))  # fmt: skip
