"""Replication control: which links run for the node's role, and role changes at run
time (promote, repoint, stop, pause/resume writes, WAIT), returning the values of
synap/replication/control.py.

The replication log (synap/replication/log.py) is fed by the node's history; a
:class:`~synap.replication.master.MasterServer` serves replicas from it (on masters, and
on replicas that were given ``--replica-listen`` for sub-replicas), and a
:class:`~synap.replication.replica.ReplicaLink` follows a master on replicas.  The
read-only views (stats JSON, INFO replication, ROLE, health) are the base class,
:class:`~synap.replication.views.ReplicationViews`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING, Any

from synap.commands.errors import CommandError
from synap.config import ConfigError, parse_address
from synap.latency import SYNC_BUCKETS, LatencyHistogram
from synap.listen import StartupError, bind_error
from synap.persistence import topology
from synap.replication.control import Following, Promoted, Stopped, WritesPaused, WritesResumed
from synap.replication.handshake import REFUSAL_CODES
from synap.replication.link_state import LinkState
from synap.replication.log import LogBounds, ReplicationLog
from synap.replication.master import MasterServer
from synap.replication.replica import ReplicaLink
from synap.replication.roles import IllegalTransition, Role
from synap.replication.views import ReplicationViews

if TYPE_CHECKING:
    from synap.replication.host import ReplicationHost

log = logging.getLogger("synap.replication")

# The port a promoted node listens for replicas on when neither the promote request nor
# its configuration names a listener; the host is the node's own --host (server.host),
# so a promotion never opens a port on more interfaces than the node already serves.
DEFAULT_REPLICA_LISTEN_PORT = 15501


class ReplicationManager(ReplicationViews):
    def __init__(self, node: ReplicationHost, initial_role: Role) -> None:
        self.node = node
        cfg = node.config.replication
        self.config = cfg
        self.initial_role = initial_role
        self.log = ReplicationLog(
            node.history,
            node.persistence,
            cfg.log_max_ops,
            cfg.log_max_mb * 1024 * 1024,
            self._notify_replicas,
        )
        self.backlog = self.log.backlog
        self.master_server: MasterServer | None = None
        self.replica_link: ReplicaLink | None = None
        self.listen_address_text = cfg.replica_listen_address
        # Syncs this node served to its replicas, with Redis's names and meaning (INFO
        # stats sync_full / sync_partial_ok / sync_partial_err) ...
        self.sync_full = 0
        self.sync_partial_ok = 0
        self.sync_partial_err = 0
        # ... and syncs its own replica link performed (this process, any master). A
        # promoted replica keeps these; they never count as syncs it served.
        self.full_syncs_performed = 0
        self.partial_syncs_performed = 0
        # Divergent-history repair: replicas told to truncate (as master), and the
        # truncations this node performed itself (records removed, the file keeping them).
        self.truncations_requested = 0
        self.history_truncations = 0
        self.records_truncated = 0
        self.last_diverged_file: str | None = None
        # Automatic failover: the newest election epoch this node knows (0 = manual mode).
        # Masters send it in CONTINUE/FULLSYNC/HEARTBEAT; replicas refuse older masters.
        self.epoch = 0
        # Partial syncs served (as master) that started before the memory log, read from
        # the WAL segments, and the records sent that way.
        self.partial_syncs_from_disk = 0
        self.records_sent_from_disk = 0
        # For /metrics: bytes written to replicas, full syncs served (duration, bytes),
        # and on a replica the time to apply each batch of streamed records.
        self.bytes_sent = 0
        self.partial_sync_refusals: dict[str, int] = dict.fromkeys(REFUSAL_CODES, 0)
        self.full_sync_bytes_sent = 0
        self.full_sync_seconds = LatencyHistogram(SYNC_BUCKETS)
        # Forked full syncs: how many, and the last fork()'s wall time (INFO stats).
        self.total_forks = 0
        self.latest_fork_usec = 0
        self.apply_seconds = LatencyHistogram()
        # True while this node's history began empty at start-up and nothing vouches for
        # it (no recovery, no promotion, no sync): it must not wipe replicas that hold more.
        self.started_empty = False
        # Serialises promotions (they await the listener start).
        self._role_lock = asyncio.Lock()
        # The role before the last repoint, to go back to if it turns out to point at
        # this node itself (refused_self_replication).
        self._before_follow: tuple[Role, str | None] | None = None
        self.last_role_error: str | None = None
        self._started = False

    # ---------------------------------------------------------------- the log
    def _notify_replicas(self) -> None:
        server = self.master_server
        if server is not None:
            server.notify()

    def send_to_replicas(self) -> None:
        """The committed records are in the WAL: send the loop iteration's first batch to
        the replicas now (``MasterServer.send_now``; later ones wait out
        ``SEND_GAP_SECONDS`` or the end of the iteration)."""
        server = self.master_server
        if server is not None:
            server.send_now()

    def flush_to_replicas(self) -> None:
        """Send the replicas everything the log holds for them now rather than at the end
        of the loop iteration (group commit: after the WAL write, before the held
        replies)."""
        server = self.master_server
        if server is not None:
            server.flush_now()

    def disk_log_bounds(self) -> tuple[int, int] | None:
        return self.log.disk_log_bounds()

    def log_bounds(self) -> LogBounds:
        return self.log.log_bounds()

    def seed_log(self, records: list[tuple[int, bytes]]) -> None:
        """Records recovered from the WAL (contiguous offsets), to refill the log at start."""
        self.log.seed(records)

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self.log.start(keep=self.initial_role is not Role.STANDALONE)
        self.started_empty = self.node.history.offset == 0 and len(self.node.keyspace) == 0
        role = self.initial_role
        record_role = True
        if role is Role.MASTER:
            record_role = await self._new_history_if_was_replica()
            self.node.roles.transition(Role.MASTER, "configured role")
            await self._start_master_server(self.config.replica_listen_address)
        elif role is Role.REPLICA and (
            self.config.master_address is None or self.config.failover.mode == "etcd"
        ):
            # Automatic failover: the election names the master (synap/coordination),
            # never a configured (or persisted) master address.
            if self._replica_listen_given():
                await self._start_master_server(self.config.replica_listen_address)
        elif role is Role.REPLICA:
            assert self.config.master_address is not None
            host, port = parse_address(self.config.master_address, key="replication.master_address")
            if self._replica_listen_given():
                await self._start_master_server(self.config.replica_listen_address)
            if self.is_own_listener(host, port):
                raise StartupError(
                    f"replication.master_address {host}:{port} is this node's own replica "
                    "listener: a node cannot replicate from itself; give the master's address"
                )
            self.node.roles.transition(Role.REPLICA, "configured role", f"{host}:{port}")
            self._start_replica_link(host, port)
        if record_role:
            self._record_last_role()
        self._started = True

    async def _new_history_if_was_replica(self) -> bool:
        """Start-up as a configured master on a recovered history this node was
        *following as a replica* (``role.json`` says replica): begin a new history, as a
        promotion does.  Keeping the old master's id would let this node write offsets
        that the real master also writes under that id, and a later repoint would
        partial-sync across the difference (silent divergence).  The old id stays valid
        as ``replid2`` up to offset + 1, so this node's own former sub-replicas can still
        continue by partial sync.  A master restarted as master keeps its id (its
        replicas continue, and the fork repair of docs/OPERATIONS.md relies on it).

        Returns False only if the new id could not be written to disk: ``role.json``
        then keeps saying replica, so the next start shifts again."""
        persistence = self.node.persistence
        if persistence is None or self.config.failover.mode == "etcd":
            return True
        if topology.load_last_role(persistence.directory) != str(Role.REPLICA):
            return True
        history = self.node.history
        old_id = history.replid
        history.shift()
        try:
            # Awaited, before role.json says master: a crash in between shifts again
            # on the next start instead of keeping the old master's id.
            await persistence.snapshot(self.node.keyspace, history.position())
        except Exception as exc:
            log.error("could not persist the new replication id: %s", exc)
            persisted = False
        else:
            persisted = True
        self.started_empty = False
        log.warning(
            "started as master on a history this node was following as a replica (id %s, "
            "offset %d): starting a new history %s, like a promotion (%s valid up to "
            "offset %d). If this node is later repointed at a master, it full-syncs and "
            "its writes made as master are discarded",
            old_id, history.offset, history.replid, history.replid2,
            history.second_offset - 1,
        )  # fmt: skip
        return persisted

    def _record_last_role(self) -> None:
        """Write the current role to ``role.json`` in the data directory (see
        synap/persistence/topology.py): at start-up and after every role change."""
        persistence = self.node.persistence
        if persistence is None:
            return
        history = self.node.history
        try:
            topology.save_last_role(
                persistence.directory, str(self.node.roles.role), history.replid, history.offset
            )
        except OSError as exc:
            log.error("could not record the role in %s: %s", persistence.directory, exc)

    def _record_topology(self, reason: str) -> str | None:
        """After a runtime role change: ``role.json`` and ``topology.json``."""
        self._record_last_role()
        return self.node.record_topology(reason)

    def newer_epoch_seen(self, epoch: int, source: str) -> None:
        """Automatic failover: a peer knows a newer election epoch than ours, so another
        node was elected: refuse writes now (the coordinator then follows etcd)."""
        coordinator = self.node.elector
        if coordinator is not None:
            coordinator.newer_epoch_seen(epoch, source)

    # ---------------------------------------------------------------- safety
    def refuse_full_sync_reason(self, replica_replid: str, next_offset: int) -> str | None:
        """Why a full sync must not be served, or None.

        A master that came up empty with no known history (restarted without
        persistence, say) would wipe every replica that reconnects to it.  Like the
        Redis/Kubernetes failure this guards against, that turns one lost node into lost
        data everywhere.  So such a master refuses to full-sync a replica whose history is
        longer than its own, unless ``replication.allow_empty_master`` is set."""
        if self.config.allow_empty_master or not self.started_empty or replica_replid == "?":
            return None
        history = self.node.history
        if next_offset - 1 <= history.offset:
            return None
        return (
            f"this master started empty with no replication history (id {history.replid}, "
            f"offset {history.offset}) and the replica holds {next_offset - 1} records of "
            f"history {replica_replid}; refusing to wipe it. Promote that replica instead "
            "(POST /api/replication/promote), or set replication.allow_empty_master: true "
            "to let this master overwrite it"
        )

    def persist_identity(self) -> None:
        """Write the (changed) replication id to disk with a snapshot."""
        node = self.node
        if node.persistence is not None:
            asyncio.get_running_loop().create_task(self._persist(node.persistence.snapshot))

    def persist_full_sync(self) -> None:
        """After a full sync the stored history is replaced by the master's."""
        self.started_empty = False
        node = self.node
        if node.persistence is not None:
            asyncio.get_running_loop().create_task(self._persist(node.persistence.reset))

    async def _persist(self, action: Any) -> None:
        node = self.node
        try:
            await action(node.keyspace, node.history.position())
        except Exception as exc:
            log.error("could not persist the replication state: %s", exc)

    def drop_sub_replicas(self, reason: str) -> None:
        if self.master_server is not None and self.node.roles.is_replica:
            self.master_server.drop_all(reason)

    def _replica_listen_given(self) -> bool:
        return self.node.config.replication.model_fields_set.__contains__("replica_listen_address")

    async def stop(self) -> None:
        if self.replica_link is not None:
            await self.replica_link.stop()
            self.replica_link = None
        if self.master_server is not None:
            await self.master_server.stop()
            self.master_server = None

    async def _start_master_server(self, address: str) -> None:
        host, port = parse_address(address, key="replication.replica_listen_address")
        server = MasterServer(self, self.node, host, port)
        try:
            await server.start()
        except OSError as exc:
            option = "--replica-listen / replication.replica_listen_address"
            raise StartupError(
                bind_error("replicas", host, port, exc, host_option=option, port_option=option)
            ) from None
        self.master_server = server
        self.listen_address_text = server.address_text

    def _start_replica_link(self, host: str, port: int) -> None:
        self.node.keyspace.expire_on_access = False
        link = ReplicaLink(self, self.node, host, port)
        link.start()
        self.replica_link = link

    # ---------------------------------------------------------------- role changes
    async def promote(
        self, reason: str, listen_address: str | None = None, *, elected: bool = False
    ) -> Promoted:
        """Make this node a master now: accept writes, start a new history that
        remembers the old one (PSYNC2), and listen for replicas.

        The replica listener is ``listen_address`` when given (the request body), else
        the one this node already runs (a replica started with ``--replica-listen``),
        else ``replication.replica_listen_address`` from its config.  It is bound
        *before* the role changes, so an address that cannot be used leaves the node a
        replica and the caller gets the error.  The dataset and offset are kept; the old
        id becomes ``replid2`` valid up to the current offset, so replicas of the old
        master that are repointed here continue by partial sync (Redis
        ``shiftReplicationId``)."""
        if self.node.elector is not None and not elected:
            # A hand-made master would fight the election (synap/coordination).
            raise CommandError(
                "ERR this node's role comes from the etcd election "
                "(replication.failover.mode: etcd): it cannot be promoted by hand; stop the "
                "current master (SIGTERM) and the best replica takes over at once"
            )
        if listen_address is not None:
            try:
                parse_address(listen_address, key="replica_listen_address")
            except ConfigError as exc:
                raise CommandError(f"ERR {exc}") from None
        async with self._role_lock:
            roles = self.node.roles
            history = self.node.history
            if roles.role is Role.MASTER:
                return Promoted(history.replid, history.offset, self._listener_text(), already=True)
            if self.master_server is None or (
                listen_address and listen_address != self.listen_address_text
            ):
                old = self.master_server
                self.master_server = None
                if old is not None:
                    await old.stop()
                try:
                    await self._start_master_server(
                        listen_address or self.promotion_listen_address()
                    )
                except StartupError as exc:
                    raise CommandError(f"ERR not promoted: {exc}") from None
            # From here on nothing awaits: no client write or record lands half-way.
            old_master = roles.master_address
            link = self.replica_link
            self.replica_link = None
            if link is not None:
                asyncio.get_running_loop().create_task(link.stop())
            if roles.role is Role.REPLICA:
                history.shift()
                self.persist_identity()
            self.started_empty = False
            self.log.enable()
            roles.transition(Role.MASTER, reason)
            self.node.keyspace.expire_on_access = True
            self.last_role_error = None
            if self.master_server is not None:
                # Sub-replicas (and anyone who connected while the listener started)
                # follow the old id: reconnecting, they learn the new one (+CONTINUE).
                self.master_server.drop_all("promoted to master")
        topology_file = self._record_topology(reason)
        log.warning(
            "promoted to master (%s); was following %s; new replication id %s, "
            "previous %s valid up to offset %d",
            reason, old_master, history.replid, history.replid2, history.second_offset - 1,
        )  # fmt: skip
        return Promoted(
            history.replid,
            history.offset,
            self._listener_text(),
            previous_replication_id=history.replid2,
            topology_file=topology_file,
        )

    def promotion_listen_address(self) -> str:
        """The replica listener a promotion opens when the request names none and the
        node runs none: ``replication.replica_listen_address`` when configured (file or
        ``--replica-listen``), else the node's own host and port 15501, never 0.0.0.0
        unless the node already serves its HTTP API there."""
        if self._replica_listen_given():
            return self.config.replica_listen_address
        host = self.node.config.server.host or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{DEFAULT_REPLICA_LISTEN_PORT}"

    def is_own_listener(self, host: str, port: int) -> bool:
        """True if ``host:port`` reaches this node's own replica listener (an IP
        address or ``localhost``; other names are caught in the handshake, where the
        master refuses a replica with its own id)."""
        server = self.master_server
        if server is None or port != server.port:
            return False
        name = host.strip("[]")
        if name == "localhost":
            candidates = ["127.0.0.1", "::1"]
        else:
            try:
                candidates = [str(ipaddress.ip_address(name))]
            except ValueError:
                return False
        bound = server.host.strip("[]")
        for ip in candidates:
            if bound in ("0.0.0.0", "::", ""):
                if _is_local_address(ip):
                    return True
            else:
                try:
                    if ipaddress.ip_address(bound) == ipaddress.ip_address(ip):
                        return True
                except ValueError:
                    if bound == name:
                        return True
        return False

    def refused_self_replication(self, reason: str) -> None:
        """Our own replica listener refused our link (we were pointed at ourselves
        through some address): stop following and go back to the role we had."""
        roles = self.node.roles
        if not roles.is_replica:
            return
        self.last_role_error = reason
        link = self.replica_link
        previous = self._before_follow
        self._before_follow = None
        prev_role, prev_master = previous if previous is not None else (None, None)
        if link is not None:
            link.last_error = reason
        if prev_role is Role.REPLICA and prev_master:
            host, port = parse_address(prev_master, key="master_address")
            self.replica_link = None
            if link is not None:
                asyncio.get_running_loop().create_task(link.stop())
            roles.transition(Role.REPLICA, "refused to replicate from itself", prev_master)
            self._start_replica_link(host, port)
        elif prev_role in (Role.MASTER, Role.STANDALONE):
            self.replica_link = None
            if link is not None:
                asyncio.get_running_loop().create_task(link.stop())
            roles.transition(prev_role, "refused to replicate from itself")
            self.node.keyspace.expire_on_access = True
            if prev_role is Role.STANDALONE:
                self.log.disable()
            elif self.master_server is None:
                # The repoint closed our listener: open it again where it was.
                asyncio.get_running_loop().create_task(self._reopen_listener())
        elif link is not None:
            # No role to go back to: stay read-only, following nobody, until repointed.
            asyncio.get_running_loop().create_task(link.stop())
            link.state = LinkState.STOPPED
        log.error("%s; role is now %s", reason, roles.role)
        self._record_topology("refused to replicate from itself")

    async def _reopen_listener(self) -> None:
        try:
            await self._start_master_server(self.listen_address_text)
        except StartupError as exc:
            self.last_role_error = f"{self.last_role_error}; {exc}"
            log.error("%s", exc)

    def _listener_text(self) -> str | None:
        return self.listen_address_text if self.master_server is not None else None

    def follow(self, host: str, port: int, reason: str) -> Following:
        """Become (or stay) a replica of ``host:port`` without a restart."""
        roles = self.node.roles
        address = f"{host}:{port}"
        if not 0 < port < 65536:
            raise CommandError("ERR Invalid master port")
        if roles.role is Role.REPLICA and roles.master_address == address and self.replica_link:
            return Following(address, already=True)
        if self.is_own_listener(host, port):
            raise CommandError(
                f"ERR refusing to replicate from itself: {address} is this node's own replica "
                f"listener ({self.listen_address_text}); give the address of another master"
            )
        previous = (roles.role, roles.master_address)
        try:
            roles.transition(Role.REPLICA, reason, address)
        except IllegalTransition as exc:
            raise CommandError(f"ERR {exc}") from None
        self._before_follow = previous
        self.last_role_error = None
        self.log.enable()
        link = self.replica_link
        self.replica_link = None
        if link is not None:
            asyncio.get_running_loop().create_task(link.stop())
        if self.master_server is not None and not self._replica_listen_given():
            # A former master stops serving replicas unless it was asked to chain.
            server = self.master_server
            self.master_server = None
            asyncio.get_running_loop().create_task(server.stop())
        self._start_replica_link(host, port)
        log.warning("now a replica of %s (%s)", address, reason)
        topology_file = self._record_topology(reason)
        return Following(address, topology_file)

    def stop_replication(self) -> Stopped:
        """Replica -> standalone (keeps the data, accepts writes, serves no replicas)."""
        roles = self.node.roles
        link = self.replica_link
        self.replica_link = None
        if link is not None:
            asyncio.get_running_loop().create_task(link.stop())
        if roles.role is Role.REPLICA:
            self.node.history.shift()
        if self.master_server is not None:
            server = self.master_server
            self.master_server = None
            asyncio.get_running_loop().create_task(server.stop())
        roles.transition(Role.STANDALONE, "replication stopped")
        self.log.disable()
        self.node.keyspace.expire_on_access = True
        topology_file = self._record_topology("replication stopped")
        return Stopped(topology_file)

    # ---------------------------------------------------------------- write pause
    def pause_writes(self, seconds: float | None, reason: str) -> WritesPaused:
        """Refuse client writes with ``TRYAGAIN`` (HTTP 503) for ``seconds``, or until
        resumed or demoted when ``seconds`` is None: the first step of a planned
        failover (``synap-cli failover``).  Active expiry stops too, so the offset
        stays put and a replica can be seen to have caught up with it."""
        roles = self.node.roles
        if roles.is_replica:
            raise CommandError(
                "ERR this node is a replica and takes no client writes; pause its master"
            )
        try:
            roles.pause_writes(seconds)
        except ValueError as exc:
            raise CommandError(f"ERR {exc}") from None
        history = self.node.history
        log.warning(
            "writes paused %s (%s) at offset %d",
            "until resumed or demoted" if seconds is None else f"for {seconds:g}s",
            reason, history.offset,
        )  # fmt: skip
        return WritesPaused(seconds, str(roles.role), history.replid, history.offset)

    def resume_writes(self, reason: str) -> WritesResumed:
        roles = self.node.roles
        was_paused = roles.writes_paused
        roles.resume_writes()
        if was_paused:
            log.warning("writes resumed (%s)", reason)
        return WritesResumed(was_paused, str(roles.role), self.node.history.offset)

    # ---------------------------------------------------------------- WAIT
    async def wait(self, wanted: int, timeout_ms: int) -> int:
        """Redis WAIT: block until ``wanted`` replicas acknowledged everything written so
        far, or the timeout passes; answers how many did."""
        if self.node.roles.is_replica:
            raise CommandError("ERR WAIT cannot be used with replica instances.")
        target = self.node.history.offset
        server = self.master_server
        if server is None:
            return 0
        return await server.wait_for_acks(target, wanted, timeout_ms / 1000 if timeout_ms else None)

    # A planned failover is driven from outside by ``synap-cli failover``
    # (synap/failover.py) over the admin API: pause, wait, promote, repoint, resume.
    # The server only provides the steps; see docs/OPERATIONS.md for why.
    _FAILOVER_HINT = (
        "a planned failover is driven by `synap-cli failover --node MASTER_URL "
        "[--to REPLICA_URL]` (it pauses writes here with POST /api/replication/pause, waits "
        "for the replica, promotes it and repoints this node)"
    )

    async def failover_command(self, args: list[bytes]) -> bytes:
        raise CommandError(f"ERR FAILOVER is not supported by this server: {self._FAILOVER_HINT}")

    async def failover_http(self, body: dict[str, Any]) -> dict[str, Any]:
        raise CommandError(f"ERR not supported by this server: {self._FAILOVER_HINT}")


def _is_local_address(ip: str) -> bool:
    """True if ``ip`` is an address of this machine (it can be bound)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((ip, 0))
    except OSError:
        return False
    return True
