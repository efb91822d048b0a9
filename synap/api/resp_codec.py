"""RESP2/RESP3 reply encoding (requests are parsed by hiredis in :mod:`synap.api.resp`)."""

from __future__ import annotations

from typing import Any

OK = b"+OK\r\n"
PONG = b"+PONG\r\n"
NULL2 = b"$-1\r\n"
NULL3 = b"_\r\n"
NULL_ARRAY2 = b"*-1\r\n"
ZERO = b":0\r\n"
ONE = b":1\r\n"
EMPTY_ARRAY = b"*0\r\n"
QUEUED = b"+QUEUED\r\n"


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def integer(value: int) -> bytes:
    if value == 0:
        return ZERO
    if value == 1:
        return ONE
    return b":%d\r\n" % value


def simple(text: str) -> bytes:
    return b"+" + text.encode() + b"\r\n"


def error(message: str) -> bytes:
    return b"-" + message.replace("\r", " ").replace("\n", " ").encode() + b"\r\n"


def null(resp3: bool) -> bytes:
    return NULL3 if resp3 else NULL2


def bulk_or_null(value: bytes | None, resp3: bool) -> bytes:
    if value is None:
        return NULL3 if resp3 else NULL2
    return b"$%d\r\n%s\r\n" % (len(value), value)


def array(items: list[bytes], resp3: bool = False) -> bytes:
    """Array of already-encoded replies."""
    return b"*%d\r\n" % len(items) + b"".join(items)


def bulk_array(values: list[bytes | None], resp3: bool = False) -> bytes:
    parts = [b"*%d\r\n" % len(values)]
    for v in values:
        parts.append(bulk_or_null(v, resp3))
    return b"".join(parts)


def encode(value: Any, resp3: bool = False) -> bytes:
    """Generic encoder for small structured replies (INFO, HELLO, CONFIG, ROLE)."""
    if value is None:
        return null(resp3)
    if isinstance(value, bool):
        if resp3:
            return b"#t\r\n" if value else b"#f\r\n"
        return integer(int(value))
    if isinstance(value, int):
        return integer(value)
    if isinstance(value, float):
        if resp3:
            return b",%r\r\n" % value
        return bulk(repr(value).encode())
    if isinstance(value, bytes):
        return bulk(value)
    if isinstance(value, str):
        return bulk(value.encode())
    if isinstance(value, dict):
        if resp3:
            head = b"%%%d\r\n" % len(value)
        else:
            head = b"*%d\r\n" % (len(value) * 2)
        return head + b"".join(encode(k, resp3) + encode(v, resp3) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return b"*%d\r\n" % len(value) + b"".join(encode(v, resp3) for v in value)
    raise TypeError(f"cannot encode {type(value).__name__} as RESP")
