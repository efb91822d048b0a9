"""Huge pages for Python's object memory (kv_store.huge_pages, synap/hugepages.py) on real
servers: INFO memory and the start-up log say which way the node runs; with the opt-in
(auto) the keys' memory lands on transparent huge pages (AnonHugePages in
/proc/PID/smaps_rollup grows), without it (never, the default; SYNAP_HUGE_PAGES=never;
or the pure-Python build) it does not; either way a full sync from a forked child gives
the replica the master's exact data, and INFO stats reports the fork."""

from __future__ import annotations

from pathlib import Path

import pytest

from synap import hugearena, hugepages
from tests.support.checks import assert_same_data
from tests.support.server import NodeFactory, SynapProcess

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc smaps_rollup"
)

KEYS = 60_000  # ~15 MB of keys and values: several huge pages' worth
FORK = {"SYNAP_FULL_SYNC_FORK": "always"}


def system_thp() -> str | None:
    try:
        text = (hugepages.THP_DIR / "enabled").read_text()
    except OSError:
        return None
    return hugepages.thp_mode(text)


def needs_thp() -> None:
    if system_thp() not in ("always", "madvise"):
        pytest.skip(f"the system's transparent_hugepage mode is {system_thp()}: nothing to test")
    if not hugearena.BUILT:
        pytest.skip("the C module synap.hugearena is not built (pure-Python build)")


AUTO = {"kv_store": {"huge_pages": "auto"}}  # opt-in (the default is never)


def anon_huge_kb(node: SynapProcess) -> int:
    for line in Path(f"/proc/{node.pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    raise AssertionError("no AnonHugePages in smaps_rollup")


def fill(node: SynapProcess) -> None:
    r = node.redis()
    for first in range(0, KEYS, 1000):
        r.mset({f"key:{i:07d}": f"{i}-".ljust(100, "v") for i in range(first, first + 1000)})


def test_with_auto_the_keys_live_on_huge_pages_and_a_forked_sync_is_exact(
    node_factory: NodeFactory,
) -> None:
    needs_thp()
    master = node_factory.master(config=AUTO, env=FORK)
    memory = master.redis().info("memory")
    assert memory["synap_huge_pages"] == "active"
    assert "huge pages: active" in master.log_text()
    before = anon_huge_kb(master)
    fill(master)
    grown = anon_huge_kb(master) - before
    assert grown >= 8 * 1024, f"AnonHugePages grew by {grown} kB only"
    memory = master.redis().info("memory")
    assert memory["synap_huge_pages_arenas"] >= 8
    # the values stay on the huge pages (kv_store.shared_values needs 4 KiB pages to pay)
    assert memory["synap_shared_values"] == (
        "off (huge pages are active: fork() copies few page tables already)"
    )
    # the prefault thread holds populated memory ahead of the arenas in use
    assert memory["synap_huge_pages_prefault"] == "running"
    assert memory["synap_huge_pages_prefaulted_bytes"] >= 8 * 2**20
    assert "MiB populated ahead of them" in master.log_text()
    replica = node_factory.replica(master)
    assert_same_data(master, [replica], timeout=60)
    assert "by process" in master.log_text()  # the forked path sent it
    stats = master.redis().info("stats")
    assert stats["total_forks"] == 1
    assert 0 < stats["latest_fork_usec"] < 5_000_000
    metrics = master.http.get("/metrics").text
    assert "synap_replication_forks_total 1.0" in metrics
    assert "synap_huge_pages_active 1.0" in metrics


def test_by_default_4k_pages_are_kept_and_the_node_says_so(node_factory: NodeFactory) -> None:
    master = node_factory.master(env=FORK)  # kv_store.huge_pages: never, the default
    memory = master.redis().info("memory")
    assert memory["synap_huge_pages"] == "off (turned off: kv_store.huge_pages is never)"
    assert memory["synap_huge_pages_arenas"] == 0
    assert memory["synap_huge_pages_prefault"] == "off"
    assert "huge pages: off (turned off: kv_store.huge_pages is never)" in master.log_text()
    before = anon_huge_kb(master)
    fill(master)
    if system_thp() == "madvise":  # nothing asks for huge pages: none appear
        assert anon_huge_kb(master) - before < 4 * 1024
    replica = node_factory.replica(master)
    assert_same_data(master, [replica], timeout=60)
    assert master.redis().info("stats")["total_forks"] == 1
    assert "synap_huge_pages_active 0.0" in master.http.get("/metrics").text


def test_the_environment_wins_over_the_config(node_factory: NodeFactory) -> None:
    node = node_factory(config=AUTO, env={"SYNAP_HUGE_PAGES": "never"})
    assert node.redis().info("memory")["synap_huge_pages"] == (
        "off (turned off: SYNAP_HUGE_PAGES is never)"
    )
    assert node.redis().info("stats")["latest_fork_usec"] == 0  # no fork yet


def test_the_pure_python_build_runs_without_and_says_why(node_factory: NodeFactory) -> None:
    node = node_factory(config=AUTO, env={"SYNAP_PURE_PYTHON": "1"})
    assert node.redis().info("memory")["synap_huge_pages"] == (
        "off (the C module synap.hugearena is not built (pure-Python build))"
    )
    node.redis().set("k", "v")
    assert node.redis().get("k") == b"v"
