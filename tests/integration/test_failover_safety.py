"""Failover tooling never leaves the group without a master (issue 8, items 3, 5, 6, 11):
addresses in any spelling, nodes matched by replica id, end-state verification, the
server refusing to replicate from itself, promotion bind address, the topology
surviving restarts, and the ``synap-cli replicaof`` / ``pause-writes`` /
``resume-writes`` subcommands. Real servers, real ``synap-cli`` processes."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from tests.integration.failover_support import FAST, ready, wait_converged
from tests.support.ports import HOST, reserve_port, reserve_ports
from tests.support.server import NodeFactory, SynapProcess, wait_caught_up, wait_for

SYNAP_CLI = shutil.which("synap-cli", path=str(Path(sys.executable).parent)) or "synap-cli"


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNAP_CLI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def localhost_url(node: SynapProcess) -> str:
    """The README's spelling: ``http://localhost:PORT`` (the harness uses 127.0.0.1)."""
    return f"http://localhost:{node.port}"


def demo_like_group(node_factory: NodeFactory) -> tuple[SynapProcess, SynapProcess, SynapProcess]:
    """As ``make run`` starts it: a master and two replicas, each with its own replica
    listener on 127.0.0.1."""
    a = node_factory.master(config=FAST, wait=False)
    b = node_factory.replica(a, replica_listen=True, config=FAST, wait=False)
    c = node_factory.replica(a, replica_listen=True, config=FAST, wait=False)
    ready(a, b, c)
    a.redis().set("k", "v")
    wait_caught_up(a, [b, c])
    return a, b, c


def assert_one_master(master: SynapProcess, others: list[SynapProcess]) -> None:
    wait_converged(master, others)
    for node in others:
        assert node.stats()["master_address"] == master.replica_address


# ----------------------------------------------------------------- item 3: failover


def test_failover_back_with_localhost_urls_leaves_one_master(node_factory: NodeFactory) -> None:
    """The issue's command: after a first switchover to the replica on :5501, fail back
    with ``--node http://localhost:5501 --to http://localhost:5500``."""
    a, b, c = demo_like_group(node_factory)
    first = cli("failover", "--node", f"localhost:{a.port}")  # no scheme: also a README form
    assert first.returncode == 0, first.stdout + first.stderr
    new = next(n for n in (a, b, c) if n.stats()["role"] == "master")
    assert new is not a, first.stdout

    result = cli("failover", "--node", localhost_url(new), "--to", localhost_url(a))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "switchover complete" in out and "verified" in out, out
    assert a.stats()["role"] == "master", out
    assert_one_master(a, [n for n in (b, c)])
    a.redis().set("after", "1")  # the group has a writable master


def test_failover_to_the_master_itself_is_refused(node_factory: NodeFactory) -> None:
    a, b, c = demo_like_group(node_factory)
    result = cli("failover", "--node", a.http_url, "--to", localhost_url(a))
    assert result.returncode == 1, result.stdout
    assert "is the master" in result.stdout and "itself" in result.stdout, result.stdout
    assert a.stats()["role"] == "master"
    assert a.stats()["writes_paused"] is False
    assert_one_master(a, [b, c])


def test_failover_exits_non_zero_when_a_node_does_not_follow(node_factory: NodeFactory) -> None:
    """A replica that cannot be reached (frozen) is not repointed: the end-state check
    fails, the exit code is 1 and the output says the state and the fixing command."""
    a, b, c = demo_like_group(node_factory)
    c.freeze()
    try:
        result = cli("failover", "--node", a.http_url, "--to", b.http_url, timeout=90)
    finally:
        c.thaw()
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "FAILED: the group is not in a safe state" in out, out
    assert "switchover complete" not in out, out
    assert "state of each node" in out and "to fix it" in out, out
    assert f"synap-cli replicaof --node {c.http_url} --master" in out, out
    # The part that could be done was done: b is the only master, a follows it.
    assert b.stats()["role"] == "master"
    wait_for(lambda: a.stats().get("connected") is True, 10)
    # Following the printed advice fixes the group.
    fix = cli("replicaof", "--node", c.http_url, "--master", b.replica_address)
    assert fix.returncode == 0, fix.stdout + fix.stderr
    assert_one_master(b, [a, c])


def test_promote_verifies_the_end_state(node_factory: NodeFactory) -> None:
    a, b, c = demo_like_group(node_factory)
    a.kill()
    urls = [localhost_url(a), localhost_url(b), localhost_url(c), b.http_url]  # b twice
    result = cli("promote", *[arg for u in urls for arg in ("--node", u)])
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "counted once" in out and "verified" in out, out
    new = next(n for n in (b, c) if n.stats()["role"] == "master")
    assert_one_master(new, [n for n in (b, c) if n is not new])


def test_promote_exits_non_zero_when_a_listed_node_does_not_follow(
    node_factory: NodeFactory,
) -> None:
    """A replica of another history is left alone by promote: the group then is not
    "one master, every other node follows it", so the exit code says so."""
    a, b, c = demo_like_group(node_factory)
    d = node_factory.replica(a, replica_listen=True, config=FAST)
    x = node_factory.master(config=FAST)  # another history
    x.redis().set("x", "1")
    r = d.http.post("/api/replication/replicaof", json={"master_address": x.replica_address})
    assert r.status_code == 200, r.text
    wait_for(lambda: d.stats().get("replication_id") == x.stats()["replication_id"], 15)
    a.kill()
    x.kill()
    result = cli("promote", *[arg for n in (a, b, c, d) for arg in ("--node", localhost_url(n))])
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "follows another history" in out, out
    assert "FAILED: the group is not in a safe state" in out, out
    assert "promotion FAILED to converge" in out, out
    assert f"synap-cli replicaof --node {localhost_url(d)} --master" in out, out
    new = next(n for n in (b, c) if n.stats()["role"] == "master")
    assert_one_master(new, [n for n in (b, c) if n is not new])


# ----------------------------------------------------------------- item 3: self-replication


def test_server_refuses_to_replicate_from_its_own_listener(node_factory: NodeFactory) -> None:
    a, b, _ = demo_like_group(node_factory)
    for address in (a.replica_address, f"localhost:{a.replica_port}"):
        r = a.http.post("/api/replication/replicaof", json={"master_address": address})
        assert r.status_code == 400, r.text
        assert "replicate from itself" in r.text, r.text
    with pytest.raises(redis.exceptions.ResponseError, match="replicate from itself"):
        a.redis().execute_command("REPLICAOF", "127.0.0.1", str(a.replica_port))
    assert a.stats()["role"] == "master"
    # A replica with a listener (a chain) refuses its own listener as well.
    r = b.http.post(
        "/api/replication/replicaof", json={"master_address": f"localhost:{b.replica_port}"}
    )
    assert r.status_code == 400 and "replicate from itself" in r.text, r.text
    assert b.stats()["master_address"] == a.replica_address
    cli_result = cli("replicaof", "--node", a.http_url, "--master", a.replica_address)
    assert cli_result.returncode == 1
    assert "replicate from itself" in cli_result.stderr, cli_result.stderr


def test_self_replication_through_another_address_is_refused_in_the_handshake(
    node_factory: NodeFactory,
) -> None:
    """Through a proxy the address check cannot see it: the master side recognises its
    own replica id and refuses; the node stops following instead of retrying."""
    a, b, c = demo_like_group(node_factory)
    proxy = node_factory.proxy(b)  # in front of b's own replica listener
    r = b.http.post("/api/replication/replicaof", json={"master_address": proxy.address})
    assert r.status_code == 200, r.text

    def stopped() -> bool:
        s = b.stats()
        return s.get("state") == "stopped" and "itself" in str(s.get("last_error"))

    wait_for(stopped, 15, message=lambda: f"b did not stop: {b.stats()}")
    assert "replicate from itself" in b.log_text()
    assert b.stats()["connected"] is False


def test_self_replication_by_host_name_goes_back_to_the_previous_role(
    node_factory: NodeFactory,
) -> None:
    """A host name that resolves to this node's listener: refused in the handshake, and
    the node returns to being the master it was (the group keeps its master)."""
    name = socket.gethostname()
    try:
        resolved = socket.gethostbyname(name)
    except OSError:
        pytest.skip(f"host name {name!r} does not resolve")
    if resolved != HOST:
        pytest.skip(f"host name {name!r} resolves to {resolved}, not {HOST}")
    a, b, c = demo_like_group(node_factory)
    r = a.http.post(
        "/api/replication/replicaof", json={"master_address": f"{name}:{a.replica_port}"}
    )
    assert r.status_code == 200, r.text  # names are only resolved by the connection
    wait_for(lambda: a.stats()["role"] == "master", 15, message=lambda: str(a.stats()))
    assert "itself" in str(a.stats()["last_role_error"])
    a.redis().set("still", "writable")
    assert_one_master(a, [b, c])


# ----------------------------------------------------------------- item 5: bind address


def test_promotion_without_a_configured_listener_binds_the_nodes_host(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=FAST)
    replica = node_factory.replica(master, config=FAST)  # no --replica-listen
    wait_caught_up(master, [replica])
    result = cli("replicaof", "--node", replica.http_url, "--no-one")
    out = result.stdout + result.stderr
    if result.returncode == 0:
        bound = replica.stats()["replica_listen_address"]
        assert bound == f"{HOST}:15501", out
        assert f"bound on {HOST}:15501" in out, out
        assert replica.stats()["role"] == "master"
    else:  # port 15501 is taken on this machine: refused, naming the address it tried
        assert f"{HOST}:15501" in out and "0.0.0.0" not in out, out
        assert replica.stats()["role"] == "replica"


def test_promotion_prints_the_listener_really_bound(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=FAST)
    replica = node_factory.replica(master, replica_listen=True, config=FAST)
    wait_caught_up(master, [replica])
    master.kill()
    result = cli("promote", "--node", master.http_url, "--node", replica.http_url)
    assert result.returncode == 0, result.stdout
    assert f"bound on {replica.replica_address}" in result.stdout, result.stdout


# ----------------------------------------------------------------- item 6: persistence


def _restart_without_role_flags(node: SynapProcess) -> None:
    node.kill()
    node.role = None
    node.master_address = None
    node.start()


def test_promoted_node_is_still_master_after_restart(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=FAST)
    replica = node_factory.replica(master, config=FAST)  # no --replica-listen flag
    master.redis().set("k", "1")
    wait_caught_up(master, [replica])
    master.kill()
    listen = f"{HOST}:{reserve_port()}"
    reply = replica.http.post(
        "/api/replication/promote", json={"replica_listen_address": listen}
    ).json()
    topology = replica.data_dir / "topology.json"
    assert reply["topology_file"] == str(topology)
    saved = json.loads(topology.read_text())
    assert saved["role"] == "master" and saved["replica_listen_address"] == listen

    _restart_without_role_flags(replica)
    stats = replica.stats()
    assert stats["role"] == "master", stats
    assert stats["replica_listen_address"] == listen  # the persisted listener
    assert "Topology from" in replica.log_text() and str(topology) in replica.log_text()
    replica.redis().set("after", "restart")
    assert replica.redis().get("k") == b"1"


def test_repointed_node_follows_its_new_master_after_restart(node_factory: NodeFactory) -> None:
    a, b, c = demo_like_group(node_factory)
    # Switch to b, then restart the old master a without role flags: it follows b.
    result = cli("failover", "--node", a.http_url, "--to", b.http_url)
    assert result.returncode == 0, result.stdout
    saved = json.loads((a.data_dir / "topology.json").read_text())
    assert saved == {**saved, "role": "replica", "master_address": b.replica_address}
    b.redis().set("while-down", "1")
    _restart_without_role_flags(a)
    wait_for(lambda: a.stats().get("connected") is True, 15, message=lambda: str(a.stats()))
    assert a.stats()["role"] == "replica"
    assert a.stats()["master_address"] == b.replica_address
    assert_one_master(b, [a, c])
    assert a.redis().get("while-down") == b"1"


def test_explicit_role_flags_win_over_the_persisted_topology(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=FAST)
    replica = node_factory.replica(master, replica_listen=True, config=FAST)
    wait_caught_up(master, [replica])
    replica.http.post("/api/replication/promote").raise_for_status()
    replica.restart()  # still started with --role replica --master-address: they win
    wait_for(lambda: replica.stats().get("connected") is True, 15)
    assert replica.stats()["role"] == "replica"
    assert "ignored: --role/--master-address on the command line win" in replica.log_text()


def test_damaged_topology_file_stops_start_up_with_a_message(node_factory: NodeFactory) -> None:
    node = node_factory.master(config=FAST)
    node.kill()
    (node.data_dir / "topology.json").write_text("{not json")
    node.role = None
    with pytest.raises(AssertionError, match="topology.json"):
        node.start()


# ----------------------------------------------------------------- item 11: CLI


def test_cli_replicaof_repoints_and_promotes(node_factory: NodeFactory) -> None:
    a, b, c = demo_like_group(node_factory)
    # Chain c below b, then back below a.
    result = cli("replicaof", "--node", localhost_url(c), "--master", b.replica_address)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"now a replica of {b.replica_address}" in result.stdout
    assert "connected to" in result.stdout and "persisted to" in result.stdout
    assert c.stats()["master_address"] == b.replica_address
    result = cli("replicaof", "--node", c.http_url, "--master", a.replica_address)
    assert result.returncode == 0, result.stdout
    # A master address nobody listens on: the repoint is made but the CLI says it did
    # not connect, and exits non-zero.
    a.kill()
    result = cli("replicaof", "--node", c.http_url, "--no-one")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "promoted" in result.stdout and f"bound on {c.replica_address}" in result.stdout
    assert c.stats()["role"] == "master"
    result = cli("replicaof", "--node", b.http_url, "--master", a.replica_address, "--timeout", "1")
    assert result.returncode == 1
    assert "NOT connected" in result.stderr, result.stderr
    result = cli("replicaof", "--node", b.http_url, "--master", c.replica_address)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_one_master(c, [b])


def test_cli_replicaof_usage_errors() -> None:
    for args in ([], ["--master", "127.0.0.1:1", "--no-one"]):
        result = cli("replicaof", "--node", "http://127.0.0.1:9", *args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "exactly one of --master" in result.stderr


def test_cli_pause_and_resume_writes(node_factory: NodeFactory) -> None:
    master = node_factory.master(config=FAST)
    client = master.redis()
    result = cli("pause-writes", "--node", localhost_url(master), "--until-resumed")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "writes paused until resumed" in result.stdout
    with pytest.raises(redis.exceptions.TryAgainError):
        client.set("x", "1")
    assert master.stats()["writes_paused_for"] is None
    result = cli("resume-writes", "--node", master.http_url)
    assert result.returncode == 0 and "writes resumed" in result.stdout, result.stdout
    client.set("x", "1")
    result = cli("pause-writes", "--node", master.http_url, "--seconds", "30")
    assert result.returncode == 0 and "for 30s" in result.stdout, result.stdout
    assert 0 < master.stats()["writes_paused_for"] <= 30
    cli("resume-writes", "--node", master.http_url)
    assert cli("pause-writes", "--node", master.http_url).returncode == 2


def test_without_a_data_directory_nothing_is_persisted_and_the_cli_says_so(
    node_factory: NodeFactory,
) -> None:
    master = node_factory.master(config=FAST)
    port, resp = reserve_ports(2)
    argv = [sys.executable, "-m", "synap", "--host", HOST, "--port", str(port)]
    argv += ["--resp-port", str(resp), "--role", "replica"]
    argv += ["--master-address", master.replica_address]
    log = open(node_factory.base_dir / "no-data-dir.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=node_factory.base_dir)
    try:
        url = f"http://{HOST}:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/api/replication/stats", timeout=1).json()["connected"]
            except (httpx.HTTPError, KeyError, ValueError):
                return False

        wait_for(up, 30)
        (listen,) = reserve_ports(1)  # not the default 15501: other tests may hold it
        result = cli("replicaof", "--node", url, "--no-one", "--replica-listen", f"{HOST}:{listen}")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "NOT persisted" in result.stdout, result.stdout
        assert not list(node_factory.base_dir.rglob("topology.json"))
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
    assert (
        "not persisted: no data directory"
        in (node_factory.base_dir / "no-data-dir.log").read_text()
    )
