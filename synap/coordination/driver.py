"""The asyncio side of automatic failover: timers and etcd requests only.

Two tasks per node:

* keep-alive: renews the node's lease every TTL/3. Each renewal *sent* at ``t`` and
  answered lets a master write until ``t + 2/3 TTL`` (``RoleMachine.leadership_until``,
  checked on every write), so a master that cannot renew — etcd unreachable, partition,
  or the process frozen — refuses writes before its lease can expire and another node
  can be elected.
* control: every ``tick`` publishes this node's member record, reads the leader key and
  acts on :func:`synap.coordination.election.decide`: follow the leader, wait, or
  campaign (compare-and-swap), promoting itself through the replication manager.

Roles change only through ``ReplicationManager.promote`` / ``follow`` (the code manual
failover uses), so PSYNC2 continuity works as there: the winner keeps its history as
``replid2``, the other replicas continue by partial sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from synap.commands.errors import CommandError
from synap.config import ConfigError, parse_address
from synap.coordination.election import (
    Action,
    Handoff,
    LeaderInfo,
    LeaseClock,
    MemberInfo,
    decide,
    encode_last_offset,
    epoch_key,
    handoff_key,
    last_offset_key,
    leader_key,
    member_key,
    members_prefix,
    parse_epoch,
    parse_last_offset,
    valid_handoff,
)
from synap.coordination.etcd import (
    EtcdClient,
    EtcdError,
    campaign_txn,
    handoff_txn,
    resign_txn,
)
from synap.replication.control import HandedOff
from synap.replication.roles import Role

if TYPE_CHECKING:
    from synap.config import Config
    from synap.replication.manager import ReplicationManager
    from synap.replication.roles import RoleMachine
    from synap.store.history import History
    from synap.store.keyspace import Keyspace


class CoordinatedNode(Protocol):
    """What the coordinator uses of its node (synap/node.py satisfies it)."""

    @property
    def config(self) -> Config: ...
    @property
    def roles(self) -> RoleMachine: ...
    @property
    def history(self) -> History: ...
    @property
    def keyspace(self) -> Keyspace: ...
    @property
    def replication(self) -> ReplicationManager: ...
    @property
    def http_address(self) -> tuple[str, int] | None: ...
    @property
    def resp_address(self) -> tuple[str, int] | None: ...


log = logging.getLogger("synap.coordination")

# A replica counts as a candidate while its link to the master has been down for at most
# this many lease TTLs (the leader key itself outlives a dead master by about one TTL).
CANDIDATE_WINDOW_TTLS = 3


def _addr(address: tuple[str, int] | None) -> str | None:
    if address is None:
        return None
    host, port = address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class EtcdCoordinator:
    def __init__(self, node: CoordinatedNode) -> None:
        self.node = node
        cfg = node.config.replication.failover
        self.cfg = cfg
        self.group = cfg.group
        self.clock = LeaseClock(float(cfg.lease_ttl_secs))
        self.tick = min(0.5, cfg.lease_ttl_secs / 6)
        self.settle = 2 * self.tick
        self.grace = 2.0 * cfg.lease_ttl_secs
        self.client = EtcdClient(cfg.etcd_endpoints, timeout=self.clock.renew_every)
        self.node_id = cfg.node_id or _addr(node.http_address) or "node"
        self.configured_master = node.config.replication.role == "master"
        self.lease: int | None = None
        self.is_leader = False
        self.epoch = 0  # the epoch of the leader this node follows or is
        self.leader: LeaderInfo | None = None
        self.last_leader: LeaderInfo | None = None  # the newest leader ever seen (Sentinel view)
        self.members: list[MemberInfo] = []  # the group's records, refreshed every round
        self._leader_seen_at = 0.0
        self._leaderless_since: float | None = None
        self._lost_leadership_at: float | None = None
        self._followed = False
        self._published: bytes | None = None
        self._progress_published: bytes | None = None
        self._etcd_ok = True
        self.last_error: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        # Until then, a handoff is under way: do not take back the key we are giving up.
        self._handoff_until = 0.0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        node = self.node
        node.roles.leadership_until = 0.0  # no writes before this node wins
        node.roles.fence_reason = "no master has been elected yet (automatic failover via etcd)"
        node.keyspace.expire_on_access = False  # a non-leader makes no records of its own
        # httpx logs every request at INFO: a dozen lines a second here.
        logging.getLogger("httpx").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._control_loop(), name="etcd-control"),
            loop.create_task(self._keepalive_loop(), name="etcd-keepalive"),
        ]
        log.info(
            "automatic failover: group %r, node id %r, etcd %s, lease TTL %ss, priority %d",
            self.group, self.node_id, ",".join(self.cfg.etcd_endpoints),
            self.cfg.lease_ttl_secs, self.cfg.priority,
        )  # fmt: skip

    async def stop(self) -> None:
        """Fence, stop the tasks, and revoke the lease: the leader key and our member record
        go at once, so the others elect a new master without waiting for the TTL."""
        self._stopping = True
        self.node.roles.leadership_until = 0.0
        self.node.roles.fence_reason = "this node is shutting down"
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.lease is not None:
            with contextlib.suppress(EtcdError):
                await self.client.revoke(self.lease, timeout=1.0)
        await self.client.close()

    # ------------------------------------------------------------------ views
    def leader_view(self) -> LeaderInfo | None:
        """The current master as this node knows it, or None while there is none."""
        if self.is_leader:
            return None if self.node.roles.fenced else self.leader
        if self.leader is not None and time.monotonic() - self._leader_seen_at <= self.clock.ttl:
            return self.leader
        return None

    def status(self) -> dict[str, Any]:
        return {
            "mode": "etcd",
            "group": self.group,
            "node_id": self.node_id,
            # A master demoted by hand holds the key until its next round hands it back.
            "is_leader": self.is_leader
            and not self.node.roles.fenced
            and self.node.roles.role is Role.MASTER,
            "epoch": self.epoch,
            "leader": self.leader.id if self.leader else None,
            "lease_ttl_secs": self.cfg.lease_ttl_secs,
            "priority": self.cfg.priority,
            "etcd_reachable": self._etcd_ok,
            "last_error": self.last_error,
        }

    # ------------------------------------------------------------------ my record
    def _replica_listen(self) -> str | None:
        repl = self.node.config.replication
        if self.cfg.announce_replica_address:
            return self.cfg.announce_replica_address
        try:
            host, port = parse_address(
                repl.replica_listen_address, key="replication.replica_listen_address"
            )
        except ConfigError:
            return None
        if host in ("0.0.0.0", "::", ""):
            host = self.node.config.server.host
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
        return _addr((host, port))

    def _candidate(self) -> bool:
        if self.is_leader:
            return True
        now = time.monotonic()
        lost = self._lost_leadership_at
        if lost is not None and now - lost <= CANDIDATE_WINDOW_TTLS * self.clock.ttl:
            return True
        node = self.node
        link = node.replication.replica_link
        if node.roles.is_replica and link is not None and link.synced:
            if link.connected or link.link_down_since is None:
                return True
            return time.time() - link.link_down_since <= CANDIDATE_WINDOW_TTLS * self.clock.ttl
        return self.configured_master and not self._followed

    def me(self) -> MemberInfo:
        node = self.node
        link = node.replication.replica_link if node.roles.is_replica else None
        if self.is_leader and not node.roles.fenced:
            role = "master"
        elif node.roles.is_replica:
            role = "replica"
        else:
            role = "none"
        return MemberInfo(
            id=self.node_id,
            http_address=_addr(node.http_address),
            resp_address=_addr(node.resp_address),
            replica_listen_address=self._replica_listen(),
            offset=node.history.offset,
            master_offset=link.known_master_offset if link is not None else 0,
            priority=self.cfg.priority,
            role=role,
            candidate=self._candidate(),
            replid=node.history.replid,
        )

    # ------------------------------------------------------------------ keep-alive
    async def _keepalive_loop(self) -> None:
        every = self.clock.renew_every
        while not self._stopping:
            sent = time.monotonic()
            lease = self.lease
            if lease is not None:
                try:
                    ttl = await self.client.keepalive(lease, timeout=every)
                except EtcdError as exc:
                    self._trouble(exc)
                    if "not found" in str(exc):
                        self._lease_lost(lease)
                else:
                    self._etcd_back()
                    if ttl <= 0:
                        self._lease_lost(lease)
                    elif self.is_leader and self.lease == lease:
                        self.node.roles.leadership_until = self.clock.valid_until(sent)
            await asyncio.sleep(max(0.01, sent + every - time.monotonic()))

    def _lease_lost(self, lease: int) -> None:
        if self.lease != lease:
            return
        log.warning("etcd lease %x expired", lease)
        self.lease = None
        self._published = None
        if self.is_leader:
            self._step_down("leadership lost: this master's etcd lease expired")

    # ------------------------------------------------------------------ control
    async def _control_loop(self) -> None:
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._round()
            except EtcdError as exc:
                self._trouble(exc)
            except Exception:
                log.exception("automatic failover round failed")
            await asyncio.sleep(max(0.02, started + self.tick - time.monotonic()))

    async def _round(self) -> None:
        client = self.client
        if self.lease is None:
            lease, ttl = await client.grant(self.cfg.lease_ttl_secs)
            self.lease = lease
            self._published = None
            log.info("etcd lease %x granted (TTL %ds)", lease, ttl)
        lease = self.lease
        me = self.me()
        record = me.encode()
        if record != self._published:
            await client.put(member_key(self.group, self.node_id), record, lease=lease)
            self._published = record
        self._etcd_back()
        kv = await client.get(leader_key(self.group))
        leader = LeaderInfo.decode(kv.value) if kv is not None else None
        now = time.monotonic()
        if kv is not None and leader is not None and kv.lease == lease and leader.id == me.id:
            self._leaderless_since = None
            self._seen(leader, now)
            if not self.is_leader:
                if now < self._handoff_until:
                    return  # handing the key over (hand_off): never take it back meanwhile
                await self._become_leader(leader)
            elif self.node.roles.role is not Role.MASTER:
                # Demoted by hand (REPLICAOF) while holding the key: hand it back, or the
                # group would follow a replica.
                self._step_down("leadership given up: this master was made a replica by hand")
                await client.txn(resign_txn(leader_key(self.group), lease))
                return
            if self.is_leader and not self.node.roles.fenced:
                progress = encode_last_offset(self.epoch, self.node.history.offset)
                if progress != self._progress_published:
                    await client.put(last_offset_key(self.group), progress)
                    self._progress_published = progress
            await self._read_members()
            return
        if self.is_leader:
            who = f"{leader.id} (epoch {leader.epoch})" if leader else "nobody"
            self._step_down(f"leadership lost: the leader key now names {who}")
        if kv is not None and leader is None:
            log.error("the leader key of group %r holds no valid record; waiting", self.group)
            return
        if leader is not None:
            self._leaderless_since = None
            self._seen(leader, now)
        else:
            self.leader = None
            if self._leaderless_since is None:
                self._leaderless_since = now
        members = await self._read_members()
        known_offset = 0
        handoff: Handoff | None = None
        if leader is None:
            recorded = await client.get(last_offset_key(self.group))
            known_offset = parse_last_offset(recorded.value if recorded else None, self.epoch)
            hint = await client.get(handoff_key(self.group))
            handoff = valid_handoff(hint.value if hint else None, self.epoch)
        action = decide(
            me,
            leader,
            members,
            self.cfg.max_lag_on_failover,
            0.0 if self._leaderless_since is None else now - self._leaderless_since,
            # Settle only in a new group (let the others register). After a leader is
            # gone, every member published its final offset long ago: its replication
            # stopped a whole TTL before the leader key expired.
            self.settle if self.last_leader is None else 0.0,
            self.grace,
            known_offset,
            handoff,
        )
        if action is Action.FOLLOW and leader is not None:
            self._follow(leader)
        elif action is Action.CAMPAIGN:
            await self._campaign(me, lease)

    async def _read_members(self) -> list[MemberInfo]:
        members = []
        for item in await self.client.get_prefix(members_prefix(self.group)):
            member = MemberInfo.decode(item.value)
            if member is not None:
                members.append(member)
        self.members = members
        return members

    def _seen(self, leader: LeaderInfo, now: float) -> None:
        if self.leader != leader:
            log.info("leader of group %r: %s (epoch %d)", self.group, leader.id, leader.epoch)
        self.leader = leader
        self.last_leader = leader
        self._leader_seen_at = now
        self.epoch = max(self.epoch, leader.epoch)
        self.node.replication.epoch = self.epoch  # fencing in the replication protocol

    async def _campaign(self, me: MemberInfo, lease: int) -> None:
        client = self.client
        ekv = await client.get(epoch_key(self.group))
        epoch = parse_epoch(ekv.value if ekv is not None else None)
        info = LeaderInfo.of(me, epoch + 1)
        body = campaign_txn(
            leader_key(self.group),
            info.encode(),
            lease,
            epoch_key(self.group),
            ekv.mod_revision if ekv is not None else 0,
            info.epoch,
        )
        if not await client.txn(body):
            log.info("campaign for epoch %d lost (another node won or the epoch moved)", info.epoch)
            return
        self._seen(info, time.monotonic())
        await self._become_leader(info)

    async def _become_leader(self, info: LeaderInfo) -> None:
        node = self.node
        roles = node.roles
        lease = self.lease
        if lease is None:
            return
        # A fresh renewal first: writes are allowed only as far as it proves the lease.
        sent = time.monotonic()
        ttl = await self.client.keepalive(lease)
        if ttl <= 0 or self.lease != lease:
            self._lease_lost(lease)
            return
        self.is_leader = True
        self._lost_leadership_at = None
        self.epoch = max(self.epoch, info.epoch)
        self.node.replication.epoch = self.epoch
        roles.fence_reason = (
            f"leadership lost: this master could not renew its etcd lease within "
            f"{self.clock.fence_after:.1f}s (etcd unreachable, or this process was paused); "
            "it accepts no writes until it is elected again"
        )
        roles.elected_master = None
        if roles.role is not Role.MASTER:
            try:
                await node.replication.promote(
                    reason=f"elected by etcd (group {self.group}, epoch {info.epoch})",
                    elected=True,
                )
            except CommandError as exc:
                log.error("elected but could not become master (%s); resigning", exc.message)
                self.is_leader = False
                with contextlib.suppress(EtcdError):
                    await self.client.txn(resign_txn(leader_key(self.group), lease))
                return
        node.keyspace.expire_on_access = True
        roles.leadership_until = self.clock.valid_until(sent)
        self._published = None  # publish role "master" next round
        log.warning(
            "elected master of group %r with epoch %d (offset %d)",
            self.group, info.epoch, node.history.offset,
        )  # fmt: skip

    async def hand_off(self, target_id: str) -> HandedOff:
        """Planned switchover (``POST /api/replication/handoff``): give the leader key to
        member ``target_id``. The caller paused writes and saw the target catch up. This
        master fences itself first, then, in one etcd transaction, writes the handoff hint
        (on a lease of one TTL) and deletes its leader key: only the target campaigns; if
        it does not within the TTL, the hint expires and the ordinary election runs.
        Raises :class:`CommandError` (nothing changed) when it cannot."""
        lease = self.lease
        if not self.is_leader or lease is None or self.node.roles.role is not Role.MASTER:
            raise CommandError("ERR this node does not hold the leader key; nothing to hand off")
        if target_id == self.node_id:
            raise CommandError("ERR the handoff target is this master itself")
        try:
            members = {m.id: m for m in await self._read_members()}
        except EtcdError as exc:
            raise CommandError(f"ERR cannot read the group from etcd: {exc}") from None
        target = members.get(target_id)
        if target is None:
            raise CommandError(
                f"ERR {target_id!r} is not a member of group {self.group!r} in etcd "
                f"(members: {', '.join(sorted(members)) or 'none'})"
            )
        if target.priority <= 0 or target.replica_listen_address is None:
            raise CommandError(
                f"ERR member {target_id!r} may not become master (priority "
                f"{target.priority}, replica listener {target.replica_listen_address})"
            )
        hint = Handoff(self.node_id, target_id, self.epoch)
        try:
            hint_lease, _ = await self.client.grant(self.cfg.lease_ttl_secs)
        except EtcdError as exc:
            raise CommandError(f"ERR cannot get a lease for the handoff hint: {exc}") from None
        offset = self.node.history.offset
        self._handoff_until = time.monotonic() + self.clock.ttl
        self._step_down(f"leadership handed over to {target_id} (planned switchover)")
        try:
            done = await self.client.txn(
                handoff_txn(
                    leader_key(self.group),
                    lease,
                    handoff_key(self.group),
                    hint.encode(),
                    hint_lease,
                )
            )
        except EtcdError as exc:
            # Unknown outcome: stay fenced. If the key is still ours, the next round
            # takes the leadership back; if it is gone, the hint names the target.
            raise CommandError(f"ERR handoff request to etcd failed: {exc}") from None
        if not done:
            self._handoff_until = 0.0
            with contextlib.suppress(EtcdError):
                await self.client.revoke(hint_lease)
            raise CommandError("ERR this node no longer holds the leader key in etcd")
        log.warning(
            "handed leadership of group %r (epoch %d) to %s at offset %d",
            self.group, self.epoch, target_id, offset,
        )  # fmt: skip
        return HandedOff(target_id, self.epoch, offset)

    def newer_epoch_seen(self, epoch: int, source: str) -> None:
        """A replication peer knows epoch ``epoch`` > ours: another node was elected. A
        master fences itself at once; the next round reads etcd and follows the leader
        (or, should etcd still name this node, takes the leadership back)."""
        if epoch <= self.epoch:
            return
        log.warning("%s knows election epoch %d, newer than ours (%d)", source, epoch, self.epoch)
        if self.is_leader:
            self._step_down(f"leadership lost: a newer master was elected (epoch {epoch})")

    def _step_down(self, reason: str) -> None:
        roles = self.node.roles
        roles.leadership_until = 0.0
        roles.fence_reason = reason
        self.node.keyspace.expire_on_access = False
        self.is_leader = False
        self._lost_leadership_at = time.monotonic()
        self._published = None
        log.warning("%s; refusing writes", reason)

    def _follow(self, leader: LeaderInfo) -> None:
        node = self.node
        roles = node.roles
        roles.fence_reason = (
            f"this node is not the elected master (the master is {leader.id}, epoch {leader.epoch})"
        )
        roles.elected_master = leader.resp_address or leader.http_address
        if leader.replica_listen_address is None:
            return
        try:
            host, port = parse_address(leader.replica_listen_address, key="leader")
        except ConfigError:
            log.error(
                "leader %s announces a bad address %r", leader.id, leader.replica_listen_address
            )
            return
        if roles.is_replica and roles.master_address == f"{host}:{port}":
            return
        try:
            node.replication.follow(
                host, port, reason=f"elected master {leader.id} (epoch {leader.epoch})"
            )
        except CommandError as exc:
            log.error("cannot follow %s: %s", leader.id, exc.message)
            return
        self._followed = True
        self._published = None

    # ------------------------------------------------------------------ etcd health
    def _trouble(self, exc: EtcdError) -> None:
        self.last_error = str(exc)
        if self._etcd_ok:
            self._etcd_ok = False
            log.error("etcd trouble: %s", exc)

    def _etcd_back(self) -> None:
        if not self._etcd_ok:
            self._etcd_ok = True
            log.warning("etcd reachable again")
