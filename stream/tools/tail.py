"""``driftwatch tail``: print drift events from the drift-events topic as they arrive."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import msgspec

from stream.exceptions import DriftwatchError
from stream.worker.kafka import (
    DEFAULT_CONNECT_TIMEOUT,
    add_kafka_options,
    client_settings,
    kafka_client_config,
)

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "tail",
        help="print drift events from Kafka as they arrive",
        description="Follow the drift-events topic and print each event (human-readable, or "
        "raw JSON with --json).",
    )
    add_kafka_options(p)
    p.add_argument("--topic", default="driftwatch.drift-events")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--json", action="store_true", help="print the raw JSON events")
    p.add_argument("--max-events", type=int, help="exit after this many events")
    p.add_argument(
        "--timeout",
        type=float,
        help="exit (code 1) if no event within SECONDS; also bounds connecting "
        "(exit 2 when no broker answers within it; default 10 s)",
    )
    p.set_defaults(run=run)


def describe(event: dict[str, Any]) -> str:
    """One line a person can read."""
    gap = event.get("largest_gap") or {}
    p = event.get("p_value")
    return (
        f"{event.get('event_time')}  {event.get('type', '?'):15s} {event.get('key')}/"
        f"{event.get('feature')}  D={event.get('statistic') or float('nan'):.3f} "
        f"p={p if p is None else f'{p:.2g}'} ({gap.get('direction')} around "
        f"{gap.get('location')})  window={event.get('window_size')} "
        f"ref={event.get('reference_size')}"
    )


def run(args: argparse.Namespace) -> int:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    if args.timeout is not None and not args.timeout > 0:
        raise DriftwatchError(f"--timeout must be > 0 seconds, got {args.timeout:g}")
    settings = client_settings(args)
    started = time.monotonic()
    try:
        consumer = KafkaConsumer(
            args.topic,
            **kafka_client_config(
                settings, connect_timeout=args.timeout or DEFAULT_CONNECT_TIMEOUT
            ),
            auto_offset_reset="earliest" if args.from_beginning else "latest",
            enable_auto_commit=False,
        )
    except KafkaError as exc:
        raise DriftwatchError(
            f"cannot reach Kafka at {settings.kafka.bootstrap_servers}: {exc}"
        ) from None
    if args.timeout:
        # one deadline for connecting and waiting for the first event
        left = args.timeout - (time.monotonic() - started)
        consumer.config["consumer_timeout_ms"] = max(1, int(left * 1000))
    seen = 0
    try:
        for record in consumer:
            try:
                event = msgspec.json.decode(record.value)
            except msgspec.DecodeError:
                continue
            line = record.value.decode() if args.json else describe(event)
            print(line, flush=True)
            seen += 1
            if args.max_events and seen >= args.max_events:
                break
    finally:
        consumer.close()
    if args.timeout and not seen:
        print(f"tail: no drift event within {args.timeout:g}s", file=sys.stderr)
        return 1
    return 0
