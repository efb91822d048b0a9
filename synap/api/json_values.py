"""How JSON values map to stored bytes and back, shared by the REST and command endpoints.

Strings are stored as their UTF-8 bytes, so a value set over HTTP reads back unchanged
over RESP (``SET k hello`` and ``{"value": "hello"}`` store the same bytes).  Any other
JSON value (number, object, array, boolean, null) is stored as its compact JSON text and
returned parsed.  Stored bytes that are not UTF-8 (written over RESP) are returned as a
string of their base64 with ``"encoding": "base64"`` beside the value.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from synap.commands.errors import CommandError

_JSON_START = frozenset(b"{[-0123456789tfn")
# orjson serializes at most 254 levels of nesting (it parses up to 1024).  A value must
# have more opening brackets than that to be too deep; counting them is cheap.
_MAX_JSON_DEPTH = 254


def to_stored(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:  # nested deeper than orjson writes
        raise CommandError(f"ERR value cannot be stored as JSON: {exc}") from None


def from_stored(raw: bytes) -> tuple[Any, str | None]:
    """Returns (JSON value, encoding) where encoding is None or "base64"."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode(), "base64"
    if raw and raw[0] in _JSON_START:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return text, None
        if isinstance(parsed, list | dict) and _too_deep(raw, parsed):
            return text, None  # stored over RESP; it could not be sent back as JSON
        if not isinstance(parsed, str):
            return parsed, None
    return text, None


def _too_deep(raw: bytes, parsed: Any) -> bool:
    if raw.count(b"[") + raw.count(b"{") <= _MAX_JSON_DEPTH:
        return False
    try:
        orjson.dumps(parsed)
    except orjson.JSONEncodeError:
        return True
    return False
