"""The data directory lock: one synap-server per data directory.

Two nodes writing the same WAL would interleave records of two histories and make the
directory unrecoverable, so a node takes an exclusive ``flock`` on ``<dir>/LOCK`` before
it reads or writes anything there, and keeps it until it stops.  ``flock`` locks belong to
the open file, so the kernel releases them when the process dies — a crashed node never
leaves a stale lock behind.  The holder's pid is written into the file only to make the
refusal message useful; it is never used to decide anything.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from synap.persistence import PersistenceError

LOCK_FILE = "LOCK"


class DataDirLocked(PersistenceError):
    """Another process (or another node in this process) holds the data directory."""


class DataDirLock:
    """Exclusive, non-blocking lock on ``<directory>/LOCK``; creates the directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`DataDirLocked` naming the holder's pid."""
        if self._fd is not None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # os.open fds are not inherited by child processes (PEP 446), so a server's
            # subprocesses never keep the lock alive after it exits.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise PersistenceError(
                f"cannot use data directory {self.directory}: {exc.strerror} — check that "
                f"it is a writable directory"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DataDirLocked(
                f"data directory {self.directory} is in use by another synap-server "
                f"(pid {holder}); give each node its own --data-dir"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise PersistenceError(f"cannot lock {self.path}: {exc.strerror}") from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent).  The LOCK file stays; only the flock matters."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"
