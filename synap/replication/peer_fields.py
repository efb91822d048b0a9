"""Checks for what a replication peer says about itself, and escaping for text output.

A replica names itself in HELLO: its id, the HTTP address it announces, its
Redis-protocol port.  These strings end up in the master's stats JSON, ``INFO
replication``, ``ROLE``, ``/metrics`` labels, logs and ``synap-cli`` output, so the master
accepts them only in a narrow form and rejects the peer otherwise (Redis likewise refuses
a ``REPLCONF ip-address`` longer than ``NET_HOST_STR_LEN``):

* an id is 1..``MAX_ID_CHARS`` printable ASCII characters without spaces (ours are
  ``replica-<uuid4>``, 44 characters);
* an address is ``host:port`` with a port in 1..65535 and a host that is an IPv4/IPv6
  address (``[v6]`` or bare, as ``rpartition(":")`` splits it) or a DNS name of at most
  253 characters (letters, digits, ``-``, ``_`` and dots).

Everything here is pure: no sockets, so each rule is a one-line unit test.

:func:`escape_text` is the other half: every text view (INFO, metrics label values, CLI
output) passes what it prints through it, so even a string that slipped past a check, or
came from elsewhere (a master's ERROR message in ``last_error``), cannot add a line,
a field or a terminal escape sequence.
"""

from __future__ import annotations

import ipaddress
import re

# Ids are ours ("replica-" + a 36-character uuid4): 128 leaves room for operators' own
# naming schemes while keeping INFO lines and metric labels short.
MAX_ID_CHARS = 128
# "[" + 39-character IPv6 + "]:" + 5 digits is 47; a DNS name is at most 253 (RFC 1035),
# plus ":65535".
MAX_HOSTNAME_CHARS = 253
MAX_ADDRESS_CHARS = MAX_HOSTNAME_CHARS + 6
# Free text a peer sends (an ERROR message) is kept to this many characters in views.
MAX_MESSAGE_CHARS = 1000

_ID_RE = re.compile(r"[\x21-\x7e]+")
_LABEL_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


class InvalidPeerField(ValueError):
    """A peer-supplied field does not have the allowed form (the message says which)."""


def preview(value: object, limit: int = 40) -> str:
    """A short rendering of a rejected value, safe to put in an error message (``repr``
    escapes every non-printable character)."""
    if isinstance(value, str):
        return repr(value[:limit]) + ("..." if len(value) > limit else "")
    return type(value).__name__


def check_peer_id(value: object, what: str = "replica id") -> str:
    """``value`` if it is a valid peer id, else :class:`InvalidPeerField`."""
    if not isinstance(value, str):
        raise InvalidPeerField(f"{what} must be a string, got {preview(value)}")
    if not 0 < len(value) <= MAX_ID_CHARS:
        raise InvalidPeerField(
            f"{what} must be 1..{MAX_ID_CHARS} characters, got {len(value)}: {preview(value)}"
        )
    if not _ID_RE.fullmatch(value):
        raise InvalidPeerField(
            f"{what} must be printable ASCII without spaces, got {preview(value)}"
        )
    return value


def _valid_host(host: str) -> bool:
    # ipaddress accepts any text as an IPv6 zone ("fe80::1%<anything>"); a zone means
    # nothing on another machine, so none is allowed.
    if not _ID_RE.fullmatch(host) or "%" in host:
        return False
    if host.startswith("[") and host.endswith("]"):
        try:
            return ipaddress.ip_address(host[1:-1]).version == 6
        except ValueError:
            return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if not 0 < len(host) <= MAX_HOSTNAME_CHARS:
        return False
    return all(_LABEL_RE.fullmatch(label) for label in host.removesuffix(".").split("."))


def check_host_port(value: object, what: str = "address") -> tuple[str, int]:
    """Split a peer-supplied ``host:port``; :class:`InvalidPeerField` unless both parse."""
    if not isinstance(value, str):
        raise InvalidPeerField(f"{what} must be a host:port string, got {preview(value)}")
    if not 0 < len(value) <= MAX_ADDRESS_CHARS:
        raise InvalidPeerField(
            f"{what} must be 1..{MAX_ADDRESS_CHARS} characters, got {len(value)}: {preview(value)}"
        )
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise InvalidPeerField(f"{what} must be host:port, got {preview(value)}")
    port = int(port_text)
    if port_text != str(port):
        raise InvalidPeerField(f"{what} has a port with leading zeros: {preview(value)}")
    if not 0 < port < 65536:
        raise InvalidPeerField(f"{what} has port {port} outside 1..65535: {preview(value)}")
    if not _valid_host(host):
        raise InvalidPeerField(
            f"{what} must be host:port with an IP address or DNS name as host, got {preview(value)}"
        )
    return host, port


def escape_text(value: object) -> str:
    """``str(value)`` with every non-printable character written as a Python escape
    (``\\n``, ``\\x1b``, ``\\u202e``), so that it stays on one line and cannot drive a
    terminal.  Printable text, including non-ASCII letters, is unchanged."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def bounded_text(value: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Free text from a peer, cut to ``limit`` characters (with a marker when cut)."""
    if len(value) <= limit:
        return value
    return value[:limit] + f"... ({len(value) - limit} more characters)"
