"""Metrics of the telemetry consumer: broker start, consumer lag, checkpoints and restores."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ConsumerMetrics"]


class ConsumerMetrics:
    """The metric families of the telemetry consumer and its checkpoints.

    Parameters
    ----------
    registry : CollectorRegistry
        Where the families are registered.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        p = "driftwatch_"
        self.broker_start_retries = Counter(
            p + "broker_start_retries_total",
            "Failed attempts to reach the broker before the worker started.",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            p + "consumer_lag",
            "Log end offset minus the next offset to process (refreshed every 5 s).",
            ["topic", "partition"],
            registry=registry,
        )
        self.checkpoints = Counter(
            p + "checkpoints",
            "Checkpoints written (one per partition and interval), by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.checkpoint_bytes = Counter(
            p + "checkpoint_bytes",
            "Bytes of key snapshots written to the checkpoint topic.",
            registry=registry,
        )
        self.checkpoint_seconds = Histogram(
            p + "checkpoint_seconds",
            "Time to write one checkpoint round (snapshots, acknowledgements, offset commit).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=registry,
        )
        self.checkpoint_records_rejected = Counter(
            p + "checkpoint_records_rejected",
            "Checkpoint records read back and not used (malformed, unsigned, fenced), by reason.",
            ["reason"],
            registry=registry,
        )
        self.restored_keys = Counter(
            p + "restored_keys",
            "Keys restored from the checkpoint topic on partition assignment.",
            registry=registry,
        )
        # both outcomes exist from the start, so increase() sees the first failed round
        for outcome in ("written", "failed"):
            self.checkpoints.labels(outcome)
