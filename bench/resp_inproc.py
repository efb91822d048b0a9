"""In-process cost of pipelined GET / SET on a node, without sockets: where a master's
durable path (effect record, WAL, replication log) costs per command.

A real :class:`~synap.node.Node` (started: batching on, its listeners and timers) is
fed 16-command reads of ``SET key:<n> <100 B>`` (or ``GET``) on ``--conns`` connections
with a fake transport, ``--reads-per-iteration`` reads per event-loop iteration (a
loaded server reads ~24 per iteration under ``redis-benchmark -c 50 -P 16``), so the
end-of-iteration group commit runs as on a server. Setups: ``standalone``, ``master``
(replication log, no replica), ``master-wal`` (plus a data directory, fsync periodic).
It prints the process CPU time per command. Under ``--valgrind`` it runs itself twice
under ``valgrind --tool=cachegrind`` with 16k and 48k commands and prints the difference
in instructions per command: a count that does not move with the machine's load (the
figures in docs/BENCHMARKS.md, "Masters").

    .venv/bin/python bench/resp_inproc.py [--setups standalone,master,master-wal]
        [--op set|get] [--n 800000] [--valgrind]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import uvloop

from synap.api.resp import RespConnection
from synap.config import build_config
from synap.node import Node

SETUPS = ("standalone", "master", "master-wal")


class FakeTransport:
    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    abort = close


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


async def measure(setup: str, op: str, n: int, conns: int, per_iteration: int) -> float:
    """CPU seconds per command for ``n`` commands."""
    rng = random.Random(7)
    data_dir = tempfile.mkdtemp(prefix="synap-inproc-")
    raw: dict[str, Any] = {
        "server": {"port": 0, "resp_port": 0, "rpc_port": 0},
        "logging": {"level": "WARNING"},
    }
    if setup == "master-wal":
        raw["persistence"] = {"enabled": True, "data_dir": data_dir}
    if setup.startswith("master"):
        raw["replication"] = {
            "enabled": True,
            "role": "master",
            "replica_listen_address": f"127.0.0.1:{_free_port()}",
        }
    node = Node(build_config(raw))
    await node.start()
    try:
        connections = []
        for _ in range(conns):
            conn = RespConnection(node)
            conn.connection_made(FakeTransport())  # type: ignore[arg-type]
            connections.append(conn)
        value = b"x" * 100
        if op == "get":
            for k in range(100_000):
                node.commands.set(b"key:%012d" % k, value)
            node.flush_writes()
        reads = []
        for _ in range(2000):
            keys = [b"key:%012d" % rng.randrange(100_000) for _ in range(16)]
            if op == "get":
                reads.append(b"".join(_command(b"GET", k) for k in keys))
            else:
                reads.append(b"".join(_command(b"SET", k, value) for k in keys))
        total = n // 16
        started = time.process_time()
        i = 0
        while i < total:
            for _ in range(per_iteration):
                connections[i % conns].data_received(reads[i % len(reads)])
                i += 1
            await asyncio.sleep(0)
        elapsed = time.process_time() - started
    finally:
        node.snapshot_on_stop = False
        await node.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return elapsed / (total * 16)


def instructions(argv: list[str]) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
        + argv,
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count from valgrind: {out.stderr[-500:]}")
    return int(match.group(1).replace(",", ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setups", default=",".join(SETUPS))
    ap.add_argument("--op", choices=["set", "get"], default="set")
    ap.add_argument("--n", type=int, default=800_000)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--reads-per-iteration", type=int, default=24)
    ap.add_argument("--valgrind", action="store_true")
    ap.add_argument(
        "--as-server",
        action="store_true",
        help="install the allocator as synap-server does (kv_store defaults: 8-byte size "
        "classes, shared values; SYNAP_SIZE_CLASSES / SYNAP_SHARED_VALUES apply)",
    )
    args = ap.parse_args()
    if args.as_server:
        from synap import sizeclasses

        sizeclasses.start("fine", False, True)
        print(f"# size classes {sizeclasses.status().describe()}, shared values "
              f"{sizeclasses.sharing().describe_switch()}", file=sys.stderr)  # fmt: skip
    uvloop.install()
    for setup in args.setups.split(","):
        if setup not in SETUPS:
            sys.exit(f"unknown setup {setup!r}: use {', '.join(SETUPS)}")
        common = ["--op", args.op, "--conns", str(args.conns)]
        common += ["--reads-per-iteration", str(args.reads_per_iteration), "--setups", setup]
        common += ["--as-server"] if args.as_server else []
        if args.valgrind:
            me = [sys.executable, __file__, *common]
            small = instructions([*me, "--n", "16000"])
            large = instructions([*me, "--n", "48000"])
            print(
                f"{setup:12s} {args.op.upper()}: {(large - small) / 32000:,.0f} instructions/command"
            )
        else:
            per = asyncio.run(measure(setup, args.op, args.n, args.conns, args.reads_per_iteration))
            print(f"{setup:12s} {args.op.upper()}: {per * 1e6:.3f} µs CPU/command")


if __name__ == "__main__":
    main()
