"""MONITOR output: every command a client runs, as Redis writes it to monitors
(``+<unix time with µs> [0 <client address>] "arg" "arg"...``, arguments quoted like
``sdscatrepr``, AUTH secrets redacted).  Admin commands are not shown, as in Redis."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synap.api.resp_context import RespClient as RespConnection

_ESCAPES = {
    0x5C: b"\\\\",
    0x22: b'\\"',
    0x0A: b"\\n",
    0x0D: b"\\r",
    0x09: b"\\t",
    0x07: b"\\a",
    0x08: b"\\b",
}


def quote(arg: bytes) -> bytes:
    """Redis's ``sdscatrepr``."""
    out = bytearray(b'"')
    for ch in arg:
        escaped = _ESCAPES.get(ch)
        if escaped is not None:
            out += escaped
        elif 0x20 <= ch < 0x7F:
            out.append(ch)
        else:
            out += b"\\x%02x" % ch
    out += b'"'
    return bytes(out)


def _redacted(request: list[bytes]) -> list[bytes]:
    name = request[0].upper()
    if name == b"AUTH":
        return [request[0]] + [b"(redacted)"] * (len(request) - 1)
    if name == b"HELLO":
        out = list(request)
        for i in range(2, len(out) - 2):
            if out[i].upper() == b"AUTH":
                out[i + 1] = out[i + 2] = b"(redacted)"
        return out
    return request


def feed_monitors(c: RespConnection, request: list[bytes], flags: frozenset[str]) -> None:
    """Send ``request`` (just run by ``c``; ``flags``: its command's) to every monitor."""
    if "admin" in flags or "skip_monitor" in flags:
        return
    now = time.time_ns() // 1000
    line = b"+%d.%06d [0 %s] %s\r\n" % (
        now // 1_000_000,
        now % 1_000_000,
        c.peer.encode(),
        b" ".join(quote(a) for a in _redacted(request)),
    )
    for monitor in list(c.node.monitors):
        if monitor is not c:
            monitor.write_push(line)
