"""``driftwatch replay FILE``: the worker's detectors over a telemetry file, with no Kafka.

Prints one drift event per line (the same JSON as the drift-events topic). Exit 0: no drift
event; 1: at least one; 2: error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from stream.exceptions import InputFileError
from stream.metrics import Metrics
from stream.monitor import DriftMonitor
from stream.processor import BatchProcessor, RawMessage
from stream.records import TelemetryParser
from stream.references import reference_source
from stream.settings import load_settings

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="run the detectors over a telemetry file (JSON lines) and print drift events",
        description="Replay a JSON-lines telemetry file through the same detectors the worker "
        "runs, in file order, and print drift events as JSON lines. Exit 0: none; 1: drift.",
    )
    p.add_argument("file", help="telemetry, one JSON object per line")
    p.add_argument("--config", metavar="FILE", help="TOML settings file")
    p.add_argument("--window-size", type=int)
    p.add_argument("--reference-size", type=int)
    p.add_argument("--alpha", type=float)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    settings = load_settings(
        args.config,
        window_size=args.window_size,
        reference_size=args.reference_size,
        alpha=args.alpha,
    )
    path = Path(args.file)
    if not path.is_file():
        raise InputFileError(str(path), "no such file")
    metrics = Metrics(CollectorRegistry(), max_keys=settings.max_metric_keys)
    monitor = DriftMonitor(settings, references=reference_source(settings), metrics=metrics)
    processor = BatchProcessor(TelemetryParser(settings), monitor, metrics, str(path))
    found = 0
    invalid = 0
    total = 0
    out = sys.stdout.buffer
    with path.open("rb") as fh:
        batch: list[RawMessage] = []
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            batch.append(RawMessage(None, line, 0, lineno))
            if len(batch) >= args.batch_size:
                f, i = _flush(processor, batch, out)
                found, invalid, total = found + f, invalid + i, total + len(batch)
                batch = []
                if not args.quiet and total % 100_000 < args.batch_size:
                    print(f"replay: {total} events, {found} drift events", file=sys.stderr)
        if batch:
            f, i = _flush(processor, batch, out)
            found, invalid, total = found + f, invalid + i, total + len(batch)
    out.flush()
    if not args.quiet:
        print(
            f"replay: {total} events ({invalid} invalid), {found} drift events",
            file=sys.stderr,
        )
    return 1 if found else 0


def _flush(processor: BatchProcessor, batch: list[RawMessage], out: Any) -> tuple[int, int]:
    outcome = processor.handle(batch)
    for de in outcome.drift_events:
        out.write(orjson.dumps(de.to_dict()) + b"\n")
    return len(outcome.drift_events), len(outcome.dead_letters)
