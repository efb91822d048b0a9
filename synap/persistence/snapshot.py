"""Snapshots: the whole keyspace as of one replication offset, in one checksummed file.

A file ``snapshot-<offset:020d>.snap`` is (integers big-endian)::

    b"SYNSNAP1"                                   magic
    >I length >I crc32 | msgpack map              header frame: version, replid, offset,
                                                  replid2, second_offset, created_ms, keys
    >I length >I crc32 | msgpack array            data frames, each [[key, value, expire_at_ms],
                                                  ...] (expire 0 = none), <= 1000 entries or
                                                  about 64 KiB of keys and values; an entry
                                                  of json kind has a fourth element, 1:
                                                  [key, value, expire_at_ms, 1]
    >I 0 >I 0                                     end marker
    >I crc32 >Q count                             crc32 of every byte before it, entry count

Format version 2 added the kind element; version 1 files (all entries plain) still load.
Every frame is checked on its own (a reader stops at the first bad one, with its byte
position) and the trailer proves the file is complete.  The header is framed like the
data so it is checksummed too.

Keys already expired are written anyway: a snapshot is an exact image of the keyspace.
Expiry is decided by the master alone (it deletes and propagates a DEL); a replica that
dropped keys by its own clock while saving could diverge from the records replayed after
the snapshot (a later EXPIRE or PERSIST of a key it no longer has).

Writing goes to a temporary file, then ``fsync``, atomic ``rename`` and an fsync of the
directory, so a crash leaves either the old set of snapshots or the new one — never a
half-written ``.snap``.  :func:`write_snapshot` touches no shared state: give it copies of
the dicts and run it in a worker thread (``asyncio.to_thread``) while the server serves.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import tempfile
import time
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from synap.persistence import PersistenceError, fsync_directory

logger = logging.getLogger(__name__)

SNAPSHOT_MAGIC = b"SYNSNAP1"
FORMAT_VERSION = 2
# Versions this server reads: 1 has no kinds (every value plain).
READABLE_VERSIONS = (1, 2)
# The fourth element of a data entry of json kind (the effect records' KIND_JSON).
KIND_JSON = 1
FRAME = struct.Struct(">II")  # payload length, crc32(payload); length 0 = end marker
TRAILER = struct.Struct(">IQ")  # crc32 of everything before the trailer, entry count
SNAPSHOT_RE = re.compile(r"^snapshot-(\d{20})\.snap$")
TEMP_SUFFIX = ".tmp"

# Frame size: big enough that per-frame costs vanish, small enough that a reader never
# holds more than one frame of packed bytes at a time.
CHUNK_MAX_ENTRIES = 1000
CHUNK_MAX_BYTES = 64 * 1024
# Buffered file I/O: a few large write()/read() calls instead of one per frame.
IO_BUFFER = 1 << 20
# Snapshots kept on disk: the newest, and the previous one in case the newest is damaged.
KEEP_SNAPSHOTS = 2


class CorruptSnapshot(PersistenceError):
    """A snapshot file that fails a check; the message names the file and byte position."""


@dataclass
class SnapshotData:
    data: dict[bytes, bytes]
    expires: dict[bytes, int]
    replid: str | None
    offset: int
    replid2: str | None
    second_offset: int
    created_ms: int = 0
    #: Keys of json kind (see :mod:`synap.store.keyspace`).
    json_keys: set[bytes] = field(default_factory=set)


def snapshot_name(offset: int) -> str:
    return f"snapshot-{offset:020d}.snap"


def list_snapshots(directory: Path) -> list[tuple[int, Path]]:
    """``(offset, path)`` of the snapshot files in ``directory``, oldest first."""
    found = []
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise PersistenceError(f"cannot list data directory {directory}: {exc}") from exc
    for name in names:
        match = SNAPSHOT_RE.match(name)
        if match:
            found.append((int(match.group(1)), Path(directory) / name))
    found.sort()
    return found


# --------------------------------------------------------------------------- writing
def encode_snapshot(
    data: dict[bytes, bytes],
    expires: dict[bytes, int],
    *,
    replid: str | None,
    offset: int,
    replid2: str | None,
    second_offset: int,
    created_ms: int | None = None,
    json_keys: Collection[bytes] = frozenset(),
) -> Iterator[bytes]:
    """Yield the bytes of a snapshot, piece by piece (a file or a socket can take them).

    ``json_keys``: the keys of ``data`` whose value is of json kind."""
    pack = msgpack.Packer(use_bin_type=True).pack
    crc32 = zlib.crc32
    total = 0  # running crc32 of everything yielded

    def frame(payload: bytes) -> bytes:
        return FRAME.pack(len(payload), crc32(payload)) + payload

    header = {
        "version": FORMAT_VERSION,
        "replid": replid,
        "offset": offset,
        "replid2": replid2,
        "second_offset": second_offset,
        "created_ms": created_ms if created_ms is not None else time.time_ns() // 1_000_000,
        "keys": len(data),
    }
    piece = SNAPSHOT_MAGIC + frame(pack(header))
    total = crc32(piece, total)
    yield piece
    get_expiry = expires.get
    entries: list[tuple[bytes, bytes, int] | tuple[bytes, bytes, int, int]] = []
    size = 0
    for key, value in data.items():
        if json_keys and key in json_keys:
            entries.append((key, value, get_expiry(key, 0), KIND_JSON))
        else:
            entries.append((key, value, get_expiry(key, 0)))
        size += len(key) + len(value)
        if size >= CHUNK_MAX_BYTES or len(entries) >= CHUNK_MAX_ENTRIES:
            piece = frame(pack(entries))
            total = crc32(piece, total)
            yield piece
            entries = []
            size = 0
    if entries:
        piece = frame(pack(entries))
        total = crc32(piece, total)
        yield piece
    end = FRAME.pack(0, 0)
    total = crc32(end, total)
    yield end + TRAILER.pack(total, len(data))


def write_snapshot_temp(
    directory: Path,
    data: dict[bytes, bytes],
    expires: dict[bytes, int],
    *,
    replid: str | None,
    offset: int,
    replid2: str | None,
    second_offset: int,
    json_keys: Collection[bytes] = frozenset(),
) -> Path:
    """Write and fsync a snapshot under a temporary name; :func:`commit_snapshot` installs it.

    Raises OSError (the temporary file is removed)."""
    fd, name = tempfile.mkstemp(
        dir=directory, prefix=f"{snapshot_name(offset)}.", suffix=TEMP_SUFFIX
    )
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb", buffering=IO_BUFFER) as f:
            for piece in encode_snapshot(
                data,
                expires,
                replid=replid,
                offset=offset,
                replid2=replid2,
                second_offset=second_offset,
                json_keys=json_keys,
            ):
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def commit_snapshot(tmp: Path, offset: int) -> Path:
    """Atomically rename a written temporary snapshot to its final name; fsync the dir."""
    final = tmp.parent / snapshot_name(offset)
    os.replace(tmp, final)
    fsync_directory(tmp.parent)
    return final


def write_snapshot(
    directory: Path,
    data: dict[bytes, bytes],
    expires: dict[bytes, int],
    *,
    replid: str | None,
    offset: int,
    replid2: str | None,
    second_offset: int,
    json_keys: Collection[bytes] = frozenset(),
) -> Path:
    """Write ``snapshot-<offset>.snap`` durably and return its path.  Raises OSError.

    Thread-safe as long as ``data`` and ``expires`` are not modified meanwhile: pass
    copies (``dict(keyspace.data)``), made on the event-loop thread."""
    tmp = write_snapshot_temp(
        directory,
        data,
        expires,
        replid=replid,
        offset=offset,
        replid2=replid2,
        second_offset=second_offset,
        json_keys=json_keys,
    )
    try:
        return commit_snapshot(tmp, offset)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def prune_snapshots(directory: Path, keep: int = KEEP_SNAPSHOTS) -> list[tuple[int, Path]]:
    """Delete all but the ``keep`` newest snapshots; return the kept ones, oldest first."""
    if keep < 1:
        raise ValueError("keep at least one snapshot")
    snapshots = list_snapshots(directory)
    doomed, kept = snapshots[:-keep], snapshots[-keep:]
    for _, path in doomed:
        path.unlink(missing_ok=True)
    if doomed:
        fsync_directory(directory)
    return kept


def remove_temp_files(directory: Path) -> list[Path]:
    """Delete temporary snapshot files left by a crash while writing."""
    removed = []
    for name in os.listdir(directory):
        if name.startswith("snapshot-") and name.endswith(TEMP_SUFFIX):
            path = Path(directory) / name
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# --------------------------------------------------------------------------- reading
class _Reader:
    """Sequential reads that keep the position (for messages) and the running crc32."""

    def __init__(self, f: BinaryIO, path: Path, size: int) -> None:
        self.f = f
        self.path = path
        self.size = size
        self.pos = 0
        self.crc = 0

    def exact(self, n: int, what: str) -> bytes:
        # Compare with the file size first: a damaged length must not make us allocate
        # gigabytes before noticing the file is shorter.
        if self.size - self.pos < n:
            raise CorruptSnapshot(
                f"snapshot {self.path} is truncated: {what} at byte {self.pos} needs {n} "
                f"bytes, {self.size - self.pos} left"
            )
        chunk = self.f.read(n)
        if len(chunk) != n:
            raise CorruptSnapshot(f"snapshot {self.path}: short read at byte {self.pos}")
        self.crc = zlib.crc32(chunk, self.crc)
        self.pos += n
        return chunk

    def frame(self, what: str) -> bytes | None:
        """The payload of the next frame, or None at the end marker."""
        start = self.pos
        length, crc = FRAME.unpack(self.exact(FRAME.size, f"{what} frame header"))
        if length == 0:
            if crc != 0:
                raise CorruptSnapshot(f"snapshot {self.path}: bad end marker at byte {start}")
            return None
        payload = self.exact(length, what)
        if zlib.crc32(payload) != crc:
            raise CorruptSnapshot(
                f"snapshot {self.path}: checksum mismatch in {what} frame at byte {start}"
            )
        return payload


def read_snapshot(path: Path) -> SnapshotData:
    """Load and verify one snapshot file; raise :class:`CorruptSnapshot` on any defect."""
    path = Path(path)
    try:
        with open(path, "rb", buffering=IO_BUFFER) as f:
            return _read(f, path, os.fstat(f.fileno()).st_size)
    except OSError as exc:
        raise PersistenceError(f"cannot read snapshot {path}: {exc}") from exc


def _read(f: BinaryIO, path: Path, size: int) -> SnapshotData:
    r = _Reader(f, path, size)
    if r.exact(len(SNAPSHOT_MAGIC), "magic") != SNAPSHOT_MAGIC:
        raise CorruptSnapshot(f"{path} is not a synap snapshot (bad magic or unknown version)")
    header_bytes = r.frame("header")
    if header_bytes is None:
        raise CorruptSnapshot(f"snapshot {path} has no header")
    header = _parse_header(header_bytes, path)
    data: dict[bytes, bytes] = {}
    expires: dict[bytes, int] = {}
    json_keys: set[bytes] = set()
    kinds = header["version"] >= 2
    count = 0
    unpackb = msgpack.unpackb
    while True:
        start = r.pos
        payload = r.frame("data")
        if payload is None:
            break
        try:
            entries = unpackb(payload, raw=True, use_list=False)
            for entry in entries:
                if kinds and len(entry) == 4:
                    key, value, expire_at, kind = entry
                    if kind != KIND_JSON:
                        raise ValueError(f"unknown value kind {kind!r}")
                    json_keys.add(key)
                else:
                    key, value, expire_at = entry
                data[key] = value
                if expire_at:
                    expires[key] = expire_at
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise CorruptSnapshot(
                f"snapshot {path}: undecodable data frame at byte {start}: {exc}"
            ) from exc
        count += len(entries)
    expected_crc = r.crc
    total_crc, total_count = TRAILER.unpack(r.exact(TRAILER.size, "trailer"))
    if total_crc != expected_crc:
        raise CorruptSnapshot(f"snapshot {path}: whole-file checksum mismatch")
    if not (total_count == count == header["keys"] == len(data)):
        raise CorruptSnapshot(
            f"snapshot {path}: {count} entries read, trailer says {total_count}, header says "
            f"{header['keys']}"
        )
    if r.pos != size:
        raise CorruptSnapshot(f"snapshot {path}: {size - r.pos} unexpected bytes after the end")
    return SnapshotData(
        data=data,
        expires=expires,
        replid=header["replid"],
        offset=header["offset"],
        replid2=header["replid2"],
        second_offset=header["second_offset"],
        created_ms=header["created_ms"],
        json_keys=json_keys,
    )


def _parse_header(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        header = msgpack.unpackb(raw, raw=False)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise CorruptSnapshot(f"snapshot {path}: undecodable header: {exc}") from exc
    if not isinstance(header, dict):
        raise CorruptSnapshot(f"snapshot {path}: header is not a map")
    if header.get("version") not in READABLE_VERSIONS:
        raise CorruptSnapshot(
            f"snapshot {path}: format version {header.get('version')!r}, this server reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    for name, kinds in _HEADER_FIELDS.items():
        if not isinstance(header.get(name), kinds) or isinstance(header.get(name), bool):
            raise CorruptSnapshot(f"snapshot {path}: bad header field {name!r}")
    match = SNAPSHOT_RE.match(path.name)
    if match and int(match.group(1)) != header["offset"]:
        raise CorruptSnapshot(
            f"snapshot {path}: header offset {header['offset']} does not match the file name"
        )
    return header


_HEADER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "replid": (str, type(None)),
    "offset": int,
    "replid2": (str, type(None)),
    "second_offset": int,
    "created_ms": int,
    "keys": int,
}


def load_newest_snapshot(directory: Path) -> tuple[SnapshotData, Path] | None:
    """The newest snapshot that passes every check, or None if there is no snapshot file.

    A damaged snapshot is reported (WARNING, naming the file and the defect), renamed to
    ``<name>.corrupt-<ms>`` so it is never chosen again, and the previous one is tried.
    If snapshot files exist but none is usable, raise PersistenceError and rename nothing:
    the WAL alone cannot rebuild the dataset, and the operator must decide."""
    snapshots = list_snapshots(directory)
    rejected: list[tuple[Path, str]] = []
    for _, path in reversed(snapshots):
        try:
            snap = read_snapshot(path)
        except CorruptSnapshot as exc:
            logger.warning("snapshot %s is unusable (%s); trying the previous snapshot", path, exc)
            rejected.append((path, str(exc)))
            continue
        for bad, _ in rejected:
            target = bad.with_name(f"{bad.name}.corrupt-{time.time_ns() // 1_000_000}")
            try:
                os.replace(bad, target)
                logger.warning("damaged snapshot %s set aside as %s", bad, target.name)
            except OSError as exc:
                raise PersistenceError(f"cannot move damaged snapshot {bad} aside: {exc}") from exc
        return snap, path
    if rejected:
        details = "; ".join(reason for _, reason in rejected)
        raise PersistenceError(
            f"no usable snapshot in {directory} ({details}). The dataset cannot be rebuilt "
            f"from the WAL alone: restore this directory from a backup, or move it aside to "
            f"start the node empty (a replica then resyncs from its master)."
        )
    return None
