"""Damaged files in a real node's data directory are handled as documented
(``synap/persistence/wal.py`` and ``snapshot.py`` module docstrings):

* a torn WAL tail (an interrupted append) is cut back to the last good record with a
  WARNING; the node starts with everything before it and appends after it;
* a damaged newest snapshot is set aside (``*.corrupt-*``) with a WARNING and the
  previous snapshot plus the WAL rebuild the whole dataset;
* damage in the middle of the WAL stops replay there (ERROR): the node starts with the
  consistent prefix, under a new replication id;
* when no snapshot is usable the node refuses to start and says what to do.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.server import NodeFactory, SynapProcess

# No snapshot timer: the files are exactly what the test made.
CONFIG = {"persistence": {"snapshot_interval_secs": 0, "fsync_mode": "always"}}
HEADER_BYTES = 16  # >I length, >I crc32, >Q offset (synap.persistence.wal.HEADER)


def fill(node: SynapProcess, prefix: str, count: int) -> None:
    client = node.redis()
    for i in range(count):
        client.set(f"{prefix}{i}", f"value-{prefix}{i}")


def present(node: SynapProcess, prefix: str, count: int) -> int:
    """How many of ``prefix0 .. prefix<count-1>`` have their value (in order: the first
    missing one ends the count, so a prefix of the writes gives its length)."""
    values = node.redis().mget([f"{prefix}{i}" for i in range(count)])
    for i, value in enumerate(values):
        if value != f"value-{prefix}{i}".encode():
            assert all(v is None for v in values[i:]), "not a prefix of the writes"
            return i
    return count


def segments(node: SynapProcess) -> list[Path]:
    return sorted(node.data_dir.glob("wal-*.log"))


def snapshots(node: SynapProcess) -> list[Path]:
    return sorted(node.data_dir.glob("snapshot-*.snap"))


def record_spans(path: Path) -> list[tuple[int, int]]:
    """(start, end) byte positions of each record in a WAL segment."""
    data = path.read_bytes()
    pos, spans = 8, []
    while pos + HEADER_BYTES <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        end = pos + HEADER_BYTES + length
        spans.append((pos, end))
        pos = end
    return spans


def last_run_log(node: SynapProcess) -> str:
    return node.log_text().rsplit("=== ", 1)[-1]


def replication_id(node: SynapProcess) -> str:
    return str(node.http.get("/api/replication/digest").json()["replication_id"])


def test_torn_wal_tail_is_cut_with_a_warning_and_appends_continue(
    node_factory: NodeFactory,
) -> None:
    node = node_factory(config=CONFIG)
    fill(node, "k", 100)
    node.kill()
    # An append interrupted by the crash: a header announcing 100 bytes, 10 present.
    with open(segments(node)[-1], "ab") as f:
        f.write((100).to_bytes(4, "big") + bytes(4) + (101).to_bytes(8, "big") + b"x" * 10)

    node.start()
    log = last_run_log(node)
    assert "WARNING" in log and "torn tail" in log and "26 bytes dropped" in log, log
    assert present(node, "k", 100) == 100
    node.redis().set("after", "repair")
    node.kill()
    node.start()
    assert node.redis().get("after") == b"repair"
    assert present(node, "k", 100) == 100
    assert "torn tail" not in last_run_log(node)


def test_a_half_written_last_record_loses_that_record_only(node_factory: NodeFactory) -> None:
    node = node_factory(config=CONFIG)
    fill(node, "k", 100)
    node.kill()
    segment = segments(node)[-1]
    start, end = record_spans(segment)[-1]
    with open(segment, "r+b") as f:
        f.truncate((start + end) // 2)

    node.start()
    assert "torn tail" in last_run_log(node)
    assert present(node, "k", 100) == 99  # the record we destroyed, nothing else


def test_damaged_newest_snapshot_falls_back_to_the_previous_one_plus_the_wal(
    node_factory: NodeFactory,
) -> None:
    node = node_factory(config=CONFIG)
    client = node.redis()
    fill(node, "a", 50)
    client.save()
    fill(node, "b", 50)
    client.save()
    fill(node, "c", 50)
    replid = replication_id(node)
    node.kill()
    files = snapshots(node)
    assert len(files) == 2, files  # the two newest are kept
    newest = files[-1]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x10
    newest.write_bytes(bytes(data))

    node.start()
    log = last_run_log(node)
    assert "WARNING" in log and "unusable" in log and "set aside" in log, log
    assert list(node.data_dir.glob(f"{newest.name}.corrupt-*")), "damaged file not kept"
    for prefix in "abc":
        assert present(node, prefix, 50) == 50, prefix
    assert replication_id(node) == replid  # the history is complete: same id


def test_damage_in_the_middle_of_the_wal_recovers_the_prefix_under_a_new_id(
    node_factory: NodeFactory,
) -> None:
    node = node_factory(config=CONFIG)
    fill(node, "k", 100)
    replid = replication_id(node)
    node.kill()
    segment = segments(node)[-1]
    start, end = record_spans(segment)[49]  # the 50th write
    data = bytearray(segment.read_bytes())
    data[(start + HEADER_BYTES + end) // 2] ^= 0x01
    segment.write_bytes(bytes(data))

    node.start()
    log = last_run_log(node)
    assert "ERROR" in log and "corrupt data" in log and "NOT loaded" in log, log
    assert "starting a new replication id" in log
    assert present(node, "k", 100) == 49
    assert list(node.data_dir.glob("wal-*.corrupt-*")), "damaged data not kept"
    # Replicas may hold the records we set aside: a new id makes them full-sync.
    assert replication_id(node) != replid
    node.redis().set("after", "repair")
    node.kill()
    node.start()
    assert node.redis().get("after") == b"repair" and present(node, "k", 100) == 49


def test_no_usable_snapshot_refuses_to_start_and_says_what_to_do(
    node_factory: NodeFactory,
) -> None:
    node = node_factory(config=CONFIG)
    fill(node, "k", 20)
    node.redis().save()
    node.kill()
    for path in snapshots(node):
        data = bytearray(path.read_bytes())
        data[-3] ^= 0xFF  # the trailer
        path.write_bytes(bytes(data))

    node.start(wait=False)
    assert node.wait_exit(30) == 1
    log = last_run_log(node)
    assert "no usable snapshot" in log and "restore this directory from a backup" in log, log
    # The advice works: with the directory moved aside the node starts, empty.
    shutil.move(node.data_dir, node.data_dir.with_name("moved-aside"))
    node.start()
    assert node.redis().dbsize() == 0
