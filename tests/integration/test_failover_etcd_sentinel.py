"""redis-py's Sentinel client finds, and follows, the master elected through etcd: every
node answers the SENTINEL commands on its RESP port (synap/api/sentinel.py)."""

from __future__ import annotations

import signal

import redis
from redis.sentinel import MasterNotFoundError, Sentinel

from tests.integration.etcd_support import GROUP, TTL, start_group, wait_single_master
from tests.support.etcd import EtcdProcess
from tests.support.ports import HOST
from tests.support.server import NodeFactory, wait_for


def test_redis_py_sentinel_client_follows_a_failover(
    node_factory: NodeFactory, etcd_server: EtcdProcess
) -> None:
    nodes, master = start_group(node_factory, etcd_server)
    sentinel = Sentinel([(HOST, n.resp_port) for n in nodes], socket_timeout=2.0)
    assert sentinel.discover_master(GROUP) == (HOST, master.resp_port)
    replicas = {(HOST, n.resp_port) for n in nodes if n is not master}
    wait_for(lambda: set(sentinel.discover_slaves(GROUP)) == replicas, 5.0)

    state = nodes[0].redis().sentinel_master(GROUP)
    assert state["is_master"] and not state["is_sdown"] and not state["is_odown"]
    assert state["num-other-sentinels"] == 2
    assert nodes[1].redis().sentinel_get_master_addr_by_name(GROUP) == (
        HOST.encode(),
        master.resp_port,
    )
    try:
        nodes[0].redis().sentinel_master("nope")
        raise AssertionError("unknown master name accepted")
    except redis.ResponseError as exc:
        assert "No such master" in str(exc)

    writer = sentinel.master_for(GROUP, socket_timeout=2.0)
    reader = sentinel.slave_for(GROUP, socket_timeout=2.0)
    assert writer.set("k", "1")
    wait_for(lambda: reader.get("k") == b"1", 10.0)

    master.kill(signal.SIGKILL)
    survivors = [n for n in nodes if n is not master]

    def write_again() -> bool:
        try:
            return bool(writer.set("k", "2"))
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
            return False
        except MasterNotFoundError:
            return False

    wait_for(write_again, TTL + 8, interval=0.2, message="Sentinel client never wrote again")
    new = wait_single_master(survivors)
    assert sentinel.discover_master(GROUP) == (HOST, new.resp_port)
    assert new.redis().get("k") == b"2"
    other = next(n for n in survivors if n is not new)
    wait_for(lambda: other.redis().get("k") == b"2", 10.0)


def test_sentinel_command_in_manual_mode_explains_itself(node_factory: NodeFactory) -> None:
    node = node_factory.master()
    try:
        node.redis().execute_command("SENTINEL", "MASTERS")
        raise AssertionError("SENTINEL answered in manual mode")
    except redis.ResponseError as exc:
        assert "replication.failover.mode: etcd" in str(exc)
