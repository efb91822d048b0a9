"""A real ``redis-server`` to compare replies with, and a raw-socket client.

``real_redis`` (a module-scoped fixture; import it into a test module) starts Debian's
``redis-server`` on a reserved 127.0.0.1 port with persistence off and DEBUG enabled, and
kills it (by PID) at teardown; the test is skipped where it is not installed.  ``Wire``
speaks RESP on a raw socket so that what is compared is the bytes, not a client library's
reading of them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import hiredis
import pytest

from tests.support.ports import HOST, release_port, reserve_port

_INCOMPLETE = object()


def encode(*args: bytes | str | int) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Wire:
    """A raw connection; ``replies(n)`` parses n replies with hiredis (errors included)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader()

    def send(self, data: bytes) -> Wire:
        self.sock.sendall(data)
        return self

    def replies(self, count: int, timeout: float = 5.0) -> list[object]:
        out: list[object] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            reply = self.reader.gets()
            if reply is not False:
                out.append(reply)
                continue
            assert time.monotonic() < deadline, f"only {len(out)} of {count} replies: {out}"
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed after {len(out)} of {count} replies: {out}"
            self.reader.feed(chunk)
        return out

    def raw(self, settle: float = 0.3) -> bytes:
        """Everything that arrives until the peer is quiet for ``settle`` s (or closes)."""
        data = b""
        self.sock.settimeout(settle)
        try:
            for _ in range(10_000):
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            pass
        finally:
            self.sock.settimeout(5)
        return data

    def reply_bytes(self) -> bytes:
        """The raw bytes of exactly one reply (this connection sends one request at a time)."""
        data = b""
        reader = hiredis.Reader(notEnoughData=_INCOMPLETE)  # RESP3 "#f" parses as False
        for _ in range(10_000):
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed; received {data!r}"
            data += chunk
            reader.feed(chunk)
            if reader.gets() is not _INCOMPLETE:
                assert reader.gets() is _INCOMPLETE, f"more than one reply: {data!r}"
                return data
        raise AssertionError(f"no complete reply: {data!r}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def real_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    port = reserve_port()
    workdir = tmp_path_factory.mktemp("real-redis")
    release_port(port)  # redis-server binds it itself, right away
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--enable-debug-command",
            "yes",
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((HOST, port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16) == b"+PONG\r\n":
                        break
            except OSError:
                pass
            assert proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield port
    finally:
        proc.kill()
        proc.wait(10)
