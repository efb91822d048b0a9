"""``synap-cli log inspect``: print the log's records from the WAL segments and verify them.

Read-only (it takes no lock and repairs nothing, so it may run beside a live server).
Each segment gets a header line (name, first offset, size, time of its last write: the
records themselves carry no timestamp), then one line per record::

    <offset>  <OP> <key> [value_bytes=N expire_at_ms=T kind=json]  [; next op ...]

Every record read is checked (CRC32, offsets consecutive within and across segments).
Exit status: 0 when everything read is sound; 1 on corruption (a checksum mismatch,
a gap in offsets, a foreign file), each named with its segment and byte; an
*incomplete* last record of the newest segment is the trace of an interrupted write
(the server truncates it at its next start) and is reported as a warning only.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synap.persistence.wal import _read_segment, _Scan, list_segments
from synap.store.effects import (
    KIND_JSON,
    OP_DEL,
    OP_EXPIRE,
    OP_FLUSH,
    OP_PERSIST,
    OP_SET,
    CorruptRecord,
    decode_record,
)

_NAMES = {
    OP_SET: "SET",
    OP_DEL: "DEL",
    OP_EXPIRE: "EXPIRE",
    OP_PERSIST: "PERSIST",
    OP_FLUSH: "FLUSH",
}


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def describe_op(op: list[Any]) -> str:
    """One operation as ``OP key details`` (values are shown by size only)."""
    if not op:
        return "?"
    name = _NAMES.get(op[0], f"OP{op[0]!r}")
    if op[0] == OP_SET and len(op) >= 4:
        text = f"SET {_text(op[1])} value_bytes={len(op[2])} expire_at_ms={op[3]}"
        if len(op) >= 5:
            text += " kind=json" if op[4] == KIND_JSON else f" kind={op[4]}"
        return text
    if op[0] == OP_EXPIRE and len(op) >= 3:
        return f"EXPIRE {_text(op[1])} expire_at_ms={op[2]}"
    if op[0] == OP_FLUSH:
        return "FLUSH"
    return " ".join([name, *(_text(a) for a in op[1:])])


def describe_record(record: bytes) -> str:
    try:
        ops = decode_record(record)
    except CorruptRecord as exc:
        return f"UNDECODABLE ({exc})"
    return " ; ".join(describe_op(op) if isinstance(op, list) else "?" for op in ops)


def inspect_log(
    directory: Path,
    from_offset: int | None,
    limit: int | None,
    out: Callable[[str], None],
    err: Callable[[str], None],
) -> int:
    """Print records (from ``from_offset``, at most ``limit``); return the exit status."""
    directory = Path(directory)
    if not directory.is_dir():
        err(f"error: {directory} is not a directory")
        return 2
    segments = list_segments(directory)
    if not segments:
        err(f"no WAL segments (wal-*.log) in {directory}")
        return 0
    printed = 0
    checked = 0
    first_seen: int | None = None
    expected: int | None = None
    problems: list[str] = []
    warnings: list[str] = []
    for index, seg in enumerate(segments):
        is_last = index == len(segments) - 1
        following = segments[index + 1].first_offset if not is_last else None
        if from_offset is not None and following is not None and following <= from_offset:
            expected = following
            continue
        if limit is not None and printed >= limit:
            break
        written = datetime.datetime.fromtimestamp(seg.path.stat().st_mtime, datetime.UTC)
        out(
            f"# {seg.path.name} first_offset={seg.first_offset} bytes={seg.size} "
            f"last_write={written.isoformat(timespec='seconds').replace('+00:00', 'Z')}"
        )
        if expected is not None and seg.first_offset != expected:
            problems.append(
                f"{seg.path.name}: starts at offset {seg.first_offset} but the previous "
                f"segment ends before {expected} (missing records)"
            )
            break
        expected = seg.first_offset
        scan = _Scan()
        stopped = False
        for offset, record, start in _read_segment(seg.path, scan):
            if offset != expected:
                problems.append(
                    f"{seg.path.name}: record offset {offset} at byte {start} where "
                    f"{expected} was expected"
                )
                stopped = True
                break
            expected = offset + 1
            checked += 1
            if from_offset is not None and offset < from_offset:
                continue
            if first_seen is None:
                first_seen = offset
            out(f"{offset}  {describe_record(bytes(record))}")
            printed += 1
            if limit is not None and printed >= limit:
                stopped = True
                break
        if stopped:
            break
        if scan.problem is not None:
            where = f"{seg.path.name}: {scan.problem} at byte {scan.good_end}"
            if is_last and scan.problem.startswith("incomplete"):
                warnings.append(f"{where} (an interrupted write; the server truncates it)")
            else:
                problems.append(where)
                break
    for line in warnings:
        err(f"warning: {line}")
    for line in problems:
        err(f"CORRUPT: {line}")
    span = f"offsets {first_seen}..{first_seen + printed - 1}" if first_seen is not None else "none"
    err(
        f"{printed} record(s) printed ({span}), {checked} checked in {len(segments)} segment(s): "
        + ("CORRUPTION FOUND" if problems else "checksums OK")
    )
    return 1 if problems else 0
