"""The replication log (synap/replication/log.py) and the values of replication control
as the HTTP layer answers them (synap/api/views.py): pure objects, no sockets."""

from __future__ import annotations

from synap.api.views import role_change_json
from synap.replication.control import (
    Following,
    HandedOff,
    Promoted,
    Stopped,
    WritesPaused,
    WritesResumed,
)
from synap.replication.log import ReplicationLog
from synap.store.effects import Op
from synap.store.history import History


def _set(key: bytes) -> list[Op]:
    return [["SET", key, b"v", 0]]


def make_log(history: History) -> tuple[ReplicationLog, list[int]]:
    appended: list[int] = []
    log = ReplicationLog(history, None, 100, 1 << 20, lambda: appended.append(history.offset))
    return log, appended


def test_a_disabled_log_keeps_nothing_and_costs_the_history_nothing() -> None:
    history = History()
    log, appended = make_log(history)
    log.start(keep=False)
    history.commit(_set(b"a"))
    assert len(log.backlog) == 0 and appended == []
    log.enable()
    history.commit(_set(b"b"))
    assert len(log.backlog) == 1 and appended == [2]
    assert log.backlog.first_offset == log.backlog.last_offset == 2
    log.disable()
    history.commit(_set(b"c"))
    assert len(log.backlog) == 0 and appended == [2]
    assert log.backlog.last_offset == 2  # reset at the offset it was disabled at


def test_start_keeps_only_the_seeded_run_that_ends_at_the_history_offset() -> None:
    history = History(offset=10)
    log, _ = make_log(history)
    # 3 and 5 are not contiguous with the run 8..10 that ends at our offset.
    log.seed([(3, b"r3"), (5, b"r5"), (8, b"r8"), (9, b"r9"), (10, b"r10")])
    log.start(keep=True)
    assert (log.backlog.first_offset, log.backlog.last_offset) == (8, 10)
    assert log.backlog.records_from(8) == [b"r8", b"r9", b"r10"]
    assert log.log_bounds().first_offset == 8  # no persistence: memory only
    assert log.disk_log_bounds() is None


def test_a_seed_that_does_not_reach_the_offset_is_dropped() -> None:
    history = History(offset=10)
    log, _ = make_log(history)
    log.seed([(7, b"r7"), (8, b"r8")])
    log.start(keep=True)
    assert len(log.backlog) == 0 and log.backlog.last_offset == 10


def test_a_role_without_a_log_ignores_the_seed() -> None:
    history = History(offset=2)
    log, _ = make_log(history)
    log.seed([(1, b"r1"), (2, b"r2")])
    log.start(keep=False)
    assert len(log.backlog) == 0 and not log.enabled


def test_role_change_answers_keep_their_http_shapes() -> None:
    assert role_change_json(Promoted("id2", 7, "127.0.0.1:15501", "id1", "/d/topology.json")) == {
        "success": True,
        "role": "master",
        "replication_id": "id2",
        "previous_replication_id": "id1",
        "offset": 7,
        "replica_listen_address": "127.0.0.1:15501",
        "topology_file": "/d/topology.json",
    }
    assert role_change_json(Promoted("id", 3, None, already=True)) == {
        "success": True,
        "role": "master",
        "message": "already a master",
        "replication_id": "id",
        "offset": 3,
        "replica_listen_address": None,
    }
    assert role_change_json(Following("h:1", already=True)) == {
        "success": True,
        "role": "replica",
        "master_address": "h:1",
        "message": "already following this master",
    }
    assert role_change_json(Following("h:1", None)) == {
        "success": True,
        "role": "replica",
        "master_address": "h:1",
        "topology_file": None,
    }
    assert role_change_json(Stopped("/t")) == {
        "success": True,
        "role": "standalone",
        "topology_file": "/t",
    }
    assert role_change_json(WritesPaused(None, "master", "id", 9)) == {
        "success": True,
        "writes_paused": True,
        "seconds": None,
        "role": "master",
        "replication_id": "id",
        "master_offset": 9,
    }
    assert role_change_json(WritesResumed(True, "master", 9)) == {
        "success": True,
        "writes_paused": False,
        "was_paused": True,
        "role": "master",
        "master_offset": 9,
    }
    assert role_change_json(HandedOff("node-b", 4, 120)) == {
        "success": True,
        "handed_off_to": "node-b",
        "epoch": 4,
        "offset": 120,
    }
