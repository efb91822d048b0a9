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

_JSON_START = frozenset(b"{[-0123456789tfn")


def to_stored(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return orjson.dumps(value)


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
        if not isinstance(parsed, str):
            return parsed, None
    return text, None
