"""Resource limits: a replica that stops reading, thousands of idle clients, a flood of
new connections and ``server.max_clients`` never take the master down or make its memory
grow without bound.

The stalled-replica tests write far more through the replication stream than the limits
allow to be held (``replication.log_max_mb``, ``output_buffer_limit_mb``), overwriting a
small set of keys so that the dataset itself stays small: the master's peak RSS
(``VmHWM``) may grow by the dataset plus those limits plus interpreter slack, not by
what was written.  The replica is dropped, and catches up once it reads again.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from pathlib import Path

import redis

from tests.support.checks import digest
from tests.support.ports import HOST
from tests.support.server import NodeFactory, SynapProcess, wait_caught_up, wait_for

MB = 1024 * 1024
VALUE_BYTES = 256 * 1024
KEYS = 40  # dataset: 40 x 256 KiB = 10 MiB, overwritten again and again
LIMITS = {
    "heartbeat_interval_ms": 200,
    "reconnect_delay_ms": 300,
    "replica_timeout_secs": 3,
    "log_max_mb": 8,
    "output_buffer_limit_mb": 4,
}
# Everything the master may legitimately hold beyond its baseline while the replica is
# stalled: the dataset, the log, the output buffer and its high-water mark (4 MiB), one
# value in flight in each of a few copies (request, record, WAL buffer), and CPython's
# allocator not returning freed memory at once.
RSS_ALLOWANCE_MB = 110


def memory_kb(node: SynapProcess, field: str) -> int:
    for line in Path(f"/proc/{node.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{node.pid}/status")


def write_through(master: SynapProcess, total_mb: int) -> float:
    """Overwrite KEYS keys with VALUE_BYTES values until ``total_mb`` were written;
    return the seconds it took."""
    client = master.redis(socket_timeout=30)
    started = time.monotonic()
    count = total_mb * MB // VALUE_BYTES
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.set(f"big:{i % KEYS}", bytes([i % 251]) * VALUE_BYTES)
        if i % 8 == 7:
            pipe.execute()
    pipe.execute()
    return time.monotonic() - started


def check_bounded_while_stalled(
    master: SynapProcess, replica: SynapProcess, stall: object, unstall: object, total_mb: int
) -> None:
    client = master.redis()
    client.set("before", "stall")
    wait_caught_up(master, [replica])
    baseline_kb = memory_kb(master, "VmRSS")
    stall()  # type: ignore[operator]
    try:
        seconds = write_through(master, total_mb)
        peak_mb = (memory_kb(master, "VmHWM") - baseline_kb) / 1024
        print(
            f"\n[limits] wrote {total_mb} MB in {seconds:.1f}s to a master whose replica "
            f"stopped reading: peak RSS +{peak_mb:.0f} MB (allowance {RSS_ALLOWANCE_MB} MB)"
        )
        assert peak_mb < RSS_ALLOWANCE_MB, f"master RSS grew by {peak_mb:.0f} MB"
        log = master.log_text()
        wait_for(
            lambda: any(
                reason in master.log_text()
                for reason in (
                    "fell out of the replication log",
                    "exceeded the output buffer limit",
                    "stopped reading",
                    "link closed",
                )
            ),
            15,
            message=lambda: f"the stalled replica was never dropped: {log[-2000:]}",
        )
    finally:
        unstall()  # type: ignore[operator]
    client.set("after", "stall")
    wait_caught_up(master, [replica], timeout=60)
    assert digest(replica) == digest(master)
    assert replica.redis().get("after") == b"stall"


def test_replica_behind_a_paused_link_does_not_grow_master_memory(
    node_factory: NodeFactory,
) -> None:
    config = {"replication": LIMITS}
    master = node_factory.master(config=config)
    proxy = node_factory.proxy(master)
    replica = node_factory.replica(proxy, config=config)
    check_bounded_while_stalled(master, replica, proxy.pause, proxy.resume, total_mb=200)


def test_frozen_replica_does_not_grow_master_memory(node_factory: NodeFactory) -> None:
    config = {"replication": LIMITS}
    master = node_factory.master(config=config)
    replica = node_factory.replica(master, config=config)
    check_bounded_while_stalled(master, replica, replica.freeze, replica.thaw, total_mb=120)


# ------------------------------------------------------------------ clients


def open_idle(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection((HOST, port), timeout=10)
        socks.append(sock)
    return socks


def ping_ms(node: SynapProcess) -> float:
    started = time.monotonic()
    client = node.redis(socket_timeout=5)
    assert client.ping() is True
    client.close()
    return (time.monotonic() - started) * 1000


def fd_limit() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_thousands_of_idle_clients_do_not_stop_the_node_serving(
    node_factory: NodeFactory,
) -> None:
    # 2000 each of RESP and HTTP, if the file descriptor limit allows (the node needs
    # one per connection as well; keep a margin for everything else).
    count = min(2000, (fd_limit() - 200) // 2)
    assert count >= 500, f"ulimit -n is {fd_limit()}: too low for this test"
    node = node_factory()
    idle = open_idle(node.resp_port, count) + open_idle(node.port, count // 4)
    try:
        wait_for(
            lambda: node.redis().info("clients")["connected_clients"] >= count,
            30,
            message="the idle connections were not all accepted",
        )
        latency = ping_ms(node)
        client = node.redis()
        assert client.set("k", "v") is True and client.get("k") == b"v"
        assert node.http.get("/health").status_code == 200
        print(f"\n[limits] {count} idle RESP + {count // 4} idle HTTP: new PING {latency:.1f} ms")
        assert latency < 2000
    finally:
        for sock in idle:
            sock.close()
    wait_for(lambda: node.redis().info("clients")["connected_clients"] <= 3, 30)


def test_a_flood_of_new_connections_does_not_stop_the_node_serving_others(
    node_factory: NodeFactory,
) -> None:
    node = node_factory()
    probe = node.redis(socket_timeout=10)
    stop = threading.Event()
    opened = [0]
    errors: list[str] = []

    def flood(style: int) -> None:
        while not stop.is_set():
            try:
                sock = socket.create_connection((HOST, node.resp_port), timeout=5)
                if style == 1:
                    sock.sendall(b"PING\r\n")  # and leave without reading
                elif style == 2:  # reset instead of a clean close
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                elif style == 3:
                    sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$100\r\nhalf")  # unfinished
                sock.close()
                opened[0] += 1
            except OSError as exc:  # the backlog may overflow: that is the flood's problem
                errors.append(repr(exc))
                time.sleep(0.01)

    threads = [threading.Thread(target=flood, args=(i % 4,), daemon=True) for i in range(4)]
    for thread in threads:
        thread.start()
    latencies = []
    deadline = time.monotonic() + 6
    i = 0
    try:
        while time.monotonic() < deadline:
            i += 1
            started = time.monotonic()
            assert probe.set(f"probe:{i}", i) is True
            assert probe.get(f"probe:{i}") == str(i).encode()
            latencies.append((time.monotonic() - started) * 1000)
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)]
    print(
        f"\n[limits] connection flood: {opened[0]} connections opened and dropped in 6 s "
        f"({len(errors)} refused); probe SET+GET x{len(latencies)}: median "
        f"{statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms"
    )
    assert opened[0] > 500, "the flood never got going"
    assert latencies[-1] < 3000, "a client waited seconds during the flood"
    # Nothing leaks: every flood connection is gone once it is closed.
    wait_for(lambda: node.redis().info("clients")["connected_clients"] <= 3, 30)
    assert "Traceback" not in node.log_text()


def test_max_clients_is_enforced_with_the_redis_error(node_factory: NodeFactory) -> None:
    limit = 20
    node = node_factory(config={"server": {"max_clients": limit}})
    clients = [node.redis(single_connection_client=True) for _ in range(limit)]
    for client in clients:
        assert client.ping() is True
    with socket.create_connection((HOST, node.resp_port), timeout=5) as sock:
        sock.settimeout(5)
        reply = sock.recv(1024)
        assert reply == b"-ERR max number of clients reached\r\n"
        assert sock.recv(1024) == b""  # and closed
    try:
        node.redis(single_connection_client=True).ping()  # connects at once
    except redis.ConnectionError as exc:
        assert "max number of clients reached" in str(exc)
    else:
        raise AssertionError("client number limit + 1 was accepted")
    # The refused connections did not take a slot; a freed slot can be used again.
    clients.pop().close()
    wait_for(lambda: node.redis(single_connection_client=True).ping(), 10)
    assert node.http.get("/health").status_code == 200
    for client in clients:
        assert client.ping() is True
