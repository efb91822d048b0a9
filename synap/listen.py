"""Listening sockets: binding one, and the operator-facing error when that fails.

Used by the node's client ports and by the replication listener; below every layer that
binds (see docs/ARCHITECTURE.md, "Layers").
"""

from __future__ import annotations

import errno
import socket


class StartupError(Exception):
    """The node cannot start; the message tells the operator what to change."""


def fmt_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind(host: str, port: int, what: str, option: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(
            bind_error(
                f"the {what}",
                host,
                port,
                exc,
                host_option="--host / server.host",
                port_option=option,
            )
        ) from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def bind_error(
    what: str, host: str, port: int, exc: OSError, *, host_option: str, port_option: str
) -> str:
    """Why a listener could not bind, and which setting to change: the port when it is
    taken, the host when it is not an address of this machine or does not resolve."""
    where = f"cannot listen for {what} on {fmt_address((host, port))}"
    if isinstance(exc, socket.gaierror):
        return (
            f"{where}: the host name {host!r} does not resolve ({exc.strerror}); "
            f"give an IP address of this machine (127.0.0.1, or 0.0.0.0 for every "
            f"interface) with {host_option}"
        )
    code = exc.errno
    if code == errno.EADDRINUSE:
        return (
            f"{where}: port {port} is already in use (another synap-server?); "
            f"pick another port with {port_option}"
        )
    if code == errno.EADDRNOTAVAIL:
        return (
            f"{where}: {host} is not an address of this machine; use one of its addresses "
            f"(127.0.0.1, or 0.0.0.0 for every interface) with {host_option}"
        )
    if code == errno.EACCES:
        hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)" if port < 1024 else ""
        return f"{where}: permission denied{hint}; pick another port with {port_option}"
    reason = exc.strerror or str(exc)
    return f"{where}: {reason}; check {host_option} and {port_option}"
