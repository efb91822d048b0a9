"""``synap-server`` as an operator runs it: flags, the config file and its sections, the
validation messages (exit code 2, the offending key and value named, no traceback), two
nodes on one data directory, and the startup banner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.ports import HOST, release_port, reserve_ports
from tests.support.server import NodeFactory, SynapProcess, wait_for

_SCRIPT = Path(sys.executable).parent / "synap-server"
SERVER = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "synap"]

FLAGS = [
    "--config",
    "--host",
    "--port",
    "--resp-port",
    "--rpc-port",
    "--data-dir",
    "--role",
    "--master-address",
    "--replica-listen",
    "--auto-reconnect",
    "--help",
]


def run_server(
    *args: str, cwd: Path | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run synap-server to completion (for invocations that must exit by themselves).
    SynapRPC is off unless asked for: its default port is shared by every node."""
    rpc = [] if any(a.startswith("--rpc-port") for a in args) else ["--rpc-port", "0"]
    return subprocess.run(
        [*SERVER, *args, *rpc],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def write_config(path: Path, config: object) -> str:
    path.write_text(yaml.safe_dump(config) if not isinstance(config, str) else config)
    return str(path)


@pytest.fixture
def ports() -> Iterator[list[int]]:
    """Three ports reserved for the test (HTTP, RESP, replication)."""
    reserved = reserve_ports(3)
    yield reserved
    for port in reserved:
        release_port(port)


class Server:
    """A synap-server started with exactly the given arguments (not the harness's), plus
    ``--rpc-port 0`` unless they name one: the default SynapRPC port (15500) is not
    reserved for tests and may be taken."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        if "--rpc-port" not in args:
            args = [*args, "--rpc-port", "0"]
        self.log = cwd / f"server-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [*SERVER, *args],
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def wait_http(self, port: int, timeout: float = 20) -> None:
        def up() -> bool:
            assert self.proc.poll() is None, self.text()
            return httpx.get(f"http://{HOST}:{port}/health", timeout=1).status_code == 200

        wait_for(up, timeout, message=lambda: self.text())

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)


# ----------------------------------------------------------------- --help


def test_help_lists_every_flag() -> None:
    done = run_server("--help")
    assert done.returncode == 0, done.stderr
    for flag in FLAGS:
        assert flag in done.stdout, flag
    assert "0 = off" in done.stdout  # --resp-port
    assert "true|false" in done.stdout  # --auto-reconnect
    assert "Examples" in done.stdout


def test_version() -> None:
    done = run_server("--version")
    assert done.returncode == 0 and "synap-server" in done.stdout


# ----------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--role", "replica"],
            ["replication.master_address is required", "replication.role is 'replica'"],
        ),
        (
            ["--role", "replica", "--master-address", "nohost"],
            ["replication.master_address", "'nohost'", "not an IP:port address"],
        ),
        (
            ["--role", "replica", "--master-address", "127.0.0.1:99999"],
            ["replication.master_address", "99999", "out of range"],
        ),
        (["--role", "boss"], ["--role", "'boss'"]),
        (["--auto-reconnect", "maybe"], ["--auto-reconnect", "'maybe'", "true or false"]),
        (["--resp-port", "70000"], ["--resp-port", "70000"]),
        (["--config", "/nonexistent/synap.yml"], ["/nonexistent/synap.yml", "cannot read"]),
    ],
    ids=[
        "replica-without-master",
        "master-address-not-ip-port",
        "master-address-port-out-of-range",
        "unknown-role",
        "auto-reconnect-not-bool",
        "port-out-of-range",
        "missing-config-file",
    ],
)
def test_invalid_flags_exit_2_naming_the_problem(args: list[str], expected: list[str]) -> None:
    done = run_server(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    for text in expected:
        assert text in done.stderr, (text, done.stderr)
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"replication": {"role": "boss"}}, ["replication.role", "'boss'"]),
        ({"replication": {"role": "replica"}}, ["replication.master_address is required"]),
        (
            {"replication": {"role": "replica", "master_address": "localhost"}},
            ["replication.master_address", "'localhost'", "IP:port"],
        ),
        ({"server": {"prot": 5500}}, ["server.prot", "unknown configuration key", "port"]),
        ({"persistence": {"fsync_mode": "sometimes"}}, ["persistence.fsync_mode", "'sometimes'"]),
        ("server: [unclosed", ["not valid YAML"]),
    ],
    ids=[
        "unknown-role",
        "replica-without-master",
        "master-address-without-port",
        "unknown-key",
        "unknown-fsync-mode",
        "invalid-yaml",
    ],
)
def test_invalid_config_file_exits_2_naming_key_and_value(  # more cases: unit/test_config.py
    tmp_path: Path, config: object, expected: list[str]
) -> None:
    done = run_server("--config", write_config(tmp_path / "bad.yml", config))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: invalid configuration:"), done.stderr
    for text in expected:
        assert text in done.stderr, (text, done.stderr)
    assert "Traceback" not in done.stderr


def test_flags_override_the_file_and_are_validated_like_it(tmp_path: Path) -> None:
    # The file's replica lacks a master; the flag supplies one, which is then checked.
    path = write_config(tmp_path / "c.yml", {"replication": {"role": "replica"}})
    done = run_server("--config", path, "--master-address", "127.0.0.1")
    assert done.returncode == 2
    assert "replication.master_address: '127.0.0.1' is not an IP:port address" in done.stderr


# ----------------------------------------------------------------- the config file


def test_config_file_sections_with_flag_overrides(
    tmp_path: Path, ports: list[int], servers: list[Server]
) -> None:
    http_port, resp_port, other = ports
    config = {
        "server": {"host": "127.0.0.1", "port": other, "resp_port": other},
        "kv_store": {"max_memory_mb": 7, "eviction_policy": "lru", "max_key_bytes": 10},
        "persistence": {"enabled": False, "fsync_mode": "always"},
        "logging": {"level": "WARNING", "format": "json"},
        "replication": {"enabled": False, "role": "standalone"},
    }
    path = write_config(tmp_path / "synap.yml", config)
    data_dir = tmp_path / "data"
    server = Server(
        ["--config", path, "--port", str(http_port), "--resp-port", str(resp_port),
         "--data-dir", str(data_dir)],
        tmp_path,
    )  # fmt: skip
    servers.append(server)
    server.wait_http(http_port)
    import redis

    client = redis.Redis(host=HOST, port=resp_port, socket_timeout=5)
    try:
        assert client.config_get("maxmemory") == {"maxmemory": str(7 * 1024 * 1024)}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        with pytest.raises(redis.ResponseError, match="10-byte limit"):
            client.set("k" * 11, "v")
        client.set("persisted", "yes")
    finally:
        client.close()
    assert (data_dir / "LOCK").exists()  # --data-dir turned persistence on
    assert server.stop() == 0
    text = server.text()
    assert f"HTTP API on http://127.0.0.1:{http_port}" in text
    assert f"Redis protocol on 127.0.0.1:{resp_port}" in text
    assert "(fsync always)" in text
    # logging.format json: every line is a JSON object (the startup banner included,
    # which stdout always shows); logging.level WARNING: no INFO log line.
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert records and all(isinstance(r, dict) for r in records)
    assert not [r for r in records if r["level"] == "INFO" and r["logger"] != "synap.banner"]


def test_the_example_config_yml_is_valid() -> None:
    from synap.config import load_config

    example = Path(__file__).resolve().parents[2] / "config.yml"
    config = load_config(example)
    assert config.replication.role == "master" and config.replication.enabled


def test_resp_port_0_turns_the_redis_protocol_off(
    tmp_path: Path, ports: list[int], servers: list[Server]
) -> None:
    http_port, resp_port, _ = ports
    server = Server(
        ["--host", HOST, "--port", str(http_port), "--resp-port", "0",
         "--data-dir", str(tmp_path / "d")],
        tmp_path,
    )  # fmt: skip
    servers.append(server)
    server.wait_http(http_port)
    assert "Redis protocol on" not in server.text()
    assert httpx.post(f"http://{HOST}:{http_port}/kv/set", json={"key": "a", "value": 1}).is_success
    assert server.stop() == 0


def test_a_port_in_use_is_a_clear_error(
    tmp_path: Path, ports: list[int], servers: list[Server]
) -> None:
    import socket

    http_port, resp_port, _ = ports
    with socket.socket() as taken:
        taken.bind((HOST, resp_port))
        taken.listen()
        server = Server(
            ["--host", HOST, "--port", str(http_port), "--resp-port", str(resp_port),
             "--data-dir", str(tmp_path / "d")],
            tmp_path,
        )  # fmt: skip
        servers.append(server)
        assert server.proc.wait(20) == 1
    text = server.text()
    assert f"cannot listen for the Redis protocol on {HOST}:{resp_port}" in text
    assert "--resp-port" in text
    assert "Traceback" not in text


# ----------------------------------------------------------------- data directory


def test_a_second_node_on_the_same_data_dir_refuses_to_start(
    tmp_path: Path, ports: list[int], servers: list[Server]
) -> None:
    factory = NodeFactory(tmp_path)
    try:
        first = factory(name="first")
        http_port, resp_port, _ = ports
        second = Server(
            ["--host", HOST, "--port", str(http_port), "--resp-port", str(resp_port),
             "--data-dir", str(first.data_dir)],
            tmp_path,
        )  # fmt: skip
        servers.append(second)
        assert second.proc.wait(20) == 1
        text = second.text()
        assert f"data directory {first.data_dir} is in use by another synap-server" in text
        assert f"(pid {first.pid})" in text
        assert "give each node its own --data-dir" in text
        assert "Traceback" not in text
        assert first.redis().ping() is True  # the first one is unharmed
    finally:
        assert not factory.cleanup()


# ----------------------------------------------------------------- banner


def test_standalone_banner_names_each_listener_and_the_persistence_mode(
    node_factory: NodeFactory,
) -> None:
    node: SynapProcess = node_factory()
    text = node.log_text()
    assert "Standalone node initialized" in text
    assert f"HTTP API on http://127.0.0.1:{node.port}" in text
    assert f"Redis protocol on 127.0.0.1:{node.resp_port}" in text
    assert f"Persistence: WAL + snapshots in {node.data_dir}" in text
    assert "(fsync periodic)" in text


def test_banner_without_persistence(
    tmp_path: Path, ports: list[int], servers: list[Server]
) -> None:
    http_port, resp_port, _ = ports
    server = Server(
        ["--host", HOST, "--port", str(http_port), "--resp-port", str(resp_port)], tmp_path
    )
    servers.append(server)
    server.wait_http(http_port)
    assert "Persistence: disabled (in-memory only)" in server.text()
    assert server.stop() == 0


def test_master_and_replica_banners(node_factory: NodeFactory) -> None:
    master = node_factory.master()
    replica = node_factory.replica(master, auto_reconnect=False)
    assert f"Master node initialized, listening on {master.replica_address}" in master.log_text()
    assert "WRITES ALLOWED" in master.log_text()
    text = replica.log_text()
    assert f"Replica node initialized, connecting to master at {master.replica_address}" in text
    assert "READ-ONLY MODE" in text
    assert "Auto-reconnect: false" in text


# ----------------------------------------------------------------- no flag silently ignored


def test_role_master_flag_wins_over_replication_enabled_false_in_the_file(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config={"replication": {"enabled": False, "role": "standalone"}})
    assert master.stats()["role"] == "master"
    replica = node_factory.replica(master)
    master.redis().set("k", "v")
    wait_for(lambda: replica.redis().get("k") == b"v", 20)


def test_master_address_without_role_makes_a_replica(node_factory: NodeFactory) -> None:
    master = node_factory.master()
    master.redis().set("k", "v")
    replica = node_factory(master_address=master)  # --master-address, no --role
    assert "--role" not in replica.argv
    wait_for(lambda: replica.stats().get("role") == "replica", 20)
    wait_for(lambda: replica.redis().get("k") == b"v", 20)
    assert "Replica node initialized" in replica.log_text()


def test_master_address_against_a_file_naming_another_role_fails_clearly(
    tmp_path: Path,
) -> None:
    for role in ("master", "standalone"):
        path = write_config(tmp_path / f"{role}.yml", {"replication": {"role": role}})
        done = run_server("--config", path, "--master-address", "127.0.0.1:15501")
        assert done.returncode == 2, done.stdout + done.stderr
        assert "--master-address makes this node a replica" in done.stderr
        assert f"replication.role: {role}" in done.stderr
        assert "--role replica" in done.stderr
        assert "Traceback" not in done.stderr


def test_role_replica_flag_over_a_master_file_with_master_address(tmp_path: Path) -> None:
    # --role given explicitly: the file's role is overridden, no error.
    from synap.config import load_config

    path = write_config(tmp_path / "m.yml", {"replication": {"role": "master", "enabled": False}})
    config = load_config(
        path, {"replication": {"role": "replica", "master_address": "127.0.0.1:15501"}}
    )
    assert (config.replication.role, config.replication.enabled) == ("replica", True)


# ----------------------------------------------------------------- error messages


def test_config_errors_are_one_per_line(tmp_path: Path) -> None:
    config = {"server": {"prot": 1, "port": -5}, "replication": {"role": "boss"}}
    done = run_server("--config", write_config(tmp_path / "bad.yml", config))
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert all(line.startswith("error: invalid configuration: ") for line in lines), lines
    keys = sorted(line.split(": ", 2)[2].split(":")[0] for line in lines)
    assert keys == ["replication.role", "server.port", "server.prot"], lines


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("192.0.2.1", "192.0.2.1 is not an address of this machine"),  # TEST-NET-1
        ("nosuch.invalid", "the host name 'nosuch.invalid' does not resolve"),
    ],
    ids=["not-a-local-address", "unresolvable"],
)
def test_a_bad_host_is_named_as_the_problem_not_the_port(
    tmp_path: Path, ports: list[int], host: str, expected: str
) -> None:
    http_port, resp_port, _ = ports
    done = run_server(
        "--host", host, "--port", str(http_port), "--resp-port", str(resp_port), cwd=tmp_path
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert expected in done.stderr, done.stderr
    assert "--host / server.host" in done.stderr
    assert "pick another port" not in done.stderr
    assert done.stderr.count("cannot listen") == 1, done.stderr  # printed once
    assert "Traceback" not in done.stderr


def test_a_bad_replica_listen_host_is_named_as_the_problem(
    tmp_path: Path, ports: list[int]
) -> None:
    http_port, resp_port, repl_port = ports
    done = run_server(
        "--host", HOST, "--port", str(http_port), "--resp-port", str(resp_port),
        "--role", "master", "--replica-listen", f"192.0.2.1:{repl_port}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot listen for replicas on 192.0.2.1" in done.stderr
    assert "not an address of this machine" in done.stderr
    assert "--replica-listen" in done.stderr
    assert done.stderr.count("cannot listen") == 1, done.stderr


def test_a_port_in_use_says_so_once(tmp_path: Path, ports: list[int]) -> None:
    import socket

    http_port, resp_port, _ = ports
    with socket.socket() as taken:
        taken.bind((HOST, http_port))
        taken.listen()
        done = run_server(
            "--host", HOST, "--port", str(http_port), "--resp-port", str(resp_port), cwd=tmp_path
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"port {http_port} is already in use" in done.stderr
    assert "pick another port with --port / server.port" in done.stderr
    assert done.stderr.count("cannot listen") == 1, done.stderr  # not also as a log line
    assert "Traceback" not in done.stderr


def test_a_locked_data_dir_is_reported_once(node_factory: NodeFactory, ports: list[int]) -> None:
    first = node_factory()
    http_port, resp_port, _ = ports
    done = run_server(
        "--host", HOST, "--port", str(http_port), "--resp-port", str(resp_port),
        "--data-dir", str(first.data_dir),
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("is in use by another synap-server") == 1, done.stderr


def test_master_address_with_role_master_is_refused() -> None:
    done = run_server("--role", "master", "--master-address", "127.0.0.1:15501")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--master-address is for replicas, but --role is master" in done.stderr


def test_a_flag_without_effect_in_the_starting_role_is_said(
    tmp_path: Path, ports: list[int], servers: list[Server]
) -> None:
    http_port, resp_port, repl_port = ports
    server = Server(
        ["--host", HOST, "--port", str(http_port), "--resp-port", str(resp_port),
         "--replica-listen", f"{HOST}:{repl_port}", "--auto-reconnect", "false"],
        tmp_path,
    )  # fmt: skip
    servers.append(server)
    server.wait_http(http_port)
    text = server.text()
    assert "--replica-listen has no effect on a standalone node" in text
    assert "--auto-reconnect applies to replicas; this node starts as standalone" in text
    assert server.stop() == 0
