"""Which HTTP status and error code each command error gets on the JSON front ends.

The command layer raises :class:`~synap.commands.errors.CommandError` subclasses worded
as Redis words them and knows nothing of HTTP; this map, in the API layer, is the one
place that turns them into a status and a ``code`` for the REST routes and the SDK
envelope (``POST /api/v1/command``). A subclass not listed takes its nearest listed
base class's answer (:class:`CommandError` itself: 400 ``BAD_REQUEST``).
"""

from __future__ import annotations

from synap.commands.errors import (
    CommandError,
    ForbiddenError,
    LeadershipLostError,
    MasterDownError,
    NoReplicasError,
    NotFoundError,
    OffsetTimeoutError,
    OutOfMemoryError,
    ReadOnlyError,
    WritesPausedError,
)

#: CommandError class -> (HTTP status, error code).
ERROR_STATUS: dict[type[CommandError], tuple[int, str]] = {
    CommandError: (400, "BAD_REQUEST"),
    ReadOnlyError: (409, "READONLY"),
    LeadershipLostError: (409, "READONLY"),
    OutOfMemoryError: (507, "OUT_OF_MEMORY"),
    NotFoundError: (404, "NOT_FOUND"),
    ForbiddenError: (403, "FORBIDDEN"),
    WritesPausedError: (503, "TRYAGAIN"),
    NoReplicasError: (503, "NOREPLICAS"),
    MasterDownError: (503, "MASTERDOWN"),
    OffsetTimeoutError: (503, "OFFSET_NOT_REACHED"),
}


def http_error(exc: CommandError) -> tuple[int, str]:
    """``(status, code)`` for ``exc``: its class's entry, else its nearest base's."""
    for cls in type(exc).__mro__:
        found = ERROR_STATUS.get(cls)
        if found is not None:
            return found
    return ERROR_STATUS[CommandError]
