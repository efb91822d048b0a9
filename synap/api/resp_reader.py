"""A sans-IO Redis-protocol request reader: bytes in, whole requests out.

:class:`RequestReader` owns the per-connection hiredis parser, inline (telnet-style)
commands and request-boundary tracking, in the style of h11's ``Connection``: the
asyncio ``Protocol`` (:mod:`synap.api.resp`) only moves bytes in and replies out.
:meth:`RequestReader.feed` returns the requests completed by a read, or raises
:class:`RequestError` carrying the exact error Redis sends (and the whole requests that
came before the offending bytes, which are answered first).

hiredis does not say where a request ends; :mod:`synap.api.resp_framing` does, for the
reads that end inside one (inline commands are recognised only between requests, and a
declared bulk length over the limit is refused at once, as in Redis), and for reads that
mix multibulk requests and inline commands (each part goes its own way).
"""

from __future__ import annotations

import hiredis

from synap.api import resp_codec as R
from synap.api.resp_framing import (
    MAX_LINE_BYTES,
    FramingError,
    RequestFraming,
    drop_empty_requests,
    ends_with_request,
    may_declare_many_args,
    may_need_framing,
    split_inline,
)

# Inline (telnet-style) commands are limited like Redis's 64 KiB inline buffer.
MAX_INLINE_BYTES = MAX_LINE_BYTES

# hiredis's parse errors, reworded as Redis words them ("Protocol error: ..." follows ERR).
_HIREDIS_ERRORS = {
    "Bad multi-bulk length": "invalid multibulk length",
    "Multi-bulk length out of range": "invalid multibulk length",
    "Bad bulk string length": "invalid bulk length",
    "Bulk string length out of range": "invalid bulk length",
}
# What Redis names a request element that is not a bulk string ("expected '$', got ':'").
_ELEMENT_PREFIX = {int: ":", list: "*", dict: "%", float: ",", bool: "#", str: "+"}


class RequestError(Exception):
    """The stream breaks the protocol: answer ``str(self)`` (Redis's full error text,
    ``ERR Protocol error: ...``) and close.  ``requests``: the whole requests before the
    offending bytes, to be answered first, as Redis does."""

    def __init__(self, message: str, requests: list[list[bytes]]) -> None:
        super().__init__(message)
        self.requests = requests


class RequestReader:
    """Turns a client's byte stream into whole requests (lists of bulk-string
    arguments).  No I/O: feed it what the socket read."""

    def __init__(self, max_bulk_len: int, max_request_bytes: int) -> None:
        self._max_bulk = max_bulk_len
        self._max_request = max_request_bytes
        self._hiredis = hiredis.Reader()
        self._inline_buf = b""  # an inline command line whose newline has not arrived
        # Boundary tracking: while the bytes hiredis holds end inside a request, _framing
        # follows the stream; otherwise it is None and _chunk is the part being parsed
        # (it began at a boundary).
        self._framing: RequestFraming | None = None
        self._chunk = b""

    @property
    def idle(self) -> bool:
        """Everything fed so far ends at a request boundary and nothing is buffered: the
        next read starts a request (what :func:`synap.api.resp_plain.run` needs)."""
        return self._framing is None and not self._inline_buf

    def feed(self, data: bytes) -> list[list[bytes]]:
        """The requests ``data`` completes, in order.  Raises :class:`RequestError`
        where Redis would answer a protocol error and close."""
        requests: list[list[bytes]] = []
        if data:
            data = self._feed_part(data, requests)
            # A read where inline commands follow multibulk requests (Redis accepts that)
            # is parsed in parts, each starting at a request boundary and at least a byte.
            for _ in range(len(data)):
                if not data:
                    break
                data = self._feed_part(data, requests)
        return requests

    def _feed_part(self, data: bytes, out: list[list[bytes]]) -> bytes:
        """Parse ``data`` up to the first inline command that follows multibulk
        requests; return the rest."""
        rest = b""
        framing = self._framing
        if framing is None:
            # Between requests: a line that does not start with "*" is an inline command.
            if self._inline_buf or data[:1] != b"*":
                data = self._convert_inline(data, out)
                if not data:
                    return b""
            if not may_need_framing(data):  # the common case: one scan
                self._chunk = data
            else:
                if b"*-" in data:  # "*-10\r\n": an empty request, as in Redis
                    data = drop_empty_requests(data, self._max_bulk)
                    if not data:
                        return b""
                if may_declare_many_args(data):
                    # hiredis allocates the argument list as soon as it reads
                    # "*<count>": let RequestFraming check the counts before hiredis.
                    framing = self._framing = RequestFraming(self._max_bulk)
                else:
                    self._chunk = data
        if framing is not None:
            try:
                stop = framing.feed(data)
            except FramingError as exc:
                if exc.offset:  # the whole requests before the bad one are answered
                    self._hiredis.feed(data[: exc.offset])
                    self._parse(out, track=False)
                raise RequestError(f"ERR Protocol error: {exc}", out) from None
            if stop is not None:
                data, rest = data[:stop], data[stop:]
                if not data:
                    self._framing = None
                    return rest
        self._hiredis.feed(data)
        after = self._parse(out)
        return after if after is not None else rest

    def _parse(self, out: list[list[bytes]], track: bool = True) -> bytes | None:
        """Take the whole requests hiredis holds; return the rest of the part when an
        inline command turns out to follow them (hiredis then starts afresh)."""
        reader = self._hiredis
        first = len(out)
        while True:
            try:
                request = reader.gets()
            except hiredis.ProtocolError as exc:
                text = str(exc).removeprefix("Protocol error, ")
                message = _HIREDIS_ERRORS.get(text, text)
                if self._framing is None:
                    # The part began at a boundary.  If an inline command follows its
                    # multibulk requests, go on from there with a fresh parser.
                    framing = RequestFraming(self._max_bulk)
                    try:
                        stop = framing.feed(self._chunk)
                    except FramingError as error:
                        message = str(error)
                    else:
                        if stop is not None:
                            self._hiredis = hiredis.Reader()
                            rest, self._chunk = self._chunk[stop:], b""
                            return rest
                raise RequestError(f"ERR Protocol error: {message}", out) from None
            except MemoryError:
                # hiredis allocates a "*<count>" array before its elements arrive.
                raise RequestError("ERR Protocol error: invalid multibulk length", out) from None
            if request is False:
                break
            if type(request) is not list or not request:
                continue  # "*0\r\n" and the like: empty requests, skipped as in Redis
            for arg in request:
                if type(arg) is not bytes:
                    if arg is None:
                        message = "invalid bulk length"
                    else:
                        message = f"expected '$', got '{_ELEMENT_PREFIX.get(type(arg), '?')}'"
                    raise RequestError(f"ERR Protocol error: {message}", out)
            out.append(request)
        if reader.len() > self._max_request:
            raise RequestError("ERR Protocol error: request exceeds the maximum allowed size", out)
        if track:
            self._track_boundary(out, first)
        return None

    def _track_boundary(self, out: list[list[bytes]], first: int) -> None:
        """After a part is parsed: does what hiredis holds end between requests?

        Usually the part (which began at a boundary) ended right after its last request:
        then hiredis holds no bytes and the part ends with that request's canonical
        encoding (:func:`~synap.api.resp_framing.ends_with_request`; clients encode
        requests canonically).  Otherwise the part is followed from its start by a
        :class:`RequestFraming`, which is then fed every read until the unfinished request
        is complete; it also refuses an over-long declared bulk length at once instead of
        waiting for the bytes.  (Adding up the parsed requests' canonical lengths instead
        is correct only with a scan for ``+`` and ``(`` elements, which hiredis also reads
        as bytes and are shorter; in CPython that costs as much as the comparison.)"""
        framing = self._framing
        if framing is None:
            chunk, self._chunk = self._chunk, b""
            if len(out) > first and not self._hiredis.has_data():
                if ends_with_request(chunk, out[-1]):
                    return
            framing = RequestFraming(self._max_bulk)
            try:
                framing.feed(chunk)
            except FramingError as exc:
                raise RequestError(f"ERR Protocol error: {exc}", out) from None
        self._framing = None if framing.at_boundary else framing

    def _convert_inline(self, data: bytes, out: list[list[bytes]]) -> bytes:
        """Turn telnet-style lines (``PING\\r\\n``) into RESP arrays for hiredis."""
        buf = self._inline_buf + data
        parts_out = []
        while buf and buf[:1] != b"*":
            line, sep, rest = buf.partition(b"\n")
            if not sep:
                if len(buf) > MAX_INLINE_BYTES:
                    raise RequestError("ERR Protocol error: too big inline request", out)
                break
            buf = rest
            try:
                parts = split_inline(line)
            except FramingError as exc:
                raise RequestError(f"ERR Protocol error: {exc}", out) from None
            if parts:
                parts_out.append(b"*%d\r\n" % len(parts) + b"".join(R.bulk(p) for p in parts))
        if buf[:1] == b"*":
            parts_out.append(buf)
            buf = b""
        self._inline_buf = buf
        return b"".join(parts_out)
