"""Full sync from a forked child process, as Redis does it: the snapshot is the child's
copy-on-write image of the keyspace, so it is exact at the sync's offset and the master's
event loop never walks the keyspace.

The master writes nothing to the replica's socket while the child runs: the child sends
FULLSYNC and every SNAPSHOT_CHUNK itself, reports its progress and, at the end, the
snapshot's counters (keys, chunk sequence, CRC) over a pipe; the master then sends
SNAPSHOT_END and streams the records after the offset on its own transport as before.

The longest step the master's loop takes is the ``fork()`` itself (its page tables: ~10 ms
for the ~300 MB of a million keys on 4 KiB pages, ~2-3 ms on the huge pages
:mod:`synap.hugepages` puts Python's memory on; the collapse thread there waits while a
child is alive, :class:`SnapshotChild` tells it). The cost moves to the other core and to memory: the child encodes
with :class:`~synap.replication.snapcodec.ChunkEncoder`, whose C twin (the compiled build)
reads keys and values through borrowed references and never writes to a value, as Redis
does not write to the objects it reads; the pure-Python one changes every value's
reference count, so the pages holding them are copied while it runs, up to the size of
the data set.

Used on POSIX for plain TCP replica connections of data sets of at least
:data:`FORK_MIN_KEYS` keys; TLS connections (the TLS state lives in the master's process)
and small data sets use the in-process copy (:meth:`ReplicaConnection._full_sync`).
``SYNAP_FULL_SYNC_FORK`` in the environment overrides the choice: ``never`` (or ``0``)
or ``always`` (or ``1``), for tests and diagnosis.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import logging
import os
import resource
import signal
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from synap import hugepages, sizeclasses
from synap.replication import snapcodec
from synap.replication.master_session import SNAPSHOT_CHUNK_BYTES, MasterSession
from synap.replication.snapcodec import ChunkEncoder

if TYPE_CHECKING:
    from synap.store.keyspace import Keyspace

# Below this many keys the in-process copy is as quick as a fork, and costs no process.
FORK_MIN_KEYS = 10_000
# The child reports its progress every this many chunks.
PROGRESS_CHUNKS = 16
# Reaping a child that was killed: polled every this many seconds.
_REAP_POLL_S = 0.005
_PR_SET_PDEATHSIG = 1

ENV = "SYNAP_FULL_SYNC_FORK"


def mode() -> str:
    """``auto`` (default), ``never`` or ``always``, from ``SYNAP_FULL_SYNC_FORK``."""
    value = os.environ.get(ENV, "auto").strip().lower()
    if value in ("0", "never", "no", "off"):
        return "never"
    if value in ("1", "always", "yes", "on"):
        return "always"
    return "auto"


def usable(transport: asyncio.BaseTransport | None, keys: int) -> bool:
    """Whether a full sync of ``keys`` keys to ``transport`` should run in a child."""
    if transport is None or not hasattr(os, "fork"):
        return False
    chosen = mode()
    if chosen == "never" or (chosen == "auto" and keys < FORK_MIN_KEYS):
        return False
    if transport.get_extra_info("sslcontext") is not None:
        return False
    if transport.get_extra_info("ssl_object") is not None:
        return False
    if sizeclasses.sharing().active and not snapcodec.BUILT:
        # a child must not hold references to shared values (sizeclasses)
        _warn_no_encoder()
        return False
    sock = transport.get_extra_info("socket")
    return sock is not None and sock.fileno() >= 0


@functools.cache
def _warn_no_encoder() -> None:
    """Said once per process: why large full syncs do not fork."""
    logging.getLogger("synap.replication.fork_snapshot").warning(
        "full syncs run in process: values are shared with forked children but the C "
        "snapshot encoder (synap.replication.snapcodec) is not built; run `make install`, "
        "or set kv_store.shared_values: false"
    )


def _child_coming() -> int | None:
    """Before a fork: the collapse thread waits (hugepages), and the shared values freed
    from now on that the child may read wait for it (sizeclasses). Returns the token to
    hand :func:`_child_gone`."""
    token = sizeclasses.fork_started()  # (first: it refuses when too many children read)
    hugepages.fork_started()
    return token


def _child_gone(token: int | None) -> None:
    """The child :func:`_child_coming` returned ``token`` for is gone: tell both modules,
    the second even if the first raises (else the quarantine would wait forever)."""
    try:
        hugepages.fork_child_gone()
    finally:
        sizeclasses.fork_child_gone(token)


def _thread_cpu() -> float:
    """This thread's CPU seconds, kernel time included (``fork()`` is kernel time)."""
    usage = resource.getrusage(getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF))
    return usage.ru_utime + usage.ru_stime


class SnapshotFailed(Exception):
    """The child could not send the snapshot: the replica went away, or accepted no byte
    for the replica timeout (``stalled``)."""

    def __init__(self, message: str, stalled: bool = False) -> None:
        super().__init__(message)
        self.stalled = stalled


def _send_all(sock: socket.socket, data: bytes) -> None:
    """``sendall``, except that the socket's timeout bounds each wait for the kernel to
    accept *some* bytes, not the whole send: any byte accepted counts as progress, as
    for the in-process sync (a slow replica is not a stalled one)."""
    with memoryview(data) as view:
        while view:
            view = view[sock.send(view) :]


def _close_other_fds(keep: set[int]) -> None:
    """Close every inherited descriptor but ``keep`` and 0-2: the master's listeners and
    client sockets must close when the master closes them, not when the child exits."""
    try:
        fds = sorted(int(name) for name in os.listdir("/proc/self/fd"))
    except OSError:
        fds = []
    if fds:
        for fd in fds:
            if fd > 2 and fd not in keep:
                with contextlib.suppress(OSError):
                    os.close(fd)
        return
    low = 3
    for fd in sorted(k for k in keep if k > 2):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 65536)


def _die_with_parent(parent: int) -> None:
    """Linux: the child gets SIGKILL if the master dies (best effort elsewhere)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(3)


def _step_aside() -> None:
    """Give the child a session, hence a scheduling group, of its own.

    With the kernel's autogroup scheduling (a group per session, the default on many
    kernels) a child in the master's session shares the master's CPU share: while it
    encodes, the master's loop waits behind it for up to a scheduler period (loop lags of
    10-13 ms with <1 ms of CPU measured with both cores busy, issue 16). In a group of
    its own the child competes with the other processes, and the master, mostly idle,
    gets the CPU as soon as a client's request arrives."""
    with contextlib.suppress(OSError):
        os.setsid()


def _child(
    parent: int,
    sock_fd: int,
    report_fd: int,
    head: bytes,
    session: MasterSession,
    keyspace: Keyspace,
    timeout_s: float,
) -> None:
    """The child's whole life: send the snapshot, report, ``_exit``. Never returns."""
    code = 1
    try:
        gc.disable()
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, signal.SIG_DFL)
        _die_with_parent(parent)
        _step_aside()
        _close_other_fds({sock_fd, report_fd})
        sock = socket.socket(fileno=sock_fd)
        # A timeout keeps the (shared, non-blocking) descriptor as it is and bounds each
        # wait: a replica that accepts nothing for timeout_s ends the child.
        sock.settimeout(timeout_s)
        _send_all(sock, head)
        sent = len(head)
        # (keys and values only borrowed, never a reference count change: snapcodec)
        encoder = ChunkEncoder(
            keyspace.data, keyspace.expires, keyspace.json_keys, SNAPSHOT_CHUNK_BYTES
        )
        chunks = 0
        while (chunk := encoder.next_chunk()) is not None:
            chunks += 1
            frame = session.snapshot_chunk_encoded(*chunk)
            _send_all(sock, frame)
            sent += len(frame)
            if chunks % PROGRESS_CHUNKS == 0:
                os.write(report_fd, b"P %d %d\n" % (session.snapshot_counters[0], sent))
        keys, seq, crc = session.snapshot_counters
        os.write(report_fd, b"D %d %d %d %d\n" % (keys, seq, crc, sent))
        code = 0
    except BaseException as exc:  # reported to the master, which logs it
        kind = b"T " if isinstance(exc, TimeoutError) else b"E "
        with contextlib.suppress(BaseException):
            os.write(report_fd, kind + repr(exc).encode(errors="replace")[:400] + b"\n")
    finally:
        os._exit(code)


class SnapshotChild:
    """A child process sending one snapshot; the master awaits :meth:`result`."""

    def __init__(
        self,
        pid: int,
        report_fd: int,
        fork_ms: float = 0.0,
        fork_cpu_ms: float = 0.0,
        token: int | None = None,
    ) -> None:
        self.pid = pid
        self.fork_ms = fork_ms  # how long fork() held the master (Redis: latest_fork_usec)
        self.fork_cpu_ms = fork_cpu_ms  # ... of which on a CPU (the rest: preempted)
        self._fd = report_fd
        self._reaped = False
        self._stopped = False
        self._token = token  # _child_coming()'s, for _child_gone()

    @classmethod
    def start(
        cls,
        sock_fd: int,
        head: bytes,
        session: MasterSession,
        keyspace: Keyspace,
        timeout_s: float,
    ) -> SnapshotChild:
        """Fork now: the child sends ``head`` (the FULLSYNC frame) and the snapshot of
        ``keyspace`` as it is at this instant."""
        read_fd, write_fd = os.pipe()
        parent = os.getpid()
        cpu = _thread_cpu()
        try:
            token = _child_coming()
        except BaseException:  # (too many children reading at once)
            os.close(read_fd)
            os.close(write_fd)
            raise
        # The collector is off across the fork, so the child starts with it off: the
        # replication log's records read as zeros in the child (tightalloc.detach,
        # MADV_WIPEONFORK), and a collection visiting the lists that hold them would crash it.
        collecting = gc.isenabled()
        gc.disable()
        started = time.perf_counter()
        try:
            pid = os.fork()
        except BaseException:
            if collecting:
                gc.enable()
            os.close(read_fd)
            os.close(write_fd)
            _child_gone(token)
            raise
        if pid == 0:  # pragma: no cover - the child never returns (os._exit)
            _child(parent, sock_fd, write_fd, head, session, keyspace, timeout_s)
        if collecting:
            gc.enable()
        fork_ms = (time.perf_counter() - started) * 1000
        fork_cpu_ms = (_thread_cpu() - cpu) * 1000
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        return cls(pid, read_fd, fork_ms, fork_cpu_ms, token)

    async def result(self, progress: Callable[[int, int], None]) -> tuple[int, int, int, int]:
        """Wait for the child: ``(keys, chunk sequence, crc, bytes sent)``. ``progress``
        gets ``(keys sent, bytes sent)`` meanwhile. Raises :class:`SnapshotFailed`."""
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        buffer = bytearray()
        lines: list[bytes] = []

        def readable() -> None:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                if not finished.done():
                    finished.set_result(None)
                return
            buffer.extend(data)
            while b"\n" in buffer:
                line, _, rest = bytes(buffer).partition(b"\n")
                buffer[:] = rest
                if line.startswith(b"P "):
                    _, keys, sent = line.split()
                    progress(int(keys), int(sent))
                else:
                    lines.append(line)

        loop.add_reader(self._fd, readable)
        try:
            await finished
        finally:
            loop.remove_reader(self._fd)
        status = await self._reap()
        last = lines[-1] if lines else b""
        if last.startswith(b"D ") and status == 0:
            _, keys, seq, crc, sent = last.split()
            return int(keys), int(seq), int(crc), int(sent)
        failed = last.startswith((b"E ", b"T "))
        detail = last[2:].decode(errors="replace") if failed else ""
        raise SnapshotFailed(
            detail or f"snapshot process {self.pid} ended with status {status}",
            stalled=last.startswith(b"T "),
        )

    async def _reap(self) -> int:
        while True:
            status = self._poll()
            if status is not None:
                return status
            await asyncio.sleep(_REAP_POLL_S)

    def _mark_reaped(self) -> None:
        """Once per child (every caller checks ``_reaped`` first): it is gone, which
        :func:`_child_coming` told of before the fork."""
        self._reaped = True
        _child_gone(self._token)

    def _poll(self) -> int | None:
        if self._reaped:
            return 0
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            self._mark_reaped()
            return 0
        if pid == 0:
            return None
        self._mark_reaped()
        return os.waitstatus_to_exitcode(status)

    def stop(self) -> None:
        """Kill the child if it still runs, and reap it in the background (no wait)."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(OSError):
            os.close(self._fd)
        if self._reaped or self._poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (shutdown): SIGKILL is quick to act
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self._mark_reaped()
            return

        def reap() -> None:
            if self._poll() is None:
                loop.call_later(_REAP_POLL_S, reap)

        reap()
