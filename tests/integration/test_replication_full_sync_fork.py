"""A full sync sent by a forked child process (synap/replication/fork_snapshot.py): the
child lives only as long as the sync. A replica that dies mid-snapshot takes the child
with it (killed and reaped by the master, which keeps serving and syncs the next
replica); a master that dies takes its child with it (no orphan keeps the replica's
socket, or anything else of the master's, open)."""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import pytest

from tests.support.checks import assert_same_data, syncs
from tests.support.server import NodeFactory, SynapProcess, wait_for

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

KEYS = 20_000
VALUE = 2048  # 40 MB of snapshot: far more than the socket buffers hold
FAST = {"heartbeat_interval_ms": 100, "reconnect_delay_ms": 200, "replica_timeout_secs": 30}
ENV = {"SYNAP_FULL_SYNC_FORK": "always"}


def fill(node: SynapProcess) -> None:
    pipe = node.redis().pipeline(transaction=False)
    for i in range(KEYS):
        pipe.set(f"key:{i:06d}", f"{i}-".ljust(VALUE, "x"))
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of the live processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append((int(entry.name), fields[0]))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def snapshot_child(master: SynapProcess) -> int:
    """Wait for the master's snapshot child to appear; its pid."""
    found: list[int] = []

    def appeared() -> bool:
        found[:] = [pid for pid, state in children_of(master.pid) if state != "Z"]
        return bool(found)

    wait_for(appeared, 20, interval=0.005, message="no snapshot child appeared")
    return found[0]


def test_a_replica_killed_mid_snapshot_takes_the_child_with_it(node_factory: NodeFactory) -> None:
    master = node_factory.master(config={"replication": FAST}, env=ENV)
    fill(master)
    replica = node_factory.replica(master, config={"replication": FAST}, wait=False)
    child = snapshot_child(master)
    replica.freeze()  # it stops reading: the child blocks on a full socket
    time.sleep(0.3)
    assert alive(child), "the child should still be sending"
    replica.kill()
    wait_for(lambda: not alive(child), 15, message=f"snapshot child {child} outlived its replica")
    # Reaped, not a zombie: no child of the master is left at all.
    wait_for(lambda: not children_of(master.pid), 5, message="the child was not reaped")
    assert master.redis().dbsize() == KEYS
    # The next replica gets a whole snapshot (from a new child).
    fresh = node_factory.replica(master, config={"replication": FAST})
    assert_same_data(master, [fresh], timeout=60)
    assert syncs(fresh) == (1, 0)
    assert "by process" in master.log_text()
    wait_for(lambda: not children_of(master.pid), 10, message="the second child lingers")


def test_a_master_killed_mid_snapshot_takes_the_child_with_it(node_factory: NodeFactory) -> None:
    master = node_factory.master(config={"replication": FAST}, env=ENV)
    fill(master)
    replica = node_factory.replica(master, config={"replication": FAST}, wait=False)
    child = snapshot_child(master)
    replica.freeze()
    time.sleep(0.3)
    assert alive(child)
    master.kill(signal.SIGKILL)
    wait_for(lambda: not alive(child), 10, message=f"snapshot child {child} outlived the master")
    replica.thaw()


PIDS_CGROUP = Path("/sys/fs/cgroup/pids")


def test_a_full_sync_whose_fork_fails_drops_the_replica_which_syncs_once_fork_works(
    node_factory: NodeFactory,
) -> None:
    """fork() refused (a pids cgroup at its limit, as a container's would be): the master
    says why, keeps serving, and the replica, dropped, syncs at a later try."""
    if not (PIDS_CGROUP / "cgroup.procs").exists():
        pytest.skip("needs a writable cgroup v1 pids controller")
    master = node_factory.master(config={"replication": FAST}, env=ENV)
    fill(master)
    group = PIDS_CGROUP / f"synap-test-{master.pid}"
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a pids cgroup here: {exc}")
    try:
        try:
            (group / "cgroup.procs").write_text(str(master.pid))
            (group / "pids.max").write_text((group / "pids.current").read_text().strip())
        except OSError as exc:
            pytest.skip(f"cannot use a pids cgroup here: {exc}")
        replica = node_factory.replica(master, config={"replication": FAST})
        wait_for(
            lambda: "could not fork" in master.log_text(), 20,
            message="the failed fork was not reported",
        )  # fmt: skip
        assert master.redis().dbsize() == KEYS  # the master serves on
        assert syncs(replica)[0] == 0
        (group / "pids.max").write_text("max")
        assert_same_data(master, [replica], timeout=60)
        assert "by process" in master.log_text()
    finally:
        with contextlib.suppress(OSError):
            (group / "pids.max").write_text("max")
        if master.is_running():
            with contextlib.suppress(OSError):
                (PIDS_CGROUP / "cgroup.procs").write_text(str(master.pid))
        with contextlib.suppress(Exception):  # (never hide the test's own failure)
            wait_for(lambda: not (group / "cgroup.procs").read_text().split(), 10)
            group.rmdir()
