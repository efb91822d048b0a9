"""How JSON values map to stored bytes and back, shared by the REST and command endpoints.

A value reads back over HTTP as the JSON value it was written as, and RESP sees bytes:

* A JSON string is stored as its UTF-8 bytes, *plain* kind: ``{"value": "hello"}`` and
  ``SET k hello`` store the same thing.  ``{"value": "<base64>", "encoding": "base64"}``
  stores the decoded bytes, plain kind too.
* Any other JSON value (number, object, array, boolean, null) is stored as its compact
  JSON text, with the key marked as *json kind* (:attr:`Keyspace.json_keys`).  Integers
  keep every digit, beyond 64 bits too (orjson, which does the common case, turns those
  into floats, so a body holding a long run of digits is parsed by the stdlib instead).
* Reads return a json-kind value parsed, and a plain value as a string: its UTF-8 text,
  or its base64 with ``"encoding": "base64"`` beside it when it is not UTF-8.  Nothing is
  guessed from the content: ``"1"``, ``"true"`` or ``"{}"`` written as strings (or over
  RESP) read back as those strings.

RESP ignores the kind: ``GET`` returns the stored bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

import orjson

from synap.commands.errors import CommandError

# orjson writes at most 254 levels of nesting (it parses up to 1024); json-kind values
# are held to that, so that any reply holding one can be written.
MAX_JSON_DEPTH = 254
# orjson reads integers in [-2**63, 2**64) exactly and longer ones as floats.  Every
# integer outside that range has at least 19 digits; a body without such a run of digits
# cannot hold one (a long fraction or a string of digits only costs a second parse).
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
ENCODINGS = ("base64",)


class BadValue(CommandError):
    """A value that cannot be stored or sent as asked (HTTP 400)."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(raw: bytes) -> Any:
    """Parse JSON text exactly.  Raises ``orjson.JSONDecodeError`` (a ValueError) on
    invalid JSON, with orjson's message."""
    value = orjson.loads(raw)  # validates: strict JSON, no lone surrogates, no infinity
    if _LONG_DIGITS.search(raw) is not None:
        try:
            value = json.loads(raw, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:  # too deep, or too many digits
            raise orjson.JSONDecodeError(f"cannot parse exactly: {exc}", "", 0) from None
    return value


def dumps(value: Any) -> bytes:
    """Compact JSON text of ``value`` (orjson, or the stdlib for integers beyond 64 bits
    and nesting beyond orjson's limit).  Raises :class:`BadValue` if neither can."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        error = str(exc)
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        raise BadValue(f"ERR value cannot be written as JSON: {error}") from None
    return text.encode()


def to_stored(value: Any, encoding: Any = None) -> tuple[bytes, bool]:
    """``(stored bytes, is_json)`` for a JSON value written over HTTP.

    ``encoding`` is the request's ``"encoding"`` field: None, or ``"base64"`` when
    ``value`` is the base64 text of the raw bytes to store."""
    if encoding is not None:
        if encoding not in ENCODINGS:
            raise BadValue(f"ERR 'encoding' must be \"base64\" (or absent), not {encoding!r:.40}")
        if not isinstance(value, str):
            raise BadValue('ERR with "encoding": "base64", \'value\' must be a base64 string')
        try:
            return base64.b64decode(value, validate=True), False
        except (binascii.Error, ValueError) as exc:
            raise BadValue(f"ERR 'value' is not valid base64 ({exc})") from None
    if isinstance(value, str):
        return value.encode(), False
    try:
        return orjson.dumps(value), True  # the common case; it fails deeper than 254
    except orjson.JSONEncodeError:
        pass
    if _depth(value) > MAX_JSON_DEPTH:
        raise BadValue(
            f"ERR value cannot be stored as JSON: nested deeper than {MAX_JSON_DEPTH} levels"
        )
    return dumps(value), True  # an integer beyond 64 bits


def from_stored(raw: bytes, is_json: bool) -> tuple[Any, str | None]:
    """``(JSON value, encoding)`` for a stored value; encoding is None or "base64"."""
    if is_json:
        try:
            return loads(raw), None
        except ValueError:
            pass  # cannot happen for text we wrote; fall back to the plain mapping
    try:
        return raw.decode(), None
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode(), "base64"


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    if not isinstance(value, list | dict):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > MAX_JSON_DEPTH:
                return deepest
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, list | dict):
                stack.append((child, depth + 1))
    return deepest
