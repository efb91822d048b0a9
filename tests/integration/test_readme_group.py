"""README's "A three-node group by hand" block, pasted into a fresh shell: a bash with
no virtualenv on PATH, in a new directory holding only ``.venv``, runs it verbatim —
except that its fixed ports become free ones, so it cannot collide with anything else
on the machine. The group must come up and ``synap-cli replication status`` show it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import release_port, reserve_ports

ROOT = Path(__file__).resolve().parents[2]
README_PORTS = ["5500", "5501", "5502", "6379", "6380", "6381", "15501"]


def readme_block(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {heading}", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, f"no bash block under {heading!r}"
    return match.group(1)


@pytest.fixture
def ports() -> Iterator[list[int]]:
    reserved = reserve_ports(len(README_PORTS))
    yield reserved
    for port in reserved:
        release_port(port)


def _kill_listed(pid_file: Path) -> None:
    """Stop the servers the script started (their pids, as `jobs -p` listed them)."""
    if not pid_file.exists():
        return
    for line in pid_file.read_text().split():
        try:
            os.kill(int(line), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def test_the_three_node_example_works_pasted_into_a_fresh_shell(
    tmp_path: Path, ports: list[int]
) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").exists():
        pytest.skip("the tests do not run from a virtualenv")
    block = readme_block("A three-node group by hand")
    assert "source .venv/bin/activate" in block  # the README tells how to get the tools
    script = block
    for old, new in zip(README_PORTS, ports, strict=True):
        script = re.sub(rf"(?<!\d){old}(?!\d)", str(new), script)
    pid_file = tmp_path / "pids"
    script += f'\necho "status-exit=$?"\njobs -p > {pid_file}\nkill $(jobs -p)\nwait\n'
    (tmp_path / ".venv").symlink_to(venv)
    bin_dir = str(venv / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != bin_dir)
    env = {"PATH": path, "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
        pytest.fail(f"the README block did not finish in 90 s:\n{out}")
    finally:
        _kill_listed(pid_file)
    logs = "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')}"
        for log in sorted((tmp_path / "data").glob("*.log"))
    )
    assert "status-exit=0" in out, out + logs
    assert "command not found" not in out, out
    assert out.count("role=replica") == 2 and "role=master" in out, out + logs
    assert f'"master_address":"127.0.0.1:{ports[6]}"' in out.replace(" ", ""), out
    for name in ("master", "replica1", "replica2"):
        assert (tmp_path / "data" / name / "LOCK").exists(), logs
    assert "Master node initialized" in (tmp_path / "data" / "master.log").read_text()
