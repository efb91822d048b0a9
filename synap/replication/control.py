"""What the replication control operations (promote, follow, stop, pause, resume)
answer: small values, encoded by the front ends (synap/api/views.py for HTTP JSON)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Promoted:
    """This node is a master (``already``: it was one before the request)."""

    replication_id: str
    offset: int
    replica_listen_address: str | None
    previous_replication_id: str | None = None
    topology_file: str | None = None
    already: bool = False


@dataclass(frozen=True, slots=True)
class Following:
    """This node replicates from ``master_address`` (``already``: it did before)."""

    master_address: str
    topology_file: str | None = None
    already: bool = False


@dataclass(frozen=True, slots=True)
class Stopped:
    """Replication stopped: this node is standalone."""

    topology_file: str | None


@dataclass(frozen=True, slots=True)
class WritesPaused:
    seconds: float | None
    role: str
    replication_id: str
    master_offset: int


@dataclass(frozen=True, slots=True)
class WritesResumed:
    was_paused: bool
    role: str
    master_offset: int


@dataclass(frozen=True, slots=True)
class HandedOff:
    """Automatic failover: the leader key was handed to member ``target_id``."""

    target_id: str
    epoch: int
    offset: int


RoleChange = Promoted | Following | Stopped | WritesPaused | WritesResumed | HandedOff
