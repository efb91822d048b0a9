"""FaultProxy: each fault does what its docstring promises, against a plain socket backend."""

from __future__ import annotations

import hashlib
import queue
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.ports import HOST, release_port, reserve_port

IO_TIMEOUT = 5.0
QUIET = 0.4  # how long "nothing arrives" is watched for


class Backend:
    """A listening socket whose accepted connections are handed to the test, or echoed."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(0.1)
        self.port: int = self.listener.getsockname()[1]
        self.accepted: queue.Queue[socket.socket] = queue.Queue()
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._spawn(self._accept_loop)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(IO_TIMEOUT)
            self._socks.append(sock)
            if self.echo:
                self._spawn(self._echo, sock)
            else:
                self.accepted.put(sock)

    def _echo(self, sock: socket.socket) -> None:
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                data = sock.recv(65536)
                if not data:
                    sock.shutdown(socket.SHUT_WR)
                    return
                sock.sendall(data)
        except OSError:
            return

    def accept(self, timeout: float = IO_TIMEOUT) -> socket.socket:
        return self.accepted.get(timeout=timeout)

    def close(self) -> None:
        self._closing.set()
        self.listener.close()
        for sock in self._socks:
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture
def backend() -> Iterator[Backend]:
    b = Backend()
    yield b
    b.close()


@pytest.fixture
def echo() -> Iterator[Backend]:
    b = Backend(echo=True)
    yield b
    b.close()


@pytest.fixture
def proxy_to(request: pytest.FixtureRequest) -> Iterator[FaultProxy]:
    target: Backend = request.getfixturevalue(request.param)
    with FaultProxy(HOST, target.port) as proxy:
        yield proxy


def connect(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection((HOST, proxy.port), timeout=IO_TIMEOUT)
    sock.settimeout(IO_TIMEOUT)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    deadline = time.monotonic() + IO_TIMEOUT
    while len(buf) < n and time.monotonic() < deadline:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def assert_quiet(sock: socket.socket, seconds: float = QUIET) -> None:
    """Nothing arrives and the connection is not closed: recv times out."""
    sock.settimeout(seconds)
    try:
        with pytest.raises(TimeoutError):
            sock.recv(1)
    finally:
        sock.settimeout(IO_TIMEOUT)


def wait_until(predicate: object, timeout: float = IO_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@pytest.mark.parametrize("proxy_to", ["backend"], indirect=True)
def test_forwards_both_ways_and_counts(proxy_to: FaultProxy, backend: Backend) -> None:
    client = connect(proxy_to)
    server = backend.accept()
    client.sendall(b"hello")
    assert recv_exactly(server, 5) == b"hello"
    server.sendall(b"world!")
    assert recv_exactly(client, 6) == b"world!"
    stats = proxy_to.stats()
    assert (stats.bytes_to_target, stats.bytes_to_client) == (5, 6)
    assert (stats.connections_total, stats.connections_active) == (1, 1)
    client.close()
    assert server.recv(1) == b""
    server.close()
    wait_until(lambda: proxy_to.stats().connections_active == 0)


@pytest.mark.parametrize("proxy_to", ["backend"], indirect=True)
def test_half_close_is_forwarded(proxy_to: FaultProxy, backend: Backend) -> None:
    client = connect(proxy_to)
    server = backend.accept()
    client.shutdown(socket.SHUT_WR)
    assert server.recv(1) == b""  # orderly EOF, not a reset
    server.sendall(b"still open")
    assert recv_exactly(client, 10) == b"still open"
    server.close()
    assert client.recv(1) == b""
    wait_until(lambda: proxy_to.stats().connections_active == 0)


@pytest.mark.parametrize("proxy_to", ["echo"], indirect=True)
def test_delay_adds_latency_each_way_and_keeps_order(proxy_to: FaultProxy) -> None:
    client = connect(proxy_to)
    proxy_to.delay(250)
    start = time.monotonic()
    client.sendall(b"ping")
    assert recv_exactly(client, 4) == b"ping"
    round_trip = time.monotonic() - start
    assert round_trip >= 0.49  # 250 ms there + 250 ms back

    # A burst is pipelined (latency, not a per-chunk queue) and arrives in order.
    messages = [f"<{i:04d}>".encode() for i in range(100)]
    start = time.monotonic()
    for message in messages:
        client.sendall(message)
    received = recv_exactly(client, sum(len(m) for m in messages))
    assert received == b"".join(messages)
    assert time.monotonic() - start < 3.0  # one after another would take 50 s

    proxy_to.delay(0)
    start = time.monotonic()
    client.sendall(b"fast")
    assert recv_exactly(client, 4) == b"fast"
    assert time.monotonic() - start < 0.25


@pytest.mark.parametrize("proxy_to", ["backend"], indirect=True)
def test_pause_freezes_bytes_and_close_then_resume_delivers(
    proxy_to: FaultProxy, backend: Backend
) -> None:
    client = connect(proxy_to)
    server = backend.accept()
    client.sendall(b"before")
    assert recv_exactly(server, 6) == b"before"

    proxy_to.pause()
    client.sendall(b"during")
    server.sendall(b"reply")
    client.shutdown(socket.SHUT_WR)  # even the close is held back
    assert_quiet(server)
    assert_quiet(client)
    assert proxy_to.stats().connections_active == 1

    proxy_to.resume()
    assert recv_exactly(server, 6) == b"during"
    assert server.recv(1) == b""
    assert recv_exactly(client, 5) == b"reply"


@pytest.mark.parametrize("proxy_to", ["echo"], indirect=True)
def test_pause_buffers_a_large_stream_without_loss(proxy_to: FaultProxy) -> None:
    client = connect(proxy_to)
    payload = bytes(range(256)) * 8192  # 2 MiB, more than the socket buffers hold
    proxy_to.pause()
    sender = threading.Thread(target=client.sendall, args=(payload,), daemon=True)
    sender.start()
    time.sleep(QUIET)
    assert proxy_to.stats().bytes_to_target == 0
    proxy_to.resume()
    received = recv_exactly(client, len(payload))
    sender.join(timeout=IO_TIMEOUT)
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()


@pytest.mark.parametrize("proxy_to", ["backend"], indirect=True)
def test_pause_one_direction(proxy_to: FaultProxy, backend: Backend) -> None:
    client = connect(proxy_to)
    server = backend.accept()
    proxy_to.pause("to_client")
    client.sendall(b"up")
    assert recv_exactly(server, 2) == b"up"
    server.sendall(b"down")
    assert_quiet(client)
    proxy_to.resume("to_client")
    assert recv_exactly(client, 4) == b"down"


@pytest.mark.parametrize("proxy_to", ["backend"], indirect=True)
def test_connection_during_pause_reaches_target_only_after_resume(
    proxy_to: FaultProxy, backend: Backend
) -> None:
    proxy_to.pause()
    client = connect(proxy_to)
    client.sendall(b"early")
    with pytest.raises(queue.Empty):
        backend.accept(timeout=QUIET)
    proxy_to.resume()
    server = backend.accept()
    assert recv_exactly(server, 5) == b"early"


@pytest.mark.parametrize("proxy_to", ["backend"], indirect=True)
def test_cut_resets_both_peers_and_new_connections_work(
    proxy_to: FaultProxy, backend: Backend
) -> None:
    client = connect(proxy_to)
    server = backend.accept()
    client.sendall(b"x")
    assert recv_exactly(server, 1) == b"x"

    assert proxy_to.cut() == 1
    with pytest.raises(ConnectionResetError):
        client.recv(1)
    with pytest.raises(ConnectionResetError):
        server.recv(1)
    wait_until(lambda: proxy_to.stats().connections_active == 0)
    assert proxy_to.stats().connections_cut == 1

    again = connect(proxy_to)
    server2 = backend.accept()
    again.sendall(b"y")
    assert recv_exactly(server2, 1) == b"y"


@pytest.mark.parametrize("proxy_to", ["backend"], indirect=True)
def test_cut_during_pause_still_resets(proxy_to: FaultProxy, backend: Backend) -> None:
    client = connect(proxy_to)
    server = backend.accept()
    proxy_to.pause()
    proxy_to.cut()
    with pytest.raises(ConnectionResetError):
        client.recv(1)
    with pytest.raises(ConnectionResetError):
        server.recv(1)


@pytest.mark.parametrize("proxy_to", ["backend"], indirect=True)
def test_refuse_new_refuses_but_keeps_existing(proxy_to: FaultProxy, backend: Backend) -> None:
    client = connect(proxy_to)
    server = backend.accept()
    proxy_to.refuse_new(True)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, proxy_to.port), timeout=IO_TIMEOUT)
    client.sendall(b"alive")
    assert recv_exactly(server, 5) == b"alive"

    proxy_to.refuse_new(False)
    again = connect(proxy_to)
    server2 = backend.accept()
    again.sendall(b"back")
    assert recv_exactly(server2, 4) == b"back"


@pytest.mark.parametrize("proxy_to", ["backend"], indirect=True)
def test_bandwidth_limits_throughput(proxy_to: FaultProxy, backend: Backend) -> None:
    client = connect(proxy_to)
    server = backend.accept()
    proxy_to.bandwidth(100_000)
    payload = b"b" * 50_000
    start = time.monotonic()
    client.sendall(payload)
    assert recv_exactly(server, len(payload)) == payload
    elapsed = time.monotonic() - start
    assert 0.4 <= elapsed < 3.0  # 0.5 s at 100 kB/s

    proxy_to.bandwidth(None)
    start = time.monotonic()
    client.sendall(payload)
    assert recv_exactly(server, len(payload)) == payload
    assert time.monotonic() - start < 0.25


def test_unreachable_target_resets_the_client() -> None:
    dead_port = reserve_port()  # reserved, so nothing listens on it
    try:
        with FaultProxy(HOST, dead_port) as proxy:
            with pytest.raises(ConnectionResetError):  # in connect() or in the first recv()
                connect(proxy).recv(1)
            wait_until(lambda: proxy.stats().upstream_failures == 1)
    finally:
        release_port(dead_port)


def test_retarget_moves_new_connections(backend: Backend) -> None:
    other = Backend()
    try:
        with FaultProxy(HOST, backend.port) as proxy:
            first = connect(proxy)
            backend.accept()
            proxy.retarget(HOST, other.port)
            connect(proxy).sendall(b"2")
            assert recv_exactly(other.accept(), 1) == b"2"
            first.sendall(b"1")  # the old connection still goes to the old target
    finally:
        other.close()


def test_faults_set_before_start_apply(echo: Backend) -> None:
    proxy = FaultProxy(HOST, echo.port)
    proxy.delay(100)
    with proxy:
        client = connect(proxy)
        start = time.monotonic()
        client.sendall(b"z")
        assert recv_exactly(client, 1) == b"z"
        assert time.monotonic() - start >= 0.19


def test_stop_resets_connections_and_closes_listener(backend: Backend) -> None:
    with FaultProxy(HOST, backend.port) as proxy:
        client = connect(proxy)
        server = backend.accept()
        port = proxy.port
    with pytest.raises(ConnectionResetError):
        client.recv(1)
    with pytest.raises(ConnectionResetError):
        server.recv(1)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=IO_TIMEOUT)
    assert proxy.stats().connections_active == 0
    proxy.stop()  # idempotent
