"""A TCP proxy that keeps a copy of every byte it forwards, to check what crosses the wire.

    with RecordingProxy(("127.0.0.1", master.replica_port)) as wire:
        replica = node_factory.replica(wire.address)
        ...
        assert b"the secret" not in wire.captured()

Unlike ``FaultProxy`` it injects no faults; it is a few threads around blocking sockets.
Each pump waits at most ``POLL_S`` for data before it checks whether the proxy is
stopping, so ``stop()`` returns within about that time.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from types import TracebackType

from .ports import HOST

POLL_S = 0.1
SOCKET_TIMEOUT_S = 10.0
JOIN_TIMEOUT_S = 5.0


class RecordingProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.to_target = bytearray()  # client -> target
        self.to_client = bytearray()  # target -> client
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(POLL_S)
        self.port: int = self._listener.getsockname()[1]

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> RecordingProxy:
        self._spawn(self._accept)
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT_S)
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def captured(self) -> bytes:
        """Everything forwarded so far, both directions."""
        with self._lock:
            return bytes(self.to_target) + bytes(self.to_client)

    def __enter__(self) -> RecordingProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=SOCKET_TIMEOUT_S)
            except OSError:
                client.close()
                continue
            client.settimeout(SOCKET_TIMEOUT_S)
            with self._lock:
                self._sockets += [client, upstream]
                self.connections += 1
            self._spawn(self._pump, client, upstream, self.to_target)
            self._spawn(self._pump, upstream, client, self.to_client)

    def _pump(self, src: socket.socket, dst: socket.socket, record: bytearray) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([src], [], [], POLL_S)
                if not ready:
                    continue
                data = src.recv(65536)
            except (OSError, ValueError):
                break
            if not data:
                break
            with self._lock:
                record += data
            try:
                dst.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
