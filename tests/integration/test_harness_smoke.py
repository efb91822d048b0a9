"""The integration harness itself works against the real server: start, serve, kill, restart."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.support.server import NodeFactory, SynapProcessError, wait_caught_up, wait_for


def test_standalone_node_serves_health_and_resp(node_factory: NodeFactory) -> None:
    node = node_factory()
    health = node.http.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "healthy"
    client = node.redis()
    assert client.ping() is True
    assert client.set(b"greeting", b"hello") is True
    assert client.get(b"greeting") == b"hello"


def test_kill_then_restart_on_the_same_ports(node_factory: NodeFactory) -> None:
    node = node_factory()
    ports, first_pid = (node.port, node.resp_port), node.pid
    node.redis().set(b"k", b"v")

    assert node.kill() == -signal.SIGKILL
    assert not node.is_running()
    with pytest.raises(Exception):  # noqa: B017 - any connection error will do
        node.http.get("/health")

    node.restart()
    assert node.pid != first_pid
    assert (node.port, node.resp_port) == ports
    assert node.http.get("/health").status_code == 200
    assert node.redis().ping() is True
    assert node.log_text().count("=== ") >= 2  # both runs appended to one log


def test_terminate_is_a_clean_shutdown(node_factory: NodeFactory) -> None:
    node = node_factory()
    assert node.terminate() == 0, node.log_tail()


def test_freeze_and_thaw(node_factory: NodeFactory) -> None:
    node = node_factory()
    node.freeze()
    assert node.frozen
    with pytest.raises(Exception):  # noqa: B017 - a timeout of some kind
        node.http.get("/health", timeout=0.5)
    node.thaw()
    wait_for(lambda: node.http.get("/health").status_code == 200, timeout=10)


def test_terminate_a_frozen_node(node_factory: NodeFactory) -> None:
    node = node_factory()
    node.freeze()
    assert node.terminate(timeout=10) == 0, node.log_tail()  # SIGTERM, then SIGCONT


def test_a_bad_flag_fails_fast_with_the_log(node_factory: NodeFactory) -> None:
    with pytest.raises(SynapProcessError, match="exited with code"):
        node_factory(args=["--no-such-flag"], ready_timeout=20)


def test_master_and_replica_start(node_factory: NodeFactory) -> None:
    master = node_factory.master()
    replica = node_factory.replica(master)
    assert master.stats()["role"] == "master"
    assert replica.stats()["role"] == "replica"


def test_replica_through_fault_proxy_catches_up_after_pause_and_cut(
    node_factory: NodeFactory,
) -> None:
    fast = {"replication": {"reconnect_delay_ms": 100, "heartbeat_interval_ms": 200}}
    master = node_factory.master(config=fast)
    proxy = node_factory.proxy(master)
    replica = node_factory.replica(proxy, config=fast)
    writer = master.redis()
    writer.set(b"a", b"1")
    wait_caught_up(master, [replica])
    assert replica.redis().get(b"a") == b"1"

    proxy.pause()
    writer.set(b"b", b"2")
    time.sleep(0.5)
    assert replica.redis().get(b"b") is None  # frozen link: nothing arrives
    proxy.resume()
    wait_caught_up(master, [replica])
    assert replica.redis().get(b"b") == b"2"

    proxy.cut()
    writer.set(b"c", b"3")
    wait_caught_up(master, [replica], timeout=20)
    assert replica.redis().get(b"c") == b"3"
    assert proxy.stats().connections_total >= 2  # the replica reconnected


def test_node_factory_kills_nodes_of_a_failing_test_and_reports_logs(
    pytester: pytest.Pytester,
) -> None:
    pid_file = pytester.path / "pid"
    pytester.makeconftest(
        "from tests.support.fixtures import node_factory, pytest_runtest_makereport  # noqa\n"
    )
    pytester.makepyfile(
        f"""
        def test_fails(node_factory):
            node = node_factory("doomed")
            open({str(pid_file)!r}, "w").write(str(node.pid))
            assert False, "boom"
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*synap nodes*", "*--- doomed (running, pid *"])
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
