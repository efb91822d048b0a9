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


# ----------------------------------------------------------------- authentication

KEYS = {"server": {"api_keys": ["app-key"], "admin_key": "admin-key"}}


def test_version() -> None:
    from synap import __version__

    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"synap-cli, version {__version__}"


def test_a_missing_or_wrong_key_is_an_authentication_problem_not_unreachable(
    node_factory: NodeFactory,
) -> None:
    node = node_factory(config=KEYS)
    for args, given in (([], False), (["--api-key", "wrong"], True)):
        done = run_cli(*args, "replication", "status", "--node", node.http_url)
        assert done.returncode == 1
        out = done.stdout + done.stderr
        assert "unreachable" not in out, out
        assert "HTTP 401: authentication problem" in out, out
        assert "--api-key" in out and "SYNAP_API_KEY" in out, out
        assert ("the key given was refused" in out) is given, out

        done = run_cli(*args, "digest", "--node", node.http_url)
        assert done.returncode == 1
        assert "HTTP 401: authentication problem" in done.stderr, done.stderr
        assert "server.api_keys" in done.stderr

    done = run_cli("--api-key", "app-key", "digest", "--node", node.http_url)
    assert done.returncode == 0, done.stderr


def test_an_admin_route_without_the_admin_key_names_it(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=KEYS)
    replica = node_factory.replica(master, config=KEYS, auto_reconnect=False)
    master.kill()
    # The replica's stats are readable with the API key; promoting needs the admin key.
    done = run_cli("--api-key", "app-key", "promote", "--node", replica.http_url)
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert "HTTP 403: authentication problem" in out, out
    assert "server.admin_key" in out and "--api-key" in out, out
    # Without any key even the stats are refused: said as such, not as "unreachable".
    done = run_cli("promote", "--node", replica.http_url)
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert "HTTP 401: authentication problem" in out and "unreachable" not in out, out
    stats = replica.http.get(
        "/api/replication/stats", headers={"Authorization": "Bearer app-key"}
    ).json()
    assert stats["role"] == "replica"  # nothing changed
