"""``synap-cli group status --etcd URL``: a group's members, roles, epoch, offsets and
leases, read straight from etcd (so it works while every node is down or fenced)."""

from __future__ import annotations

from typing import Any

from synap.coordination.election import (
    LeaderInfo,
    MemberInfo,
    epoch_key,
    leader_key,
    members_prefix,
    parse_epoch,
)
from synap.coordination.etcd import EtcdClient


async def read_group(endpoints: list[str], group: str, timeout: float = 3.0) -> dict[str, Any]:
    """The group as etcd holds it; raises EtcdError when etcd cannot be reached."""
    client = EtcdClient(endpoints, timeout=timeout)
    try:
        leader_kv = await client.get(leader_key(group))
        epoch_kv = await client.get(epoch_key(group))
        members = []
        for kv in await client.get_prefix(members_prefix(group)):
            member = MemberInfo.decode(kv.value)
            if member is None:
                continue
            ttl = await client.time_to_live(kv.lease) if kv.lease else -1
            members.append((member, ttl))
    finally:
        await client.close()
    leader = LeaderInfo.decode(leader_kv.value) if leader_kv is not None else None
    reference = max((max(m.offset, m.master_offset) for m, _ in members), default=0)
    return {
        "group": group,
        "epoch": parse_epoch(epoch_kv.value if epoch_kv is not None else None),
        "leader": leader.public() if leader is not None else None,
        "members": [
            {
                "id": m.id,
                "role": "master" if leader is not None and m.id == leader.id else m.role,
                "http_address": m.http_address,
                "resp_address": m.resp_address,
                "replica_listen_address": m.replica_listen_address,
                "offset": m.offset,
                "lag": max(0, reference - m.offset),
                "priority": m.priority,
                "candidate": m.candidate,
                "lease_ttl_left": ttl,
            }
            for m, ttl in sorted(members, key=lambda item: item[0].id)
        ],
    }


def render(status: dict[str, Any]) -> str:
    leader = status["leader"]
    head = f"group {status['group']}: epoch {status['epoch']}, master "
    head += leader["master"]["id"] if leader else "NONE (election pending or no candidate)"
    lines = [head]
    rows = [("id", "role", "offset", "lag", "priority", "candidate", "lease", "http")]
    for m in status["members"]:
        rows.append(
            (
                m["id"],
                m["role"],
                str(m["offset"]),
                str(m["lag"]),
                str(m["priority"]),
                "yes" if m["candidate"] else "no",
                f"{m['lease_ttl_left']}s" if m["lease_ttl_left"] >= 0 else "gone",
                m["http_address"] or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    if not status["members"]:
        lines.append("  (no members registered)")
    return "\n".join(lines)
