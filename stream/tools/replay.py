"""``driftwatch replay FILE``: the worker's detectors over a telemetry file, with no Kafka.

Prints one drift event per line (the same JSON as the drift-events topic). Exit 0: no drift
event; 1: at least one; 2: error.

With ``--plot-dir DIR``, every ``drift_started`` event of a KS detector also gets a PNG in
``DIR``: the reference and window ECDFs at the moment of the transition, with the KS gap, named
``<key>-<feature>-<n>.png`` (``n`` counts that stream's episodes from 1).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from stream.exceptions import DriftwatchError, InputFileError
from stream.metrics import Metrics, calibrations_pending
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.processor import BatchProcessor, RawMessage
from stream.monitoring.references import reference_loader, reference_source
from stream.monitoring.streams import TransitionSnapshot
from stream.settings import load_settings
from stream.telemetry.decoding import RecordDecoder
from stream.telemetry.records import ACCURACY_FEATURE, PERFORMANCE, file_identity
from stream.tools.progress import Progress

__all__ = ["ReplayTally", "TransitionPlotter", "add_parser", "run"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class TransitionPlotter:
    """Collects drift_started snapshots (a :data:`~stream.monitoring.streams.TransitionHook`) and
    plots them.

    The hook only keeps the snapshots, so nothing can fail inside the monitor; :meth:`flush`
    writes the PNGs.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pending: list[TransitionSnapshot] = []
        self.episodes: Counter[tuple[str, str]] = Counter()
        self.written: list[Path] = []

    def __call__(self, snapshot: TransitionSnapshot) -> None:
        if snapshot.event.type == "drift_started":
            self.pending.append(snapshot)

    def flush(self) -> None:
        from stream.tools.plots import EcdfPanel, plot_ecdfs

        pending, self.pending = self.pending, []
        for snap in pending:
            e = snap.event
            self.episodes[e.key, e.feature] += 1
            n = self.episodes[e.key, e.feature]
            name = f"{_safe(e.key)}-{_safe(e.feature)}-{n}.png"
            path = self.directory / name
            if e.kind == PERFORMANCE:
                panel = EcdfPanel(
                    f"{ACCURACY_FEATURE}: error (1 = wrong)",
                    snap.reference,
                    snap.window,
                    e.statistic,
                    e.p_value,
                    e.statistic_location,
                    reference_label=f"reference (accuracy {_fmt(e.reference_accuracy)})",
                    current_label=f"window (accuracy {_fmt(e.rolling_accuracy)})",
                )
            else:
                panel = EcdfPanel(
                    e.feature,
                    snap.reference,
                    snap.window,
                    e.statistic,
                    e.p_value,
                    e.statistic_location,
                    current_label="window",
                )
            title = f"{e.key} / {e.feature}: drift started at offset {e.window_last_offset}"
            try:
                plot_ecdfs([panel], path, title=title)
            except OSError as exc:
                raise DriftwatchError(f"cannot write plot {path}: {exc}") from None
            self.written.append(path)


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("._") or "_"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="run the detectors over a telemetry file (JSON lines) and print drift events",
        description="Replay a telemetry file (one record value per line) through the same "
        "detectors the worker runs, in file order, and print drift events as JSON lines on "
        "stdout; progress, and the rejected and skipped lines by reason, go to stderr.",
        epilog="Exit codes: 0 no drift event; 1 at least one; 2 usage or input error, or "
        "nothing valid was read (every line rejected or skipped).",
    )
    p.add_argument("file", help="telemetry, one record value per line")
    p.add_argument(
        "--format",
        default="json",
        choices=("json", "otlp_json"),
        help="json: one telemetry event per line (nested, sparse); otlp_json: one OTLP trace "
        "export request per line, each span mapped with the key_fields, features and "
        "categorical_features settings",
    )
    p.add_argument(
        "--span-filter",
        default=None,
        help="FIELD=VALUE[,VALUE...]: only these events or spans count ('*' keeps every one; "
        "default: the span_filter setting, which for otlp_json defaults to the GenAI "
        "inference spans)",
    )
    p.add_argument("--config", metavar="FILE", help="TOML settings file")
    p.add_argument("--window-size", type=int)
    p.add_argument("--reference-size", type=int)
    p.add_argument("--alpha", type=float)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument(
        "--plot-dir",
        metavar="DIR",
        help="write one PNG per drift_started event (reference vs window ECDFs) into DIR",
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=run)


@dataclass(slots=True)
class ReplayTally:
    """What a replay read: lines, valid events, rejected and skipped by reason."""

    lines: int = 0
    valid: int = 0
    drift_events: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        def fmt(c: Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"

        return (
            f"{self.lines} lines, {self.valid} valid events, {self.drift_events} drift events; "
            f"rejected {sum(self.rejected.values())} ({fmt(self.rejected)}); "
            f"skipped {sum(self.skipped.values())} ({fmt(self.skipped)})"
        )


def run(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    if args.batch_size < 1:
        raise DriftwatchError(f"--batch-size must be >= 1, got {args.batch_size}")
    settings = load_settings(
        args.config,
        window_size=args.window_size,
        reference_size=args.reference_size,
        alpha=args.alpha,
    )
    path = Path(args.file)
    if not path.is_file():
        raise InputFileError(str(path), "no such file")
    # a bad --span-filter is a ConfigError (a DriftwatchError: exit 2)
    settings = settings.replace(
        telemetry_format=args.format,
        span_filter=settings.span_filter if args.span_filter is None else args.span_filter,
    )
    plotter = None
    if args.plot_dir:
        plot_dir = Path(args.plot_dir)
        try:
            plot_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DriftwatchError(f"cannot create --plot-dir {plot_dir}: {exc}") from None
        plotter = TransitionPlotter(plot_dir)
    metrics = Metrics(CollectorRegistry(), max_keys=settings.max_metric_keys)
    monitor = DriftMonitor(
        settings,
        references=reference_source(settings),
        metrics=metrics,
        reload_references=reference_loader(settings),
        on_transition=plotter,
        input_id=file_identity(path),
    )
    processor = BatchProcessor(RecordDecoder.from_settings(settings), monitor, metrics, str(path))
    tally = ReplayTally()
    progress = Progress("replay", total=path.stat().st_size, unit="bytes", quiet=args.quiet)
    out = sys.stdout.buffer
    try:
        with path.open("rb") as fh:
            batch: list[RawMessage] = []
            for lineno, line in enumerate(fh, start=1):
                line = line.rstrip(b"\r\n")
                if not line.strip():
                    continue
                tally.lines += 1
                batch.append(RawMessage(None, line, 0, lineno))
                if len(batch) >= args.batch_size:
                    _flush(processor, batch, out, tally, progress)
                    batch = []
                    if plotter is not None:
                        plotter.flush()
                    progress.update(fh.tell(), f"{tally.drift_events} drift events")
            if batch:
                _flush(processor, batch, out, tally, progress)
    finally:
        out.flush()
        progress.close(path.stat().st_size)
    if plotter is not None:
        plotter.flush()
    if not args.quiet:
        print(f"replay: {tally.summary()}", file=sys.stderr)
        if plotter is not None:
            print(f"replay: {len(plotter.written)} plot(s) in {args.plot_dir}", file=sys.stderr)
    if not tally.valid:
        print(
            f"replay: error: no valid event in {path} ({tally.summary()})",
            file=sys.stderr,
        )
        return 2
    return 1 if tally.drift_events else 0


def _flush(
    processor: BatchProcessor,
    batch: list[RawMessage],
    out: Any,
    tally: ReplayTally,
    progress: Progress,
) -> None:
    """Process one batch; while it waits for detector calibrations, say so on stderr."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftwatch-replay") as pool:
        pending = pool.submit(processor.handle, batch)
        while True:
            try:
                outcome = pending.result(timeout=1.0)
                break
            except FutureTimeout:
                queued = calibrations_pending()
                progress.status(
                    f"calibrating detectors ({queued} more queued)"
                    if queued
                    else "processing (detectors calibrating)"
                )
    for de in outcome.drift_events:
        out.write(msgspec.json.encode(de.to_dict()) + b"\n")
    tally.valid += outcome.processed
    tally.drift_events += len(outcome.drift_events)
    tally.rejected.update(dl.reason for dl in outcome.dead_letters)
    tally.skipped.update(outcome.skipped)
