"""Debian's ``prometheus`` package in tests: ``promtool`` and the ``prometheus`` server.

``.ci/run`` installs the package when ``promtool`` is missing; on a developer machine
without it, the tests that need it skip with the reason (``apt-get install prometheus``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "synap.json"
MISSING = "needs Debian's prometheus package (apt-get install prometheus); .ci/run installs it"


def tool(name: str) -> str:
    """Path of ``promtool`` / ``prometheus``, or skip the test saying what to install."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not found: {MISSING}")
    return path


def promtool(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args],
        input=None if stdin is None else stdin.decode(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def alert_rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]
