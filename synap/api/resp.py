"""The Redis-protocol front end: an ``asyncio.Protocol`` per client, hiredis for parsing.

Requests are parsed by a per-connection ``hiredis.Reader``; each read is processed as a
batch and answered with one ``transport.write`` after the node's write-ahead log has been
flushed (group commit: under ``fsync_mode: always`` nothing is acknowledged before it is
on disk).  A handler may return an awaitable (``WAIT``); the connection then holds back
later requests until it resolves, so replies stay in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import hiredis

from synap.api import resp_codec as R
from synap.api.resp_admin import ADMIN_COMMANDS, NO_AUTH_COMMANDS
from synap.api.resp_commands import DATA_COMMANDS
from synap.commands.errors import CommandError

if TYPE_CHECKING:
    from synap.node import Node

log = logging.getLogger("synap.resp")

COMMANDS = {**DATA_COMMANDS, **ADMIN_COMMANDS}

# A request (one command with all its arguments) may not buffer more than this beyond
# the largest allowed value; protects the server from a 4 GB bulk length.
REQUEST_OVERHEAD_BYTES = 1024 * 1024
# Inline (telnet-style) commands are limited like Redis's 64 KiB inline buffer.
MAX_INLINE_BYTES = 64 * 1024


class RespConnection(asyncio.Protocol):
    def __init__(self, node: Node) -> None:
        self.node = node
        self.cmds = node.commands
        self.resp3 = False
        self.name: bytes | None = None
        self.id = node.next_client_id()
        self.authenticated = not node.config.server.api_keys
        self.closing = False
        self._reader = hiredis.Reader()
        self._inline = b""
        self._transport: asyncio.Transport | None = None
        self._blocked: Awaitable[Any] | None = None
        self._max_request = node.config.kv_store.max_value_bytes + REQUEST_OVERHEAD_BYTES
        self.peer = ""

    # ----------------------------------------------------------- lifecycle
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        if not self.node.client_opened(self):
            self.closing = True
            self.write_push(R.error("ERR max number of clients reached"))
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.node.client_closed(self)

    def close_after_reply(self) -> None:
        self.closing = True

    # ----------------------------------------------------------- input
    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self._blocked is not None:
            self._reader.feed(data)
            return
        if self._inline or (data[:1] != b"*" and not self._reader.has_data()):
            data = self._convert_inline(data)
            if not data:
                return
        self._reader.feed(data)
        self._process()

    def _convert_inline(self, data: bytes) -> bytes:
        """Turn telnet-style lines (``PING\\r\\n``) into RESP arrays for hiredis."""
        buf = self._inline + data
        out = []
        while buf and buf[:1] != b"*":
            line, sep, rest = buf.partition(b"\n")
            if not sep:
                if len(buf) > MAX_INLINE_BYTES:
                    self._fatal("ERR Protocol error: too big inline request")
                    return b""
                break
            buf = rest
            parts = line.strip().split()
            if parts:
                out.append(b"*%d\r\n" % len(parts) + b"".join(R.bulk(p) for p in parts))
        if buf[:1] == b"*":
            out.append(buf)
            buf = b""
        self._inline = buf
        return b"".join(out)

    def _process(self) -> None:
        reader = self._reader
        replies: list[bytes] = []
        transport = self._transport
        while not self.closing:
            try:
                request = reader.gets()
            except hiredis.ProtocolError as exc:
                self._flush(replies)
                self._fatal(f"ERR Protocol error: {exc}")
                return
            if request is False:
                break
            if not isinstance(request, list) or not request:
                continue
            reply = self._dispatch(request)
            if type(reply) is bytes:
                replies.append(reply)
            else:
                self._flush(replies)
                self._block_on(reply)  # type: ignore[arg-type]
                return
        if reader.len() > self._max_request:
            self._flush(replies)
            self._fatal("ERR Protocol error: request exceeds the maximum allowed size")
            return
        self._flush(replies)
        if self.closing and transport is not None:
            transport.close()

    def _dispatch(self, request: list[Any]) -> object:
        name = request[0]
        if not isinstance(name, bytes):
            return R.error("ERR Protocol error: expected bulk strings")
        handler = COMMANDS.get(name)
        if handler is None:
            upper = name.upper()
            handler = COMMANDS.get(upper)
            if handler is None:
                shown = name.decode(errors="replace")[:128]
                rest = " ".join(f"'{a.decode(errors='replace')[:64]}'" for a in request[1:4])
                return R.error(f"ERR unknown command '{shown}', with args beginning with: {rest}")
            name = upper
        if not self.authenticated and name not in NO_AUTH_COMMANDS:
            return R.error("NOAUTH Authentication required.")
        try:
            return handler(self, request)
        except CommandError as exc:
            return exc.resp()
        except Exception:
            log.exception("internal error in %s", name.decode(errors="replace"))
            return R.error("ERR internal error; see the server log")

    # ----------------------------------------------------------- output
    def _flush(self, replies: list[bytes]) -> None:
        if replies and self._transport is not None:
            self.node.before_reply()
            self._transport.write(b"".join(replies))
            replies.clear()

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
            reply = exc.resp()
        except Exception:
            log.exception("internal error in a blocking command")
            reply = R.error("ERR internal error; see the server log")
        self._flush([reply])
        self._process()

    def _fatal(self, message: str) -> None:
        """Answer a protocol error and close, as Redis does."""
        log.info("closing client %s: %s", self.peer, message)
        if self._transport is not None:
            self._transport.write(R.error(message))
            self._transport.close()
        self.closing = True

    def write_push(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)
