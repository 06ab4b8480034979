"""``driftwatch ingest``: repartition raw OTLP span records into keyed per-span telemetry events.

Run any number of instances with the same ``--group``; see :mod:`stream.ingest.runner`. With
``--input`` it converts a file of ``otlp_json`` export requests (one per line) into event lines
for ``driftwatch replay``, without Kafka (exit 2 when no event came out).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

from stream.exceptions import DriftwatchError
from stream.ingest.runner import IngestConfig, IngestRunner
from stream.ingest.stage import IngestStats, explode
from stream.monitoring.processor import RawMessage
from stream.telemetry.genai import (
    GENAI_CATEGORICAL_FEATURES,
    GENAI_FEATURES,
    GENAI_FILTER,
    GENAI_KEY_FIELDS,
    SpanFilter,
    SpanMapping,
    parse_names,
)
from stream.telemetry.otlp import DEFAULT_MAX_BYTES
from stream.worker.kafka import add_kafka_options, client_settings, kafka_client_config

__all__ = ["add_parser", "config_from_args", "convert_file", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "ingest",
        help="explode raw OTLP span records into keyed per-span telemetry events",
        description="Read OpenTelemetry trace export requests (the Collector's Kafka exporter, "
        "nil keys) from the raw topic, turn each span that passes the filter into a flat JSON "
        "event keyed by its stream key, and write it to the telemetry topic the worker reads. "
        "Stateless: run as many instances as the raw topic has partitions.",
    )
    add_kafka_options(p)
    p.add_argument("--raw-topic", default="otlp_spans")
    p.add_argument("--topic", help="telemetry topic (default: the telemetry_topic setting)")
    p.add_argument("--dead-letter-topic", help="default: the dead_letter_topic setting")
    p.add_argument("--group", default="driftwatch-ingest", help="consumer group of the stage")
    p.add_argument("--format", default="otlp_proto", choices=("otlp_proto", "otlp_json"))
    p.add_argument("--key-fields", default=",".join(GENAI_KEY_FIELDS))
    p.add_argument("--features", default=",".join(GENAI_FEATURES), help="numeric features")
    p.add_argument("--categorical-features", default=",".join(GENAI_CATEGORICAL_FEATURES))
    p.add_argument(
        "--span-filter",
        default=GENAI_FILTER,
        help="FIELD=VALUE[,VALUE...]: keep only these spans ('' or '*' keeps every span)",
    )
    p.add_argument("--max-bytes", type=int, help="largest raw record accepted")
    p.add_argument("--batch-records", type=int, default=200)
    p.add_argument(
        "--idle-exit", type=float, metavar="SECONDS", help="stop after this long without input"
    )
    p.add_argument(
        "--input",
        metavar="FILE.jsonl",
        help="offline: read otlp_json export requests, one per line, instead of Kafka",
    )
    p.add_argument(
        "--output",
        metavar="FILE.jsonl",
        help="with --input: write the events here (default: stdout)",
    )
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> IngestConfig:
    """The stage's configuration from the command line and the settings."""
    settings = client_settings(args)
    try:
        mapping = SpanMapping(
            key_fields=parse_names(args.key_fields),
            features=parse_names(args.features),
            categorical_features=parse_names(args.categorical_features),
            span_filter=SpanFilter.parse(args.span_filter)
            if args.span_filter.strip() not in ("", "*")
            else None,
        )
        return IngestConfig(
            raw_topic=args.raw_topic,
            telemetry_topic=args.topic or settings.telemetry_topic,
            dead_letter_topic=args.dead_letter_topic or settings.dead_letter_topic,
            group=args.group,
            fmt=args.format,
            mapping=mapping,
            max_bytes=args.max_bytes or DEFAULT_MAX_BYTES[args.format],
            batch_records=args.batch_records,
        )
    except ValueError as exc:
        raise DriftwatchError(str(exc)) from None


def convert_file(config: IngestConfig, source: Path, out: BinaryIO) -> IngestStats:
    """Explode a file of otlp_json export requests (one per line) into event lines."""
    stats = IngestStats()
    with source.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            msg = RawMessage(None, line.rstrip(b"\r\n"), 0, lineno)
            batch = explode([msg], "otlp_json", config.mapping, max_bytes=config.max_bytes)
            for dl in batch.dead_letters:
                print(f"ingest: line {lineno}: {dl.reason}: {dl.detail}", file=sys.stderr)
            for event in batch.events:
                out.write(event.to_json() + b"\n")
            stats.add(1, batch)
    return stats


def run(args: argparse.Namespace) -> int:
    if args.input:
        if args.format != "otlp_json":
            raise DriftwatchError("--input reads JSON lines: use --format otlp_json with it")
        config = config_from_args(args)
        try:
            if args.output:
                with Path(args.output).open("wb") as out:
                    stats = convert_file(config, Path(args.input), out)
            else:
                stats = convert_file(config, Path(args.input), sys.stdout.buffer)
        except OSError as exc:
            raise DriftwatchError(f"cannot read {args.input} or write the events: {exc}") from None
        print(f"ingest: {stats.summary()}", file=sys.stderr)
        return 0 if stats.events else 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = config_from_args(args)
    runner = IngestRunner(config, kafka_client_config(client_settings(args)))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stats = runner.run(stop, idle_exit_s=args.idle_exit)
    finally:
        runner.close()
    print(f"ingest: {stats.summary()}", file=sys.stderr)
    return 0
