"""SynapRPC (HiveLLM Thunder wire v1) without I/O: frames in, requests out; RESP replies in,
response frames out.

The wire itself is the published codec (``hivellm-thunder``'s ``thunder_rpc.wire``): a frame
is a u32 little-endian length and a MessagePack body; a request is ``[id, command, args]``
with externally tagged argument values, a response ``[id, {"Ok": value}]`` or
``[id, {"Err": "PREFIX message"}]``.  This module adds what Synap needs around it:

* :class:`RpcConnectionState` buffers a connection's bytes and turns them into
  :class:`~thunder_rpc.value.Request` objects or :class:`FrameError` events.  A frame whose
  request id can be read but whose body is not a valid request (wrong shape, unknown tag)
  gets an ``Err`` for that id and the connection goes on; a frame without a usable id
  (over-limit length prefix, malformed MessagePack) ends the connection, since nothing can
  be addressed to the client.
* :func:`request_argv` turns a request into the byte-string argument list the RESP command
  handlers take (``[b"SET", b"k", b"v"]``), so both front ends share one command table.
* :func:`reply_value` turns a RESP reply (what those handlers return) into the Thunder
  value the SDK's ``map_response`` expects: bulk strings become ``Bytes`` (the SDK decodes
  UTF-8), simple strings ``Str``, integers ``Int``, doubles ``Float``, nulls ``Null``,
  arrays ``Array``, RESP3 maps ``Map`` with ``Str`` keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack
from thunder_rpc.errors import DecodeError, FrameTooLargeError
from thunder_rpc.value import Request, Response, Value
from thunder_rpc.wire import decode_request, encode_frame

_U32_MAX = 2**32 - 1

# What an HTTP client sends first ("GET /health HTTP/1.1"): answered with a plain HTTP 400
# that names this port, instead of a frame-size complaint.
HTTP_METHODS = (b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN")
HTTP_MISDIRECTED = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s"
)


@dataclass(frozen=True)
class FrameError:
    """A frame that is not a usable request.  ``request_id`` is the id to answer with an
    ``Err`` (the connection goes on); ``None`` means the connection must close."""

    message: str
    request_id: int | None = None
    http: bool = False  # the peer spoke HTTP to this port


Event = Request | FrameError


class RpcConnectionState:
    """One connection's input side: feed it bytes, get requests and framing errors.

    ``max_frame_bytes`` is checked against the length prefix before the body is buffered
    (the codec's own rule), so a hostile prefix cannot make the server allocate.  After a
    fatal :class:`FrameError` the state stays closed and ignores further input.
    """

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.closed = False
        self._buf = bytearray()
        self._first = True

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Event]:
        if self.closed:
            return []
        buf = self._buf
        buf += data
        if self._first and len(buf) >= 4:
            self._first = False
            if bytes(buf[:4]) in HTTP_METHODS:
                return [self._fatal("this is the SynapRPC port, not HTTP", http=True)]
        events: list[Event] = []
        pos = 0
        size = len(buf)
        view = memoryview(buf)
        try:
            while size - pos >= 4:
                length = int.from_bytes(view[pos : pos + 4], "little")
                if length > self.max_frame_bytes:
                    events.append(
                        self._fatal(
                            f"frame body {length} bytes exceeds limit {self.max_frame_bytes}"
                        )
                    )
                    return events
                end = pos + 4 + length
                if end > size:
                    break
                frame = bytes(view[pos:end])
                pos = end
                events.append(self._decode(frame))
                if self.closed:
                    return events
        finally:
            view.release()
        if pos:
            del buf[:pos]
        return events

    def _decode(self, frame: bytes) -> Event:
        try:
            decoded = decode_request(frame, max_frame_bytes=self.max_frame_bytes)
        except FrameTooLargeError as exc:  # pragma: no cover - checked in feed already
            return self._fatal(str(exc))
        except Exception as exc:  # DecodeError, or anything else: never a crash
            request_id = _salvage_id(frame[4:])
            if request_id is None:
                return self._fatal(str(exc) if isinstance(exc, DecodeError) else repr(exc))
            return FrameError(f"ERR Protocol error: {exc}", request_id)
        assert decoded is not None  # feed() passes whole frames only
        return decoded[0]

    def _fatal(self, message: str, http: bool = False) -> FrameError:
        self.closed = True
        self._buf = bytearray()
        return FrameError(message, None, http)


def _salvage_id(body: bytes) -> int | None:
    """The request id of a body the codec refused, if it has one to answer to."""
    try:
        obj = msgpack.unpackb(body, raw=False)
    except Exception:
        return None
    raw = None
    if isinstance(obj, list) and obj:
        raw = obj[0]
    elif isinstance(obj, dict):
        raw = obj.get("id")
    if type(raw) is int and 0 <= raw <= _U32_MAX:
        return raw
    return None


# ------------------------------------------------------------------ requests


class ArgumentError(Exception):
    """A request argument that has no byte-string form (Null, Array, Map)."""


def request_argv(request: Request) -> list[bytes]:
    """``[command, *args]`` as the RESP handlers take them.

    ``Str`` is sent as UTF-8, ``Bytes`` as is, ``Int`` in decimal, ``Float`` in Python's
    shortest round-trip form, ``Bool`` as ``1``/``0``.  ``Null``, ``Array`` and ``Map``
    raise :class:`ArgumentError` (the client gets an ``Err``)."""
    argv = [request.command.encode()]
    for index, arg in enumerate(request.args):
        kind = arg.kind
        if kind == "str":
            argv.append(arg.value.encode())
        elif kind == "bytes":
            argv.append(arg.value)
        elif kind == "int":
            argv.append(b"%d" % arg.value)
        elif kind == "float":
            argv.append(repr(arg.value).encode())
        elif kind == "bool":
            argv.append(b"1" if arg.value else b"0")
        else:
            raise ArgumentError(
                f"ERR argument {index} of '{request.command}' is {kind.capitalize()}; "
                "SynapRPC arguments must be Str, Bytes, Int, Float or Bool"
            )
    return argv


# ------------------------------------------------------------------ replies

_OK = Value("str", "OK")
_NULL = Value("null", None)


class RespReplyError(Exception):
    """A RESP error reply (``-ERR ...``); the message is what the ``Err`` carries."""


def reply_value(reply: bytes) -> Value:
    """The Thunder value for one complete RESP2/RESP3 reply; raises
    :class:`RespReplyError` for an error reply."""
    if reply == b"+OK\r\n":
        return _OK
    first = reply[:1]
    if first == b"-":
        raise RespReplyError(reply[1:-2].decode(errors="replace"))
    if first == b":":
        return Value("int", int(reply[1:-2]))
    value, end = _parse(reply, 0)
    if end != len(reply):
        raise ValueError(f"{len(reply) - end} bytes after a RESP reply")
    return value


def _line(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.index(b"\r\n", pos)
    return data[pos:end], end + 2


def _parse(data: bytes, pos: int) -> tuple[Value, int]:
    kind = data[pos : pos + 1]
    head, pos = _line(data, pos + 1)
    if kind == b"$" or kind == b"=":
        n = int(head)
        if n < 0:
            return _NULL, pos
        body = data[pos : pos + n]
        if kind == b"=":  # verbatim string: "txt:" then the text
            return Value("str", body[4:].decode(errors="replace")), pos + n + 2
        return Value("bytes", body), pos + n + 2
    if kind == b"+":
        return Value("str", head.decode(errors="replace")), pos
    if kind == b":":
        return Value("int", int(head)), pos
    if kind == b"-":  # an error inside an array (EXEC): its text
        return Value("str", head.decode(errors="replace")), pos
    if kind in (b"*", b"~", b">"):
        n = int(head)
        if n < 0:
            return _NULL, pos
        items = []
        for _ in range(n):
            item, pos = _parse(data, pos)
            items.append(item)
        return Value("array", tuple(items)), pos
    if kind == b"%":
        pairs = []
        for _ in range(int(head)):
            key, pos = _parse(data, pos)
            item, pos = _parse(data, pos)
            pairs.append((_map_key(key), item))
        return Value("map", tuple(pairs)), pos
    if kind == b"_":
        return _NULL, pos
    if kind == b"#":
        return Value("bool", head == b"t"), pos
    if kind == b",":
        return Value("float", float(head)), pos
    if kind == b"(":  # big number: no i64 form
        return Value("str", head.decode()), pos
    if kind == b"|":  # attributes: skip them, the reply follows
        for _ in range(2 * int(head)):
            _, pos = _parse(data, pos)
        return _parse(data, pos)
    raise ValueError(f"unknown RESP type {kind!r}")


def _map_key(key: Value) -> Value:
    """Map keys as ``Str`` where they are text (what ``Value.map_get`` looks up)."""
    if key.kind == "bytes":
        try:
            return Value("str", key.value.decode())
        except UnicodeDecodeError:
            return key
    return key


# ------------------------------------------------------------------ responses


def ok_frame(request_id: int, value: Value) -> bytes:
    return encode_frame(Response(id=request_id, ok=value))


def err_frame(request_id: int, message: str) -> bytes:
    return encode_frame(Response(id=request_id, err=message))


def response_frame(request_id: int, reply: bytes) -> bytes:
    """The response frame for a RESP reply: ``Ok`` with its value, or ``Err``."""
    try:
        return ok_frame(request_id, reply_value(reply))
    except RespReplyError as exc:
        return err_frame(request_id, str(exc))


def http_misdirected(message: str) -> bytes:
    body = message.encode()
    return HTTP_MISDIRECTED % (len(body), body)
