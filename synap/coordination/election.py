"""Sans-IO election logic: records, candidacy, the choice of a winner, and lease timing.

Nothing here does I/O or reads a clock; the driver (:mod:`.driver`) passes the time in.

Keys of a group ``G`` in etcd::

    /G/members/<id>   MemberInfo JSON, bound to the node's lease (vanishes with the node)
    /G/leader         LeaderInfo JSON, bound to the leader's lease
    /G/epoch          the newest epoch, no lease: survives every leader, so epochs grow
    /G/last_offset    {"epoch", "offset"} the leader last reached, no lease: after the
                      leader is gone, lag is still measured against how far it got
    /G/handoff        Handoff JSON {"from", "to", "epoch"}, on a short lease of its own:
                      written by a master that hands its leadership to a chosen replica
                      (``synap-cli failover``) in the same transaction that deletes its
                      leader key

Who becomes master when ``/G/leader`` is missing: among the members that are
*candidates* (a replica that was streaming from a master recently, a node started with
``--role master`` that has not followed anyone yet, or a master that just lost its
lease), with priority > 0 and at most ``max_lag_on_failover`` records behind the most
advanced member, the one with the highest offset; ties go to the higher priority, then
to the lower id. Each node computes this from the same member list and only the winner
campaigns; the campaign is a compare-and-swap, so even two nodes that disagree cannot
both win.

A planned switchover overrides that choice: while a valid handoff hint exists (its lease
has not expired and its epoch is not older than the newest one a node has seen), only the
node it names campaigns, at once; every other node waits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

import orjson


def members_prefix(group: str) -> bytes:
    return f"/{group}/members/".encode()


def member_key(group: str, node_id: str) -> bytes:
    return members_prefix(group) + node_id.encode()


def leader_key(group: str) -> bytes:
    return f"/{group}/leader".encode()


def epoch_key(group: str) -> bytes:
    return f"/{group}/epoch".encode()


def handoff_key(group: str) -> bytes:
    return f"/{group}/handoff".encode()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _record(data: bytes) -> dict[str, Any] | None:
    """A JSON object with a non-empty ``id``, or None (never raises on bad input)."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(raw, dict) or not _text(raw.get("id")):
        return None
    return raw


@dataclass(frozen=True)
class MemberInfo:
    """What a node publishes about itself under ``/G/members/<id>``."""

    id: str
    http_address: str | None
    resp_address: str | None
    replica_listen_address: str | None
    offset: int
    master_offset: int  # the newest offset of its master it heard of (replicas)
    priority: int
    role: str
    candidate: bool
    replid: str = ""

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, data: bytes) -> MemberInfo | None:
        """The record, or None if it is not one (never raises on bad input)."""
        raw = _record(data)
        if raw is None:
            return None
        return cls(
            id=raw["id"],
            http_address=_text(raw.get("http_address")),
            resp_address=_text(raw.get("resp_address")),
            replica_listen_address=_text(raw.get("replica_listen_address")),
            offset=_int(raw.get("offset")),
            master_offset=_int(raw.get("master_offset")),
            priority=_int(raw.get("priority")),
            role=_text(raw.get("role")) or "unknown",
            candidate=raw.get("candidate") is True,
            replid=_text(raw.get("replid")) or "",
        )


@dataclass(frozen=True)
class LeaderInfo:
    """The value of ``/G/leader``: who the master is, and its epoch."""

    id: str
    epoch: int
    http_address: str | None
    resp_address: str | None
    replica_listen_address: str | None

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, data: bytes) -> LeaderInfo | None:
        raw = _record(data)
        if raw is None:
            return None
        return cls(
            id=raw["id"],
            epoch=_int(raw.get("epoch")),
            http_address=_text(raw.get("http_address")),
            resp_address=_text(raw.get("resp_address")),
            replica_listen_address=_text(raw.get("replica_listen_address")),
        )

    @classmethod
    def of(cls, member: MemberInfo, epoch: int) -> LeaderInfo:
        return cls(
            member.id,
            epoch,
            member.http_address,
            member.resp_address,
            member.replica_listen_address,
        )

    def public(self) -> dict[str, Any]:
        """The body of ``GET /api/replication/leader``."""
        return {
            "epoch": self.epoch,
            "master": {
                "id": self.id,
                "http_address": self.http_address,
                "resp_address": self.resp_address,
                "replica_listen_address": self.replica_listen_address,
            },
        }


def last_offset_key(group: str) -> bytes:
    return f"/{group}/last_offset".encode()


def encode_last_offset(epoch: int, offset: int) -> bytes:
    return orjson.dumps({"epoch": epoch, "offset": offset})


def parse_last_offset(value: bytes | None, min_epoch: int) -> int:
    """The offset recorded by a leader of epoch >= ``min_epoch``, else 0 (ignored)."""
    if not value:
        return 0
    try:
        raw = orjson.loads(value)
    except orjson.JSONDecodeError:
        return 0
    if not isinstance(raw, dict) or _int(raw.get("epoch")) < min_epoch:
        return 0
    return _int(raw.get("offset"))


def parse_epoch(value: bytes | None) -> int:
    if not value:
        return 0
    try:
        return max(0, int(value))
    except ValueError:
        return 0


def is_eligible(member: MemberInfo, reference_offset: int, max_lag: int) -> bool:
    return (
        member.candidate
        and member.priority > 0
        and member.replica_listen_address is not None
        and reference_offset - member.offset <= max_lag
    )


def reference_offset(members: list[MemberInfo], known_offset: int = 0) -> int:
    """How far the group's history is known to have got: the most advanced offset any
    member reports (its own, or the newest master offset it heard) or the last leader
    recorded (``known_offset``)."""
    return max([known_offset, *(max(m.offset, m.master_offset) for m in members)])


def best_candidate(
    members: list[MemberInfo], max_lag: int, known_offset: int = 0
) -> MemberInfo | None:
    """The member that should become master, or None if no member may.

    Lag is measured against :func:`reference_offset`."""
    reference = reference_offset(members, known_offset)
    pool = [m for m in members if is_eligible(m, reference, max_lag)]
    if not pool:
        return None
    return min(pool, key=lambda m: (-m.offset, -m.priority, m.id))


@dataclass(frozen=True)
class Handoff:
    """The value of ``/G/handoff``: master ``from_id`` of ``epoch`` hands over to ``to``."""

    from_id: str
    to: str
    epoch: int

    def encode(self) -> bytes:
        return orjson.dumps({"from": self.from_id, "to": self.to, "epoch": self.epoch})

    @classmethod
    def decode(cls, data: bytes) -> Handoff | None:
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(raw, dict) or not _text(raw.get("to")):
            return None
        return cls(from_id=_text(raw.get("from")) or "", to=raw["to"], epoch=_int(raw.get("epoch")))


def valid_handoff(value: bytes | None, known_epoch: int) -> Handoff | None:
    """The hint stored in ``/G/handoff``, or None if there is none or it is stale (it was
    written by the master of an epoch older than ``known_epoch``: a later election
    already happened)."""
    if not value:
        return None
    hint = Handoff.decode(value)
    if hint is None or hint.epoch < known_epoch:
        return None
    return hint


class Action(Enum):
    WAIT = "wait"  # nothing to do this round
    FOLLOW = "follow"  # replicate from the current leader
    CAMPAIGN = "campaign"  # try to take the leader key


def decide(
    me: MemberInfo,
    leader: LeaderInfo | None,
    members: list[MemberInfo],
    max_lag: int,
    leaderless_for: float,
    settle: float,
    grace: float,
    known_offset: int = 0,
    handoff: Handoff | None = None,
) -> Action:
    """What a node that does not hold the leader key does this round.

    ``leaderless_for``: seconds since this node first saw no leader (0 while there is
    one). A node waits ``settle`` seconds after that (so that every member could publish
    its latest offset) before the best candidate campaigns; after ``grace`` seconds
    without a leader any eligible member may campaign (the best one may be stuck; the
    compare-and-swap still admits a single winner).

    ``handoff``: a valid planned-switchover hint (:func:`valid_handoff`). While there is
    no leader it decides alone: the node it names campaigns at once (no settling: the
    old master checked that it caught up), every other node waits — until the hint's
    lease expires and the ordinary rule applies again."""
    if leader is not None:
        # Our own id under another lease: we restarted and the old key has not expired.
        return Action.FOLLOW if leader.id != me.id else Action.WAIT
    if handoff is not None:
        return Action.CAMPAIGN if handoff.to == me.id else Action.WAIT
    if leaderless_for < settle:
        return Action.WAIT
    everyone = [m for m in members if m.id != me.id] + [me]
    best = best_candidate(everyone, max_lag, known_offset)
    if best is not None and best.id == me.id:
        return Action.CAMPAIGN
    reference = reference_offset(everyone, known_offset)
    if leaderless_for >= grace and is_eligible(me, reference, max_lag):
        return Action.CAMPAIGN
    return Action.WAIT


@dataclass
class LeaseClock:
    """Self-fencing arithmetic for a lease of ``ttl`` seconds.

    etcd counts the TTL from when it handles a keep-alive, which is after we sent it; so
    a keep-alive *sent* at ``t`` and answered with TTL > 0 proves the lease lives until at
    least ``t + ttl``. The master writes only until ``t + fence_fraction * ttl`` — a
    margin of a third of the TTL before anyone else can take the leader key."""

    ttl: float
    fence_fraction: float = 2 / 3

    @property
    def renew_every(self) -> float:
        return self.ttl / 3

    def valid_until(self, sent_at: float) -> float:
        return sent_at + self.fence_fraction * self.ttl

    @property
    def fence_after(self) -> float:
        return self.fence_fraction * self.ttl
