"""``GET /metrics`` built on prometheus_client: valid for ``promtool check metrics`` (no
lint warnings) on a master with two replicas attached and on a replica, one family per
name, and the figures follow what the node does."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.prom import promtool
from tests.support.server import NodeFactory, SynapProcess, wait_caught_up, wait_for


def scrape(node: SynapProcess) -> str:
    response = node.http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "a metric family appears twice"
    for family in families:
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


def test_metrics_pass_promtool_lint_with_two_replicas(node_factory: NodeFactory) -> None:
    master = node_factory.master()
    replicas = [node_factory.replica(master), node_factory.replica(master)]
    client = master.redis()
    for i in range(20):
        client.set(f"k{i}", "v")
    client.get("k1")
    assert master.http.post("/kv/set", json={"key": "h", "value": "1"}).status_code == 200
    wait_caught_up(master, replicas)
    for node in (master, *replicas):
        text = scrape(node)
        result = promtool("check", "metrics", stdin=text.encode())
        assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
            f"{node.name}: {result.stdout}{result.stderr}\n{text}"
        )
        samples(text)

    text = scrape(master)
    assert value(text, "synap_node_role", role="master") == 1
    assert value(text, "synap_node_role", role="replica") == 0
    assert value(text, "synap_replication_connected_replicas") == 2
    assert value(text, "synap_replication_offset") == master.stats()["master_offset"] == 21
    ids = {r["id"]: r["address"] for r in master.stats()["replicas"]}
    assert len(ids) == 2
    for rid, address in ids.items():
        labels = {"replica": rid, "address": address}
        assert value(text, "synap_replication_replica_offset", **labels) == 21
        assert value(text, "synap_replication_replica_lag_operations", **labels) == 0
        assert value(text, "synap_replication_replica_state", state="online", **labels) == 1
        assert value(text, "synap_replication_replica_last_ack_age_seconds", **labels) < 30
    assert value(text, "synap_replication_sync_full_total") == 2
    assert value(text, "synap_commands_total", api="resp", command="set") == 20
    assert value(text, "synap_commands_total", api="resp", command="get") == 1
    assert value(text, "synap_command_duration_seconds_count", api="resp", command="set") == 20
    assert (
        value(text, "synap_command_duration_seconds_bucket", api="resp", command="set", le="+Inf")
        == 20
    )
    assert value(text, "synap_commands_total", api="http", command="/kv/set") == 1
    assert value(text, "synap_keys") == 21
    assert value(text, "synap_kv_operations_total", op="sets") == 21
    # fsync_mode periodic (every 1000 ms): the WAL holding these writes gets fsynced soon.
    wait_for(
        lambda: value(scrape(master), "synap_wal_fsync_duration_seconds_count") >= 1,
        10,
        message="no WAL fsync observed",
    )
    assert value(text, "synap_wal_write_duration_seconds_count") > 0
    assert value(text, "synap_replication_full_sync_duration_seconds_count") == 2
    assert value(text, "synap_replication_sent_bytes_total") > 0
    assert value(text, "process_resident_memory_bytes") > 0
    assert value(text, "process_open_fds") > 0

    rtext = scrape(replicas[0])
    assert value(rtext, "synap_node_role", role="replica") == 1
    assert value(rtext, "synap_replication_connected") == 1
    assert value(rtext, "synap_replication_synced") == 1
    assert value(rtext, "synap_replication_link_state", state="connected") == 1
    assert value(rtext, "synap_replication_offset") == 21
    assert value(rtext, "synap_replication_lag_operations") == 0
    assert value(rtext, "synap_replication_full_syncs_performed_total") == 1
    assert value(rtext, "synap_replication_received_bytes_total") > 0
    assert value(rtext, "synap_replication_apply_duration_seconds_count") >= 1
    assert value(rtext, "synap_replication_records_applied_total") == 21

    # A replica that goes away is dropped from the master's series at once.
    replicas[1].kill()
    wait_for(lambda: value(scrape(master), "synap_replication_connected_replicas") == 1, 15)
    text = scrape(master)
    gone = [r for r in ids if r not in {x["id"] for x in master.stats()["replicas"]}]
    assert len(gone) == 1 and gone[0] not in text


def test_standalone_metrics_are_valid_too(node_factory: NodeFactory) -> None:
    node = node_factory(role="standalone")
    node.redis().set("a", "b")
    text = scrape(node)
    result = promtool("check", "metrics", stdin=text.encode())
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout
    assert value(text, "synap_node_role", role="standalone") == 1
    assert ("synap_replication_connected_replicas", ()) not in samples(text)
