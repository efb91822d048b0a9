"""Debian's ``prometheus`` package in tests: ``promtool`` and the ``prometheus`` server.

``.ci/run`` installs the package when ``promtool`` is missing; on a developer machine
without it, the tests that need it skip with the reason (``apt-get install prometheus``).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .ports import release_port, reserve_port

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


class PrometheusServer:
    """Debian's ``prometheus`` on a reserved 127.0.0.1 port, scraping ``targets`` every
    second with the rules of deploy/prometheus/alerts.yml (``for:`` shortened to
    ``rule_for``). Its own process: killed by PID in ``stop()``."""

    def __init__(self, base_dir: Path, targets: list[str], rule_for: str = "2s") -> None:
        self.binary = tool("prometheus")
        self.base_dir = base_dir / "prometheus"
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.port = reserve_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.base_dir / "prometheus.log"
        rules = yaml.safe_load(ALERTS.read_text())
        for group in rules["groups"]:
            group["interval"] = "1s"
            for rule in group["rules"]:
                rule["for"] = rule_for
        (self.base_dir / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [
                {"job_name": "synap", "scrape_timeout": "900ms",
                 "static_configs": [{"targets": targets}]},
            ],
        }  # fmt: skip
        self.config_path = self.base_dir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.base_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.base_dir,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready in {timeout}s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._proc = None
        release_port(self.port)
