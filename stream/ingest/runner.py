"""``driftwatch ingest``'s Kafka loop: raw topic in batches -> telemetry topic, at least once.

Any number of instances share one consumer group on the raw topic; the stage keeps no state, so
instances can come and go. Each batch is exploded (:func:`~stream.ingest.stage.explode`), every
produced record (events and dead letters) is awaited until the broker acknowledged it
(``acks=all``), and only then are the batch's offsets committed. A crash or a failed produce
before the commit re-delivers the batch: events can repeat, never go missing, and each carries
its dedupe id (``event_id`` = ``trace_id + span_id``, also in the ``driftwatch-event-id``
header).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from stream.exceptions import DriftwatchError
from stream.ingest.stage import EVENT_ID_HEADER, IngestStats, explode
from stream.monitoring.processor import RawMessage
from stream.telemetry.genai import SpanMapping
from stream.telemetry.otlp import DEFAULT_MAX_BYTES

__all__ = ["IngestConfig", "IngestRunner"]

log = logging.getLogger(__name__)

#: Seconds to wait for the broker to acknowledge a batch's records before giving up on it.
ACK_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Where the stage reads and writes, and how it decodes."""

    raw_topic: str = "otlp_spans"
    telemetry_topic: str = "agent-telemetry"
    dead_letter_topic: str = "driftwatch.dead-letter"
    group: str = "driftwatch-ingest"
    fmt: Literal["otlp_json", "otlp_proto"] = "otlp_proto"
    mapping: SpanMapping = field(default_factory=SpanMapping)
    max_bytes: int = DEFAULT_MAX_BYTES["otlp_proto"]
    batch_records: int = 200
    poll_timeout_ms: int = 500

    def __post_init__(self) -> None:
        if not 1 <= self.batch_records <= 10_000:
            raise ValueError(f"batch_records must be 1..10000, got {self.batch_records}")
        if not 1_000 <= self.max_bytes <= 64 * 2**20:
            raise ValueError(f"max_bytes must be 1,000..67,108,864, got {self.max_bytes}")


class IngestRunner:
    """One ingest instance: a consumer in the group and a producer."""

    def __init__(self, config: IngestConfig, client_config: dict[str, Any]) -> None:
        from kafka import KafkaConsumer, KafkaProducer
        from kafka.errors import KafkaError

        self.config = config
        self.stats = IngestStats()
        fetch = max(config.max_bytes + 65_536, 1_048_576)
        try:
            self._consumer = KafkaConsumer(
                config.raw_topic,
                group_id=config.group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_partition_fetch_bytes=fetch,
                fetch_max_bytes=max(fetch, 52_428_800),
                **client_config,
            )
            self._producer = KafkaProducer(
                acks="all",
                linger_ms=5,
                max_request_size=1_048_576,
                **client_config,
            )
        except KafkaError as exc:
            raise DriftwatchError(f"cannot reach Kafka: {exc}") from None

    def step(self) -> int:
        """Poll one batch, deliver it, commit it; return the number of raw records handled."""
        from kafka.structs import OffsetAndMetadata

        cfg = self.config
        polled = self._consumer.poll(timeout_ms=cfg.poll_timeout_ms, max_records=cfg.batch_records)
        if not polled:
            return 0
        messages: list[RawMessage] = []
        ends = {}
        for tp, recs in polled.items():
            for r in recs:
                messages.append(
                    RawMessage(r.key, r.value, r.partition, r.offset, r.timestamp / 1e3)
                )
            ends[tp] = OffsetAndMetadata(recs[-1].offset + 1, "", -1)
        batch = explode(messages, cfg.fmt, cfg.mapping, max_bytes=cfg.max_bytes)
        send = self._producer.send
        futures = [
            send(
                cfg.telemetry_topic,
                key=e.key.encode(),
                value=e.to_json(),
                headers=[(EVENT_ID_HEADER, e.event_id.encode())],
            )
            for e in batch.events
        ]
        for dl in batch.dead_letters:
            log.warning(
                "ingest: dead-lettered %s/%d/%d: %s (%s)",
                cfg.raw_topic,
                dl.message.partition,
                dl.message.offset,
                dl.reason,
                dl.detail,
            )
            futures.append(
                send(
                    cfg.dead_letter_topic,
                    key=dl.message.key,
                    value=dl.value,
                    headers=dl.headers(cfg.raw_topic),
                )
            )
        self._producer.flush(timeout=ACK_TIMEOUT_S)
        for f in futures:
            f.get(timeout=ACK_TIMEOUT_S)  # raises if not acknowledged: nothing is committed
        self._consumer.commit(ends)
        self.stats.add(len(messages), batch)
        return len(messages)

    def run(self, stop: threading.Event, *, idle_exit_s: float | None = None) -> IngestStats:
        """Run until ``stop`` is set (or, once partitions are assigned, nothing arrived for
        ``idle_exit_s`` seconds)."""
        last_data = last_log = time.monotonic()
        while not stop.is_set():
            n = self.step()
            now = time.monotonic()
            if n or not self._consumer.assignment():  # idle time counts once in the group
                last_data = now
            elif idle_exit_s is not None and now - last_data >= idle_exit_s:
                break
            if now - last_log >= 10.0:
                last_log = now
                log.info("ingest: %s", self.stats.summary())
        return self.stats

    def close(self) -> None:
        """Flush the producer and leave the group (uncommitted records go to another instance)."""
        try:
            self._producer.flush(timeout=10)
            self._producer.close(timeout=10)
        finally:
            self._consumer.close(autocommit=False)
