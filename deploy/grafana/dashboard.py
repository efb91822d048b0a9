"""Generate deploy/grafana/synap.json with Grafana's grafana-foundation-sdk.

    .venv/bin/python deploy/grafana/dashboard.py     # rewrites synap.json

The SDK is a test dependency (``make install``); tests/integration/test_dashboard.py
checks that synap.json is what this script builds, that every PromQL expression in it
(and in deploy/prometheus/alerts.yml) parses, and that every metric it names is exported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.dashboard import Dashboard as DashboardBuilder
from grafana_foundation_sdk.builders.dashboard import DatasourceVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as TimeSeries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUT = Path(__file__).with_name("synap.json")
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")


def _targets(panel: Any, queries: list[tuple[str, str]]) -> Any:
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(
            Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i))
        )
    return panel


def stat(title: str, queries: list[tuple[str, str]], unit: str = "none") -> Any:
    return _targets(Stat().title(title).datasource(DS).unit(unit).height(4).span(6), queries)


def series(title: str, queries: list[tuple[str, str]], unit: str = "none", span: int = 12) -> Any:
    panel = TimeSeries().title(title).datasource(DS).unit(unit).height(8).span(span)
    return _targets(panel, queries)


def build() -> dict[str, Any]:
    d = (
        DashboardBuilder("Synap")
        .uid("synap")
        .tags(["synap", "replication"])
        .refresh("10s")
        .time("now-1h", "now")
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    d = d.with_row(Row("Topology and roles"))
    d = d.with_panel(stat("Role", [("synap_node_role == 1", "{{instance}} {{role}}")]))
    d = d.with_panel(stat("Masters", [("count(synap_replication_is_master == 1)", "masters")]))
    d = d.with_panel(
        stat("Connected replicas", [("synap_replication_connected_replicas", "{{instance}}")])
    )
    d = d.with_panel(stat("Replica links up", [("sum(synap_replication_connected)", "links up")]))
    d = d.with_row(Row("Replication"))
    d = d.with_panel(series("Offsets", [("synap_replication_offset", "{{instance}}")]))
    d = d.with_panel(
        series(
            "Lag per replica (records)",
            [
                ("synap_replication_replica_lag_operations", "{{replica}} ({{address}})"),
                ("synap_replication_lag_operations", "{{instance}} (own view)"),
            ],
        )
    )
    d = d.with_panel(
        series(
            "Lag per replica (seconds)",
            [
                ("synap_replication_replica_lag_seconds", "{{replica}} ({{address}})"),
                ("synap_replication_max_lag_seconds", "max_lag_ms {{instance}}"),
            ],
            unit="s",
        )
    )
    d = d.with_panel(
        series(
            "Seconds since last ACK",
            [("synap_replication_replica_last_ack_age_seconds", "{{replica}}")],
            unit="s",
        )
    )
    d = d.with_panel(
        series(
            "Sync events (per 5 min)",
            [
                ("increase(synap_replication_sync_full_total[5m])", "full served {{instance}}"),
                (
                    "increase(synap_replication_sync_partial_ok_total[5m])",
                    "partial served {{instance}}",
                ),
                (
                    "increase(synap_replication_sync_partial_err_total[5m])",
                    "partial refused {{instance}}",
                ),
                (
                    "increase(synap_replication_full_syncs_performed_total[5m])",
                    "full performed {{instance}}",
                ),
                (
                    "increase(synap_replication_partial_syncs_performed_total[5m])",
                    "partial performed {{instance}}",
                ),
            ],
        )
    )
    d = d.with_panel(
        series(
            "Replication traffic",
            [
                ("rate(synap_replication_sent_bytes_total[1m])", "sent {{instance}}"),
                ("rate(synap_replication_received_bytes_total[1m])", "received {{instance}}"),
            ],
            unit="Bps",
        )
    )
    d = d.with_row(Row("Commands"))
    d = d.with_panel(
        series(
            "Throughput per command",
            [("sum by (api, command) (rate(synap_commands_total[1m]))", "{{api}} {{command}}")],
            unit="ops",
        )
    )
    d = d.with_panel(
        series(
            "Latency per command (p99)",
            [
                (
                    "histogram_quantile(0.99, sum by (api, command, le) "
                    "(rate(synap_command_duration_seconds_bucket[5m])))",
                    "{{api}} {{command}}",
                )
            ],
            unit="s",
        )
    )
    d = d.with_row(Row("Persistence"))
    d = d.with_panel(
        series(
            "WAL fsync latency",
            [
                (
                    "histogram_quantile(0.5, sum by (instance, le) "
                    "(rate(synap_wal_fsync_duration_seconds_bucket[5m])))",
                    "p50 {{instance}}",
                ),
                (
                    "histogram_quantile(0.99, sum by (instance, le) "
                    "(rate(synap_wal_fsync_duration_seconds_bucket[5m])))",
                    "p99 {{instance}}",
                ),
            ],
            unit="s",
        )
    )
    d = d.with_panel(
        series(
            "Snapshots",
            [
                ("synap_snapshot_age_seconds", "age {{instance}}"),
                ("synap_snapshot_last_duration_seconds", "duration {{instance}}"),
            ],
            unit="s",
        )
    )
    d = d.with_row(Row("Resources"))
    d = d.with_panel(
        series(
            "Memory",
            [
                ("synap_memory_used_bytes", "keyspace {{instance}}"),
                ("process_resident_memory_bytes", "RSS {{instance}}"),
            ],
            unit="bytes",
            span=8,
        )
    )
    d = d.with_panel(
        series(
            "Clients",
            [
                ("synap_clients_connected", "connected {{instance}}"),
                ("rate(synap_clients_rejected_total[5m])", "rejected/s {{instance}}"),
            ],
            span=8,
        )
    )
    d = d.with_panel(
        series(
            "Keys",
            [
                ("synap_keys", "keys {{instance}}"),
                ("rate(synap_expired_keys_total[5m])", "expired/s {{instance}}"),
                ("rate(synap_evicted_keys_total[5m])", "evicted/s {{instance}}"),
            ],
            span=8,
        )
    )
    built: dict[str, Any] = json.loads(json.dumps(d.build(), cls=JSONEncoder))
    for i, panel in enumerate(built["panels"], start=1):
        panel["id"] = i
    return built


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
