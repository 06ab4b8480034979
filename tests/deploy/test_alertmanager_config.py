"""The Alertmanager configuration, checked with amtool: validity, routing and inhibition."""

from __future__ import annotations

from typing import Any

import pytest

from . import REPO_ROOT, describe, load_yaml, require_tool, run_tool

CONFIG = REPO_ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RULES = REPO_ROOT / "deploy" / "prometheus" / "rules" / "driftwatch-alerts.yml"


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r]


def routed_to(amtool: str, *labels: str) -> str:
    """The receiver ``amtool config routes test`` picks for an alert with ``labels``."""
    result = run_tool(
        [amtool, "config", "routes", "test", f"--config.file={CONFIG}", *labels], timeout=30
    )
    assert result.returncode == 0, describe(result)
    return result.stdout.strip()


def test_amtool_check_config() -> None:
    amtool = require_tool("amtool")
    result = run_tool([amtool, "check-config", str(CONFIG)], timeout=30)
    assert result.returncode == 0, describe(result)
    assert "SUCCESS" in result.stdout, describe(result)


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_routes_to_the_receiver_of_its_severity(rule: dict[str, Any]) -> None:
    amtool = require_tool("amtool")
    severity = rule["labels"]["severity"]
    labels = [f"alertname={rule['alert']}", f"severity={severity}", "key=agent-1"]
    assert routed_to(amtool, *labels) == severity


def test_an_alert_without_severity_still_reaches_someone() -> None:
    amtool = require_tool("amtool")
    assert routed_to(amtool, "alertname=Unlabelled") == "ticket"


def test_grouping_and_inhibition() -> None:
    config = load_yaml(CONFIG)
    assert config["route"]["group_by"] == ["alertname", "key"]
    for route in config["route"]["routes"]:
        assert "group_by" not in route, "sub-routes inherit the grouping by key"
    (rule,) = config["inhibit_rules"]
    assert rule["source_matchers"] == ['alertname="DriftwatchWorkerDown"']
    assert set(rule["target_matchers"]) == {
        'alertname=~"Driftwatch.+"',
        'alertname!="DriftwatchWorkerDown"',
    }
    for receiver in config["receivers"]:
        for webhook in receiver["webhook_configs"]:
            assert webhook["send_resolved"] is True
