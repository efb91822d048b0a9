"""The JSON front ends under random input (hypothesis): ``command_endpoint.execute`` with
random JSON-shaped envelopes, and the whole HTTP app (``HttpApi`` behind the sans-IO
request parser) with random bodies.

Properties: nothing raises; bad input is ``success: false`` (or a 4xx) with an error
text, never a 500; every answer can be serialized; the seeded keys are untouched; and
the effect records the node committed rebuild its dataset exactly (what replicas and
recovery rely on).

Found here: a JSON value nested deeper than 254 levels (orjson reads 1024, writes 254)
as a ``value`` or as the ``request_id``, or stored over RESP and read over HTTP, raised
TypeError: HTTP 500 and a traceback in the log.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from synap.api import command_endpoint
from synap.api.http import HttpApi
from synap.api.http_server import RequestParser, Response
from synap.commands.errors import CommandError
from synap.config import build_config
from synap.node import Node
from synap.store.digest import dataset_digest
from synap.store.effects import apply_record
from synap.store.keyspace import Keyspace
from tests.support.fuzz_node import scaled

FUZZ = settings(
    max_examples=scaled(150), deadline=2000, suppress_health_check=[HealthCheck.too_slow]
)
SEED = {f"seed:{i}".encode(): f"value-{i}".encode() for i in range(20)}
DEEP = 300  # more levels than orjson will serialize


class FuzzNode:
    """A real Node (not started: no sockets) with seeded keys and a record log."""

    def __init__(self) -> None:
        self.node = Node(build_config({"kv_store": {"max_value_bytes": 1 << 20}}))
        self.records: list[bytes] = []
        self.node.history.subscribe(lambda _offset, record: self.records.append(record))
        # Role changes would start network activity: never from a fuzzer.
        self.node.replication.follow = _refuse  # type: ignore[method-assign]
        self.node.replication.promote = _refuse  # type: ignore[method-assign]
        self.node.commands.mset(list(SEED.items()))

    def check_invariants(self) -> None:
        ks = self.node.keyspace
        for key, value in SEED.items():
            assert ks.data.get(key) == value, f"seeded key {key!r} changed"
        replayed = Keyspace(expire_on_access=False)
        for record in self.records:
            apply_record(replayed, record)
        assert dataset_digest(replayed.data, replayed.expires, replayed.json_keys) == (
            dataset_digest(ks.data, ks.expires, ks.json_keys)
        ), "the effect records do not rebuild the dataset (values and kinds)"
        assert ks.json_keys <= ks.data.keys(), "a json-kind mark outlived its key"


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise CommandError("ERR role changes are disabled in this test")


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# What orjson.loads can produce: 64-bit ints (u64 too), finite floats, valid strings.
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
) | st.integers(250, 400).map(nested)
FIELDS = ["key", "keys", "value", "ttl", "seconds", "amount", "delta", "pairs", "prefix",
          "limit", "count", "pattern"]  # fmt: skip
field_values = (
    json_values
    | st.sampled_from(["k", "n", "10", "-1", "*", "k*", "[]"])
    | st.lists(st.sampled_from(["k", "n", "other"]), max_size=3)
)
payloads = st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=5) | json_values
commands = st.sampled_from(sorted(command_endpoint.COMMANDS)) | json_values
envelopes = (
    st.fixed_dictionaries(
        {"command": commands, "payload": payloads},
        optional={"request_id": json_values},
    )
    | json_values
)


@FUZZ
@given(st.lists(envelopes, min_size=1, max_size=8))
@example([{"command": "kv.set", "payload": {"key": "k", "value": nested(DEEP)}}])
@example([{"command": "kv.get", "request_id": nested(DEEP), "payload": {"key": "k"}}])
@example([{"command": "kv.mset", "payload": {"pairs": {"k": nested(DEEP)}}}])
@example([{"command": "kv.incr", "payload": {"key": "n", "amount": 2**63}}])
@example([{"command": "kv.set", "payload": {"key": "k", "value": 1, "ttl": 2**62}}])
@example([{"command": "kv.keys", "payload": {"pattern": "*a*a*a*a*a*a*a*a*a*a*a*a*ab"}}])
def test_execute_never_raises_and_fails_inside_the_envelope(bodies: list[Any]) -> None:
    fuzz = FuzzNode()
    for body in bodies:
        status, envelope = command_endpoint.execute(fuzz.node, body)
        assert status in (200, 400, 403, 404, 409, 503, 507)
        orjson.dumps(envelope)  # what the HTTP layer sends must serialize
        if envelope["success"]:
            assert status == 200 and envelope["error"] is None
            assert set(envelope) == {"success", "request_id", "payload", "error"}
        else:
            assert status != 200  # the error's own status, in the SDK's envelope
            assert set(envelope) == {"success", "request_id", "payload", "error", "code"}
            assert isinstance(envelope["error"], str) and envelope["error"]
            assert isinstance(envelope["code"], str) and envelope["code"]
            assert envelope["payload"] is None
    fuzz.check_invariants()


def test_a_deep_value_stored_over_resp_reads_back_over_http_as_text() -> None:
    fuzz = FuzzNode()
    raw = b"[" * DEEP + b"]" * DEEP
    fuzz.node.commands.set(b"deep", raw)
    status, envelope = command_endpoint.execute(
        fuzz.node, {"command": "kv.get", "payload": {"key": "deep"}}
    )
    assert status == 200 and envelope["payload"]["value"] == raw.decode()
    orjson.dumps(envelope)


# ------------------------------------------------------------------ the HTTP app


def app_call(app: HttpApi, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    """One request as bytes through the sans-IO parser, then the app's handler."""
    parser = RequestParser(max_body=app.max_body)
    target = quote(path, safe="/")
    parser.feed(
        b"%s %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (method.encode(), target.encode(), len(body), body)
    )
    assert len(parser.ready) == 1
    request = parser.ready.popleft()
    assert request.path == path and request.body == body

    async def run() -> Response:
        answer = app.handle(request)
        return answer if isinstance(answer, Response) else await answer

    response = asyncio.run(run())
    return response.status, response.body


def json_text(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:  # deeper than orjson writes: a client could send it
        return repr(value).encode()


routes = st.sampled_from(
    [
        ("POST", "/kv/set"),
        ("POST", "/api/v1/command"),
        ("GET", "/kv/get/k"),
        ("DELETE", "/kv/del/k"),
        ("GET", "/kv/stats"),
        ("GET", "/api/replication/digest"),
        ("PUT", "/kv/set"),
        ("GET", "/nowhere"),
    ]  # fmt: skip
) | st.tuples(
    st.sampled_from(["GET", "POST", "DELETE"]), st.text(max_size=20).map("/kv/get/".__add__)
)
bodies = (
    st.binary(max_size=200)
    | envelopes.map(json_text)
    | st.fixed_dictionaries({"key": field_values, "value": json_values}, optional={"ttl": json_values}).map(json_text)
)  # fmt: skip


@settings(max_examples=scaled(150), deadline=3000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(routes, bodies), min_size=1, max_size=6))
@example([(("POST", "/kv/set"), b'{"key": "k", "value": ' + b"[" * DEEP + b"]" * DEEP + b"}")])
@example(
    [
        (
            ("POST", "/api/v1/command"),
            b'{"command": "kv.get", "request_id": '
            + b"[" * DEEP
            + b"]" * DEEP
            + b', "payload": {"key": "k"}}',
        )
    ]
)
@example([(("POST", "/kv/set"), b'{"key": "k", "value": "v", "ttl": 99999999999999999999}')])
def test_http_app_answers_bad_input_with_json_4xx_never_500(
    requests: list[tuple[tuple[str, str], bytes]],
) -> None:
    fuzz = FuzzNode()
    app = HttpApi(fuzz.node)
    for (method, path), body in requests:
        status, reply = app_call(app, method, path, body)
        assert status < 500, (status, reply)
        parsed = orjson.loads(reply)
        if status >= 400:
            # REST errors carry a code; the command endpoint keeps its envelope.
            assert isinstance(parsed, dict) and isinstance(parsed["error"], str)
            assert parsed["error"] and (parsed.get("code") or parsed.get("success") is False)
    fuzz.check_invariants()
