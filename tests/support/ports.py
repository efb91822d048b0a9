"""Free TCP ports on 127.0.0.1 for test servers.

Two ways to get a port:

``free_port()``
    Bind ``127.0.0.1:0`` and return what the kernel chose. Cheap, but the port is free
    again the moment this returns, so another process (another xdist worker, or any
    outgoing connection, which draws its local port from the same ephemeral range) may take
    it before our server binds it. Good enough for a listener we bind ourselves right away.

``reserve_ports(n)`` / ``reserve_port()``
    Ports that stay ours until ``release_port`` or until this process exits, so a server
    can be restarted on the same ports. The rule that keeps them unique:

    1. Ports come from a pool *outside* the kernel's ephemeral range
       (``/proc/sys/net/ipv4/ip_local_port_range``), so no outgoing connection is ever
       given one of them as its local port.
    2. A port is ours while we hold an exclusive ``flock`` on
       ``$TMPDIR/synap-test-ports/<port>.lock``. Every xdist worker and every concurrent
       pytest session on the machine takes the same lock, and the kernel drops it when the
       holder dies, so a crashed session leaks nothing.
    3. A port is only handed out if ``127.0.0.1:<port>`` can be bound right now (without
       ``SO_REUSEADDR``), which skips ports held by anything that does not use our locks,
       including a server leaked by an earlier, killed session.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import socket
import tempfile
import threading
from pathlib import Path

HOST = "127.0.0.1"

# Preferred pool: below Linux's default ephemeral range (32768-60999) and clear of the
# well-known ports our own defaults use (5500, 6379, 15501).
POOL_START = 20000
POOL_END = 32000  # exclusive

LOCK_DIR = Path(tempfile.gettempdir()) / "synap-test-ports"

_held: dict[int, int] = {}  # port -> fd of the lock file we hold
_mutex = threading.Lock()


def free_port() -> int:
    """A port the kernel says is free on 127.0.0.1 right now (see the module docstring)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _pool() -> list[int]:
    """Candidate ports: the preferred pool minus the ephemeral range (if they overlap)."""
    low, high = _ephemeral_range()
    ports = [p for p in range(POOL_START, POOL_END) if not low <= p <= high]
    if len(ports) < 1000:  # an unusual ephemeral range swallowed the pool: go below it
        ports = [p for p in range(10000, 65536) if not low <= p <= high]
    return ports


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _try_lock(port: int) -> int | None:
    """Take the cross-process lock for ``port``; return the lock fd, or None if taken."""
    fd = os.open(LOCK_DIR / f"{port}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def reserve_ports(count: int) -> list[int]:
    """``count`` distinct ports, each held for this process until ``release_port``.

    Raises RuntimeError if the pool is exhausted (it has about 12,000 ports).
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    pool = _pool()
    # A random starting point keeps concurrent workers from contending for the same ports.
    start = random.SystemRandom().randrange(len(pool))
    found: list[int] = []
    with _mutex:
        for i in range(len(pool)):
            port = pool[(start + i) % len(pool)]
            if port in _held:
                continue
            fd = _try_lock(port)
            if fd is None:
                continue
            if not _bindable(port):
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                continue
            _held[port] = fd
            found.append(port)
            if len(found) == count:
                return found
        for port in found:  # not enough: give back what we took
            _release_locked(port)
    raise RuntimeError(
        f"could not reserve {count} free ports in {pool[0]}-{pool[-1]}; "
        f"are earlier test servers still running? (locks in {LOCK_DIR})"
    )


def reserve_port() -> int:
    """One port, held for this process until ``release_port`` (see ``reserve_ports``)."""
    return reserve_ports(1)[0]


def _release_locked(port: int) -> None:
    fd = _held.pop(port, None)
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def release_port(port: int) -> None:
    """Give a reserved port back to the pool. Releasing an unknown port does nothing."""
    with _mutex:
        _release_locked(port)


def reserved_ports() -> list[int]:
    """The ports this process currently holds (for debugging leaks)."""
    with _mutex:
        return sorted(_held)
