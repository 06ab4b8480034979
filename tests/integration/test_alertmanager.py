"""Alert delivery with real parts: worker -> Prometheus -> Alertmanager -> a webhook receiver.

Alertmanager (Debian's ``prometheus-alertmanager``, as installed by
``scripts/install-system-deps.sh``) runs with a copy of ``deploy/alertmanager/alertmanager.yml``
in which only the timings are shortened and the receivers' URLs point at an HTTP server inside
the test. Prometheus runs with a copy of the repository's alert rules whose ``for:`` periods
are shortened. Two tests:

* alerts posted to Alertmanager's API: routing by severity, grouping by key, and
  ``DriftwatchWorkerDown`` inhibiting the rest;
* end to end: a drift injected into telemetry on the real broker becomes a drift event, then a
  ``DriftwatchDriftActive`` alert in Prometheus, which Alertmanager delivers to the ticket
  receiver with the key and feature labels and the runbook URL; a worker target that goes down
  then pages, and the drift alert is inhibited.

Without the binaries on PATH the tests are skipped, or fail when ``CI=true``.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
from kafka import KafkaConsumer

from stream.tools.simulation import DriftSpec, TelemetrySimulator
from tests.deploy import load_yaml, missing, require_tool
from tests.integration.test_prometheus import produce
from tests.support import services
from tests.support.broker import KafkaBroker, TopicFactory
from tests.support.services import Alertmanager, Prometheus
from tests.support.worker import REPO, free_port, run_worker

ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
RULES = REPO / "deploy" / "prometheus" / "rules" / "driftwatch-alerts.yml"
RUNBOOK_BASE = "https://runbooks.test/driftwatch"
#: Largest webhook body the receiver reads (Alertmanager's are a few kB).
MAX_BODY = 1 << 20
DRIFT = {"key": "agent-2", "feature": "response_latency_ms"}


# ----------------------------------------------------------------------------- webhook receiver
class Webhooks:
    """Notifications received, by path (``/page``, ``/ticket``), in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[tuple[str, dict[str, Any]]] = []

    def add(self, path: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self._received.append((path, payload))

    def at(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [payload for p, payload in self._received if p == path]

    def alerts(self, path: str, **labels: str) -> list[dict[str, Any]]:
        """Firing alerts delivered at ``path`` whose labels include ``labels``."""
        return [
            alert
            for payload in self.at(path)
            for alert in payload["alerts"]
            if alert["status"] == "firing"
            and all(alert["labels"].get(k) == v for k, v in labels.items())
        ]


@contextmanager
def webhook_server() -> Iterator[tuple[Webhooks, int]]:
    """An HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it."""
    webhooks = Webhooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                self.send_error(413 if length else 411)
                return
            webhooks.add(self.path, json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield webhooks, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ----------------------------------------------------------------------------- Alertmanager
def alertmanager_binary() -> str:
    """The Alertmanager binary on PATH (skip, or fail when ``CI=true``, without one)."""
    path = services.alertmanager_binary()
    if path is None:
        missing("prometheus-alertmanager (or alertmanager) not found on PATH")
    assert path is not None
    return path


def alertmanager_config(webhook_port: int) -> dict[str, Any]:
    """The repository's configuration with short timings and the test's webhook URLs."""
    config: dict[str, Any] = load_yaml(ALERTMANAGER_CONFIG)
    for route in (config["route"], *config["route"].get("routes", [])):
        route.update(group_wait="1s", group_interval="1s")
    for receiver in config["receivers"]:
        (webhook,) = receiver["webhook_configs"]
        webhook["url"] = f"http://127.0.0.1:{webhook_port}/{receiver['name']}"
    return config


def amtool_check(config_file: Path) -> None:
    """``amtool check-config`` accepts the configuration."""
    check = subprocess.run(
        [require_tool("amtool"), "check-config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def run_alertmanager(tmp_path: Path, webhook_port: int) -> AbstractContextManager[Alertmanager]:
    return services.run_alertmanager(
        alertmanager_binary(),
        tmp_path / "alertmanager",
        alertmanager_config(webhook_port),
        f"alertmanager-{tmp_path.name}.log",
        check=amtool_check,
    )


# ----------------------------------------------------------------------------- Prometheus
def fast_rules(directory: Path) -> Path:
    """A copy of the repository's rules with every ``for:`` shortened to one second."""
    rules = load_yaml(RULES)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    path = directory / "driftwatch-alerts.yml"
    path.write_text(json.dumps(rules, indent=2))
    return path


def prometheus_config(rules: Path, alertmanager_port: int, targets: list[str]) -> dict[str, Any]:
    return {
        "global": {
            "scrape_interval": "1s",
            "scrape_timeout": "1s",
            "evaluation_interval": "1s",
            "external_labels": {"runbook_base": RUNBOOK_BASE},
        },
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": "driftwatch",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": targets}],
            }
        ],
    }


class Targets:
    """Prometheus' scrape targets, changed by rewriting its configuration (SIGHUP)."""

    def __init__(self, prometheus: Prometheus, rules: Path, alertmanager_port: int) -> None:
        self.prometheus = prometheus
        self.rules = rules
        self.alertmanager_port = alertmanager_port

    def set(self, targets: list[str]) -> None:
        self.prometheus.reload(prometheus_config(self.rules, self.alertmanager_port, targets))


@contextmanager
def run_prometheus(
    tmp_path: Path, alertmanager_port: int, targets: list[str]
) -> Iterator[tuple[Prometheus, Targets]]:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    rules = fast_rules(directory)
    with services.run_prometheus(
        require_tool("prometheus"),
        directory,
        prometheus_config(rules, alertmanager_port, targets),
        f"prometheus-{tmp_path.name}.log",
    ) as prometheus:
        yield prometheus, Targets(prometheus, rules, alertmanager_port)


# ----------------------------------------------------------------------------- tests
def api_alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    """An alert as Prometheus posts it to Alertmanager's v2 API."""
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "severity": severity, **labels},
        "annotations": {"runbook_url": f"{RUNBOOK_BASE}/docs/runbooks/x.md"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }


def test_routing_grouping_and_inhibition_on_real_alertmanager(tmp_path: Path) -> None:
    with (
        webhook_server() as (webhooks, webhook_port),
        run_alertmanager(tmp_path, webhook_port) as am,
    ):
        am.post_alerts(
            [
                api_alert("DriftwatchDriftActive", "ticket", key="agent-a", feature="latency"),
                api_alert("DriftwatchDriftActive", "ticket", key="agent-a", feature="tokens"),
                api_alert("DriftwatchDriftActive", "ticket", key="agent-b", feature="latency"),
                api_alert("DriftwatchConsumerLagHigh", "page", topic="agent-telemetry"),
            ]
        )
        am.wait(lambda: len(webhooks.at("/ticket")) >= 2, 30, "two ticket notifications")
        am.wait(lambda: len(webhooks.at("/page")) >= 1, 30, "a page notification")

        # Grouped by key: one notification per agent, holding all its drifting features.
        by_key = {p["groupLabels"]["key"]: p for p in webhooks.at("/ticket")}
        assert sorted(by_key) == ["agent-a", "agent-b"], webhooks.at("/ticket")
        assert by_key["agent-a"]["groupLabels"] == {
            "alertname": "DriftwatchDriftActive",
            "key": "agent-a",
        }
        assert sorted(a["labels"]["feature"] for a in by_key["agent-a"]["alerts"]) == [
            "latency",
            "tokens",
        ]
        assert [a["labels"]["feature"] for a in by_key["agent-b"]["alerts"]] == ["latency"]
        assert all(p["receiver"] == "ticket" for p in webhooks.at("/ticket"))
        # Routed by severity: the page went to the page receiver, and only there.
        (page,) = webhooks.at("/page")
        assert page["receiver"] == "page"
        assert [a["labels"]["alertname"] for a in page["alerts"]] == ["DriftwatchConsumerLagHigh"]

        # A worker goes down: it pages, and a new drift alert is inhibited (held back).
        am.post_alerts(
            [
                api_alert("DriftwatchWorkerDown", "page", instance="worker-0:9464"),
                api_alert("DriftwatchDriftActive", "ticket", key="agent-c", feature="latency"),
            ]
        )
        am.wait(
            lambda: bool(webhooks.alerts("/page", alertname="DriftwatchWorkerDown")),
            30,
            "the WorkerDown page",
        )

        def inhibited(**labels: str) -> bool:
            held = am.alerts(**labels)
            return bool(held) and all(
                a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] for a in held
            )

        am.wait(lambda: inhibited(key="agent-c"), 10, "the agent-c drift to be inhibited")
        # Every other driftwatch alert is inhibited too; WorkerDown itself is not.
        assert inhibited(alertname="DriftwatchDriftActive")
        assert inhibited(alertname="DriftwatchConsumerLagHigh")
        (down,) = am.alerts(alertname="DriftwatchWorkerDown")
        assert down["status"]["state"] == "active", down
        # The inhibited alert was never delivered (its group was due with the page's).
        assert not webhooks.alerts("/ticket", key="agent-c")


def drift_started(bootstrap: str, topic: str, key: str, feature: str) -> dict[str, Any] | None:
    """The first ``drift_started`` event for (key, feature) on ``topic``, if there is one."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    try:
        for message in consumer:
            event: dict[str, Any] = msgspec.json.decode(message.value)
            if (event["type"], event["key"], event["feature"]) == ("drift_started", key, feature):
                return event
    finally:
        consumer.close()
    return None


def test_drift_on_the_broker_is_delivered_by_alertmanager(
    kafka_broker: KafkaBroker, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    telemetry = topic_factory("am-telemetry", partitions=4)
    drift_topic = topic_factory("am-drift", partitions=2)
    settings = {
        "telemetry_topic": telemetry,
        "drift_topic": drift_topic,
        "dead_letter_topic": topic_factory("am-dlq", partitions=1),
        "app_id": f"driftwatch-{telemetry}",
        "window_size": 300,
        "reference_size": 600,
        "alpha": "1e-7",
        "batch_size": 250,
    }
    drift = DriftSpec(DRIFT["key"], DRIFT["feature"], "shift", 0.6, start_event=8000)
    sim = TelemetrySimulator(4, seed=5, drift=drift)
    bootstrap = kafka_broker.bootstrap

    with (
        webhook_server() as (webhooks, webhook_port),
        run_alertmanager(tmp_path, webhook_port) as am,
        run_worker(bootstrap, tmp_path, **settings) as worker,
        run_prometheus(tmp_path, am.port, [f"127.0.0.1:{worker.metrics_port}"]) as (
            prometheus,
            targets,
        ),
    ):

        def wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
            try:
                prometheus.wait(condition, timeout, what, worker)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n--- alertmanager log:\n{am.log_tail()}") from None

        sent = produce(bootstrap, telemetry, sim, 14_000, 0)
        wait(lambda: worker.sample("driftwatch_events_consumed_total") == sent, 90, "consumed")

        # The drift reached the drift-events topic ...
        event: dict[str, Any] = {}
        wait(
            lambda: (
                bool(event.update(drift_started(bootstrap, drift_topic, **DRIFT) or {}))
                or bool(event)
            ),
            30,
            "the drift_started event on the drift topic",
        )
        assert event["largest_gap"]["direction"] == "increase", event

        # ... and, as an alert, the ticket receiver, grouped by key, with the runbook.
        wait(
            lambda: bool(webhooks.alerts("/ticket", alertname="DriftwatchDriftActive", **DRIFT)),
            60,
            "the DriftActive notification at the ticket receiver",
        )
        payload = next(
            p
            for p in webhooks.at("/ticket")
            if p["groupLabels"] == {"alertname": "DriftwatchDriftActive", "key": DRIFT["key"]}
        )
        assert payload["receiver"] == "ticket"
        (alert,) = [a for a in payload["alerts"] if a["labels"]["feature"] == DRIFT["feature"]]
        assert alert["labels"]["severity"] == "ticket"
        runbook_url = alert["annotations"]["runbook_url"]
        assert runbook_url == f"{RUNBOOK_BASE}/docs/runbooks/drift-active.md", alert
        assert (REPO / runbook_url.removeprefix(f"{RUNBOOK_BASE}/")).is_file()
        assert alert["annotations"]["rebaseline"] == (
            f"driftwatch rebaseline --key {DRIFT['key']} --feature {DRIFT['feature']}"
            " --source window"
        )
        assert "KS statistic: " in alert["annotations"]["description"], alert
        assert not webhooks.alerts("/page", alertname="DriftwatchDriftActive")

        # A second worker target that is down: WorkerDown pages and inhibits the drift alert.
        dead = f"127.0.0.1:{free_port()}"
        targets.set([f"127.0.0.1:{worker.metrics_port}", dead])
        wait(
            lambda: bool(webhooks.alerts("/page", alertname="DriftwatchWorkerDown", instance=dead)),
            60,
            "the WorkerDown page for the dead target",
        )

        def drift_inhibited() -> bool:
            held = am.alerts(alertname="DriftwatchDriftActive", **DRIFT)
            return bool(held) and all(
                a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] for a in held
            )

        wait(drift_inhibited, 30, "the drift alert inhibited by WorkerDown")
        assert worker.proc.poll() is None, "the real worker stayed up throughout"
