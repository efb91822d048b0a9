"""The SynapRPC front end (``synap://host:port``, synap-sdk's default transport): an
``asyncio.Protocol`` that only moves bytes.

Framing and the value mapping are sans-IO in :mod:`synap.api.rpc_codec`.  Commands run
through the RESP front end's own dispatch (:meth:`RespConnection.execute`, the same
command table, AUTH / admin-key checks and command layer), on a per-connection RESP
session that never touches the socket itself; its RESP reply is converted to a Thunder
value.  So a command behaves exactly as over RESP: replicas answer ``READONLY``, API keys
need ``AUTH`` first (the SDK's handshake), admin commands need the admin key.

Requests run in the order they arrive (a client may have many in flight, told apart by
id); each read is answered with one write after the WAL write of its records, held to the end
of the loop iteration as on the RESP port (group commit).  A
blocking command (``WAIT``) holds later requests back, and reading pauses, until it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from thunder_rpc.value import Request

from synap.api import rpc_codec as C
from synap.api.resp import COMMANDS, REQUEST_OVERHEAD_BYTES, RespConnection
from synap.commands.errors import CommandError

if TYPE_CHECKING:
    from synap.api.services import NodeServices

log = logging.getLogger("synap.rpc")


def max_frame_bytes(node: NodeServices) -> int:
    """The largest request body accepted: a key and a value at their limits, plus room
    for the rest of the request (the RESP port's per-request limit)."""
    kv = node.config.kv_store
    return kv.max_value_bytes + kv.max_key_bytes + REQUEST_OVERHEAD_BYTES


class RpcConnection(asyncio.Protocol):
    def __init__(self, node: NodeServices) -> None:
        self.node = node
        self.state = C.RpcConnectionState(max_frame_bytes(node))
        # The RESP session commands run on: its own auth / admin / name state; RESP3 so
        # that maps (KVSTATS) stay maps.  It is listed with the RESP clients (CLIENT LIST,
        # connected_clients, max_clients) and closed with them.
        self.session = RespConnection(node)
        self.session.resp3 = True
        self.closing = False
        self._transport: asyncio.Transport | None = None
        self._pending: deque[C.Event] = deque()
        self._blocked: asyncio.Future[Any] | None = None
        self.peer = "?"

    # ----------------------------------------------------------- lifecycle
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = self.session.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.session._transport = self._transport  # closed by NodeServices.stop with the others
        if not self.node.client_opened(self.session):
            log.info("closing SynapRPC client %s: max number of clients reached", self.peer)
            self.closing = True
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self._blocked is not None:
            self._blocked.cancel()
        self.node.client_closed(self.session)

    # ----------------------------------------------------------- input
    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self._pending.extend(self.state.feed(data))
        if self._blocked is None:
            self._run()

    def _run(self) -> None:
        out: list[bytes] = []
        pending = self._pending
        session = self.session
        while pending and not self.closing and not session.closing:  # session: after QUIT
            event = pending.popleft()
            if type(event) is C.FrameError:
                if event.request_id is not None:
                    out.append(C.err_frame(event.request_id, event.message))
                    continue
                self._flush(out)
                self._fatal(event)
                return
            assert isinstance(event, Request)
            reply = self._call(event)
            if type(reply) is bytes:
                out.append(reply)
            else:
                self._flush(out)
                self._block_on(event.id, reply)  # type: ignore[arg-type]
                return
        self._flush(out)
        if session.closing and not self.closing:  # QUIT: nothing after it runs
            self._close()

    def _call(self, request: Request) -> object:
        """The response frame for ``request``, or an awaitable for a blocking command."""
        try:
            argv = C.request_argv(request)
        except C.ArgumentError as exc:
            return C.err_frame(request.id, str(exc))
        name = argv[0]
        if name not in COMMANDS and name.upper() not in COMMANDS:
            # What the Synap server answers over SynapRPC for a command it lacks.
            return C.err_frame(request.id, f"ERR unknown command '{request.command.upper()}'")
        reply = self.session.execute(argv)
        if type(reply) is bytes:
            return self._frame(request.id, reply)
        return reply

    def _frame(self, request_id: int, reply: bytes) -> bytes:
        if not reply:  # no reply at all (SHUTDOWN, CLIENT REPLY OFF): nothing to send
            return b""
        try:
            return C.response_frame(request_id, reply)
        except Exception:
            log.exception("cannot convert a RESP reply to SynapRPC: %r", reply[:200])
            return C.err_frame(request_id, "ERR internal error; see the server log")

    # ----------------------------------------------------------- output
    def _flush(self, frames: list[bytes]) -> None:
        """Send ``frames`` after the WAL write of the records before them: group commit
        per loop iteration, as on the RESP port (held to the end of the iteration while
        records wait; node.py ``reply_after_flush``)."""
        if frames and self._transport is not None and not self._transport.is_closing():
            self.node.reply_after_flush(self._transport, b"".join(frames))
        frames.clear()

    def _close(self) -> None:
        """Close the connection once the replies held for it are out."""
        self.closing = True
        if self._transport is not None:
            self.node.flush_replies()  # the held replies first (a closing one gets none)
            self._transport.close()

    def _block_on(self, request_id: int, awaitable: Awaitable[Any]) -> None:
        future = asyncio.ensure_future(awaitable)
        self._blocked = future
        if self._transport is not None:
            self._transport.pause_reading()
        future.add_done_callback(lambda f: self._unblock(request_id, f))

    def _unblock(self, request_id: int, future: asyncio.Future[Any]) -> None:
        self._blocked = None
        if self.closing or self._transport is None or self._transport.is_closing():
            return
        if future.cancelled():
            frame = C.err_frame(request_id, "ERR command cancelled")
        else:
            try:
                frame = self._frame(request_id, future.result())
            except CommandError as exc:
                frame = C.err_frame(request_id, exc.message)
            except Exception:
                log.exception("internal error in a blocking command")
                frame = C.err_frame(request_id, "ERR internal error; see the server log")
        self._flush([frame])
        self._transport.resume_reading()
        self._run()

    def _fatal(self, error: C.FrameError) -> None:
        """A frame nothing can be addressed to: say why in the log, and close."""
        log.info("closing SynapRPC client %s: %s", self.peer, error.message)
        self.closing = True
        if self._transport is not None:
            self.node.flush_replies()  # the replies held for earlier requests first
            if error.http:
                self._transport.write(
                    C.http_misdirected(
                        "This port serves SynapRPC (synap://); the HTTP API is on port "
                        f"{self.node.config.server.port}.\n"
                    )
                )
            self._transport.close()
