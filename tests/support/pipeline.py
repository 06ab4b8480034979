"""Simulated telemetry for the pipeline: as the processor's raw messages, or sent to Kafka."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from stream.processor import RawMessage
from stream.tools.simulation import DriftSpec, TelemetrySimulator

#: The first event time of the simulated streams (2026-05-21T08:00:00Z).
START_MS = 1_779_350_400_000
#: What the tests' producers use unless told otherwise.
PRODUCER_CONFIG: Mapping[str, Any] = {"acks": "all", "linger_ms": 5}

Record = tuple[bytes | None, bytes]


def simulated_messages(
    count: int,
    *,
    agents: int = 4,
    seed: int = 0,
    drift: DriftSpec | None = None,
    step_ms: float = 10.0,
) -> list[RawMessage]:
    """``count`` simulated events as raw messages of partition 0, offsets from 0."""
    sim = TelemetrySimulator(agents, seed=seed, drift=drift)
    return [
        RawMessage(ev["agent_id"].encode(), orjson.dumps(ev), 0, i)
        for i, ev in enumerate(sim.events(count, start_ms=START_MS, step_ms=step_ms))
    ]


def telemetry_records(events: Iterable[dict[str, Any]]) -> Iterator[Record]:
    """Events as Kafka records: keyed by agent, the value their JSON."""
    for ev in events:
        yield ev["agent_id"].encode(), orjson.dumps(ev)


def produce(topic: str, records: Iterable[Record], **config: Any) -> int:
    """Send ``records`` to ``topic`` and flush; the number sent.

    ``config`` goes to ``KafkaProducer`` (``bootstrap_servers`` at least), over
    :data:`PRODUCER_CONFIG`.
    """
    from kafka import KafkaProducer

    producer = KafkaProducer(**{**PRODUCER_CONFIG, **config})
    sent = 0
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
            sent += 1
        producer.flush()
    finally:
        producer.close()
    return sent
