"""Redis-protocol request framing: where one request ends and the next begins.

hiredis parses requests in C, fast, but it cannot tell the server what it needs to know:

* whether the bytes received so far end at a request boundary.  Only there may a line
  that does not start with ``*`` be taken for an inline (telnet-style) command; in the
  middle of a request it is the next argument.  hiredis's ``has_data()`` is false both at
  a boundary and between two arguments of an unfinished request.
* where, in a read, an inline command follows multibulk requests (Redis accepts such
  reads; hiredis fails on the first byte of the inline command).
* the declared length of the bulk string it is waiting for.  A client that announces
  ``$4294967296`` must be refused at once, as Redis refuses it, not waited for; and the
  count of a ``*<count>`` header, for which hiredis allocates a list at once.

:class:`RequestFraming` follows a request stream the way Redis's
``processMultibulkBuffer`` does, without building the requests: it reads the
``*<count>`` and ``$<length>`` lines and skips payloads by arithmetic, so following a
100 MB value costs one step per read.  The request reader runs it only when a read does not
end cleanly after its last request (or may declare a huge count); the usual reads never
pay for it (see :class:`synap.api.resp_reader.RequestReader`).

:func:`split_inline` splits an inline command line as Redis's ``sdssplitargs`` does.
"""

from __future__ import annotations

import re

# Redis's proto-max-bulk-len default: the longest bulk string a request may declare.
PROTO_MAX_BULK_LEN = 512 * 1024 * 1024
# Redis: PROTO_INLINE_MAX_SIZE.  Inline commands and the digits of a "*<count>" or
# "$<length>" line must fit; a longer line without a newline is refused.
MAX_LINE_BYTES = 64 * 1024
# Arguments in one request.  Redis 7 allows up to INT_MAX, but hiredis allocates the
# argument list as soon as it reads the count (8 bytes per argument), so we keep the
# 1M limit Redis itself had before 4.0; an MSET of 500k pairs still fits.
MAX_ARGS = 1024 * 1024
_MAX_ARGS_DIGITS = len(str(MAX_ARGS))


class FramingError(Exception):
    """The stream breaks the protocol; the message is Redis's wording, without
    the ``ERR Protocol error:`` prefix.  ``offset``: where, in the bytes just fed, the
    offending request began (0 if in an earlier read); the requests before it are whole."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


def _parse_length(digits: bytes) -> int | None:
    """Redis's ``string2ll``: optional minus, no plus, no spaces, no leading zeros."""
    body = digits[1:] if digits[:1] == b"-" else digits
    if not body.isdigit() or (body[:1] == b"0" and len(digits) > 1):
        return None
    return int(digits)


class RequestFraming:
    """Follows request boundaries in a RESP request stream (sans-IO).

    Feed it the bytes hiredis is to be fed, starting at a request boundary.  :meth:`feed`
    raises :class:`FramingError` where Redis would close the connection, and stops where an
    inline command begins (hiredis must not see it); :attr:`at_boundary` says whether
    everything fed so far ends between two requests."""

    def __init__(self, max_bulk_len: int = PROTO_MAX_BULK_LEN) -> None:
        self.max_bulk_len = max_bulk_len
        self._args_left = 0  # bulk strings still to come in the current request
        self._skip = 0  # payload bytes (and their CRLF) still to come
        self._line = b""  # a "*<count>" or "$<length>" line whose newline has not arrived
        # (start, end) in the bytes fed of "*<count>" lines with a count <= 0: empty
        # requests, which Redis skips (hiredis refuses a count below -1).
        self.empty_requests: list[tuple[int, int]] = []

    @property
    def at_boundary(self) -> bool:
        return self._args_left == 0 and self._skip == 0 and not self._line

    def feed(self, data: bytes) -> int | None:
        """Follow ``data``; return None, or the offset where an inline command starts
        (a request boundary; the bytes from there on were not looked at)."""
        pos = 0
        size = len(data)
        begin = 0  # where the current request began in `data`
        while pos < size:
            if self._skip:
                step = min(self._skip, size - pos)
                self._skip -= step
                pos += step
                continue
            if self._args_left == 0 and not self._line:
                # Between requests: "*" starts a multibulk request, anything else (even an
                # empty line) an inline command, as in Redis's processInputBuffer.
                if data[pos] != 0x2A:
                    return pos
                begin = pos
            end = data.find(b"\n", pos)
            if end < 0:
                self._line += data[pos:]
                if len(self._line) > MAX_LINE_BYTES:
                    raise FramingError(self._too_long(), begin)
                return None
            continued = bool(self._line)
            line = self._line + data[pos:end] if self._line else data[pos:end]
            self._line = b""
            pos = end + 1
            if len(line) > MAX_LINE_BYTES:
                raise FramingError(self._too_long(), begin)
            count_line = self._args_left == 0
            try:
                self._header(line[:-1] if line[-1:] == b"\r" else line)
            except FramingError as exc:
                exc.offset = begin
                raise
            if count_line and self._args_left == 0 and not continued:
                self.empty_requests.append((begin, pos))
        return None

    def _header(self, line: bytes) -> None:
        if self._args_left == 0:  # "*<count>" (feed stops before inline commands)
            count = _parse_length(line[1:])
            if count is None or count > MAX_ARGS:
                raise FramingError("invalid multibulk length")
            self._args_left = max(count, 0)
            return
        if line[:1] != b"$":
            got = line[:1].decode("latin-1") or "\\n"
            raise FramingError(f"expected '$', got '{got}'")
        length = _parse_length(line[1:])
        if length is None or length < 0 or length > self.max_bulk_len:
            raise FramingError("invalid bulk length")
        self._args_left -= 1
        self._skip = length + 2

    def _too_long(self) -> str:
        return "too big bulk count string" if self._args_left else "too big mbulk count string"


def drop_empty_requests(data: bytes, max_bulk_len: int) -> bytes:
    """``data`` (starting at a request boundary) without its ``*<count>`` requests of a
    count <= 0, which Redis treats as empty requests (``*-10\r\n`` included)."""
    framing = RequestFraming(max_bulk_len)
    try:
        framing.feed(data)
    except FramingError:
        pass  # the spans found before the bad request are still right
    if not framing.empty_requests:
        return data
    parts = []
    last = 0
    for start, end in framing.empty_requests:
        parts.append(data[last:start])
        last = end
    parts.append(data[last:])
    return b"".join(parts)


def may_declare_many_args(data: bytes) -> bool:
    """Whether ``data`` may hold a ``*<count>`` of MAX_ARGS' magnitude (a "*" followed by
    as many digits, or by digits up to the end of the read).  A quick look before hiredis
    allocates a list for the count; a hit (also from a value that happens to contain such
    bytes) only means "check properly".  One regex scan: this runs on every read."""
    return _MANY_ARGS.search(data) is not None


_MANY_ARGS = re.compile(
    rb"\*(?:[0-9]{%d}|[0-9]{1,%d}\Z)" % (_MAX_ARGS_DIGITS, _MAX_ARGS_DIGITS - 1)
)


def may_need_framing(data: bytes) -> bool:
    """Whether ``data`` may hold a negative ``*`` count (an empty request) or one that
    :func:`may_declare_many_args` looks for: one regex scan for both, on every read
    (``b"*-" in data`` alone costs more, "*" being in every request)."""
    return _SPECIAL_COUNTS.search(data) is not None


_SPECIAL_COUNTS = re.compile(
    rb"\*(?:-|[0-9]{%d}|[0-9]{1,%d}\Z)" % (_MAX_ARGS_DIGITS, _MAX_ARGS_DIGITS - 1)
)


def ends_with_request(data: bytes, request: list[bytes]) -> bool:
    """Whether ``data`` ends with the canonical RESP encoding of ``request``.

    Used to confirm cheaply that a read ended exactly after its last complete request
    (clients encode requests canonically).  False when unsure; the caller then follows
    the read with :class:`RequestFraming`."""
    for arg in request:
        if type(arg) is not bytes:
            return False
    if sum(map(len, request)) <= 4096:
        # The common case (this runs after every read): build the encoding, compare once.
        tail = b"".join([b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in request])
        return data.endswith(b"*%d\r\n%s" % (len(request), tail))
    view = memoryview(data)
    end = len(data)
    for arg in reversed(request):
        if type(arg) is not bytes:
            return False
        for piece in (b"\r\n", arg, b"$%d\r\n" % len(arg)):
            start = end - len(piece)
            if start < 0 or view[start:end] != piece:
                return False
            end = start
    header = b"*%d\r\n" % len(request)
    start = end - len(header)
    return start >= 0 and view[start:end] == header


# sdssplitargs: hex escapes in double quotes, the usual backslash escapes.
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}
_HEX = frozenset(b"0123456789abcdefABCDEF")
_SPACE = frozenset(b" \t\r\n\v\f")


def split_inline(line: bytes) -> list[bytes]:
    """Split an inline command line into arguments as Redis does (``sdssplitargs``):
    words separated by spaces; "double quotes" with backslash and ``\\xHH`` escapes;
    'single quotes' with only ``\\'``.  A closing quote must be followed by a space."""
    if b'"' not in line and b"'" not in line:
        return line.split()
    args: list[bytes] = []
    i = 0
    n = len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        quote = 0  # 0, or the opening quote character
        while True:
            if i >= n:
                if quote:
                    raise FramingError("unbalanced quotes in request")
                break
            ch = line[i]
            if quote == ord('"'):
                if (
                    ch == ord("\\")
                    and i + 3 < n
                    and line[i + 1] == ord("x")
                    and line[i + 2] in _HEX
                    and line[i + 3] in _HEX
                ):
                    current.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif ch == ord("\\") and i + 1 < n:
                    i += 1
                    current += _ESCAPES.get(line[i], bytes([line[i]]))
                elif ch == quote:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        raise FramingError("unbalanced quotes in request")
                    i += 1
                    break
                else:
                    current.append(ch)
            elif quote:
                if ch == ord("\\") and i + 1 < n and line[i + 1] == quote:
                    i += 1
                    current.append(quote)
                elif ch == quote:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        raise FramingError("unbalanced quotes in request")
                    i += 1
                    break
                else:
                    current.append(ch)
            elif ch in _SPACE:
                break
            elif ch in (ord('"'), ord("'")):
                quote = ch
            else:
                current.append(ch)
            i += 1
        args.append(bytes(current))
