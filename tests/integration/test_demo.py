"""``make run``'s demo (synap/demo.py, issue 8 items 4 and 12): killing the master leaves
the replicas up so ``synap-cli promote`` can be practised, SIGTERM / Ctrl-C stop every
node (no orphan holds a port), and a second demo that cannot start says so and exits
non-zero. The demo runs on shifted ports (``SYNAP_DEMO_PORT_OFFSET``) so tests do not
collide with a demo someone runs on the default ones."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import HOST
from tests.support.server import wait_for

SYNAP_CLI = shutil.which("synap-cli", path=str(Path(sys.executable).parent)) or "synap-cli"
BASE_PORTS = (5500, 5501, 5502, 6379, 6380, 6381, 15501, 15502, 15503)
UP = "Demo group is up"


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _pick_offset() -> int:
    rng = random.Random()
    for _ in range(50):
        # Every port between the defaults and the harness's pool (tests/support/ports.py,
        # 20000-32000), so demos collide neither with other tests nor with a real demo.
        offset = rng.randrange(1_000, 4_400)
        if all(_free(p + offset) for p in BASE_PORTS):
            return offset
    raise AssertionError("no free set of demo ports")


class Demo:
    def __init__(self, base: Path, offset: int, name: str = "demo") -> None:
        self.base = base
        self.offset = offset
        self.out = base / f"{name}.out"
        env = {
            **os.environ,
            "SYNAP_DEMO_DIR": str(base / "demo-data"),
            "SYNAP_DEMO_PORT_OFFSET": str(offset),
            "PYTHONUNBUFFERED": "1",
        }
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "synap.demo"],
                cwd=base,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.pids: dict[str, int] = {}

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_up(self) -> None:
        wait_for(lambda: UP in self.text() or self.proc.poll() is not None, 60, 0.1)
        assert UP in self.text(), self.text()
        for name in ("master", "replica1", "replica2"):
            self.pids[name] = int((self.base / "demo-data" / f"{name}.pid").read_text())

    def url(self, base_port: int) -> str:
        return f"localhost:{base_port + self.offset}"

    def ports(self) -> list[int]:
        return [p + self.offset for p in BASE_PORTS]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def demos(tmp_path: Path) -> Iterator[list[Demo]]:
    started: list[Demo] = []
    yield started
    for demo in started:  # kill only what these tests started, by PID
        if demo.proc.poll() is None:
            demo.proc.kill()
            demo.proc.wait(10)
        for pid in demo.pids.values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNAP_CLI, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_demo_survives_the_master_and_sigterm_stops_every_node(
    tmp_path: Path, demos: list[Demo]
) -> None:
    demo = Demo(tmp_path, _pick_offset())
    demos.append(demo)
    demo.wait_up()
    assert "kill $(cat" in demo.text() and "synap-cli promote" in demo.text()

    # The README's practice run: switch to replica1 and back, with its URL spellings...
    there = _cli(
        "failover", "--node", f"http://{demo.url(5500)}", "--to", f"http://{demo.url(5501)}"
    )
    assert there.returncode == 0, there.stdout + there.stderr
    back = _cli(
        "failover", "--node", f"http://{demo.url(5501)}", "--to", f"http://{demo.url(5500)}"
    )
    assert back.returncode == 0, back.stdout + back.stderr
    assert "switchover complete" in back.stdout, back.stdout
    # ...then kill the master and promote.
    os.kill(demo.pids["master"], signal.SIGKILL)
    wait_for(lambda: "master" in demo.text() and "exited" in demo.text(), 10, 0.1)
    time.sleep(1.0)
    assert demo.proc.poll() is None, demo.text()  # the demo keeps the replicas running
    nodes = [arg for port in (5500, 5501, 5502) for arg in ("--node", demo.url(port))]
    result = _cli("promote", *nodes)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified" in result.stdout, result.stdout

    demo.proc.send_signal(signal.SIGTERM)
    assert demo.proc.wait(20) == 0, demo.text()
    for name, pid in demo.pids.items():
        assert not _alive(pid), f"{name} (pid {pid}) outlived the demo"
    busy = [p for p in demo.ports() if not _free(p)]
    assert not busy, f"ports still in use after the demo stopped: {busy}"


def test_second_demo_fails_cleanly_and_ctrl_c_stops_the_first(
    tmp_path: Path, demos: list[Demo]
) -> None:
    offset = _pick_offset()
    first = Demo(tmp_path, offset, "first")
    demos.append(first)
    first.wait_up()

    second_dir = tmp_path / "second"
    second_dir.mkdir()
    second = Demo(second_dir, offset, "second")
    demos.append(second)
    code = second.proc.wait(30)
    out = second.text()
    assert code != 0, out
    assert UP not in out, out
    assert "in use" in out, out
    # The first demo is untouched.
    assert first.proc.poll() is None
    result = _cli("replication", "status", "--node", first.url(5500))
    assert result.returncode == 0 and "role=master" in result.stdout, result.stdout

    first.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert first.proc.wait(20) == 0, first.text()
    for name, pid in first.pids.items():
        assert not _alive(pid), f"{name} (pid {pid}) outlived the demo"
    busy = [p for p in first.ports() if not _free(p)]
    assert not busy, f"ports still in use after the demo stopped: {busy}"
