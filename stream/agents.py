"""The worker's services, agents and startup tasks, registered on :data:`stream.app.app`.

:class:`TelemetryService` runs the batch telemetry consumer (:mod:`stream.worker.consumer`); the
``control`` agent consumes re-baseline commands from the control topic. Both run on the worker's
event loop and each handles a batch (or command) without awaiting in between, so they never
interleave inside the monitor.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable
from functools import partial

import faust
import mode
from prometheus_client import REGISTRY

from stream import metrics_server
from stream.app import app, settings
from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.processor import BatchProcessor, DeadLetter, RawMessage
from stream.monitoring.references import reference_loader, reference_source
from stream.rebaseline import ControlHandler
from stream.telemetry.decoding import RecordDecoder
from stream.telemetry.records import ControlParser, DriftEvent
from stream.topics import Topics
from stream.worker.consumer import TelemetryConsumer

log = logging.getLogger("driftwatch")

topics = Topics(app, settings)
metrics = Metrics(REGISTRY, max_keys=settings.max_metric_keys)
monitor = DriftMonitor(
    settings,
    references=reference_source(settings),
    metrics=metrics,
    reload_references=reference_loader(settings),
    # by default a stream starts testing when its calibration is ready rather than stalling the
    # consumer; `replay` (and wait_for_calibration) wait instead, for reproducible results
    reproducible=settings.wait_for_calibration,
)
processor = BatchProcessor(
    RecordDecoder.from_settings(settings), monitor, metrics, settings.telemetry_topic
)
control_handler = ControlHandler(
    ControlParser(settings), monitor, metrics, max_streams=settings.control_max_streams
)
telemetry = TelemetryConsumer(settings, processor, metrics)


@app.task
async def start_metrics_server() -> None:
    """Serve /metrics in a thread (TLS and basic auth when configured)."""
    server = metrics_server.start_metrics_server(settings, REGISTRY)
    log.info("metrics on %s%s", server.url, " (basic auth)" if server.basic_auth else "")


@app.timer(interval=1.0)
async def publish_metrics() -> None:
    """Publish streams the last batches changed (processing rate-limits its own publishing)."""
    monitor.publish_metrics()


@app.service
class TelemetryService(mode.Service):
    """Runs :data:`telemetry` for as long as the worker runs."""

    async def on_start(self) -> None:
        await telemetry.start()

    async def on_stop(self) -> None:
        await telemetry.stop()


@app.agent(topics.control)
async def control(stream: faust.StreamT[bytes]) -> AsyncIterable[None]:
    """Apply re-baseline commands; record refreshes as drift events, dead-letter bad commands."""
    async for event in stream.events():
        m = event.message
        msg = RawMessage(m.key, m.value, m.partition, m.offset, m.timestamp or 0.0)
        # between telemetry batches, once the assigned keys are restored: a command read
        # again after a restart must find the keys it names
        outcome = await telemetry.between_batches(partial(control_handler.handle, msg))
        await _send(outcome.drift_events, outcome.dead_letters, settings.control_topic)
        if outcome.applied:
            # the keys' state now holds the command's id (and any refresh it made): it is
            # checkpointed before the command's offset can be committed, so a crash either
            # re-reads the command, which keys holding it skip, or finds its id in the state --
            # a rate-limited command included
            await telemetry.checkpoint_now()
        yield None


async def _send(events: list[DriftEvent], dead_letters: list[DeadLetter], source: str) -> None:
    for de in events:
        await topics.drift.send(key=de.kafka_key, value=de.to_json())
        log.info(
            "%s key=%s feature=%s D=%.4f p=%.3g",
            de.type,
            de.key,
            de.feature,
            de.statistic,
            de.p_value,
        )
    for dl in dead_letters:
        await topics.dead_letter.send(
            key=dl.message.key, value=dl.value, headers=dl.headers(source)
        )
