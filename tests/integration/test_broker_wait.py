"""The worker started before its broker waits for it, then consumes everything.

A broker of its own is started here (on ports chosen first) after the worker has retried a few
times; the session broker is left alone.
"""

from __future__ import annotations

import time
from pathlib import Path

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from stream.tools.simulation import TelemetrySimulator
from tests.support import kafka_local
from tests.support.pipeline import START_MS, produce, telemetry_records
from tests.support.worker import free_port, start_worker, stop_and_keep_log, wait_for

COUNT = 3_000


def test_worker_waits_for_a_broker_started_after_it(tmp_path: Path) -> None:
    port, controller_port = free_port(), free_port()
    bootstrap = f"127.0.0.1:{port}"
    telemetry = "waited-telemetry"
    worker = start_worker(
        bootstrap,
        tmp_path / "worker",
        telemetry_topic=telemetry,
        drift_topic="waited-drift",
        dead_letter_topic="waited-dlq",
        app_id="driftwatch-waited",
        window_size=100,
        reference_size=200,
    )
    broker = None
    try:
        wait_for(
            lambda: "attempt 2" in worker.log.read_text(errors="replace"),
            60,
            "two attempts to reach the broker",
            worker,
        )
        assert worker.proc.poll() is None, "the worker exited instead of waiting"
        broker = kafka_local.start(tmp_path / "kafka", port, controller_port=controller_port)
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            admin.create_topics([NewTopic(telemetry, 2, 1)])
        except TopicAlreadyExistsError:
            pass  # the worker declared it first
        finally:
            admin.close()
        sim = TelemetrySimulator(4, seed=2)
        events = sim.events(COUNT, start_ms=START_MS, step_ms=10)
        produce(telemetry, telemetry_records(events), bootstrap_servers=bootstrap)
        consumed = {"topic": telemetry}
        wait_for(
            lambda: worker.sample("driftwatch_events_consumed_total", consumed) == COUNT,
            120,
            f"{COUNT} events consumed",
            worker,
        )
        retries = worker.sample("driftwatch_broker_start_retries_total")
        assert retries is not None and retries >= 2
        text = worker.log.read_text(errors="replace")
        assert "broker reachable at" in text and "Traceback" not in text
        time.sleep(0.5)
        assert worker.sample("driftwatch_events_consumed_total", consumed) == COUNT  # no more
    finally:
        stop_and_keep_log(worker.proc, worker.log, f"worker-{tmp_path.name}.log")
        if broker is not None:
            broker.stop()
