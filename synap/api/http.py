"""The HTTP API: route handlers and the route table, served by :mod:`synap.api.http_server`.

Routes (JSON in and out; :data:`ROUTES` is the authority):

* ``GET /health`` (readiness: 503 while a replica has not synced, docs/MONITORING.md) and
  ``GET /health/live`` (liveness: 200 while the process serves)
* REST: ``POST /kv/set``, ``GET /kv/get/{key}``, ``DELETE /kv/del/{key}``, ``GET /kv/stats``
* ``POST /api/v1/command`` (the synap-sdk envelope, :mod:`synap.api.command_endpoint`),
  ``GET /api/v1/info``
* replication admin: ``GET /api/replication/stats``, ``POST /api/replication/promote``,
  ``POST /api/replication/replicaof``, ``POST /api/replication/pause`` / ``resume`` (write
  pause for a planned failover), ``POST /api/replication/handoff`` (etcd mode: give the
  leader key to ``{"to": node_id}``, used by ``synap-cli failover``),
  ``POST /api/replication/failover``, ``GET /api/replication/digest``
* ``GET /api/replication/leader``: the master elected through etcd (503 while none)
* ``GET /metrics`` (Prometheus text format)
* ``GET /`` (redirects to ``/ui``), ``GET /ui`` (status page, open), ``GET /ui/status`` (its JSON)

``HEAD`` is served wherever ``GET`` is; another method on a known path answers 405 with
``Allow``. When API keys are configured every route but the open ones (``/health``,
``/health/live``, ``/``, ``/ui``) needs ``Authorization: Bearer <key>`` (or Basic with the
key as password); admin routes need the admin key when one is set. Command errors become
statuses through :mod:`synap.api.error_status`.

The handlers are plain methods called by the server with a parsed
:class:`~synap.api.http_server.Request`; one that must wait (a ``wait`` on replicas, a
``min_offset``, a promotion) returns a coroutine, the rest answer synchronously.

``GET /kv/get/{key}`` without a query or ``Synap-Min-Offset`` is also served from the
server's parser callbacks (:meth:`HttpApi.fast_route`, a
:class:`~synap.api.http_server.FastRoute`) when no API keys are configured: the same
answer, counters, metrics and group commit as through :meth:`HttpApi.handle`, without the
request object and the route lookup.
"""

from __future__ import annotations

import base64
import hmac
import logging
from collections.abc import Awaitable, Coroutine
from time import perf_counter
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from synap import __version__
from synap.api import command_endpoint, consistency, json_values, status_page, views
from synap.api.error_status import http_error
from synap.api.http_routes import Route, RouteTable
from synap.api.http_server import FastRoute, Request, Response, header_block
from synap.api.json_values import from_stored, to_stored
from synap.commands.errors import CommandError, OffsetTimeoutError
from synap.store.keyspace import now_ms

if TYPE_CHECKING:
    from synap.api.services import NodeServices

log = logging.getLogger("synap.http")

#: What a handler gives back: (status, JSON-able body or bytes for text), or a whole
#: Response; a coroutine of one when it must wait.
Reply = tuple[int, Any] | Response

_JSON_HEADERS = b"content-type: application/json\r\n"
_TEXT_HEADERS = b"content-type: text/plain; version=0.0.4\r\n"
_HTML_HEADERS = header_block(
    [
        (b"content-type", b"text/html; charset=utf-8"),
        # Self-contained: nothing may load from anywhere else.
        (
            b"content-security-policy",
            b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            b"connect-src 'self'; img-src 'self' data:",
        ),
        (b"cache-control", b"no-store"),
    ]
)
_PAGE = status_page.PAGE.encode()
_REDIRECT = Response(302, b"", b"location: /ui\r\n")


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def _error_body(status: int, message: str, code: str, **extra: Any) -> tuple[int, Any]:
    return status, {"error": message, "code": code, **extra}


class HttpApi:
    """The handlers; ``handle(request)`` is what the server calls."""

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
        self.routes = ROUTE_TABLE
        self._observe = node.http_timings.observe

    # ----------------------------------------------------------------- dispatch
    def fast_route(self) -> FastRoute | None:
        """``GET /kv/get/{key}`` for the server's parser to answer itself, or None when
        API keys are configured (then every request is authenticated by :meth:`handle`).
        A query or a ``Synap-Min-Offset`` header (a read that may wait) takes the general
        path."""
        if self._api_keys:
            return None
        prefix = _KV_GET.prefix
        assert prefix is not None
        return FastRoute(prefix.encode(), self._fast_kv_get, frozenset({b"synap-min-offset"}))

    def _fast_kv_get(self, key: bytes) -> Response:
        """:meth:`handle` for ``GET /kv/get/<key>`` (plain, no API keys: an open node)."""
        started = perf_counter()
        node = self.node
        node.processed.value += 1
        try:
            reply = self._kv_value(key)
        except Exception as exc:
            request = _fast_request(key)
            return self._finish(request, _KV_GET, started, self._failure(request, exc))
        node.flush_writes()  # group commit, as in handle()
        if reply.__class__ is Response:
            self._observe(_KV_GET_LABEL, perf_counter() - started)
            return reply
        return self._finish(_fast_request(key), _KV_GET, started, reply)

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        """Answer one request: a Response now, or an awaitable of one."""
        started = perf_counter()
        found = self.routes.match(request.path)
        route = None
        try:
            if found is None:
                self._authenticate(request)
                self.node.processed.value += 1
                if request.too_large:
                    raise self._too_large(request)
                raise HttpError(404, f"no route for {request.method} {request.path}", "NOT_FOUND")
            route, key = found
            if not route.open:
                if self._api_keys:
                    self._authenticate(request)
                self.node.processed.value += 1
                if request.too_large:
                    raise self._too_large(request)
            if request.method not in route.methods:
                raise HttpError(
                    405, f"use {route.allow.decode()} for this route", "METHOD_NOT_ALLOWED"
                )
            if route.admin:
                self._require_admin(request)
            reply = route.handler(self, request, key)
        except Exception as exc:
            return self._finish(request, route, started, self._failure(request, exc))
        cls = reply.__class__
        if cls is not Response and cls is not tuple:  # a coroutine: the handler waits
            return self._finish_later(request, route, started, reply)
        if not route.open:
            # Group commit, as on the RESP port: nothing is acknowledged before the WAL
            # holds it (fsynced under fsync_mode: always). No await since the write, so
            # the WAL is also written before the records are streamed to replicas.
            self.node.flush_writes()
        return self._finish(request, route, started, reply)

    async def _finish_later(
        self,
        request: Request,
        route: Route | None,
        started: float,
        pending: Coroutine[Any, Any, Reply],
    ) -> Response:
        try:
            reply = await pending
            self.node.flush_writes()  # group commit, as in handle()
        except Exception as exc:
            reply = self._failure(request, exc)
        return self._finish(request, route, started, reply)

    def _failure(self, request: Request, exc: Exception) -> Reply:
        if isinstance(exc, HttpError):
            return _error_body(exc.status, exc.message, exc.code)
        if isinstance(exc, CommandError):
            status, code = http_error(exc)
            extra: dict[str, Any] = {}
            master = getattr(exc, "master", None)
            if master is not None or code == "READONLY":
                extra["master"] = master
                extra["detail"] = getattr(exc, "detail", "")
            elif getattr(exc, "detail", None):
                extra["detail"] = exc.detail  # type: ignore[attr-defined]
            if request.error_extra:
                extra.update(request.error_extra)
            return _error_body(status, exc.message, code, **extra)
        log.error("internal error on %s %s", request.method, request.path, exc_info=exc)
        return _error_body(500, "internal server error; see the server log", "INTERNAL")

    def _finish(
        self, request: Request, route: Route | None, started: float, reply: Reply
    ) -> Response:
        if reply.__class__ is Response:
            response: Response = reply
        else:
            status, body = reply  # type: ignore[misc]
            if (
                request.path == "/api/v1/command"
                and isinstance(body, dict)
                and "success" not in body
            ):
                # Auth, size and JSON errors too keep the envelope the SDK reads.
                body = command_endpoint.envelope_for(body["error"], body["code"])
            if isinstance(body, bytes):
                response = Response(status, body, _TEXT_HEADERS)
            elif request.offset is not None:
                headers = _JSON_HEADERS + b"synap-offset: %d\r\n" % request.offset
                response = Response(status, _encode(body), headers)
            else:
                response = Response(status, _encode(body), _JSON_HEADERS)
        if response.status == 405 and route is not None:
            response.headers += b"allow: %s\r\n" % route.allow
        self._observe(route.label if route is not None else "other", perf_counter() - started)
        return response

    def _too_large(self, request: Request) -> HttpError:
        declared = request.declared_length
        if declared is not None:
            message = (
                f"request body of {declared} bytes is over the "
                f"{self.max_body}-byte limit (server.max_body_bytes)"
            )
        else:
            message = f"request body over {self.max_body} bytes (server.max_body_bytes)"
        return HttpError(413, message, "PAYLOAD_TOO_LARGE")

    # ----------------------------------------------------------------- auth
    def _has_key(self, request: Request) -> bool:
        token = _bearer(request)
        return token is not None and any(hmac.compare_digest(token, k) for k in self._api_keys)

    def _authenticate(self, request: Request) -> None:
        if not self._api_keys:
            return
        if not self._has_key(request):
            raise HttpError(
                401, "missing or invalid API key (send Authorization: Bearer <key>)", "UNAUTHORIZED"
            )

    def _require_admin(self, request: Request) -> None:
        if self._admin_key is None:
            return
        token = _bearer(request)
        if token is None or not hmac.compare_digest(token, self._admin_key):
            raise HttpError(
                403, "this endpoint needs the admin key (server.admin_key)", "FORBIDDEN"
            )

    # ----------------------------------------------------------------- open routes
    def health(self, request: Request, _key: bytes) -> Reply:
        """Readiness: 200 when this node's data may be served, else 503 (a replica that
        has not synced, or whose link has been down too long). The rules and why are in
        ReplicationManager.health and docs/MONITORING.md.

        The route is open, for load balancers. With API keys configured, a caller
        without one gets the verdict but not the topology: the master's address and
        the error text (which may name hosts) are left out."""
        node = self.node
        ok, status, replication = node.replication.health()
        if self._api_keys and not self._has_key(request):
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
        return Response(200 if ok else 503, orjson.dumps(body), _JSON_HEADERS)

    def live(self, _request: Request, _key: bytes) -> Reply:
        return Response(200, self._live, _JSON_HEADERS)

    def root(self, _request: Request, _key: bytes) -> Reply:
        return Response(_REDIRECT.status, _REDIRECT.body, _REDIRECT.headers)

    def page(self, _request: Request, _key: bytes) -> Reply:
        # The page holds no data (it fetches /ui/status), so it is open.
        return Response(200, _PAGE, _HTML_HEADERS)

    # ----------------------------------------------------------------- key-value
    def kv_get(self, request: Request, key: bytes) -> Reply | Coroutine[Any, Any, Reply]:
        if request.query or request.header(b"synap-min-offset") is not None:
            return self._kv_get_after(request, key)
        return self._kv_value(key)

    async def _kv_get_after(self, request: Request, key: bytes) -> Reply:
        await self._await_token(request)
        return self._kv_value(key)

    def _kv_value(self, key: bytes) -> Reply:
        """command_endpoint.value_reply's answer, written without building the dict."""
        if not key:
            raise HttpError(400, "missing key in the path", "BAD_REQUEST")
        node = self.node
        commands = node.commands
        raw = commands.get(key)
        if raw is None:
            return _error_body(404, f"key '{key.decode(errors='replace')}' not found", "NOT_FOUND")
        value, encoding = from_stored(raw, commands.is_json(key))
        ttl = command_endpoint.ttl_after_read(node, key)
        return Response(
            200,
            b'{"found":true,"value":%s,"ttl":%s%s}'
            % (
                orjson.dumps(value) if value.__class__ is str else json_values.dumps(value),
                b"null" if ttl is None else b"%d" % ttl,
                b"" if encoding is None else b',"encoding":"%s"' % encoding.encode(),
            ),
            _JSON_HEADERS,
        )

    def kv_del(self, request: Request, key: bytes) -> Reply | Coroutine[Any, Any, Reply]:
        _require_key(key)
        body = self._json(request, optional=True)
        if not isinstance(body, dict) or any(name != "wait" for name in body):
            raise HttpError(
                400, 'the body of DELETE /kv/del is optional: {"wait": {...}}', "BAD_REQUEST"
            )
        node = self.node
        plan = consistency.wait_plan(node, body.get("wait"))
        deleted = node.commands.delete([key]) == 1
        return self._written(
            request, plan, {"deleted": deleted, "key": key.decode(errors="replace")}
        )

    def kv_set(self, request: Request, _key: bytes) -> Reply | Coroutine[Any, Any, Reply]:
        body = self._json(request)
        plan = consistency.wait_plan(
            self.node, body.get("wait") if isinstance(body, dict) else None
        )
        return self._written(request, plan, self._kv_set(body))

    def kv_stats(self, _request: Request, _key: bytes) -> Reply:
        return 200, self.node.kv_stats()

    async def command(self, request: Request, _key: bytes) -> Reply:
        """``POST /api/v1/command``: the SDK envelope."""
        body = self._json(request)
        command = body.get("command") if isinstance(body, dict) else None
        if command in ("kv.flushall", "kv.flushdb"):
            self._require_admin(request)
        header = request.header(b"synap-min-offset")
        status, envelope = await command_endpoint.execute_consistent(
            self.node, body, header.decode(errors="replace") if header is not None else None
        )
        result = envelope.get("payload")
        offset = envelope.get("offset", result.get("offset") if isinstance(result, dict) else None)
        if (
            isinstance(command, str)
            and command in command_endpoint.WRITE_COMMANDS
            and isinstance(offset, int)
        ):
            request.offset = offset
        return status, envelope

    def info(self, request: Request, _key: bytes) -> Reply:
        query = parse_qs(request.query.decode())
        return 200, {"info": self.node.info_text(query.get("section", []))}

    def metrics(self, _request: Request, _key: bytes) -> Reply:
        return 200, self.node.metrics_text()

    async def ui_status(self, _request: Request, _key: bytes) -> Reply:
        return 200, await status_page.group_status(self.node)

    # ----------------------------------------------------------------- replication
    def replication_stats(self, _request: Request, _key: bytes) -> Reply:
        node = self.node
        stats = node.replication.stats()
        if node.coordinator is not None:
            stats["failover"] = node.coordinator.status()
        return 200, stats

    def leader(self, _request: Request, _key: bytes) -> Reply:
        """``GET /api/replication/leader``: the elected master (automatic failover), or 503."""
        coordinator = self.node.coordinator
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

    async def promote(self, request: Request, _key: bytes) -> Reply:
        body = self._json(request, optional=True)
        listen = body.get("replica_listen_address") if isinstance(body, dict) else None
        if listen is not None and not isinstance(listen, str):
            raise HttpError(
                400, "'replica_listen_address' must be a \"host:port\" string", "BAD_REQUEST"
            )
        promoted = await self.node.replication.promote(reason="HTTP promote", listen_address=listen)
        return 200, views.role_change_json(promoted)

    def pause(self, request: Request, _key: bytes) -> Reply:
        seconds = _pause_seconds(self._json(request))
        return 200, views.role_change_json(
            self.node.replication.pause_writes(seconds, reason="HTTP pause")
        )

    def resume(self, _request: Request, _key: bytes) -> Reply:
        return 200, views.role_change_json(
            self.node.replication.resume_writes(reason="HTTP resume")
        )

    def replicaof(self, request: Request, _key: bytes) -> Reply:
        return 200, self._replicaof(self._json(request))

    async def handoff(self, request: Request, _key: bytes) -> Reply:
        body = self._json(request)
        to = body.get("to") if isinstance(body, dict) else None
        if not isinstance(to, str) or not to:
            raise HttpError(400, "'to' must be the node id of the target", "BAD_REQUEST")
        coordinator = self.node.coordinator
        if coordinator is None:
            raise HttpError(
                409,
                "handoff needs replication.failover.mode: etcd; in manual mode use "
                "synap-cli failover",
                "NOT_ETCD",
            )
        return 200, views.role_change_json(await coordinator.hand_off(to))

    def digest(self, _request: Request, _key: bytes) -> Reply:
        return 200, self.node.digest_report()

    async def failover(self, request: Request, _key: bytes) -> Reply:
        body = self._json(request, optional=True)
        return 200, await self.node.replication.failover_http(
            body if isinstance(body, dict) else {}
        )

    # ----------------------------------------------------------------- helpers
    def _written(
        self, request: Request, plan: consistency.WaitPlan | None, answer: dict[str, Any]
    ) -> Reply | Coroutine[Any, Any, Reply]:
        """A write's answer: now when it waits for nothing (no task), else once its wait
        is over (:meth:`_waited`)."""
        if plan is not None:
            return self._waited(request, plan, answer)
        fields = consistency.written_now(self.node)
        request.offset = fields["offset"]
        answer.update(fields)
        return 200, answer

    async def _waited(
        self, request: Request, plan: consistency.WaitPlan | None, answer: dict[str, Any]
    ) -> Reply:
        """A write's answer once its wait is over: with ``offset`` and ``replicas_acked``
        (and the ``Synap-Offset`` header); HTTP 504 if too few replicas confirmed."""
        ok, fields = await consistency.finish_write(self.node, plan)
        request.offset = fields["offset"]
        answer.update(fields)
        if ok:
            return 200, answer
        error = consistency.not_confirmed_message(plan, fields["replicas_acked"])
        return 504, {**answer, "error": error, "code": "WAIT_TIMEOUT", "applied": True}

    async def _await_token(self, request: Request) -> None:
        """``min_offset`` (query parameter or ``Synap-Min-Offset`` header) and
        ``timeout_ms``: wait until this node has applied that offset, else HTTP 503."""
        query = parse_qs(request.query.decode(errors="replace"))
        unknown = [name for name in query if name not in ("min_offset", "timeout_ms")]
        if unknown:
            raise HttpError(
                400,
                f"unknown query parameter(s) {', '.join(repr(n) for n in unknown)} "
                "(known: min_offset, timeout_ms)",
                "BAD_REQUEST",
            )
        header = request.header(b"synap-min-offset")
        raw: str | bytes | None = query["min_offset"][-1] if "min_offset" in query else header
        if isinstance(raw, bytes):
            raw = raw.decode(errors="replace")
        token = consistency.read_token(raw)
        timeout_ms = consistency.read_timeout(
            query["timeout_ms"][-1] if "timeout_ms" in query else None
        )
        try:
            await consistency.ensure_offset(self.node, token, timeout_ms)
        except OffsetTimeoutError as exc:
            request.error_extra = {"offset": exc.offset, "min_offset": exc.wanted}
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

    def _json(self, request: Request, optional: bool = False) -> Any:
        raw = request.body
        if len(raw) > self.max_body:  # the server refuses these first; a direct call too
            raise self._too_large(request)
        if not raw.strip():
            if optional:
                return {}
            raise HttpError(400, "request body is empty; send JSON", "BAD_REQUEST")
        try:
            return json_values.loads(raw)  # exact: integers beyond 64 bits stay integers
        except orjson.JSONDecodeError as exc:
            raise HttpError(400, f"invalid JSON: {exc}", "INVALID_JSON") from None


_KV_SET_FIELDS = frozenset({"key", "value", "ttl", "encoding", "wait"})

_GET = frozenset({"GET"})
_POST = frozenset({"POST"})

#: Every route the API serves (docs/ARCHITECTURE.md says where a new one goes).
ROUTES = (
    Route("/health", _GET, HttpApi.health, open=True),
    Route("/health/live", _GET, HttpApi.live, open=True),
    Route("/", _GET, HttpApi.root, open=True),
    Route("/ui", _GET, HttpApi.page, open=True),
    Route("/ui/status", _GET, HttpApi.ui_status),
    Route("/kv/get/{key}", _GET, HttpApi.kv_get),
    Route("/kv/del/{key}", frozenset({"DELETE"}), HttpApi.kv_del),
    Route("/kv/set", _POST, HttpApi.kv_set),
    Route("/kv/stats", _GET, HttpApi.kv_stats),
    Route("/api/v1/command", _POST, HttpApi.command),
    Route("/api/v1/info", _GET, HttpApi.info),
    Route("/api/replication/stats", _GET, HttpApi.replication_stats),
    Route("/api/replication/leader", _GET, HttpApi.leader),
    Route("/api/replication/promote", _POST, HttpApi.promote, admin=True),
    Route("/api/replication/pause", _POST, HttpApi.pause, admin=True),
    Route("/api/replication/resume", _POST, HttpApi.resume, admin=True),
    Route("/api/replication/replicaof", _POST, HttpApi.replicaof, admin=True),
    Route("/api/replication/handoff", _POST, HttpApi.handoff, admin=True),
    Route("/api/replication/digest", _GET, HttpApi.digest),
    Route("/api/replication/failover", _POST, HttpApi.failover, admin=True),
    Route("/metrics", _GET, HttpApi.metrics),
)
ROUTE_TABLE = RouteTable(ROUTES)
_KV_GET = next(route for route in ROUTES if route.pattern == "/kv/get/{key}")
_KV_GET_LABEL = _KV_GET.label


def _fast_request(key: bytes) -> Request:
    """The request the general path would have parsed for a fast ``GET /kv/get/<key>``
    (for the rare answers that need one: not found, errors)."""
    assert _KV_GET.prefix is not None
    request = Request([])
    request.path = _KV_GET.prefix + key.decode("ascii")
    return request


def route_label(path: str) -> str:
    """The route a request path belongs to, for metrics: never the key, never an
    arbitrary client-chosen path (that would grow the label set without bound)."""
    found = ROUTE_TABLE.match(path)
    return found[0].label if found is not None else "other"


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


def _require_key(key: bytes) -> None:
    if not key:
        raise HttpError(400, "missing key in the path", "BAD_REQUEST")


def _bearer(request: Request) -> bytes | None:
    value = request.header(b"authorization")
    if value is None:
        return None
    scheme, _, rest = value.partition(b" ")
    scheme = scheme.lower()
    if scheme == b"bearer":
        return rest.strip()
    if scheme == b"basic":
        try:
            decoded = base64.b64decode(rest.strip())
        except ValueError:
            return None
        return decoded.partition(b":")[2]
    return None
