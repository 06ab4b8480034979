"""The Grafana dashboard: structure, variables and every PromQL query it sends."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from . import REPO_ROOT, describe, require_tool, run_tool
from .dashboard_queries import dashboard_exprs, iter_panels, metric_names

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "driftwatch.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

#: The metrics the worker exports (stream/metrics/).
WORKER_METRICS = frozenset(
    {
        "driftwatch_events_consumed_total",
        "driftwatch_invalid_events_total",
        "driftwatch_observations_total",
        "driftwatch_ks_statistic",
        "driftwatch_p_value",
        "driftwatch_drift_active",
        "driftwatch_drift_score",
        "driftwatch_stream_ert",
        "driftwatch_drift_events_total",
        "driftwatch_window_fill_ratio",
        "driftwatch_rolling_accuracy",
        "driftwatch_processing_latency_seconds",
        "driftwatch_consumer_lag",
        "driftwatch_tracked_streams",
        "driftwatch_label_series_dropped_total",
        "driftwatch_label_keys_over_cap",
        "driftwatch_key_evictions_total",
        "driftwatch_checkpoints_total",
        "driftwatch_checkpoint_seconds",
        "driftwatch_checkpoint_bytes_total",
        "driftwatch_restored_keys_total",
        "driftwatch_events_skipped_total",
        "driftwatch_calibrations_pending",
        "driftwatch_build_info",
    }
)
HISTOGRAMS = frozenset({"driftwatch_processing_latency_seconds", "driftwatch_checkpoint_seconds"})
SCOPE = 'job=~"$job", instance=~"$instance"'
#: Per-(key, feature) time series panels: "All" keys x features is capped by $topk.
P_VALUE = "p-value (information, not the alarm rule)"
TOP_K_PANELS = (
    "Drift score",
    "Stream ERT",
    "KS statistic",
    P_VALUE,
    "Window fill",
    "Rolling accuracy",
)
#: Every series name a query may select: the metrics, histogram series, and `up`.
ALLOWED_SERIES = (
    (WORKER_METRICS - HISTOGRAMS)
    | {f"{h}{suffix}" for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
    | {"up"}
)


def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def panels() -> list[dict[str, Any]]:
    return [p for p in iter_panels(dashboard()) if p.get("type") != "row"]


def variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard()["templating"]["list"]}


def all_raw_exprs() -> list[str]:
    exprs = [t["expr"] for p in panels() for t in p["targets"]]
    exprs += [a["expr"] for a in dashboard()["annotations"]["list"] if a.get("expr")]
    return exprs


def base_metric(series: str) -> str:
    """The metric a series belongs to (histogram series map to their histogram)."""
    for suffix in ("_bucket", "_sum", "_count"):
        if series.removesuffix(suffix) in HISTOGRAMS:
            return series.removesuffix(suffix)
    return series


def panel_by_title(title: str) -> dict[str, Any]:
    matches = [p for p in panels() if p["title"] == title]
    assert len(matches) == 1, f"{len(matches)} panels titled {title!r}"
    return matches[0]


def test_dashboard_metadata() -> None:
    data = dashboard()
    assert data["schemaVersion"] >= 39
    assert data["uid"] == "driftwatch"
    assert data["title"]
    assert data.get("id") is None, "provisioned dashboards must not pin a database id"


def test_datasource_variable() -> None:
    datasource = variables()["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"


def test_job_and_instance_variables() -> None:
    job = variables()["job"]
    assert job["definition"] == "label_values(driftwatch_build_info, job)"
    instance = variables()["instance"]
    assert instance["definition"] == 'label_values(driftwatch_build_info{job=~"$job"}, instance)'
    for variable in (job, instance):
        assert variable["type"] == "query"
        assert variable["datasource"] == DATASOURCE
        assert variable["query"]["query"] == variable["definition"]
        assert variable["multi"] is True
        assert variable["includeAll"] is True
        assert variable["allValue"] == ".*"
    names = list(variables())
    assert names.index("job") < names.index("instance") < names.index("key")


def test_every_query_is_scoped_by_job_and_instance() -> None:
    for expr in all_raw_exprs():
        assert 'job="' not in expr, f"hard-coded job: {expr}"
        selectors = re.findall(r"\b(?:driftwatch_\w+|up)\b(?!\s*\()(\{[^{}]*\})?", expr)
        assert selectors, expr
        for matchers in selectors:
            assert matchers.startswith("{" + SCOPE), f"unscoped selector in {expr}"


def test_per_stream_panels_show_top_k() -> None:
    topk = variables()["topk"]
    assert topk["type"] == "custom"
    assert topk["current"]["value"] in topk["query"].split(",")
    for title in TOP_K_PANELS:
        for target in panel_by_title(title)["targets"]:
            assert re.match(r"(top|bottom)k\(\$topk, ", target["expr"]), (title, target["expr"])


def test_operations_panels() -> None:
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in panels()}
    assert "driftwatch_checkpoints_total" in exprs["Checkpoints"]
    assert "by (outcome)" in exprs["Checkpoints"]
    assert "driftwatch_key_evictions_total" in exprs["Evictions and restores"]
    assert "driftwatch_restored_keys_total" in exprs["Evictions and restores"]
    assert "driftwatch_calibrations_pending" in exprs["Calibration backlog"]
    # a gauge: it shows keys over the cap in a steady fleet (the counter stops rising)
    assert exprs["Keys over label cap"].startswith("sum(driftwatch_label_keys_over_cap{")


def test_key_and_feature_variables() -> None:
    key = variables()["key"]
    assert key["type"] == "query"
    assert key["datasource"] == DATASOURCE
    assert key["definition"] == f"label_values(driftwatch_ks_statistic{{{SCOPE}}}, key)"
    assert key["query"]["query"] == key["definition"]
    assert key["multi"] is True
    assert key["includeAll"] is True
    feature = variables()["feature"]
    assert feature["type"] == "query"
    assert feature["datasource"] == DATASOURCE
    assert feature["definition"].startswith("label_values(driftwatch_ks_statistic")
    assert feature["definition"].endswith(", feature)")
    assert feature["multi"] is True
    assert feature["includeAll"] is True


def test_uids_and_ids_unique() -> None:
    ids = Counter(p["id"] for p in iter_panels(dashboard()))
    assert not [i for i, n in ids.items() if n > 1], f"duplicate panel ids: {ids}"
    names = Counter(variables())
    assert len(names) == len(dashboard()["templating"]["list"]), "duplicate variable names"
    for panel in panels():
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), f"{panel['title']}: duplicate refIds"


def test_every_panel_queries_prometheus_through_the_variable() -> None:
    assert panels(), "no panels"
    for panel in panels():
        title = panel.get("title", panel["id"])
        assert panel.get("datasource") == DATASOURCE, title
        assert panel.get("targets"), f"{title}: no targets"
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"{title}: target without expr"
            assert target.get("datasource") == DATASOURCE, title


def test_exprs_only_use_exported_metrics() -> None:
    used: set[str] = set()
    for expr in all_raw_exprs():
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= ALLOWED_SERIES, f"unknown metric {sorted(names - ALLOWED_SERIES)}: {expr}"
        used |= names
    # ... and the dashboard shows every one of them.
    covered = {base_metric(name) for name in used}
    assert covered >= WORKER_METRICS, f"not on the dashboard: {sorted(WORKER_METRICS - covered)}"


def test_required_panels() -> None:
    for kind in ("stat", "table"):
        assert any(
            p["type"] == kind and "driftwatch_drift_active" in str(p["targets"]) for p in panels()
        ), f"no {kind} panel of active drifts"

    p_value = panel_by_title(P_VALUE)
    scale = p_value["fieldConfig"]["defaults"]["custom"]["scaleDistribution"]
    assert scale == {"type": "log", "log": 10}
    # the alarm rule is the drift score reaching 1: the panel marks that line
    score = panel_by_title("Drift score")
    assert score["targets"][0]["expr"].startswith("topk($topk, max by (key, feature) (")
    assert "driftwatch_drift_score{" in score["targets"][0]["expr"]
    steps = score["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 1]
    assert score["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"

    latency = panel_by_title("Processing latency")
    exprs = [t["expr"] for t in latency["targets"]]
    for quantile in ("0.5", "0.95", "0.99"):
        assert any(
            e.startswith(f"histogram_quantile({quantile},")
            and f"rate(driftwatch_processing_latency_seconds_bucket{{{SCOPE}}}[$__rate_interval])"
            in e
            for e in exprs
        ), quantile

    drift_events = panel_by_title("Drift events")
    assert "by (type) (increase(driftwatch_drift_events_total" in drift_events["targets"][0]["expr"]
    invalid = panel_by_title("Invalid events / s by reason")
    assert "by (reason)" in invalid["targets"][0]["expr"]

    accuracy = panel_by_title("Rolling accuracy")
    assert accuracy["type"] == "timeseries"
    assert f'driftwatch_rolling_accuracy{{{SCOPE}, key=~"$key"}}' in accuracy["targets"][0]["expr"]
    assert accuracy["fieldConfig"]["defaults"]["unit"] == "percentunit"


def test_dashboard_exprs_substitutes_every_variable() -> None:
    exprs = dashboard_exprs(DASHBOARD)
    assert len(exprs) == len(all_raw_exprs())
    for expr in exprs:
        assert "$" not in expr and "[[" not in expr, expr
    assert any("[1m]" in e for e in exprs)
    assert any('key=~".*"' in e for e in exprs)


def test_exprs_parse_with_promtool(tmp_path: Path) -> None:
    """promtool parses every query, substituted as Grafana would send it."""
    promtool = require_tool("promtool")
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}:expr", "expr": expr}
                    for i, expr in enumerate(dashboard_exprs(DASHBOARD))
                ],
            }
        ]
    }
    # JSON is valid YAML, so promtool reads this as a rule file.
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(json.dumps(rules, indent=2), encoding="utf-8")
    result = run_tool([promtool, "check", "rules", str(rule_file)])
    assert result.returncode == 0, describe(result)
