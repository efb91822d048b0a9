"""deploy/prometheus/alerts.yml: valid for ``promtool check rules``, and every alert
passes its ``promtool test rules`` unit tests (deploy/prometheus/alerts_test.yml), each
alert with at least one case where it fires."""

from __future__ import annotations

import yaml

from tests.support.prom import ALERTS, ALERTS_TEST, alert_rules, promtool

SPEC_ALERTS = {
    "SynapReplicationHighLag": "> 10000",
    "SynapReplicaDisconnected": "synap_replication_connected == 0",
    "SynapFrequentFullSyncs": "synap_replication_sync_full_total",
    "SynapMasterOffsetStuck": "changes(synap_replication_offset",
    "SynapReplicationLagAboveMax": "synap_replication_max_lag_seconds",
    "SynapNoMaster": "synap_replication_is_master",
    "SynapReplicaLinkFlapping": "syncs_performed_total",
}


def test_rules_file_is_valid() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_passes_its_promtool_unit_tests() -> None:
    result = promtool("test", "rules", ALERTS_TEST.name, cwd=ALERTS_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_spec_alerts_are_there_and_each_is_tested_firing() -> None:
    rules = {str(r["alert"]): str(r["expr"]) for r in alert_rules()}
    for name, needle in SPEC_ALERTS.items():
        assert name in rules and needle in rules[name], name
    fired: set[str] = set()
    for case in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            if check["exp_alerts"]:
                fired.add(check["alertname"])
    assert fired == set(rules), f"alerts without a firing test: {set(rules) - fired}"
