"""Errors the command layer reports, worded as Redis words them.

Each error carries its Redis prefix (``ERR``, ``WRONGTYPE``, ``READONLY``, ``OOM``...) as
the first word of its message. The HTTP status and code the JSON front ends answer with
live in the API layer (:mod:`synap.api.error_status`), and so does the RESP encoding
(:func:`synap.api.resp_codec.error`): this module produces no wire bytes.
"""

from __future__ import annotations


class CommandError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def prefix(self) -> str:
        return self.message.split(" ", 1)[0]


class ReadOnlyError(CommandError):
    def __init__(self, master: str | None) -> None:
        super().__init__("READONLY You can't write against a read only replica.")
        self.master = master

    @property
    def detail(self) -> str:
        where = f" of master {self.master}" if self.master else ""
        return f"this node is a read-only replica{where}; send writes to the master"


class LeadershipLostError(CommandError):
    """Automatic failover: this node is not (or no longer) the elected master.

    READONLY, so that Redis clients (redis-py's Sentinel pools among them) drop the
    connection and look for the master again."""

    def __init__(self, reason: str, master: str | None = None) -> None:
        super().__init__(f"READONLY {reason}")
        self.master = master
        self.detail = f"{reason}; send writes to the elected master (GET /api/replication/leader)"


class OutOfMemoryError(CommandError):
    def __init__(self) -> None:
        super().__init__("OOM command not allowed when used memory > 'maxmemory'.")


class NotFoundError(CommandError):
    """No such key, route or object (HTTP 404)."""


class ForbiddenError(CommandError):
    """Needs a key this caller does not hold (HTTP 403)."""


class WritesPausedError(CommandError):
    """Writes are paused for a planned failover; clients should retry shortly."""

    def __init__(self) -> None:
        super().__init__("TRYAGAIN writes are paused for a failover; retry shortly")


class NoReplicasError(CommandError):
    """Fewer good replicas than ``replication.min_replicas_to_write``: nothing applied."""

    def __init__(self, good: int | None = None, wanted: int = 0, max_lag_secs: int = 0) -> None:
        super().__init__("NOREPLICAS Not enough good replicas to write.")
        self.detail = (
            "the write was not applied"
            if good is None
            else f"{good} good replica(s) (streaming, ACK within {max_lag_secs}s), "
            f"replication.min_replicas_to_write is {wanted}; the write was not applied"
        )


class MasterDownError(CommandError):
    """A replica with ``serve_stale_reads: false`` whose link is down or too far behind."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
        )
        self.detail = detail


class OffsetTimeoutError(CommandError):
    """A read that must see an offset this node has not applied within the timeout."""

    def __init__(self, wanted: int, offset: int, timeout_ms: int) -> None:
        super().__init__(
            f"TIMEOUT offset {wanted} not applied within {timeout_ms} ms (node at {offset})"
        )
        self.offset = offset
        self.wanted = wanted


NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
SYNTAX = "ERR syntax error"
OVERFLOW = "ERR increment or decrement would overflow"


def wrong_args(name: str) -> CommandError:
    return CommandError(f"ERR wrong number of arguments for '{name.lower()}' command")
