"""The admin HTTP client of ``synap-cli`` and its failover tooling: one connection pool
(:class:`Session`), one client per node (:class:`NodeClient`), and how an HTTP error from
a node is worded.

A 401 or 403 is an authentication problem, not an unreachable node: the message says
which key the node wants and how to pass it (``--api-key`` or ``SYNAP_API_KEY``).
Every failure is an :class:`AdminError` whose message names the URL and path.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any, cast

import httpx

from synap.replication.stats import ReplicationStats

REQUEST_TIMEOUT_S = 5.0

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


def normalize_url(url: str) -> str:
    """``host:port`` or ``http://host:port/`` -> ``http://host:port``."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


class AdminError(Exception):
    """A request to a node's admin API failed; ``auth``: it answered 401/403."""

    def __init__(self, message: str, *, auth: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.auth = auth


class Session:
    """One HTTP connection pool for every node a command talks to.

    A single ``httpx.Client`` because building one costs 50-80 ms (its TLS context),
    time that would otherwise pass while writes are paused. Plain ``http://`` URLs
    never use TLS, so the context is only built when some URL is ``https://``."""

    def __init__(
        self, api_key: str | None, urls: Iterable[str], timeout: float = REQUEST_TIMEOUT_S
    ) -> None:
        tls = any(normalize_url(u).startswith("https://") for u in urls)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # TCP_NODELAY: httpx writes a POST's headers and body separately, and Nagle plus
        # the server's delayed ACK would hold the body back ~40 ms per request.
        transport = httpx.HTTPTransport(
            verify=tls, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        )
        self.timeout = timeout
        self.http = httpx.Client(headers=headers, transport=transport, timeout=timeout)
        self._nodes: dict[str, NodeClient] = {}

    def node(self, url: str, timeout: float | None = None) -> NodeClient:
        url = normalize_url(url)
        timeout = self.timeout if timeout is None else timeout
        key = f"{url} {timeout}"
        if key not in self._nodes:
            self._nodes[key] = NodeClient(self.http, url, timeout)
        return self._nodes[key]

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NodeClient:
    """The admin API of one node; every failure becomes an :class:`AdminError`."""

    def __init__(self, http: httpx.Client, url: str, timeout: float = REQUEST_TIMEOUT_S):
        self.url = normalize_url(url)
        self._http = http
        self._timeout = timeout

    def stats(self) -> ReplicationStats:
        return cast("ReplicationStats", self._request("GET", "/api/replication/stats"))

    def post(self, path: str, body: Any = None) -> dict[str, Any]:
        return self._request("POST", path, body)

    def _request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = self.request(method, path, body)
        if not isinstance(data, dict):
            raise AdminError(f"{self.url}{path}: unexpected answer {data!r}")
        return data

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer of a 2xx/3xx response (any JSON value)."""
        try:
            response = self._http.request(method, self.url + path, json=body, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise AdminError(f"{self.url}{path}: {type(exc).__name__}: {exc}") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        status = response.status_code
        if is_auth_status(status):
            key_given = "authorization" in self._http.headers
            raise AdminError(
                f"{self.url}{path}: {auth_problem(status, data, key_given)}", auth=True
            )
        if data is None:
            raise AdminError(f"{self.url}{path}: HTTP {status}, not JSON")
        if status >= 400:
            key_given = "authorization" in self._http.headers
            raise AdminError(f"{self.url}{path}: {http_problem(status, data, key_given)}")
        return data
