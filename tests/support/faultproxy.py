"""A TCP proxy with injectable network faults, for synchronous pytest tests.

The proxy listens on 127.0.0.1 and forwards every accepted connection to one target. It
runs its own asyncio event loop in a background thread, so a plain (non-async) test can
call its methods directly; each call takes effect on the loop before it returns.

    with FaultProxy("127.0.0.1", master.replica_port) as proxy:
        replica = start_replica(tmp, ("127.0.0.1", proxy.port))
        proxy.pause()        # partition: nothing moves, nothing closes
        ...
        proxy.resume()

Faults (all can be combined; all are undone by calling them again with the neutral value):

``delay(ms)``
    Each chunk is delivered ``ms`` after the proxy read it, in both directions. Order is
    preserved and latency does not reduce throughput (chunks are pipelined, as on a long
    link). A new delay applies to chunks read after the call.
``bandwidth(bytes_per_sec)``
    Each direction of each connection is limited to ``bytes_per_sec`` (``None`` = no limit).
``pause(direction="both")`` / ``resume(direction="both")``
    A frozen network. While paused the proxy neither reads nor writes, so **bytes are
    buffered, not dropped**: they wait in the kernel socket buffers (the sender blocks once
    those fill, as with a peer that stops acknowledging) and in the proxy, and are delivered
    in order on ``resume()``. A close or reset by one side is held back the same way, so
    the peers see no bytes and no close. New connections during a pause complete the TCP
    handshake (the kernel accepts them on the listening socket; a user-space proxy cannot
    prevent that) but the target is not dialled and nothing flows until ``resume()``.
    Bytes already handed to the socket before ``pause()`` returned may still arrive.
    ``direction`` is ``"to_target"``, ``"to_client"`` or ``"both"`` (an asymmetric
    partition freezes one direction only).
``cut()``
    Resets every current connection: both sockets are closed with ``SO_LINGER`` 0, so both
    peers get an RST (``ECONNRESET``), not an orderly FIN. Buffered data is discarded. New
    connections keep working.
``refuse_new(True)``
    Closes the listening socket, so new connections get ``ECONNREFUSED`` as if the target
    were down; existing connections are untouched (combine with ``cut()`` for a crash).
    ``refuse_new(False)`` listens again on the same port.

If the target cannot be reached when a client connects, the client's connection is reset.
``stats()`` counts bytes forwarded in each direction and connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, TypeVar

from .ports import HOST, release_port, reserve_port

Direction = Literal["to_target", "to_client", "both"]
_DIRECTIONS: tuple[Literal["to_target"], Literal["to_client"]] = ("to_target", "to_client")

CHUNK_BYTES = 64 * 1024
# Chunks held per direction between reading and writing (delay/pause/bandwidth): at most
# 64 x 64 KiB = 4 MiB, about what Linux autotunes a socket buffer to. Beyond that the proxy
# stops reading and TCP backpressure reaches the sender, as on a real slow or frozen link
# (a much bigger buffer would let a sender believe a stalled peer is still draining).
QUEUE_CHUNKS = 64
CONNECT_TIMEOUT_S = 5.0
# How long a synchronous call waits for the proxy's loop to act on it.
CALL_TIMEOUT_S = 10.0
# A bandwidth limit is applied in slices of about this many seconds of traffic.
BANDWIDTH_SLICE_S = 0.02

_T = TypeVar("_T")


@dataclass(frozen=True)
class ProxyStats:
    bytes_to_target: int  # client -> target, forwarded
    bytes_to_client: int  # target -> client, forwarded
    connections_total: int  # accepted since start()
    connections_active: int
    connections_cut: int  # reset by cut()
    upstream_failures: int  # accepted, but the target could not be reached


@dataclass(eq=False)
class _Item:
    deliver_at: float
    data: bytes  # b"" with kind != "data"
    kind: Literal["data", "eof", "reset"] = "data"


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client's socket and the socket to the target."""

    client: asyncio.StreamWriter
    task: asyncio.Task[None] | None
    upstream_sock: socket.socket | None = None  # set before connecting
    upstream: asyncio.StreamWriter | None = None  # set once connected
    children: list[asyncio.Task[Any]] = field(default_factory=list)
    dead: bool = False  # reset; nothing may be forwarded any more

    def reset(self) -> None:
        self.dead = True
        _reset(self.client)
        if self.upstream is not None:
            _reset(self.upstream)
        elif self.upstream_sock is not None:
            # Still connecting: whoever closes this socket now sends an RST.
            _linger0(self.upstream_sock)


def _linger0(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close abruptly: SO_LINGER 0 makes the kernel send RST instead of FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        _linger0(sock)
    writer.transport.abort()


class _LinkReset(Exception):
    """A direction ended in a reset (peer reset, write failure): reset the whole link."""


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, listen_port: int = 0) -> None:
        """Proxy ``127.0.0.1:listen_port`` -> ``target_host:target_port``.

        ``listen_port=0`` takes a port from ``ports.reserve_port()`` (not an ephemeral
        port), so ``refuse_new(False)`` can listen on it again; it is released on stop().
        """
        self.target_host = target_host
        self.target_port = target_port
        self._own_port = listen_port == 0
        self.port = reserve_port() if self._own_port else listen_port
        # Fault settings; written only on the loop thread once started.
        self._delay_s = 0.0
        self._bandwidth: int | None = None
        self._paused: set[str] = set()
        self._refusing = False
        # Counters; written only on the loop thread.
        self._bytes = {"to_target": 0, "to_client": 0}
        self._total = 0
        self._cut = 0
        self._upstream_failures = 0
        self._links: set[_Link] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._flow: dict[str, asyncio.Event] = {}
        self._stopped = False
        self.last_error: Exception | None = None  # an unexpected error in a connection

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FaultProxy:
        if self._loop is not None:
            raise RuntimeError("FaultProxy already started")
        if self._stopped:
            raise RuntimeError("FaultProxy cannot be restarted after stop(); make a new one")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run_loop, name=f"faultproxy-{self.port}", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._setup())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Reset all connections, stop listening and end the loop thread. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(Exception):
                self._call(self._shutdown())
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=CALL_TIMEOUT_S)
        if self._own_port:
            release_port(self.port)

    def __enter__(self) -> FaultProxy:
        if self._loop is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, the form ``--master-address`` takes."""
        return f"{HOST}:{self.port}"

    def __repr__(self) -> str:
        return f"FaultProxy({self.address} -> {self.target_host}:{self.target_port})"

    # ------------------------------------------------------------------ faults

    def delay(self, ms: float) -> None:
        """Per-chunk latency in both directions (0 = none); order is preserved."""
        if ms < 0:
            raise ValueError(f"delay must be >= 0 ms, got {ms}")
        self._apply(lambda: setattr(self, "_delay_s", ms / 1000.0))

    def bandwidth(self, bytes_per_sec: int | None) -> None:
        """Limit each direction of each connection (``None`` = unlimited)."""
        if bytes_per_sec is not None and bytes_per_sec <= 0:
            raise ValueError(f"bandwidth must be > 0 bytes/s or None, got {bytes_per_sec}")
        self._apply(lambda: setattr(self, "_bandwidth", bytes_per_sec))

    def pause(self, direction: Direction = "both") -> None:
        """Freeze traffic (buffered, not dropped; see the module docstring)."""
        directions = self._directions(direction)
        self._apply(lambda: self._set_flows(directions, False))

    def resume(self, direction: Direction = "both") -> None:
        """Deliver what was held back, in order, and keep forwarding."""
        directions = self._directions(direction)
        self._apply(lambda: self._set_flows(directions, True))

    def cut(self) -> int:
        """Reset all current connections (RST to both peers); return how many."""
        return self._call(self._cut_all())

    def refuse_new(self, refuse: bool = True) -> None:
        """Refuse new connections (listener closed: ECONNREFUSED), or accept them again."""
        if self._loop is None:
            self._refusing = refuse
            return
        self._call(self._set_refusing(refuse))

    def retarget(self, target_host: str, target_port: int) -> None:
        """Send *new* connections to another target (existing ones are untouched)."""
        self._apply(lambda: self._set_target(target_host, target_port))

    def clear(self) -> None:
        """Undo delay, bandwidth, pause and refuse_new."""
        self.delay(0)
        self.bandwidth(None)
        self.resume()
        self.refuse_new(False)

    # ------------------------------------------------------------------ observation

    def stats(self) -> ProxyStats:
        if self._loop is None or self._stopped:
            return self._snapshot()
        return self._call(self._async_snapshot())

    def wait_for_connections(self, count: int = 1, timeout: float = 10.0) -> ProxyStats:
        """Wait until at least ``count`` connections are active through the proxy."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats.connections_active >= count:
                return stats
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self!r}: {stats.connections_active} active connections after "
                    f"{timeout}s, wanted {count} ({stats})"
                )
            time.sleep(0.02)

    # ------------------------------------------------------------------ internals: calls

    @staticmethod
    def _directions(direction: Direction) -> tuple[str, ...]:
        if direction == "both":
            return _DIRECTIONS
        if direction in _DIRECTIONS:
            return (direction,)
        raise ValueError(f"direction must be 'to_target', 'to_client' or 'both', got {direction!r}")

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("FaultProxy is not started; call start() or use it in a with block")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("FaultProxy methods must not be called from its own loop thread")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=CALL_TIMEOUT_S)

    def _apply(self, change: Callable[[], object]) -> None:
        """Run ``change()`` on the loop (or right here if not started) and wait for it."""
        if self._loop is None or self._stopped:
            change()
            return

        async def run() -> None:
            change()

        self._call(run())

    def _run_loop(self) -> None:
        assert self._loop is not None
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            loop.close()

    def _snapshot(self) -> ProxyStats:
        return ProxyStats(
            bytes_to_target=self._bytes["to_target"],
            bytes_to_client=self._bytes["to_client"],
            connections_total=self._total,
            connections_active=len(self._links),
            connections_cut=self._cut,
            upstream_failures=self._upstream_failures,
        )

    async def _async_snapshot(self) -> ProxyStats:
        return self._snapshot()

    # ------------------------------------------------------------------ internals: loop side

    async def _setup(self) -> None:
        for d in _DIRECTIONS:
            self._flow[d] = asyncio.Event()
            self._set_flow(d, d not in self._paused)
        if not self._refusing:
            await self._listen()

    def _set_flows(self, directions: tuple[str, ...], flowing: bool) -> None:
        for direction in directions:
            self._set_flow(direction, flowing)

    def _set_flow(self, direction: str, flowing: bool) -> None:
        if flowing:
            self._paused.discard(direction)
        else:
            self._paused.add(direction)
        event = self._flow.get(direction)
        if event is not None:
            if flowing:
                event.set()
            else:
                event.clear()

    def _set_target(self, host: str, port: int) -> None:
        self.target_host, self.target_port = host, port

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, HOST, self.port, reuse_address=True, backlog=128
        )

    async def _set_refusing(self, refuse: bool) -> None:
        self._refusing = refuse
        if refuse and self._server is not None:
            # Not wait_closed(): from 3.12 it waits for every connection to end.
            self._server.close()
            self._server = None
        elif not refuse and self._server is None:
            await self._listen()

    async def _cut_all(self) -> int:
        links = list(self._links)
        for link in links:
            link.reset()
            if link.task is not None:
                link.task.cancel()
        self._cut += len(links)
        return len(links)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        tasks = [link.task for link in self._links if link.task is not None]
        await self._cut_all()
        if tasks:
            await asyncio.wait(tasks, timeout=CALL_TIMEOUT_S / 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(client=writer, task=asyncio.current_task())
        self._links.add(link)
        self._total += 1
        try:
            await self._serve(link, reader)
        except asyncio.CancelledError:
            pass  # cut() or stop(): the sockets were already reset
        except _LinkReset:
            link.reset()
        except Exception as exc:  # a proxy bug: reset, and keep it for debugging
            self.last_error = exc
            link.reset()
        finally:
            # Nothing awaited before the bookkeeping: stop() may cancel us again here.
            self._links.discard(link)
            if not writer.transport.is_closing():
                writer.transport.abort()
            if link.upstream is not None:
                if not link.upstream.transport.is_closing():
                    link.upstream.transport.abort()
            elif link.upstream_sock is not None:
                link.upstream_sock.close()
            for child in link.children:
                child.cancel()
            if link.children:
                await asyncio.gather(*link.children, return_exceptions=True)

    async def _serve(self, link: _Link, client_reader: asyncio.StreamReader) -> None:
        # A frozen network does not carry the handshake to the target either.
        await self._flow["to_target"].wait()
        await self._flow["to_client"].wait()
        # Our own socket, so that cut() during the connect can still reset it.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        link.upstream_sock = sock
        loop = asyncio.get_running_loop()
        try:
            # Not wait_for(): on 3.11 it can swallow a cancel (cut) that races completion.
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await loop.sock_connect(sock, (self.target_host, self.target_port))
        except (TimeoutError, OSError):
            self._upstream_failures += 1
            raise _LinkReset() from None
        if link.dead:
            raise _LinkReset()
        up_reader, up_writer = await asyncio.open_connection(sock=sock)
        if link.dead:
            _reset(up_writer)
            raise _LinkReset()
        link.upstream = up_writer
        to_target: asyncio.Queue[_Item] = asyncio.Queue(QUEUE_CHUNKS)
        to_client: asyncio.Queue[_Item] = asyncio.Queue(QUEUE_CHUNKS)
        readers = [
            asyncio.create_task(self._read_side(client_reader, to_target, "to_target")),
            asyncio.create_task(self._read_side(up_reader, to_client, "to_client")),
        ]
        writers = [
            asyncio.create_task(self._write_side(up_writer, to_target, "to_target")),
            asyncio.create_task(self._write_side(link.client, to_client, "to_client")),
        ]
        link.children.extend(readers + writers)
        # Each direction ends at the writer: after an EOF (half-close, the other direction
        # keeps going) or a reset (which resets the whole link at once).
        for next_done in asyncio.as_completed(writers):
            await next_done  # raises _LinkReset
        link.client.close()
        up_writer.close()

    async def _read_side(
        self, reader: asyncio.StreamReader, queue: asyncio.Queue[_Item], direction: str
    ) -> None:
        loop = asyncio.get_running_loop()
        flow = self._flow[direction]
        while True:
            await flow.wait()  # paused: stop reading, let TCP backpressure build up
            try:
                data = await reader.read(CHUNK_BYTES)
            except OSError:
                await queue.put(_Item(loop.time() + self._delay_s, b"", "reset"))
                return
            if not data:
                await queue.put(_Item(loop.time() + self._delay_s, b"", "eof"))
                return
            await queue.put(_Item(loop.time() + self._delay_s, data))

    async def _write_side(
        self, writer: asyncio.StreamWriter, queue: asyncio.Queue[_Item], direction: str
    ) -> None:
        loop = asyncio.get_running_loop()
        flow = self._flow[direction]
        next_free = 0.0  # bandwidth: when the link is free to send again
        while True:
            item = await queue.get()
            wait = item.deliver_at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if item.kind == "reset":
                await flow.wait()
                raise _LinkReset()
            if item.kind == "eof":
                await flow.wait()
                if writer.can_write_eof() and not writer.is_closing():
                    writer.write_eof()
                return
            view = memoryview(item.data)
            while view:
                limit = self._bandwidth
                if limit is None:
                    piece = view
                else:
                    piece = view[: max(1, int(limit * BANDWIDTH_SLICE_S))]
                    start = max(loop.time(), next_free)
                    if start > loop.time():
                        await asyncio.sleep(start - loop.time())
                    next_free = start + len(piece) / limit
                await flow.wait()
                # No await between this check and write(): pause() cannot slip in between.
                if writer.is_closing():
                    raise _LinkReset()
                writer.write(piece)
                self._bytes[direction] += len(piece)
                view = view[len(piece) :]
                try:
                    await writer.drain()
                except OSError:
                    raise _LinkReset() from None
