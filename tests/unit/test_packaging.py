"""Packaging: a LICENSE file matching pyproject's SPDX ``license = "MIT"`` (the form
setuptools >= 77 takes without a deprecation warning), and a Makefile whose ``make run``
installs only the runtime dependencies while ``make test`` adds the test tools."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_file_is_mit_for_synap_contributors() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "Copyright (c)" in text and "Synap contributors" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_pyproject_uses_the_spdx_license_form() -> None:
    data = pyproject()
    assert data["project"]["license"] == "MIT"  # a string, not the deprecated table
    assert data["project"]["license-files"] == ["LICENSE"]
    requires = data["build-system"]["requires"]
    setuptools = next(r for r in requires if r.startswith("setuptools"))
    minimum = int(setuptools.split(">=")[1].split(".")[0])
    assert minimum >= 77, setuptools  # first setuptools to accept the SPDX string
    assert not any("License ::" in c for c in data["project"].get("classifiers", []))


def _dry_run(target: str, tmp_path: Path) -> str:
    """``make -n TARGET`` in a copy of the Makefile without a .venv: what a fresh clone runs."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    done = subprocess.run(
        ["make", "-n", target], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_run_installs_only_the_runtime_dependencies(tmp_path: Path) -> None:
    out = _dry_run("run", tmp_path)
    installs = [line for line in out.splitlines() if "pip install" in line and "-e" in line]
    assert installs, out
    assert not any("[test]" in line for line in installs), out
    assert "python -m synap.demo" in out


def test_make_test_installs_the_test_tools(tmp_path: Path) -> None:
    out = _dry_run("test", tmp_path)
    # The extra's requirements (pyproject's [test]), without building the package twice.
    assert "['optional-dependencies']['test']" in out, out
    assert any(
        "pip install" in line and "test-requirements" in line for line in out.splitlines()
    ), out
    assert "pytest" in out and "ruff check" in out and "mypy" in out
