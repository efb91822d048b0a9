"""``synap-cli replication status`` and ``synap-cli digest`` against a real master and replica."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.checks import assert_same_data
from tests.support.server import NodeFactory

CLI = [sys.executable, "-c", "from synap.cli import main; main()"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=30)


def test_replication_status_shows_role_offsets_and_lag_of_each_node(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master()
    replica = node_factory.replica(master)
    master.redis().set("k", "v")
    assert_same_data(master, [replica])

    done = run_cli("replication", "status", "--node", master.http_url, "--node", replica.http_url)
    assert done.returncode == 0, done.stderr
    assert "role=master" in done.stdout and "role=replica" in done.stdout
    assert "offset=1/1 lag=0 ops" in done.stdout
    assert f"at 127.0.0.1:{replica.port}: offset=1 lag=0 ops" in done.stdout

    raw = run_cli("replication", "status", "--json", "--node", replica.http_url)
    assert json.loads(raw.stdout)["replica_offset"] == 1


def test_replication_status_fails_for_an_unreachable_node(node_factory: NodeFactory) -> None:
    master = node_factory.master()
    url = master.http_url
    master.kill()
    done = run_cli("replication", "status", "--node", url)
    assert done.returncode == 1
    assert "unreachable" in done.stdout


def test_digest_compares_nodes(node_factory: NodeFactory) -> None:
    master = node_factory.master()
    replica = node_factory.replica(master)
    master.redis().mset({"a": "1", "b": "2"})
    assert_same_data(master, [replica])
    done = run_cli("digest", "--node", master.http_url, "--node", replica.http_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "digests match" in done.stdout
