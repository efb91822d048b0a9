"""``GET /metrics``: node, keyspace, replication, persistence and command figures for
Prometheus, rendered by ``prometheus_client`` from a custom collector.

Nothing here is computed on the hot path: the collector reads the node's counters and
stats views (``ReplicationManager.stats()``, ``Persistence.stats()``, the plain dicts of
:mod:`synap.latency`) at scrape time, on a private registry per node (so a test process
may run several). Names follow Prometheus conventions: base units (seconds, bytes),
``_total`` on counters; ``promtool check metrics`` finds nothing to lint. Label values are
escaped by the library; peer-supplied ones are validated at the handshake and
non-printable characters escaped here as well. docs/MONITORING.md lists every metric.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from synap import __version__, hugepages, sizeclasses
from synap.latency import CommandTimings, LatencyHistogram
from synap.replication.link_state import STATUS_WORDS
from synap.replication.peer_fields import escape_text

if TYPE_CHECKING:
    from synap.api.services import MetricsServices

ROLES = ("master", "replica", "standalone")
# The states of a replica as its master sees it (stats ``replicas[].state``) ...
REPLICA_STATES = ("wait_bgsave", "send_bulk", "online")
# ... and of a replica's link to its master (stats ``state`` on a replica).
LINK_STATES = STATUS_WORDS  # connecting, sync, connected, disconnected, stopped
KV_OPS = ("gets", "sets", "dels", "hits", "misses")


def label_value(value: object) -> str:
    """A peer-supplied label value with non-printable characters escaped (``\\n`` as
    the two characters backslash and n). The exposition-format escaping of the result
    (backslash, double quote, line feed) is the library's."""
    return escape_text(value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    # The library appends _total to the sample; the family name goes without it.
    return CounterMetricFamily(name.removesuffix("_total"), doc, value=value)


def _buckets(hist: LatencyHistogram) -> list[tuple[str, float]]:
    return [(le, float(n)) for le, n in hist.cumulative()]


def _histogram(name: str, doc: str, hist: LatencyHistogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, buckets=_buckets(hist), sum_value=hist.total)


def _by_command(table: CommandTimings) -> dict[str | bytes, LatencyHistogram]:
    """The histograms by command: RESP times subcommands apart (``CLIENT|ID``, for INFO
    commandstats); the metrics add them up under the command (``client``)."""
    out: dict[str | bytes, LatencyHistogram] = {}
    for key, hist in list(table.latency.items()):
        if isinstance(key, bytes) and b"|" in key:
            key = key.split(b"|", 1)[0]
        into = out.get(key)
        if into is None:
            out[key] = hist
            continue
        merged = LatencyHistogram(into.bounds)
        merged.counts = [a + b for a, b in zip(into.counts, hist.counts, strict=True)]
        merged.total = into.total + hist.total
        merged.count = into.count + hist.count
        out[key] = merged
    return out


def _name(key: str | bytes) -> str:
    return key.decode(errors="replace").lower() if isinstance(key, bytes) else key


class NodeCollector(Collector):
    """Everything a node exports, read fresh on every scrape."""

    def __init__(self, node: MetricsServices) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node = self.node
        stats = node.replication.stats()
        yield from self._node(stats)
        yield from self._keyspace()
        yield from self._replication(stats)
        yield from self._persistence()
        yield from self._commands()

    # ------------------------------------------------------------------ node
    def _node(self, stats: Mapping[str, Any]) -> Iterable[Metric]:
        node = self.node
        info = GaugeMetricFamily(
            "synap_node_info", "Constant 1, labelled with this node's id and version.",
            labels=["node_id", "version"],
        )  # fmt: skip
        info.add_metric([label_value(node.node_id), __version__], 1)
        yield info
        role = GaugeMetricFamily(
            "synap_node_role", "1 for this node's current role, 0 for the others.",
            labels=["role"],
        )  # fmt: skip
        for name in ROLES:
            role.add_metric([name], int(stats["role"] == name))
        yield role
        yield _gauge(
            "synap_node_start_time_seconds", "Unix time this node started.", node.started_at
        )
        yield _gauge(
            "synap_clients_connected", "Redis-protocol clients connected.", len(node.clients())
        )
        yield _counter(
            "synap_connections_received_total",
            "Redis-protocol connections accepted (INFO total_connections_received).",
            node.connections_received,
        )
        yield _counter(
            "synap_clients_rejected_total",
            "Redis-protocol connections refused at server.max_clients.",
            node.clients_rejected,
        )
        yield _counter(
            "synap_commands_processed_total",
            "Redis-protocol commands plus authenticated HTTP requests "
            "(INFO total_commands_processed).",
            node.commands_processed,
        )

    # ------------------------------------------------------------------ keyspace
    def _keyspace(self) -> Iterable[Metric]:
        node = self.node
        ks = node.keyspace
        s = node.commands.stats
        yield _gauge(
            "synap_keys", "Keys in the keyspace (expired keys not yet deleted included).", len(ks)
        )
        yield _gauge("synap_memory_used_bytes", "Accounted keyspace memory.", ks.used_memory)
        ops = CounterMetricFamily("synap_kv_operations", "Key-value operations.", labels=["op"])
        for op in KV_OPS:
            ops.add_metric([op], getattr(s, op))
        yield ops
        yield _counter("synap_expired_keys_total", "Keys removed by expiry.", ks.expired_total)
        yield _counter("synap_evicted_keys_total", "Keys removed by eviction.", ks.evicted_total)

    # ------------------------------------------------------------------ replication
    def _replication(self, stats: Mapping[str, Any]) -> Iterable[Metric]:
        node = self.node
        repl = node.replication
        role = stats["role"]
        yield _gauge(
            "synap_replication_is_master", "1 when this node is a master.", int(role == "master")
        )
        yield _gauge(
            "synap_replication_offset",
            "Offset of the last record in this node's history (records, not bytes).",
            node.history.offset,
        )
        yield _gauge(
            "synap_replication_master_offset",
            "The master's offset: this node's own on a master, the newest heard of on a replica.",
            stats["master_offset"],
        )
        yield _gauge(
            "synap_replication_max_lag_seconds",
            "replication.max_lag_ms in seconds: lag above it marks a replica lagging.",
            repl.config.max_lag_ms / 1000,
        )
        # Served to replicas (Redis INFO stats sync_full / sync_partial_ok / sync_partial_err)
        # apart from those this node performed as a replica.
        yield _counter(
            "synap_replication_sync_full_total", "Full syncs served to replicas.", repl.sync_full
        )
        yield _counter(
            "synap_replication_sync_partial_ok_total",
            "Partial syncs served to replicas.",
            repl.sync_partial_ok,
        )
        yield _counter(
            "synap_replication_sync_partial_err_total",
            "Partial syncs requested by replicas and refused (served as full syncs).",
            repl.sync_partial_err,
        )
        refusals = CounterMetricFamily(
            "synap_replication_partial_sync_refusals",
            "Partial syncs refused (served as full syncs), by reason.",
            labels=["reason"],
        )
        for reason, n in list(repl.partial_sync_refusals.items()):
            refusals.add_metric([reason], n)
        yield refusals
        yield _counter(
            "synap_replication_full_syncs_performed_total",
            "Full syncs this node performed as a replica.",
            repl.full_syncs_performed,
        )
        yield _counter(
            "synap_replication_partial_syncs_performed_total",
            "Partial syncs this node performed as a replica.",
            repl.partial_syncs_performed,
        )
        yield _counter(
            "synap_replication_history_truncations_total",
            "Times this node truncated its history at a fork point named by its master.",
            repl.history_truncations,
        )
        yield _counter(
            "synap_replication_records_truncated_total",
            "Records removed by those truncations (kept in diverged-*.jsonl files).",
            repl.records_truncated,
        )
        yield _counter(
            "synap_replication_sent_bytes_total",
            "Bytes written to replicas (streams and full syncs).",
            repl.bytes_sent,
        )
        yield _counter(
            "synap_replication_full_sync_sent_bytes_total",
            "Snapshot bytes sent in full syncs served.",
            repl.full_sync_bytes_sent,
        )
        yield _counter(
            "synap_replication_forks_total",
            "Processes forked to send full syncs (INFO stats total_forks).",
            repl.total_forks,
        )
        yield _gauge(
            "synap_replication_latest_fork_seconds",
            "How long the last fork() for a full sync held the master (latest_fork_usec).",
            repl.latest_fork_usec / 1e6,
        )
        yield _gauge(
            "synap_huge_pages_active",
            "1 when Python's object arenas are on transparent huge pages (INFO synap_huge_pages).",
            int(hugepages.status().active),
        )
        classes = sizeclasses.stats()
        yield _gauge(
            "synap_size_classes_saved_bytes",
            "Bytes the 8-byte size classes save against pymalloc's 16-byte classes "
            "(INFO synap_size_classes_saved_bytes; 0 when kv_store.size_classes is pymalloc).",
            classes.get("saved_bytes", 0),
        )
        yield _gauge(
            "synap_replication_log_unforked_bytes",
            "Bytes of the replication log's records held where a full sync's fork() does "
            "not copy them (INFO synap_replication_log_unforked_bytes).",
            classes.get("detached_bytes", 0),
        )
        yield _gauge(
            "synap_shared_values_bytes",
            "Bytes of values held in memory a full sync's fork() shares with its child "
            "instead of copying its page tables (INFO synap_shared_values_bytes).",
            classes.get("shared_bytes", 0),
        )
        yield _histogram(
            "synap_replication_full_sync_duration_seconds",
            "Time to send a full sync to a replica.",
            repl.full_sync_seconds,
        )
        yield _histogram(
            "synap_replication_apply_duration_seconds",
            "Time to apply one batch of streamed records on a replica.",
            repl.apply_seconds,
        )
        backlog = repl.backlog
        yield _gauge(
            "synap_replication_log_first_offset",
            "Oldest record still in the replication log.",
            stats["backlog_first_offset"],
        )
        yield _gauge(
            "synap_replication_log_last_offset",
            "Newest record in the replication log.",
            backlog.last_offset,
        )
        yield _gauge(
            "synap_replication_log_records",
            "Records held in the replication log.",
            stats["backlog_size"],
        )
        yield _gauge(
            "synap_replication_log_bytes",
            "Payload bytes held in the replication log.",
            backlog.nbytes,
        )
        yield _gauge(
            "synap_replication_log_disk_first_offset",
            "Oldest record a partial sync can be read from on disk (-1: no log on disk).",
            stats["log_disk_first_offset"],
        )
        yield _gauge(
            "synap_replication_log_disk_last_offset",
            "Newest record in the WAL segments on disk (-1: no log on disk).",
            stats["log_disk_last_offset"],
        )
        yield _counter(
            "synap_replication_partial_syncs_from_disk_total",
            "Partial syncs served that began in the WAL segments on disk.",
            stats["partial_syncs_from_disk"],
        )
        yield _counter(
            "synap_replication_records_sent_from_disk_total",
            "Records sent to replicas from the WAL segments on disk.",
            stats["records_sent_from_disk"],
        )
        yield _gauge(
            "synap_replication_epoch",
            "Newest election epoch this node knows (automatic failover; 0 in manual mode).",
            repl.epoch,
        )
        coordinator = self.node.coordinator
        if coordinator is not None:
            failover = coordinator.status()
            yield _gauge(
                "synap_failover_is_leader",
                "1 while this node holds the etcd leader key and may accept writes.",
                1 if failover.get("is_leader") else 0,
            )
            yield _gauge(
                "synap_failover_etcd_reachable",
                "1 while this node's last etcd request succeeded.",
                1 if failover.get("etcd_reachable") else 0,
            )
        replicas = stats.get("replicas")
        if replicas is not None and role != "standalone":
            yield from self._replicas(replicas)
        if role == "replica":
            yield from self._link(stats)

    def _replicas(self, replicas: list[dict[str, Any]]) -> Iterable[Metric]:
        """Master side: one series per replica that completed the handshake."""
        now = time.time()
        yield _gauge(
            "synap_replication_connected_replicas", "Replicas connected now.", len(replicas)
        )
        labels = ["replica", "address"]
        offset = GaugeMetricFamily(
            "synap_replication_replica_offset",
            "Last offset each replica acknowledged as applied.",
            labels=labels,
        )
        lag_ops = GaugeMetricFamily(
            "synap_replication_replica_lag_operations",
            "Records each replica is behind.",
            labels=labels,
        )
        lag_s = GaugeMetricFamily(
            "synap_replication_replica_lag_seconds",
            "How stale each replica's data is, on the master's clock.",
            labels=labels,
        )
        ack_age = GaugeMetricFamily(
            "synap_replication_replica_last_ack_age_seconds",
            "Seconds since each replica last acknowledged (since it connected, before).",
            labels=labels,
        )
        lagging = GaugeMetricFamily(
            "synap_replication_replica_lagging",
            "1 when a replica's lag is above replication.max_lag_ms.",
            labels=labels,
        )
        state = GaugeMetricFamily(
            "synap_replication_replica_state",
            "1 for each replica's current sync state (wait_bgsave, send_bulk, online).",
            labels=[*labels, "state"],
        )
        for r in replicas:
            ids = [label_value(r["id"]), label_value(r["address"])]
            offset.add_metric(ids, r["offset"])
            lag_ops.add_metric(ids, r["lag_operations"])
            lag_s.add_metric(ids, r["lag_ms"] / 1000)
            ack_age.add_metric(ids, max(0.0, now - r["last_heartbeat"]))
            lagging.add_metric(ids, int(r["lagging"]))
            for name in REPLICA_STATES:
                state.add_metric([*ids, name], int(r["state"] == name))
        yield from (offset, lag_ops, lag_s, ack_age, lagging, state)

    def _link(self, stats: Mapping[str, Any]) -> Iterable[Metric]:
        """Replica side: this node's link to its master."""
        yield _gauge(
            "synap_replication_lag_operations",
            "Records behind the master.",
            stats["lag_operations"],
        )
        yield _gauge(
            "synap_replication_lag_seconds",
            "How stale this replica's data is, in master time (grows while the link is down).",
            stats["lag_ms"] / 1000,
        )
        yield _gauge(
            "synap_replication_connected",
            "1 when the link to the master is up and streaming.",
            int(stats["connected"]),
        )
        yield _gauge(
            "synap_replication_synced",
            "1 once a sync with the current master completed (GET /health is 503 before).",
            int(stats["synced"]),
        )
        state = GaugeMetricFamily(
            "synap_replication_link_state",
            "1 for the link's current state (connecting, sync, connected, disconnected, stopped).",
            labels=["state"],
        )
        for name in LINK_STATES:
            state.add_metric([name], int(stats["state"] == name))
        yield state
        down = stats["link_down_seconds"]
        yield _gauge(
            "synap_replication_link_down_seconds",
            "Seconds since the link to the master went down; 0 while it is up.",
            0 if down is None else down,
        )
        heartbeat = stats["last_heartbeat"]
        if heartbeat:
            yield _gauge(
                "synap_replication_master_last_heartbeat_age_seconds",
                "Seconds since the last heartbeat from the master arrived.",
                max(0.0, time.time() - heartbeat),
            )
        yield _counter(
            "synap_replication_received_bytes_total",
            "Bytes received from masters (full syncs included).",
            stats["total_bytes"],
        )
        yield _counter(
            "synap_replication_records_applied_total",
            "Records received in the stream and applied (full-sync keys not counted).",
            stats["records_streamed"],
        )
        yield _counter(
            "synap_replication_failed_syncs_total",
            "Full syncs that arrived corrupt and were discarded.",
            stats["failed_syncs"],
        )

    # ------------------------------------------------------------------ persistence
    def _persistence(self) -> Iterable[Metric]:
        p = self.node.persistence
        yield _gauge(
            "synap_persistence_enabled",
            "1 when this node writes a WAL and snapshots.",
            int(p is not None),
        )
        if p is None:
            return
        ps: dict[str, Any] = p.stats()
        wal = p.wal
        yield _gauge("synap_wal_bytes", "Bytes in the WAL segments on disk.", ps["wal_bytes"])
        yield _gauge("synap_wal_segments", "WAL segment files on disk.", ps["wal_segments"])
        yield _counter(
            "synap_wal_written_bytes_total", "Bytes written to the WAL.", ps["wal_bytes_written"]
        )
        yield _histogram(
            "synap_wal_fsync_duration_seconds", "Time per WAL fdatasync.", wal.fsync_latency
        )
        yield _histogram(
            "synap_wal_write_duration_seconds",
            "Time per WAL write() of a batch of records (group commit).",
            wal.write_latency,
        )
        yield _counter(
            "synap_snapshots_written_total", "Snapshots written.", ps["snapshots_written"]
        )
        yield _counter(
            "synap_snapshot_failures_total", "Snapshots that failed.", ps["snapshot_failures"]
        )
        yield _gauge(
            "synap_snapshot_in_progress", "1 while a snapshot is being written.",
            int(bool(ps["snapshot_in_progress"])),
        )  # fmt: skip
        last_ms = int(ps["last_snapshot_ms"])
        if last_ms:
            yield _gauge(
                "synap_snapshot_last_duration_seconds",
                "How long the last snapshot took.",
                int(ps["last_snapshot_duration_ms"]) / 1000,
            )
            yield _gauge(
                "synap_snapshot_last_timestamp_seconds",
                "Unix time the last snapshot was completed.",
                last_ms / 1000,
            )
            yield _gauge(
                "synap_snapshot_age_seconds",
                "Seconds since the last snapshot was completed.",
                max(0.0, time.time() - last_ms / 1000),
            )

    # ------------------------------------------------------------------ commands
    def _commands(self) -> Iterable[Metric]:
        node = self.node
        calls = CounterMetricFamily(
            "synap_commands",
            "Commands run, by front end (resp, http) and name (RESP command, HTTP route).",
            labels=["api", "command"],
        )
        latency = HistogramMetricFamily(
            "synap_command_duration_seconds",
            "Time to run each command (RESP: the handler; HTTP: the whole request).",
            labels=["api", "command"],
        )
        timings: tuple[tuple[str, CommandTimings], ...] = (
            ("resp", node.resp_timings),
            ("http", node.http_timings),
        )
        for api, table in timings:
            for key, hist in _by_command(table).items():
                labels = [api, _name(key)]
                calls.add_metric(labels, hist.count)
                latency.add_metric(labels, _buckets(hist), hist.total)
        yield calls
        yield latency


def build_registry(node: MetricsServices) -> CollectorRegistry:
    """A private registry with this node's collector and the process collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node))
    ProcessCollector(registry=registry)
    return registry


class MetricsRenderer:
    """``GET /metrics`` for one node: its registry is built on first use and kept."""

    def __init__(self, node: MetricsServices) -> None:
        self.node = node
        self._registry: CollectorRegistry | None = None

    def render(self) -> bytes:
        if self._registry is None:
            self._registry = build_registry(self.node)
        return generate_latest(self._registry)


def render_metrics(node: MetricsServices) -> bytes:
    """The exposition text from a registry built for this call (tests, one-offs)."""
    return generate_latest(build_registry(node))
