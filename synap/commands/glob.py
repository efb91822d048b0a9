"""Redis-style glob patterns (``*``, ``?``, ``[a-z]``, ``[^x]``, ``\\`` escapes) on bytes."""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=256)
def compile_glob(pattern: bytes) -> re.Pattern[bytes]:
    out = bytearray()
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        if c == b"*":
            out += b".*"
        elif c == b"?":
            out += b"."
        elif c == b"\\" and i + 1 < n:
            i += 1
            out += re.escape(pattern[i : i + 1])
        elif c == b"[":
            j = pattern.find(b"]", i + 1)
            if j == -1:
                out += b"\\["
            else:
                body = pattern[i + 1 : j]
                negate = body.startswith(b"^")
                if negate:
                    body = body[1:]
                escaped = body.replace(b"\\", b"\\\\")
                out += b"[" + (b"^" if negate else b"") + escaped + b"]"
                i = j
        else:
            out += re.escape(c)
        i += 1
    return re.compile(bytes(out) + b"\\Z", re.DOTALL)


def glob_match(pattern: bytes, key: bytes) -> bool:
    if pattern == b"*":
        return True
    return compile_glob(pattern).match(key) is not None
