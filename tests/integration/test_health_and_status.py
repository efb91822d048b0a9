"""Health and status tell the truth (issue 8, items 7-9), against real servers.

* ``GET /health`` of a replica answers 503 until its first sync completes (wrong secret,
  master unreachable) and names the reason in ``replication.last_error``; 200
  ``healthy`` once synced; ``reconnecting`` (200) then ``stale`` (503) when the link to
  its master stays down; ``GET /health/live`` is 200 whenever the process serves.
* ``lag_ms`` of a replica that never synced or lost its master is never 0.
* ``synap-cli replication status`` prints ``last_error`` and write-pause state, and exits
  non-zero when a node is unhealthy.
* Sync counters with Redis's meaning: ``sync_full`` / ``sync_partial_ok`` /
  ``sync_partial_err`` count syncs *served*; a replica's own syncs are ``full_syncs`` /
  ``partial_syncs`` and never count as served, not even after a promotion.
* A replication peer whose HELLO carries a malformed id or address is rejected, and no
  peer shows up in stats, INFO or metrics before it completed the handshake (and
  authenticated, when a secret is set).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from synap.replication.framing import FrameDecoder
from synap.replication.messages import AuthChallenge, Error, ErrorCode, Hello, decode_message
from tests.support.ports import HOST
from tests.support.server import NodeFactory, SynapProcess, wait_caught_up, wait_for

CLI = [sys.executable, "-c", "from synap.cli import main; main()"]
SECRET = "health secret 41c7a9"
FAST = {
    "replication": {
        "heartbeat_interval_ms": 100,
        "ack_interval_ms": 100,
        "reconnect_delay_ms": 100,
        "replica_timeout_secs": 2,
    }
}


def health(node: SynapProcess) -> tuple[int, dict[str, Any]]:
    response = node.http.get("/health")
    return response.status_code, response.json()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=30)


def info(node: SynapProcess, section: str) -> dict[str, Any]:
    return dict(node.redis().info(section))


def metrics(node: SynapProcess) -> str:
    response = node.http.get("/metrics")
    response.raise_for_status()
    return response.text


def metric_value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")


# --------------------------------------------------------------------------- /health


def test_replica_with_a_wrong_secret_answers_503_naming_authentication(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(args=["--replication-secret", SECRET])
    master.redis().set("k", "v")
    replica = node_factory.replica(master, args=["--replication-secret", "wrong " + SECRET])

    def failed() -> dict[str, Any] | None:
        code, body = health(replica)
        return body if code == 503 and body["replication"]["last_error"] else None

    body = wait_for(failed, 15, message=lambda: str(health(replica)))
    assert body["status"] != "healthy"
    assert body["role"] == "replica"
    assert body["service"] == "synap" and body["version"]
    repl = body["replication"]
    assert repl["connected"] is False and repl["synced"] is False
    assert "authentication" in repl["last_error"]
    # Liveness stays 200: a supervisor must not restart a node for a wrong secret.
    assert replica.http.get("/health/live").status_code == 200
    assert replica.stats()["lag_ms"] > 0
    # The master is fine.
    code, master_body = health(master)
    assert code == 200 and master_body["status"] == "healthy"
    assert master_body["role"] == "master"


def test_replica_of_an_unreachable_master_is_503_with_growing_lag_until_it_syncs(
    node_factory: NodeFactory,
) -> None:
    # The master's ports are reserved, but it is not started yet.
    master = SynapProcess(node_factory.base_dir, "master1", role="master", config=FAST)
    node_factory.nodes.append(master)
    replica = node_factory.replica(master, config=FAST)

    wait_for(lambda: replica.stats()["last_error"], 10)
    code, body = health(replica)
    assert code == 503, body
    assert body["status"] != "healthy"
    assert body["replication"]["synced"] is False
    assert body["replication"]["connected"] is False
    assert "cannot connect" in body["replication"]["last_error"]
    first = replica.stats()
    assert isinstance(first["lag_ms"], int) and first["lag_ms"] > 0
    assert first["synced"] is False
    time.sleep(0.3)
    assert replica.stats()["lag_ms"] >= first["lag_ms"] + 200  # the time keeps counting
    live = replica.http.get("/health/live")
    assert live.status_code == 200 and live.json()["status"] == "alive"
    text = metrics(replica)
    assert metric_value(text, "synap_replication_synced") == 0
    assert metric_value(text, "synap_replication_lag_seconds") > 0
    assert info(replica, "replication")["master_link_status"] == "down"

    master.start()
    master.redis().set("k", "v")
    wait_caught_up(master, [replica])
    code, body = wait_for(lambda: c if (c := health(replica))[0] == 200 else None, 10)
    assert body["status"] == "healthy"
    assert body["replication"] == {
        "connected": True,
        "synced": True,
        "last_error": None,
        "master_address": master.replica_address,
        "link_down_seconds": None,
    }
    stats = replica.stats()
    assert stats["lag_ms"] == 0 and stats["synced"] is True and stats["last_error"] is None
    assert metric_value(metrics(replica), "synap_replication_synced") == 1


def test_synced_replica_that_loses_its_master_reconnects_then_goes_stale(
    node_factory: NodeFactory,
) -> None:
    config = {"replication": {**FAST["replication"], "replica_timeout_secs": 4}}
    master = node_factory.master(config=config)
    replica = node_factory.replica(master, config=config)
    master.redis().set("k", "v")
    wait_caught_up(master, [replica])
    assert health(replica)[0] == 200
    master.kill()

    # Within replica_timeout_secs (4 s): still in rotation, but says it is disconnected.
    code, body = wait_for(
        lambda: h if not (h := health(replica))[1]["replication"]["connected"] else None, 5
    )
    assert code == 200 and body["status"] == "reconnecting", body
    assert body["replication"]["synced"] is True and body["replication"]["last_error"]
    assert replica.stats()["lag_ms"] > 0
    # Beyond it: the data may be arbitrarily old.
    code, body = wait_for(lambda: h if (h := health(replica))[0] == 503 else None, 10)
    assert body["status"] == "stale"
    assert body["replication"]["link_down_seconds"] >= 4
    assert replica.stats()["lag_ms"] >= 4000


def test_health_of_a_standalone_node(node_factory: NodeFactory) -> None:
    node = node_factory()
    code, body = health(node)
    assert code == 200
    assert body["status"] == "healthy" and body["role"] == "standalone"
    assert body["replication"]["last_error"] is None
    assert node.http.get("/health/live").status_code == 200


# --------------------------------------------------------------------------- synap-cli


def test_replication_status_exits_non_zero_for_an_unsynced_replica_and_prints_last_error(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(args=["--replication-secret", SECRET])
    replica = node_factory.replica(master, args=["--replication-secret", "wrong " + SECRET])
    wait_for(lambda: replica.stats()["last_error"], 15)

    done = run_cli("replication", "status", "--node", master.http_url, "--node", replica.http_url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "UNHEALTHY" in done.stdout and "not synced" in done.stdout
    assert "last_error: " in done.stdout and "authentication" in done.stdout

    # The master alone is healthy; its fence shows.
    assert master.http.post("/api/replication/pause", json={"seconds": None}).status_code == 200
    done = run_cli("replication", "status", "--node", master.http_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FENCED" in done.stdout


def test_replication_status_exits_non_zero_for_a_disconnected_replica(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=FAST)
    replica = node_factory.replica(master, config=FAST)
    wait_caught_up(master, [replica])
    ok = run_cli("replication", "status", "--node", master.http_url, "--node", replica.http_url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "last_error: none" in ok.stdout

    master.kill()
    wait_for(lambda: replica.stats()["connected"] is False, 10)
    done = run_cli("replication", "status", "--node", replica.http_url)
    assert done.returncode == 1
    assert "disconnected from its master" in done.stdout
    assert "last_error: " in done.stdout and "last_error: none" not in done.stdout


# --------------------------------------------------------------------------- counters


def test_sync_counters_count_syncs_served_apart_from_syncs_performed(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=FAST)
    proxy = node_factory.proxy(master)
    replica = node_factory.replica(proxy, config=FAST, replica_listen=True)
    master.redis().set("k", "v")
    wait_caught_up(master, [replica])  # one full sync, served by the master
    proxy.cut()  # the replica reconnects and continues: one partial sync
    wait_for(lambda: master.stats()["sync_partial_ok"] == 1, 10)
    wait_caught_up(master, [replica])

    m = master.stats()
    assert (m["sync_full"], m["sync_partial_ok"], m["sync_partial_err"]) == (1, 1, 0)
    assert (m["full_syncs"], m["partial_syncs"]) == (0, 0)  # performed: none
    stats = info(master, "stats")
    assert (stats["sync_full"], stats["sync_partial_ok"], stats["sync_partial_err"]) == (1, 1, 0)
    text = metrics(master)
    assert metric_value(text, "synap_replication_sync_full_total") == 1
    assert metric_value(text, "synap_replication_sync_partial_ok_total") == 1
    assert metric_value(text, "synap_replication_sync_partial_err_total") == 0

    r = replica.stats()
    assert (r["full_syncs"], r["partial_syncs"]) == (1, 1)  # performed
    assert (r["sync_full"], r["sync_partial_ok"]) == (0, 0)  # served: none
    assert info(replica, "stats")["sync_full"] == 0

    # Promoted, the replica has still served no sync: its own are not counted as served.
    response = replica.http.post("/api/replication/promote")
    assert response.status_code == 200, response.text
    p = replica.stats()
    assert p["role"] == "master"
    assert (p["sync_full"], p["sync_partial_ok"], p["sync_partial_err"]) == (0, 0, 0)
    assert (p["full_syncs"], p["partial_syncs"]) == (1, 1)
    stats = info(replica, "stats")
    assert (stats["sync_full"], stats["sync_partial_ok"], stats["sync_partial_err"]) == (0, 0, 0)
    text = metrics(replica)
    assert metric_value(text, "synap_replication_sync_full_total") == 0
    assert metric_value(text, "synap_replication_full_syncs_performed_total") == 1


# --------------------------------------------------------------------------- handshake


def _frames(sock: socket.socket, timeout: float = 5.0) -> list[Any]:
    """Messages received until the peer closes (or ``timeout``)."""
    decoder = FrameDecoder(1 << 20)
    out: list[Any] = []
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        decoder.feed(chunk)
        while (body := decoder.next_frame()) is not None:
            out.append(decode_message(body))
    return out


def _assert_nowhere(master: SynapProcess, *needles: str) -> None:
    stats = master.stats()
    assert stats["replicas"] == [], stats
    fields = info(master, "replication")
    assert fields["connected_slaves"] == 0 and "slave0" not in fields
    replication = str(fields)
    text = metrics(master)
    # Peer-supplied text could only show in label values (sample values are numbers,
    # and a timestamp may contain any digits).
    labels = "\n".join(line.split("}")[0] for line in text.splitlines() if "{" in line)
    for needle in needles:
        assert needle not in str(stats) and needle not in replication and needle not in labels
    assert "synap_replication_replica_lag_seconds{" not in text


BAD_HELLOS = {
    "control characters in the id": ("evil\r\nslave9:ip=6.6.6.6", "127.0.0.1:5500"),
    "an escape sequence in the id": ("replica-\x1b[2J", "127.0.0.1:5500"),
    "an oversized id": ("r" * 200, "127.0.0.1:5500"),
    "a space in the id": ("replica one", "127.0.0.1:5500"),
    "an address without a port": ("replica-ok-1", "nohost"),
    "an address with a bad port": ("replica-ok-2", "127.0.0.1:99999"),
    "an address with a bad host": ("replica-ok-3", "bad host\n:5500"),
}


@pytest.mark.parametrize("case", list(BAD_HELLOS), ids=list(BAD_HELLOS))
def test_hello_with_a_malformed_id_or_address_is_rejected_and_never_listed(
    node_factory: NodeFactory, case: str
) -> None:
    master = node_factory.master()
    replica_id, address = BAD_HELLOS[case]
    assert master.replica_port is not None
    with socket.create_connection((HOST, master.replica_port), timeout=5) as sock:
        sock.sendall(Hello(1, replica_id, address, "?", 0).encode())
        replies = _frames(sock)
    assert replies and isinstance(replies[-1], Error), replies
    assert replies[-1].code == ErrorCode.PROTOCOL
    field = "replica_id" if address.startswith("127.0.0.1:5500") else "listen_address"
    assert f"HELLO {field}" in replies[-1].message
    assert "\r" not in replies[-1].message and "\x1b" not in replies[-1].message
    _assert_nowhere(master, replica_id[:20], "6.6.6.6")
    # The master still serves real replicas.
    real = node_factory.replica(master)
    wait_caught_up(master, [real])
    assert len(master.stats()["replicas"]) == 1


def test_peer_that_has_not_authenticated_is_in_no_view(node_factory: NodeFactory) -> None:
    master = node_factory.master(args=["--replication-secret", SECRET])
    master.redis().set("k", "v")
    assert master.replica_port is not None
    peer_id = "replica-unauthenticated-peer"
    with socket.create_connection((HOST, master.replica_port), timeout=5) as sock:
        sock.sendall(Hello(1, peer_id, "127.0.0.1:5999", "?", 0).encode())
        sock.settimeout(5)
        decoder = FrameDecoder(1 << 20)
        challenge = None
        deadline = time.monotonic() + 5
        while challenge is None and time.monotonic() < deadline:
            decoder.feed(sock.recv(65536))
            body = decoder.next_frame()
            if body is not None:
                challenge = decode_message(body)
        assert isinstance(challenge, AuthChallenge), challenge
        # Holding the connection open in AWAIT_AUTH: the master knows only its claims.
        _assert_nowhere(master, peer_id, "5999")
        time.sleep(0.3)
        _assert_nowhere(master, peer_id, "5999")
    # An authenticated replica does appear.
    real = node_factory.replica(master, args=["--replication-secret", SECRET])
    wait_caught_up(master, [real])
    (entry,) = master.stats()["replicas"]
    assert entry["id"] == real.stats()["replica_id"]


def test_health_is_open_without_an_api_key_but_hides_the_topology(
    node_factory: NodeFactory,
) -> None:
    key = "k-1234567890"
    master = SynapProcess(node_factory.base_dir, "master1", role="master")  # never started
    node_factory.nodes.append(master)
    replica = node_factory.replica(master, config={"server": {"api_keys": [key]}})
    wait_for(lambda: replica.http.get("/health").json()["replication"]["last_error"], 10)

    anonymous = httpx.get(f"{replica.http_url}/health", timeout=5)
    assert anonymous.status_code == 503
    repl = anonymous.json()["replication"]
    assert repl["synced"] is False and "master_address" not in repl
    assert repl["last_error"].startswith("hidden")
    assert httpx.get(f"{replica.http_url}/health/live", timeout=5).status_code == 200
    assert httpx.get(f"{replica.http_url}/api/replication/stats", timeout=5).status_code == 401

    headers = {"Authorization": f"Bearer {key}"}
    known = httpx.get(f"{replica.http_url}/health", headers=headers, timeout=5).json()
    assert "cannot connect" in known["replication"]["last_error"]
    assert known["replication"]["master_address"] == master.replica_address
