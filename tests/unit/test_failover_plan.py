"""Which node a failover picks (synap/failover.py): the pure choice functions."""

from __future__ import annotations

from typing import Any

import pytest

from synap.failover import (
    NodeView,
    PlanError,
    normalize_url,
    pick_switchover_target,
    plan_promotion,
    routable,
    url_hostport,
)

A = "a" * 40
B = "b" * 40


def replica(url: str, offset: int, replid: str = A, **extra: Any) -> NodeView:
    stats = {"role": "replica", "replication_id": replid, "replica_offset": offset, **extra}
    return NodeView(url, stats=stats)


def dead(url: str) -> NodeView:
    return NodeView(url, error="ConnectError: refused")


# ------------------------------------------------------------------ switchover target


def entry(address: str, offset: int, state: str = "online", lag_ms: int = 0) -> dict[str, Any]:
    return {"address": address, "offset": offset, "state": state, "lag_ms": lag_ms}


def test_switchover_picks_the_highest_acknowledged_offset() -> None:
    chosen = pick_switchover_target([entry("h:1", 5), entry("h:2", 9), entry("h:3", 7)])
    assert chosen is not None and chosen["address"] == "h:2"


def test_switchover_ignores_replicas_that_are_not_online() -> None:
    chosen = pick_switchover_target([entry("h:1", 5), entry("h:2", 9, state="send_bulk")])
    assert chosen is not None and chosen["address"] == "h:1"
    assert pick_switchover_target([entry("h:2", 9, state="wait_bgsave")]) is None
    assert pick_switchover_target([]) is None


def test_switchover_tie_breaks_on_lag_then_address() -> None:
    chosen = pick_switchover_target([entry("h:2", 9, lag_ms=3), entry("h:1", 9, lag_ms=3)])
    assert chosen is not None and chosen["address"] == "h:1"
    chosen = pick_switchover_target([entry("h:1", 9, lag_ms=5), entry("h:2", 9, lag_ms=1)])
    assert chosen is not None and chosen["address"] == "h:2"


# ------------------------------------------------------------------ promotion


def test_promotion_picks_the_highest_offset_of_the_dead_masters_history() -> None:
    views = [dead("http://m"), replica("http://r1", 90), replica("http://r2", 120)]
    plan = plan_promotion(views)
    assert plan.candidate.url == "http://r2"
    assert [v.url for v in plan.followers] == ["http://r1"]
    assert [v.url for v, _ in plan.skipped] == ["http://m"]


def test_promotion_never_picks_a_replica_of_another_history() -> None:
    views = [
        replica("http://r1", 100),
        replica("http://r2", 80),
        replica("http://x", 10_000, replid=B),  # ahead, but not our history
    ]
    plan = plan_promotion(views)
    assert plan.candidate.url == "http://r1"
    assert [v.url for v in plan.foreign] == ["http://x"]
    assert [v.url for v in plan.followers] == ["http://r2"]


def test_promotion_refuses_when_histories_tie() -> None:
    with pytest.raises(PlanError, match="different histories"):
        plan_promotion([replica("http://r1", 100), replica("http://x", 100, replid=B)])


def test_promotion_refuses_while_a_master_is_reachable() -> None:
    master = NodeView("http://m", stats={"role": "master", "master_offset": 7})
    with pytest.raises(PlanError, match="synap-cli failover"):
        plan_promotion([master, replica("http://r1", 7)])


def test_promotion_skips_a_replica_in_the_middle_of_a_full_sync() -> None:
    views = [replica("http://r1", 500, sync_in_progress=True), replica("http://r2", 10)]
    plan = plan_promotion(views)
    assert plan.candidate.url == "http://r2"
    assert "full sync" in plan.skipped[0][1]


def test_promotion_needs_a_replica() -> None:
    standalone = NodeView("http://s", stats={"role": "standalone", "master_offset": 3})
    with pytest.raises(PlanError, match="no reachable replica"):
        plan_promotion([dead("http://m"), standalone])


def test_promotion_tie_prefers_a_node_with_a_listener_then_the_given_order() -> None:
    views = [replica("http://r1", 50), replica("http://r2", 50, replica_listen_address="x:1")]
    assert plan_promotion(views).candidate.url == "http://r2"
    views = [replica("http://r1", 50), replica("http://r2", 50)]
    assert plan_promotion(views).candidate.url == "http://r1"


# ------------------------------------------------------------------ addresses


def test_addresses() -> None:
    assert normalize_url("127.0.0.1:5500/") == "http://127.0.0.1:5500"
    assert url_hostport("http://127.0.0.1:5500") == "127.0.0.1:5500"
    assert url_hostport("127.0.0.1:5500") == "127.0.0.1:5500"
    assert routable("0.0.0.0:15501", "http://10.1.2.3:5500") == "10.1.2.3:15501"
    assert routable("10.9.9.9:15501", "http://10.1.2.3:5500") == "10.9.9.9:15501"
