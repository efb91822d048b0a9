"""The master side of replication, as thin asyncio around :class:`MasterSession`.

:class:`MasterServer` accepts replica connections on the replica listener, decides
full or partial sync (:func:`~synap.replication.handshake.decide_sync`), streams new
records from the shared replication log, sends heartbeats, enforces timeouts and answers
``WAIT``.  It runs on masters and on replicas that serve sub-replicas (chains), where it
forwards the exact records the node received, so ids and offsets match down the chain.

Memory stays bounded for slow replicas: a replica is sent records only while its socket
buffer is below a high-water mark; the rest stay in the (shared, bounded) log.  A
replica older than the in-memory log is fed from the WAL segments on disk, a bounded
batch at a time read in a worker thread (:meth:`ReplicaConnection._feed_from_disk`); one
that falls out of both is disconnected and comes back with a full sync.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from synap.config import is_loopback
from synap.persistence import PersistenceError
from synap.persistence.logreader import LogCorrupt, LogGone, SegmentReader
from synap.replication import fork_snapshot
from synap.replication.backlog import OffsetNotInBacklog
from synap.replication.foreign import Verdict, rpc_error_frame, sniff, wrong_port_message
from synap.replication.handshake import SessionEnded, TimedOut, decide_sync
from synap.replication.master_session import (
    AckReceived,
    HelloReceived,
    MasterSession,
    MasterState,
    RecordsFrame,
    SyncRequested,
    batch_entries,
)
from synap.replication.messages import SNAPSHOT_KIND_JSON, ErrorCode
from synap.replication.peer_fields import bounded_text, escape_text
from synap.replication.waiters import APPLIED, FSYNCED, AckWaiters, wait_future
from synap.store.keyspace import now_ms
from synap.tls import PLAIN_MASTER_GOT_TLS, looks_like_tls

if TYPE_CHECKING:
    from synap.replication.host import MasterOwner, ReplicationHost
    from synap.replication.stats import ReplicaEntry

log = logging.getLogger("synap.replication.master")

# Stop queueing data for a replica above this many unsent bytes; resume below a quarter.
HIGH_WATER_BYTES = 4 * 1024 * 1024
# Records per RECORDS frame (the log caps the batch at 1 MiB as well).
BATCH_RECORDS = 4096
# One read from the WAL segments (one worker-thread hop): up to this many records and
# about this many bytes, sent as RECORDS frames of BATCH_RECORDS each.
DISK_READ_RECORDS = 4 * BATCH_RECORDS
DISK_BATCH_BYTES = 4 * 1024 * 1024
# In-process full sync: give other clients a turn once a slice of snapshot chunks
# (64 KiB each) took this long, and drop the key list this many references at a time.
SLICE_SECONDS = 0.001
RELEASE_SLICE_KEYS = 65536
# Keys looked up in the keyspace at a time while a full sync copies it.
SNAPSHOT_SLICE_KEYS = 1024
# The expiry of a placeholder for a key removed during a full sync's copy: long past.
REMOVED_EXPIRE_AT_MS = 1
TIMEOUT_CHECK_SECONDS = 0.25
# A read's records go to the replicas as soon as the WAL has them (before the read's
# replies), unless records went out less than this long ago: then they wait for the end
# of the loop iteration, with every other read's. So a write on an idle master reaches
# its replicas at once, and under load a record waits at most this long, plus the rest
# of its read, before it is sent (Redis writes its replicas once per loop iteration).
SEND_GAP_SECONDS = 0.0002


_gc_freezes = 0  # full syncs running with the collector's objects frozen


def _freeze_gc() -> None:
    global _gc_freezes
    _gc_freezes += 1
    gc.freeze()


def _unfreeze_gc() -> None:
    """The last full sync to end gives the frozen objects back to the collector."""
    global _gc_freezes
    _gc_freezes -= 1
    if _gc_freezes == 0:
        gc.unfreeze()


class ReplicaConnection(asyncio.Protocol):
    """One replica, as seen by the master."""

    def __init__(self, server: MasterServer) -> None:
        self.server = server
        cfg = server.manager.config
        secret = cfg.auth_secret.encode() if cfg.auth_secret else None
        self.session = MasterSession(
            secret, now_ms(), replica_timeout_ms=cfg.replica_timeout_secs * 1000
        )
        self.transport: asyncio.Transport | None = None
        self._received_any = False
        self._sniffing: bytearray | None = bytearray()  # see data_received
        self.peer = "?"
        self.connected_at = time.time()
        self.full_sync_task: asyncio.Task[None] | None = None
        self.disk_task: asyncio.Task[None] | None = None  # partial sync from the segments
        self._writable = asyncio.Event()
        self._writable.set()
        # While our write buffer is over the high-water mark: since when the replica has
        # drained none of it, and the buffer size then (see _check_stalled).
        self._stalled_since: float | None = None
        self._stalled_buffer = 0
        # A forked child sending the snapshot: it owns the socket's output meanwhile.
        self.snapshot_child: fork_snapshot.SnapshotChild | None = None
        self.closed = False

    # ----------------------------------------------------------------- identity
    @property
    def replica_id(self) -> str:
        return self.session.replica_id or f"unidentified@{self.peer}"

    @property
    def address(self) -> str:
        """The replica's HTTP address as it announced it (host 0.0.0.0 -> its peer IP)."""
        announced = self.session.listen_address
        if not announced:
            return self.peer
        host, _, port = announced.rpartition(":")
        if host in ("0.0.0.0", "::", ""):
            host = self.peer.rpartition(":")[0]
        return f"{host}:{port}"

    @property
    def streaming(self) -> bool:
        return self.session.state is MasterState.STREAMING and not self.closed

    @property
    def admitted(self) -> bool:
        """The replica completed the handshake (and authenticated, when a secret is set)
        and is being served: only then does it appear in stats, INFO, ROLE and metrics.
        Before that, its id and address are nothing but claims of an unknown peer."""
        return not self.closed and self.session.state in (
            MasterState.SYNCING_FULL,
            MasterState.STREAMING,
        )

    # ----------------------------------------------------------------- asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = tr = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        tr.set_write_buffer_limits(high=HIGH_WATER_BYTES, low=HIGH_WATER_BYTES // 4)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._writable.set()
        child, self.snapshot_child = self.snapshot_child, None
        if child is not None:
            child.stop()
        self.server.connections.discard(self)
        if self.full_sync_task is not None:
            self.full_sync_task.cancel()
        if self.disk_task is not None:
            self.disk_task.cancel()
        if self.session.hello is not None:
            log.info(
                "replica %s (%s) disconnected", self.replica_id, self.peer,
                extra={"peer": self.peer, "replica_id": self.replica_id},
            )  # fmt: skip

    def pause_writing(self) -> None:
        self._writable.clear()
        self._stalled_since = time.monotonic()
        self._stalled_buffer = self.transport.get_write_buffer_size() if self.transport else 0

    def resume_writing(self) -> None:
        self._writable.set()
        self._stalled_since = None
        if self.streaming:
            self.catch_up()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        first, self._received_any = not self._received_any, True
        if first and looks_like_tls(data):
            # A ClientHello on a plain listener: say so, rather than "frame too large".
            reason = f"replica at {self.peer} {PLAIN_MASTER_GOT_TLS}"
            log.warning("%s", reason)
            self._send(self.session.close(ErrorCode.PROTOCOL, reason))
            self._close()
            return
        if self._sniffing is not None:
            # Until the first frame is known to be ours: a SynapRPC (synap://) client?
            self._sniffing += data
            verdict, request_id = sniff(bytes(self._sniffing))
            if verdict is Verdict.NEED_MORE:
                return
            data, self._sniffing = bytes(self._sniffing), None
            if verdict is Verdict.SYNAPRPC:
                self._refuse_synaprpc(request_id)
                return
        for event in self.session.receive_data(data, now_ms()):
            if self.closed:
                return
            if isinstance(event, AckReceived):
                self.server.on_ack()
            elif isinstance(event, SyncRequested):
                # One read can hold the replica's HELLO and, right behind it, its ERROR
                # (it is changing role): then the session has ended already, and the
                # SessionEnded event that follows closes the connection.
                if self.session.ended is None:
                    self._on_sync_requested(event)
            elif isinstance(event, HelloReceived):
                log.info(
                    "replica %s connected from %s (announces %s), follows %s at offset %d",
                    event.replica_id, self.peer, event.listen_address, event.replid, event.offset,
                )  # fmt: skip
                if self._is_self(event.replica_id):
                    return
                hello = self.session.hello
                if hello is not None and hello.epoch > self.server.manager.epoch:
                    # The replica knows a newer election: this node was replaced.
                    self.server.manager.newer_epoch_seen(hello.epoch, f"replica {event.replica_id}")
            elif isinstance(event, SessionEnded):
                self._end(event)
                return
        self._send(self.session.data_to_send())

    def _is_self(self, replica_id: str) -> bool:
        """Refuse a replica whose id is this node's own: the node was pointed at its own
        replica listener (possibly through another address). True if refused."""
        manager = self.server.manager
        if replica_id != self.server.node.node_id:
            return False
        reason = (
            "refusing to replicate from itself: this replica listener belongs to the "
            f"node that connected to it (id {replica_id}); point it at another master"
        )
        log.error("%s", reason)
        self._send(self.session.close(ErrorCode.REFUSED, reason))
        self._close()
        # Our own link, seen from the other end of the same socket: undo the repoint.
        # (An unauthenticated peer can claim our id, but not our link's socket address.)
        link = manager.replica_link
        conn = link.connection if link is not None else None
        if conn is not None and conn.transport is not None and self.transport is not None:
            ours = conn.transport.get_extra_info("sockname")
            peer = self.transport.get_extra_info("peername")
            if ours and peer and tuple(ours[:2]) == tuple(peer[:2]):
                manager.refused_self_replication(reason)
        return True

    def _refuse_synaprpc(self, request_id: int) -> None:
        """Answer a SynapRPC request with a SynapRPC error saying where to connect."""
        node = self.server.node
        local = self.transport.get_extra_info("sockname") if self.transport else None
        seen_as = local[0] if local else None

        def at(address: tuple[str, int] | None) -> str | None:
            if address is None:
                return None
            host = address[0]
            if host in ("0.0.0.0", "::") and seen_as:
                host = seen_as
            return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"

        message = wrong_port_message(
            self.server.address_text,
            at(node.http_address),
            at(node.resp_address),
            at(node.rpc_address),
        )
        log.warning("closing connection from %s, a SynapRPC client: %s", self.peer, message)
        if self.transport is not None:
            self.transport.write(rpc_error_frame(request_id, message))
        self._close()

    # ----------------------------------------------------------------- sync
    def _on_sync_requested(self, request: SyncRequested) -> None:
        manager = self.server.manager
        history = self.server.node.history
        decision = decide_sync(
            request.replid,
            request.next_offset,
            history.replid,
            history.replid2,
            history.second_offset,
            manager.log_bounds(),
        )
        if decision.truncate:
            # Its history forked from ours: it drops its records after the fork point and
            # comes back for a partial sync (or, unable to, a full one).
            manager.truncations_requested += 1
            log.warning(
                "replica %s diverged from our history: %s; asking it to truncate",
                self.replica_id, decision.reason,
                extra={"peer": self.peer, "replica_id": self.replica_id,
                       "offset": decision.fork_offset},
            )  # fmt: skip
            self._send(
                self.session.send_truncate(
                    history.replid, decision.fork_offset, self.server.manager.epoch
                )
            )
            self._close()
            return
        # Counted as Redis counts them (INFO stats sync_full, sync_partial_ok,
        # sync_partial_err): syncs this node *serves*, apart from the ones its own replica
        # link performs (ReplicationManager.full_syncs_performed).
        if decision.partial:
            manager.sync_partial_ok += 1
            backlog = manager.backlog
            if request.next_offset < backlog.first_offset:
                manager.partial_syncs_from_disk += 1
                log.info(
                    "partial sync for replica %s from offset %d: offsets %d..%d from the "
                    "WAL segments on disk, then the memory log",
                    self.replica_id, request.next_offset, request.next_offset,
                    backlog.first_offset - 1,
                    extra={"peer": self.peer, "replica_id": self.replica_id,
                           "offset": request.next_offset},
                )  # fmt: skip
            else:
                log.info(
                    "partial sync for replica %s from offset %d",
                    self.replica_id, request.next_offset,
                    extra={"peer": self.peer, "replica_id": self.replica_id,
                           "offset": request.next_offset},
                )  # fmt: skip
            self._send(
                self.session.send_continue(history.replid, now_ms(), self.server.manager.epoch)
            )
            self.catch_up()
            return
        refusal = manager.refuse_full_sync_reason(request.replid, request.next_offset)
        if refusal is not None:
            log.error("refusing replica %s: %s", self.replica_id, refusal)
            self._send(self.session.close(ErrorCode.REFUSED, refusal))
            self._close()
            return
        manager.sync_full += 1
        if request.replid != "?":
            # It asked to continue a history and could not: Redis's sync_partial_err.
            manager.sync_partial_err += 1
            refusals = manager.partial_sync_refusals
            refusals[decision.code] = refusals.get(decision.code, 0) + 1
        # Worded as the spec's Troubleshooting section quotes it ("Full sync required").
        persistence = self.server.node.persistence
        damaged = persistence.damaged_segments if persistence else []
        if damaged and request.next_offset < manager.backlog.first_offset:
            log.warning(
                "Full sync required for replica %s: %s; the log on disk cannot serve it "
                "(damaged WAL segment(s): %s)",
                self.replica_id, decision.reason, ", ".join(damaged),
            )  # fmt: skip
        else:
            log.info(
                "Full sync required for replica %s: %s", self.replica_id, decision.reason,
                extra={"peer": self.peer, "replica_id": self.replica_id, "offset": history.offset},
            )  # fmt: skip
        self.full_sync_task = asyncio.get_running_loop().create_task(self._full_sync())

    async def _full_sync(self) -> None:
        """Stream a snapshot of the dataset at one offset, then the records after it:
        from a forked child (:mod:`~.fork_snapshot`) when it can, else in process."""
        if fork_snapshot.usable(self.transport, len(self.server.node.keyspace)):
            await self._full_sync_forked()
        else:
            await self._full_sync_in_process()

    async def _full_sync_forked(self) -> None:
        """The snapshot is a forked child's copy-on-write image of the keyspace, exact
        at ``offset``; the child sends FULLSYNC and the chunks, we send SNAPSHOT_END."""
        node = self.server.node
        manager = self.server.manager
        transport = self.transport
        assert transport is not None
        started = time.monotonic()
        timeout = manager.config.replica_timeout_secs
        # The child writes to the socket itself: nothing of ours may still be queued.
        while transport.get_write_buffer_size() and not self.closed:
            if time.monotonic() - started > timeout:
                self._drop(f"replica {self.replica_id} reads nothing; full sync abandoned")
                return
            await asyncio.sleep(0.001)
        if self.closed:
            return
        keyspace = node.keyspace
        offset = node.history.offset
        count = len(keyspace)
        head = self.session.send_fullsync(
            node.history.replid, offset, count, now_ms(), manager.epoch
        )
        sock = transport.get_extra_info("socket")
        try:
            child = fork_snapshot.SnapshotChild.start(
                sock.fileno(), head, self.session, keyspace, float(timeout)
            )
        except (OSError, RuntimeError) as exc:  # no fork (memory, process limits), or
            # too many children reading shared values at once: the replica retries later
            self._drop(f"full sync to replica {self.replica_id} failed: could not fork: {exc}")
            return
        self.snapshot_child = child
        manager.total_forks += 1
        manager.latest_fork_usec = round(child.fork_ms * 1000)

        def progress(keys: int, sent: int) -> None:
            if not self.closed and self.session.state is MasterState.SYNCING_FULL:
                self.session.snapshot_sent_elsewhere(keys)

        try:
            keys, seq, crc, sent = await child.result(progress)
        except fork_snapshot.SnapshotFailed as exc:
            self.snapshot_child = None
            if self.closed:
                return
            if exc.stalled:  # worded as _check_stalled words it for the in-process sync
                reason = (
                    f"replica {self.replica_id} ({self.peer}) stopped reading: nothing "
                    f"accepted for {timeout}s (replica timeout {timeout}s) during a full "
                    "sync; it is stalled or the network is partitioned"
                )
                self._close_stalled(reason)
            else:
                self._drop(f"full sync to replica {self.replica_id} failed: {exc}")
            return
        finally:
            self.snapshot_child = None
            child.stop()
        if self.closed:
            return
        manager.bytes_sent += sent
        manager.full_sync_bytes_sent += sent
        self.session.snapshot_sent_elsewhere(keys, seq, crc)
        self._send(self.session.snapshot_end(now_ms()))
        manager.full_sync_seconds.observe(time.monotonic() - started)
        log.info(
            "full sync of %d keys at offset %d sent to replica %s in %.2fs by process %d "
            "(fork %.1f ms, %.1f ms CPU)",
            count, offset, self.replica_id, time.monotonic() - started, child.pid, child.fork_ms,
            child.fork_cpu_ms,
            extra={"peer": self.peer, "replica_id": self.replica_id, "offset": offset,
                   "keys": count},
        )  # fmt: skip
        self.full_sync_task = None
        self.catch_up()

    async def _full_sync_in_process(self) -> None:
        """Stream a copy of the dataset taken at one offset, then the records after it.

        The copy is made in slices between client reads, so that no client waits for
        a whole keyspace to be copied (a dict copy of 1M keys is ~25 ms). Only the list
        of keys is taken in one step, at ``offset``; each slice then reads the *current*
        value of its keys. A value may so be newer than ``offset``, but every change
        after ``offset`` is a record the replica applies after the snapshot, in order,
        and records carry whole values (SET), removals (DEL, FLUSH) or absolute expiry
        times: replaying them over a key copied at any moment since ``offset`` ends in
        the master's state. A key removed before its slice is sent as a placeholder that
        expired long ago (the announced key count stays exact); the record that removed
        it is among those replayed.
        """
        node = self.server.node
        started = time.monotonic()
        keys = list(node.keyspace.data)  # one step: references only (~5-15 ms for 1M keys)
        offset = node.history.offset
        replid = node.history.replid
        count = len(keys)
        self._send(
            self.session.send_fullsync(replid, offset, count, now_ms(), self.server.manager.epoch)
        )
        # A list of a million references costs the garbage collector a few ms each time
        # it traverses it (the keyspace's own dicts of bytes it never does): move it, with
        # everything older, out of the collector's reach while the sync runs.
        _freeze_gc()
        clock = time.perf_counter
        try:
            slice_started = clock()
            for batch in batch_entries(self._snapshot_entries(keys)):
                if self.closed:
                    return
                chunk = self.session.snapshot_chunk(batch)
                self._send(chunk)
                self.server.manager.full_sync_bytes_sent += len(chunk)
                if not self._writable.is_set():
                    await self._writable.wait()
                    slice_started = clock()
                elif clock() - slice_started >= SLICE_SECONDS:
                    await asyncio.sleep(0)
                    slice_started = clock()
            if self.closed:
                return
            self._send(self.session.snapshot_end(now_ms()))
            self.server.manager.full_sync_seconds.observe(time.monotonic() - started)
            log.info(
                "full sync of %d keys at offset %d sent to replica %s in %.2fs",
                count, offset, self.replica_id, time.monotonic() - started,
                extra={"peer": self.peer, "replica_id": self.replica_id, "offset": offset,
                       "keys": count},
            )  # fmt: skip
            self.full_sync_task = None
            self.catch_up()
            while keys:  # dropping a million references is several ms: a slice at a time
                del keys[-RELEASE_SLICE_KEYS:]
                await asyncio.sleep(0)
        finally:
            del keys
            _unfreeze_gc()

    def _snapshot_entries(self, keys: list[bytes]) -> Iterator[tuple[Any, ...]]:
        """The snapshot entries of ``keys``, each read when its chunk is built (see
        :meth:`_full_sync`). The keyspace is looked up afresh per slice of keys: a FLUSH
        may have replaced its dictionaries."""
        node = self.server.node
        for start in range(0, len(keys), SNAPSHOT_SLICE_KEYS):
            keyspace = node.keyspace
            data, expires, json_keys = keyspace.data, keyspace.expires, keyspace.json_keys
            get, expiry = data.get, expires.get
            for key in keys[start : start + SNAPSHOT_SLICE_KEYS]:
                value = get(key)
                if value is None:  # removed since `offset`: see _full_sync
                    yield (key, b"", REMOVED_EXPIRE_AT_MS)
                elif json_keys and key in json_keys:
                    # A value of json kind travels with a fourth element, 1 (messages.py).
                    yield (key, value, expiry(key, 0), SNAPSHOT_KIND_JSON)
                else:
                    yield (key, value, expiry(key, 0))

    def catch_up(self, frames: dict[int, RecordsFrame] | None = None) -> None:
        """Send records from the log until the replica is current or its buffer is full.

        ``frames`` caches frames built in this round, keyed by first offset, so that
        replicas at the same position share one encoded frame."""
        if not self.streaming or self.full_sync_task is not None or self.disk_task is not None:
            return
        manager = self.server.manager
        backlog = manager.backlog
        while self._writable.is_set() and not self.closed:
            start = self.session.next_offset
            if start > backlog.last_offset:
                return
            frame = frames.get(start) if frames is not None else None
            if frame is None and start < backlog.first_offset:
                disk = manager.disk_log_bounds()
                if disk is not None and disk[0] <= start:
                    self.disk_task = asyncio.get_running_loop().create_task(self._feed_from_disk())
                    return
            if frame is None:
                try:
                    records = backlog.records_from(start, BATCH_RECORDS)
                except OffsetNotInBacklog:
                    self._drop(
                        f"replica {self.replica_id} fell out of the replication log "
                        f"(needs offset {start}, log starts at {backlog.first_offset}); "
                        "it must resync (raise replication.log_max_ops / log_max_mb, or "
                        "keep more on disk with persistence.log_retention, if this repeats)"
                    )
                    return
                frame = MasterSession.records_frame(start, records, now_ms())
                if frames is not None:
                    frames[start] = frame
            self._send(self.session.send_records(frame))
            limit = self.server.output_buffer_limit
            if self.transport is not None and self.transport.get_write_buffer_size() > limit:
                self._drop(
                    f"replica {self.replica_id} exceeded the output buffer limit "
                    f"({limit} bytes, replication.output_buffer_limit_mb)"
                )
                return

    async def _feed_from_disk(self) -> None:
        """Partial sync from the WAL segments: the records older than the memory log.

        Batches of at most DISK_READ_RECORDS / DISK_BATCH_BYTES are read in a worker
        thread (clients keep being served), each sent only while the replica's socket
        buffer is below the high-water mark, until the replica reaches the memory log.  A damaged
        segment ends it: the replica is dropped and, asking again, gets a full sync."""
        manager = self.server.manager
        persistence = self.server.node.persistence
        assert persistence is not None
        backlog = manager.backlog
        reader = SegmentReader(persistence.directory, self.session.next_offset)
        sent = 0
        started = time.monotonic()
        try:
            while not self.closed and self.streaming:
                start = self.session.next_offset
                if start >= backlog.first_offset:
                    break
                disk = manager.disk_log_bounds()
                if disk is None or disk[0] > start:
                    self._drop(
                        f"replica {self.replica_id} needs offset {start}, no longer in the "
                        "log on disk or in memory; it must resync"
                    )
                    return
                persistence.flush()  # whatever is buffered becomes readable
                upto = backlog.first_offset - 1
                records = await asyncio.to_thread(
                    reader.read_batch, DISK_READ_RECORDS, DISK_BATCH_BYTES, upto
                )
                if self.closed or not self.streaming:
                    return
                if not records:
                    if start >= backlog.first_offset:
                        break
                    self._drop(
                        f"replica {self.replica_id}: offset {start} could not be read from "
                        "the log on disk; it must resync"
                    )
                    return
                ts = now_ms()
                for i in range(0, len(records), BATCH_RECORDS):
                    piece = records[i : i + BATCH_RECORDS]
                    frame = MasterSession.records_frame(start + i, piece, ts)
                    self._send(self.session.send_records(frame))
                sent += len(records)
                manager.records_sent_from_disk += len(records)
                del records
                if not self._writable.is_set():
                    await self._writable.wait()
        except LogCorrupt as exc:
            first_report = exc.segment.name not in persistence.damaged_segments
            persistence.damaged_segment(exc.segment)
            log.error(
                "replication log on disk is damaged: %s; replica %s cannot continue from "
                "disk and is disconnected, it will get a full sync (the damaged segment is "
                "no longer served; the data set in memory is intact)",
                exc, self.replica_id,
            )  # fmt: skip
            if first_report:
                # A snapshot now covers the damage, so a restart no longer replays it.
                manager.persist_identity()
            self._drop(f"log segment {exc.segment.name} is damaged; resync needed")
            return
        except (LogGone, OSError, PersistenceError) as exc:
            self._drop(f"replica {self.replica_id}: the log on disk cannot serve it ({exc})")
            return
        finally:
            reader.close()
            self.disk_task = None
        if sent:
            elapsed = time.monotonic() - started
            log.info(
                "sent %d records (%d bytes read) from the log on disk to replica %s in "
                "%.2fs; continuing from the memory log at offset %d",
                sent, reader.bytes_read, self.replica_id, elapsed, self.session.next_offset,
            )  # fmt: skip
        self.catch_up()

    # ----------------------------------------------------------------- output
    def heartbeat(self, offset: int) -> None:
        if (
            self.closed
            or self.snapshot_child is not None
            or self.session.state
            not in (
                MasterState.SYNCING_FULL,
                MasterState.STREAMING,
            )
        ):
            return
        self._send(
            self.session.heartbeat(
                max(offset, self.session.next_offset - 1), now_ms(), self.server.manager.epoch
            )
        )

    def check_timeouts(self) -> None:
        for event in self.session.check_timeouts(now_ms()):
            if isinstance(event, SessionEnded):
                self._end(event)
        self._check_stalled()

    def _close_stalled(self, reason: str) -> None:
        """A replica that accepts no bytes for the replica timeout: say why, tell it
        (TIMEOUT) and drop the link."""
        log.warning("%s", reason)
        self.session.close(ErrorCode.TIMEOUT, reason)
        self._close(abort=True)

    def _check_stalled(self) -> None:
        """Drop a replica that stopped reading what we send for ``replica_timeout_secs``.

        The session's ACK timeout covers a silent replica while streaming, but during a
        full sync a replica is loading and sends nothing; what shows it is dead is our
        write buffer not draining (Redis applies repl-timeout to the bulk transfer too).
        Without this a frozen replica would pin the snapshot copy and its slot for good.
        Any drain counts as progress, so a slow link is not mistaken for a dead one."""
        since = self._stalled_since
        if since is None or self.closed or self.transport is None:
            return
        size = self.transport.get_write_buffer_size()
        now = time.monotonic()
        if size < self._stalled_buffer:
            self._stalled_buffer = size
            self._stalled_since = now
            return
        timeout = self.server.manager.config.replica_timeout_secs
        if now - since >= timeout:
            reason = (
                f"replica {self.replica_id} ({self.peer}) stopped reading: {size} bytes unsent "
                f"for {now - since:.1f}s (replica timeout {timeout}s) during "
                f"{'a full sync' if self.full_sync_task is not None else 'streaming'}; "
                "it is stalled or the network is partitioned"
            )
            self._close_stalled(reason)

    def _send(self, data: bytes) -> None:
        # While a child sends the snapshot, a frame of ours would land inside its stream:
        # nothing is sent (a close then ends the connection mid-snapshot).
        if data and self.transport is not None and not self.closed and self.snapshot_child is None:
            self.transport.write(data)
            self.server.manager.bytes_sent += len(data)

    def _end(self, event: SessionEnded) -> None:
        # The reason may be the replica's own ERROR text: escaped, it stays one log line.
        log.warning(
            "replica %s (%s) link closed: %s",
            self.replica_id, self.peer, escape_text(bounded_text(event.reason)),
        )  # fmt: skip
        self._send(self.session.data_to_send())
        # A timed-out replica that is not reading would keep a graceful close (which
        # waits for the buffer to drain) and its memory pending forever.
        stuck = self.transport is not None and self.transport.get_write_buffer_size() > 0
        self._close(abort=isinstance(event, TimedOut) and stuck)

    def _drop(self, reason: str) -> None:
        log.warning("%s", reason)
        self._send(self.session.close(ErrorCode.REFUSED, reason))
        self._close()

    def disconnect(self, reason: str) -> None:
        if not self.closed:
            self._send(self.session.close(ErrorCode.SHUTTING_DOWN, reason))
            self._close()

    def _close(self, abort: bool = False) -> None:
        self.closed = True
        child, self.snapshot_child = self.snapshot_child, None
        if child is not None:
            child.stop()
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    # ----------------------------------------------------------------- views
    def info(self, master_offset: int) -> ReplicaEntry:
        s = self.session
        state = {
            MasterState.SYNCING_FULL: "send_bulk",
            MasterState.STREAMING: "online",
        }.get(s.state, "wait_bgsave")
        now = now_ms()
        if s.state is MasterState.STREAMING:
            lag_ms = s.lag_ms(master_offset, now)
        else:
            # Still loading its full sync: it holds none of our data yet, so it is at
            # least as far behind as the time since it connected (never 0).
            lag_ms = max(1, int(now - self.connected_at * 1000))
        return {
            "id": self.replica_id,
            "address": self.address,
            "listen_address": s.listen_address,
            "resp_port": s.hello.resp_port if s.hello is not None else None,
            "peer_address": self.peer,
            "offset": s.acked_offset,
            "lag_operations": s.lag_operations(master_offset),
            "lag_ms": lag_ms,
            "connected_at": int(self.connected_at),
            "last_heartbeat": int(s.last_ack_ms / 1000)
            if s.last_ack_ms
            else int(self.connected_at),
            "state": state,
            "lagging": lag_ms > self.server.manager.config.max_lag_ms,
        }


class MasterServer:
    def __init__(self, manager: MasterOwner, node: ReplicationHost, host: str, port: int) -> None:
        self.manager = manager
        self.node = node
        self.host = host
        self.port = port
        self.connections: set[ReplicaConnection] = set()
        self.output_buffer_limit = manager.config.output_buffer_limit_mb * 1024 * 1024
        self._server: asyncio.base_events.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._flush_scheduled = False
        self._unsent = False  # records were committed since the last send
        self._last_sent = 0.0  # time.monotonic() of the last send_now()
        self._ack_waiters = AckWaiters()
        self._acks_requested = False  # a _request_acks() is scheduled
        # The loop, once started (asyncio.get_running_loop() costs a getpid() each time).
        self._loop: asyncio.AbstractEventLoop | None = None
        self.address_text = f"{host}:{port}"

    async def start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ReplicaConnection(self),
            self.host,
            self.port,
            reuse_address=True,
            ssl=self.node.tls.replication_server,
        )
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]
        self.address_text = f"{self.host}:{self.port}"
        if self.node.tls.replication_server is not None:
            log.info("replica listener %s serves TLS (tls.replication)", self.address_text)
        if self.manager.config.auth_secret is None and not is_loopback(self.host):
            log.warning(
                "replica listener %s accepts replicas without authentication: anyone who can "
                "reach it can copy the whole dataset; set replication.auth_secret on every node "
                "(docs/SECURITY.md)",
                self.address_text,
            )
        self._tasks = [
            loop.create_task(self._heartbeats(), name="replication-heartbeats"),
            loop.create_task(self._timeouts(), name="replication-timeouts"),
        ]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop_all("master is shutting down or changing role")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._ack_waiters.release_all()

    def drop_all(self, reason: str) -> None:
        for conn in list(self.connections):
            conn.disconnect(reason)

    # ----------------------------------------------------------------- streaming
    def notify(self) -> None:
        """New records were committed: :meth:`send_now` sends them when the node has
        written its WAL, unless records went out less than ``SEND_GAP_SECONDS`` ago; what
        it leaves is sent at the end of the loop iteration, so that a burst of writes
        becomes a few frames."""
        if self.connections:
            self._unsent = True
            if not self._flush_scheduled:
                self._flush_scheduled = True
                (self._loop or asyncio.get_running_loop()).call_soon(self._flush)

    def send_now(self) -> None:
        """Send the records committed so far, before the replies of the read that
        committed them (the node calls this once the WAL holds them): an idle replica
        has a write before its client has the reply. Under load, at most once per
        ``SEND_GAP_SECONDS``; the end of the loop iteration sends the rest."""
        if self._unsent and (now := time.monotonic()) - self._last_sent >= SEND_GAP_SECONDS:
            self._last_sent = now
            self._send()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._unsent:
            self._send()

    def _send(self) -> None:
        self._unsent = False
        frames: dict[int, RecordsFrame] = {}
        for conn in list(self.connections):
            conn.catch_up(frames)

    def flush_now(self) -> None:
        """Send what :meth:`notify` scheduled now (the callback then finds nothing)."""
        if self._flush_scheduled:
            self._flush()

    async def _heartbeats(self) -> None:
        interval = self.manager.config.heartbeat_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            offset = self.node.history.offset
            for conn in list(self.connections):
                conn.heartbeat(offset)

    async def _timeouts(self) -> None:
        while True:
            await asyncio.sleep(TIMEOUT_CHECK_SECONDS)
            for conn in list(self.connections):
                conn.check_timeouts()

    # ----------------------------------------------------------------- WAIT
    def _acked_offsets(self, kind: int) -> list[int]:
        if kind == FSYNCED:
            return [c.session.fsynced_offset for c in self.connections if c.streaming]
        return [c.session.acked_offset for c in self.connections if c.streaming]

    def count_acked(self, target: int, kind: int = APPLIED) -> int:
        return sum(1 for offset in self._acked_offsets(kind) if offset >= target)

    def streaming_count(self) -> int:
        return sum(1 for c in self.connections if c.streaming)

    def good_replicas(self, max_lag_secs: int) -> int:
        """Replicas streaming whose last ACK is at most ``max_lag_secs`` old (Redis's
        min-replicas-max-lag rule; 0 = any streaming replica)."""
        now = now_ms()
        limit = max_lag_secs * 1000
        return sum(
            1
            for c in self.connections
            if c.streaming
            and (
                not limit
                or (c.session.last_ack_ms is not None and now - c.session.last_ack_ms <= limit)
            )
        )

    async def wait_for_acks(
        self, target: int, wanted: int, timeout: float | None, kind: int = APPLIED
    ) -> int:
        """Wait until ``wanted`` replicas acknowledged ``target`` (applied or fsynced),
        or ``timeout`` seconds (None: forever); returns how many did."""
        count = self.count_acked(target, kind)
        if count >= wanted or wanted <= 0:
            return count
        waiter = self._ack_waiters.add(kind, wanted, target)
        if not self._acks_requested:
            # Replicas ACK records a moment later (replica.py, ACK_DELAY_SECONDS) but a
            # HEARTBEAT at once: ask with one (Redis's REPLCONF GETACK), after this loop
            # iteration's records went out (the node's flush was scheduled before this).
            self._acks_requested = True
            (self._loop or asyncio.get_running_loop()).call_soon(self._request_acks)
        await wait_future(waiter, timeout)
        return self.count_acked(target, kind)

    def _request_acks(self) -> None:
        self._acks_requested = False
        self.flush_now()
        offset = self.node.history.offset
        for conn in list(self.connections):
            if conn.streaming:
                conn.heartbeat(offset)

    def on_ack(self) -> None:
        if self._ack_waiters:
            self._ack_waiters.resolve(self._acked_offsets)

    # ----------------------------------------------------------------- views
    def replicas_info(self) -> list[ReplicaEntry]:
        offset = self.node.history.offset
        return [
            c.info(offset)
            for c in sorted(self.connections, key=lambda c: c.connected_at)
            if c.admitted
        ]
