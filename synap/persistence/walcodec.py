"""The WAL's record framing, encoded for a batch: one function, also written in C.

Every record appended to the write-ahead log becomes ``>I length, >I crc32, >Q offset``
followed by the record, the CRC32 covering the eight offset bytes and the record
(:mod:`synap.persistence.wal`).  Masters run this for every write, so the compiled build
has ``walcodec.c`` beside this file, built by setup.py into an extension of the same name
that Python imports instead of it (as mypyc's modules are); this is the pure-Python
fallback, and the reference the C version is tested against
(``tests/unit/test_walcodec.py``).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

_HEADER = struct.Struct(">IIQ")  # payload length, crc32(offset bytes + payload), offset
_crc32 = zlib.crc32
_pack_header = _HEADER.pack
_pack_offset = struct.Struct(">Q").pack


def encode_entries(first_offset: int, records: Sequence[bytes]) -> bytes:
    """The WAL bytes of consecutive ``records``, the first at offset ``first_offset``."""
    parts: list[bytes] = []
    add = parts.append
    for offset, record in enumerate(records, first_offset):
        add(_pack_header(len(record), _crc32(record, _crc32(_pack_offset(offset))), offset))
        add(record)
    return b"".join(parts)
