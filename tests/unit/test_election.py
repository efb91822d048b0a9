"""The sans-IO election logic (synap/coordination/election.py) and the etcd request
builders (synap/coordination/etcd.py): who campaigns, who wins, lease arithmetic."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from synap.api.error_status import http_error
from synap.coordination.election import (
    Action,
    Handoff,
    LeaderInfo,
    LeaseClock,
    MemberInfo,
    best_candidate,
    decide,
    encode_last_offset,
    parse_epoch,
    parse_last_offset,
    valid_handoff,
)
from synap.coordination.etcd import b64, campaign_txn, handoff_txn, prefix_end, resign_txn


def member(
    node_id: str,
    offset: int = 0,
    *,
    priority: int = 100,
    candidate: bool = True,
    master_offset: int = 0,
    listen: str | None = "127.0.0.1:1",
) -> MemberInfo:
    return MemberInfo(
        id=node_id,
        http_address="127.0.0.1:2",
        resp_address="127.0.0.1:3",
        replica_listen_address=listen,
        offset=offset,
        master_offset=master_offset,
        priority=priority,
        role="replica",
        candidate=candidate,
    )


def test_highest_offset_wins() -> None:
    members = [member("a", 10), member("b", 30), member("c", 20)]
    assert best_candidate(members, max_lag=1000) == members[1]


def test_ties_go_to_higher_priority_then_lower_id() -> None:
    assert best_candidate([member("a", 5, priority=1), member("b", 5, priority=9)], 100).id == "b"
    assert best_candidate([member("b", 5), member("a", 5)], 100).id == "a"


def test_priority_zero_never_wins_even_with_the_most_data() -> None:
    members = [member("zero", 100, priority=0), member("low", 90)]
    assert best_candidate(members, 1000).id == "low"
    assert best_candidate([member("zero", 100, priority=0)], 1000) is None


def test_non_candidates_and_members_without_listener_are_skipped() -> None:
    members = [member("stale", 100, candidate=False), member("nolisten", 100, listen=None)]
    assert best_candidate(members, 1000) is None


def test_lagging_replica_is_not_a_candidate() -> None:
    # The most advanced offset anyone knows of is 1000 (heard from the dead master).
    members = [member("behind", 400, master_offset=1000), member("close", 950)]
    assert best_candidate(members, max_lag=100).id == "close"
    assert best_candidate([member("behind", 400, master_offset=1000)], max_lag=100) is None
    # ... unless max_lag allows it.
    assert best_candidate([member("behind", 400, master_offset=1000)], max_lag=600) is not None


def test_decide_follows_an_existing_leader() -> None:
    me = member("me", 5)
    leader = LeaderInfo("other", 3, None, None, "127.0.0.1:9")
    assert decide(me, leader, [], 100, 0.0, 1.0, 6.0) is Action.FOLLOW
    # Our own id under an old lease (we restarted): wait for it to expire.
    mine = replace(leader, id="me")
    assert decide(me, mine, [], 100, 0.0, 1.0, 6.0) is Action.WAIT


def test_decide_only_the_best_campaigns_after_settling() -> None:
    me = member("me", 5)
    better = member("better", 9)
    assert decide(me, None, [better], 100, 0.2, 1.0, 6.0) is Action.WAIT  # settling
    assert decide(me, None, [better], 100, 2.0, 1.0, 6.0) is Action.WAIT  # not the best
    assert decide(better, None, [me], 100, 2.0, 1.0, 6.0) is Action.CAMPAIGN
    # Our own record from etcd (maybe stale) is replaced by the fresh one.
    assert decide(better, None, [me, member("better", 0)], 100, 2.0, 1.0, 6.0) is Action.CAMPAIGN


def test_decide_after_grace_any_eligible_member_campaigns() -> None:
    me = member("me", 5)
    stuck = member("stuck", 9)
    assert decide(me, None, [stuck], 100, 7.0, 1.0, 6.0) is Action.CAMPAIGN
    # ... but never a priority-0 or lagging one.
    zero = member("me", 5, priority=0)
    assert decide(zero, None, [stuck], 100, 7.0, 1.0, 6.0) is Action.WAIT
    assert decide(me, None, [stuck], 2, 7.0, 1.0, 6.0) is Action.WAIT


def test_fresh_group_all_at_offset_zero_picks_lowest_id() -> None:
    nodes = [member(f"127.0.0.1:{port}") for port in (5502, 5500, 5501)]
    winners = [n.id for n in nodes if decide(n, None, nodes, 100, 2.0, 1.0, 6.0) is Action.CAMPAIGN]
    assert winners == ["127.0.0.1:5500"]


def test_records_round_trip_and_bad_input_is_none() -> None:
    m = member("a", 7, master_offset=9)
    assert MemberInfo.decode(m.encode()) == m
    leader = LeaderInfo.of(m, 4)
    assert LeaderInfo.decode(leader.encode()) == leader
    assert leader.public() == {
        "epoch": 4,
        "master": {
            "id": "a",
            "http_address": "127.0.0.1:2",
            "resp_address": "127.0.0.1:3",
            "replica_listen_address": "127.0.0.1:1",
        },
    }
    for bad in (b"", b"not json", b"[]", b'{"id": 5}', b'{"epoch": 1}'):
        assert MemberInfo.decode(bad) is None
        assert LeaderInfo.decode(bad) is None
    odd = MemberInfo.decode(b'{"id": "x", "offset": "12", "priority": true, "candidate": 1}')
    assert odd is not None and (odd.offset, odd.priority, odd.candidate) == (0, 0, False)


@pytest.mark.parametrize(("raw", "epoch"), [(None, 0), (b"", 0), (b"7", 7), (b"x", 0), (b"-3", 0)])
def test_parse_epoch(raw: bytes | None, epoch: int) -> None:
    assert parse_epoch(raw) == epoch


def test_lease_clock_fences_before_the_lease_can_expire() -> None:
    clock = LeaseClock(3.0)
    assert clock.renew_every == pytest.approx(1.0)
    assert clock.valid_until(100.0) == pytest.approx(102.0)
    assert clock.valid_until(100.0) < 100.0 + clock.ttl


def test_prefix_end() -> None:
    assert prefix_end(b"/g/members/") == b"/g/members0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\0"


def test_campaign_txn_compares_leader_absent_and_epoch_unchanged() -> None:
    body = campaign_txn(b"/g/leader", b"{}", 42, b"/g/epoch", 17, 5)
    assert body["compare"] == [
        {"key": b64(b"/g/leader"), "target": "CREATE", "result": "EQUAL", "create_revision": "0"},
        {"key": b64(b"/g/epoch"), "target": "MOD", "result": "EQUAL", "mod_revision": "17"},
    ]
    leader_put, epoch_put = (op["request_put"] for op in body["success"])
    assert leader_put["lease"] == "42"
    assert "lease" not in epoch_put  # the epoch outlives every leader
    assert base64.b64decode(epoch_put["value"]) == b"5"
    resign = resign_txn(b"/g/leader", 42)
    assert resign["compare"][0]["lease"] == "42"


def test_lag_is_measured_against_the_last_recorded_leader_offset() -> None:
    # Every surviving replica is behind what the dead leader recorded in etcd.
    members = [member("a", 40), member("b", 45)]
    assert best_candidate(members, max_lag=10, known_offset=100) is None
    assert best_candidate(members, max_lag=60, known_offset=100).id == "b"
    me = member("b", 45)
    assert decide(me, None, members, 10, 9.0, 0.0, 6.0, known_offset=100) is Action.WAIT
    assert decide(me, None, members, 60, 0.1, 0.0, 6.0, known_offset=100) is Action.CAMPAIGN


def test_last_offset_record_of_an_older_epoch_is_ignored() -> None:
    value = encode_last_offset(3, 500)
    assert parse_last_offset(value, min_epoch=3) == 500
    assert parse_last_offset(value, min_epoch=2) == 500
    assert parse_last_offset(value, min_epoch=4) == 0
    for bad in (None, b"", b"junk", b"[1]", b'{"epoch": "3", "offset": 5}'):
        assert parse_last_offset(bad, min_epoch=1) == 0


def test_role_machine_refuses_writes_past_the_leadership_deadline() -> None:
    import time

    from synap.commands.errors import LeadershipLostError
    from synap.replication.roles import Role, RoleMachine

    roles = RoleMachine()
    roles.transition(Role.MASTER, "test")
    roles.check_writable()  # manual mode: no deadline
    assert not roles.fenced
    roles.leadership_until = time.monotonic() + 60
    roles.check_writable()
    roles.leadership_until = time.monotonic() - 0.001
    roles.fence_reason = "leadership lost: test"
    assert roles.fenced
    with pytest.raises(LeadershipLostError) as info:
        roles.check_writable()
    assert info.value.message == "READONLY leadership lost: test"
    assert http_error(info.value) == (409, "READONLY")


def test_handoff_hint_names_the_only_node_that_campaigns() -> None:
    old = member("a", 9)  # the old master: best by id on a tie
    named = member("c", 9)
    other = member("b", 9)
    hint = Handoff("a", "c", 4)
    everyone = [old, named, other]
    winners = [
        n.id
        for n in everyone
        if decide(n, None, everyone, 100, 0.0, 1.0, 6.0, handoff=hint) is Action.CAMPAIGN
    ]
    assert winners == ["c"]  # at once (no settling), and only the named one
    # Without the hint the ordinary rule picks "a" (lowest id on a tie).
    assert decide(old, None, everyone, 100, 2.0, 1.0, 6.0) is Action.CAMPAIGN
    assert decide(named, None, everyone, 100, 2.0, 1.0, 6.0) is Action.WAIT
    # Even past the grace period, others wait while the hint is valid.
    assert decide(other, None, everyone, 100, 7.0, 1.0, 6.0, handoff=hint) is Action.WAIT
    # Once a leader exists the hint is irrelevant: everyone follows it.
    leader = LeaderInfo("c", 5, None, None, "127.0.0.1:9")
    assert decide(other, leader, everyone, 100, 0.0, 1.0, 6.0, handoff=hint) is Action.FOLLOW


def test_handoff_hint_is_stale_after_a_newer_epoch_and_bad_input_is_none() -> None:
    encoded = Handoff("a", "c", 4).encode()
    assert valid_handoff(encoded, 4) == Handoff("a", "c", 4)
    assert valid_handoff(encoded, 3) == Handoff("a", "c", 4)
    assert valid_handoff(encoded, 5) is None  # an election already happened since
    for raw in (None, b"", b"not json", b"[]", b'{"from": "a"}', b'{"to": ""}'):
        assert valid_handoff(raw, 0) is None


def test_handoff_txn_writes_hint_and_deletes_leader_only_if_we_hold_it() -> None:
    body = handoff_txn(b"/g/leader", 7, b"/g/handoff", b"hint", 9)
    assert body["compare"] == [
        {"key": b64(b"/g/leader"), "target": "LEASE", "result": "EQUAL", "lease": "7"}
    ]
    put, delete = body["success"]
    assert put["request_put"] == {"key": b64(b"/g/handoff"), "value": b64(b"hint"), "lease": "9"}
    assert delete == {"request_delete_range": {"key": b64(b"/g/leader")}}
    assert base64.b64decode(put["request_put"]["key"]) == b"/g/handoff"
