"""What a replica promises its clients (spec: Guarantees 2 and 3, Monitoring; research
anchors: expiry, MULTI-style atomicity, INFO/ROLE fields and WAIT)."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest
import redis

from tests.support.checks import assert_same_data, digest, syncs
from tests.support.ports import HOST
from tests.support.server import NodeFactory, wait_caught_up, wait_for

FAST = {
    "heartbeat_interval_ms": 100,
    "reconnect_delay_ms": 200,
    "replica_timeout_secs": 2,
}
READONLY = b"-READONLY You can't write against a read only replica.\r\n"


def config(**replication: object) -> dict:
    return {"replication": {**FAST, **replication}}


def resp_command(port: int, *args: bytes) -> bytes:
    """Send one command on a raw socket and return the raw reply line (exact bytes)."""
    request = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(request)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply


# Every write command, with arguments that would succeed on a master.
WRITES: list[list[bytes]] = [
    [b"SET", b"k", b"new"],
    [b"SET", b"absent", b"x", b"NX"],
    [b"SETNX", b"absent", b"x"],
    [b"SETEX", b"k", b"10", b"x"],
    [b"PSETEX", b"k", b"10000", b"x"],
    [b"GETSET", b"k", b"x"],
    [b"GETDEL", b"k"],
    [b"MSET", b"k", b"x", b"k2", b"y"],
    [b"MSETNX", b"absent", b"x"],
    [b"DEL", b"k"],
    [b"DEL", b"absent"],
    [b"UNLINK", b"k"],
    [b"INCR", b"n"],
    [b"DECR", b"n"],
    [b"INCRBY", b"n", b"5"],
    [b"DECRBY", b"n", b"5"],
    [b"INCRBYFLOAT", b"n", b"1.5"],
    [b"APPEND", b"k", b"x"],
    [b"EXPIRE", b"k", b"100"],
    [b"PEXPIRE", b"k", b"100000"],
    [b"EXPIREAT", b"k", b"4000000000"],
    [b"PEXPIREAT", b"k", b"4000000000000"],
    [b"PERSIST", b"k"],
    [b"RENAME", b"k", b"k3"],
    [b"RENAMENX", b"k", b"k3"],
    [b"SETRANGE", b"k", b"1", b"x"],
    [b"SETRANGE", b"k", b"1", b""],
    [b"SETBIT", b"k", b"1", b"1"],
    [b"COPY", b"k", b"k4"],
    [b"GETEX", b"k", b"EX", b"100"],
    [b"GETEX", b"k", b"PERSIST"],
    [b"GETEX", b"k"],
    [b"FLUSHALL"],
    [b"FLUSHDB"],
]


def test_replica_rejects_writes_on_every_front_end(node_factory: NodeFactory) -> None:
    # Spec, Guarantee 2: "Replicas strictly reject write operations (SET, DEL, etc.)".
    master = node_factory.master(config=config())
    replica_cfg = {**config(), "kv_store": {"allow_flush_commands": True}}
    replica = node_factory.replica(master, config=replica_cfg)
    client = master.redis()
    client.set("k", "old")
    client.set("n", 10)
    assert_same_data(master, [replica])
    before = digest(replica)

    # RESP: Redis's exact error, for every write command.
    for command in WRITES:
        reply = resp_command(replica.resp_port, *command)
        assert reply == READONLY, f"{command[0].decode()}: {reply!r}"
    with pytest.raises(redis.ReadOnlyError):
        replica.redis().set("k", "via redis-py")

    # REST: 409 Conflict, and the body names the master to write to.
    response = replica.http.post("/kv/set", json={"key": "k", "value": "rest"})
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "READONLY" and body["error"].startswith("READONLY")
    assert body["master"] == master.replica_address
    assert master.replica_address in body["detail"]
    response = replica.http.delete("/kv/del/k")
    assert response.status_code == 409 and response.json()["master"] == master.replica_address

    # The synap-sdk command endpoint: success false, with an error naming the master.
    envelopes = [
        ("kv.set", {"key": "k", "value": "sdk"}),
        ("kv.del", {"key": "k"}),
        ("kv.mdel", {"keys": ["k", "n"]}),
        ("kv.incr", {"key": "n"}),
        ("kv.decr", {"key": "n"}),
        ("kv.mset", {"pairs": [{"key": "a", "value": 1}]}),
        ("kv.expire", {"key": "k", "ttl": 5}),
        ("kv.persist", {"key": "k"}),
        ("kv.flushall", {}),
    ]
    for command, payload in envelopes:
        response = replica.http.post(
            "/api/v1/command", json={"command": command, "request_id": "r1", "payload": payload}
        )
        assert response.status_code == 409, response.text  # READONLY, as on REST
        body = response.json()
        assert body["success"] is False, f"{command}: {body}"
        assert body["error"].startswith("READONLY"), f"{command}: {body}"
        assert master.replica_address in body["error"], f"{command}: {body}"

    # Nothing changed on the replica; reads still work there.
    assert digest(replica) == before
    assert replica.redis().get("k") == b"old"
    assert replica.http.get("/kv/get/k").json()["value"] == "old"
    assert_same_data(master, [replica])


def test_ttl_keys_expire_on_the_replica_through_the_master(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=config())
    replica = node_factory.replica(master, config=config())
    client, reader = master.redis(), replica.redis()
    client.set("forever", "x")
    client.set("short", "v", px=300)
    client.set("long", "v", ex=3600)
    wait_for(lambda: replica.stats()["replica_offset"] == 3, 5)
    # The master's active expiry deletes it and the DEL travels to the replica.
    wait_for(lambda: reader.dbsize() == 2, 5, message="the master's DEL never arrived")
    assert reader.get("short") is None
    assert_same_data(master, [replica])
    assert master.stats()["master_offset"] == 4  # three SETs and one DEL


def test_replica_hides_expired_keys_but_deletes_only_on_the_masters_del(
    node_factory: NodeFactory,
) -> None:
    # Redis since 3.2: a replica reports a logically expired key as missing but never
    # deletes it by itself; all nodes apply the same history. (A longer replica timeout:
    # the master is frozen for a while and the link must stay up.)
    master = node_factory.master(config=config(replica_timeout_secs=5))
    replica = node_factory.replica(master, config=config(replica_timeout_secs=5))
    client, reader = master.redis(), replica.redis()
    client.set("stays", "x")
    client.set("soon", "v", px=500)
    wait_caught_up(master, [replica])
    assert reader.get("soon") == b"v"

    master.freeze()  # no DEL can come; shorter than the replica timeout
    try:
        wait_for(lambda: reader.get("soon") is None, 2, interval=0.02)
        assert reader.exists("soon") == 0
        assert reader.pttl("soon") == -2
        assert reader.mget(["soon", "stays"]) == [None, b"x"]
        assert reader.dbsize() == 2  # still held, as in Redis
        time.sleep(0.3)  # more reads, more time: still not deleted
        assert reader.get("soon") is None and reader.dbsize() == 2
        assert replica.stats()["connected"] is True
    finally:
        master.thaw()
    wait_for(lambda: reader.dbsize() == 1, 5, message="the master's DEL never arrived")
    assert_same_data(master, [replica])
    assert syncs(replica) == (1, 0)


def test_multi_key_writes_are_applied_atomically_on_the_replica(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=config())
    replica = node_factory.replica(master, config=config())
    keys = [f"atomic:{i}" for i in range(10)]
    client = master.redis()
    client.mset({k: "0" for k in keys})
    wait_caught_up(master, [replica])

    torn: list[list[bytes | None]] = []
    seen: set[bytes | None] = set()
    stop = threading.Event()

    def reader() -> None:
        conn = replica.redis()
        for _ in range(20_000):  # bounded; stopped when the writer is done
            if stop.is_set():
                return
            values = conn.mget(keys)
            if len(set(values)) != 1:
                torn.append(values)
            seen.add(values[0])

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        for round_ in range(1, 301):
            client.mset({k: str(round_) for k in keys})
            if round_ % 10 == 0:
                client.delete(*keys)
    finally:
        wait_caught_up(master, [replica])
        stop.set()
        thread.join(10)
    assert not torn, f"a reader saw a half-applied MSET or DEL: {torn[:3]}"
    assert None in seen and len(seen) > 10, "the reader saw too few states to mean much"
    assert_same_data(master, [replica])


def test_info_replication_and_role_on_both_sides(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=config())
    replica = node_factory.replica(master, config=config())
    client = master.redis()
    for i in range(25):
        client.set(f"k{i}", i)
    offset = wait_caught_up(master, [replica])
    wait_for(lambda: master.stats()["replicas"][0]["offset"] == offset, 5)

    m = client.info("replication")
    assert m["role"] == "master"
    assert m["connected_slaves"] == 1
    slave0 = m["slave0"]
    assert slave0["ip"] == HOST
    assert slave0["state"] == "online"
    assert slave0["offset"] == offset
    assert slave0["lag"] in (0, 1)  # seconds since its last ACK
    assert re.fullmatch(r"[0-9a-f]{40}", m["master_replid"])
    assert m["master_repl_offset"] == offset

    r = replica.redis().info("replication")
    assert r["role"] == "slave"
    assert r["master_host"] == HOST
    assert r["master_port"] == master.replica_port
    assert r["master_link_status"] == "up"
    assert r["slave_repl_offset"] == offset
    assert r["master_replid"] == m["master_replid"]
    assert r["master_repl_offset"] == offset
    assert r["connected_slaves"] == 0

    role = client.execute_command("ROLE")
    assert role[0] == b"master" and role[1] == offset
    assert [row[0] for row in role[2]] == [HOST.encode()]
    assert role[2][0][2] == str(offset).encode()
    assert str(slave0["port"]).encode() == role[2][0][1]
    assert replica.redis().execute_command("ROLE") == [
        b"slave",
        HOST.encode(),
        master.replica_port,
        b"connected",
        offset,
    ]

    # The link going down shows on the replica.
    master.kill()
    wait_for(lambda: replica.redis().info("replication")["master_link_status"] == "down", 5)
    info = replica.redis().info("replication")
    assert "master_link_down_since_seconds" in info
    assert replica.redis().execute_command("ROLE")[3] != b"connected"


def test_wait_counts_replicas_that_acknowledged_the_write(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=config())
    replica = node_factory.replica(master, config=config())
    client = master.redis()
    wait_caught_up(master, [replica])
    client.set("k", "v")
    assert client.execute_command("WAIT", 1, 0) == 1
    started = time.monotonic()
    assert client.execute_command("WAIT", 2, 300) == 1  # only one replica exists
    assert time.monotonic() - started >= 0.25
    with pytest.raises(redis.ResponseError, match="replica"):
        replica.redis().execute_command("WAIT", 1, 0)

    # A frozen replica acknowledges nothing: WAIT times out with 0.
    replica.freeze()
    try:
        client.set("k", "w")
        assert client.execute_command("WAIT", 1, 300) == 0
    finally:
        replica.thaw()
    assert client.execute_command("WAIT", 1, 5000) == 1
    assert_same_data(master, [replica])
