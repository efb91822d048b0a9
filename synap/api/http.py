"""The HTTP front end: a small raw-ASGI application served by uvicorn in the node's loop.

Routes (JSON in and out):

* ``GET /health`` (readiness: 503 while a replica has not synced, docs/MONITORING.md) and
  ``GET /health/live`` (liveness: 200 while the process serves)
* REST: ``POST /kv/set``, ``GET /kv/get/{key}``, ``DELETE /kv/del/{key}``, ``GET /kv/stats``
* ``POST /api/v1/command`` (the synap-sdk envelope, :mod:`synap.api.command_endpoint`)
* replication admin: ``GET /api/replication/stats``, ``POST /api/replication/promote``,
  ``POST /api/replication/replicaof``, ``POST /api/replication/pause`` / ``resume`` (write
  pause for a planned failover), ``POST /api/replication/handoff`` (etcd mode: give the
  leader key to ``{"to": node_id}``, used by ``synap-cli failover``),
  ``GET /api/replication/digest``
* ``GET /api/replication/leader``: the master elected through etcd (503 while none)
* ``GET /metrics`` (Prometheus text format)
* ``GET /`` (redirects to ``/ui``), ``GET /ui`` (status page, open), ``GET /ui/status`` (its JSON)

No framework: the routes are few, and a framework costs a third of the throughput here
(measured: raw ASGI 42k req/s against starlette's 26k on this machine).  When API keys are
configured every route but ``/health`` and ``/health/live`` needs ``Authorization: Bearer
<key>`` (or Basic with the key as password); admin routes need the admin key when one is
set.
"""

from __future__ import annotations

import base64
import hmac
import logging
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from synap import __version__
from synap.api import command_endpoint, consistency, json_values, status_page, views
from synap.api.json_values import to_stored
from synap.commands.errors import CommandError, OffsetTimeoutError
from synap.store.keyspace import now_ms

if TYPE_CHECKING:
    from synap.api.services import NodeServices

log = logging.getLogger("synap.http")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON_HEADERS = [(b"content-type", b"application/json")]
_TEXT_HEADERS = [(b"content-type", b"text/plain; version=0.0.4")]
_HTML_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    # Self-contained: nothing may load from anywhere else.
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        b"connect-src 'self'; img-src 'self' data:",
    ),
    (b"cache-control", b"no-store"),
]
_PAGE = status_page.PAGE.encode()


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def _leader(node: NodeServices) -> tuple[int, Any]:
    """``GET /api/replication/leader``: the elected master (automatic failover), or 503."""
    coordinator = node.coordinator
    if coordinator is None:
        return _error_body(
            503,
            "no elected leader: automatic failover is off (replication.failover.mode: manual)",
            "NO_LEADER",
        )
    leader = coordinator.leader_view()
    if leader is None:
        return _error_body(
            503,
            f"group {coordinator.group!r} has no master right now (election in progress, "
            "or etcd unreachable); retry shortly",
            "NO_LEADER",
        )
    return 200, leader.public()


def _error_body(status: int, message: str, code: str, **extra: Any) -> tuple[int, Any]:
    return status, {"error": message, "code": code, **extra}


class HttpApi:
    def __init__(self, node: NodeServices) -> None:
        self.node = node
        self.max_body = node.config.server.max_body_bytes
        admin = node.config.server.admin_key
        self._admin_key = admin.encode() if admin else None
        # The admin key opens every route too: one Authorization header carries one key.
        self._api_keys = [k.encode() for k in node.config.server.api_keys]
        if self._api_keys and self._admin_key is not None:
            self._api_keys.append(self._admin_key)
        self._live = orjson.dumps({"status": "alive", "service": "synap", "version": __version__})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            return
        started = perf_counter()
        try:
            await self._http(scope, receive, send)
        finally:
            self.node.http_timings.observe(route_label(scope["path"]), perf_counter() - started)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        try:
            if path == "/health":
                status, health = self._health(scope)
                await _send(send, status, orjson.dumps(health))
                return
            if path == "/health/live":
                await _send(send, 200, self._live)
                return
            if path in ("/", "/ui"):
                # The page holds no data (it fetches /ui/status), so it is open.
                if path == "/":
                    await _send(send, 302, b"", [(b"location", b"/ui")])
                else:
                    await _send(send, 200, _PAGE, _HTML_HEADERS)
                return
            self._authenticate(scope)
            self.node.commands_processed += 1
            self._check_declared_length(scope)
            status, body = await self._route(method, path, scope, receive)
            # Group commit, as on the RESP port: nothing is acknowledged before the WAL
            # holds it (fsynced under fsync_mode: always). No await since the write, so
            # the WAL is also written before the records are streamed to replicas.
            self.node.before_reply()
        except HttpError as exc:
            status, body = _error_body(exc.status, exc.message, exc.code)
        except CommandError as exc:
            extra: dict[str, Any] = {}
            master = getattr(exc, "master", None)
            if master is not None or exc.code == "READONLY":
                extra["master"] = master
                extra["detail"] = getattr(exc, "detail", "")
            elif getattr(exc, "detail", None):
                extra["detail"] = exc.detail  # type: ignore[attr-defined]
            extra.update(scope.get("synap.error_extra", {}))
            status, body = _error_body(exc.http_status, exc.message, exc.code, **extra)
        except Exception:
            log.exception("internal error on %s %s", method, path)
            status, body = _error_body(500, "internal server error; see the server log", "INTERNAL")
        if path == "/api/v1/command" and isinstance(body, dict) and "success" not in body:
            # Auth, size and JSON errors too keep the envelope the SDK reads.
            body = command_endpoint.envelope_for(body["error"], body["code"])
        if isinstance(body, bytes):
            await _send(send, status, body, _TEXT_HEADERS)
        elif "synap.offset" in scope:
            headers = [*_JSON_HEADERS, (b"synap-offset", b"%d" % scope["synap.offset"])]
            await _send(send, status, _encode(body), headers)
        else:
            await _send(send, status, _encode(body))

    # ----------------------------------------------------------------- health
    def _health(self, scope: Scope) -> tuple[int, dict[str, Any]]:
        """Readiness: 200 when this node's data may be served, else 503 (a replica that
        has not synced, or whose link has been down too long). The rules and why are in
        ReplicationManager.health and docs/MONITORING.md.

        The route is open, for load balancers. With API keys configured, a caller
        without one gets the verdict but not the topology: the master's address and
        the error text (which may name hosts) are left out."""
        node = self.node
        ok, status, replication = node.replication.health()
        if self._api_keys and not self._has_key(scope):
            replication.pop("master_address", None)
            if replication.get("last_error"):
                replication["last_error"] = "hidden: send an API key to see the error"
        body = {
            "status": status,
            "service": "synap",
            "version": __version__,
            "role": str(node.roles.role),
            "writes_paused": node.roles.writes_paused,
            "replication": replication,
        }
        return (200 if ok else 503), body

    # ----------------------------------------------------------------- auth
    def _has_key(self, scope: Scope) -> bool:
        token = _bearer(scope)
        return token is not None and any(hmac.compare_digest(token, k) for k in self._api_keys)

    def _authenticate(self, scope: Scope) -> None:
        if not self._api_keys:
            return
        if not self._has_key(scope):
            raise HttpError(
                401, "missing or invalid API key (send Authorization: Bearer <key>)", "UNAUTHORIZED"
            )

    def _check_declared_length(self, scope: Scope) -> None:
        """Refuse a body declared over server.max_body_bytes before reading any of it
        (``_json`` also counts what arrives, for bodies sent without a length)."""
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                if value.isdigit() and int(value) > self.max_body:
                    raise HttpError(
                        413,
                        f"request body of {int(value)} bytes is over the "
                        f"{self.max_body}-byte limit (server.max_body_bytes)",
                        "PAYLOAD_TOO_LARGE",
                    )
                return

    def _require_admin(self, scope: Scope) -> None:
        if self._admin_key is None:
            return
        token = _bearer(scope)
        if token is None or not hmac.compare_digest(token, self._admin_key):
            raise HttpError(
                403, "this endpoint needs the admin key (server.admin_key)", "FORBIDDEN"
            )

    # ----------------------------------------------------------------- routing
    async def _route(
        self, method: str, path: str, scope: Scope, receive: Receive
    ) -> tuple[int, Any]:
        node = self.node
        if path.startswith("/kv/get/"):
            _allow(method, "GET")
            key = _path_key(path, "/kv/get/")
            if scope.get("query_string") or _header(scope, b"synap-min-offset") is not None:
                await self._await_token(scope)
            reply = command_endpoint.value_reply(node, key)
            if not reply["found"]:
                return _error_body(
                    404, f"key '{key.decode(errors='replace')}' not found", "NOT_FOUND"
                )
            return 200, reply
        if path.startswith("/kv/del/"):
            _allow(method, "DELETE")
            key = _path_key(path, "/kv/del/")
            body = await self._json(receive, optional=True)
            if not isinstance(body, dict) or any(name != "wait" for name in body):
                raise HttpError(
                    400, 'the body of DELETE /kv/del is optional: {"wait": {...}}', "BAD_REQUEST"
                )
            plan = consistency.wait_plan(node, body.get("wait"))
            deleted = node.commands.delete([key]) == 1
            return await self._waited(
                scope, plan, {"deleted": deleted, "key": key.decode(errors="replace")}
            )
        if path == "/kv/set":
            _allow(method, "POST")
            body = await self._json(receive)
            plan = consistency.wait_plan(node, body.get("wait") if isinstance(body, dict) else None)
            return await self._waited(scope, plan, self._kv_set(body))
        if path == "/api/v1/command":
            _allow(method, "POST")
            body = await self._json(receive)
            command = body.get("command") if isinstance(body, dict) else None
            if command in ("kv.flushall", "kv.flushdb"):
                self._require_admin(scope)
            header = _header(scope, b"synap-min-offset")
            status, envelope = await command_endpoint.execute_consistent(
                node, body, header.decode(errors="replace") if header is not None else None
            )
            result = envelope.get("payload")
            offset = envelope.get(
                "offset", result.get("offset") if isinstance(result, dict) else None
            )
            if (
                isinstance(command, str)
                and command in command_endpoint.WRITE_COMMANDS
                and isinstance(offset, int)
            ):
                scope["synap.offset"] = offset
            return status, envelope
        if path == "/kv/stats":
            _allow(method, "GET")
            return 200, node.kv_stats()
        if path == "/api/replication/stats":
            _allow(method, "GET")
            stats = node.replication.stats()
            if node.coordinator is not None:
                stats["failover"] = node.coordinator.status()
            return 200, stats
        if path == "/api/replication/leader":
            _allow(method, "GET")
            return _leader(node)
        if path == "/api/replication/promote":
            _allow(method, "POST")
            self._require_admin(scope)
            body = await self._json(receive, optional=True)
            listen = body.get("replica_listen_address") if isinstance(body, dict) else None
            if listen is not None and not isinstance(listen, str):
                raise HttpError(
                    400, "'replica_listen_address' must be a \"host:port\" string", "BAD_REQUEST"
                )
            promoted = await node.replication.promote(reason="HTTP promote", listen_address=listen)
            return 200, views.role_change_json(promoted)
        if path == "/api/replication/pause":
            _allow(method, "POST")
            self._require_admin(scope)
            paused = node.replication.pause_writes(
                _pause_seconds(await self._json(receive)), reason="HTTP pause"
            )
            return 200, views.role_change_json(paused)
        if path == "/api/replication/resume":
            _allow(method, "POST")
            self._require_admin(scope)
            return 200, views.role_change_json(node.replication.resume_writes(reason="HTTP resume"))
        if path == "/api/replication/replicaof":
            _allow(method, "POST")
            self._require_admin(scope)
            return 200, self._replicaof(await self._json(receive))
        if path == "/api/replication/handoff":
            _allow(method, "POST")
            self._require_admin(scope)
            body = await self._json(receive)
            to = body.get("to") if isinstance(body, dict) else None
            if not isinstance(to, str) or not to:
                raise HttpError(400, "'to' must be the node id of the target", "BAD_REQUEST")
            if node.coordinator is None:
                raise HttpError(
                    409,
                    "handoff needs replication.failover.mode: etcd; in manual mode use "
                    "synap-cli failover",
                    "NOT_ETCD",
                )
            return 200, views.role_change_json(await node.coordinator.hand_off(to))
        if path == "/api/replication/digest":
            _allow(method, "GET")
            return 200, node.digest_report()
        if path == "/api/replication/failover":
            _allow(method, "POST")
            self._require_admin(scope)
            body = await self._json(receive, optional=True)
            return 200, await node.replication.failover_http(body if isinstance(body, dict) else {})
        if path == "/metrics":
            _allow(method, "GET")
            return 200, node.metrics_text()
        if path == "/ui/status":
            _allow(method, "GET")
            return 200, await status_page.group_status(node)
        if path == "/api/v1/info":
            _allow(method, "GET")
            query = parse_qs(scope.get("query_string", b"").decode())
            return 200, {"info": node.info_text(query.get("section", []))}
        raise HttpError(404, f"no route for {method} {path}", "NOT_FOUND")

    async def _waited(
        self, scope: Scope, plan: consistency.WaitPlan | None, answer: dict[str, Any]
    ) -> tuple[int, Any]:
        """A write's answer once its wait is over: with ``offset`` and ``replicas_acked``
        (and the ``Synap-Offset`` header); HTTP 504 if too few replicas confirmed."""
        ok, fields = await consistency.finish_write(self.node, plan)
        scope["synap.offset"] = fields["offset"]
        answer.update(fields)
        if ok:
            return 200, answer
        error = consistency.not_confirmed_message(plan, fields["replicas_acked"])
        return 504, {**answer, "error": error, "code": "WAIT_TIMEOUT", "applied": True}

    async def _await_token(self, scope: Scope) -> None:
        """``min_offset`` (query parameter or ``Synap-Min-Offset`` header) and
        ``timeout_ms``: wait until this node has applied that offset, else HTTP 503."""
        query = parse_qs(scope.get("query_string", b"").decode(errors="replace"))
        unknown = [name for name in query if name not in ("min_offset", "timeout_ms")]
        if unknown:
            raise HttpError(
                400,
                f"unknown query parameter(s) {', '.join(repr(n) for n in unknown)} "
                "(known: min_offset, timeout_ms)",
                "BAD_REQUEST",
            )
        header = _header(scope, b"synap-min-offset")
        raw = query["min_offset"][-1] if "min_offset" in query else header
        if isinstance(raw, bytes):
            raw = raw.decode(errors="replace")
        token = consistency.read_token(raw)
        timeout_ms = consistency.read_timeout(
            query["timeout_ms"][-1] if "timeout_ms" in query else None
        )
        try:
            await consistency.ensure_offset(self.node, token, timeout_ms)
        except OffsetTimeoutError as exc:
            scope["synap.error_extra"] = {"offset": exc.offset, "min_offset": exc.wanted}
            raise

    def _kv_set(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise HttpError(
                400,
                'body must be a JSON object {"key", "value", "ttl"?, "encoding"?}',
                "BAD_REQUEST",
            )
        unknown = [name for name in body if name not in _KV_SET_FIELDS]
        if unknown:
            raise HttpError(
                400,
                f"unknown field{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(name) for name in unknown)} in the body "
                f"(known: key, value, ttl, encoding, wait)",
                "BAD_REQUEST",
            )
        key = body.get("key")
        if not isinstance(key, str) or not key:
            raise HttpError(400, "'key' must be a non-empty string", "BAD_REQUEST")
        if "value" not in body:
            raise HttpError(400, "'value' is required", "BAD_REQUEST")
        ttl = body.get("ttl")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
            raise HttpError(400, "'ttl' must be a positive integer (seconds)", "BAD_REQUEST")
        value, is_json = to_stored(body["value"], body.get("encoding"))
        expire_at = now_ms() + ttl * 1000 if ttl else 0
        self.node.commands.set(key.encode(), value, expire_at_ms=expire_at, is_json=is_json)
        return {"success": True, "key": key}

    def _replicaof(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object", "BAD_REQUEST")
        if (
            body.get("no_one")
            or body.get("master_address") in (None, "", "none", "NO ONE")
            and body.get("host") is None
        ):
            if "master_address" in body or body.get("no_one"):
                return views.role_change_json(self.node.replication.stop_replication())
            raise HttpError(
                400,
                "give 'master_address' as \"host:port\" (or null to stop replicating)",
                "BAD_REQUEST",
            )
        address = body.get("master_address")
        if address is None:
            address = f"{body.get('host')}:{body.get('port')}"
        if not isinstance(address, str):
            raise HttpError(400, "'master_address' must be a \"host:port\" string", "BAD_REQUEST")
        from synap.config import ConfigError, parse_address

        try:
            host, port = parse_address(address, key="master_address")
        except ConfigError as exc:
            raise HttpError(400, str(exc), "BAD_REQUEST") from None
        return views.role_change_json(
            self.node.replication.follow(host, port, reason="HTTP replicaof")
        )

    async def _json(self, receive: Receive, optional: bool = False) -> Any:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HttpError(400, "client disconnected", "BAD_REQUEST")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise HttpError(
                    413,
                    f"request body over {self.max_body} bytes (server.max_body_bytes)",
                    "PAYLOAD_TOO_LARGE",
                )
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        if not raw.strip():
            if optional:
                return {}
            raise HttpError(400, "request body is empty; send JSON", "BAD_REQUEST")
        try:
            return json_values.loads(raw)  # exact: integers beyond 64 bits stay integers
        except orjson.JSONDecodeError as exc:
            raise HttpError(400, f"invalid JSON: {exc}", "INVALID_JSON") from None


_KV_SET_FIELDS = frozenset({"key", "value", "ttl", "encoding", "wait"})


# Routes as /metrics labels them: the fixed set below, key routes without their key.
_ROUTES = frozenset(
    {
        "/",
        "/ui",
        "/ui/status",
        "/health",
        "/health/live",
        "/kv/set",
        "/kv/stats",
        "/api/v1/command",
        "/api/v1/info",
        "/api/replication/stats",
        "/api/replication/promote",
        "/api/replication/pause",
        "/api/replication/resume",
        "/api/replication/replicaof",
        "/api/replication/digest",
        "/api/replication/handoff",
        "/api/replication/failover",
        "/metrics",
    }
)


def route_label(path: str) -> str:
    """The route a request path belongs to, for metrics: never the key, never an
    arbitrary client-chosen path (that would grow the label set without bound)."""
    if path in _ROUTES:
        return path
    if path.startswith("/kv/get/"):
        return "/kv/get"
    if path.startswith("/kv/del/"):
        return "/kv/del"
    return "other"


def _encode(body: Any) -> bytes:
    """A reply as JSON; it may hold integers beyond 64 bits (values written so)."""
    try:
        return json_values.dumps(body)
    except CommandError:
        log.error("reply cannot be written as JSON: %.200r", body)
        return orjson.dumps({"error": "reply cannot be written as JSON", "code": "INTERNAL"})


def _pause_seconds(body: Any) -> float | None:
    """``{"seconds": S}`` (a lease) or ``{"seconds": null}`` (until resumed or demoted)."""
    if not isinstance(body, dict) or "seconds" not in body:
        raise HttpError(
            400,
            'body must be {"seconds": S} (pause for S seconds) or {"seconds": null} '
            "(until POST /api/replication/resume or a role change)",
            "BAD_REQUEST",
        )
    seconds = body["seconds"]
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise HttpError(400, "'seconds' must be a positive number or null", "BAD_REQUEST")
    return float(seconds)


def _allow(method: str, expected: str) -> None:
    if method != expected:
        raise HttpError(405, f"use {expected} for this route", "METHOD_NOT_ALLOWED")


def _path_key(path: str, prefix: str) -> bytes:
    key = path[len(prefix) :]
    if not key:
        raise HttpError(400, "missing key in the path", "BAD_REQUEST")
    return key.encode()


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, rest = value.partition(b" ")
            scheme = scheme.lower()
            if scheme == b"bearer":
                token: bytes = rest.strip()
                return token
            if scheme == b"basic":
                try:
                    decoded = base64.b64decode(rest.strip())
                except ValueError:
                    return None
                return decoded.partition(b":")[2]
    return None


async def _send(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = _JSON_HEADERS
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
