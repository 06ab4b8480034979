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
import os
import shutil
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer

from stream.simulation import DriftSpec, TelemetrySimulator
from tests.deploy import load_yaml, missing, require_tool
from tests.integration.conftest import KafkaBroker, TopicFactory
from tests.integration.test_prometheus import Prometheus, poll, produce
from tests.integration.worker import (
    REPO,
    free_port,
    run_worker,
    stop_and_keep_log,
    wait_for,
)

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
    """Debian installs it as ``prometheus-alertmanager``, upstream as ``alertmanager``."""
    for name in ("prometheus-alertmanager", "alertmanager"):
        path = shutil.which(name)
        if path is not None:
            return path
    missing("prometheus-alertmanager (or alertmanager) not found on PATH")
    raise AssertionError("unreachable")


def alertmanager_config(webhook_port: int) -> dict[str, Any]:
    """The repository's configuration with short timings and the test's webhook URLs."""
    config: dict[str, Any] = load_yaml(ALERTMANAGER_CONFIG)
    for route in (config["route"], *config["route"].get("routes", [])):
        route.update(group_wait="1s", group_interval="1s")
    for receiver in config["receivers"]:
        (webhook,) = receiver["webhook_configs"]
        webhook["url"] = f"http://127.0.0.1:{webhook_port}/{receiver['name']}"
    return config


class Alertmanager:
    """A running Alertmanager and a small client for its v2 API."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as resp:
            return resp.status == 200

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds whose labels include ``labels`` (with their status)."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=10) as resp:
            held: list[dict[str, Any]] = json.loads(resp.read())
        return [a for a in held if all(a["labels"].get(k) == v for k, v in labels.items())]

    def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        def check() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"alertmanager exited with code {self.proc.returncode}")
            return condition()

        try:
            wait_for(check, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- alertmanager log:\n{self.log_tail()}") from None


@contextmanager
def run_alertmanager(tmp_path: Path, webhook_port: int) -> Iterator[Alertmanager]:
    binary = alertmanager_binary()
    directory = tmp_path / "alertmanager"
    directory.mkdir()
    config_file = directory / "alertmanager.yml"
    config_file.write_text(json.dumps(alertmanager_config(webhook_port), indent=2))
    check = subprocess.run(
        [require_tool("amtool"), "check-config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    port = free_port()
    log = directory / "alertmanager.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            cwd=directory,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    alertmanager = Alertmanager(proc, port, log)
    try:
        alertmanager.wait(alertmanager.ready, 30, "Alertmanager to become ready")
        yield alertmanager
    finally:
        stop_and_keep_log(proc, log, f"alertmanager-{tmp_path.name}.log")


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


class ReloadablePrometheus(Prometheus):
    """A :class:`Prometheus` whose scrape targets can be changed (rewrite config, SIGHUP)."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        port: int,
        log: Path,
        config_file: Path,
        rules: Path,
        alertmanager_port: int,
    ) -> None:
        super().__init__(proc, port, log)
        self.config_file = config_file
        self.rules = rules
        self.alertmanager_port = alertmanager_port

    def set_targets(self, targets: list[str]) -> None:
        config = prometheus_config(self.rules, self.alertmanager_port, targets)
        self.config_file.write_text(json.dumps(config, indent=2))
        os.kill(self.proc.pid, signal.SIGHUP)


@contextmanager
def run_prometheus(
    tmp_path: Path, alertmanager_port: int, targets: list[str]
) -> Iterator[ReloadablePrometheus]:
    binary = require_tool("prometheus")
    directory = tmp_path / "prometheus"
    directory.mkdir()
    rules = fast_rules(directory)
    config_file = directory / "prometheus.yml"
    config_file.write_text(json.dumps(prometheus_config(rules, alertmanager_port, targets)))
    port = free_port()
    log = directory / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            cwd=directory,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    prometheus = ReloadablePrometheus(proc, port, log, config_file, rules, alertmanager_port)
    try:
        poll(prometheus, None, prometheus.ready, 30, "Prometheus to become ready")
        yield prometheus
    finally:
        stop_and_keep_log(proc, log, f"prometheus-{tmp_path.name}.log")


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
            event: dict[str, Any] = orjson.loads(message.value)
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
        run_prometheus(tmp_path, am.port, [f"127.0.0.1:{worker.metrics_port}"]) as prometheus,
    ):

        def wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
            try:
                poll(prometheus, worker, condition, timeout, what)
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
        prometheus.set_targets([f"127.0.0.1:{worker.metrics_port}", dead])
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
