"""A small etcd v3 client over etcd's JSON gRPC gateway (``POST /v3/...``), on httpx.

Only what the election needs: leases (grant, keep-alive, revoke), range, put and
transactions. Keys and values travel base64-encoded and 64-bit integers as strings;
fields that are zero are left out of answers. Every request has its own timeout, and a
request that fails on one endpoint is retried on the next (one round at most), so the
caller decides how long it may wait — the master's self-fencing depends on that.

Why not a gRPC client: see docs/ARCHITECTURE.md (aetcd works with etcd 3.4, but brings
grpcio and protobuf; this needs only httpx, which the project already uses).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx
import orjson


class EtcdError(Exception):
    """etcd could not be reached on any endpoint, or refused the request."""


@dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def prefix_end(prefix: bytes) -> bytes:
    """The range end that selects every key starting with ``prefix`` (etcd's rule)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


def parse_kv(item: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=base64.b64decode(item.get("key", "")),
        value=base64.b64decode(item.get("value", "")),
        create_revision=int(item.get("create_revision", 0)),
        mod_revision=int(item.get("mod_revision", 0)),
        lease=int(item.get("lease", 0)),
    )


def campaign_txn(
    leader_key: bytes,
    leader_value: bytes,
    lease: int,
    epoch_key: bytes,
    epoch_mod_revision: int,
    new_epoch: int,
) -> dict[str, Any]:
    """The compare-and-swap that makes one node leader: it succeeds only if nobody holds
    the leader key (create_revision 0) and the epoch key was not changed since it was read
    (so two campaigns cannot both take the same epoch). The leader key is bound to the
    node's lease; the epoch key has no lease, so epochs only ever grow."""
    return {
        "compare": [
            {"key": b64(leader_key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"},
            {
                "key": b64(epoch_key),
                "target": "MOD",
                "result": "EQUAL",
                "mod_revision": str(epoch_mod_revision),
            },
        ],
        "success": [
            {
                "request_put": {
                    "key": b64(leader_key),
                    "value": b64(leader_value),
                    "lease": str(lease),
                }
            },
            {"request_put": {"key": b64(epoch_key), "value": b64(str(new_epoch))}},
        ],
        "failure": [],
    }


def resign_txn(leader_key: bytes, lease: int) -> dict[str, Any]:
    """Delete the leader key only if it is still bound to ``lease`` (ours)."""
    return {
        "compare": [
            {"key": b64(leader_key), "target": "LEASE", "result": "EQUAL", "lease": str(lease)}
        ],
        "success": [{"request_delete_range": {"key": b64(leader_key)}}],
        "failure": [],
    }


def handoff_txn(
    leader_key: bytes, lease: int, handoff_key: bytes, hint: bytes, hint_lease: int
) -> dict[str, Any]:
    """Planned switchover: only if the leader key is still bound to ``lease`` (ours),
    write the handoff hint (on its own short lease ``hint_lease``) and delete the leader
    key, in one step — no node can see the key gone without also seeing the hint."""
    return {
        "compare": [
            {"key": b64(leader_key), "target": "LEASE", "result": "EQUAL", "lease": str(lease)}
        ],
        "success": [
            {
                "request_put": {
                    "key": b64(handoff_key),
                    "value": b64(hint),
                    "lease": str(hint_lease),
                }
            },
            {"request_delete_range": {"key": b64(leader_key)}},
        ],
        "failure": [],
    }


class EtcdClient:
    def __init__(self, endpoints: list[str], timeout: float = 2.0) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._current = 0  # the endpoint that answered last
        self._http = httpx.AsyncClient(timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, path: str, body: dict[str, Any], timeout: float | None = None) -> Any:
        """POST ``body`` to ``path`` on the current endpoint, then the others in turn."""
        errors = []
        n = len(self.endpoints)
        for step in range(n):
            index = (self._current + step) % n
            url = self.endpoints[index] + path
            try:
                response = await self._http.post(
                    url, content=orjson.dumps(body), timeout=timeout or self.timeout
                )
            except httpx.HTTPError as exc:
                errors.append(f"{self.endpoints[index]}: {type(exc).__name__} {exc}".strip())
                continue
            if response.status_code != 200:
                try:
                    message = response.json().get("message") or response.text
                except ValueError:
                    message = response.text
                # etcd answered: its answer stands (e.g. "lease not found").
                raise EtcdError(f"etcd {path}: HTTP {response.status_code}: {message}")
            self._current = index
            return response.json()
        raise EtcdError("etcd unreachable: " + "; ".join(errors))

    # ------------------------------------------------------------------ leases
    async def grant(self, ttl: int, timeout: float | None = None) -> tuple[int, int]:
        answer = await self.call("/v3/lease/grant", {"TTL": str(ttl)}, timeout)
        if answer.get("error"):
            raise EtcdError(f"lease grant refused: {answer['error']}")
        return int(answer["ID"]), int(answer.get("TTL", 0))

    async def keepalive(self, lease: int, timeout: float | None = None) -> int:
        """Renew ``lease``; its new TTL, 0 when etcd no longer knows it (expired)."""
        answer = await self.call("/v3/lease/keepalive", {"ID": str(lease)}, timeout)
        result = answer.get("result", answer)
        return int(result.get("TTL", 0))

    async def time_to_live(self, lease: int, timeout: float | None = None) -> int:
        """Seconds left on ``lease`` (-1 when etcd no longer knows it)."""
        answer = await self.call("/v3/lease/timetolive", {"ID": str(lease)}, timeout)
        return int(answer.get("TTL", -1))

    async def revoke(self, lease: int, timeout: float | None = None) -> None:
        try:
            await self.call("/v3/lease/revoke", {"ID": str(lease)}, timeout)
        except EtcdError as exc:
            if "not found" not in str(exc):
                raise

    # ------------------------------------------------------------------ keys
    async def get(self, key: bytes, timeout: float | None = None) -> KeyValue | None:
        answer = await self.call("/v3/kv/range", {"key": b64(key)}, timeout)
        kvs = answer.get("kvs") or []
        return parse_kv(kvs[0]) if kvs else None

    async def get_prefix(self, prefix: bytes, timeout: float | None = None) -> list[KeyValue]:
        body = {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}
        answer = await self.call("/v3/kv/range", body, timeout)
        return [parse_kv(item) for item in answer.get("kvs") or []]

    async def put(
        self, key: bytes, value: bytes, lease: int = 0, timeout: float | None = None
    ) -> None:
        body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        await self.call("/v3/kv/put", body, timeout)

    async def txn(self, body: dict[str, Any], timeout: float | None = None) -> bool:
        """Run a transaction; True if its compares held (the success branch ran)."""
        answer = await self.call("/v3/kv/txn", body, timeout)
        return bool(answer.get("succeeded", False))
