"""The worker rides out a broker restart: it resumes by itself and loses nothing.

A producer thread sends telemetry (and a few malformed messages) at a steady rate while the
session broker is stopped and started again (same ports, same data). The producer retries; the
worker must resume consuming within 30 s of the broker being back, and in the end every message
is accounted for exactly once: consumed, fed to the detectors or dead-lettered, with the drift
topic holding every drift event the worker counted.

This restarts the *session* broker; it leaves it running (restarted again if it does not answer).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata

from stream.tools.simulation import TelemetrySimulator
from tests.support import kafka_local
from tests.support.broker import (
    BOOTSTRAP_ENV,
    ExternalBroker,
    KafkaBroker,
    TopicFactory,
)
from tests.support.pipeline import START_MS, read_topic
from tests.support.worker import RunningWorker, run_worker, wait_for

RATE = 300  # messages per second
BAD_EVERY = 50  # one malformed message in 50
BEFORE = 1_500  # consumed before the restart
AFTER_S = 4.0  # seconds of producing once the worker has resumed
RESUME_LIMIT_S = 30.0
FEATURES = ("response_latency_ms", "token_count", "retry_count", "error_rate")


@dataclass
class SteadyProducer:
    """Sends ``RATE`` messages a second from a thread until stopped; keeps every future."""

    bootstrap: str
    topic: str
    sent: list[tuple[bytes, bool, FutureRecordMetadata]] = field(default_factory=list)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-producer", daemon=True)
        self._producer = KafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=5,
            enable_idempotence=True,  # retries after the restart write no duplicates
            delivery_timeout_ms=120_000,
            reconnect_backoff_max_ms=1_000,
        )

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        sim = TelemetrySimulator(4, seed=11)
        began = time.monotonic()
        i = 0
        try:
            while not self._stop.is_set():
                delay = began + i / RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                ev = sim.event(START_MS + 10 * i)
                bad = i % BAD_EVERY == BAD_EVERY - 1
                value = b"{not json %d" % i if bad else msgspec.json.encode(ev)
                future = self._producer.send(self.topic, key=ev["agent_id"].encode(), value=value)
                self.sent.append((value, bad, future))
                i += 1
        except BaseException as exc:
            self.error = exc

    def stop(self) -> list[tuple[bytes, bool, Any]]:
        """Stop sending, wait for every acknowledgement; (value, bad, metadata) per message."""
        self._stop.set()
        self._thread.join(timeout=30)
        try:
            self._producer.flush(timeout=120)
            return [(value, bad, f.get(timeout=120)) for value, bad, f in self.sent]
        finally:
            self.close()

    def close(self) -> None:
        """Stop at once (idempotent)."""
        self._stop.set()
        self._thread.join(timeout=30)
        self._producer.close(timeout=10)


def consumed(worker: RunningWorker, topic: str) -> float:
    return worker.sample("driftwatch_events_consumed_total", {"topic": topic}) or 0.0


def ensure_running(broker: KafkaBroker) -> None:
    """Leave the session broker answering, whatever happened in the test."""
    try:
        kafka_local.wait_until_ready(broker.bootstrap, timeout=30.0, require_listed=False)
    except kafka_local.KafkaLocalError:
        broker.restart()


def test_worker_resumes_after_a_broker_restart_and_loses_nothing(
    kafka_broker: KafkaBroker,
    topic_factory: TopicFactory,
    tmp_path: Path,
    record_property: Any,
) -> None:
    if isinstance(kafka_broker, ExternalBroker):
        pytest.skip(f"restarting needs a broker started by the test session ({BOOTSTRAP_ENV})")
    telemetry = topic_factory("restart-telemetry", partitions=4)
    drift_topic = topic_factory("restart-drift", partitions=1)
    dlq = topic_factory("restart-dlq", partitions=1)
    settings = {
        "telemetry_topic": telemetry,
        "drift_topic": drift_topic,
        "dead_letter_topic": dlq,
        "app_id": f"driftwatch-{telemetry}",
        "window_size": 100,
        "reference_size": 200,
        "batch_size": 500,
    }
    producer = SteadyProducer(kafka_broker.bootstrap, telemetry)
    try:
        with run_worker(kafka_broker.bootstrap, tmp_path, **settings) as worker:
            producer.start()
            wait_for(
                lambda: consumed(worker, telemetry) >= BEFORE, 60, "steady consumption", worker
            )

            stopping = time.monotonic()
            kafka_broker.restart()
            back = time.monotonic()
            at_restart = consumed(worker, telemetry)
            wait_for(
                lambda: consumed(worker, telemetry) > at_restart,
                RESUME_LIMIT_S,
                "consumption to resume after the restart",
                worker,
            )
            resumed = time.monotonic()
            sent_at_resume = len(producer.sent)
            time.sleep(AFTER_S)
            acks = producer.stop()
            assert producer.error is None, repr(producer.error)
            produced = len(acks)
            assert produced - sent_at_resume >= AFTER_S * RATE * 0.5  # still producing

            wait_for(
                lambda: consumed(worker, telemetry) >= produced,
                60,
                f"{produced} messages consumed",
                worker,
            )
            time.sleep(1.0)  # a duplicate delivery would show up here
            bad = {(md.partition, md.offset): value for value, is_bad, md in acks if is_bad}
            valid = produced - len(bad)
            log = read_topic(kafka_broker.bootstrap, telemetry, produced)
            dead = read_topic(kafka_broker.bootstrap, dlq, len(bad))
            drift_total = worker.summed("driftwatch_drift_events_total")
            drift = read_topic(kafka_broker.bootstrap, drift_topic, int(drift_total))

            # nothing lost, nothing twice: the log, the counters and the topics agree
            assert len(log) == produced  # idempotent producer: no duplicate in the log
            assert consumed(worker, telemetry) == produced
            for feature in FEATURES:
                observed = worker.summed("driftwatch_observations_total", {"feature": feature})
                assert observed == valid, feature
            invalid = worker.summed("driftwatch_invalid_events_total", {"reason": "invalid_json"})
            assert invalid == len(bad) == worker.summed("driftwatch_invalid_events_total")
            sources = {}
            for record in dead:
                _, partition, offset = dict(record.headers)["driftwatch-source"].decode().split("/")
                sources[(int(partition), int(offset))] = record.value
            assert len(dead) == len(bad) and sources == bad
            assert len(drift) == drift_total
            assert all(msgspec.json.decode(r.value)["source"]["topic"] == telemetry for r in drift)
            assert worker.proc.poll() is None, "the worker died"
            assert "Crashed" not in worker.log.read_text(errors="replace")

            outage, recovery = back - stopping, resumed - back
            record_property("broker_outage_s", round(outage, 2))
            record_property("recovery_s", round(recovery, 2))
            print(
                f"\nbroker restart: down {outage:.1f} s, worker resumed {recovery:.1f} s after "
                f"the broker was back ({resumed - stopping:.1f} s after the stop began); "
                f"{produced} produced, {len(bad)} dead-lettered, {int(drift_total)} drift events"
            )
    finally:
        producer.close()
        ensure_running(kafka_broker)
