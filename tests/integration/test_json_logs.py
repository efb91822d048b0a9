"""``logging.format: json``: every line a node writes (stdout banner, synap's loggers,
the HTTP server's) is one JSON object with node_id and role; replication events carry the peer
and offsets. Driven through a replication scenario: full sync, a replica restart
(partial sync), a master-side disconnect, a malformed HTTP request (the HTTP server warns)."""

from __future__ import annotations

import json
import socket
from typing import Any

from tests.support.ports import HOST
from tests.support.server import NodeFactory, SynapProcess, wait_caught_up, wait_for

JSON_LOGS = {"logging": {"format": "json", "level": "INFO"}}


def lines(node: SynapProcess) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(node.log_text().splitlines(), 1):
        if not line.strip() or line.startswith("=== "):
            continue  # the test harness's own separator between runs (tests/support/server.py)
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise AssertionError(f"{node.name} line {n} is not JSON: {line!r}") from exc
        assert isinstance(obj, dict), line
        for field in ("ts", "level", "logger", "msg", "node_id", "role"):
            assert field in obj, f"{node.name} line {n} has no {field}: {line}"
        out.append(obj)
    return out


def test_every_line_is_json_in_a_replication_scenario(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=JSON_LOGS)
    client = master.redis()
    for i in range(10):
        client.set(f"k{i}", f'quote " and\nnewline {i}')
    replica = node_factory.replica(master, config=JSON_LOGS)
    wait_caught_up(master, [replica])
    first_id = replica.stats()["replica_id"]
    replica.terminate()
    client.set("after", "restart")
    replica.start()
    wait_caught_up(master, [replica])
    # Something the HTTP server itself logs: a request that is not HTTP.
    with socket.create_connection((HOST, master.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        sock.settimeout(5)
        try:
            sock.recv(1024)
        except OSError:
            pass

    def master_lines() -> list[dict[str, Any]] | None:
        got = lines(master)
        return got if any(x["logger"] == "synap.http" for x in got) else None

    got = wait_for(master_lines, 10, message=lambda: master.log_text()[-2000:])
    master_id = master.stats()["replica_id"]
    replica_id = replica.stats()["replica_id"]
    assert {x["node_id"] for x in got} == {master_id}
    assert {x["role"] for x in got if x["logger"] != "synap.banner"} <= {"master", "standalone"}
    assert any(x["logger"] == "synap.banner" and "HTTP API on" in x["msg"] for x in got)
    full = [x for x in got if x["msg"].startswith("Full sync required for replica")]
    assert full and full[0]["replica_id"] == first_id and "peer" in full[0]
    assert "offset" in full[0]
    partial = [x for x in got if x["msg"].startswith("partial sync for replica")]
    assert partial and partial[0]["offset"] == 11 and partial[0]["peer"].startswith("127.0.0.1:")
    assert partial[0]["replica_id"] == replica_id
    gone = [x for x in got if x["msg"].endswith("disconnected") and "peer" in x]
    assert gone and gone[0]["replica_id"] == first_id

    rgot = lines(replica)
    assert {x["node_id"] for x in rgot} == {first_id, replica_id}  # a new id per process
    assert any(x["role"] == "replica" for x in rgot)
    done = [x for x in rgot if x["msg"].startswith("full sync complete")]
    assert done and done[0]["offset"] == 10 and done[0]["keys"] == 10
    accepted = [x for x in rgot if x["msg"].startswith("partial sync accepted")]
    assert (
        accepted and accepted[0]["offset"] == 11 and accepted[0]["master"] == master.replica_address
    )
