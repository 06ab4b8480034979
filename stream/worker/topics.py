"""The Kafka topics the worker reads and writes (raw bytes: driftwatch does its own JSON)."""

from __future__ import annotations

import faust

from stream.settings import Settings

__all__ = ["Topics"]


class Topics:
    """Control commands in; drift events and dead letters out.

    Telemetry is read by :class:`~stream.worker.consumer.TelemetryConsumer`, not by the app.
    """

    def __init__(self, app: faust.App, settings: Settings) -> None:
        raw = {
            "key_type": bytes,
            "value_type": bytes,
            "key_serializer": "raw",
            "value_serializer": "raw",
        }
        self.drift = app.topic(settings.drift_topic, **raw)  # type: ignore[arg-type]
        self.dead_letter = app.topic(settings.dead_letter_topic, **raw)  # type: ignore[arg-type]
        # driftwatch's own topic: declared (created if missing) before the worker subscribes
        self.control = app.topic(
            settings.control_topic,
            internal=True,
            **raw,  # type: ignore[arg-type]
        )
