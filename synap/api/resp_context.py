"""What a Redis-protocol command handler sees of its connection (a Protocol), and the
small pieces every handler module shares.

The handler modules (resp_admin.py, resp_strings.py, ...) type against
:class:`RespClient`; :class:`synap.api.resp.RespConnection` satisfies it and imports
them, so the dependency points one way: resp.py -> handlers -> this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from synap.commands.errors import CommandError

if TYPE_CHECKING:
    from synap.api.services import NodeServices
    from synap.commands.layer import Commands


class RespClient(Protocol):
    """One Redis-protocol (or SynapRPC) session, as a command handler uses it."""

    node: NodeServices
    cmds: Commands
    resp3: bool
    name: bytes | None
    id: int
    authenticated: bool
    admin: bool
    no_evict: bool
    peer: str
    laddr: str
    fd: int
    created: float
    last_active: float
    last_cmd: bytes | None
    last_write_offset: int
    _queued: list[list[bytes]] | None

    def close_after_reply(self) -> None: ...
    def write_push(self, data: bytes) -> None: ...
    def set_reply_mode(self, mode: bytes) -> bytes: ...
    def kill(self) -> None: ...
    def idle_seconds(self, now: float) -> float: ...

    # The session commands (MULTI/EXEC/DISCARD, WATCH, MONITOR, RESET) act on the session.
    def multi(self) -> bytes: ...
    def exec(self) -> bytes: ...
    def discard(self) -> bytes: ...
    def monitor(self) -> bytes: ...
    def watch(self, keys: list[bytes]) -> bytes: ...
    def unwatch(self) -> None: ...
    def reset(self) -> bytes: ...


def no_perm(name: bytes) -> CommandError:
    """The reply to an admin command from a connection without the admin key."""
    return CommandError(
        f"NOPERM this connection has no permission to run the '{name.decode().lower()}' "
        "command: AUTH with the admin key (server.admin_key) first"
    )
