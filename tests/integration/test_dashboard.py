"""deploy/grafana/synap.json is what deploy/grafana/dashboard.py builds (with Grafana's
grafana-foundation-sdk); every PromQL expression of the dashboard and of
deploy/prometheus/alerts.yml parses under ``promtool check rules``, and every metric they
name is exported by a running group (a master and two replicas)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.prom import DASHBOARD, alert_rules, promtool
from tests.support.server import NodeFactory, wait_caught_up

METRIC = re.compile(r"\b((?:synap|process)_[a-z0-9_]+)\b")


def dashboard_exprs() -> list[str]:
    exprs: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(t["expr"] for t in panel.get("targets") or [] if t.get("expr"))
            walk(panel.get("panels") or [])

    walk(json.loads(DASHBOARD.read_text())["panels"])
    return exprs


def all_exprs() -> list[str]:
    return dashboard_exprs() + [str(r["expr"]) for r in alert_rules()]


def test_dashboard_is_generated_by_the_sdk_script() -> None:
    pytest.importorskip("grafana_foundation_sdk", reason="make install brings the SDK")
    script = DASHBOARD.with_name("dashboard.py")
    spec = importlib.util.spec_from_file_location("synap_dashboard", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() == DASHBOARD.read_text(), (
        "synap.json is stale: run .venv/bin/python deploy/grafana/dashboard.py"
    )
    titles = {p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]}
    for wanted in ("Role", "Offsets", "Lag per replica (records)", "Sync events (per 5 min)",
                   "Throughput per command", "Latency per command (p99)", "WAL fsync latency",
                   "Memory", "Clients"):  # fmt: skip
        assert wanted in titles


def test_every_expression_parses(tmp_path: Path) -> None:
    exprs = all_exprs()
    assert len(dashboard_exprs()) >= 20
    rules = {
        "groups": [
            {
                "name": "syntax",
                "rules": [
                    {"record": f"synap_check:expr{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "exprs.yml"
    path.write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_every_metric_named_is_exported(node_factory: NodeFactory) -> None:
    master = node_factory.master()
    replicas = [node_factory.replica(master), node_factory.replica(master)]
    master.redis().set("k", "v")
    wait_caught_up(master, replicas)
    exported: set[str] = set()
    for node in (master, *replicas):
        text = node.http.get("/metrics").text
        for family in text_string_to_metric_families(text):
            exported.update(s.name for s in family.samples)
    named = {m for e in all_exprs() for m in METRIC.findall(e)}
    assert len(named) > 25
    missing = named - exported
    assert not missing, f"named but not exported: {sorted(missing)}"
