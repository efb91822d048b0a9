"""One synap-server per data directory, enforced with flock across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from synap.persistence.lock import DataDirLock, DataDirLocked
from synap.persistence.manager import Persistence
from synap.store.keyspace import Keyspace

CHILD_TIMEOUT = 10.0

# Holds the lock until its stdin is closed.
HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from synap.persistence.lock import DataDirLock
    lock = DataDirLock(Path(sys.argv[1]))
    lock.acquire()
    print("locked", flush=True)
    sys.stdin.read()
    lock.release()
    """
)


def start_holder(directory: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded by the child: it prints or exits
    assert line.strip() == "locked", f"holder failed (exit {proc.poll()})"
    return proc


def test_acquire_creates_the_directory_and_records_the_pid(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "data"
    lock = DataDirLock(directory)
    lock.acquire()
    assert lock.held
    assert (directory / "LOCK").read_text().strip() == str(os.getpid())
    lock.release()
    assert not lock.held


def test_second_holder_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with DataDirLock(tmp_path), pytest.raises(DataDirLocked) as info:
        DataDirLock(tmp_path).acquire()
    message = str(info.value)
    assert str(tmp_path) in message and f"pid {os.getpid()}" in message
    assert "give each node its own --data-dir" in message


def test_another_process_holding_the_lock_is_refused_until_it_lets_go(tmp_path: Path) -> None:
    proc = start_holder(tmp_path)
    try:
        with pytest.raises(
            DataDirLocked, match=f"in use by another synap-server \\(pid {proc.pid}\\)"
        ):
            DataDirLock(tmp_path).acquire()
    finally:
        proc.communicate(input="", timeout=CHILD_TIMEOUT)
    assert proc.returncode == 0
    with DataDirLock(tmp_path) as lock:
        assert lock.held


def test_the_kernel_releases_the_lock_of_a_killed_process(tmp_path: Path) -> None:
    proc = start_holder(tmp_path)
    proc.kill()
    proc.communicate(timeout=CHILD_TIMEOUT)
    with DataDirLock(tmp_path) as lock:  # no stale lock after a crash
        assert lock.held


def test_persistence_holds_the_lock_until_shutdown(tmp_path: Path) -> None:
    first = Persistence(tmp_path, "never")
    first.open()
    first.recover(Keyspace())
    second = Persistence(tmp_path, "never")
    with pytest.raises(DataDirLocked):
        second.open()
    first.shutdown()
    second.open()
    second.recover(Keyspace())
    second.shutdown()


def test_release_is_idempotent(tmp_path: Path) -> None:
    lock = DataDirLock(tmp_path)
    lock.release()
    lock.acquire()
    lock.acquire()  # already held by this object: no-op
    lock.release()
    lock.release()
    assert not lock.held
