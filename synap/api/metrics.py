"""``GET /metrics``: node, keyspace and replication figures in the Prometheus text format."""

from __future__ import annotations

from typing import TYPE_CHECKING

from synap.replication.peer_fields import escape_text

if TYPE_CHECKING:
    from synap.node import Node


def label_value(value: object) -> str:
    """A label value in the text format's escaping (backslash, double quote and line
    feed, per the exposition format), after non-printable characters are escaped."""
    text = escape_text(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


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
    # Served to replicas (Redis INFO stats sync_full / sync_partial_ok / sync_partial_err)
    # apart from those this node performed as a replica.
    for name, help_text, value in (
        ("sync_full", "Full syncs served to replicas.", repl.sync_full),
        ("sync_partial_ok", "Partial syncs served to replicas.", repl.sync_partial_ok),
        (
            "sync_partial_err",
            "Partial syncs requested by replicas and refused (served as full syncs).",
            repl.sync_partial_err,
        ),
    ):
        metric(f"synap_replication_{name}_total", "counter", help_text, value)
    metric(
        "synap_replication_full_syncs_performed_total",
        "counter",
        "Full syncs this node performed as a replica.",
        repl.full_syncs_performed,
    )
    metric(
        "synap_replication_partial_syncs_performed_total",
        "counter",
        "Partial syncs this node performed as a replica.",
        repl.partial_syncs_performed,
    )
    if stats["role"] == "master":
        metric(
            "synap_replication_connected_replicas",
            "gauge",
            "Replicas online.",
            len(stats["replicas"]),
        )
        for r in stats["replicas"]:
            label = f'{{replica="{label_value(r["id"])}",address="{label_value(r["address"])}"}}'
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
        metric(
            "synap_replication_synced",
            "gauge",
            "1 once a sync with the current master completed (GET /health is 503 before).",
            int(stats["synced"]),
        )
    return "\n".join(lines) + "\n"
