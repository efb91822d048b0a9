"""``POST /api/v1/command``: the envelope the ``synap-sdk`` HTTP transport speaks.

``{"command": "kv.set", "request_id": ..., "payload": {...}}`` is answered with
``{"success", "request_id", "payload", "error"}``; a failed command answers
``success: false`` (plus ``code``) with the HTTP status of its error (see ``execute``).
Each ``kv.*`` command maps onto the same command layer calls as REST and RESP.  A field
the envelope or the command's payload does not know (a typo such as ``tll`` for ``ttl``)
fails the command with HTTP 400, naming the field, rather than being ignored.  Values map
to stored bytes as :mod:`synap.api.json_values` describes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from synap.api.error_status import http_error
from synap.api.json_values import from_stored, to_stored
from synap.commands.errors import CommandError, ForbiddenError, NotFoundError, OffsetTimeoutError
from synap.commands.layer import parse_int
from synap.store.keyspace import now_ms

if TYPE_CHECKING:
    from synap.api.services import EndpointServices

Payload = dict[str, Any]


class BadPayload(CommandError):
    pass


class UnknownFields(BadPayload):
    """The envelope or a payload holds fields the command does not know (HTTP 400)."""


def check_fields(given: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    """Raise :class:`UnknownFields` naming every field of ``given`` not in ``allowed``."""
    unknown = [name for name in given if name not in allowed]
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        known = ", ".join(sorted(allowed)) or "none"
        plural = "s" if len(unknown) > 1 else ""
        raise UnknownFields(f"ERR unknown field{plural} {names} in {where} (known: {known})")


def _key(p: Payload, name: str = "key") -> bytes:
    value = p.get(name)
    if not isinstance(value, str) or value == "":
        raise BadPayload(f"ERR payload field '{name}' must be a non-empty string")
    return value.encode()


def _keys(p: Payload) -> list[bytes]:
    value = p.get("keys")
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise BadPayload("ERR payload field 'keys' must be a list of strings")
    return [k.encode() for k in value]


def _ttl_secs(p: Payload, *names: str) -> int | None:
    for name in names:
        if name in p and p[name] is not None:
            value = p[name]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise BadPayload(f"ERR payload field '{name}' must be a positive integer (seconds)")
            return value
    return None


def value_reply(node: EndpointServices, key: bytes) -> Payload:
    raw = node.commands.get(key)
    if raw is None:
        return {"found": False, "value": None, "ttl": None}
    value, encoding = from_stored(raw, node.commands.is_json(key))
    out: Payload = {"found": True, "value": value, "ttl": ttl_after_read(node, key)}
    if encoding:
        out["encoding"] = encoding
    return out


def ttl_after_read(node: EndpointServices, key: bytes) -> int | None:
    """Seconds to live (rounded as TTL rounds) of a key just read, None without expiry:
    the read has already checked roles and expiry, so no second lookup."""
    at = node.commands.keyspace.expiry_of(key)
    if at == 0:
        return None
    return (max(0, at - now_ms()) + 500) // 1000


def kv_set(node: EndpointServices, p: Payload) -> Payload:
    if "value" not in p:
        raise BadPayload("ERR payload field 'value' is required")
    ttl = _ttl_secs(p, "ttl")
    key = _key(p)
    value, is_json = to_stored(p["value"], p.get("encoding"))
    expire_at = now_ms() + ttl * 1000 if ttl else 0
    node.commands.set(key, value, expire_at_ms=expire_at, is_json=is_json)
    return {"success": True}


def kv_get(node: EndpointServices, p: Payload) -> Payload:
    return value_reply(node, _key(p))


def kv_del(node: EndpointServices, p: Payload) -> Payload:
    return {"deleted": node.commands.delete([_key(p)]) == 1}


def kv_mdel(node: EndpointServices, p: Payload) -> Payload:
    return {"deleted": node.commands.delete(_keys(p))}


def kv_exists(node: EndpointServices, p: Payload) -> Payload:
    return {"exists": node.commands.exists([_key(p)]) == 1}


def _amount(p: Payload) -> int:
    raw = p.get("amount", p.get("delta", 1))
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise BadPayload("ERR payload field 'amount' must be an integer")
    return parse_int(raw)


def kv_incr(node: EndpointServices, p: Payload) -> Payload:
    return {"value": node.commands.incr_by(_key(p), _amount(p))}


def kv_decr(node: EndpointServices, p: Payload) -> Payload:
    return {"value": node.commands.incr_by(_key(p), -_amount(p))}


def kv_mset(node: EndpointServices, p: Payload) -> Payload:
    pairs = p.get("pairs")
    items: list[tuple[Any, Any, Any]] = []
    if isinstance(pairs, dict):
        items = [(k, v, None) for k, v in pairs.items()]
    elif isinstance(pairs, list):
        for pair in pairs:
            if isinstance(pair, dict) and "key" in pair and "value" in pair:
                check_fields(pair, _PAIR_FIELDS, "a kv.mset pair")
                items.append((pair["key"], pair["value"], pair.get("encoding")))
            elif isinstance(pair, list) and len(pair) == 2:
                items.append((pair[0], pair[1], None))
            else:
                raise BadPayload('ERR each pair must be {"key": ..., "value": ...}')
    else:
        raise BadPayload("ERR payload field 'pairs' must be a list of {key, value}")
    if not items:
        raise BadPayload("ERR payload field 'pairs' is empty")
    for key, _, _ in items:
        if not isinstance(key, str) or not key:
            raise BadPayload("ERR every key in 'pairs' must be a non-empty string")
    stored = [to_stored(v, encoding) for _, v, encoding in items]
    node.commands.mset(
        [(k.encode(), value) for (k, _, _), (value, _) in zip(items, stored, strict=True)],
        json_kinds=[is_json for _, is_json in stored],
    )
    return {"success": True}


def kv_mget(node: EndpointServices, p: Payload) -> Payload:
    """``values`` as the SDK reads them, plus ``found`` (a stored JSON null is not a
    missing key) and ``encodings`` ("base64" for a value that is not UTF-8, else null)."""
    keys = _keys(p)
    commands = node.commands
    values: list[Any] = []
    found: list[bool] = []
    encodings: list[str | None] = []
    for key, raw in zip(keys, commands.mget(keys), strict=True):
        if raw is None:
            value, encoding = None, None
        else:
            value, encoding = from_stored(raw, commands.is_json(key))
        values.append(value)
        found.append(raw is not None)
        encodings.append(encoding)
    return {"values": values, "found": found, "encodings": encodings}


def _decode_keys(keys: list[bytes]) -> list[str]:
    return [k.decode(errors="replace") for k in keys]


def kv_scan(node: EndpointServices, p: Payload) -> Payload:
    prefix = p.get("prefix") or ""
    limit = p.get("limit", p.get("count", 100))
    if not isinstance(prefix, str):
        raise BadPayload("ERR payload field 'prefix' must be a string")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise BadPayload("ERR payload field 'limit' must be a positive integer")
    keys = _decode_keys(node.commands.scan_prefix(prefix.encode(), limit))
    return {"keys": keys, "count": len(keys)}


def kv_keys(node: EndpointServices, p: Payload) -> Payload:
    pattern = p.get("pattern") or "*"
    if not isinstance(pattern, str):
        raise BadPayload("ERR payload field 'pattern' must be a string")
    keys = _decode_keys(node.commands.keys(pattern.encode()))
    return {"keys": keys, "count": len(keys)}


def kv_dbsize(node: EndpointServices, p: Payload) -> Payload:
    return {"size": node.commands.dbsize()}


def kv_flush(node: EndpointServices, p: Payload) -> Payload:
    if not node.config.kv_store.allow_flush_commands:
        raise ForbiddenError(
            "ERR flush commands are disabled; set kv_store.allow_flush_commands: true to allow them"
        )
    return {"flushed": node.commands.flushall()}


def kv_expire(node: EndpointServices, p: Payload) -> Payload:
    ttl = _ttl_secs(p, "ttl", "seconds")
    if ttl is None:
        raise BadPayload("ERR payload field 'ttl' (seconds) is required")
    return {"result": node.commands.expire_at(_key(p), now_ms() + ttl * 1000)}


def kv_persist(node: EndpointServices, p: Payload) -> Payload:
    return {"result": node.commands.persist(_key(p))}


def kv_ttl(node: EndpointServices, p: Payload) -> Payload:
    key = _key(p)
    ttl = node.commands.ttl(key)
    if ttl == -2:
        raise NotFoundError(f"ERR key '{key.decode(errors='replace')}' not found")
    return {"ttl": ttl if ttl >= 0 else None}


def kv_stats(node: EndpointServices, p: Payload) -> Payload:
    return node.kv_stats()


COMMANDS: dict[str, Callable[[EndpointServices, Payload], Payload]] = {
    "kv.set": kv_set,
    "kv.get": kv_get,
    "kv.del": kv_del,
    "kv.delete": kv_del,
    "kv.mdel": kv_mdel,
    "kv.exists": kv_exists,
    "kv.incr": kv_incr,
    "kv.incrby": kv_incr,
    "kv.decr": kv_decr,
    "kv.decrby": kv_decr,
    "kv.mset": kv_mset,
    "kv.mget": kv_mget,
    "kv.scan": kv_scan,
    "kv.keys": kv_keys,
    "kv.dbsize": kv_dbsize,
    "kv.flushdb": kv_flush,
    "kv.flushall": kv_flush,
    "kv.expire": kv_expire,
    "kv.persist": kv_persist,
    "kv.ttl": kv_ttl,
    "kv.stats": kv_stats,
}


_KEY = frozenset({"key"})
_KEYS = frozenset({"keys"})
_NONE: frozenset[str] = frozenset()
_AMOUNT = frozenset({"key", "amount", "delta"})
_PAIR_FIELDS = frozenset({"key", "value", "encoding"})
_ENVELOPE_FIELDS = frozenset({"command", "request_id", "payload"})

#: The payload fields each command reads; any other field is refused.
FIELDS: dict[str, frozenset[str]] = {
    "kv.set": frozenset({"key", "value", "ttl", "encoding"}),
    "kv.get": _KEY,
    "kv.del": _KEY,
    "kv.delete": _KEY,
    "kv.mdel": _KEYS,
    "kv.exists": _KEY,
    "kv.incr": _AMOUNT,
    "kv.incrby": _AMOUNT,
    "kv.decr": _AMOUNT,
    "kv.decrby": _AMOUNT,
    "kv.mset": frozenset({"pairs"}),
    "kv.mget": _KEYS,
    "kv.scan": frozenset({"prefix", "limit", "count"}),
    "kv.keys": frozenset({"pattern"}),
    "kv.dbsize": _NONE,
    "kv.flushdb": _NONE,
    "kv.flushall": _NONE,
    "kv.expire": frozenset({"key", "ttl", "seconds"}),
    "kv.persist": _KEY,
    "kv.ttl": _KEY,
    "kv.stats": _NONE,
}


#: Commands that write: they accept "wait" and answer "offset" and "replicas_acked".
WRITE_COMMANDS = frozenset(
    {"kv.set", "kv.del", "kv.delete", "kv.mdel", "kv.incr", "kv.incrby", "kv.decr",
     "kv.decrby", "kv.mset", "kv.flushdb", "kv.flushall", "kv.expire", "kv.persist"}
)  # fmt: skip
#: Commands that read: they accept "min_offset" and "timeout_ms" (read-your-writes).
READ_COMMANDS = frozenset(
    {"kv.get", "kv.exists", "kv.mget", "kv.scan", "kv.keys", "kv.dbsize", "kv.ttl"}
)
_WAIT_FIELD = frozenset({"wait"})
_READ_FIELDS = frozenset({"min_offset", "timeout_ms"})
for _name in WRITE_COMMANDS:
    FIELDS[_name] = FIELDS[_name] | _WAIT_FIELD
for _name in READ_COMMANDS:
    FIELDS[_name] = FIELDS[_name] | _READ_FIELDS


async def execute_consistent(
    node: EndpointServices, body: Any, header_min_offset: str | None = None
) -> tuple[int, Payload]:
    """:func:`execute` with the consistency controls: a read first waits for
    ``min_offset`` (payload field, or the ``Synap-Min-Offset`` header); a write waits as
    its ``wait`` field (or ``replication.default_wait``) says, and its payload carries
    ``offset`` and ``replicas_acked`` (the envelope too, when the wait timed out)."""
    from synap.api import consistency

    if not isinstance(body, dict):
        return execute(node, body)
    command = body.get("command")
    payload = body.get("payload") or {}
    request_id = body.get("request_id")
    if (
        not isinstance(command, str)
        or not isinstance(payload, dict)
        or not isinstance(request_id, str | int | float | None)
    ):
        return execute(node, body)
    try:
        if command in READ_COMMANDS:
            raw = payload.get("min_offset", header_min_offset)
            token = consistency.read_token(raw)
            timeout_ms = consistency.read_timeout(payload.get("timeout_ms"))
            await consistency.ensure_offset(node, token, timeout_ms)
            return execute(node, body)
        if command not in WRITE_COMMANDS:
            return execute(node, body)
        plan = consistency.wait_plan(node, payload.get("wait"))
    except CommandError as exc:
        status, envelope = _failure(*http_error(exc), request_id, _error_text(exc))
        if isinstance(exc, OffsetTimeoutError):
            envelope["offset"] = exc.offset
        return status, envelope
    status, envelope = execute(node, body)
    if not envelope.get("success"):
        return status, envelope
    ok, fields = await consistency.finish_write(node, plan)
    if isinstance(envelope.get("payload"), dict):
        envelope["payload"].update(fields)
    if ok:
        return status, envelope
    envelope.update(
        fields,
        success=False,
        applied=True,
        code="WAIT_TIMEOUT",
        error=consistency.not_confirmed_message(plan, fields["replicas_acked"]),
    )
    return 504, envelope


def _failure(status: int, code: str, request_id: Any, error: str) -> tuple[int, Payload]:
    return status, {"success": False, "request_id": request_id, "payload": None,
                    "error": error, "code": code}  # fmt: skip


def execute(node: EndpointServices, body: Any) -> tuple[int, Payload]:
    """Run one envelope; returns (HTTP status, response envelope).

    A failure keeps the envelope the SDK reads (``success: false`` with ``error``; the
    SDK raises its error from that whatever the status) and adds ``code``, with the HTTP
    status the REST routes use for the same error: 400 for a bad envelope or payload,
    403, 404, 409 ``READONLY``, 503 ``TRYAGAIN``, 507 ``OUT_OF_MEMORY``.
    """
    if not isinstance(body, dict):
        return _failure(400, "BAD_REQUEST", None,
                        "request body must be a JSON object with 'command' and 'payload'")  # fmt: skip
    request_id = body.get("request_id")
    if isinstance(request_id, list | dict):
        # It is echoed back, and a deeply nested one could not even be serialized.
        return _failure(400, "BAD_REQUEST", None, "'request_id' must be a string or a number")
    command = body.get("command")
    payload = body.get("payload") or {}
    handler = COMMANDS.get(command) if isinstance(command, str) else None
    if handler is None:
        return _failure(400, "UNKNOWN_COMMAND", request_id, f"unknown command {command!r}")
    if not isinstance(payload, dict):
        return _failure(400, "BAD_REQUEST", request_id, "'payload' must be a JSON object")
    try:
        check_fields(body, _ENVELOPE_FIELDS, "the request envelope")
        check_fields(payload, FIELDS[str(command)], f"the {command} payload")
        result = handler(node, payload)
    except UnknownFields as exc:
        return _failure(400, "BAD_REQUEST", request_id, _error_text(exc))
    except CommandError as exc:
        return _failure(*http_error(exc), request_id, _error_text(exc))
    return 200, {"success": True, "request_id": request_id, "payload": result, "error": None}


def envelope_for(error: str, code: str) -> Payload:
    """An error found before the envelope was read (auth, size, JSON), in its shape."""
    return {"success": False, "request_id": None, "payload": None, "error": error, "code": code}


def _error_text(exc: CommandError) -> str:
    detail = getattr(exc, "detail", None)
    return f"{exc.message} ({detail})" if detail else exc.message
