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
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

from synap.commands.errors import ReadOnlyError, WritesPausedError


class Role(StrEnum):
    STANDALONE = "standalone"
    MASTER = "master"
    REPLICA = "replica"


_ALLOWED: dict[Role, frozenset[Role]] = {
    Role.STANDALONE: frozenset({Role.MASTER, Role.REPLICA}),
    Role.MASTER: frozenset({Role.REPLICA, Role.STANDALONE}),
    Role.REPLICA: frozenset({Role.MASTER, Role.REPLICA, Role.STANDALONE}),
}


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

    def transition(self, new: Role, reason: str, master_address: str | None = None) -> None:
        if new is not self.role and new not in _ALLOWED[self.role]:
            raise IllegalTransition(f"cannot change role from {self.role} to {new}")
        if new is Role.REPLICA and not master_address:
            raise IllegalTransition("a replica needs a master address")
        self.history.append(Transition(time.time(), self.role, new, reason))
        del self.history[:-20]
        self.role = new
        self.master_address = master_address if new is Role.REPLICA else None
        if new is not Role.MASTER:
            self._writes_paused_until = 0.0

    @property
    def is_replica(self) -> bool:
        return self.role is Role.REPLICA

    @property
    def is_master(self) -> bool:
        return self.role is Role.MASTER

    # ---------------------------------------------------------------- writes
    def pause_writes(self, seconds: float) -> None:
        """Refuse writes with a retryable error for up to ``seconds`` (planned failover)."""
        self._writes_paused_until = time.monotonic() + seconds

    def resume_writes(self) -> None:
        self._writes_paused_until = 0.0

    @property
    def writes_paused(self) -> bool:
        return self._writes_paused_until > time.monotonic()

    def check_writable(self) -> None:
        """Raise unless this node may accept a client write right now."""
        if self.role is Role.REPLICA:
            raise ReadOnlyError(self.master_address)
        if self._writes_paused_until and self.writes_paused:
            raise WritesPausedError()
