"""How ``synap-cli`` (and its failover tooling) words an HTTP error from a node.

A 401 or 403 is an authentication problem, not an unreachable node: the message says
which key the node wants and how to pass it (``--api-key`` or ``SYNAP_API_KEY``).
"""

from __future__ import annotations

from typing import Any

KEY_FLAG = "--api-key KEY (before the subcommand: synap-cli --api-key KEY ...) or SYNAP_API_KEY"


def is_auth_status(status: int) -> bool:
    return status in (401, 403)


def auth_problem(status: int, data: Any, key_given: bool) -> str:
    """The sentence for a 401/403 answer: what failed and which key to send."""
    server = data.get("error") if isinstance(data, dict) else None
    said = f" (the node says: {server})" if server else ""
    if status == 403:
        return (
            f"HTTP 403: authentication problem, this needs the node's admin key{said}; "
            f"pass its server.admin_key with {KEY_FLAG}"
        )
    if key_given:
        return (
            f"HTTP 401: authentication problem, the key given was refused{said}; "
            f"pass one of the node's server.api_keys (or its server.admin_key) with {KEY_FLAG}"
        )
    return (
        f"HTTP 401: authentication problem, the node requires an API key{said}; "
        f"pass one of its server.api_keys (or its server.admin_key) with {KEY_FLAG}"
    )


def http_problem(status: int, data: Any, key_given: bool) -> str:
    """``HTTP <status>: <what the node said>``, or :func:`auth_problem` for 401/403."""
    if is_auth_status(status):
        return auth_problem(status, data, key_given)
    message = data.get("error", data) if isinstance(data, dict) else data
    return f"HTTP {status}: {message}"
