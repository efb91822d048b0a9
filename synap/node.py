"""A node: wires the keyspace, command layer, persistence, replication and front ends
together, and owns start-up, the periodic tasks and shutdown.

How a write travels::

    client -> front end (RESP / REST / command endpoint) -> Commands (synap.commands)
           -> Keyspace change + one effect record -> History.commit
           -> listeners: WAL (synap.persistence), replication log -> replica streams
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synap import __version__, build, hugepages, logfmt, sizeclasses
from synap.api import views
from synap.api.cmdstats import CommandStats
from synap.api.http import HttpApi
from synap.api.http_server import HttpServer, start_http_server
from synap.api.info import render_info
from synap.api.metrics import MetricsRenderer
from synap.api.resp import RespConnection
from synap.api.rpc import RpcConnection
from synap.commands.errors import CommandError
from synap.commands.layer import Commands, Limits, OpStats
from synap.config import Config, ReplicationConfig, is_loopback
from synap.coordination.driver import EtcdCoordinator
from synap.latency import CommandTimings, Count
from synap.listen import StartupError, bind, bind_error, fmt_address
from synap.persistence import PersistenceError, topology
from synap.persistence.lock import DataDirLocked
from synap.persistence.manager import Persistence, retention_from_config
from synap.replication.consistency import ConsistencyControls
from synap.replication.manager import ReplicationManager
from synap.replication.roles import Role, RoleMachine
from synap.store.digest import dataset_digest
from synap.store.history import History, Position
from synap.store.keyspace import EvictionPolicy, Keyspace
from synap.tls import TlsContexts, TlsError, build_contexts

__all__ = ["Node", "StartupError", "banner", "bind_error", "run_node"]

log = logging.getLogger("synap.node")


def banner(line: str) -> None:
    """Startup lines the spec shows go to stdout, unbuffered (as JSON lines under
    ``logging.format: json``)."""
    print(logfmt.json_line(line) if logfmt.json_enabled() else line, flush=True)


class Node:
    def __init__(self, config: Config, command_line: frozenset[str] = frozenset()) -> None:
        """``command_line``: the replication options given explicitly as flags
        (``role``, ``master_address``, ``replica_listen_address``); they win over the
        topology persisted in the data directory (synap/persistence/topology.py)."""
        self.started_at = time.time()
        # This process's id (as Redis's run_id): the replica id it announces to masters.
        self.node_id = f"node-{uuid.uuid4()}"
        self.topology_path: Path | None = None
        if config.persistence.enabled:
            self.topology_path = topology.path_in(Path(config.persistence.data_dir).resolve())
            config = _apply_topology(config, command_line)
        self.config = config
        kv = config.kv_store
        repl = config.replication
        initial_role = Role(repl.role) if repl.enabled else Role.STANDALONE
        self.roles = RoleMachine()
        logfmt.bind(self.node_id, lambda: str(self.roles.role))
        self.keyspace = Keyspace(
            kv.max_memory_mb * 1024 * 1024,
            EvictionPolicy(kv.eviction_policy),
            expire_on_access=initial_role is not Role.REPLICA,
            # (only a node that replicates forks: a standalone one keeps its write path)
            share_values=sizeclasses.settle_sharing(repl.enabled).active,
        )
        self.history = History()
        self.commands = Commands(
            self.keyspace,
            self.history,
            Limits(kv.max_key_bytes, kv.max_value_bytes),
            check_writable=self.roles.check_writable,
        )
        self.persistence: Persistence | None = None
        if config.persistence.enabled:
            p = config.persistence
            self.persistence = Persistence(
                Path(p.data_dir).resolve(),
                p.fsync_mode,
                p.fsync_interval_ms,
                p.snapshot_interval_secs,
                segment_max_bytes=p.segment_max_mb * 1024 * 1024,
                retention=retention_from_config(p.log_retention),
            )
        self.replication = ReplicationManager(self, initial_role)
        # Automatic failover (replication.failover.mode: etcd): roles come from the election.
        self.coordinator: EtcdCoordinator | None = None
        if repl.failover.mode == "etcd":
            self.roles.leadership_until = 0.0  # no writes before this node is elected
        # min-replicas guard, WAIT/WAITAOF/HTTP "wait", read-your-writes offsets.
        self.consistency = ConsistencyControls(self, self.replication)
        self._clients: dict[int, RespConnection] = {}
        self._client_ids = itertools.count(1)
        # INFO's total_commands_processed / total_connections_received (redis-cli --stat).
        self.processed = Count()  # (commands_processed; bumped by the front ends)
        self.connections_received = 0
        # Calls and latency per command, read by /metrics (synap/latency.py).
        self.resp_timings = CommandTimings()
        self.http_timings = CommandTimings()
        self.clients_rejected = 0
        self._resp_server: asyncio.base_events.Server | None = None
        self._rpc_server: asyncio.base_events.Server | None = None
        self._http_server: HttpServer | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        # DEBUG SET-ACTIVE-EXPIRE 0 turns the active expiry cycle off (tests use it).
        self.active_expire_enabled = True
        # Redis names of the parameters CONFIG SET changed (CONFIG REWRITE writes them).
        self.config_changed: set[str] = set()
        # Redis's min-replicas-to-write / min-replicas-max-lag (CONFIG SET; 0 = off).
        # INFO commandstats / errorstats.
        self.command_stats = CommandStats(self.resp_timings)
        # Clients in MONITOR mode (they get every command the others run).
        self.monitors: set[RespConnection] = set()
        # SHUTDOWN: run_node sets request_stop; NOSAVE skips the final snapshot (the WAL
        # is flushed and fsynced either way).
        self.request_stop: Callable[[], None] = lambda: None
        self.snapshot_on_stop = True
        self._stopping = False
        self._persistence_open = False
        # RESP replies held back until this loop iteration's records are written out
        # (reply_after_flush): (transport, bytes), in the order they were produced.
        self._held_replies: list[tuple[asyncio.Transport, bytes]] = []
        # The loop, once started: asyncio.get_running_loop() costs a getpid() system call,
        # and _schedule_flush runs once per loop iteration that writes.
        self._loop: asyncio.AbstractEventLoop | None = None
        self.resp_address: tuple[str, int] | None = None
        self.rpc_address: tuple[str, int] | None = None
        self.http_address: tuple[str, int] | None = None
        self.tls = TlsContexts()  # loaded in start(), where errors become StartupError
        self._metrics = MetricsRenderer(self)

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        try:
            self.tls = build_contexts(self.config.tls)
        except TlsError as exc:
            raise StartupError(str(exc)) from None
        if self.persistence is not None:
            adopted = self._recover()
            self.history.subscribe(self.persistence.append, self.persistence.append_batch)
            if not adopted:
                # Ids live only in snapshots: write one now, or a crash before the first
                # periodic snapshot would come back under yet another id, and every
                # replica would need a full sync (Redis #5228).
                try:
                    await self.persistence.snapshot(self.keyspace, self.position())
                except (PersistenceError, ValueError) as exc:
                    log.error("could not record the new replication id: %s", exc)
        # From here on records are published once per loop iteration (flush_replies).
        self._loop = asyncio.get_running_loop()
        self.history.on_pending = self._schedule_flush
        await self._start_http()
        # SynapRPC before RESP: a client that sees the RESP port open finds SynapRPC too.
        await self._start_rpc()
        await self._start_resp()
        await self.replication.start()
        if self.config.replication.failover.mode == "etcd":
            self.coordinator = EtcdCoordinator(self)
            await self.coordinator.start()
        self._tasks.append(asyncio.create_task(self._active_expiry(), name="active-expiry"))
        if self.persistence is not None:
            self._tasks.append(
                asyncio.create_task(self._persistence_periodic(), name="persistence")
            )
        self._print_banner()

    def _recover(self) -> bool:
        """Load the data directory; True if its replication id was adopted."""
        assert self.persistence is not None
        # The newest replayed records refill the replication log, so that replicas that
        # were behind when we stopped can still continue by partial sync.  A standalone
        # node keeps no log, so it skips reading the records its snapshot covers.
        replayed: deque[tuple[int, bytes]] = deque(maxlen=self.config.replication.log_max_ops)
        keeps_log = self.replication.initial_role is not Role.STANDALONE
        try:
            self.persistence.open()
            state = self.persistence.recover(
                self.keyspace,
                (lambda offset, record: replayed.append((offset, record))) if keeps_log else None,
                seed_records=self.config.replication.log_max_ops,
            )
        except (DataDirLocked, PersistenceError) as exc:
            raise StartupError(str(exc)) from None
        self._persistence_open = True
        if state.replid and not state.complete:
            # Part of our history was set aside as damaged: replicas may hold records we
            # no longer have under this id, so start a new history (they full-sync).
            log.error(
                "recovery stopped early (%s); starting a new replication id",
                "; ".join(state.problems) or "damaged WAL",
            )
            self.history.offset = state.offset
        elif state.replid:
            self.history.restore(
                Position(state.replid, state.offset, state.replid2, state.second_offset)
            )
            self.replication.seed_log(list(replayed))
        else:
            # No snapshot names a history yet (a new data directory, or a crash before
            # the first snapshot): a new id, but the offset must count every record
            # recovered, or new records would reuse offsets already in the WAL.
            self.history.offset = state.offset
        log.info(
            "recovered %d keys (snapshot %s, %d WAL records replayed), replication id %s offset %d",
            len(self.keyspace),
            state.snapshot_file or "none",
            state.records_replayed,
            self.history.replid,
            self.history.offset,
        )
        return bool(state.replid and state.complete)

    async def _start_http(self) -> None:
        server_cfg = self.config.server
        if server_cfg.port == 0 and not server_cfg.host:
            return
        sock = bind(server_cfg.host, server_cfg.port, "HTTP API", "--port / server.port")
        self.http_address = sock.getsockname()[:2]
        # The node's client TLS context, as for the RESP and SynapRPC ports (synap/tls.py).
        api = HttpApi(self)
        self._http_server = await start_http_server(
            api.handle,
            sock,
            ssl_context=self.tls.clients,
            max_body=server_cfg.max_body_bytes,
            max_clients=server_cfg.max_clients,
            fast=api.fast_route(),
        )

    async def _start_resp(self) -> None:
        server_cfg = self.config.server
        if server_cfg.resp_port == 0:
            return
        sock = bind(
            server_cfg.host,
            server_cfg.resp_port,
            "Redis protocol",
            "--resp-port / server.resp_port",
        )
        loop = asyncio.get_running_loop()
        self._resp_server = await loop.create_server(
            lambda: RespConnection(self), sock=sock, ssl=self.tls.clients
        )
        self.resp_address = sock.getsockname()[:2]

    async def _start_rpc(self) -> None:
        """SynapRPC (synap-sdk's ``synap://``) on server.rpc_port: same host, TLS and keys
        as the RESP port (synap/api/rpc.py).

        A port given in the file or with --rpc-port that cannot be bound stops the node,
        as for the other ports.  The built-in default (15500) is softer: when it is taken
        (typically by another node on the same machine, started with only --port and
        --resp-port) the node starts without SynapRPC and logs why."""
        server_cfg = self.config.server
        if server_cfg.rpc_port == 0:
            return
        try:
            sock = bind(
                server_cfg.host,
                server_cfg.rpc_port,
                "SynapRPC protocol",
                "--rpc-port / server.rpc_port",
            )
        except StartupError as exc:
            if "rpc_port" in server_cfg.model_fields_set:
                raise
            log.warning("SynapRPC is off on this node: %s (or 0 to turn it off)", exc)
            return
        loop = asyncio.get_running_loop()
        self._rpc_server = await loop.create_server(
            lambda: RpcConnection(self), sock=sock, ssl=self.tls.clients
        )
        self.rpc_address = sock.getsockname()[:2]

    def _warn_if_exposed(self) -> None:
        server = self.config.server
        if not server.api_keys and not is_loopback(server.host):
            log.warning(
                "the HTTP, Redis-protocol and SynapRPC ports listen on %s and accept any client: set "
                "server.api_keys (and tls.clients), or bind to 127.0.0.1 (docs/SECURITY.md)",
                server.host,
            )

    def _print_banner(self) -> None:
        self._warn_if_exposed()
        banner(f"🧩 Build: {build.state().describe()}")  # compiled (mypyc) or pure Python
        hugepages.log_status()  # Python's memory on huge pages, or why not (synap/hugepages.py)
        sizeclasses.log_status()  # 8-byte size classes for values, or why not
        role = self.roles.role
        if self.coordinator is not None:
            fo = self.config.replication.failover
            banner(
                f"🗳️  Automatic failover via etcd ({', '.join(fo.etcd_endpoints)}), group "
                f"{fo.group!r}, node {self.coordinator.node_id!r}: the role comes from the election"
            )
            banner("🔒 READ-ONLY until this node is elected master")
        elif role is Role.MASTER:
            banner(
                f"✅ Master node initialized, listening on {self.replication.listen_address_text}"
            )
            banner("⚠️  WRITES ALLOWED - This node accepts write operations")
        elif role is Role.REPLICA:
            banner(
                f"✅ Replica node initialized, connecting to master at {self.roles.master_address}"
            )
            banner("🔒 READ-ONLY MODE - Writes will be rejected")
            banner(f"♻️  Auto-reconnect: {str(self.config.replication.auto_reconnect).lower()}")
        else:
            banner("✅ Standalone node initialized (no replication)")
        if self.http_address:
            scheme = "https" if self.tls.clients else "http"
            banner(f"🌐 HTTP API on {scheme}://{fmt_address(self.http_address)}")
        if self.resp_address:
            tls = " (TLS)" if self.tls.clients else ""
            banner(f"🔌 Redis protocol on {fmt_address(self.resp_address)}{tls}")
        if self.rpc_address:
            tls = " (TLS)" if self.tls.clients else ""
            banner(f"⚡ SynapRPC on synap://{fmt_address(self.rpc_address)}{tls}")
        p = self.config.persistence
        if p.enabled:
            banner(
                f"💾 Persistence: WAL + snapshots in {Path(p.data_dir).resolve()} (fsync {p.fsync_mode})"
            )
        else:
            banner("💾 Persistence: disabled (in-memory only)")
        log.info("synap-server %s started as %s (pid %d)", __version__, role, os.getpid())

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        log.info("shutting down")
        if self.coordinator is not None:
            # Fence and hand leadership back first: the group elects without waiting a TTL.
            await self.coordinator.stop()
        if self._resp_server is not None:
            self._resp_server.close()
        if self._rpc_server is not None:
            self._rpc_server.close()
        self.flush_replies()  # replies held for the last records go out before the close
        for client in list(self._clients.values()):
            if client._transport is not None:
                client._transport.close()
        if self._http_server is not None:
            await self._http_server.close()
        await self.replication.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.persistence is not None and self._persistence_open:
            await self.persistence.close(
                self.keyspace if self.snapshot_on_stop else None, self.position()
            )
        log.info("shutdown complete")

    def record_topology(self, reason: str) -> str | None:
        """Persist the current role (after a runtime change) so that a restart keeps it.
        Returns the file written, or None without a data directory or on failure."""
        role = self.roles.role
        if self.topology_path is None:
            log.warning(
                "role is now %s (%s); not persisted: no data directory, a restart goes back "
                "to the configured role",
                role, reason,
            )  # fmt: skip
            return None
        repl = self.replication
        state = topology.Topology(
            role=str(role),
            master_address=self.roles.master_address if role is Role.REPLICA else None,
            replica_listen_address=repl.listen_address_text if repl.master_server else None,
            reason=reason,
            updated_at=time.time(),
        )
        try:
            topology.save(self.topology_path.parent, state)
        except OSError as exc:
            log.error("could not persist the topology to %s: %s", self.topology_path, exc)
            return None
        log.info("topology persisted to %s: %s", self.topology_path, state.describe())
        return str(self.topology_path)

    # ------------------------------------------------------------ periodic work
    async def _active_expiry(self) -> None:
        interval = self.config.kv_store.active_expiry_interval_ms / 1000
        ticks = 0
        while True:
            await asyncio.sleep(interval)
            # Not on replicas (the master's DELs arrive in the stream) and not while
            # writes are paused: a planned failover waits for the offset to stand still.
            roles = self.roles
            ticks += 1
            if ticks * interval >= 1:  # once a second: Redis's "timeout" for idle clients
                ticks = 0
                self.close_idle_clients()
            if (
                roles.role is not Role.REPLICA
                and not roles.writes_paused
                and not roles.fenced
                and self.keyspace.expires
                and self.active_expire_enabled
            ):
                try:
                    # Keep going while a sample finds mostly expired keys (Redis does the same).
                    for _ in range(10):
                        if self.commands.active_expire(200) < 50:
                            break
                    self.flush_writes()
                except Exception:
                    log.exception("active expiry failed")

    async def _persistence_periodic(self) -> None:
        assert self.persistence is not None
        await self.persistence.run_periodic(self.keyspace, self.position)

    def position(self) -> Position:
        """The history's position, every committed record handed to the WAL first."""
        return self.history.position()

    async def save_snapshot(self) -> None:
        if self.persistence is None:
            raise CommandError("ERR persistence is disabled (persistence.enabled: false)")
        await self.persistence.snapshot(self.keyspace, self.position())

    def flush_writes(self) -> None:
        """Write out the records committed so far, before their replies go out. Hands
        them to the WAL, the replication log and the replica streams as one batch
        (synap/store/history.py), then writes the WAL with one ``write()`` (and
        fdatasync under ``always``). Then, after the WAL write, the replicas are sent
        the batch at once unless records went out less than ``SEND_GAP_SECONDS`` ago
        (an idle replica sees the write before its client has the reply); the rest go
        at the end of the loop iteration (:meth:`flush_replies`)."""
        self.history.publish()
        if self.persistence is not None:
            self.persistence.flush()
        self.replication.send_to_replicas()

    def reply_after_flush(self, transport: asyncio.Transport, data: bytes) -> None:
        """Send a RESP reply once the records committed before it are written out.

        Group commit per loop iteration, as Redis's ``beforeSleep`` does: while records
        wait for the end-of-iteration flush (:meth:`_schedule_flush`), replies are held
        in order and written after it, so every read of the iteration shares one
        publish, one WAL ``write()`` (one fdatasync under ``always``) and one frame to
        each replica. Once anything is held, later replies queue behind it, so no reply
        overtakes another and none shows a value whose record is not yet written.
        With nothing waiting (reads only), the reply goes out at once."""
        if self.history.flush_scheduled:
            self._held_replies.append((transport, data))
        else:
            self.flush_writes()  # records committed outside the batching, if any
            transport.write(data)

    def flush_replies(self) -> None:
        """Write out the committed records, then send the replies held for them (the
        end of a loop iteration, or earlier when a connection must write or close
        now). If the WAL write fails the held replies are not sent: their connections
        are aborted, nothing is acknowledged, and the records stay buffered."""
        self.history.flush_scheduled = False
        held = self._held_replies
        if held:
            self._held_replies = []
        try:
            self.flush_writes()
        except Exception:  # a full disk: the records stay buffered, the next flush retries
            log.exception("could not write the committed records")
            for transport, _ in held:
                transport.abort()
            return
        self.replication.flush_to_replicas()  # the batch, before the clients' replies
        for transport, data in held:
            if not transport.is_closing():
                transport.write(data)

    def _schedule_flush(self) -> None:
        """History.on_pending: a batch of records started; make sure it is written out
        at the end of this loop iteration even if no front end calls flush_writes()."""
        history = self.history
        if not history.flush_scheduled:
            history.flush_scheduled = True
            (self._loop or asyncio.get_running_loop()).call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        if self.history.flush_scheduled:  # (not already done by flush_replies)
            self.flush_replies()

    # ------------------------------------------------------------ for replication
    @property
    def commands_processed(self) -> int:
        """INFO's total_commands_processed: every command on the Redis port and every
        authenticated HTTP request."""
        return self.processed.value

    @property
    def elector(self) -> EtcdCoordinator | None:
        return self.coordinator

    @property
    def offset_listener(self) -> ConsistencyControls:
        return self.consistency

    # ------------------------------------------------------------ clients
    def next_client_id(self) -> int:
        return next(self._client_ids)

    def client_opened(self, client: RespConnection) -> bool:
        self.connections_received += 1
        if len(self._clients) >= self.config.server.max_clients:
            self.clients_rejected += 1
            return False
        self._clients[client.id] = client
        return True

    def client_closed(self, client: RespConnection) -> None:
        self._clients.pop(client.id, None)
        self.monitors.discard(client)

    def clients(self) -> list[RespConnection]:
        return list(self._clients.values())

    @property
    def min_replicas_to_write(self) -> int:
        return self.config.replication.min_replicas_to_write

    @property
    def min_replicas_max_lag(self) -> int:
        return self.config.replication.min_replicas_max_lag_secs

    def set_min_replicas(self, count: int, max_lag_secs: int) -> None:
        """CONFIG SET min-replicas-to-write / min-replicas-max-lag: a master refuses writes
        (NOREPLICAS) unless ``count`` replicas acknowledged within ``max_lag_secs``.  With
        0 the check is not even called (writes keep their one-call guard)."""
        repl = self.config.replication
        repl.min_replicas_to_write = count
        repl.min_replicas_max_lag_secs = max_lag_secs
        self.consistency.install_guards()

    def enough_good_replicas(self) -> bool:
        """What a queued MULTI write is checked against (the same rule as the write path)."""
        wanted = self.min_replicas_to_write
        if not wanted or not self.min_replicas_max_lag or self.roles.is_replica:
            return True
        return self.consistency.good_replicas() >= wanted

    def reset_stats(self) -> None:
        """CONFIG RESETSTAT: the counters INFO stats reports start again from zero."""
        self.commands.stats = OpStats()
        self.keyspace.expired_total = self.keyspace.evicted_total = 0
        self.command_stats.reset()

    def close_idle_clients(self) -> None:
        """Close Redis-protocol clients idle for over ``server.client_timeout_secs``
        (CONFIG SET timeout); a client waiting in WAIT or in MONITOR is not idle."""
        timeout = self.config.server.client_timeout_secs
        if not timeout:
            return
        now = time.monotonic()
        for client in self.clients():
            if client.idle_seconds(now) > timeout:
                client.kill()

    # ------------------------------------------------------------ introspection
    def digest(self) -> str:
        ks = self.keyspace
        return dataset_digest(ks.data, ks.expires, ks.json_keys)

    def digest_report(self) -> dict[str, Any]:
        return views.digest_report(self)

    def kv_stats(self) -> dict[str, Any]:
        return views.kv_stats(self)

    def config_values(self) -> dict[str, str]:
        """What CONFIG GET answers (synap/api/views.py)."""
        return views.config_values(self)

    def info_text(self, sections: list[str] | None = None) -> str:
        return render_info(self, sections or [])

    def metrics_text(self) -> bytes:
        return self._metrics.render()


def _apply_topology(config: Config, command_line: frozenset[str]) -> Config:
    """The config with the persisted topology applied where the command line does not
    say otherwise explicitly (precedence: synap/persistence/topology.py)."""
    directory = Path(config.persistence.data_dir).resolve()
    try:
        saved = topology.load(directory)
    except topology.TopologyError as exc:
        raise StartupError(str(exc)) from None
    if saved is None:
        return config
    path = topology.path_in(directory)
    if command_line & {"role", "master_address"}:
        log.warning(
            "%s says %s; ignored: --role/--master-address on the command line win",
            path, saved.describe(),
        )  # fmt: skip
        return config
    repl = config.replication
    raw = repl.model_dump(exclude_unset=True)
    raw.update(enabled=saved.role != "standalone", role=saved.role)
    raw["master_address"] = saved.master_address
    if saved.role == "standalone":
        raw["enabled"] = False
    if saved.replica_listen_address and "replica_listen_address" not in command_line:
        raw["replica_listen_address"] = saved.replica_listen_address
    try:
        updated = ReplicationConfig.model_validate(raw)
    except ValueError as exc:
        raise StartupError(f"{path}: {exc}; fix or delete it") from None
    log.info("topology from %s: %s (the command line did not set --role)", path, saved.describe())
    banner(f"🧭 Topology from {path}: {saved.describe()}")
    return config.model_copy(update={"replication": updated})


def run_node(config: Config, command_line: frozenset[str] = frozenset()) -> int:
    """Run a node until SIGTERM/SIGINT; returns the process exit code.
    ``command_line``: see :class:`Node`."""
    import signal

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        pass

    async def main() -> int:
        try:
            node = Node(config, command_line)
        except StartupError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)  # once, not also logged
            return 1
        try:
            await node.start()
        except (StartupError, OSError) as exc:
            # Once, on stderr (where the log goes too): not also as a log line or a traceback.
            print(f"error: {exc}", file=sys.stderr, flush=True)
            await node.stop()
            return 1
        stop = asyncio.Event()
        node.request_stop = stop.set
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await node.stop()
        return 0

    return asyncio.run(main())
