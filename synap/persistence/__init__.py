"""Persistence: the data directory that lets a node restart with the data it had.

A node's data directory holds three kinds of files, each owned by one module:

``LOCK`` (:mod:`.lock`)
    ``flock``-ed by the running node so two servers never share a directory.
``wal-<first_offset:020d>.log`` (:mod:`.wal`)
    Append-only segments of effect records (see :mod:`synap.store.effects`) in offset order.
``snapshot-<offset:020d>.snap`` (:mod:`.snapshot`)
    The whole keyspace as of one replication offset, plus the replication ids.
``topology.json`` (:mod:`.topology`)
    The role (and master) the node last took at runtime, read at start-up.

Recovery (:mod:`.manager`) loads the newest valid snapshot and replays the WAL records that
follow it.  The invariant every operation preserves, so that a crash at any instant leaves
a directory that recovers to *some* consistent prefix of the node's history:

    the WAL segments on disk, read in order from the newest snapshot's offset, hold a
    contiguous run of records of the same history as that snapshot (or, with no snapshot
    at all, of the history that began when the directory was created).

The modules here do file I/O only — no sockets, no event-loop state besides
:class:`.manager.Persistence`'s timers — so every crash shape is a unit test on files.
"""

import os


class PersistenceError(Exception):
    """The data directory cannot be used as it is; the message says what to do.

    Raised where continuing would mean serving data that cannot be trusted (no usable
    snapshot, a record that passes its checksum but cannot be applied) or where the disk
    refuses a write.  Torn and corrupt WAL tails are *not* errors: they are repaired and
    logged (see :mod:`.wal`)."""


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make renames, creations and deletions in ``directory`` durable.

    POSIX only promises that a file's *name* survives a power loss once its directory has
    been fsynced; a renamed snapshot or a new WAL segment is not durable before that."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
