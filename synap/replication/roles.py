"""The node's role as one explicit state machine: standalone, master or replica.

Every role change goes through :meth:`RoleMachine.transition`, which checks the move is
legal and records when and why it happened; the rest of the node asks this object
whether it may write instead of keeping flags of its own.

Legal moves (all at runtime, without a restart)::

    standalone -> master      (start a replica listener)
    standalone -> replica     (REPLICAOF host port)
    master     -> replica     (repointed, e.g. the old master after a failover)
    master     -> standalone
    replica    -> master      (promote / REPLICAOF NO ONE)
    replica    -> replica     (repointed to another master)
    replica    -> standalone

Staying in the same role is always allowed (a replica repointed to another master is
``replica -> replica``).  A replica always names the master it follows.

Writes can also be *paused* on a writable node, for a planned failover: clients get a
retryable ``TRYAGAIN`` (HTTP 503) instead of ``READONLY``.  A pause ends when its lease
runs out, on :meth:`RoleMachine.resume_writes`, or when the node stops being a master.
A pause without a lease (``seconds=None``) is a *fence*: it holds until resumed or
demoted, so a failover tool that dies mid-way leaves no second writable master behind.

Under automatic failover (synap/coordination/) a master may write only until
``leadership_until`` (monotonic seconds), which the coordinator moves forward each time
it renews its etcd lease; the check is made at write time, so a master that was frozen
past that instant refuses the first write it sees on waking, before any timer runs.
``None`` (manual mode) means no such limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from synap.commands.errors import LeadershipLostError, ReadOnlyError, WritesPausedError


class Role(StrEnum):
    STANDALONE = "standalone"
    MASTER = "master"
    REPLICA = "replica"


_ALLOWED: dict[Role, frozenset[Role]] = {
    Role.STANDALONE: frozenset({Role.MASTER, Role.REPLICA}),
    Role.MASTER: frozenset({Role.REPLICA, Role.STANDALONE}),
    Role.REPLICA: frozenset({Role.MASTER, Role.REPLICA, Role.STANDALONE}),
}


# check_writable runs on every write; reading Role.REPLICA off the enum class costs
# ~0.15 us in Python 3.11, a module constant almost nothing (Final: compiled, a C static
# rather than a look-up in the module's dict).
_REPLICA: Final = Role.REPLICA

# Role changes remembered for the operator views.
HISTORY_KEPT = 20


class IllegalTransition(Exception):
    pass


@dataclass
class Transition:
    at: float
    old: Role
    new: Role
    reason: str


@dataclass
class RoleMachine:
    role: Role = Role.STANDALONE
    master_address: str | None = None  # "host:port" this node follows, as a replica
    history: list[Transition] = field(default_factory=list)
    _writes_paused_until: float = 0.0
    # Automatic failover: writable only before this monotonic instant (None = no limit).
    leadership_until: float | None = None
    fence_reason: str = "no master has been elected yet"
    elected_master: str | None = None  # shown in the error: where writes should go

    def transition(self, new: Role, reason: str, master_address: str | None = None) -> None:
        if new is not self.role and new not in _ALLOWED[self.role]:
            raise IllegalTransition(f"cannot change role from {self.role} to {new}")
        if new is Role.REPLICA and not master_address:
            raise IllegalTransition("a replica needs a master address")
        if new is not self.role or new is Role.REPLICA:
            # A pause belongs to the role it was taken in (a demoted master is fenced
            # by READONLY from now on; a promoted node starts writable).
            self._writes_paused_until = 0.0
        self.history.append(Transition(time.time(), self.role, new, reason))
        del self.history[:-HISTORY_KEPT]
        self.role = new
        self.master_address = master_address if new is Role.REPLICA else None

    @property
    def is_replica(self) -> bool:
        return self.role is Role.REPLICA

    @property
    def is_master(self) -> bool:
        return self.role is Role.MASTER

    # ---------------------------------------------------------------- writes
    def pause_writes(self, seconds: float | None) -> None:
        """Refuse writes with a retryable error for ``seconds`` (a lease), or until
        resumed or demoted when ``seconds`` is None (a fence).  A new call replaces the
        previous pause."""
        if seconds is not None and not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError(f"a pause lasts a positive number of seconds, not {seconds!r}")
        self._writes_paused_until = math.inf if seconds is None else time.monotonic() + seconds

    @property
    def writes_paused_for(self) -> float | None:
        """Seconds left in the current pause: 0.0 when not paused, None for a fence."""
        if self._writes_paused_until == math.inf:
            return None
        return max(0.0, self._writes_paused_until - time.monotonic())

    @property
    def fenced(self) -> bool:
        """True while automatic failover forbids this node to write (not the leader)."""
        until = self.leadership_until
        return until is not None and time.monotonic() >= until

    def resume_writes(self) -> None:
        self._writes_paused_until = 0.0

    @property
    def writes_paused(self) -> bool:
        return self._writes_paused_until > time.monotonic()

    def check_writable(self) -> None:
        """Raise unless this node may accept a client write right now."""
        if self.role is _REPLICA:
            raise ReadOnlyError(self.master_address)
        until = self.leadership_until
        if until is not None and time.monotonic() >= until:
            raise LeadershipLostError(self.fence_reason, self.elected_master)
        if self._writes_paused_until and self.writes_paused:
            raise WritesPausedError()
