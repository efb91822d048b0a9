"""The replica side of replication, as thin asyncio around :class:`ReplicaSession`.

:class:`ReplicaLink` connects to the master, keeps reconnecting (every
``reconnect_delay_ms`` with ±20 % jitter, so replicas of a restarted master do not all
knock at once) unless ``auto_reconnect`` is off, and applies what arrives:

* a full sync is loaded into new dictionaries beside the live dataset, which keeps
  serving reads; only a snapshot whose every chunk and total CRC32 check out is swapped
  in.  A failed sync leaves the old data in place;
* records are applied a RECORDS frame at a time with
  :func:`synap.store.effects.apply_concatenated` (the semantics of WAL replay's
  :func:`~synap.store.effects.apply_record`; each record delimited, decoded and applied
  in one pass over the frame) and committed to the node's history, so they reach its WAL, its log
  and its own sub-replicas unchanged;
* an ACK goes back after each batch (after the WAL flush), at once after a sync and on
  every heartbeat; a batch after a quiet link (``ACK_QUIET_SECONDS``) is ACKed
  ``ACK_DELAY_SECONDS`` (1 ms) later instead, one ACK for every batch meanwhile;
* a TRUNCATE (our history forked from the master's: an old master that took writes
  after the failover point) rebuilds the dataset at the fork point from the data
  directory (:mod:`synap.persistence.divergence`), saves the removed records in
  ``diverged-<replid>-<offset>.jsonl`` and reconnects at once for a partial sync. With
  no data directory, or one that cannot rebuild that offset, it reconnects with no
  history instead (a full sync), and says so in the log.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from typing import TYPE_CHECKING, Any, cast

from synap.replication.framing import frame_limit_for
from synap.replication.handshake import (
    AuthenticationFailed,
    ErrorReceived,
    ProtocolViolation,
    SessionEnded,
)
from synap.replication.link_state import LinkState
from synap.replication.messages import ErrorCode
from synap.replication.peer_fields import (
    InvalidPeerField,
    bounded_text,
    check_host_port,
    escape_text,
)
from synap.replication.replica_session import (
    FullSyncCompleted,
    FullSyncStarted,
    HeartbeatReceived,
    PartialSyncAccepted,
    RecordsReceived,
    ReplicaSession,
    ReplicaState,
    SnapshotChunkReceived,
    TruncateRequested,
)
from synap.store.effects import CorruptRecord, apply_concatenated, apply_records
from synap.store.keyspace import now_ms
from synap.tls import NO_TLS_ANSWER_HINT, TLS_NO_ANSWER_HINT, explain_master_tls_error

if TYPE_CHECKING:
    from synap.replication.host import ReplicaOwner, ReplicationHost

log = logging.getLogger("synap.replication.replica")

TIMEOUT_CHECK_SECONDS = 0.25
CONNECT_TIMEOUT_SECONDS = 5.0
# Records that arrive after a quiet link (no RECORDS for ACK_QUIET_SECONDS) are ACKed
# ACK_DELAY_SECONDS later, one ACK for every frame meanwhile: neither the ACK nor the
# master's reading of it then runs between a lone write reaching the replica and the next
# read (Redis's replicas ACK once a second). On a busy link each frame is ACKed at once,
# in the same wake-up (a timer would cost one more).
ACK_DELAY_SECONDS = 0.001
ACK_QUIET_SECONDS = 0.005
# After this replica refuses its master (its own ERROR: a protocol violation, a failed
# authentication, an abort) it stops writing and reads (discarding) until the master
# closes, for up to LINGER_SECONDS: closing with the master's unread full sync in the
# socket would send an RST, and the master could lose the ERROR that tells its operator
# why. Not after a timeout (a frozen master closes nothing) or the master's own ERROR.
LINGER_SECONDS = 1.0


class _MasterConnection(asyncio.Protocol):
    def __init__(self, link: ReplicaLink, session: ReplicaSession) -> None:
        self.link = link
        self.session = session
        self.transport: asyncio.Transport | None = None
        # (Kept: asyncio.get_running_loop() costs a getpid() system call each time.)
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[str] = self._loop.create_future()
        self._loading: tuple[dict[bytes, bytes], dict[bytes, int], set[bytes]] | None = None
        self._received_any = False
        self._ack_timer: asyncio.TimerHandle | None = None  # the delayed ACK, if one is due
        self._records_at = 0.0  # time.time() when RECORDS last arrived
        self.lingering = False  # our ERROR sent, nothing more written: input is discarded
        self._linger_timer: asyncio.TimerHandle | None = None
        self.gone: asyncio.Future[None] = self._loop.create_future()  # connection_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = tr = cast(asyncio.Transport, transport)
        # Set here, not after create_connection() returns: a small full sync can complete
        # (state CONNECTED) before the task awaiting the connection resumes.
        self.link.connection = self
        self.link.state = LinkState.HANDSHAKE
        tr.write(self.session.initiate(now_ms()))

    def connection_lost(self, exc: Exception | None) -> None:
        self._loading = None
        if not self.gone.done():
            self.gone.set_result(None)
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        self._cancel_delayed_ack()
        if not self.closed.done():
            if isinstance(exc, ssl.SSLError):
                reason = explain_master_tls_error(exc, self.link.host)
            elif exc is not None:
                reason = f"connection lost ({exc})"
            elif not self._received_any:
                # A TLS listener drops a plain HELLO without a word, and a TLS 1.3 master
                # that refuses our certificate does so after our side of the handshake.
                reason = NO_TLS_ANSWER_HINT if self.link.tls is None else TLS_NO_ANSWER_HINT
            else:
                reason = "connection closed by master"
            self.closed.set_result(reason)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        self._received_any = True
        link = self.link
        link.bytes_received += len(data)
        link.last_io = now = time.time()
        applied = False
        synced = False  # a full or partial sync completed: ACK at once
        quiet = False  # records arrived after a quiet link: ACK a moment later
        self.session.min_epoch = link.manager.epoch
        try:
            events = self.session.receive_data(data, now_ms())
        except Exception:  # the session turns bad input into events; this is a bug guard
            log.exception("replication session failed")
            self.abort("internal error in the replication session")
            return
        # Kept on the link, so stats still know the master's offset once it is gone.
        link.known_master_offset = max(link.known_master_offset, self.session.master_offset)
        for event in events:
            if isinstance(event, RecordsReceived):
                if not self._apply(event):
                    return
                applied = True
                quiet = now - self._records_at > ACK_QUIET_SECONDS
                self._records_at = now
            elif isinstance(event, SnapshotChunkReceived):
                if self._loading is not None:
                    data_, expires, json_keys = self._loading
                    for entry in event.entries:
                        key, value, expire_at = entry[:3]
                        data_[key] = value
                        if expire_at:
                            expires[key] = expire_at
                        if len(entry) == 4:  # json kind (the session checked the flag)
                            json_keys.add(key)
                        elif json_keys:
                            json_keys.discard(key)
            elif isinstance(event, HeartbeatReceived):
                link.last_heartbeat = time.time()
                if self.session.state is ReplicaState.STREAMING:
                    self._send_ack()
            elif isinstance(event, FullSyncStarted):
                log.info(
                    "full sync from master: %d keys at offset %d (history %s)",
                    event.keys, event.offset, event.replid,
                )  # fmt: skip
                link.on_full_sync_started()
                self._loading = ({}, {}, set())
            elif isinstance(event, FullSyncCompleted):
                self._install(event)
                applied = synced = True
            elif isinstance(event, TruncateRequested):
                link.pending_truncate = event
            elif isinstance(event, PartialSyncAccepted):
                link.on_partial_sync(event.replid, event.offset)
                applied = synced = True
            elif isinstance(event, SessionEnded):
                self._ended(event)
                return
        if applied and self.session.state is ReplicaState.STREAMING:
            link.node.flush_writes()  # the WAL holds what we acknowledge
            if synced or not (quiet or self._ack_timer is not None):
                self._send_ack()
                return
            self._write(self.session.data_to_send())
            if self._ack_timer is None:  # after a quiet link: ACK_DELAY_SECONDS later
                self._ack_timer = self._loop.call_later(ACK_DELAY_SECONDS, self._delayed_ack)
        else:
            self._write(self.session.data_to_send())

    def _apply(self, event: RecordsReceived) -> bool:
        """Apply a RECORDS batch, then publish it (WAL, log, sub-replicas) in one go.

        The records are delimited, decoded and applied in one pass over the frame; the
        history gets each record's bytes exactly as the master sent them."""
        node = self.link.node
        first = event.first_offset
        started = time.perf_counter()
        records: list[bytes] = []
        frame = event.frame
        try:
            if frame is not None:
                apply_concatenated(node.keyspace, frame.body, frame.pos, frame.count, records)
            else:
                records = list(event.records)
                apply_records(node.keyspace, records)
        except CorruptRecord as exc:
            # The records before the bad one are applied: they are ours now.
            node.history.commit_encoded_batch(first, records[: exc.index])
            self.abort(f"record {first + exc.index} from the master is corrupt: {exc}")
            return False
        node.history.commit_encoded_batch(first, records)
        self.link.records_applied += len(records)
        self.link.manager.apply_seconds.observe(time.perf_counter() - started)
        return True

    def _install(self, event: FullSyncCompleted) -> None:
        assert self._loading is not None
        data, expires, json_keys = self._loading
        self._loading = None
        self.link.install_dataset(data, expires, event.replid, event.offset, json_keys)
        self.link.node.offset_listener.offset_changed()

    def _ended(self, event: SessionEnded) -> None:
        self._write(self.session.data_to_send())
        reason = event.message if isinstance(event, ErrorReceived) else event.reason
        if event.code == ErrorCode.SYNC_FAILED:
            self.link.failed_syncs += 1
        if (
            event.code == ErrorCode.REFUSED
            and isinstance(event, ErrorReceived)
            and "replicate from itself" in reason
            and self.link.replica_id in reason
        ):
            # The master is this very node, reached through another address.
            self.link.follows_itself = True
        if not self.closed.done():
            self.closed.set_result(reason)
        if isinstance(event, (ProtocolViolation, AuthenticationFailed)):
            self._close_after_error()  # we refused the master: let it read why
        elif self.transport is not None:
            self.transport.close()

    def abort(self, reason: str) -> None:
        self._write(self.session.close(ErrorCode.PROTOCOL, reason))
        if not self.closed.done():
            self.closed.set_result(reason)
        self._close_after_error()

    def _close_after_error(self) -> None:
        """Stop writing (half-close where the transport can: TLS cannot) and drain until
        the master closes, or LINGER_SECONDS pass, so that the ERROR just written reaches
        the master's log."""
        tr = self.transport
        if tr is None or tr.is_closing() or self.lingering:
            return
        self._cancel_delayed_ack()
        self.lingering = True
        if tr.can_write_eof():
            tr.write_eof()
        self._linger_timer = self._loop.call_later(LINGER_SECONDS, tr.close)

    def check_timeouts(self) -> None:
        for event in self.session.check_timeouts(now_ms()):
            if isinstance(event, SessionEnded):
                self._ended(event)

    def _fsynced(self) -> int | None:
        """What this replica's WAL has fsynced (WAITAOF on the master); None without one."""
        persistence = self.link.node.persistence
        return None if persistence is None else persistence.fsynced_offset

    def send_ack(self) -> None:
        """A periodic ACK (``replication.ack_interval_ms``), whatever the master sends."""
        if self.session.state is ReplicaState.STREAMING:
            self._send_ack()

    def _send_ack(self) -> None:
        """ACK everything applied so far now (a delayed ACK still due is covered)."""
        self._cancel_delayed_ack()
        self._write(self.session.ack(self._fsynced()))

    def _cancel_delayed_ack(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None

    def _delayed_ack(self) -> None:
        # (The WAL's state now: a periodic fsync since the records is reported too.)
        self._ack_timer = None
        self.send_ack()

    def _write(self, data: bytes) -> None:
        tr = self.transport
        if data and tr is not None and not self.lingering and not tr.is_closing():
            tr.write(data)


class ReplicaLink:
    def __init__(self, manager: ReplicaOwner, node: ReplicationHost, host: str, port: int) -> None:
        self.manager = manager
        self.node = node
        self.host = host
        self.port = port
        # The node's id, the same on every link: operators and tools (synap-cli failover)
        # match a master's replicas to nodes by it, and a master refuses its own id.
        self.replica_id = node.node_id
        # The one state variable of the link (Redis's repl_state); ``connected``, the
        # stats ``state`` word, ROLE's state and INFO master_link_status derive from it.
        self.state = LinkState.CONNECTING
        self.connection: _MasterConnection | None = None
        self.last_heartbeat: float | None = None
        self.last_io: float | None = None
        self.link_down_since: float | None = time.time()
        self.bytes_received = 0
        self.known_master_offset = 0  # newest master offset heard on any connection
        self.records_applied = 0
        self.failed_syncs = 0
        # True once this link synced (full or partial): the node's history is then the
        # master's even at offset 0 (a full sync of an empty master), and continuing it
        # must not cost another full sync.
        self.synced = False
        self.sync_started: float | None = None
        self.last_error: str | None = None
        # Set when the master refused us as itself: stop, never follow ourselves.
        self.follows_itself = False
        self.attempts = 0
        # The master said our history forked (handled between two connections), and
        # whether the next HELLO must ask for a full sync because we could not truncate.
        self.pending_truncate: TruncateRequested | None = None
        self.force_full_sync = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def connected(self) -> bool:
        """Synced and streaming from the master."""
        return self.state is LinkState.CONNECTED

    @property
    def tls(self) -> ssl.SSLContext | None:
        """The context for the link to the master (``tls.replication``), or None."""
        return self.node.tls.replication_client

    @property
    def master_address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="replica-link")

    async def stop(self) -> None:
        self._stopping = True
        conn = self.connection
        if conn is not None:
            conn.abort("replica is changing role or shutting down")
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # ----------------------------------------------------------------- loop
    def _mark_down(self) -> None:
        """The connection has ended: CONNECT (the spec's "disconnected", waiting to retry)
        unless stopped, and the time the link went down, if not known already."""
        if self.state is not LinkState.STOPPED:
            self.state = LinkState.CONNECT
        self.connection = None
        if self.link_down_since is None:
            self.link_down_since = time.time()

    async def _run(self) -> None:
        cfg = self.manager.config
        while not self._stopping:
            self.attempts += 1
            reason = await self._connect_once()
            self._mark_down()
            if self._stopping:
                return
            truncate, self.pending_truncate = self.pending_truncate, None
            if truncate is not None:
                await self._truncate(truncate)
                continue  # at once: the master expects us back
            # Peer-supplied text (a master's ERROR message) is kept bounded, and logged
            # escaped so that it cannot forge log lines.
            reason = self.last_error = bounded_text(reason)
            shown = escape_text(reason)
            if self.follows_itself:
                self.state = LinkState.STOPPED
                self.manager.last_role_error = reason
                log.error(
                    "master %s is this node itself (%s); not reconnecting: repoint this "
                    "node at another master (or promote it)", self.master_address, shown,
                )  # fmt: skip
                return
            if not cfg.auto_reconnect:
                self.state = LinkState.STOPPED
                log.error(
                    "disconnected from master %s: %s; auto-reconnect is disabled, so this "
                    "replica stays disconnected (serving possibly stale reads) until it is "
                    "repointed or restarted", self.master_address, shown,
                )  # fmt: skip
                return
            delay = cfg.reconnect_delay_ms / 1000 * random.uniform(0.8, 1.2)
            log.warning(
                "disconnected from master %s: %s; reconnecting in %.1fs",
                self.master_address, shown, delay,
            )  # fmt: skip
            # CONNECT since the connection ended: "disconnected" in the stats, the
            # spec's word for a replica waiting to retry.
            await asyncio.sleep(delay)

    async def _connect_once(self) -> str:
        node = self.node
        cfg = self.manager.config
        history = node.history
        secret = cfg.auth_secret.encode() if cfg.auth_secret else None
        has_history = bool(history.offset or len(node.keyspace) or self.synced)
        if self.force_full_sync:
            has_history = self.force_full_sync = False
        session = ReplicaSession(
            self.replica_id,
            self._announce_address(),
            history.replid if has_history else None,
            history.offset,
            secret,
            max_frame_bytes=frame_limit_for(node.config.kv_store.max_value_bytes),
            master_timeout_ms=cfg.replica_timeout_secs * 1000,
        )
        if node.resp_address is not None:
            session.resp_port = node.resp_address[1]
        session.min_epoch = self.manager.epoch  # announced in HELLO; older masters refused
        loop = asyncio.get_running_loop()
        self.state = LinkState.CONNECTING
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _MasterConnection(self, session),
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls is not None else None,
                ),
                CONNECT_TIMEOUT_SECONDS,
            )
        except ssl.SSLError as exc:
            return explain_master_tls_error(exc, self.host)
        except (OSError, TimeoutError) as exc:
            return f"cannot connect: {exc or 'timed out'}"
        self.connection = conn
        checker = loop.create_task(self._check_timeouts(conn))
        try:
            reason = await conn.closed
            if conn.lingering:  # until the master has read our ERROR and closed
                self._mark_down()  # the link is down meanwhile
                await asyncio.wait((conn.gone,), timeout=LINGER_SECONDS)
            return reason
        finally:
            checker.cancel()
            if conn.transport is not None:
                conn.transport.close()

    async def _check_timeouts(self, conn: _MasterConnection) -> None:
        # Also the ACK timer: the master's replica timeout must not depend on how often
        # it sends heartbeats (Redis: REPLCONF ACK every second, independent of PINGs).
        loop = asyncio.get_running_loop()
        ack_every = self.manager.config.ack_interval_ms / 1000
        next_ack = loop.time() + ack_every
        while True:
            await asyncio.sleep(min(TIMEOUT_CHECK_SECONDS, ack_every))
            conn.check_timeouts()
            if loop.time() >= next_ack:
                next_ack = loop.time() + ack_every
                conn.send_ack()

    def _announce_address(self) -> str | None:
        addr = self.node.http_address
        if not addr:
            return None
        # An IPv6 zone ("fe80::1%eth0") means nothing to the master, which refuses it.
        text = f"{addr[0].partition('%')[0]}:{addr[1]}"
        try:
            check_host_port(text)
        except InvalidPeerField:
            return None
        return text

    # ----------------------------------------------------------------- sync results
    def on_full_sync_started(self) -> None:
        self.sync_started = time.monotonic()
        self.state = LinkState.TRANSFER

    async def _truncate(self, request: TruncateRequested) -> None:
        """Remove our records after the fork point (keyspace, memory log, WAL), keeping
        them in a file for the operator; or, when that is impossible, arrange a full sync."""
        from synap.persistence import PersistenceError
        from synap.persistence.divergence import rebuild_at, write_diverged_file

        manager = self.manager
        node = self.node
        history = node.history
        persistence = node.persistence
        held, fork, replid = history.offset, request.fork_offset, history.replid
        count = held - fork
        if persistence is None:
            log.warning(
                "history diverged from master %s after offset %d: our %d record(s) after it "
                "are not in its history; this node has no data directory, so it cannot "
                "rebuild its dataset at offset %d to truncate them: full sync instead "
                "(the records are discarded, not saved)",
                self.master_address, fork, count, fork,
            )  # fmt: skip
            self.force_full_sync = True
            return
        try:
            persistence.flush()  # every record we hold is in the WAL files
            rebuilt = await asyncio.to_thread(rebuild_at, persistence.directory, fork, held)
            path = await asyncio.to_thread(
                write_diverged_file, persistence.directory, replid, rebuilt, request.replid
            )
        except (PersistenceError, OSError) as exc:
            log.warning(
                "history diverged from master %s after offset %d (%d record(s) of ours are "
                "not in its history), but the data directory cannot truncate them: %s; "
                "full sync instead (the records are discarded, not saved)",
                self.master_address, fork, count, exc,
            )  # fmt: skip
            self.force_full_sync = True
            return
        if self._stopping or history.offset != held or history.replid != replid:
            path.unlink(missing_ok=True)  # nothing was truncated after all
            return  # the role or history changed meanwhile: the rebuild is stale
        # One synchronous step: the dataset, the history and the memory log move back to
        # the fork point together.
        node.keyspace.replace(rebuilt.data, rebuilt.expires, rebuilt.json_keys)
        node.keyspace.removed = []
        position = history.truncate(fork)
        manager.backlog.reset(fork)
        manager.drop_sub_replicas("history truncated at the fork point")
        manager.history_truncations += 1
        manager.records_truncated += count
        manager.last_diverged_file = str(path)
        log.warning(
            "truncated %d record(s) after offset %d (offsets %d..%d of history %s, which "
            "master %s never had; rebuilt from the snapshot at offset %d + the WAL); they "
            "are saved in %s; resuming by partial sync from offset %d",
            count, fork, fork + 1, held, replid, self.master_address,
            rebuilt.snapshot_offset, path, fork + 1,
            extra={"master": self.master_address, "offset": fork, "truncated": count,
                   "file": str(path)},
        )  # fmt: skip
        try:
            # The stored history (snapshot + WAL) is replaced by the one at the fork point.
            await persistence.reset(node.keyspace, position)
        except PersistenceError as exc:
            log.error("could not store the truncated history: %s", exc)

    def on_partial_sync(self, replid: str, offset: int) -> None:
        history = self.node.history
        self.manager.partial_syncs_performed += 1
        self.synced = True
        if replid != history.replid:
            # The master was promoted and continues our old history under a new id.
            log.info("master continues our history as %s (was %s)", replid, history.replid)
            history.shift(replid)
            self.manager.persist_identity()
            self.manager.drop_sub_replicas("upstream changed its replication id")
        self.state = LinkState.CONNECTED
        self.link_down_since = None
        self.last_error = None  # the link is up: nothing is wrong now
        log.info(
            "partial sync accepted by %s from offset %d", self.master_address, offset + 1,
            extra={"master": self.master_address, "offset": offset + 1},
        )  # fmt: skip

    def install_dataset(
        self,
        data: dict[bytes, bytes],
        expires: dict[bytes, int],
        replid: str,
        offset: int,
        json_keys: set[bytes] | None = None,
    ) -> None:
        node = self.node
        node.keyspace.replace(data, expires, json_keys)
        node.keyspace.removed = []
        node.history.adopt(replid, offset)
        self.manager.backlog.reset(offset)
        self.manager.full_syncs_performed += 1
        self.synced = True
        self.manager.drop_sub_replicas("upstream full sync replaced the dataset")
        self.manager.persist_full_sync()
        elapsed = time.monotonic() - self.sync_started if self.sync_started else 0.0
        self.sync_started = None
        self.state = LinkState.CONNECTED
        self.link_down_since = None
        self.last_error = None
        log.info(
            "full sync complete: %d keys at offset %d in %.2fs", len(data), offset, elapsed,
            extra={"master": self.master_address, "offset": offset, "keys": len(data)},
        )  # fmt: skip

    # ----------------------------------------------------------------- views
    def link_down_seconds(self) -> float | None:
        """Seconds since the link went down (or since this link started, if it never
        synced); None while it is up."""
        if self.connected or self.link_down_since is None:
            return None if self.connected else 0.0
        return max(0.0, time.time() - self.link_down_since)

    @property
    def redis_state(self) -> str:
        return self.state.redis

    def stats(self) -> dict[str, Any]:
        history = self.node.history
        conn = self.connection
        session = conn.session if conn is not None else None
        master_offset = max(self.known_master_offset, history.offset)
        lag_ops = max(0, master_offset - history.offset)
        down = self.link_down_seconds()
        if session is not None and self.connected:
            lag_ms = session.lag_ms
        else:
            # Not synced, or the link is down: our data is at least as old as the moment
            # the link went down (or, never synced, began trying), and that grows until a
            # sync completes. Never 0: 0 would read as "caught up".
            lag_ms = max(1, int((down or 0.0) * 1000))
        progress = session.snapshot_progress if session is not None else None
        return {
            "role": "replica",
            "replica_offset": history.offset,
            "master_offset": master_offset,
            "lag_operations": lag_ops,
            "lag_ms": lag_ms,
            # The spec's example shows total_replicated == replica_offset: every record of
            # the master's history this replica holds (by full sync or streaming).
            "total_replicated": history.offset,
            "records_streamed": self.records_applied,
            "total_bytes": self.bytes_received,
            "connected": self.connected,
            "synced": self.synced,
            "link_down_seconds": None if down is None else int(down),
            "last_heartbeat": int(self.last_heartbeat) if self.last_heartbeat else None,
            "master_address": self.master_address,
            "replica_id": self.replica_id,
            "state": self.state.status,
            "sync_in_progress": progress is not None,
            "sync_keys_received": progress[0] if progress else None,
            "sync_keys_total": progress[1] if progress else None,
            "failed_syncs": self.failed_syncs,
            "last_error": self.last_error,
            "auto_reconnect": self.manager.config.auto_reconnect,
            "lagging": lag_ms > self.manager.config.max_lag_ms,
        }

    def info_fields(self) -> list[tuple[str, Any]]:
        history = self.node.history
        now = time.time()
        conn = self.connection
        progress = conn.session.snapshot_progress if conn is not None else None
        fields: list[tuple[str, Any]] = [
            ("master_host", self.host),
            ("master_port", self.port),
            ("master_link_status", "up" if self.connected else "down"),
            ("master_last_io_seconds_ago", int(now - self.last_io) if self.last_io else -1),
            ("master_sync_in_progress", int(progress is not None)),
            ("slave_read_repl_offset", history.offset),
            ("slave_repl_offset", history.offset),
        ]
        if progress is not None:
            fields += [
                ("master_sync_total_bytes", -1),
                ("master_sync_read_bytes", self.bytes_received),
                ("master_sync_left_bytes", -1),
                ("master_sync_perc", f"{100 * progress[0] / max(progress[1], 1):.2f}"),
            ]
        if not self.connected and self.link_down_since:
            fields.append(("master_link_down_since_seconds", int(now - self.link_down_since)))
        fields += [("slave_priority", 100), ("slave_read_only", 1), ("replica_announced", 1)]
        return fields
