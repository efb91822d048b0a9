"""The build a server runs is the one it reports (``--version``, start-up banner), and a stale
compiled build refuses to start (synap/build.py)."""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import synap.api.resp
from synap import build
from tests.support.server import NodeFactory

ROOT = Path(__file__).resolve().parents[2]
EXT = importlib.machinery.EXTENSION_SUFFIXES[0]


def expected_build() -> str:
    """What the servers must report, counted from the files (not from synap.build)."""
    if os.environ.get("SYNAP_PURE_PYTHON", "") not in ("", "0"):
        return "pure Python (SYNAP_PURE_PYTHON=1)"
    extensions = list((ROOT / "synap").rglob(f"*{EXT}"))
    cython = sorted(
        p.name.removesuffix(EXT)
        for p in extensions
        if not p.with_name(p.name.removesuffix(EXT) + ".py").exists()
    )
    twins = sorted(
        p.name.removesuffix(EXT)
        for p in extensions
        if p.with_name(p.name.removesuffix(EXT) + ".c").exists()
        and p.with_name(p.name.removesuffix(EXT) + ".py").exists()
    )
    n = len(extensions) - len(cython) - len(twins)
    if not extensions:
        return "pure Python"
    return (
        f"compiled (mypyc, {n} modules"
        + (f"; C: {', '.join(twins)}" if twins else "")
        + (f"; Cython: {', '.join(cython)})" if cython else ")")
    )


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synap", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_this_process_runs_the_build_it_reports() -> None:
    compiled = synap.api.resp.__file__.endswith(EXT)
    assert compiled == expected_build().startswith("compiled")
    assert build.state().describe() == expected_build()


def test_version_and_banner_say_which_build_runs(node_factory: NodeFactory, tmp_path: Path) -> None:
    done = run(["--version"], tmp_path, dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"synap-server, version 0.3.0, {expected_build()}"
    node = node_factory()
    assert f"🧩 Build: {expected_build()}\n" in node.log_text()


def copy_package(tmp_path: Path) -> Path:
    """The installed package (sources, extensions, record) in <tmp>/tree, importable first."""
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "synap", tree / "synap", ignore=shutil.ignore_patterns("__pycache__"))
    for lib in ROOT.glob("synap__mypyc*"):
        shutil.copy2(lib, tree)
    return tree


def env_for(tree: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SYNAP_PURE_PYTHON"}
    env["PYTHONPATH"] = str(tree)
    env.update(extra)
    return env


SERVE = ["--port", "0", "--resp-port", "0", "--rpc-port", "0", "--host", "127.0.0.1"]


def test_an_unrecorded_extension_refuses_to_start(tmp_path: Path) -> None:
    """Runs on either build: a stray extension the build record does not know."""
    tree = copy_package(tmp_path)
    (tree / "synap" / "store" / f"leftover{EXT}").write_bytes(b"not a library")
    (tree / "synap" / "store" / "leftover.py").write_text("")
    done = run(SERVE, tree, env_for(tree))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "stale" in done.stderr and "synap/store/leftover.py" in done.stderr
    assert "run `make install`" in done.stderr


@pytest.mark.skipif(not expected_build().startswith("compiled"), reason="needs the compiled build")
def test_an_edited_compiled_source_refuses_to_start_until_rebuilt(tmp_path: Path) -> None:
    tree = copy_package(tmp_path)
    src = tree / "synap" / "store" / "keyspace.py"
    src.write_text(src.read_text() + "\n# edited after make install\n")
    done = run(SERVE, tree, env_for(tree))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "synap/store/keyspace.py changed" in done.stderr and "make install" in done.stderr
    version = run(["--version"], tree, env_for(tree))
    assert "STALE: synap.store.keyspace" in version.stdout
    # The sources themselves can still run: the pure override does not load the extensions.
    pure = run(["--version"], tree, env_for(tree, SYNAP_PURE_PYTHON="1"))
    assert pure.stdout.strip().endswith("pure Python (SYNAP_PURE_PYTHON=1)"), pure.stdout


@pytest.mark.skipif("; Cython: " not in expected_build(), reason="needs the Cython read loop built")
def test_an_edited_cython_source_refuses_to_start_and_pure_runs_without_it(
    tmp_path: Path,
) -> None:
    """The Cython module (a .pyx, no .py) is checked like the mypyc ones; under
    SYNAP_PURE_PYTHON=1 it is not imported at all and the RESP front end runs without it."""
    tree = copy_package(tmp_path)
    src = tree / "synap" / "api" / "resp_plain.pyx"
    src.write_text(src.read_text() + "\n# edited after make install\n")
    done = run(SERVE, tree, env_for(tree))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "synap/api/resp_plain.pyx changed" in done.stderr, done.stderr
    probe = "import synap.api.resp as r, sys; print(r._PLAIN_RUN, 'synap.api.resp_plain' in sys.modules)"
    pure = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tree,
        env=env_for(tree, SYNAP_PURE_PYTHON="1"),
        stdin=subprocess.DEVNULL,
    )
    assert pure.stdout.split() == ["None", "False"], pure.stdout + pure.stderr
