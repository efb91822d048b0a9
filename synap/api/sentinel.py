"""Enough of the Redis Sentinel protocol for Sentinel-aware clients (redis-py's
``redis.sentinel.Sentinel``) to find the master and replicas elected through etcd.

Every node of a group in ``replication.failover.mode: etcd`` answers, on its RESP port:
``SENTINEL MASTERS``, ``SENTINEL MASTER <group>``, ``SENTINEL SLAVES|REPLICAS <group>``,
``SENTINEL SENTINELS <group>`` (empty: the nodes themselves play that part) and
``SENTINEL GET-MASTER-ADDR-BY-NAME <group>``. The group name is the Sentinel "master
name". Fields are those Redis Sentinel returns, as bulk strings, including the flags
redis-py checks (``master``/``slave``, ``s_down``, ``o_down``) and
``num-other-sentinels``. The data is this node's view of etcd (refreshed every
control round, a fraction of a second).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from synap.api import resp_codec as R
from synap.commands.errors import CommandError, wrong_args

if TYPE_CHECKING:
    from synap.api.resp_context import RespClient as RespConnection
    from synap.coordination.driver import EtcdCoordinator
    from synap.coordination.election import LeaderInfo, MemberInfo


def _split(address: str | None) -> tuple[str, str] | None:
    if not address:
        return None
    host, sep, port = address.rpartition(":")
    return (host.strip("[]"), port) if sep else None


def _master_fields(co: EtcdCoordinator, leader: LeaderInfo, down: bool) -> dict[str, str]:
    ip, port = _split(leader.resp_address) or ("", "0")
    replicas = [m for m in co.members if m.role == "replica" and m.id != leader.id]
    ttl_ms = str(co.cfg.lease_ttl_secs * 1000)
    return {
        "name": co.group,
        "ip": ip,
        "port": port,
        "runid": leader.id,
        "flags": "master,s_down,o_down" if down else "master",
        "link-pending-commands": "0",
        "link-refcount": "1",
        "last-ping-sent": "0",
        "last-ok-ping-reply": "0",
        "last-ping-reply": "0",
        "down-after-milliseconds": ttl_ms,
        "info-refresh": "0",
        "role-reported": "master",
        "role-reported-time": "0",
        "config-epoch": str(leader.epoch),
        "num-slaves": str(len(replicas)),
        "num-other-sentinels": str(max(0, len(co.members) - 1)),
        "quorum": "1",
        "failover-timeout": str(co.cfg.lease_ttl_secs * 3000),
        "parallel-syncs": "1",
    }


def _replica_fields(member: MemberInfo, leader: LeaderInfo | None) -> dict[str, str] | None:
    address = _split(member.resp_address)
    if address is None:
        return None
    ip, port = address
    master_ip, master_port = _split(leader.resp_address if leader else None) or ("?", "0")
    return {
        "name": f"{ip}:{port}",
        "ip": ip,
        "port": port,
        "runid": member.id,
        "flags": "slave",
        "link-pending-commands": "0",
        "link-refcount": "1",
        "last-ping-sent": "0",
        "last-ok-ping-reply": "0",
        "last-ping-reply": "0",
        "down-after-milliseconds": "0",
        "info-refresh": "0",
        "role-reported": "slave",
        "role-reported-time": "0",
        "master-link-down-time": "0",
        "master-link-status": "ok",
        "master-host": master_ip,
        "master-port": master_port,
        "slave-priority": str(member.priority),
        "slave-repl-offset": str(member.offset),
    }


def _current(co: EtcdCoordinator) -> tuple[LeaderInfo | None, bool]:
    """The master to report and whether it is down (known before, none elected now)."""
    leader = co.leader_view()
    if leader is not None:
        return leader, False
    return co.last_leader, co.last_leader is not None


def cmd_sentinel(c: RespConnection, args: list[bytes]) -> bytes:
    co = c.node.coordinator
    if co is None:
        raise CommandError(
            "ERR SENTINEL needs automatic failover (replication.failover.mode: etcd); "
            "this node's roles are set by hand"
        )
    sub = args[1].upper()
    leader, down = _current(co)
    if sub == b"MASTERS":
        if len(args) != 2:
            raise wrong_args("sentinel masters")
        items = [] if leader is None else [_master_fields(co, leader, down)]
        return R.encode(items, c.resp3)
    if sub not in (b"MASTER", b"SLAVES", b"REPLICAS", b"SENTINELS", b"GET-MASTER-ADDR-BY-NAME"):
        raise CommandError(
            f"ERR Unknown sentinel subcommand '{args[1].decode(errors='replace')}'; this node "
            "answers MASTERS, MASTER, SLAVES, REPLICAS, SENTINELS, GET-MASTER-ADDR-BY-NAME"
        )
    if len(args) != 3:
        raise wrong_args(f"sentinel {sub.decode().lower()}")
    if args[2].decode(errors="replace") != co.group:
        if sub == b"GET-MASTER-ADDR-BY-NAME":
            return R.null(c.resp3)
        raise CommandError("ERR No such master with that name")
    if sub == b"GET-MASTER-ADDR-BY-NAME":
        address = _split(leader.resp_address) if leader is not None and not down else None
        if address is None:
            return R.null(c.resp3)
        return R.bulk_array([address[0].encode(), address[1].encode()])
    if sub == b"MASTER":
        if leader is None:
            raise CommandError("ERR No such master with that name")
        return R.encode(_master_fields(co, leader, down), c.resp3)
    if sub == b"SENTINELS":
        return R.encode([], c.resp3)
    replicas = []
    for member in co.members:
        if member.role != "replica" or (leader is not None and member.id == leader.id):
            continue
        fields = _replica_fields(member, leader)
        if fields is not None:
            replicas.append(fields)
    return R.encode(replicas, c.resp3)
