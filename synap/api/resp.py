"""The Redis-protocol front end: an ``asyncio.Protocol`` per client.

The protocol only moves bytes: a sans-IO :class:`~synap.api.resp_reader.RequestReader`
(hiredis, inline commands, request boundaries) turns each read into whole requests, which
are processed as a batch and answered with one ``transport.write`` after the node's
write-ahead log has been flushed (group commit: under ``fsync_mode: always`` nothing is
acknowledged before it is on disk).  A handler may return an awaitable (``WAIT``); the
connection then holds back later requests until it resolves, so replies stay in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from time import perf_counter, perf_counter_ns
from typing import TYPE_CHECKING, Any, Final, cast

from synap.api import resp_codec as R
from synap.api.cmdstats import stat_name
from synap.api.resp_admin import ADMIN_COMMANDS
from synap.api.resp_commands import DATA_COMMANDS
from synap.api.resp_consistency import CONSISTENCY_COMMANDS
from synap.api.resp_context import RespClient, no_perm
from synap.api.resp_framing import PROTO_MAX_BULK_LEN
from synap.api.resp_monitor import feed_monitors
from synap.api.resp_reader import RequestError, RequestReader
from synap.api.resp_strings import STRING_COMMANDS
from synap.api.resp_table import SPECS, CommandSpec, Handler, build
from synap.api.sentinel import cmd_sentinel
from synap.commands.errors import CommandError, NoReplicasError, OutOfMemoryError
from synap.store import watch
from synap.store.keyspace import EvictionPolicy, now_ms

if TYPE_CHECKING:
    from synap.api.services import NodeServices
    from synap.commands.layer import Commands
    from synap.store.history import History


def _plain_loop() -> Callable[[bytes, Commands, bool, bytes, int, list[object]], int] | None:
    """The plain GET/SET read loop in C (Cython; optional, see RespConnection._run_plain):
    None when it is not built (no Cython or compiler) or under SYNAP_PURE_PYTHON=1."""
    try:
        from synap.api import resp_plain
    except ImportError:
        return None
    return resp_plain.run


# (Final: compiled code reads these from C statics, not from the module's dict.)
_PLAIN_RUN: Final = _plain_loop()
_NULL2: Final = R.NULL2
_NULL3: Final = R.NULL3

log = logging.getLogger("synap.resp")

# MULTI / EXEC / DISCARD (redis-py's default pipeline): commands are queued and run back
# to back at EXEC; nothing else runs on the event loop meanwhile, so no other client sees
# half a transaction.  A queued command is checked as Redis checks it (known, arity); a
# refused one makes EXEC answer EXECABORT.  WATCH (optimistic locking): EXEC answers a
# null array when a watched key changed (synap.store.watch).  Commands flagged no_multi
# (those that wait: WAIT, SAVE, ...) cannot be queued; those flagged transaction (MULTI,
# EXEC, ...) run at once (synap.api.resp_table).
_NOAUTH = R.error("NOAUTH Authentication required.")
# The commands RespConnection._run_fast may take (as clients send them).
_FAST_NAMES = frozenset({b"GET", b"get", b"SET", b"set"})
_NOT_IN_MULTI = R.error("ERR Command not allowed inside a transaction")

# A request (one command with all its arguments) may not buffer more than this beyond
# the largest allowed bulk string; a backstop behind RequestFraming's length check.
REQUEST_OVERHEAD_BYTES = 1024 * 1024


class RespConnection(asyncio.Protocol):
    def __init__(self, node: NodeServices) -> None:
        self.node = node
        self.cmds = node.commands
        self.resp3 = False
        self.name: bytes | None = None
        self.id = node.next_client_id()
        self.authenticated = not node.config.server.api_keys
        # With server.admin_key set, the admin commands need AUTH <admin key> first.
        self.admin = node.config.server.admin_key is None
        self.closing = False
        self._transport: asyncio.Transport | None = None
        self._blocked: Awaitable[Any] | None = None
        kv = node.config.kv_store
        # Bulk strings up to the larger of Redis's limit and ours are read (so that a value
        # just over kv_store.max_value_bytes gets a clear error reply); longer ones close.
        self._max_bulk = max(PROTO_MAX_BULK_LEN, kv.max_value_bytes, kv.max_key_bytes)
        self._max_request = self._max_bulk + REQUEST_OVERHEAD_BYTES
        self._requests = RequestReader(self._max_bulk, self._max_request)
        # The requests (and protocol error) of a read still to be answered when a
        # blocking command (WAIT) resolves.
        self._pending: list[list[bytes]] = []
        self._pending_error: str | None = None
        # Reads that arrive while a blocking command (WAIT) holds the connection.
        self._held: list[bytes] = []
        self._held_bytes = 0
        # Requests queued since MULTI (None outside a transaction), and whether one of
        # them was refused (EXEC then discards the transaction, as Redis does).
        self._queued: list[list[bytes]] | None = None
        self._queue_refused = False
        self.watcher: watch.Watcher | None = None
        # CLIENT REPLY OFF|SKIP: replies dropped (see _muted); _muting is set while any is.
        self.reply_off = False
        self.skip_next = False
        self._skip = False
        self._muting = False
        self.no_evict = False
        self.peer = ""
        self.laddr = ""
        self.fd = -1
        self.created = self.last_active = time.monotonic()
        self.last_cmd: bytes | None = None
        self.monitoring = False
        self._stats = node.command_stats
        self._timings = node.resp_timings
        self._processed = node.processed  # (INFO total_commands_processed)
        self._reply_after_flush = node.reply_after_flush
        self._history: History = node.commands.history
        # What synap.api.resp_plain.run reports of a read, besides the bytes it took.
        self._plain_result: list[object] = [0, 0, False, None, None, 0, 0]
        self._monitors = node.monitors
        self.last_write_offset = 0  # offset of this connection's last write (0: none)
        # Plain GET / SET runs take _run_fast (off only to compare it with the general
        # path in tests).
        self.fast_path = True

    # ----------------------------------------------------------- lifecycle
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        local = transport.get_extra_info("sockname")
        self.laddr = f"{local[0]}:{local[1]}" if local else "?"
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else -1
        if not self.node.client_opened(self):
            self.closing = True
            if self._transport is not None:  # (nothing is held for a new connection)
                self._transport.write(R.error("ERR max number of clients reached"))
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.unwatch()
        self.node.client_closed(self)

    @property
    def blocked(self) -> bool:
        """Waiting on a blocking command (WAIT): INFO's blocked_clients."""
        return self._blocked is not None

    def close_after_reply(self) -> None:
        self.closing = True

    def idle_seconds(self, now: float) -> float:
        """Seconds since the client last sent anything (0 while it waits on WAIT or
        MONITOR: those are not idle)."""
        if self._blocked is not None or self.monitoring:
            return 0.0
        return now - self.last_active

    def kill(self) -> None:
        """CLIENT KILL from another connection: close now, nothing more is answered."""
        self.closing = True
        if self._transport is not None:
            self._transport.close()

    # ----------------------------------------------------------- input
    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if (
            _PLAIN_RUN is not None
            and self._blocked is None
            and self.fast_path
            and self.authenticated
            and self._queued is None
            and not self._muting
            and not self._monitors
            and self._requests.idle
        ):
            self._run_plain(data)  # (sets last_active)
            return
        self.last_active = time.monotonic()
        if self._blocked is not None:
            self._held.append(data)
            self._held_bytes += len(data)
            if self._held_bytes > self._max_request:
                self._fatal("ERR Protocol error: request exceeds the maximum allowed size")
            return
        try:  # self._receive(data), inlined: this runs for every read
            requests = self._requests.feed(data)
        except RequestError as exc:
            self._run(exc.requests, str(exc))
        else:
            self._run(requests, None)

    def _run_plain(self, data: bytes) -> None:
        """A read that begins at a request boundary, while the guards of
        :meth:`_run_fast` that hold for a whole read are clear: the plain GETs and SETs
        it starts with run in C (:func:`synap.api.resp_plain.run`: parse, the same
        :meth:`~synap.commands.layer.Commands.get_fast` /
        :meth:`~synap.commands.layer.Commands.set_fast` calls, replies into one buffer),
        counted as :meth:`_run_fast` counts them; the rest of the read, from the first
        request the loop does not take, goes through the general path.  The loop reads
        the clock (for ``last_active`` and the run's timing) in C."""
        cmds = self.cmds
        history = cmds.history
        before = history.offset
        result = self._plain_result
        run = _PLAIN_RUN
        assert run is not None
        null = _NULL3 if self.resp3 else _NULL2
        taken = run(data, cmds, not cmds.guard_reads, null, self._max_bulk, result)
        ran = cast(int, result[0])
        gets = cast(int, result[1])
        last_set = result[2] is True
        reply = cast("bytes | None", result[3])
        failure = cast("BaseException | None", result[4])
        self.last_active = cast(int, result[5]) / 1e9  # (as time.monotonic() reads it)
        result[3] = result[4] = None  # (drop the references until the next read)
        if failure is not None:  # a bug: the general path runs this request and answers it
            log.error("internal error in the RESP fast path", exc_info=failure)
        if ran:
            self._account_fast(ran, gets, cast(int, result[6]), b"SET" if last_set else b"GET")
            if history.offset != before:
                self.last_write_offset = history.offset
        if taken == len(data):  # the whole read (the usual case): one reply, one write
            if reply is not None:
                self._reply(reply)
            return
        replies: list[bytes] = [] if reply is None else [reply]
        try:
            requests = self._requests.feed(data[taken:] if taken else data)
        except RequestError as exc:
            self._run(exc.requests, str(exc), replies)
        else:
            self._run(requests, None, replies)

    def _receive(self, data: bytes) -> None:
        """Process a read: the requests it completes, then its protocol error if any."""
        try:
            requests = self._requests.feed(data)
        except RequestError as exc:
            self._run(exc.requests, str(exc))
        else:
            self._run(requests, None)

    def _run(
        self, requests: list[list[bytes]], error: str | None, replies: list[bytes] | None = None
    ) -> None:
        """Answer ``requests`` in one write (after ``replies``, those of the read's
        requests already run), then ``error`` (closing).  A blocking command (WAIT)
        holds back the rest until it resolves.  Runs of plain GET and SET take the fast
        path (:meth:`_run_fast`), the rest :meth:`_dispatch`."""
        if replies is None:
            replies = []
        n = len(requests)
        i = 0
        fast = self.fast_path
        while i < n:
            if self.closing:
                break
            if fast:
                i = self._run_fast(requests, i, replies)
                if i >= n:
                    break
            reply = self._dispatch(requests[i])
            i += 1
            if type(reply) is bytes:
                if not self._muting or not self._muted():
                    replies.append(reply)
            else:
                self._flush(replies)
                self._pending = requests[i:]
                self._pending_error = error
                self._block_on(reply)  # type: ignore[arg-type]
                return
        self._flush(replies)
        if self.closing:
            if self._transport is not None:
                self.node.flush_replies()  # the held replies first
                self._transport.close()
            return
        if error is not None:
            self._fatal(error)

    def _run_fast(self, requests: list[list[bytes]], i: int, replies: list[bytes]) -> int:
        """Run the plain GETs and SETs (``GET key``, ``SET key value``) from
        ``requests[i]`` on; return the index of the first request left to
        :meth:`_dispatch`.

        The guards of the general path that can change only between commands are
        checked once for the run: authenticated, not in MULTI, replies not muted
        (CLIENT REPLY), no MONITOR, reads not guarded (a replica with
        ``serve_stale_reads: false``), writes allowed (role, paused writes, leadership,
        min-replicas-to-write), no memory cap or eviction policy
        (:meth:`~synap.commands.layer.Commands.fast_writes`).  Each SET checks its own
        limits (:meth:`~synap.commands.layer.Commands.set_fast`) and falls back when
        any applies.  The run is timed once for the metrics and INFO commandstats.
        ``tests/unit/test_resp_fast_path.py`` checks it answers, stores and records
        exactly what the general path does."""
        if requests[i][0] not in _FAST_NAMES:
            return i
        if not self.authenticated or self._queued is not None or self._muting or self._monitors:
            return i
        cmds = self.cmds
        readable = not cmds.guard_reads
        writable = -1  # Commands.fast_writes(), asked at the first SET of the run
        history = cmds.history
        before = history.offset
        null = R.NULL3 if self.resp3 else R.NULL2
        ok = R.OK
        start = i
        n = len(requests)
        gets = 0
        last = b""
        started = perf_counter_ns()
        try:
            while i < n:
                request = requests[i]
                argc = len(request)
                name = request[0]
                if argc == 2 and readable and (name == b"GET" or name == b"get"):
                    value = cmds.get_fast(request[1])
                    if value is None:
                        replies.append(null)
                    else:
                        replies.append(b"$%d\r\n%s\r\n" % (len(value), value))
                    gets += 1
                    last = b"GET"
                elif argc == 3 and (name == b"SET" or name == b"set"):
                    if writable < 0:
                        writable = 1 if cmds.fast_writes() else 0
                    if not writable or not cmds.set_fast(request[1], request[2]):
                        break
                    replies.append(ok)
                    last = b"SET"
                else:
                    break
                i += 1
        except Exception:  # a bug: the general path runs this request and answers it
            log.exception("internal error in the RESP fast path")
        ran = i - start
        if ran:
            elapsed = perf_counter_ns() - started
            self._account_fast(ran, gets, elapsed, last)
            if history.offset != before:
                self.last_write_offset = history.offset
        return i

    def _account_fast(self, ran: int, gets: int, elapsed_ns: int, last: bytes) -> None:
        """What :meth:`_dispatch` counts per command, once for a fast run of ``ran``
        commands (``gets`` of them GETs, the rest SETs) that took ``elapsed_ns``."""
        self._processed.value += ran
        self.last_cmd = last
        sets = ran - gets
        timings = self._timings  # node.resp_timings (INFO commandstats reads it too)
        get_ns = elapsed_ns * gets // ran
        if gets:
            timings.observe_many(b"GET", gets, get_ns / 1e9)
        if sets:
            timings.observe_many(b"SET", sets, (elapsed_ns - get_ns) / 1e9)

    def _dispatch(self, request: list[bytes]) -> object:
        name = request[0]
        spec = SPECS.get(name)
        if spec is None:
            upper = name.upper()
            spec = SPECS.get(upper)
            if spec is None:
                return self._refuse(R.error(_unknown_command(request)))
            name = upper
        self._processed.value += 1
        self.last_cmd = name
        if not self.authenticated and not spec.no_auth:
            return self._refuse(_NOAUTH, name, request)
        if not self.admin and spec.admin_key:
            return self._refuse(R.error(no_perm(name).message), name, request)
        # The arity check, once for every command (Redis's processCommand): the
        # subcommand's for a container command (CONFIG GET), else the command's.
        sub = spec
        if spec.subcommands:
            sub = spec.sub(request)
            if sub is spec and len(request) > 1:
                return self._refuse(R.error(_unknown_subcommand(request)), name, request)
        arity = sub.arity  # (CommandSpec.arity_ok, inlined: this runs for every command)
        if len(request) != arity if arity > 0 else len(request) < -arity:
            return self._refuse(R.error(sub.wrong_args), name, request)
        if self._queued is not None and not spec.transaction:
            return self._queue(spec, sub, name, request)
        handler = spec.handler
        history = self.node.history
        before = history.offset
        started = perf_counter()
        try:  # handlers answer errors by raising CommandError (a few return one)
            reply = handler(self, request)
            if type(reply) is bytes and reply[:1] == b"-":
                self._stats.failed(sub.name, reply)
        except CommandError as exc:
            reply = R.error(exc.message)
            self._stats.failed(sub.name, reply)
        except Exception:
            log.exception("internal error in %s", name.decode(errors="replace"))
            reply = R.error("ERR internal error; see the server log")
            self._stats.failed(sub.name, reply)
        finally:
            # The one per-command timing: /metrics and INFO commandstats read it.
            self.node.resp_timings.observe(sub.name, perf_counter() - started)
        if self._monitors:
            feed_monitors(self, request, sub.flags)
        if history.offset != before:
            # The read-your-writes token of this connection (SYNAP.OFFSET, WAITAOF).
            self.last_write_offset = history.offset
        return reply

    def _queue(
        self, spec: CommandSpec, sub: CommandSpec, name: bytes, request: list[bytes]
    ) -> bytes:
        """Inside MULTI: queue ``request`` or refuse it (EXEC then aborts)."""
        assert self._queued is not None
        if sub.no_multi or spec.no_multi:
            return self._refuse(_NOT_IN_MULTI, name, request)
        try:
            self._check_memory([request], queueing=True)
            if sub.write and not self.node.enough_good_replicas():
                raise NoReplicasError()
        except CommandError as exc:
            return self._refuse(R.error(exc.message), name, request)
        self._queued.append(request)
        return R.QUEUED

    def execute(self, request: list[bytes]) -> object:
        """Run one request (``[name, *args]``) as if this connection had read it: its RESP
        reply, or an awaitable for a blocking command.  The SynapRPC front end
        (:mod:`synap.api.rpc`) runs its commands through here."""
        return self._dispatch(request)

    def _refuse(
        self, reply: bytes, name: bytes | None = None, request: list[bytes] | None = None
    ) -> bytes:
        self._stats.rejected(
            stat_name(name, request) if name is not None and request else None, reply
        )
        if self._queued is not None:
            self._queue_refused = True
        return reply

    def multi(self) -> bytes:
        if self._queued is not None:
            raise CommandError("ERR MULTI calls can not be nested")
        self._queued = []
        self._queue_refused = False
        return R.OK

    def exec(self) -> bytes:
        queued, self._queued = self._queued, None
        if queued is None:
            raise CommandError("ERR EXEC without MULTI")
        watcher = self.watcher
        changed = watcher is not None and (
            watcher.dirty or watch.expired_since_watch(self.cmds.keyspace, watcher, now_ms())
        )
        self.unwatch()
        if self._queue_refused:
            self._queue_refused = False
            raise CommandError("EXECABORT Transaction discarded because of previous errors.")
        if changed:
            return R.NULL3 if self.resp3 else R.NULL_ARRAY2
        try:  # what Redis checks again at EXEC: memory, and replicas for writes
            self._check_memory(queued)
            if any(_flagged(r, "write") for r in queued) and not self.node.enough_good_replicas():
                raise NoReplicasError()
        except CommandError as exc:
            raise CommandError(
                f"EXECABORT Transaction discarded because of: {exc.message}"
            ) from None
        replies: list[bytes] = []
        for request in queued:
            reply = self._dispatch(request)
            if isinstance(reply, bytes):
                replies.append(reply)
                continue
            close = getattr(reply, "close", None)  # a waiting command not flagged no_multi
            if close is not None:
                close()
            replies.append(_NOT_IN_MULTI)
        return b"*%d\r\n" % len(replies) + b"".join(replies)

    def monitor(self) -> bytes:
        """MONITOR: from now on this connection gets every command the others run."""
        if self._queued is not None:
            raise CommandError("ERR Command not allowed inside a transaction")
        self.monitoring = True
        self.node.monitors.add(self)
        return R.OK

    def discard(self) -> bytes:
        if self._queued is None:
            raise CommandError("ERR DISCARD without MULTI")
        self._queued = None
        self._queue_refused = False
        self.unwatch()
        return R.OK

    def _check_memory(self, requests: list[list[bytes]], queueing: bool = False) -> None:
        """Redis refuses commands flagged denyoom while memory is over maxmemory (and no
        eviction can make room) — here, when their arguments would not fit — and, while
        queueing a transaction, any command while memory is over."""
        ks = self.cmds.keyspace
        if not ks.max_memory_bytes or ks.eviction is not EvictionPolicy.NONE:
            return
        extra = sum(sum(map(len, r[1:])) for r in requests if _flagged(r, "denyoom"))
        if (extra or queueing) and ks.over_limit(extra):
            raise OutOfMemoryError()

    def watch(self, keys: list[bytes]) -> bytes:
        if self._queued is not None:
            raise CommandError("ERR WATCH inside MULTI is not allowed")
        if self.watcher is None:
            self.watcher = watch.Watcher()
        ks = self.cmds.keyspace
        now = now_ms()
        for key in keys:
            watch.watch(ks, self.watcher, key, now)
        return R.OK

    def unwatch(self) -> None:
        if self.watcher is not None:
            watch.unwatch_all(self.cmds.keyspace, self.watcher)
            self.watcher = None

    def reset(self) -> bytes:
        """RESET: the connection as it was when it was opened (Redis 6.2)."""
        self._queued = None
        self._queue_refused = False
        self.unwatch()
        self.reply_off = self.skip_next = self._skip = self._muting = False
        self.resp3 = False
        self.name = None
        self.no_evict = False
        self.authenticated = not self.node.config.server.api_keys
        self.admin = self.node.config.server.admin_key is None
        return R.simple("RESET")

    def set_reply_mode(self, mode: bytes) -> bytes:
        """CLIENT REPLY ON|OFF|SKIP (OFF and SKIP are not answered)."""
        if mode == b"ON":
            self.reply_off = self.skip_next = self._skip = self._muting = False
            return R.OK
        if mode == b"OFF":
            self.reply_off = True
        elif not self.reply_off:
            self.skip_next = True
        self._muting = True
        return b""

    def _muted(self) -> bool:
        """After a command ran with CLIENT REPLY OFF|SKIP in force: drop its reply?"""
        if self.skip_next:  # CLIENT REPLY SKIP itself: the next reply goes too
            self.skip_next = False
            self._skip = True
            return True
        if self._skip:
            self._skip = False
            self._muting = self.reply_off
            return True
        return self.reply_off

    # ----------------------------------------------------------- output
    def _flush(self, replies: list[bytes]) -> None:
        if replies:
            self._reply(b"".join(replies))
            replies.clear()

    def _reply(self, data: bytes) -> None:
        """Write ``data`` after the WAL write of the records before it (held to the end
        of the loop iteration while records wait: one write for every read; node.py),
        or at once when nothing can wait (:meth:`History.settled`: a standalone node
        without persistence, or nothing held): then the node is not asked at all."""
        transport = self._transport
        if transport is not None:
            if self._history.settled():
                transport.write(data)
            else:
                self._reply_after_flush(transport, data)

    def _block_on(self, awaitable: Awaitable[Any]) -> None:
        future = asyncio.ensure_future(awaitable)
        self._blocked = future
        future.add_done_callback(self._unblock)

    def _unblock(self, future: asyncio.Future[Any]) -> None:
        self._blocked = None
        if self.closing or self._transport is None or self._transport.is_closing():
            return
        try:
            reply = future.result()
        except CommandError as exc:
            reply = R.error(exc.message)
        except Exception:
            log.exception("internal error in a blocking command")
            reply = R.error("ERR internal error; see the server log")
        self._flush([reply])
        pending, error = self._pending, self._pending_error
        self._pending, self._pending_error = [], None
        self._run(pending, error)
        if self._held and self._blocked is None and not self.closing:
            held = b"".join(self._held)
            self._held.clear()
            self._held_bytes = 0
            self._receive(held)

    def _fatal(self, message: str) -> None:
        """Answer a protocol error and close, as Redis does."""
        log.info("closing client %s: %s", self.peer, message)
        if self._transport is not None:
            self.node.flush_replies()  # the held replies first
            self._transport.write(R.error(message))
            self._transport.close()
        self.closing = True

    def write_push(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._reply(data)  # behind any held reply


def spec_of(request: list[bytes]) -> CommandSpec | None:
    """The spec that governs a request (its subcommand's for container commands), or
    None for an unknown command."""
    spec = SPECS.get(request[0].upper())
    return None if spec is None else spec.sub(request)


def _flagged(request: list[bytes], flag: str) -> bool:
    spec = spec_of(request)
    return spec is not None and flag in spec.flags


def _unknown_subcommand(request: list[bytes]) -> str:
    return (
        f"ERR unknown subcommand '{request[1].decode(errors='replace')}'. "
        f"Try {request[0].decode(errors='replace').upper()} HELP."
    )


def _unknown_command(request: list[bytes]) -> str:
    """Redis's wording: the name and the first arguments, up to about 128 characters."""
    shown = request[0].decode(errors="replace")[:128]
    args = ""
    for arg in request[1:]:
        if len(args) >= 128:
            break
        args += f"'{arg.decode(errors='replace')[: 128 - len(args)]}' "
    return f"ERR unknown command '{shown}', with args beginning with: {args}"


# (Arity is checked by the dispatcher, from synap.api.resp_table.)
def cmd_multi(c: RespClient, args: list[bytes]) -> bytes:
    return c.multi()


def cmd_exec(c: RespClient, args: list[bytes]) -> bytes:
    return c.exec()


def cmd_discard(c: RespClient, args: list[bytes]) -> bytes:
    return c.discard()


def cmd_monitor(c: RespClient, args: list[bytes]) -> bytes:
    return c.monitor()


def cmd_watch(c: RespClient, args: list[bytes]) -> bytes:
    return c.watch(args[1:])


def cmd_unwatch(c: RespClient, args: list[bytes]) -> bytes:
    c.unwatch()
    return R.OK


def cmd_reset(c: RespClient, args: list[bytes]) -> bytes:
    return c.reset()


#: Upper-case name -> handler: the commands this server implements.
COMMANDS: dict[bytes, Handler] = {
    **DATA_COMMANDS,
    **STRING_COMMANDS,
    **ADMIN_COMMANDS,
    **CONSISTENCY_COMMANDS,
    b"MULTI": cmd_multi,
    b"EXEC": cmd_exec,
    b"DISCARD": cmd_discard,
    b"SENTINEL": cmd_sentinel,
    b"WATCH": cmd_watch,
    b"UNWATCH": cmd_unwatch,
    b"RESET": cmd_reset,
    b"MONITOR": cmd_monitor,
}

#: The command table (synap.api.resp_table): handler, arity, flags, key specs.
SPECS.update(build(COMMANDS))
