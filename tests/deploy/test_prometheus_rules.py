"""Prometheus configuration, alerting rules and their unit tests, checked with promtool."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from stream.cli import build_parser

from . import REPO_ROOT, describe, load_yaml, require_tool, run_tool

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
ALERTS = RULES_DIR / "driftwatch-alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "tests" / "driftwatch-alerts.test.yml"

RUNBOOKS = REPO_ROOT / "docs" / "runbooks"

SEVERITIES = {"page", "ticket"}
REQUIRED_ALERTS = {
    "DriftwatchDriftActive",
    "DriftwatchWorkerDown",
    "DriftwatchConsumerLagHigh",
    "DriftwatchInvalidEventsFrequent",
    "DriftwatchNoTelemetry",
    "DriftwatchLabelSeriesDropped",
    "DriftwatchCheckpointFailing",
    "DriftwatchRebalancing",
    "DriftwatchKeysEvicted",
    "DriftwatchCalibrationBacklog",
}
#: What the expression of each alert must read: the metrics the worker exports.
ALERT_METRICS = {
    "DriftwatchLabelSeriesDropped": "driftwatch_label_keys_over_cap",
    "DriftwatchCheckpointFailing": 'driftwatch_checkpoints_total{outcome="failed"}',
    "DriftwatchRebalancing": "driftwatch_restored_keys_total",
    "DriftwatchKeysEvicted": "driftwatch_key_evictions_total",
    "DriftwatchCalibrationBacklog": "driftwatch_calibrations_pending",
}
RUNBOOK_URL_PREFIX = "{{ with $externalLabels.runbook_base }}{{ . }}/{{ end }}docs/runbooks/"


def rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def rule_files() -> list[Path]:
    files = sorted(RULES_DIR.glob("*.yml"))
    assert files, f"no rule files in {rel(RULES_DIR)}"
    return files


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in rule_files()
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_promtool_check_config() -> None:
    promtool = require_tool("promtool")
    # promtool resolves rule_files relative to the configuration file, like Prometheus.
    result = run_tool([promtool, "check", "config", rel(CONFIG)])
    assert result.returncode == 0, describe(result)
    output = result.stdout + result.stderr
    for path in rule_files():
        assert path.name in output, f"{path.name} not loaded by the config\n{describe(result)}"


def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool")
    result = run_tool([promtool, "check", "rules", *map(rel, rule_files())])
    assert result.returncode == 0, describe(result)
    assert "FAILED" not in result.stdout + result.stderr, describe(result)


def test_promtool_test_rules() -> None:
    promtool = require_tool("promtool")
    result = run_tool([promtool, "test", "rules", rel(ALERT_TESTS)])
    assert result.returncode == 0, describe(result)
    assert "SUCCESS" in result.stdout + result.stderr, describe(result)


def test_scrape_config() -> None:
    config = load_yaml(CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["driftwatch"]
    assert job.get("scrape_interval", config["global"]["scrape_interval"]) == "15s"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["worker:9464"]
    assert config["rule_files"], "no rule_files"


def test_required_alerts_defined() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert names >= REQUIRED_ALERTS, f"missing alerts: {sorted(REQUIRED_ALERTS - names)}"


def test_alerts_are_runbook_ready() -> None:
    for rule in alert_rules():
        name = rule["alert"]
        assert rule.get("for"), f"{name}: no `for:`"
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: bad severity"
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert annotations.get(key, "").strip(), f"{name}: no {key} annotation"
        assert "runbook" not in annotations, f"{name}: prose runbooks live in {rel(RUNBOOKS)}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_runbook_url_points_at_a_runbook_with_commands(rule: dict[str, Any]) -> None:
    url = rule["annotations"]["runbook_url"].strip()
    assert url.startswith(RUNBOOK_URL_PREFIX), url
    runbook = RUNBOOKS / url.removeprefix(RUNBOOK_URL_PREFIX)
    assert runbook.is_file(), f"{rule['alert']}: {rel(runbook)} does not exist"
    text = runbook.read_text(encoding="utf-8")
    assert f"# {rule['alert']}" in text, f"{rel(runbook)} does not name {rule['alert']}"
    assert "```bash" in text, f"{rel(runbook)} gives no command to run"


def test_drift_runbook_names_the_real_rebaseline_command() -> None:
    text = (RUNBOOKS / "drift-active.md").read_text(encoding="utf-8")
    assert "driftwatch rebaseline --bootstrap-servers" in text
    assert "--key" in text and "--feature" in text and "--source window" in text
    (drift,) = [r for r in alert_rules() if r["alert"] == "DriftwatchDriftActive"]
    assert drift["annotations"]["rebaseline"].split() == [
        "driftwatch",
        "rebaseline",
        "--key",
        "{{",
        "$labels.key",
        "}}",
        "--feature",
        "{{",
        "$labels.feature",
        "}}",
        "--source",
        "window",
    ]


def test_alerts_read_the_exported_metrics() -> None:
    exprs = {rule["alert"]: " ".join(rule["expr"].split()) for rule in alert_rules()}
    for name, metric in ALERT_METRICS.items():
        assert metric in exprs[name], (name, exprs[name])
    # a gauge, not rate() of a counter that stops rising in a steady fleet above the cap
    assert "rate(" not in exprs["DriftwatchLabelSeriesDropped"]


def test_worker_down_covers_missing_target() -> None:
    exprs = [rule["expr"] for rule in alert_rules() if rule["alert"] == "DriftwatchWorkerDown"]
    assert any('up{job=~".*driftwatch.*"} == 0' in expr for expr in exprs), exprs
    assert any('absent(up{job=~".*driftwatch.*"})' in expr for expr in exprs), exprs
    for rule in alert_rules():
        assert 'job="driftwatch"' not in rule["expr"], f"{rule['alert']}: job name hard-coded"


def test_every_alert_has_firing_and_silent_unit_tests() -> None:
    test_file_text = ALERT_TESTS.read_text(encoding="utf-8")
    suite = load_yaml(ALERT_TESTS)
    # The unit tests load the very rule files Prometheus loads.
    loaded = {(ALERT_TESTS.parent / f).resolve() for f in suite["rule_files"]}
    assert loaded == {p.resolve() for p in rule_files()}

    firing: set[str] = set()
    silent: set[str] = set()
    for case in suite["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])

    for name in sorted({rule["alert"] for rule in alert_rules()}):
        assert name in test_file_text, f"{name} does not appear in {rel(ALERT_TESTS)}"
        assert name in firing, f"no unit test where {name} fires"
        assert name in silent, f"no unit test where {name} stays silent"


def runbook_commands() -> list[tuple[str, str]]:
    """Every ``driftwatch ...`` command in the runbooks' bash blocks: (file name, command)."""
    commands = []
    for path in sorted(RUNBOOKS.glob("*.md")):
        blocks = re.findall(r"```bash\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
        for block in blocks:
            for line in block.replace("\\\n", " ").splitlines():
                match = re.search(r"(?:^|\s--\s)\s*(driftwatch\s[^|]*)", line)
                if match:
                    commands.append((path.name, match.group(1).strip()))
    return commands


def test_runbooks_give_driftwatch_commands() -> None:
    names = {name for name, _ in runbook_commands()}
    assert {"drift-active.md", "label-series-dropped.md"} <= names


@pytest.mark.parametrize(("runbook", "command"), runbook_commands())
def test_runbook_driftwatch_commands_parse(runbook: str, command: str) -> None:
    """The commands an on-call engineer copies are valid for the real command line."""
    try:
        build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit as exc:
        pytest.fail(f"{runbook}: `{command}` does not parse (exit {exc.code})")
