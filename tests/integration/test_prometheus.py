"""A real Prometheus scraping a real worker: every dashboard query and alert rule has data.

Prometheus (the ``prometheus`` binary, as installed by ``scripts/install-system-deps.sh``)
scrapes the worker every second and loads the repository's alert rules. The worker consumes
simulated telemetry with an injected drift and malformed messages from the test broker, in two
phases so that counters visibly increase between scrapes. Then every PromQL expression of the
Grafana dashboard is evaluated through the HTTP API and must parse and return data, and the
alert rules must be loaded and evaluated without error.

Without ``prometheus`` on PATH the test is skipped, or fails when ``CI=true``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from itertools import chain
from pathlib import Path
from typing import Any

from stream.tools.simulation import DriftSpec, TelemetrySimulator
from tests.deploy import load_yaml, require_tool
from tests.deploy.dashboard_queries import dashboard_exprs
from tests.support import pipeline
from tests.support.broker import KafkaBroker, TopicFactory
from tests.support.pipeline import START_MS, telemetry_records
from tests.support.services import Prometheus, run_prometheus
from tests.support.worker import REPO, run_worker

DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "driftwatch.json"
RULES_GLOB = REPO / "deploy" / "prometheus" / "rules" / "*.yml"
AGENTS = 4
PHASE_ONE = 6_000  # enough for every agent to fill its reference and first window
PHASE_TWO = 8_000  # the drift of agent-2 starts at event 8000, i.e. in this phase
DRIFT_PAIR = {"key": "agent-2", "feature": "response_latency_ms"}
MALFORMED = {
    "invalid_json": b"{this is not json",
    "not_an_object": b"[1, 2, 3]",
    "bad_key": (
        b'{"agent_id": 1.5, "response_latency_ms": 10, "token_count": 3, "retry_count": 0,'
        b' "error_rate": 0.1}'
    ),
    "non_numeric": (
        b'{"agent_id": "agent-1", "response_latency_ms": "fast", "token_count": 3,'
        b' "retry_count": 0, "error_rate": 0.1}'
    ),
}
# At least this many scrapes of a series before range queries are evaluated, so that every
# rate()/increase() over [1m] has two or more samples to work with.
MIN_SAMPLES = 3


def config(metrics_port: int) -> dict[str, Any]:
    """A Prometheus configuration (JSON is valid YAML) scraping the worker every second."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES_GLOB)],
        "scrape_configs": [
            {
                "job_name": "driftwatch",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
            }
        ],
    }


def produce(bootstrap: str, topic: str, sim: TelemetrySimulator, count: int, first: int) -> int:
    """``count`` simulated events plus one malformed message per reason; messages sent."""
    events = sim.events(count, start_ms=START_MS + first * 10, step_ms=10)
    malformed = ((b"agent-3", raw) for raw in MALFORMED.values())
    return pipeline.produce(
        topic, chain(telemetry_records(events), malformed), bootstrap_servers=bootstrap
    )


def selector(metric: str, labels: dict[str, str], op: str = "=") -> str:
    """``metric{name<op>"value", ...}``."""
    matchers = ", ".join(f"{name}{op}{json.dumps(value)}" for name, value in labels.items())
    return f"{metric}{{{matchers}}}"


def scalar(prometheus: Prometheus, expr: str) -> float | None:
    samples = prometheus.vector(expr)
    return float(samples[0]["value"][1]) if len(samples) == 1 else None


def alert_names() -> list[str]:
    """Names of the alerts defined in the repository's rule files."""
    return sorted(
        rule["alert"]
        for path in sorted(RULES_GLOB.parent.glob(RULES_GLOB.name))
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    )


def query_problems(expr: str, answer: dict[str, Any]) -> list[str]:
    """What is wrong with the answer to a dashboard query, given the data produced."""
    if answer.get("status") != "success":
        return ["query failed"]
    result = answer["data"]["result"]
    if not result and "driftwatch_stream_ert" in expr:
        return []  # the worker here runs the alpha rule: no stream has an ERT to show
    if not result:
        return ["no data"]
    values = [float(s["value"][1]) for s in result]
    labels = [s["metric"] for s in result]
    problems = []
    if "up{" in expr and values != [1.0]:
        problems.append("expected exactly one worker up")
    if "and on (key, feature)" in expr and DRIFT_PAIR not in labels:
        problems.append(f"the drifting stream {DRIFT_PAIR} is missing")
    if "by (reason)" in expr and not {m.get("reason") for m in labels} >= set(MALFORMED):
        problems.append(f"expected every reason of {sorted(MALFORMED)}")
    # Every counter increased while Prometheus was scraping, so rates are positive. increase()
    # panels only need data: drift_events_total series start at their first event (so their
    # increase may be 0) and label_series_dropped_total stays 0 with four agents.
    if "rate(" in expr and not all(math.isfinite(v) and v > 0 for v in values):
        problems.append("expected positive rates / quantiles")
    return problems


def describe_answer(answer: dict[str, Any]) -> str:
    if answer.get("status") != "success":
        return f"{answer.get('errorType')}: {answer.get('error')}"
    return json.dumps(answer["data"]["result"])[:300]


def test_dashboard_queries_and_alert_rules_on_real_prometheus(
    kafka_broker: KafkaBroker, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    binary = require_tool("prometheus")
    exprs = dashboard_exprs(DASHBOARD)
    assert exprs, f"no PromQL expressions in {DASHBOARD}"

    telemetry = topic_factory("prom-telemetry", partitions=4)
    settings = {
        "telemetry_topic": telemetry,
        "drift_topic": topic_factory("prom-drift", partitions=2),
        "dead_letter_topic": topic_factory("prom-dlq", partitions=1),
        "app_id": f"driftwatch-{telemetry}",
        "window_size": 300,
        "reference_size": 600,
        "alpha": "1e-7",
        "batch_size": 250,
    }
    drift = DriftSpec("agent-2", "response_latency_ms", "shift", 0.6, start_event=8000)
    sim = TelemetrySimulator(AGENTS, seed=5, drift=drift)
    bootstrap = kafka_broker.bootstrap

    with (
        run_worker(bootstrap, tmp_path, **settings) as worker,
        run_prometheus(
            binary,
            tmp_path / "prometheus",
            config(worker.metrics_port),
            f"prometheus-{tmp_path.name}.log",
        ) as prometheus,
    ):

        def wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
            prometheus.wait(condition, timeout, what, worker)

        def consumed_in_prometheus(expected: int) -> bool:
            return scalar(prometheus, "sum(driftwatch_events_consumed_total)") == expected

        wait(lambda: scalar(prometheus, 'up{job="driftwatch"}') == 1.0, 20, "a first scrape")

        # Phase one: references and first windows fill, every rejection reason appears once.
        sent = produce(bootstrap, telemetry, sim, PHASE_ONE, 0)
        wait(lambda: consumed_in_prometheus(sent), 60, f"{sent} consumed messages scraped")
        reasons = "count({})".format(
            selector("driftwatch_invalid_events_total", {"reason": "|".join(MALFORMED)}, "=~")
        )
        wait(lambda: scalar(prometheus, reasons) == len(MALFORMED), 10, "all reasons scraped")

        # Phase two: the drift, and every counter (reasons included) increases once more.
        sent += produce(bootstrap, telemetry, sim, PHASE_TWO, PHASE_ONE)
        wait(lambda: consumed_in_prometheus(sent), 60, f"{sent} consumed messages scraped")
        active = selector("driftwatch_drift_active", DRIFT_PAIR)
        wait(lambda: scalar(prometheus, active) == 1.0, 30, "the drift scraped as active")
        wait(
            lambda: (scalar(prometheus, f"count_over_time({active}[1m])") or 0) >= MIN_SAMPLES,
            30,
            f"{MIN_SAMPLES} scrapes of the active drift",
        )

        # Every dashboard query parses and returns data (polled: the last scrapes may lag).
        answers: dict[str, dict[str, Any]] = {}
        problems: list[str] = []

        def dashboard_ok() -> bool:
            answers.update({expr: prometheus.query(expr) for expr in exprs})
            problems[:] = [
                f"{expr}\n    -> {problem}: {describe_answer(answers[expr])}"
                for expr in exprs
                for problem in query_problems(expr, answers[expr])
            ]
            return not problems

        try:
            wait(dashboard_ok, 20, "every dashboard query to return data")
        except AssertionError as exc:
            raise AssertionError(
                "dashboard queries failing on the real Prometheus:\n  "
                + "\n  ".join(problems)
                + f"\n{exc}"
            ) from None

        # The alert rules are loaded and evaluated without error; the drift alert is pending.
        rules: list[dict[str, Any]] = []

        def evaluated() -> bool:
            answer = prometheus.api("rules")
            rules[:] = [
                r for g in answer["data"]["groups"] for r in g["rules"] if r["type"] == "alerting"
            ]
            return bool(rules) and all(r["health"] != "unknown" for r in rules)

        wait(evaluated, 10, "a first evaluation of every rule")
        context = f"\n--- prometheus log:\n{prometheus.log_tail()}"
        assert sorted(r["name"] for r in rules) == alert_names(), context
        assert [(r["name"], r["health"], r.get("lastError")) for r in rules] == [
            (r["name"], "ok", None) for r in rules
        ], context
        drift_rule = next(r for r in rules if r["name"] == "DriftwatchDriftActive")
        # Evaluated at least once (not Go's zero time), and without error (checked above).
        assert not drift_rule["lastEvaluation"].startswith("0001-"), (drift_rule, context)
        pending: list[dict[str, Any]] = []

        def drift_alert() -> bool:
            pending[:] = [
                a
                for a in prometheus.api("alerts")["data"]["alerts"]
                if a["labels"]["alertname"] == "DriftwatchDriftActive"
                and {k: a["labels"].get(k) for k in DRIFT_PAIR} == DRIFT_PAIR
            ]
            return bool(pending)

        wait(drift_alert, 10, "DriftwatchDriftActive for the drifting stream")
        alert = pending[0]
        assert alert["state"] == "pending", (alert, context)  # the rule has "for: 5m"
        description = alert["annotations"]["description"]
        # The annotation runs two queries of its own; both must have found the stream.
        assert "KS statistic: " in description and "p-value: " in description, (alert, context)
        assert "error" not in description.lower(), (alert, context)
