"""Re-baselining on request: ``driftwatch rebaseline`` and the worker's control-command handler.

``driftwatch rebaseline`` produces one command to the control topic::

    {"action": "rebaseline", "key": "agent-1", "feature": null, "source": "window",
     "id": "5f0c...", "requested_at": "2026-05-21T08:00:00.000+00:00"}

A worker only holds the keys of the telemetry partitions it is assigned, so the command is sent
to every partition of the control topic; the ``id`` lets a worker that reads several of those
partitions apply it once. Each worker applies it to the keys it tracks
(:meth:`stream.monitor.DriftMonitor.rebaseline`) and records every refreshed stream as a
``reference_refreshed`` event on the drift-events topic. Invalid commands are logged and sent to
the dead-letter topic with the reason, like invalid telemetry.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from stream.exceptions import DriftwatchError, UnknownKeyError
from stream.kafka_config import add_kafka_options, client_settings, kafka_client_config
from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.processor import DeadLetter, RawMessage
from stream.telemetry.records import (
    REBASELINE_SOURCES,
    ControlParser,
    DriftEvent,
    Invalid,
    control_signature,
)

__all__ = ["ControlHandler", "ControlOutcome", "add_parser", "build_command", "run"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ControlOutcome:
    """What one control message produced."""

    drift_events: list[DriftEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicate: bool = False
    #: The command reached the monitor: the keys it names now remember its id (even where a rate
    #: limit refreshed nothing), so that state must be checkpointed before the offset is committed.
    applied: bool = False


class ControlHandler:
    """Parses control messages and applies them to a :class:`DriftMonitor` (no I/O here).

    Parameters
    ----------
    parser : ControlParser
        Validates the commands.
    monitor : DriftMonitor
        The monitor to re-baseline.
    metrics : Metrics, optional
        Rejected commands are counted in ``driftwatch_invalid_events_total`` by reason.
    remember : int
        How many command ids are remembered to drop the copies of a command.
    max_streams : int
        Most streams one command refreshes (the others are counted in
        ``driftwatch_rebaseline_skipped_total{reason="fan_out"}``).
    """

    def __init__(
        self,
        parser: ControlParser,
        monitor: DriftMonitor,
        metrics: Metrics | None = None,
        *,
        remember: int = 1024,
        max_streams: int = 1000,
    ) -> None:
        self.parser = parser
        self.monitor = monitor
        self.metrics = metrics
        self.remember = remember
        self.max_streams = max_streams
        self._seen: OrderedDict[str, None] = OrderedDict()

    def handle(self, msg: RawMessage) -> ControlOutcome:
        out = ControlOutcome()
        cmd = self.parser.parse(msg.value, partition=msg.partition, offset=msg.offset)
        if isinstance(cmd, Invalid):
            log.warning(
                "rejected control command at %d@%d: %s (%s)",
                msg.partition,
                msg.offset,
                cmd.reason,
                cmd.detail,
            )
            self._reject(out, msg, cmd.reason, cmd.detail)
            return out
        # a command without an id is told apart by its position
        command_id = cmd.command_id or f"control-{msg.partition}-{msg.offset}"
        if command_id in self._seen:
            out.duplicate = True
            return out
        self._seen[command_id] = None
        while len(self._seen) > self.remember:
            self._seen.popitem(last=False)
        try:
            out.drift_events = self.monitor.rebaseline(
                cmd.key,
                cmd.feature,
                cmd.source,
                command_id=command_id,
                max_streams=self.max_streams,
            )
        except UnknownKeyError as exc:
            log.warning("rebaseline %s: %s", command_id, exc)
            self._reject(out, msg, "unknown_key", str(exc))
            return out
        except (DriftwatchError, ValueError) as exc:
            log.error("rebaseline %s failed: %s", msg.value, exc)
            self._reject(out, msg, "rebaseline_failed", str(exc))
            return out
        out.applied = True
        log.info(
            "rebaseline key=%s feature=%s source=%s: %d stream(s) refreshed",
            cmd.key or "*",
            cmd.feature or "*",
            cmd.source,
            len(out.drift_events),
        )
        return out

    def _reject(self, out: ControlOutcome, msg: RawMessage, reason: str, detail: str) -> None:
        out.dead_letters.append(DeadLetter(msg, reason, detail))
        if self.metrics is not None:
            self.metrics.invalid_events.labels(reason).inc()


def build_command(
    key: str | None,
    feature: str | None,
    source: str,
    *,
    command_id: str | None = None,
    signing_key: bytes | None = None,
) -> dict[str, Any]:
    """The JSON object of a ``rebaseline`` command (signed with ``signing_key`` if given)."""
    if source not in REBASELINE_SOURCES:
        raise DriftwatchError(f"--source must be one of {', '.join(REBASELINE_SOURCES)}")
    for name, value in (("--key", key), ("--feature", feature)):
        if value is not None and not value.strip():
            raise DriftwatchError(f"{name} must not be empty")
    doc: dict[str, Any] = {
        "action": "rebaseline",
        "key": key,
        "feature": feature,
        "source": source,
        "id": command_id or uuid.uuid4().hex,
        "requested_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    if signing_key is not None:
        doc["signature"] = control_signature(doc, signing_key)
    return doc


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "rebaseline",
        help="ask the workers to take a new reference (current window or reference file)",
        description="Send a rebaseline command to the control topic. Every worker gives the "
        "matching streams a new reference -- their current window, or the reference file read "
        "again -- and records each as a reference_refreshed event on the drift-events topic.",
    )
    add_kafka_options(p)
    p.add_argument("--topic", default="driftwatch.control", help="the control topic")
    p.add_argument("--key", help="only this key (default: every key)")
    p.add_argument("--feature", help="only this feature, or 'accuracy' (default: every one)")
    p.add_argument(
        "--source",
        default="window",
        choices=REBASELINE_SOURCES,
        help="window: the current window becomes the reference; file: reload reference_file",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for Kafka")
    p.add_argument(
        "--signing-key-file",
        default=os.environ.get("DRIFTWATCH_CONTROL_SIGNING_KEY_FILE"),
        help="sign the command with the HMAC key in this file (the workers' "
        "control_signing_key_file; default: $DRIFTWATCH_CONTROL_SIGNING_KEY_FILE)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.timeout > 0:
        raise DriftwatchError(f"--timeout must be > 0 seconds, got {args.timeout:g}")
    signing_key = None
    if args.signing_key_file:
        try:
            signing_key = Path(args.signing_key_file).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise DriftwatchError(f"--signing-key-file: cannot read: {exc.strerror}") from None
    command = build_command(args.key, args.feature, args.source, signing_key=signing_key)
    value = orjson.dumps(command)
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    settings = client_settings(args)
    deadline = time.monotonic() + args.timeout  # one bound for connecting and sending

    def left() -> float:
        return max(0.001, deadline - time.monotonic())

    try:
        producer = KafkaProducer(
            **kafka_client_config(settings, connect_timeout=args.timeout),
            acks="all",
            retries=5,
            max_block_ms=int(args.timeout * 1000),
            request_timeout_ms=max(1000, int(args.timeout * 1000)),
        )
    except KafkaError as exc:
        raise DriftwatchError(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}"
        ) from None
    key = (args.key or "*").encode()
    partitions: list[int] = []
    try:
        producer.config["max_block_ms"] = int(left() * 1000)
        partitions = sorted(producer.partitions_for(args.topic) or [])
        futures = (
            [producer.send(args.topic, key=key, value=value, partition=p) for p in partitions]
            if partitions
            else [producer.send(args.topic, key=key, value=value)]
        )
        producer.flush(timeout=left())
        for future in futures:
            future.get(timeout=left())
    except KafkaError as exc:
        raise DriftwatchError(f"cannot send to {args.topic}: {exc}") from None
    finally:
        producer.close(timeout=min(left(), 2.0))
    sys.stdout.buffer.write(value + b"\n")
    sys.stdout.flush()
    print(
        f"rebaseline: sent to {args.topic} ({max(len(partitions), 1)} partition(s))",
        file=sys.stderr,
    )
    return 0
