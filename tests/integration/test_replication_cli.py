"""The spec's "Command Line Usage" and "Monitoring" sections, followed literally.

The nodes here are started with the ``synap-server`` console script and the flags the spec
shows (plus a config file for the ports, which the spec's second example also passes), with
stdout and stderr captured apart: the startup lines must be on stdout, the logs on stderr.
The other replication tests use the ``node_factory`` harness instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import yaml

from tests.support.ports import HOST, release_port, reserve_ports
from tests.support.server import wait_for

SYNAP_SERVER = str(Path(sys.executable).parent / "synap-server")
FAST = {
    "heartbeat_interval_ms": 100,
    "reconnect_delay_ms": 200,
    "replica_timeout_secs": 2,
}

# Spec, "Monitoring": the fields of GET /api/replication/stats and their JSON types.
SPEC_MASTER_FIELDS = {"role": str, "master_offset": int, "replicas": list}
SPEC_MASTER_REPLICA_FIELDS = {
    "id": str,
    "address": str,
    "offset": int,
    "lag_operations": int,
    "lag_ms": int,
    "connected_at": int,
    "last_heartbeat": int,
}
SPEC_REPLICA_FIELDS = {
    "role": str,
    "replica_offset": int,
    "master_offset": int,
    "lag_operations": int,
    "lag_ms": int,
    "total_replicated": int,
    "total_bytes": int,
    "connected": bool,
    "last_heartbeat": int,
}


class CliNode:
    """One ``synap-server`` started with an exact command line; stdout and stderr apart."""

    def __init__(self, base: Path, name: str, flags: list[str], config: dict) -> None:
        self.name = name
        self.ports = reserve_ports(3)
        self.http_port, self.resp_port, self.spare_port = self.ports
        self.config_path = base / f"{name}.yml"
        server = {"host": HOST, "port": self.http_port, "resp_port": self.resp_port}
        self.config_path.write_text(yaml.safe_dump({"server": server, **config}, sort_keys=False))
        self.argv = [SYNAP_SERVER, "--config", str(self.config_path), *flags]
        self.stdout_path = base / f"{name}.stdout"
        self.stderr_path = base / f"{name}.stderr"
        self.cwd = base
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=f"http://{HOST}:{self.http_port}", timeout=10)

    def start(self) -> CliNode:
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        wait_for(self._ready, 30, message=lambda: f"{self.name} not ready:\n{self.stderr()}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.stderr()}")
        return self.http.get("/health/live").status_code == 200

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stats(self) -> dict:
        response = self.http.get("/api/replication/stats")
        response.raise_for_status()
        return response.json()

    def redis(self) -> redis.Redis:
        return redis.Redis(HOST, self.resp_port, socket_timeout=10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def close(self) -> None:
        self.kill()
        self.http.close()
        for port in self.ports:
            release_port(port)


@pytest.fixture
def cli_nodes(tmp_path: Path) -> Iterator[list[CliNode]]:
    nodes: list[CliNode] = []
    yield nodes
    for node in nodes:
        with contextlib.suppress(Exception):
            node.close()


def _check_types(body: dict, spec: dict[str, type], where: str) -> None:
    missing = sorted(set(spec) - set(body))
    assert not missing, f"{where}: spec fields missing: {missing} (got {sorted(body)})"
    for field, kind in spec.items():
        value = body[field]
        # bool is an int in Python, but not in the spec's JSON.
        ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        assert ok, f"{where}.{field} = {value!r}: expected a JSON {kind.__name__}"


def test_spec_command_lines_startup_lines_and_stats_fields(
    tmp_path: Path, cli_nodes: list[CliNode]
) -> None:
    # Spec: ./synap-server --config config.yml --role master --replica-listen ... --host --port
    listen_port = reserve_ports(1)[0]
    try:
        listen = f"{HOST}:{listen_port}"
        master = CliNode(
            tmp_path,
            "master",
            ["--role", "master", "--replica-listen", listen, "--host", HOST],
            {"replication": FAST},
        )
        cli_nodes.append(master)
        master.start()
        # Spec: ./synap-server --role replica --master-address "127.0.0.1:15501"
        replica = CliNode(
            tmp_path,
            "replica",
            ["--role", "replica", "--master-address", listen],
            {"replication": FAST},
        )
        cli_nodes.append(replica)
        replica.start()

        # Spec "Output": the lines, with the real addresses, on stdout.
        master_out = master.stdout().splitlines()
        assert f"✅ Master node initialized, listening on {listen}" in master_out
        assert "⚠️  WRITES ALLOWED - This node accepts write operations" in master_out
        replica_out = replica.stdout().splitlines()
        assert f"✅ Replica node initialized, connecting to master at {listen}" in replica_out
        assert "🔒 READ-ONLY MODE - Writes will be rejected" in replica_out
        assert "♻️  Auto-reconnect: true" in replica_out
        assert "✅" not in master.stderr() and "✅" not in replica.stderr()

        client = master.redis()
        for i in range(50):
            client.set(f"key:{i}", f"value:{i}")

        def caught_up() -> bool:
            m, r = master.stats(), replica.stats()
            return (
                r["connected"] is True
                and r["replica_offset"] == m["master_offset"] == 50
                and len(m["replicas"]) == 1
                and m["replicas"][0]["offset"] == 50
                and r["last_heartbeat"] is not None
            )

        wait_for(caught_up, 15, message="replica did not catch up")
        now = time.time()
        m = master.stats()
        _check_types(m, SPEC_MASTER_FIELDS, "master stats")
        assert m["role"] == "master"
        assert m["master_offset"] == 50
        (entry,) = m["replicas"]
        _check_types(entry, SPEC_MASTER_REPLICA_FIELDS, "master stats replicas[0]")
        # The spec's example shows the replica's own API address (port 5500) here.
        assert entry["address"] == f"{HOST}:{replica.http_port}"
        assert entry["id"] == replica.stats()["replica_id"]
        assert entry["offset"] == 50 and entry["lag_operations"] == 0 and entry["lag_ms"] == 0
        assert now - 60 < entry["connected_at"] <= entry["last_heartbeat"] <= now + 1

        r = replica.stats()
        _check_types(r, SPEC_REPLICA_FIELDS, "replica stats")
        assert r["role"] == "replica"
        assert r["replica_offset"] == r["master_offset"] == 50
        assert r["lag_operations"] == 0 and r["lag_ms"] == 0
        assert r["connected"] is True
        assert r["total_bytes"] > 0
        assert now - 60 < r["last_heartbeat"] <= now + 1
        assert r["full_syncs"] == 1 and r["partial_syncs"] == 0
        # Served by the master, performed by the replica (Redis's sync_full meaning).
        assert m["sync_full"] == 1 and m["sync_partial_ok"] == 0
        assert m["full_syncs"] == 0 and r["sync_full"] == 0
        # total_replicated counts operations received; a write after the sync adds one.
        before = r["total_replicated"]
        client.set("one-more", "x")
        wait_for(lambda: replica.stats()["total_replicated"] == before + 1, 10)
        digests = {n.http.get("/api/replication/digest").json()["digest"] for n in cli_nodes}
        assert len(digests) == 1

        # docs/MONITORING.md describes every field either view returns.
        doc = (Path(__file__).resolve().parents[2] / "docs" / "MONITORING.md").read_text()
        fields = set(m) | set(entry) | set(replica.stats())
        undocumented = sorted(f for f in fields if f"`{f}`" not in doc and f"[].{f}`" not in doc)
        assert not undocumented, f"stats fields missing from docs/MONITORING.md: {undocumented}"
    finally:
        release_port(listen_port)


def test_auto_reconnect_false_leaves_the_replica_disconnected_and_says_so(
    tmp_path: Path, cli_nodes: list[CliNode]
) -> None:
    listen_port = reserve_ports(1)[0]
    try:
        listen = f"{HOST}:{listen_port}"
        master = CliNode(
            tmp_path,
            "master",
            ["--role", "master", "--replica-listen", listen],
            {"replication": FAST},
        )
        cli_nodes.append(master)
        master.start()
        # Spec: ./synap-server --role replica --master-address ... --auto-reconnect false
        replica = CliNode(
            tmp_path,
            "replica",
            ["--role", "replica", "--master-address", listen, "--auto-reconnect", "false"],
            {"replication": FAST},
        )
        cli_nodes.append(replica)
        replica.start()
        assert "♻️  Auto-reconnect: false" in replica.stdout().splitlines()
        master.redis().set("k", "v")
        wait_for(lambda: replica.stats()["replica_offset"] == 1, 10)
        assert replica.stats()["auto_reconnect"] is False

        master.kill()
        wait_for(lambda: replica.stats()["connected"] is False, 5)
        # The master comes back on the same address; the replica must not go back to it.
        master.start()
        master.redis().set("k2", "v2")
        time.sleep(1.5)  # seven reconnect delays
        stats = replica.stats()
        assert stats["connected"] is False
        assert stats["replica_offset"] == 1
        assert master.stats()["replicas"] == []
        log = replica.stderr()
        assert "auto-reconnect is disabled, so this replica stays disconnected" in log
        assert "reconnecting in" not in log
        # It still serves (stale) reads and still refuses writes.
        client = replica.redis()
        assert client.get("k") == b"v"
        with pytest.raises(redis.ReadOnlyError):
            client.set("k", "w")
    finally:
        release_port(listen_port)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--auto-reconnect", "maybe"], "--auto-reconnect: 'maybe' is not true or false"),
        (["--role", "replica"], "replication.master_address is required"),
        (["--role", "replica", "--master-address", "nohost"], "is not an IP:port address"),
        (["--role", "primary"], "'primary' is not one of"),
    ],
)
def test_bad_replication_flags_are_refused_with_a_clear_message(
    tmp_path: Path, flags: list[str], expected: str
) -> None:
    result = subprocess.run(
        [SYNAP_SERVER, *flags],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result
    assert expected in result.stderr, result.stderr
