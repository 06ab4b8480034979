"""``driftwatch rebaseline``: ask the workers to take a new reference.

The command produces one command to the control topic::

    {"action": "rebaseline", "key": "agent-1", "feature": null, "source": "window",
     "id": "5f0c...", "requested_at": "2026-05-21T08:00:00.000+00:00"}

A worker only holds the keys of the telemetry partitions it is assigned, so the command is sent
to every partition of the control topic; the workers apply it with
:class:`stream.worker.control.ControlHandler`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from stream.exceptions import DriftwatchError
from stream.telemetry.records import REBASELINE_SOURCES, control_signature
from stream.worker.kafka import add_kafka_options, client_settings, kafka_client_config

__all__ = ["add_parser", "build_command", "run"]


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
    value = msgspec.json.encode(command)
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
            f"cannot reach Kafka at {settings.kafka.bootstrap_servers}: {exc}"
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
