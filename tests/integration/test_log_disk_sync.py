"""The WAL is the replication log: a replica further behind than the memory log continues
by partial sync read from the segments on disk (masters, restarted masters, promoted
replicas), retention deletes only covered segments, damage leads to a full sync, and
``synap-cli log inspect`` prints and verifies the records."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from synap.persistence.wal import HEADER, WAL_MAGIC, iter_segment, list_segments
from tests.support.checks import assert_same_data, syncs
from tests.support.server import NodeFactory, SynapProcess

LOG_MAX_OPS = 1000
CONFIG: dict[str, Any] = {
    "replication": {
        "heartbeat_interval_ms": 100,
        "reconnect_delay_ms": 200,
        "log_max_ops": LOG_MAX_OPS,
    },
    "persistence": {"segment_max_mb": 1},
}


def write(node: SynapProcess, prefix: str, count: int, value_bytes: int = 100) -> None:
    client = node.redis()
    for start in range(0, count, 500):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(count, start + 500)):
            pipe.set(f"{prefix}:{i}", f"{i}:".encode() + b"v" * value_bytes)
        pipe.execute()


def disk_partials(node: SynapProcess) -> int:
    """Partial syncs this node served from its segments (adapt here if renamed)."""
    return int(node.stats()["partial_syncs_from_disk"])


def test_replica_away_for_3x_the_memory_log_rejoins_by_partial_sync_from_disk(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=CONFIG)
    replica = node_factory.replica(master, config=CONFIG)
    write(master, "before", 100)
    offset = assert_same_data(master, [replica])
    replica.terminate()
    write(master, "away", 3 * LOG_MAX_OPS)
    stats = master.stats()
    # The memory log no longer reaches the replica's offset; the disk does.
    assert stats["log_memory_first_offset"] > offset + 1
    assert 0 < stats["log_disk_first_offset"] <= offset + 1
    assert stats["log_disk_last_offset"] == stats["master_offset"]
    full_before, partial_before = syncs(master)
    replica.restart()
    assert_same_data(master, [replica])
    assert syncs(replica) == (0, 1), replica.log_tail()
    assert syncs(master) == (full_before, partial_before + 1), master.log_tail()
    assert disk_partials(master) == 1
    assert master.stats()["records_sent_from_disk"] >= 2 * LOG_MAX_OPS - 100
    assert "from the WAL segments on disk" in master.log_text()
    last = 3 * LOG_MAX_OPS - 1
    assert replica.redis().get(f"away:{last}") == f"{last}:".encode() + b"v" * 100
    info = master.redis().info("replication")
    assert info["synap_partial_syncs_from_disk"] == 1
    assert info["synap_log_disk_first_offset"] == master.stats()["log_disk_first_offset"]
    assert info["synap_log_memory_first_offset"] == master.stats()["log_memory_first_offset"]


def test_a_restarted_middle_replica_serves_its_sub_replica_from_disk(
    node_factory: NodeFactory,
) -> None:
    top = node_factory.master(config=CONFIG)
    middle = node_factory.replica(top, config=CONFIG, replica_listen=True)
    leaf = node_factory.replica(middle, config=CONFIG)
    write(top, "before", 100)
    offset = assert_same_data(top, [middle, leaf])
    leaf.terminate()
    write(top, "away", 3 * LOG_MAX_OPS)
    assert_same_data(top, [middle])
    middle.terminate()
    middle.restart()
    assert_same_data(top, [middle])
    assert middle.stats()["log_memory_first_offset"] > offset + 1
    leaf.restart()
    assert_same_data(top, [middle, leaf])
    assert syncs(leaf) == (0, 1), leaf.log_tail()
    assert disk_partials(middle) == 1, middle.log_tail()


def test_after_a_master_restart_the_disk_serves_the_partial_sync(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=CONFIG)
    replica = node_factory.replica(master, config=CONFIG)
    write(master, "before", 100)
    offset = assert_same_data(master, [replica])
    replica.terminate()
    write(master, "away", 3 * LOG_MAX_OPS)
    master.terminate()
    master.restart()
    stats = master.stats()
    assert stats["log_memory_first_offset"] > offset + 1  # refilled with the newest only
    assert stats["log_disk_first_offset"] <= offset + 1
    replica.restart()
    assert_same_data(master, [replica])
    assert syncs(replica) == (0, 1), replica.log_tail()
    assert disk_partials(master) == 1


def test_a_promoted_replica_serves_partial_sync_from_its_own_disk(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=CONFIG)
    heir = node_factory.replica(master, config=CONFIG, replica_listen=True)
    other = node_factory.replica(master, config=CONFIG)
    write(master, "before", 100)
    offset = assert_same_data(master, [heir, other])
    other.terminate()
    write(master, "away", 3 * LOG_MAX_OPS)
    assert_same_data(master, [heir])
    # The replica wrote the same records at the same offsets to its own segments.
    heir_stats = heir.stats()
    assert heir_stats["log_disk_first_offset"] <= offset + 1
    assert heir_stats["log_disk_last_offset"] == master.stats()["master_offset"]
    master.terminate()
    response = heir.http.post("/api/replication/promote", json={})
    assert response.status_code == 200, response.text
    other.master_address = heir.replica_address
    other.restart()
    assert_same_data(heir, [other])
    assert syncs(other) == (0, 1), other.log_tail()
    assert disk_partials(heir) == 1, heir.log_tail()


def test_retention_deletes_only_segments_a_snapshot_covers(node_factory: NodeFactory) -> None:
    config = {
        **CONFIG,
        "persistence": {
            "segment_max_mb": 1,
            "snapshot_interval_secs": 0,
            "log_retention": {"max_mb": 0, "max_age_secs": None, "max_records": None},
        },
    }
    node = node_factory.master(config=config)
    write(node, "a", 3000, value_bytes=1000)  # ~3 MB: several segments
    segments = list_segments(node.data_dir)
    assert len(segments) >= 3
    # Nothing is covered yet (the only snapshot is the one taken at start): kept.
    node.redis().execute_command("SAVE")
    first_save = node.stats()["master_offset"]
    assert list_segments(node.data_dir)[0].first_offset == 1
    write(node, "b", 3000, value_bytes=1000)
    node.redis().execute_command("SAVE")
    # Two snapshots are kept; segments wholly before the older one (first_save) go.
    remaining = list_segments(node.data_dir)
    assert remaining[0].first_offset > 1
    assert remaining[0].first_offset <= first_save + 1
    assert node.stats()["log_disk_first_offset"] == remaining[0].first_offset
    info = node.redis().info("persistence")
    assert info["synap_log_disk_first_offset"] == remaining[0].first_offset
    assert info["synap_log_segments_deleted"] >= 1
    # Recovery still works from what is left.
    digest_before = node.http.get("/api/replication/digest").json()["digest"]
    node.terminate()
    node.restart()
    assert node.http.get("/api/replication/digest").json()["digest"] == digest_before


def _corrupt_middle_record(path: Path) -> int:
    """Flip a payload byte of a record in the middle of ``path``; returns its offset."""
    records = list(iter_segment(path))
    target = records[len(records) // 2][0]
    data = bytearray(path.read_bytes())
    pos = len(WAL_MAGIC)
    while True:
        length, _, offset = HEADER.unpack_from(data, pos)
        if offset == target:
            data[pos + HEADER.size + 3] ^= 0xFF
            break
        pos += HEADER.size + length
    with open(path, "r+b") as f:
        f.write(bytes(data))
    return target


def test_a_corrupt_middle_segment_leads_to_a_full_sync_not_a_crash(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=CONFIG)
    replica = node_factory.replica(master, config=CONFIG)
    write(master, "before", 100)
    assert_same_data(master, [replica])
    replica.terminate()
    write(master, "away", 3000, value_bytes=1000)
    segments = list_segments(master.data_dir)
    assert len(segments) >= 3
    bad = segments[1]
    _corrupt_middle_record(bad.path)
    full_before, _ = syncs(master)
    replica.restart()
    assert_same_data(master, [replica])
    log = master.log_text()
    assert re.search(rf"replication log on disk is damaged: WAL segment {bad.path.name}", log), (
        master.log_tail()
    )
    assert "Full sync required" in log
    assert master.is_running()
    full, _ = syncs(master)
    assert full == full_before + 1
    # The damaged part is no longer offered.
    assert master.stats()["log_disk_first_offset"] > bad.first_offset
    assert bad.path.name in master.redis().info("persistence")["synap_log_damaged_segments"]


def _inspect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "synap-cli"), "log", "inspect", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_log_inspect_prints_records_and_fails_on_corruption(node_factory: NodeFactory) -> None:
    node = node_factory.master(config=CONFIG)
    client = node.redis()
    client.set("plain", "x")
    client.set("gone", "y")
    client.delete("gone")
    client.expire("plain", 1000)
    node.http.post("/kv/set", json={"key": "doc", "value": {"a": 1}})
    write(node, "bulk", 3000, value_bytes=1000)
    node.terminate()
    data_dir = str(node.data_dir)
    result = _inspect("--data-dir", data_dir, "--limit", "5")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert lines[0] == "1  SET plain value_bytes=1 expire_at_ms=0"
    assert lines[1].startswith("2  SET gone")
    assert lines[2] == "3  DEL gone"
    assert lines[3].startswith("4  EXPIRE plain expire_at_ms=")
    assert lines[4].startswith("5  SET doc value_bytes=7") and lines[4].endswith("kind=json")
    assert "checksums OK" in result.stderr
    result = _inspect("--data-dir", data_dir, "--from", "2000", "--limit", "3")
    assert result.returncode == 0, result.stderr
    offsets = [int(line.split()[0]) for line in result.stdout.splitlines() if line[0].isdigit()]
    assert offsets == [2000, 2001, 2002]
    full = _inspect("--data-dir", data_dir)
    assert full.returncode == 0, full.stderr
    assert len([line for line in full.stdout.splitlines() if line[0].isdigit()]) == 3005
    bad = list_segments(node.data_dir)[1]
    offset = _corrupt_middle_record(bad.path)
    result = _inspect("--data-dir", data_dir)
    assert result.returncode == 1
    assert f"CORRUPT: {bad.path.name}: checksum mismatch in record at offset {offset}" in (
        result.stderr
    )
    # Records before the damage were still printed, none after it.
    printed = [int(line.split()[0]) for line in result.stdout.splitlines() if line[0].isdigit()]
    assert printed[-1] == offset - 1
