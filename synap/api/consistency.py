"""The HTTP side of the consistency controls (docs/CONSISTENCY.md): the ``"wait"`` field of
writes, and the ``min_offset`` / ``timeout_ms`` of reads (read-your-writes tokens).

``"wait": {"replicas": N | "majority" | "all", "timeout_ms": T, "fsync": bool}`` is parsed
*before* the write (a bad or unanswerable spec changes nothing); after it the writer
waits on a future resolved as replica ACKs arrive.  A read with ``min_offset`` waits
(on a future, no polling) until this node has applied that offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from synap.commands.errors import CommandError, OffsetTimeoutError
from synap.config import WaitConfig

if TYPE_CHECKING:
    from synap.api.services import ReplicatedData

WAIT_FIELDS = frozenset({"replicas", "timeout_ms", "fsync"})
MAX_TIMEOUT_MS = 3_600_000
DEFAULT_READ_TIMEOUT_MS = 1000


class BadConsistencyField(CommandError):
    """A malformed ``wait`` / ``min_offset`` / ``timeout_ms`` (HTTP 400)."""


@dataclass(frozen=True)
class WaitPlan:
    replicas: int  # replicas that must acknowledge
    timeout_ms: int
    fsync: bool


def _int_field(value: Any, name: str, *, minimum: int, maximum: int) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise BadConsistencyField(f"ERR '{name}' must be an integer from {minimum} to {maximum}")
    return value


def wait_plan(node: ReplicatedData, raw: Any) -> WaitPlan | None:
    """The wait a write asks for (``raw``: its ``"wait"`` field, None if absent), else
    ``replication.default_wait``; None when nothing is to be waited for.  Raises
    :class:`CommandError` for a spec that is malformed or cannot be answered."""
    if raw is None:
        spec = node.config.replication.default_wait
    else:
        if not isinstance(raw, dict):
            raise BadConsistencyField(
                "ERR 'wait' must be an object "
                '{"replicas": N | "majority" | "all", "timeout_ms": T, "fsync": bool}'
            )
        unknown = [name for name in raw if name not in WAIT_FIELDS]
        if unknown:
            raise BadConsistencyField(
                f"ERR unknown field(s) {', '.join(repr(n) for n in unknown)} in 'wait' "
                "(known: fsync, replicas, timeout_ms)"
            )
        default = node.config.replication.default_wait
        replicas = raw.get("replicas", default.replicas)
        if not (replicas in ("majority", "all") or _is_count(replicas)):
            raise BadConsistencyField(
                'ERR \'wait.replicas\' must be a non-negative integer, "majority" or "all"'
            )
        timeout_ms = _int_field(
            raw.get("timeout_ms", default.timeout_ms), "wait.timeout_ms", minimum=1,
            maximum=MAX_TIMEOUT_MS,
        )  # fmt: skip
        fsync = raw.get("fsync", default.fsync)
        if not isinstance(fsync, bool):
            raise BadConsistencyField("ERR 'wait.fsync' must be true or false")
        spec = WaitConfig(replicas=replicas, timeout_ms=timeout_ms, fsync=fsync)
    wanted = node.consistency.replicas_wanted(spec.replicas)
    if spec.fsync:
        p = node.persistence
        if p is None or p.fsync_mode.value == "never":
            raise BadConsistencyField(
                "ERR 'wait.fsync' needs a WAL that fsyncs: persistence.enabled: true with "
                "persistence.fsync_mode 'always' or 'periodic'"
            )
    if wanted == 0 and not spec.fsync:
        return None
    return WaitPlan(wanted, spec.timeout_ms, spec.fsync)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1_000_000


async def finish_write(node: ReplicatedData, plan: WaitPlan | None) -> tuple[bool, dict[str, Any]]:
    """After a write: wait as ``plan`` says.  Returns (confirmed, fields for the answer:
    ``offset``, ``replicas_acked``)."""
    if plan is None:
        return True, written_now(node)
    offset = node.history.offset
    # The WAL first (fsynced under 'always'), as before any reply.
    node.flush_writes()
    ok, acked = await node.consistency.wait_replicas(
        offset, plan.replicas, plan.timeout_ms, fsync=plan.fsync
    )
    return ok, {"offset": offset, "replicas_acked": acked}


def written_now(node: ReplicatedData) -> dict[str, Any]:
    """:func:`finish_write`'s fields for a write that waits for nothing (``plan`` None),
    without a coroutine: ``offset`` and the replicas that have already acknowledged it."""
    offset = node.history.offset
    return {"offset": offset, "replicas_acked": _acked_now(node, offset)}


def _acked_now(node: ReplicatedData, offset: int) -> int:
    server = node.replication.master_server
    return server.count_acked(offset) if server is not None else 0


def not_confirmed_message(plan: WaitPlan | None, acked: int) -> str:
    wanted = plan.replicas if plan is not None else 0
    what = "fsynced" if plan is not None and plan.fsync else "acknowledged"
    timeout = plan.timeout_ms if plan is not None else 0
    return (
        f"write applied on the master but not confirmed by enough replicas: {acked} of "
        f"{wanted} {what} it within {timeout} ms (it was not rolled back; it may still "
        "reach them)"
    )


def read_token(value: Any, name: str = "min_offset") -> int | None:
    if value is None:
        return None
    return _int_field(value, name, minimum=0, maximum=2**63 - 1)


def read_timeout(value: Any) -> int:
    if value is None:
        return DEFAULT_READ_TIMEOUT_MS
    return _int_field(value, "timeout_ms", minimum=0, maximum=MAX_TIMEOUT_MS)


async def ensure_offset(node: ReplicatedData, min_offset: int | None, timeout_ms: int) -> None:
    """Return once this node has applied ``min_offset``; raise
    :class:`OffsetTimeoutError` (HTTP 503, with the current offset) after the timeout."""
    if min_offset is None or node.history.offset >= min_offset:
        return
    if not await node.consistency.wait_offset(min_offset, timeout_ms):
        raise OffsetTimeoutError(min_offset, node.history.offset, timeout_ms)
