"""``GET /metrics``: node, keyspace and replication figures in the Prometheus text format."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synap.node import Node


def render_metrics(node: Node) -> str:
    s = node.commands.stats
    ks = node.keyspace
    repl = node.replication
    stats = repl.stats()
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, value: float, labels: str = "") -> None:
        if not any(line.startswith(f"# HELP {name} ") for line in lines):
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name}{labels} {value}")

    metric("synap_keys", "gauge", "Keys in the keyspace.", len(ks))
    metric("synap_memory_used_bytes", "gauge", "Accounted keyspace memory.", ks.used_memory)
    for op in ("gets", "sets", "dels", "hits", "misses"):
        metric(
            "synap_kv_operations_total",
            "counter",
            "Key-value operations.",
            getattr(s, op),
            f'{{op="{op}"}}',
        )
    metric("synap_expired_keys_total", "counter", "Keys removed by expiry.", ks.expired_total)
    metric("synap_evicted_keys_total", "counter", "Keys removed by eviction.", ks.evicted_total)
    metric(
        "synap_replication_is_master",
        "gauge",
        "1 when this node is a master.",
        int(stats["role"] == "master"),
    )
    metric(
        "synap_replication_offset",
        "gauge",
        "Offset of the last record in this node's history.",
        node.history.offset,
    )
    metric(
        "synap_replication_full_syncs_total",
        "counter",
        "Full syncs served or performed.",
        repl.full_syncs,
    )
    metric(
        "synap_replication_partial_syncs_total",
        "counter",
        "Partial syncs served or performed.",
        repl.partial_syncs,
    )
    if stats["role"] == "master":
        metric(
            "synap_replication_connected_replicas",
            "gauge",
            "Replicas online.",
            len(stats["replicas"]),
        )
        for r in stats["replicas"]:
            label = f'{{replica="{r["id"]}",address="{r["address"]}"}}'
            metric(
                "synap_replication_replica_lag_operations",
                "gauge",
                "Records a replica is behind.",
                r["lag_operations"],
                label,
            )
            metric(
                "synap_replication_replica_lag_ms",
                "gauge",
                "Estimated replica lag in ms.",
                r["lag_ms"],
                label,
            )
    elif stats["role"] == "replica":
        metric(
            "synap_replication_lag_operations",
            "gauge",
            "Records behind the master.",
            stats["lag_operations"],
        )
        metric(
            "synap_replication_lag_ms",
            "gauge",
            "Estimated lag behind the master in ms.",
            stats["lag_ms"],
        )
        metric(
            "synap_replication_connected",
            "gauge",
            "1 when the link to the master is up.",
            int(stats["connected"]),
        )
    return "\n".join(lines) + "\n"
