"""RESP handlers for the consistency controls (docs/CONSISTENCY.md): ``WAITAOF`` (Redis
7.2), ``SYNAP.OFFSET`` and ``SYNAP.WAITOFFSET`` (read-your-writes tokens), and ``CONFIG
SET`` for the parameters this server can change at runtime."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from synap.api import resp_codec as R
from synap.commands.errors import CommandError
from synap.commands.layer import parse_int
from synap.replication.consistency import FSYNCED

if TYPE_CHECKING:
    from synap.api.resp_context import RespClient as RespConnection


def cmd_synap_offset(c: RespConnection, args: list[bytes]) -> bytes:
    """The offset of this connection's last write, or the node's offset if none."""
    offset = c.last_write_offset
    return R.integer(offset if offset else c.node.history.offset)


def cmd_synap_waitoffset(c: RespConnection, args: list[bytes]) -> object:
    """``SYNAP.WAITOFFSET offset timeout_ms``: the node's offset once it has applied
    ``offset``; ``-TIMEOUT`` after ``timeout_ms`` (0 = answer at once)."""
    wanted = parse_int(args[1])
    timeout_ms = parse_int(args[2])
    if wanted < 0:
        raise CommandError("ERR offset is negative")
    if timeout_ms < 0:
        raise CommandError("ERR timeout is negative")
    node = c.node
    if node.history.offset >= wanted:
        return R.integer(node.history.offset)
    return _wait_offset(c, wanted, timeout_ms)


async def _wait_offset(c: RespConnection, wanted: int, timeout_ms: int) -> bytes:
    node = c.node
    if await node.consistency.wait_offset(wanted, timeout_ms):
        return R.integer(node.history.offset)
    return R.error(
        f"TIMEOUT offset {wanted} not reached within {timeout_ms} ms; "
        f"this node is at offset {node.history.offset}"
    )


def cmd_waitaof(c: RespConnection, args: list[bytes]) -> object:
    """Redis 7.2 ``WAITAOF numlocal numreplicas timeout``: [local fsynced (0/1),
    replicas whose WAL fsynced this connection's last write]."""
    numlocal = parse_int(args[1])
    numreplicas = parse_int(args[2])
    timeout_ms = parse_int(args[3])
    if numlocal < 0 or numreplicas < 0:
        raise CommandError("ERR value is out of range, must be positive")
    if timeout_ms < 0:
        raise CommandError("ERR timeout is negative")
    node = c.node
    if node.roles.is_replica:
        raise CommandError(
            "ERR WAITAOF cannot be used with replica instances. Please also note that writes "
            "to replicas are just local and are not propagated."
        )
    if numlocal and node.persistence is None:
        raise CommandError(
            "ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled."
        )
    if numlocal and node.persistence is not None and node.persistence.fsync_mode.value == "never":
        raise CommandError(
            "ERR WAITAOF cannot be used when numlocal is set and persistence.fsync_mode is "
            "'never' (this node never fsyncs its WAL itself)"
        )
    return _waitaof(c, numlocal, numreplicas, timeout_ms)


async def _waitaof(c: RespConnection, numlocal: int, numreplicas: int, timeout_ms: int) -> bytes:
    node = c.node
    consistency = node.consistency
    target = c.last_write_offset
    timeout = timeout_ms / 1000 if timeout_ms else None
    loop_time = asyncio.get_running_loop().time
    deadline = None if timeout is None else loop_time() + timeout
    if numlocal:
        await consistency.wait_local_fsync(target, timeout)
    local = 1 if consistency.local_fsynced() >= target and node.persistence is not None else 0
    server = node.replication.master_server
    if server is None:
        return R.array([R.integer(local), R.ZERO])
    left = None if deadline is None else max(0.0, deadline - loop_time())
    if numlocal and not local:
        left = 0.0  # the time ran out already
    acked = await server.wait_for_acks(target, numreplicas, left, FSYNCED)
    return R.array([R.integer(local), R.integer(acked)])


CONSISTENCY_COMMANDS = {
    b"WAITAOF": cmd_waitaof,
    b"SYNAP.OFFSET": cmd_synap_offset,
    b"SYNAP.WAITOFFSET": cmd_synap_waitoffset,
}
