"""Truncating a forked history: the dataset at the fork point, and the records after it.

An old master that accepted writes after it lost leadership (partitioned from etcd,
killed before its last writes were replicated) holds records the new master's history
never had. When it rejoins, the new master names the fork point (the last offset both
histories share, see :func:`synap.replication.handshake.decide_sync`). This module
rebuilds the dataset as it was at that offset from the data directory (a snapshot at or
before the fork point, plus the WAL records up to it) and collects the records after it,
which are saved for the operator in ``diverged-<replid>-<fork_offset>.jsonl``:

* first line: ``{"diverged": {"replid", "fork_offset", "last_offset", "records",
  "new_master_replid", "created_ms"}}``;
* then one line per removed record, in offset order: ``{"offset": N, "ops": [...],
  "record": "<base64 of the effect record>"}``. ``ops`` is readable (``"SET key
  value_bytes=N expire_at_ms=T"``, as ``synap-cli log inspect`` prints them) and
  ``record`` is the exact effect record, to replay if the operator decides to
  (:func:`read_diverged_file` decodes the file).

File I/O only, run in a worker thread: nothing here touches the live keyspace.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synap.clock import now_ms
from synap.persistence import PersistenceError, fsync_directory
from synap.persistence.inspect import describe_op
from synap.persistence.snapshot import CorruptSnapshot, list_snapshots, read_snapshot
from synap.persistence.wal import iter_segment, list_segments
from synap.store.effects import CorruptRecord, apply_record, decode_record
from synap.store.keyspace import Keyspace

FILE_PREFIX = "diverged-"
FILE_SUFFIX = ".jsonl"


class CannotTruncate(PersistenceError):
    """The data directory cannot rebuild the dataset at the fork point (no snapshot at
    or before it, or the WAL does not reach it): the node needs a full sync instead."""


@dataclass
class Rebuilt:
    """The dataset at ``fork_offset`` and the records after it that are being removed."""

    fork_offset: int
    data: dict[bytes, bytes]
    expires: dict[bytes, int]
    json_keys: set[bytes]
    snapshot_offset: int  # the snapshot the rebuild started from
    diverged: list[tuple[int, bytes]] = field(default_factory=list)


def rebuild_at(directory: Path, fork_offset: int, last_offset: int) -> Rebuilt:
    """The dataset at ``fork_offset``, from the newest usable snapshot at or before it and
    the WAL records after that snapshot, plus the records ``fork_offset + 1 ..
    last_offset`` (which must all be on disk). Raises :class:`CannotTruncate`."""
    if not 0 <= fork_offset < last_offset:
        raise CannotTruncate(f"fork offset {fork_offset} is not below our offset {last_offset}")
    directory = Path(directory)
    candidates = [(o, p) for o, p in list_snapshots(directory) if o <= fork_offset]
    snap = None
    problems: list[str] = []
    for _, path in reversed(candidates):
        try:
            snap = read_snapshot(path)
            break
        except CorruptSnapshot as exc:
            problems.append(str(exc))
    if snap is None:
        kept = ", ".join(str(o) for o, _ in list_snapshots(directory)) or "none"
        extra = f" ({'; '.join(problems)})" if problems else ""
        raise CannotTruncate(
            f"no usable snapshot at or before the fork point {fork_offset} in {directory} "
            f"(snapshots at offsets: {kept}){extra}"
        )
    keyspace = Keyspace(expire_on_access=False)
    keyspace.replace(snap.data, snap.expires, snap.json_keys)
    out = Rebuilt(fork_offset, {}, {}, set(), snap.offset)
    expected = snap.offset + 1
    for segment in list_segments(directory):
        for offset, record in iter_segment(segment.path):
            if offset < expected:
                continue  # covered by the snapshot (segments go back to older snapshots)
            if offset != expected:
                break  # a gap: caught by the check below
            expected += 1
            if offset <= fork_offset:
                try:
                    apply_record(keyspace, record)
                except CorruptRecord as exc:
                    raise CannotTruncate(f"WAL record {offset} cannot be applied: {exc}") from exc
            else:
                out.diverged.append((offset, bytes(record)))
            if offset >= last_offset:
                break
        if expected > last_offset:
            break
    if expected <= last_offset:
        raise CannotTruncate(
            f"the WAL in {directory} holds offsets {snap.offset + 1}..{expected - 1} after "
            f"the snapshot at {snap.offset}, not up to our offset {last_offset}"
        )
    out.data, out.expires, out.json_keys = keyspace.data, keyspace.expires, keyspace.json_keys
    return out


def diverged_path(directory: Path, replid: str, fork_offset: int) -> Path:
    return Path(directory) / f"{FILE_PREFIX}{replid}-{fork_offset}{FILE_SUFFIX}"


def _readable_ops(record: bytes) -> list[str]:
    try:
        ops = decode_record(record)
    except CorruptRecord as exc:
        return [f"UNDECODABLE ({exc})"]
    return [describe_op(op) if isinstance(op, list) else "?" for op in ops]


def write_diverged_file(
    directory: Path,
    replid: str,
    rebuilt: Rebuilt,
    new_master_replid: str,
) -> Path:
    """Write (and fsync) the removed records; returns the file. Raises OSError.

    An existing file is never replaced: the next one is ``...-<offset>.2.jsonl``, ``.3``, ..."""
    path = diverged_path(directory, replid, rebuilt.fork_offset)
    n = 1
    while path.exists():
        n += 1
        path = diverged_path(directory, replid, rebuilt.fork_offset).with_suffix(
            f".{n}{FILE_SUFFIX}"
        )
    last = rebuilt.diverged[-1][0] if rebuilt.diverged else rebuilt.fork_offset
    header = {
        "diverged": {
            "replid": replid,
            "fork_offset": rebuilt.fork_offset,
            "last_offset": last,
            "records": len(rebuilt.diverged),
            "new_master_replid": new_master_replid,
            "created_ms": now_ms(),
        }
    }
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(header) + "\n")
        for offset, record in rebuilt.diverged:
            line = {
                "offset": offset,
                "ops": _readable_ops(record),
                "record": base64.b64encode(record).decode("ascii"),
            }
            f.write(json.dumps(line) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_directory(path.parent)
    return path


def read_diverged_file(path: Path) -> tuple[dict[str, Any], list[tuple[int, bytes]]]:
    """The header and the ``(offset, effect record)`` pairs of a diverged file."""
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]
    if not lines or "diverged" not in lines[0]:
        raise ValueError(f"{path} is not a diverged-records file (no header line)")
    records = [(int(x["offset"]), base64.b64decode(x["record"])) for x in lines[1:]]
    return lines[0]["diverged"], records


__all__ = [
    "CannotTruncate",
    "Rebuilt",
    "diverged_path",
    "read_diverged_file",
    "rebuild_at",
    "write_diverged_file",
]
