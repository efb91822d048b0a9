"""The published ``synap-sdk``, unchanged, over its default ``synap://`` (SynapRPC) transport
against a real master and replica, side by side with its ``resp3://`` and HTTP transports
on the same nodes: the same operations give the same results, values of every JSON type
come back as written, the replica answers ``READONLY``, API keys are the handshake.

Also the port itself: TLS with the clients' certificate, bad frames (over-limit length
prefix, malformed MessagePack, wrong shape, unknown tag, an HTTP request) get an ``Err``
or a closed connection and the server carries on, and ``--rpc-port 0`` turns it off.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from synap_sdk import SynapClient, SynapConfig
from synap_sdk.exceptions import SynapException
from synap_sdk.transport_rpc import synap_config
from thunder_rpc import AsyncClient, ClientConfig, ClientTls
from thunder_rpc.errors import AuthError, ThunderError
from thunder_rpc.value import Request, Value
from thunder_rpc.wire import decode_response, encode_frame

from tests.support.certs import Pki, make_pki
from tests.support.ports import HOST
from tests.support.server import NodeFactory, SynapProcess, wait_caught_up, wait_for

KEY = "rpc-app-key-31c9"
ADMIN = "rpc-admin-key-8e02"


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SynapProcess, SynapProcess]]:
    factory = NodeFactory(tmp_path_factory.mktemp("sdk-rpc"))
    try:
        master = factory.master(name="master")
        replica = factory.replica(master, name="replica")
        yield master, replica
    finally:
        factory.cleanup()


@pytest.fixture(scope="module")
def master(cluster: tuple[SynapProcess, SynapProcess]) -> SynapProcess:
    return cluster[0]


@pytest.fixture(scope="module")
def replica(cluster: tuple[SynapProcess, SynapProcess]) -> SynapProcess:
    return cluster[1]


def urls(node: SynapProcess) -> dict[str, str]:
    return {
        "synap": node.rpc_url,
        "resp3": f"resp3://{HOST}:{node.resp_port}",
        "http": node.http_url,
    }


@pytest.fixture
def k(request: pytest.FixtureRequest) -> str:
    return request.node.name.replace("[", "(").replace("]", ")") + ":"


def run(url: str, scenario: Callable[[SynapClient], Awaitable[Any]], **config: Any) -> Any:
    async def main() -> Any:
        async with SynapClient(SynapConfig(url, timeout=10, **config)) as client:
            return await asyncio.wait_for(scenario(client), timeout=30)

    return asyncio.run(main())


def on_all(node: SynapProcess, scenario: Callable[[SynapClient, str], Awaitable[Any]], k: str) -> dict[str, Any]:  # fmt: skip
    """Run ``scenario`` once per transport, each on its own key prefix; the results."""
    results = {}
    for name, url in urls(node).items():

        async def bound(c: SynapClient, prefix: str = f"{k}{name}:") -> Any:
            return await scenario(c, prefix)

        results[name] = run(url, bound)
    return results


# ----------------------------------------------------------------- the same on every transport

VALUES: list[Any] = [
    "hello",
    "",
    "unicode ✓ ключ",
    0,
    -17,
    2**53,
    3.5,
    -0.25,
    1e-7,
    True,
    False,
    None,
    [],
    [1, "two", 3.0, None, [True]],
    {},
    {"name": "synap", "tags": ["a", "b"], "n": {"deep": [1, {"x": None}]}},
]


def test_values_of_every_json_type_round_trip_on_every_transport(master: SynapProcess, k: str) -> None:  # fmt: skip
    async def scenario(c: SynapClient, p: str) -> list[Any]:
        for i, value in enumerate(VALUES):
            await c.kv.set(f"{p}{i}", value)
        return [await c.kv.get(f"{p}{i}") for i in range(len(VALUES))]

    results = on_all(master, scenario, k)
    assert results["synap"] == VALUES
    for i, value in enumerate(VALUES):  # bool stays bool, float stays float
        assert type(results["synap"][i]) is type(value), (i, value, results["synap"][i])
    assert results["synap"] == results["resp3"] == results["http"]


def test_values_written_over_one_transport_read_over_the_others(master: SynapProcess, k: str) -> None:  # fmt: skip
    all_urls = urls(master)
    for writer, url in all_urls.items():

        async def write(c: SynapClient, w: str = writer) -> None:
            for i, value in enumerate(VALUES):
                await c.kv.set(f"{k}{w}:{i}", value)

        run(url, write)
        for reader, other in all_urls.items():

            async def read(c: SynapClient, w: str = writer) -> list[Any]:
                return [await c.kv.get(f"{k}{w}:{i}") for i in range(len(VALUES))]

            assert run(other, read) == VALUES, (writer, reader)


def test_bytes_that_are_not_utf8_round_trip_over_synap(master: SynapProcess, k: str) -> None:
    async def scenario(c: SynapClient) -> Any:
        await c.kv.set(k + "bin", b"\x00\xff\xfe raw")
        return await c.kv.get(k + "bin")

    assert run(master.rpc_url, scenario) == b"\x00\xff\xfe raw"
    assert master.redis().get(k + "bin") == b"\x00\xff\xfe raw"


def test_set_get_delete_exists_incr_on_every_transport(master: SynapProcess, k: str) -> None:
    async def scenario(c: SynapClient, p: str) -> list[Any]:
        out: list[Any] = []
        await c.kv.set(p + "s", "v")
        out.append(await c.kv.exists(p + "s"))
        out.append(await c.kv.exists(p + "missing"))
        out.append(await c.kv.get(p + "missing"))
        await c.kv.delete(p + "s")
        out.append(await c.kv.exists(p + "s"))
        out.append(await c.send_command("kv.del", {"key": p + "s"}))
        out.append(await c.kv.incr(p + "n"))
        out.append(await c.kv.incr(p + "n", 41))
        out.append(await c.kv.decr(p + "n", 2))
        out.append(await c.kv.decr(p + "n"))
        await c.kv.set(p + "text", "abc")
        try:
            await c.kv.incr(p + "text")
        except SynapException as exc:
            out.append("not an integer" in str(exc))
        return out

    results = on_all(master, scenario, k)
    assert results["synap"] == [True, False, None, False, {"deleted": False}, 1, 42, 40, 39, True]
    assert results["synap"] == results["resp3"]
    assert results["synap"][:4] + results["synap"][5:] == results["http"][:4] + results["http"][5:]


def test_ttl_expire_persist_on_every_transport(master: SynapProcess, k: str) -> None:
    async def scenario(c: SynapClient, p: str) -> list[Any]:
        await c.kv.set(p + "t", "v", ttl=100)
        ttl = (await c.send_command("kv.ttl", {"key": p + "t"}))["ttl"]
        await c.kv.set(p + "e", "v")
        # The HTTP envelope reads "ttl", the native mapping "seconds": send both.
        expired = await c.send_command("kv.expire", {"key": p + "e", "ttl": 50, "seconds": 50})
        ttl2 = (await c.send_command("kv.ttl", {"key": p + "e"}))["ttl"]
        await c.kv.set(p + "short", "v", ttl=1)
        for _ in range(50):
            if not await c.kv.exists(p + "short"):
                break
            await asyncio.sleep(0.1)
        return [99 <= ttl <= 100, expired.get("result", expired.get("success")), 49 <= ttl2 <= 50, await c.kv.get(p + "short")]  # fmt: skip

    results = on_all(master, scenario, k)
    assert results["synap"] == [True, True, True, None]
    assert results["synap"] == results["resp3"] == results["http"]


def test_keys_and_scan_on_every_transport(master: SynapProcess, k: str) -> None:
    async def scenario(c: SynapClient, p: str) -> list[Any]:
        for i in range(5):
            await c.kv.set(f"{p}item:{i}", i)
        await c.kv.set(p + "other", "x")
        keys = sorted((await c.send_command("kv.keys", {"pattern": p + "item:*"}))["keys"])
        return [
            [key.removeprefix(p) for key in keys],
            sorted(key.removeprefix(p) for key in await c.kv.scan(p + "item:")),
            len(await c.kv.scan(p, limit=2)),
        ]

    results = on_all(master, scenario, k)
    assert results["synap"] == [[f"item:{i}" for i in range(5)]] * 2 + [2]
    assert results["synap"] == results["resp3"] == results["http"]


def test_native_scan_mget_mset_match_resp3(master: SynapProcess, k: str) -> None:
    """Commands the SDK's kv module has no method for, through its transport's ``execute``
    (what ``send_command`` calls): SCAN with MATCH/COUNT, MSET, MGET."""

    async def scenario(c: SynapClient, p: str) -> list[Any]:
        native = c._native
        assert native is not None
        ok = await native.execute("MSET", [p + "a", "1", p + "b", "two", p + "c", "3"])
        values = await native.execute("MGET", [p + "a", p + "b", p + "nope", p + "c"])
        cursor, found = "0", []
        for _ in range(100):
            cursor, batch = await native.execute(
                "SCAN", [int(cursor), "MATCH", p + "*", "COUNT", 2]
            )
            found += batch
            if str(cursor) == "0":
                break
        return [ok, values, sorted(found), await c.kv.get(p + "a")]

    results: dict[str, Any] = {}
    for name in ("synap", "resp3"):

        async def bound(c: SynapClient, prefix: str = f"{k}{name}:") -> Any:
            out = await scenario(c, prefix)
            return [x if not isinstance(x, list) else [str(y).removeprefix(prefix) for y in x] for x in out]  # fmt: skip

        results[name] = run(urls(master)[name], bound)
    assert results["synap"] == [
        "OK",
        ["1", "two", "None", "3"],
        ["a", "b", "c"],
        1,
    ]
    assert results["synap"] == results["resp3"]


def test_stats_over_synap_is_the_http_shape(master: SynapProcess, k: str) -> None:
    async def scenario(c: SynapClient) -> dict[str, Any]:
        await c.kv.set(k + "s", "v")
        await c.kv.get(k + "s")
        return await c.kv.stats()

    stats = run(master.rpc_url, scenario)
    http = run(master.http_url, scenario)
    assert set(stats) == set(http) >= {"total_keys", "total_memory_bytes", "operations", "hit_rate"}
    assert isinstance(stats["hit_rate"], float) and isinstance(stats["operations"], dict)
    assert stats["operations"]["sets"] >= 1


def test_unknown_commands_get_the_synap_servers_error(master: SynapProcess) -> None:
    async def scenario(c: SynapClient) -> list[str]:
        errors = []
        for command, payload in [
            ("hash.set", {"key": "h", "field": "f", "value": "v"}),
            ("list.lpush", {"key": "l", "value": "x"}),
        ]:
            with pytest.raises(SynapException) as caught:
                await c.send_command(command, payload)
            errors.append(str(caught.value))
        return errors

    errors = run(master.rpc_url, scenario)
    assert "ERR unknown command 'HSET'" in errors[0]
    assert "ERR unknown command 'LPUSH'" in errors[1]


def test_many_requests_in_flight_on_one_connection(master: SynapProcess, k: str) -> None:
    async def scenario(c: SynapClient) -> tuple[list[int], list[Any]]:
        counts = await asyncio.gather(*(c.kv.incr(k + "n") for _ in range(200)))
        await asyncio.gather(*(c.kv.set(f"{k}{i}", i) for i in range(100)))
        values = await asyncio.gather(*(c.kv.get(f"{k}{i}") for i in range(100)))
        return sorted(counts), list(values)

    counts, values = run(master.rpc_url, scenario)
    assert counts == list(range(1, 201))
    assert values == list(range(100))


# ----------------------------------------------------------------- replica


def test_replica_serves_reads_over_synap_and_answers_readonly(
    master: SynapProcess, replica: SynapProcess, k: str
) -> None:
    async def write(c: SynapClient) -> None:
        for i, value in enumerate(VALUES):
            await c.kv.set(f"{k}{i}", value)
        await c.kv.set(k + "ttl", "v", ttl=100)

    run(master.rpc_url, write)
    wait_caught_up(master, [replica])

    async def read(c: SynapClient) -> list[Any]:
        values = [await c.kv.get(f"{k}{i}") for i in range(len(VALUES))]
        ttl = (await c.send_command("kv.ttl", {"key": k + "ttl"}))["ttl"]
        return [values, await c.kv.exists(k + "0"), 90 <= ttl <= 100]

    assert run(replica.rpc_url, read) == [VALUES, True, True]

    async def refused(c: SynapClient) -> list[str]:
        errors = []
        for attempt in (
            c.kv.set(k + "w", "v"),
            c.kv.delete(k + "0"),
            c.kv.incr(k + "n"),
            c.send_command("kv.expire", {"key": k + "0", "seconds": 5}),
        ):
            with pytest.raises(SynapException) as caught:
                await attempt
            errors.append(str(caught.value))
        return errors

    for text in run(replica.rpc_url, refused):
        assert "READONLY You can't write against a read only replica." in text
    resp3_errors = run(f"resp3://{HOST}:{replica.resp_port}", refused)
    assert all("READONLY" in text for text in resp3_errors)
    assert run(replica.rpc_url, read)[0] == VALUES  # nothing changed


# ----------------------------------------------------------------- API keys


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapProcess]:
    factory = NodeFactory(tmp_path_factory.mktemp("sdk-rpc-keys"))
    try:
        config = {
            "server": {"api_keys": [KEY], "admin_key": ADMIN},
            "kv_store": {"allow_flush_commands": True},
        }
        yield factory(name="keyed", config=config)
    finally:
        factory.cleanup()


def test_api_key_is_the_handshake(keyed: SynapProcess, k: str) -> None:
    async def scenario(c: SynapClient) -> Any:
        await c.kv.set(k + "a", {"x": 1})
        return await c.kv.get(k + "a")

    assert run(keyed.rpc_url, scenario, auth_token=KEY) == {"x": 1}
    assert run(keyed.http_url, scenario, auth_token=KEY) == {"x": 1}
    assert run(keyed.rpc_url, scenario, username="default", password=KEY) == {"x": 1}


def test_without_a_key_or_with_a_wrong_one_nothing_gets_through(keyed: SynapProcess, k: str) -> None:  # fmt: skip
    async def scenario(c: SynapClient) -> Any:
        return await c.kv.get(k + "a")

    with pytest.raises(SynapException, match="NOAUTH Authentication required"):
        run(keyed.rpc_url, scenario)
    with pytest.raises(SynapException, match="WRONGPASS"):
        run(keyed.rpc_url, scenario, auth_token="wrong")

    async def write(c: SynapClient) -> None:
        await c.kv.set(k + "b", "v")

    with pytest.raises(SynapException, match="NOAUTH"):
        run(keyed.rpc_url, write)
    assert keyed.redis(password=KEY).exists(k + "b") == 0


def test_admin_commands_need_the_admin_key(keyed: SynapProcess, k: str) -> None:
    async def flush(c: SynapClient) -> Any:
        native = c._native
        assert native is not None
        return await native.execute("FLUSHALL", [])

    keyed.redis(password=KEY).set(k + "keep", "v")
    with pytest.raises(SynapException, match="NOPERM"):
        run(keyed.rpc_url, flush, auth_token=KEY)
    assert keyed.redis(password=KEY).exists(k + "keep") == 1
    assert run(keyed.rpc_url, flush, auth_token=ADMIN) == "OK"
    assert keyed.redis(password=KEY).dbsize() == 0


def test_a_key_on_a_server_without_keys_is_refused_as_over_resp(master: SynapProcess) -> None:
    async def scenario(c: SynapClient) -> Any:
        return await c.kv.get("x")

    with pytest.raises(SynapException, match="without any password configured"):
        run(master.rpc_url, scenario, auth_token="anything")


# ----------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("rpc-tls"))


def test_tls_clients_covers_the_rpc_port(node_factory: NodeFactory, pki: Pki) -> None:
    node = node_factory(config={"tls": pki.tls_config(clients=True)}, wait=False)
    wait_listening(node.rpc_port)

    async def scenario() -> tuple[Any, Any]:
        tls = ClientConfig(
            connect_timeout=5, call_timeout=5, tls=ClientTls(ca_path=str(pki.ca_file))
        )
        client = await AsyncClient.connect(f"synap://{HOST}:{node.rpc_port}", synap_config(), tls)
        try:
            await client.call("SET", [Value.str("k"), Value.str("secret")])
            got = await client.call("GET", [Value.str("k")])
        finally:
            await client.close()
        plain = ClientConfig(connect_timeout=2, call_timeout=2)
        try:
            client = await AsyncClient.connect(
                f"synap://{HOST}:{node.rpc_port}", synap_config(), plain
            )
            try:
                outcome: Any = await client.call("GET", [Value.str("k")])
            finally:
                await client.close()
        except ThunderError as exc:
            outcome = exc
        return got, outcome

    got, plain = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert got == Value.bytes(b"secret")
    assert isinstance(plain, ThunderError)  # a plaintext client gets nowhere
    assert f"SynapRPC on synap://{HOST}:{node.rpc_port} (TLS)" in node.log_text()


def wait_listening(port: int, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


# ----------------------------------------------------------------- bad input


def raw(node: SynapProcess) -> socket.socket:
    sock = socket.create_connection((HOST, node.rpc_port), timeout=5)
    return sock


class Responses:
    """Response frames read off a raw socket, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def next(self) -> Any:
        while True:
            decoded = decode_response(self.buf, max_frame_bytes=2**32 - 1)
            if decoded is not None:
                self.buf = self.buf[decoded[1] :]
                return decoded[0]
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {self.buf!r}")
            self.buf += chunk


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def frame(body: bytes) -> bytes:
    return struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xff\xff\x7f",  # a 2 GiB length prefix: over the limit, refused at once
        frame(b"\xc1\xc1"),  # not MessagePack
        frame(msgpack.packb(["no-id", "GET", []])),  # no request id to answer to
    ],
)
def test_frames_without_an_id_close_the_connection_and_lose_nothing(
    master: SynapProcess, data: bytes, k: str
) -> None:
    master.redis().set(k + "kept", "yes")
    sock = raw(master)
    sock.sendall(encode_frame(Request(id=1, command="GET", args=(Value.str(k + "kept"),))) + data)
    assert Responses(sock).next().ok == Value.bytes(b"yes")  # the request before is answered
    assert closed(sock)
    sock.close()
    assert master.redis().get(k + "kept") == b"yes"
    assert "closing SynapRPC client" in master.log_text()
    assert "Traceback" not in master.log_text()


@pytest.mark.parametrize(
    ("obj", "wording"),
    [
        ([3, "GET"], "3 elements"),
        ([3, "GET", [{"Bogus": 1}]], "unknown Value variant tag 'Bogus'"),
        ([3, "SET", [{"Str": "k"}, "Null"]], "is Null"),
        ([3, 7, []], "command must be a str"),
    ],
)
def test_a_wrong_request_gets_an_err_and_the_connection_goes_on(
    master: SynapProcess, obj: Any, wording: str
) -> None:
    sock = raw(master)
    sock.sendall(frame(msgpack.packb(obj)) + encode_frame(Request(id=4, command="PING")))
    responses = Responses(sock)
    first = responses.next()
    assert first.id == 3 and first.err is not None and wording in first.err
    assert first.err.startswith("ERR")
    second = responses.next()
    assert second.id == 4 and second.ok == Value.str("PONG")
    sock.close()


def test_an_http_client_on_the_rpc_port_is_told_where_it_is(master: SynapProcess) -> None:
    sock = raw(master)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = b""
    while chunk := sock.recv(4096):
        reply += chunk
    sock.close()
    assert reply.startswith(b"HTTP/1.1 400 Bad Request")
    assert f"the HTTP API is on port {master.port}".encode() in reply


def test_an_auth_error_is_an_auth_error_for_thunder(keyed: SynapProcess) -> None:
    async def scenario() -> Any:
        config = ClientConfig(connect_timeout=5, call_timeout=5)
        client = await AsyncClient.connect(keyed.rpc_url, synap_config(), config)
        try:
            return await client.call("GET", [Value.str("x")])
        except ThunderError as exc:
            return exc
        finally:
            await client.close()

    assert isinstance(asyncio.run(scenario()), AuthError)


# ----------------------------------------------------------------- the port


def test_rpc_port_0_turns_it_off_and_the_banner_names_it(node_factory: NodeFactory, tmp_path: Path) -> None:  # fmt: skip
    on = node_factory(name="on")
    assert f"⚡ SynapRPC on synap://{HOST}:{on.rpc_port}" in on.log_text()
    off = node_factory(name="off", args=["--rpc-port", "0"])
    assert "SynapRPC on" not in off.log_text()
    with pytest.raises(OSError):
        socket.create_connection((HOST, off.rpc_port), timeout=2).close()


def test_a_taken_rpc_port_is_a_clear_error(node_factory: NodeFactory) -> None:
    node = node_factory(name="taken")
    node.terminate()
    with socket.socket() as taken:  # the port stays reserved for this node meanwhile
        taken.bind((HOST, node.rpc_port))
        taken.listen()
        node.start(wait=False)
        assert node.wait_exit(20) == 1
    text = node.log_text()
    assert f"cannot listen for the SynapRPC protocol on {HOST}:{node.rpc_port}" in text
    assert "--rpc-port" in text and "Traceback" not in text


def test_the_default_port_taken_leaves_the_node_up_without_synaprpc(tmp_path: Path) -> None:
    """Two nodes on one machine started with only --port/--resp-port: the second cannot
    have 15500, and starts anyway (an explicit --rpc-port that is taken stops the node,
    see above)."""
    import subprocess
    import sys
    import time

    import httpx

    from tests.support.ports import release_port, reserve_ports

    http_port, resp_port = reserve_ports(2)
    holder = socket.socket()
    try:
        try:
            holder.bind((HOST, 15500))
            holder.listen()
        except OSError:
            pass  # something else holds it: taken either way
        log_path = tmp_path / "server.log"
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "synap", "--host", HOST, "--port", str(http_port),
                 "--resp-port", str(resp_port)],
                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"http://{HOST}:{http_port}/health", timeout=1).is_success:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.05)
            time.sleep(0.3)  # the banner follows the listeners
            assert proc.poll() is None
            text = log_path.read_text()
            assert "SynapRPC is off on this node: cannot listen for the SynapRPC protocol" in text
            assert "--rpc-port" in text and "SynapRPC on synap://" not in text
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        holder.close()
        release_port(http_port)
        release_port(resp_port)


def test_wait_blocks_later_requests_on_the_connection_until_it_ends(
    master: SynapProcess, replica: SynapProcess, k: str
) -> None:
    """WAIT (a command that waits) over synap://: requests sent behind it on the same
    connection run after it, in order, and other connections are not held up."""

    async def scenario(c: SynapClient) -> list[Any]:
        native = c._native
        assert native is not None
        return list(
            await asyncio.gather(
                native.execute("SET", [k + "w", "1"]),
                native.execute("WAIT", [1, 5000]),
                native.execute("INCR", [k + "w"]),
                native.execute("GET", [k + "w"]),
            )
        )

    assert run(master.rpc_url, scenario) == ["OK", 1, 2, "2"]

    async def unreachable(c: SynapClient) -> tuple[Any, float, Any]:
        native = c._native
        assert native is not None
        started = asyncio.get_running_loop().time()
        waited, got = await asyncio.gather(
            native.execute("WAIT", [5, 300]),  # more replicas than exist: times out
            native.execute("GET", [k + "w"]),
        )
        return waited, asyncio.get_running_loop().time() - started, got

    waited, elapsed, got = run(master.rpc_url, unreachable)
    assert waited == 1 and 0.25 <= elapsed < 5 and got == "2"


def test_rpc_clients_are_counted_and_limited_like_resp_clients(node_factory: NodeFactory) -> None:
    node = node_factory(config={"server": {"max_clients": 2}})
    first = raw(node)
    replies = Responses(first)

    def listing() -> bytes:
        first.sendall(encode_frame(Request(id=1, command="CLIENT", args=(Value.str("LIST"),))))
        got = replies.next().ok
        assert got is not None and got.kind == "bytes"
        value: bytes = got.value
        return value

    # The harness's readiness probe (a RESP connection) may still be closing.
    wait_for(lambda: listing().count(b"id=") == 1, 10, message="other clients stay listed")
    assert b"resp=3" in listing()
    resp = node.redis()
    assert resp.ping() is True  # the second slot
    third = raw(node)
    assert closed(third)  # over max_clients: closed at once
    third.close()
    assert "max number of clients reached" in node.log_text()
    assert resp.info("clients")["connected_clients"] == 2
    first.close()
