"""The worker's composition root: the Faust app and every component, built from settings.

:class:`WorkerRoot` builds the app, its topics, the metrics, the monitor and processor, the
control handler and the telemetry consumer, and registers on the app what runs with the worker:

- the telemetry service, which starts and stops :class:`~stream.worker.consumer.TelemetryConsumer`
  (the batch consumer that reads telemetry);
- the ``control`` agent, which applies re-baseline commands from the control topic;
- a task serving ``/metrics``; the streams' series are published on the event loop before each
  rendering (and by the monitor when a batch emits drift events), so a worker computes them
  once per rendering -- at most once per ``metrics_cache_seconds`` and once a second -- not on
  a timer.

The consumer and the control agent run on the worker's event loop and each handles a batch (or
command) without awaiting in between, so they never interleave inside the monitor.

Nothing is built at import: ``driftwatch worker`` and ``faust -A stream.app worker`` build one
root on first use (:func:`stream.app.worker`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import time
from collections.abc import AsyncIterable
from functools import partial

import faust
import mode
from prometheus_client import REGISTRY, CollectorRegistry

from stream.metrics import Metrics
from stream.metrics.server import MetricsServer, start_metrics_server
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.processor import BatchProcessor, DeadLetter, RawMessage
from stream.monitoring.references import reference_loader, reference_source
from stream.settings import Settings
from stream.telemetry.decoding import RecordDecoder
from stream.telemetry.records import ControlParser, DriftEvent
from stream.worker.consumer import TelemetryConsumer
from stream.worker.control import ControlHandler
from stream.worker.kafka import broker_credentials
from stream.worker.topics import Topics

__all__ = ["WorkerRoot", "create_app"]

log = logging.getLogger("driftwatch")

#: Seconds a rendering of /metrics waits for the event loop to publish the streams (a batch or
#: a restore in progress holds it).
PUBLISH_WAIT_S = 1.0
#: Least seconds between two publications for renderings: renderings closer together (with
#: ``metrics_cache_seconds`` below it) show series up to this old.
PUBLISH_MIN_INTERVAL_S = 1.0


def create_app(settings: Settings) -> faust.App:
    """A Faust app for ``settings`` (raw bytes in and out; JSON is handled by driftwatch).

    The app runs the control agent and the worker's services; telemetry is read by the batch
    consumer, not by a Faust stream, so no stream buffer or commit tuning applies to it.
    """
    return faust.App(
        settings.app_id,
        broker=settings.kafka.kafka_url,
        broker_credentials=broker_credentials(settings),
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.session_timeout / 4,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        datadir=settings.data_dir,
        autodiscover=False,
    )


class WorkerRoot:
    """Builds and wires the worker's components for ``settings``.

    Parameters
    ----------
    settings : Settings
        The worker's settings.
    registry : CollectorRegistry
        Where the metrics are registered (and served from).
    """

    def __init__(self, settings: Settings, registry: CollectorRegistry = REGISTRY) -> None:
        self.settings = settings
        self.registry = registry
        self.app = create_app(settings)
        self.topics = Topics(self.app, settings)
        self.metrics = Metrics(registry, max_keys=settings.max_metric_keys)
        self.monitor = DriftMonitor(
            settings,
            references=reference_source(settings),
            metrics=self.metrics,
            reload_references=reference_loader(settings),
            # by default a stream starts testing when its calibration is ready rather than
            # stalling the consumer; `replay` (and wait_for_calibration) wait instead, for
            # reproducible results
            reproducible=settings.wait_for_calibration,
            # published before each rendering of /metrics instead (see publish_for_rendering)
            metrics_interval=math.inf,
        )
        self.processor = BatchProcessor(
            RecordDecoder.from_settings(settings),
            self.monitor,
            self.metrics,
            settings.telemetry_topic,
        )
        self.control_handler = ControlHandler(
            ControlParser(settings),
            self.monitor,
            self.metrics,
            max_streams=settings.control_max_streams,
        )
        self.telemetry = TelemetryConsumer(settings, self.processor, self.metrics)
        self.metrics_server: MetricsServer | None = None
        self._published_at = -math.inf  # when publish_for_rendering last published
        self._register()

    def _register(self) -> None:
        """Register the worker's services, agent, task and timer on :attr:`app`."""
        app = self.app
        app.service(_telemetry_service(self.telemetry))
        app.task(self.serve_metrics)
        app.agent(self.topics.control, name="control")(self.control)

    async def serve_metrics(self) -> None:
        """Serve /metrics from a serving process (TLS and basic auth when configured).

        Started off the event loop (the process takes a moment to start); it exits with the
        worker.
        """
        loop = asyncio.get_running_loop()
        server = await asyncio.to_thread(
            start_metrics_server,
            self.settings,
            self.registry,
            before_render=partial(self.publish_for_rendering, loop),
        )
        self.metrics_server = server
        log.info("metrics on %s%s", server.url, " (basic auth)" if server.basic_auth else "")

    async def publish_metrics(self) -> None:
        """Publish the streams changed since last published."""
        self.monitor.publish_metrics()

    def publish_for_rendering(self, loop: asyncio.AbstractEventLoop) -> None:
        """Publish the changed streams on ``loop`` and wait for it (the rendering thread calls
        this before each rendering, at most once per :data:`PUBLISH_MIN_INTERVAL_S`); after
        :data:`PUBLISH_WAIT_S` the rendering goes on with the series as they are."""
        now = time.monotonic()
        if loop.is_closed() or now - self._published_at < PUBLISH_MIN_INTERVAL_S:
            return
        self._published_at = now
        try:
            done = asyncio.run_coroutine_threadsafe(self.publish_metrics(), loop)
        except RuntimeError:  # the loop is closing
            return
        try:
            done.result(timeout=PUBLISH_WAIT_S)
        except concurrent.futures.TimeoutError:
            done.cancel()
            log.info("streams not published within %.1f s of a rendering", PUBLISH_WAIT_S)

    async def control(self, stream: faust.StreamT[bytes]) -> AsyncIterable[None]:
        """Apply re-baseline commands; record refreshes as drift events, dead-letter bad ones."""
        async for event in stream.events():
            m = event.message
            msg = RawMessage(m.key, m.value, m.partition, m.offset, m.timestamp or 0.0)
            # between telemetry batches, once the assigned keys are restored: a command read
            # again after a restart must find the keys it names
            outcome = await self.telemetry.between_batches(
                partial(self.control_handler.handle, msg)
            )
            await self._send(outcome.drift_events, outcome.dead_letters)
            if outcome.applied:
                # the keys' state now holds the command's id (and any refresh it made): it is
                # checkpointed before the command's offset can be committed, so a crash either
                # re-reads the command, which keys holding it skip, or finds its id in the
                # state -- a rate-limited command included
                await self.telemetry.checkpoint_now()
            yield None

    async def _send(self, events: list[DriftEvent], dead_letters: list[DeadLetter]) -> None:
        for de in events:
            await self.topics.drift.send(key=de.kafka_key, value=de.to_json())
            log.info("%s", de.log_line())
        source = self.settings.control_topic
        for dl in dead_letters:
            await self.topics.dead_letter.send(
                key=dl.message.key, value=dl.value, headers=dl.headers(source)
            )


def _telemetry_service(telemetry: TelemetryConsumer) -> type[mode.Service]:
    """A service class the app starts and stops ``telemetry`` with."""

    class TelemetryService(mode.Service):
        """Runs the telemetry consumer for as long as the worker runs."""

        async def on_start(self) -> None:
            await telemetry.start()

        async def on_stop(self) -> None:
            await telemetry.stop()

    return TelemetryService
