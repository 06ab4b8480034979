"""The worker on the real broker: drift events, dead letters and metrics agree."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import msgspec

from stream.tools.simulation import DriftSpec, TelemetrySimulator
from tests.support.broker import KafkaBroker, TopicFactory
from tests.support.pipeline import START_MS, Record, consume, produce, telemetry_records
from tests.support.worker import run_worker, wait_for

MALFORMED = [
    (b"{this is not json", "invalid_json"),
    (b"[1, 2, 3]", "not_an_object"),
    # an event missing features is valid (sparse rules); a float id would collapse distinct ids
    (
        b'{"agent_id": 1.5, "response_latency_ms": 10, "token_count": 3, "retry_count": 0,'
        b' "error_rate": 0.1}',
        "bad_key",
    ),
    (
        b'{"agent_id": "agent-1", "response_latency_ms": "fast", "token_count": 3,'
        b' "retry_count": 0, "error_rate": 0.1}',
        "non_numeric",
    ),
    (b"\xff\xfe not utf-8", "invalid_json"),
]


def test_drift_events_dead_letters_and_metrics(
    kafka_broker: KafkaBroker, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    telemetry = topic_factory("telemetry", partitions=4)
    drift_topic = topic_factory("drift", partitions=2)
    dlq = topic_factory("dlq", partitions=1)
    drift = DriftSpec("agent-2", "response_latency_ms", "shift", 0.6, start_event=8000)
    sim = TelemetrySimulator(4, seed=5, drift=drift)

    def records() -> Iterator[Record]:
        events = telemetry_records(sim.events(14_000, start_ms=START_MS, step_ms=10))
        for i, record in enumerate(events):
            yield record
            if i % 2500 == 1000:
                raw, _ = MALFORMED[(i // 2500) % len(MALFORMED)]
                yield b"agent-1", raw
        for raw, _ in MALFORMED:
            yield b"agent-3", raw

    sent = produce(telemetry, records(), bootstrap_servers=kafka_broker.bootstrap)
    bad = [
        reason
        for i in range(14_000)
        if i % 2500 == 1000
        for _, reason in [MALFORMED[(i // 2500) % 5]]
    ]
    bad += [reason for _, reason in MALFORMED]

    settings = {
        "telemetry_topic": telemetry,
        "drift_topic": drift_topic,
        "dead_letter_topic": dlq,
        "app_id": f"driftwatch-{telemetry}",
        "window_size": 300,
        "reference_size": 600,
        "alpha": "1e-7",
        "batch_size": 500,
    }
    drift_labels = {"type": "drift_started", "feature": "response_latency_ms"}
    with run_worker(kafka_broker.bootstrap, tmp_path, **settings) as worker:
        consumed = {"topic": telemetry}
        wait_for(
            lambda: worker.sample("driftwatch_events_consumed_total", consumed) == sent,
            120,
            f"{sent} events consumed",
            worker,
        )
        wait_for(
            lambda: worker.sample("driftwatch_drift_events_total", drift_labels) == 1.0,
            30,
            "the drift event",
            worker,
        )
        records = consume(drift_topic, 10_000, 5, bootstrap_servers=kafka_broker.bootstrap)
        events = [msgspec.json.decode(r.value) for r in records]
        started = [(e["key"], e["feature"]) for e in events if e["type"] == "drift_started"]
        assert started == [("agent-2", "response_latency_ms")]
        assert all(e["type"] == "drift_started" for e in events)  # the drift persists
        event = events[0]
        assert records[0].key == b"agent-2|response_latency_ms"
        assert event["largest_gap"]["direction"] == "increase"
        assert event["source"]["topic"] == telemetry
        # the id covers the deployment and the input: the topic, partition and offset
        assert event["app_id"] == settings["app_id"] and event["source"]["input"] == telemetry
        parts = [event[k] for k in ("type", "key", "feature", "detector", "app_id")]
        parts += [telemetry, event["source"]["partition"], event["source"]["window_last_offset"]]
        digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
        assert event["event_id"] == digest[:32]
        # every partition's lag is exported, and it is 0 once everything is consumed
        lags = [{"topic": telemetry, "partition": str(p)} for p in range(4)]
        wait_for(
            lambda: [worker.sample("driftwatch_consumer_lag", lab) for lab in lags] == [0.0] * 4,
            30,
            "consumer lag 0 on every partition",
            worker,
        )
        assert event["p_value"] < 1e-7 and event["window_size"] == 300

        dead = consume(dlq, len(bad), bootstrap_servers=kafka_broker.bootstrap)
        assert sorted(r.value for r in dead) == sorted(
            [MALFORMED[(i // 2500) % 5][0] for i in range(14_000) if i % 2500 == 1000]
            + [raw for raw, _ in MALFORMED]
        )
        assert sorted(dict(r.headers)["driftwatch-reason"].decode() for r in dead) == sorted(bad)

        for reason in set(bad):
            assert worker.sample(
                "driftwatch_invalid_events_total", {"reason": reason}
            ) == bad.count(reason)
        pair = {"key": "agent-2", "feature": "response_latency_ms"}
        wait_for(lambda: worker.sample("driftwatch_drift_active", pair) == 1.0, 10, "drift gauge")
        quiet = {"key": "agent-0", "feature": "response_latency_ms"}
        assert worker.sample("driftwatch_drift_active", quiet) == 0.0

        text = worker.scrape()
        check = subprocess.run(
            ["promtool", "check", "metrics"], input=text.encode(), capture_output=True, check=False
        )
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
