"""The node's HTTP/1.1 server: an ``asyncio.Protocol`` over ``httptools``, in the node's loop.

Two halves:

* :class:`RequestParser` (sans-IO): bytes in, whole :class:`Request` objects out, in
  order, or an :class:`HttpProtocolError` (status 400 for a malformed request, 431 for
  headers over :data:`MAX_HEADER_BYTES`). It enforces ``server.max_body_bytes``: a body
  declared (``Content-Length``) or found (chunked) over it ends the request at once with
  ``too_large`` set; nothing more is read from that connection. :func:`encode_response`
  turns a :class:`Response` into bytes (``content-length``, ``date``, ``connection``; no
  body for ``HEAD``).
* :class:`HttpConnection` (the ``asyncio.Protocol``): keep-alive (HTTP/1.1 by default,
  HTTP/1.0 with ``Connection: keep-alive``), pipelining (answers in request order; one
  request runs at a time, reading pauses when too many wait), ``Expect: 100-continue``,
  an idle timeout, and a graceful close on shutdown. Handlers are called directly: a
  handler returns a :class:`Response`, or an awaitable of one when it has to wait
  (``wait``, ``min_offset``, promotion...). A synchronous answer costs no task. The
  answers to one read go out in one ``transport.write``.

One route may be a :class:`FastRoute` (``GET /kv/get/{key}``): a plain ``GET`` of its
prefix (keep-alive, no query, no escapes, none of the headers that change its answer or
need the general path) is answered by the parser's own callbacks, with no
:class:`Request`, no route lookup and no queue, whenever no earlier request of the
connection is still waiting, so answers stay in request order. Every other request takes
the general path. The API installs one only where the general path would let the request
through unchecked (no API keys configured).

TLS is the loop's: :func:`start_http_server` passes the node's client context to
``create_server`` as for the Redis and SynapRPC ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from time import time as _time
from typing import Any
from urllib.parse import unquote

import httptools
import orjson

log = logging.getLogger("synap.http")

#: Request line plus headers, in bytes; more gets 431 and the connection closed.
MAX_HEADER_BYTES = 64 * 1024
#: A connection with nothing to do for this long is closed (uvicorn's keep-alive was 30 s).
IDLE_TIMEOUT_SECS = 30.0
#: Pipelined requests parsed ahead of the one running before reading pauses.
MAX_PIPELINED = 64
#: On shutdown, how long requests already running may take to finish.
SHUTDOWN_GRACE_SECS = 5.0


class HttpProtocolError(Exception):
    """The bytes are not an HTTP request we serve: answered with ``status`` and closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Request:
    """One parsed request. Header names are lower case; ``body`` is complete.

    The defaults are class attributes: a request sets only what differs (the common
    ``GET`` without a body costs a few dict stores)."""

    method = "GET"
    path = "/"
    query = b""
    body = b""
    keep_alive = True
    http10 = False
    #: The body is over the limit (declared or counted); it was not read.
    too_large = False
    declared_length: int | None = None
    #: Set by a write's handler: sent as the ``Synap-Offset`` header.
    offset: int | None = None
    #: Fields a handler adds to its error body (e.g. ``min_offset`` on a timeout).
    error_extra: dict[str, Any] | None = None

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.headers = headers

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


class Response:
    """Status, body and the header lines beyond the ones the server adds.

    ``headers`` is a preformatted block (``b"name: value\\r\\n"`` lines), so that the
    common answers reuse one constant."""

    __slots__ = ("status", "body", "headers")

    def __init__(self, status: int, body: bytes, headers: bytes) -> None:
        self.status = status
        self.body = body
        self.headers = headers


Handler = Callable[[Request], "Response | Awaitable[Response]"]


class FastRoute:
    """A ``GET`` route the parser answers from its callbacks (see the module docstring).

    ``answer(key)`` gets the path after ``prefix`` (bytes, ASCII, no escapes) and must
    give exactly the :class:`Response` the general path would for ``GET prefix+key``,
    with the same side effects (counters, metrics, group commit). A request carrying a
    header in ``slow_headers`` (lower case) takes the general path."""

    __slots__ = ("prefix", "answer", "slow_headers")

    def __init__(
        self,
        prefix: bytes,
        answer: Callable[[bytes], Response],
        slow_headers: frozenset[bytes] = frozenset(),
    ) -> None:
        self.prefix = prefix
        self.answer = answer
        self.slow_headers = slow_headers


def header_block(headers: list[tuple[bytes, bytes]]) -> bytes:
    """``[(name, value)]`` as the preformatted lines :class:`Response` takes."""
    return b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers)


_STATUS_LINES = {int(s): b"HTTP/1.1 %d %s\r\n" % (int(s), s.phrase.encode()) for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_KEEP_ALIVE = b"connection: keep-alive\r\n"
_CLOSE = b"connection: close\r\n"


class _Clock:
    """The ``date:`` line, formatted once a second."""

    def __init__(self) -> None:
        self._second = 0
        self._line = b""

    def line(self) -> bytes:
        now = int(_time())
        if now != self._second:
            self._second = now
            self._line = b"date: %s\r\n" % formatdate(now, usegmt=True).encode()
        return self._line


_clock = _Clock()


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d Unknown\r\n" % status


def encode_response(
    response: Response, head: bool, keep_alive: bool, http10: bool = False
) -> bytes:
    """The bytes of one response. HEAD keeps ``content-length`` but sends no body; an
    HTTP/1.0 client that asked for keep-alive is told ``connection: keep-alive``."""
    body = response.body
    if keep_alive:
        connection = _KEEP_ALIVE if http10 else b""
    else:
        connection = _CLOSE
    line = _STATUS_LINES.get(response.status) or status_line(response.status)
    clock = _clock
    date = clock._line if int(_time()) == clock._second else clock.line()
    return b"%s%scontent-length: %d\r\n%s%s\r\n%s" % (
        line,
        response.headers,
        len(body),
        date,
        connection,
        b"" if head else body,
    )


def error_response(status: int, message: str, code: str) -> Response:
    """A JSON error body as the API words them (``{"error", "code"}``)."""
    return Response(
        status,
        orjson.dumps({"error": message, "code": code}),
        b"content-type: application/json\r\n",
    )


_SPECIAL = frozenset({b"content-length", b"transfer-encoding", b"expect", b"connection"})
# Byte values, not one-byte strings: ``int in bytes`` is a memchr, while ``bytes in bytes``
# first tries the operand as an integer and builds (and drops) a TypeError every time.
_QUERY, _ESCAPE, _FRAGMENT = b"?%#"


class _BodyTooLarge(Exception):
    pass


class RequestParser:
    """Sans-IO: ``feed(bytes)`` parses; finished requests wait in ``ready``, in order.

    With a :class:`FastRoute` (``fast``), a request it serves that arrives while
    ``ready`` is empty and ``hold`` is off is answered at once: its encoded answer joins
    ``answers`` (which the connection writes, before the answers to ``ready``). The
    connection sets ``hold`` while an earlier request is still being answered, and
    ``fast`` to None when nothing may be answered early (shutdown, over max_clients).

    ``continue_wanted`` turns true when the request being read sent ``Expect:
    100-continue`` and its body is allowed: the connection should send ``100 Continue``
    once every earlier answer is out. After a request that is ``too_large`` (or any
    request that does not keep the connection alive) ``done`` is set and further bytes
    are ignored."""

    def __init__(
        self,
        max_body: int,
        max_header_bytes: int = MAX_HEADER_BYTES,
        fast: FastRoute | None = None,
    ) -> None:
        self.max_body = max_body
        self.max_header_bytes = max_header_bytes
        self.ready: deque[Request] = deque()
        self.continue_wanted = False
        self.done = False
        self.fast = fast
        self.hold = False
        #: Encoded answers of fast-route requests, in order, for the connection to write.
        self.answers: list[bytes] = []
        # Headers that make a request "special": looked at once it is complete.
        self._watched = _SPECIAL if fast is None else _SPECIAL | fast.slow_headers
        self._parser = httptools.HttpRequestParser(self)
        self._started = False
        self._request: Request | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._url = b""
        self._header_bytes = 0
        self._special = False
        self._fast_key: bytes | None = None
        self._body: list[bytes] = []
        self._body_size = 0
        self._chunked = False
        self._expect = False
        self._connection = False
        #: A request's body is being received (the idle timer restarts on its bytes).
        self.in_body = False

    @property
    def mid_request(self) -> bool:
        return self._started

    def feed(self, data: bytes) -> None:
        """Parse ``data``; raises :class:`HttpProtocolError` on a request we refuse."""
        if self.done:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # An upgrade we do not do (h2c, websocket): the request is answered as plain
            # HTTP/1.1 and what follows it is read as HTTP/1.1 again.
            if self._started:
                raise HttpProtocolError(400, "upgrade with a body is not supported") from None
            offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
            self._parser = httptools.HttpRequestParser(self)
            self.feed(data[offset:])
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _BodyTooLarge):
                return
            if isinstance(cause, HttpProtocolError):
                raise cause from None
            raise HttpProtocolError(400, "invalid HTTP request") from None
        except httptools.HttpParserError as exc:
            reason = str(exc) or "invalid HTTP request"
            raise HttpProtocolError(400, f"invalid HTTP request: {reason}") from None

    # ---------------------------------------------------------- httptools callbacks
    # No on_message_begin (one callback less per request): the first piece of the URL
    # starts a request; the body state was reset when the previous request ended.
    def on_url(self, url: bytes) -> None:
        if not self._started:
            self._started = True
            self._headers = []
            self._url = url
            self._header_bytes = len(url)
            self._special = False
        else:
            self._url += url
            self._header_bytes += len(url)
        if self._header_bytes > self.max_header_bytes:
            raise HttpProtocolError(431, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        size = self._header_bytes = self._header_bytes + len(name) + len(value) + 4
        if size > self.max_header_bytes:
            raise HttpProtocolError(431, f"request headers over {self.max_header_bytes} bytes")
        name = name.lower()
        self._headers.append((name, value))
        if name in self._watched:
            self._special = True

    def _special_headers(self, request: Request) -> None:
        """Content-Length, Transfer-Encoding, Expect, Connection: looked at only when sent."""
        for name, value in request.headers:
            if name == b"content-length":
                if not value.strip().isdigit():
                    raise HttpProtocolError(400, "invalid Content-Length")
                request.declared_length = int(value)
            elif name == b"transfer-encoding":
                self._chunked = True
            elif name == b"expect" and value.lower() == b"100-continue":
                self._expect = True
            elif name == b"connection":
                self._connection = True

    def on_headers_complete(self) -> None:
        parser = self._parser
        method = parser.get_method()
        url = self._url
        # Origin form without query or escapes: the common case (no URL parsing).
        plain = _QUERY not in url and _ESCAPE not in url and _FRAGMENT not in url
        fast = self.fast
        if (
            fast is not None
            and plain
            and not self._special
            and not self.hold
            and not self.ready
            and method == b"GET"
            and url.startswith(fast.prefix)
            and url.isascii()
            and parser.should_keep_alive()
        ):
            # No body (no Content-Length / Transfer-Encoding): complete right after this.
            self._fast_key = url[len(fast.prefix) :]
            return
        request = self._request = Request(self._headers)
        if method != b"GET":
            request.method = method.decode("ascii", "replace")
        if plain and url.startswith(b"/"):
            raw = url
        else:
            try:
                # Any: httptools' stub types URL.path and .query as bytes, but either is
                # None when absent, which compiled code would refuse.
                parsed: Any = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                raise HttpProtocolError(400, "invalid request target") from None
            raw = parsed.path or b"/"
            request.query = parsed.query or b""
        try:
            path = raw.decode("ascii")
        except UnicodeDecodeError:
            raise HttpProtocolError(400, "invalid request target") from None
        if "%" in path:
            path = unquote(path)
        request.path = path
        if not parser.should_keep_alive():
            request.keep_alive = False
        if not self._special:
            return  # no body, no Expect, HTTP/1.1 defaults
        self._chunked = self._expect = self._connection = False
        self._special_headers(request)
        if self._connection and request.keep_alive and parser.get_http_version() == "1.0":
            request.http10 = True  # HTTP/1.0 with Connection: keep-alive
        declared = request.declared_length
        if declared is not None and declared > self.max_body:
            self._finish_too_large(request)
            raise _BodyTooLarge
        if declared or (declared is None and self._chunked):
            self.in_body = True
            if self._expect:
                self.continue_wanted = True

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.max_body:
            request = self._request
            assert request is not None
            self._finish_too_large(request)
            raise _BodyTooLarge
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._started = False
        key = self._fast_key
        if key is not None:
            self._fast_key = None
            fast = self.fast
            assert fast is not None
            try:
                response = fast.answer(key)
            except Exception:
                log.exception("internal error on GET %s", self._url.decode("ascii"))
                response = _internal()
            self.answers.append(encode_response(response, False, True))
            return
        request = self._request
        assert request is not None
        if self._body:
            request.body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            self._body = []
            self._body_size = 0
        self._request = None
        if self.in_body:
            self.in_body = False
            self.continue_wanted = False
        self.ready.append(request)

    def _finish_too_large(self, request: Request) -> None:
        request.too_large = True
        request.keep_alive = False
        self._request = None
        self._started = False
        self.in_body = False
        self._body = []
        self.continue_wanted = False
        self.done = True
        self.ready.append(request)


class HttpServerState:
    """What every connection of one listener shares: the handler, limits, the live set."""

    def __init__(
        self,
        handler: Handler,
        max_body: int,
        max_clients: int,
        idle_timeout: float = IDLE_TIMEOUT_SECS,
        fast: FastRoute | None = None,
    ) -> None:
        self.handler = handler
        self.max_body = max_body
        self.max_clients = max_clients
        self.idle_timeout = idle_timeout
        self.fast = fast
        self.connections: set[HttpConnection] = set()
        self.closing = False


class HttpConnection(asyncio.Protocol):
    """One client connection (see the module docstring)."""

    def __init__(self, state: HttpServerState) -> None:
        self.state = state
        self.parser = RequestParser(state.max_body, fast=state.fast)
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_active = self._loop.time()
        self._read_paused = False
        self._write_paused = False
        self._closing = False
        self._lingering = False
        self._close_after = False
        self._over_limit = False
        self._error: HttpProtocolError | None = None

    # ------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        state = self.state
        state.connections.add(self)
        if len(state.connections) > state.max_clients:
            self._over_limit = True
            self.parser.fast = None  # every request of this connection gets the 503
        if state.closing:
            self.parser.fast = None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._timer = self._loop.call_later(state.idle_timeout, self._idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self.transport = None

    def pause_writing(self) -> None:
        # The client does not read its answers: stop reading its requests.
        self._write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.transport is not None and not self._read_paused:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if self._closing or parser.done:
            return
        try:
            parser.feed(data)
        except HttpProtocolError as exc:
            log.warning("invalid HTTP request from %s: %s", self._peer(), exc.message)
            self._error = exc
            parser.done = True
        if parser.in_body:
            self._last_active = self._loop.time()
        if self._task is not None:  # parser.hold is on: no fast answers either
            if len(parser.ready) > MAX_PIPELINED and not self._read_paused:
                self._read_paused = True
                if self.transport is not None:
                    self.transport.pause_reading()
            return
        answers = parser.answers
        if parser.ready:
            if answers:
                out = answers.copy()  # the fast answers come first, in the same write
                answers.clear()
                self._run_ready(out)
            else:
                self._run_ready([])
        elif answers:
            self._write(answers[0] if len(answers) == 1 else b"".join(answers))
            answers.clear()
            self._last_active = self._loop.time()
            if self._error is not None or parser.continue_wanted:
                self._after_answers()
        elif self._error is not None or parser.continue_wanted:
            self._after_answers()

    def eof_received(self) -> bool | None:
        # A client that half-closes still gets the answers to what it sent.
        if self._lingering or (self._task is None and not self.parser.ready):
            self._close(force=True)
        else:
            self._close_after = True
        return True

    # ------------------------------------------------------------ requests
    def _run_ready(self, out: list[bytes]) -> None:
        """Answer the parsed requests in order; stop at one that must wait. Answers
        to pipelined requests go out in one write, after ``out`` (answers already made)."""
        ready = self.parser.ready
        handler = self.state.handler
        closing = self.state.closing
        while ready and not self._closing:
            request = ready.popleft()
            if self._over_limit:
                response: Response | Awaitable[Response] = error_response(
                    503, "too many clients (server.max_clients)", "TOO_MANY_CLIENTS"
                )
                request.keep_alive = False
            else:
                try:
                    response = handler(request)
                except Exception:
                    log.exception("internal error on %s %s", request.method, request.path)
                    response = _internal()
            if not isinstance(response, Response):
                if out:
                    self._write(b"".join(out))
                self.parser.hold = True  # later requests wait their turn in `ready`
                self._task = self._loop.create_task(self._await(request, response))
                return
            if closing:
                request.keep_alive = False
            data = encode_response(
                response, request.method == "HEAD", request.keep_alive, request.http10
            )
            if not request.keep_alive:
                out.append(data)
                self._write(b"".join(out))
                self._close()
                return
            if ready or out:
                out.append(data)
            else:
                self._write(data)  # the common case: one request in this read
        if out:
            self._write(b"".join(out))
        if (
            self._error is None
            and not self._close_after
            and not closing
            and not self._read_paused
            and not self.parser.continue_wanted
        ):
            self._last_active = self._loop.time()  # nothing else to do: _after_answers
            return
        self._after_answers()

    async def _await(self, request: Request, pending: Awaitable[Response]) -> None:
        try:
            response = await pending
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            response = _internal()
        self._task = None
        self.parser.hold = False
        if self.transport is None:
            return
        self._write(self._encode(request, response))
        if not request.keep_alive:
            self._close()
            return
        self._run_ready([])

    def _after_answers(self) -> None:
        """Every parsed request is answered: an error owed, shutdown, 100-continue."""
        self._last_active = self._loop.time()
        if self.transport is None or self._closing:
            return
        if self._error is not None:
            error = self._error
            response = error_response(error.status, error.message, "BAD_REQUEST")
            self._write(encode_response(response, head=False, keep_alive=False))
            self._close()
            return
        if self.state.closing or self._close_after:
            self._close()
            return
        if self._read_paused:
            self._read_paused = False
            if not self._write_paused:
                self.transport.resume_reading()
        if self.parser.continue_wanted:
            self.parser.continue_wanted = False
            self._write(_CONTINUE)

    def _encode(self, request: Request, response: Response) -> bytes:
        if self.state.closing:
            request.keep_alive = False
        return encode_response(
            response,
            head=request.method == "HEAD",
            keep_alive=request.keep_alive,
            http10=request.http10,
        )

    # ------------------------------------------------------------ plumbing
    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _close(self, force: bool = False) -> None:
        self._closing = True
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not force and not self._lingering and self.parser.done:
            # Refused before the end of its body: half-close and drain what the client
            # still sends, so that it reads our answer rather than a reset.
            with contextlib.suppress(OSError, RuntimeError, NotImplementedError):
                if transport.get_extra_info("sslcontext") is None and transport.can_write_eof():
                    transport.write_eof()
                    self._lingering = True
                    if self._timer is not None:
                        self._timer.cancel()
                    self._timer = self._loop.call_later(2.0, transport.close)
                    return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transport.close()

    def _idle(self) -> None:
        """The idle timer: close a connection with nothing to do for ``idle_timeout``."""
        self._timer = None
        if self.transport is None:
            return
        timeout = self.state.idle_timeout
        left = self._last_active + timeout - self._loop.time()
        if self._task is not None or left > 0:
            self._timer = self._loop.call_later(max(left, timeout / 10), self._idle)
            return
        self.parser.done = True
        self._closing = True
        self.transport.close()

    def _peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"

    def shutdown(self) -> None:
        """Server shutdown: close now when idle, else after the running answer."""
        self.parser.fast = None  # what is still read is answered with connection: close
        if self._task is None and not self.parser.ready:
            self._close(force=True)

    @property
    def busy(self) -> bool:
        return self._task is not None


def _internal() -> Response:
    return error_response(500, "internal server error; see the server log", "INTERNAL")


class HttpServer:
    """The listener and its connections; ``close()`` shuts down gracefully."""

    def __init__(self, server: asyncio.base_events.Server, state: HttpServerState) -> None:
        self.server = server
        self.state = state

    async def close(self, grace: float = SHUTDOWN_GRACE_SECS) -> None:
        self.server.close()
        state = self.state
        state.closing = True
        for conn in list(state.connections):
            conn.shutdown()
        deadline = time.monotonic() + grace
        while state.connections and time.monotonic() < deadline:
            if not any(c.busy for c in state.connections):
                break
            await asyncio.sleep(0.01)
        for conn in list(state.connections):
            if conn.transport is not None:
                conn.transport.close()  # connection_lost cancels what still runs
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.server.wait_closed(), 1.0)


async def start_http_server(
    handler: Handler,
    sock: socket.socket,
    *,
    ssl_context: ssl.SSLContext | None,
    max_body: int,
    max_clients: int,
    idle_timeout: float = IDLE_TIMEOUT_SECS,
    fast: FastRoute | None = None,
) -> HttpServer:
    """Serve ``handler`` on the bound socket ``sock`` (TLS when ``ssl_context``), and
    ``fast`` from the parser (see :class:`FastRoute`)."""
    state = HttpServerState(handler, max_body, max_clients, idle_timeout, fast)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpConnection(state), sock=sock, ssl=ssl_context, backlog=2048
    )
    return HttpServer(server, state)
