"""Data comes back exactly as it was written (issue 8, items 1 and 2), through real servers.

Over HTTP (REST and ``/api/v1/command``) a value reads back as the JSON value it was
written as: strings that look like JSON stay strings, integers beyond 64 bits keep every
digit, ``"encoding": "base64"`` writes raw bytes, ``kv.mget`` tells a stored null from a
missing key.  RESP sees the same bytes.  The kind travels to replicas (streamed and full
sync) and survives restarts; a hypothesis property test drives all three.  Unknown
fields in write bodies are refused with a 400 that names them.
"""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.checks import assert_same_data, digest
from tests.support.fixtures import module_node
from tests.support.server import NodeFactory, SynapProcess, wait_caught_up

BIG = 123456789012345678901234567890
LOOKS_LIKE_JSON = ["1", "true", "false", "null", '{"a":1}', "[1, 2]", "1 ", " 1", "-0", "1e5", ""]


node = module_node("json")


@pytest.fixture
def k(request: pytest.FixtureRequest) -> str:
    return request.node.name.replace("[", "(").replace("]", ")") + ":"


def command(node: SynapProcess, name: str, **payload: Any) -> httpx.Response:
    body = {"command": name, "request_id": str(uuid.uuid4()), "payload": payload}
    return node.http.post("/api/v1/command", json=body)


def ok(node: SynapProcess, name: str, **payload: Any) -> Any:
    response = command(node, name, **payload)
    body = response.json()
    assert response.status_code == 200 and body["success"] is True, body
    return body["payload"]


def rest_get(node: SynapProcess, key: str) -> dict[str, Any]:
    response = node.http.get("/kv/get/" + quote(key, safe=""))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def rest_set(node: SynapProcess, key: str, value: Any, **extra: Any) -> None:
    response = node.http.post("/kv/set", json={"key": key, "value": value, **extra})
    assert response.status_code == 200, response.text


def canonical(value: Any) -> str:
    """Equal iff the same JSON value, types included (1, 1.0 and "1" all differ)."""
    return json.dumps(value, sort_keys=True)


def reads(node: SynapProcess, key: str) -> list[Any]:
    """The value of ``key`` as REST, kv.get and kv.mget return it."""
    return [
        rest_get(node, key)["value"],
        ok(node, "kv.get", key=key)["value"],
        ok(node, "kv.mget", keys=[key])["values"][0],
    ]


def assert_reads(node: SynapProcess, key: str, value: Any) -> None:
    for got in reads(node, key):
        assert canonical(got) == canonical(value), f"{key}: wrote {value!r}, read {got!r}"


# ----------------------------------------------------------------- strings stay strings


@pytest.mark.parametrize("text", LOOKS_LIKE_JSON)
def test_strings_that_look_like_json_read_back_as_strings(
    node: SynapProcess, k: str, text: str
) -> None:
    rest_set(node, k + "rest", text)
    ok(node, "kv.set", key=k + "cmd", value=text)
    ok(node, "kv.mset", pairs=[{"key": k + "mset", "value": text}])
    for key in (k + "rest", k + "cmd", k + "mset"):
        assert_reads(node, key, text)
        assert node.redis().get(key.encode()) == text.encode()  # the same bytes over RESP


@pytest.mark.parametrize("text", LOOKS_LIKE_JSON)
def test_text_written_over_resp_reads_back_over_http_as_a_string(
    node: SynapProcess, k: str, text: str
) -> None:
    node.redis().set(k + "r", text.encode())
    assert_reads(node, k + "r", text)


def test_a_plain_resp_write_replaces_a_json_value_with_a_string(node: SynapProcess, k: str) -> None:
    rest_set(node, k + "x", {"a": 1})
    assert_reads(node, k + "x", {"a": 1})
    node.redis().set(k + "x", b'{"a":1}')
    assert_reads(node, k + "x", '{"a":1}')
    node.redis().set(k + "y", b"1")
    ok(node, "kv.set", key=k + "y", value=1)  # and the reverse
    assert_reads(node, k + "y", 1)


# ----------------------------------------------------------------- numbers stay numbers


@pytest.mark.parametrize("number", [BIG, -BIG, 2**64, -(2**63) - 1, 10**300])
def test_big_integers_round_trip_exactly(node: SynapProcess, k: str, number: int) -> None:
    rest_set(node, k + "rest", number)
    ok(node, "kv.set", key=k + "cmd", value=number)
    ok(node, "kv.mset", pairs=[{"key": k + "mset", "value": {"n": [number]}}])
    assert_reads(node, k + "rest", number)
    assert_reads(node, k + "cmd", number)
    assert_reads(node, k + "mset", {"n": [number]})
    assert node.redis().get(k + "rest") == str(number).encode()  # compact JSON text
    # The reply is exact JSON text, not a float's rendering.
    raw = node.http.get("/kv/get/" + quote(k + "rest", safe="")).content
    assert f'"value":{number}'.encode() in raw


def test_counters_read_back_as_numbers_and_appends_as_text(node: SynapProcess, k: str) -> None:
    incremented = ok(node, "kv.incr", key=k + "n", amount=41)
    assert isinstance(incremented.pop("offset"), int)  # the write's read-your-writes token
    assert incremented == {"value": 41, "replicas_acked": 0}
    assert_reads(node, k + "n", 41)
    node.redis().incr(k + "n")
    assert_reads(node, k + "n", 42)
    node.redis().incrbyfloat(k + "f", 1.5)
    assert_reads(node, k + "f", 1.5)
    node.redis().append(k + "n", "0")
    assert_reads(node, k + "n", "420")
    node.redis().rename(k + "f", k + "g")  # RENAME keeps the kind
    assert_reads(node, k + "g", 1.5)


# ----------------------------------------------------------------- base64 and mget


def test_base64_encoding_on_writes(node: SynapProcess, k: str) -> None:
    raw = b"\x00\xff\xfebinary"
    text = base64.b64encode(raw).decode()
    rest_set(node, k + "rest", text, encoding="base64")
    ok(node, "kv.set", key=k + "cmd", value=text, encoding="base64")
    ok(node, "kv.mset", pairs=[{"key": k + "mset", "value": text, "encoding": "base64"}])
    for key in (k + "rest", k + "cmd", k + "mset"):
        assert node.redis().get(key) == raw
        assert rest_get(node, key)["encoding"] == "base64"
        assert base64.b64decode(rest_get(node, key)["value"]) == raw
        assert ok(node, "kv.get", key=key)["encoding"] == "base64"
    got = ok(node, "kv.mget", keys=[k + "cmd", k + "none"])
    assert got["encodings"] == ["base64", None]
    # Base64 of UTF-8 text stores that text, which reads back as a plain string.
    rest_set(node, k + "utf8", base64.b64encode("héllo".encode()).decode(), encoding="base64")
    assert rest_get(node, k + "utf8") == {"found": True, "value": "héllo", "ttl": None}


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"value": "not base64!", "encoding": "base64"}, "not valid base64"),
        ({"value": 5, "encoding": "base64"}, "base64 string"),
        ({"value": "aGk=", "encoding": "hex"}, "'encoding' must be"),
    ],
)
def test_bad_base64_writes_are_refused_naming_the_problem(
    node: SynapProcess, k: str, extra: dict[str, Any], words: str
) -> None:
    response = node.http.post("/kv/set", json={"key": k + "r", **extra})
    assert response.status_code == 400 and words in response.json()["error"]
    response = command(node, "kv.set", key=k + "c", **extra)
    assert response.json()["success"] is False and words in response.json()["error"]
    assert node.redis().exists(k + "r", k + "c") == 0


def test_mget_tells_a_stored_null_from_a_missing_key(node: SynapProcess, k: str) -> None:
    ok(node, "kv.set", key=k + "null", value=None)
    got = ok(node, "kv.mget", keys=[k + "null", k + "missing", k + "null"])
    assert got["values"] == [None, None, None]
    assert got["found"] == [True, False, True]
    assert rest_get(node, k + "null") == {"found": True, "value": None, "ttl": None}


# ----------------------------------------------------------------- unknown fields


def test_an_unknown_field_in_a_rest_write_is_a_400_naming_it(node: SynapProcess, k: str) -> None:
    response = node.http.post("/kv/set", json={"key": k + "a", "value": "v", "tll": 60})
    assert response.status_code == 400
    assert "'tll'" in response.json()["error"] and response.json()["code"] == "BAD_REQUEST"
    assert node.redis().exists(k + "a") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"command": "kv.set", "payload": {"key": "K", "value": "v", "tll": 60}}, "'tll'"),
        (
            {"command": "kv.mset", "payload": {"pairs": [{"key": "K", "value": 1, "ttl": 5}]}},
            "'ttl'",
        ),
        ({"command": "kv.incr", "payload": {"key": "K", "amont": 5}}, "'amont'"),
        ({"command": "kv.set", "paylod": {"key": "K", "value": "v"}}, "'paylod'"),
    ],
)
def test_an_unknown_field_in_a_command_is_a_400_naming_it(
    node: SynapProcess, k: str, body: dict[str, Any], field: str
) -> None:
    text = json.dumps(body).replace('"K"', json.dumps(k + "K"))
    response = node.http.post(
        "/api/v1/command", content=text, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    envelope = response.json()
    assert set(envelope) == {"success", "request_id", "payload", "error", "code"}
    assert envelope["success"] is False and field in envelope["error"]
    assert node.redis().exists(k + "K") == 0


# ----------------------------------------------------------------- the property


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(LOOKS_LIKE_JSON)
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def test_any_json_value_round_trips_through_http_a_replica_and_restarts(
    node_factory: NodeFactory,
) -> None:
    always = {"persistence": {"fsync_mode": "always"}}
    master = node_factory.master(config=always)
    replica = node_factory.replica(master, config=always)
    written: dict[str, Any] = {}
    counter = itertools.count()

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(values=st.lists(JSON_VALUES, min_size=1, max_size=3))
    def round_trip(values: list[Any]) -> None:
        keys = []
        for value in values:
            key = f"p:{next(counter)}"
            if len(written) % 2:
                rest_set(master, key, value)
            else:
                ok(master, "kv.set", key=key, value=value)
            written[key] = value
            keys.append(key)
            assert_reads(master, key, value)
        wait_caught_up(master, [replica])
        for key in keys:
            assert_reads(replica, key, written[key])

    round_trip()
    assert len(written) >= 60, "hypothesis ran fewer examples than asked"
    assert_same_data(master, [replica])  # the digests cover the kinds too

    # A replica that joins now gets everything by full sync.
    late = node_factory.replica(master)
    assert_same_data(master, [late])
    for key, value in written.items():
        assert_reads(late, key, value)

    # Restarts: after a crash (WAL replay), after a clean stop (snapshot).
    expected = digest(master)
    for stop in (master.kill, master.terminate):
        stop()
        master.start()
        assert digest(master) == expected
        for key, value in written.items():
            assert_reads(master, key, value)
    # The replica's own data directory holds what its full sync and stream gave it.
    replica.terminate()
    replica.start()
    assert_same_data(master, [replica])
    for key, value in written.items():
        assert_reads(replica, key, value)
