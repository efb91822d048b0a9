"""The role state machine (synap/replication/roles.py): its transition table, what a
transition records, and the write pause used by planned failovers."""

from __future__ import annotations

import itertools

import pytest

from synap.api.error_status import http_error
from synap.commands.errors import ReadOnlyError, WritesPausedError
from synap.replication import roles as roles_module
from synap.replication.roles import HISTORY_KEPT, IllegalTransition, Role, RoleMachine

S, M, R = Role.STANDALONE, Role.MASTER, Role.REPLICA

# The table of the module docstring; staying in a role is always allowed.
LEGAL = {
    (S, S),
    (S, M),
    (S, R),
    (M, M),
    (M, R),
    (M, S),
    (R, R),
    (R, M),
    (R, S),
}


def machine(role: Role) -> RoleMachine:
    m = RoleMachine()
    if role is not S:
        m.transition(role, "setup", "10.0.0.1:15501" if role is R else None)
    return m


@pytest.mark.parametrize(("old", "new"), list(itertools.product(Role, Role)))
def test_transition_table(old: Role, new: Role) -> None:
    m = machine(old)
    address = "10.0.0.2:15501" if new is R else None
    if (old, new) in LEGAL:
        m.transition(new, "test", address)
        assert m.role is new
        assert m.history[-1].old is old and m.history[-1].new is new
        assert m.history[-1].reason == "test"
    else:  # pragma: no cover - every pair is legal today; kept for future states
        with pytest.raises(IllegalTransition):
            m.transition(new, "test", address)
        assert m.role is old


@pytest.mark.parametrize("old", list(Role))
def test_a_replica_needs_a_master_address(old: Role) -> None:
    m = machine(old)
    before = (m.role, m.master_address, len(m.history))
    with pytest.raises(IllegalTransition, match="master address"):
        m.transition(R, "no address")
    assert (m.role, m.master_address, len(m.history)) == before


def test_master_address_is_kept_only_while_a_replica() -> None:
    m = RoleMachine()
    m.transition(R, "follow", "10.0.0.1:15501")
    assert m.master_address == "10.0.0.1:15501" and m.is_replica and not m.is_master
    m.transition(R, "repoint", "10.0.0.9:15501")
    assert m.master_address == "10.0.0.9:15501"
    m.transition(M, "promote", "ignored:1")
    assert m.master_address is None and m.is_master
    m.transition(S, "stop")
    assert m.master_address is None and not m.is_replica and not m.is_master


def test_history_is_bounded() -> None:
    m = RoleMachine()
    for i in range(HISTORY_KEPT + 5):
        m.transition(R, f"repoint {i}", f"10.0.0.1:{15000 + i}")
    assert len(m.history) == HISTORY_KEPT
    assert m.history[-1].reason == f"repoint {HISTORY_KEPT + 4}"


# ------------------------------------------------------------------ writes


def test_replica_refuses_writes_with_readonly_naming_its_master() -> None:
    m = machine(R)
    with pytest.raises(ReadOnlyError) as info:
        m.check_writable()
    assert info.value.master == "10.0.0.1:15501"
    assert info.value.message.startswith("READONLY")


@pytest.mark.parametrize("role", [S, M])
def test_writable_roles_accept_writes(role: Role) -> None:
    machine(role).check_writable()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(roles_module.time, "monotonic", fake.monotonic)
    return fake


def test_pause_lease_refuses_writes_with_tryagain_until_it_runs_out(clock: FakeClock) -> None:
    m = machine(M)
    m.pause_writes(2.0)
    assert m.writes_paused and m.writes_paused_for == pytest.approx(2.0)
    with pytest.raises(WritesPausedError) as info:
        m.check_writable()
    assert info.value.message.startswith("TRYAGAIN") and http_error(info.value)[0] == 503
    clock.now += 1.5
    assert m.writes_paused and m.writes_paused_for == pytest.approx(0.5)
    clock.now += 0.6
    assert not m.writes_paused and m.writes_paused_for == 0.0
    m.check_writable()


def test_fence_holds_until_resumed(clock: FakeClock) -> None:
    m = machine(M)
    m.pause_writes(None)
    clock.now += 10**9
    assert m.writes_paused and m.writes_paused_for is None
    with pytest.raises(WritesPausedError):
        m.check_writable()
    m.resume_writes()
    assert not m.writes_paused
    m.check_writable()


def test_a_new_pause_replaces_the_old_one(clock: FakeClock) -> None:
    m = machine(M)
    m.pause_writes(None)
    m.pause_writes(1.0)
    clock.now += 2
    assert not m.writes_paused


def test_demotion_ends_a_pause_and_readonly_takes_over() -> None:
    m = machine(M)
    m.pause_writes(None)
    m.transition(R, "repointed after failover", "10.0.0.2:15501")
    assert not m.writes_paused
    with pytest.raises(ReadOnlyError):
        m.check_writable()


def test_staying_master_keeps_the_pause_and_a_role_change_drops_it() -> None:
    m = machine(M)
    m.pause_writes(None)
    m.transition(M, "promote on a master is a no-op")
    assert m.writes_paused
    m.transition(S, "stop")
    assert not m.writes_paused
    m.pause_writes(None)
    m.transition(M, "promote standalone")
    assert not m.writes_paused


@pytest.mark.parametrize("seconds", [0, -1, float("inf"), float("nan")])
def test_pause_needs_a_positive_finite_lease(seconds: float) -> None:
    m = machine(M)
    with pytest.raises(ValueError):
        m.pause_writes(seconds)
    assert not m.writes_paused
