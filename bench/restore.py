"""Restoring from the checkpoint topic: record sizes, folding the records, restoring the keys.

Usage (from the root of a checkout; the same command measures two commits side by side)::

    .venv/bin/python bench/restore.py [--agents 100] [--rounds 30] [--repeats 5]
        [--new-keys 1000] [--window 200] [--shared-reference]

Builds the monitor of ``bench/monitor_throughput.py`` (its helpers): ``--agents`` agents x 4
numeric features at ``ert = 20,000``, fed the project's simulated telemetry until every stream
is calibrated and testing (the script refuses to go on otherwise). References are learnt from
each stream's first 1,000 values (tied: calibrated on their own) or, with
``--shared-reference``, one continuous reference a feature (one shared calibration).

Then writes ``--rounds`` checkpoint rounds as the worker does, as encoded records of one
checkpoint partition (a claim first): each round feeds every agent ``--round-events`` more
events and ``--new-keys`` new agent ids 3 events each (a flood of keys), then writes a record
per changed key, a tombstone per evicted key (``MAX_TRACKED_KEYS`` 10,000) and the marker,
nothing compacted (the topic as a restore reads it before compaction catches up).

Prints the bytes of a warmed key's record and of a new key's (3 events), the records' total,
the median over ``--repeats`` of the seconds of ``fold_records`` on them and of restoring the
keys folded into a fresh monitor, the median microseconds of reading one warmed key's record
(``CheckpointCodec.open``, whose body is decoded on first use, or ``decode`` on a checkout
without it), the load average and the commit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(Path.cwd()))
sys.path.append(str(_HERE))  # the other bench scripts' helpers, after the checkout's packages

from monitor_throughput import BATCH, ERT, REFERENCE, START_MS, _first, _testing  # noqa: E402

NEW_KEY_EVENTS = 3
RECORD_KEY = b"0/k/all"


def commit() -> str:
    """The checked-out commit (and whether files differ from it)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (modified)" if dirty else "")


def median_seconds(job: Callable[[], object], repeats: int) -> float:
    """Median wall seconds of ``job`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        job()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class Fleet:
    """A warmed monitor, the simulated events that feed it, and the records it writes.

    Parameters
    ----------
    args : argparse.Namespace
        The command line.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        monitor_mod = _first("stream.monitoring.monitor", "stream.monitor")
        sim_mod = _first("stream.tools.simulation", "stream.simulation")
        from stream.settings import load_settings
        from stream.telemetry.records import TelemetryParser
        from stream.worker import checkpoints

        self.checkpoints = checkpoints
        self.codec = checkpoints.CheckpointCodec()
        self.settings = load_settings(
            environ={}, ert=ERT, window_size=args.window, reference_size=REFERENCE
        )
        self.parser = TelemetryParser(self.settings)
        sim = sim_mod.TelemetrySimulator(args.agents, seed=11)
        self.pool = list(sim.events(args.pool, start_ms=START_MS, step_ms=10))
        self.references = self._shared_references() if args.shared_reference else None
        self.monitor_mod = monitor_mod
        self.monitor = self.new_monitor()
        self.offset = 0
        self.records: list[tuple[bytes, bytes | None]] = [
            (checkpoints.claim_record(0), self.codec.encode(checkpoints.claim_record(0), 1, {}))
        ]

    def new_monitor(self) -> Any:
        """A monitor of the fleet's settings and references (none of its keys yet)."""
        return self.monitor_mod.DriftMonitor(
            self.settings, references=self.references, reproducible=True
        )

    def _shared_references(self) -> Callable[[str, str], Any]:
        rng = np.random.default_rng(5)
        shared = {}
        for f in self.settings.features:
            xs = np.array([float(d[f]) for d in self.pool[: 20 * REFERENCE : 20]])
            shared[f] = np.sort(xs + rng.uniform(-1e-6, 1e-6, xs.shape) * (1 + np.abs(xs)))

        def references(key: str, feature: str) -> Any:
            return shared[feature]

        return references

    def events(self, keys: Iterator[str]) -> list[Any]:
        """One parsed event for each of ``keys``, drawn from the pool in turn."""
        import msgspec

        parse_doc = getattr(self.parser, "parse_doc", None)
        out = []
        for key in keys:
            d = dict(self.pool[self.offset % len(self.pool)], agent_id=key)
            if parse_doc is not None:
                out.append(parse_doc(d, partition=0, offset=self.offset))
            else:
                out.append(
                    self.parser.parse(msgspec.json.encode(d), partition=0, offset=self.offset)
                )
            self.offset += 1
        return out

    def agents(self, count: int) -> Iterator[str]:
        """``count`` agent ids, the agents taking turns."""
        return (f"agent-{i % self.args.agents}" for i in range(count))

    def warm(self) -> tuple[int, int]:
        """Feed the agents until every stream is testing; (streams testing, streams)."""
        per_key = self.args.window + (0 if self.args.shared_reference else REFERENCE)
        total = self.args.agents * per_key
        for _ in range(0, total + BATCH, BATCH):  # and a batch more: every calibration awaited
            self.monitor.process(self.events(self.agents(BATCH)))
        testing, _ = _testing(self.monitor)
        return testing, self.args.agents * len(self.settings.features)

    def round(self, number: int) -> None:
        """Feed the agents and a flood of new ids; write the changed keys, tombstones, marker."""
        cp = self.checkpoints
        hot = self.events(self.agents(self.args.agents * self.args.round_events))
        ids = [f"new-{number}-{i}" for i in range(self.args.new_keys)]
        flood = self.events(iter(ids * NEW_KEY_EVENTS))
        for lo in range(0, max(len(hot), len(flood)), BATCH):
            self.monitor.process(hot[lo : lo + BATCH] + flood[lo : lo + BATCH])
        for key in self.monitor.take_changed(0):
            record_key = cp.key_record(0, key)
            body = self.monitor.snapshot(keys=[key])
            self.records.append((record_key, self.codec.encode(record_key, 1, body)))
        for key, partition in self.monitor.take_evicted():
            self.records.append((cp.key_record(partition, key), None))
        marker = cp.marker_record(0)
        body = cp.marker_body(self.offset, "bench", self.args.agents + self.args.new_keys)
        self.records.append((marker, self.codec.encode(marker, 1, body)))

    def record_bytes(self, key: str) -> int:
        """Bytes of ``key``'s record as the monitor holds it now."""
        return len(self.codec.encode(RECORD_KEY, 1, self.monitor.snapshot(keys=[key])))

    def new_key_bytes(self) -> int:
        """Bytes of the record of a new key of 3 events."""
        monitor = self.new_monitor()
        monitor.process(self.events(iter(["a-new-key"] * NEW_KEY_EVENTS)))
        return len(self.codec.encode(RECORD_KEY, 1, monitor.snapshot()))

    def read_one(self, key: str) -> Callable[[], object]:
        """Reading one record of ``key``: ``open`` (lazy), or ``decode`` where it is missing."""
        value = self.codec.encode(RECORD_KEY, 1, self.monitor.snapshot(keys=[key]))
        read = getattr(self.codec, "open", None) or self.codec.decode
        return lambda: read(RECORD_KEY, value)


def table(rows: list[tuple[str, str]]) -> str:
    """``rows`` as a two-column table."""
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--new-keys", type=int, default=1_000, help="new ids (3 events) a round")
    p.add_argument("--round-events", type=int, default=10, help="events an agent a round")
    p.add_argument("--window", type=int, default=200)
    p.add_argument("--shared-reference", action="store_true", help="one continuous reference")
    p.add_argument("--pool", type=int, default=100_000, help="simulated events drawn from")
    a = p.parse_args()

    print(f"# python bench/restore.py {' '.join(sys.argv[1:])}")
    print(f"# {Path.cwd().name} at {commit()}; load average {os.getloadavg()[0]:.2f} at start")
    started = time.perf_counter()
    fleet = Fleet(a)
    testing, streams = fleet.warm()
    print(
        f"warm-up: {testing} of {streams} streams testing in {time.perf_counter() - started:.0f} s"
    )
    if testing != streams:
        raise SystemExit("not every stream is testing: refusing to measure")
    warmed = fleet.record_bytes("agent-0")
    new_key = fleet.new_key_bytes()
    read = fleet.read_one("agent-0")
    for number in range(a.rounds):
        fleet.round(number)
    records = fleet.records
    total = sum(len(v) for _, v in records if v is not None)
    tombstones = sum(v is None for _, v in records)
    cp = fleet.checkpoints
    folded = cp.fold_records(records, [0], fleet.codec)[0]

    def restore() -> int:
        monitor = fleet.new_monitor()
        return sum(monitor.restore(body) for body in folded.keys.values())

    restored = restore()
    fold_s = median_seconds(lambda: cp.fold_records(records, [0], fleet.codec), a.repeats)
    restore_s = median_seconds(restore, a.repeats)
    n_read = 1_000
    read_us = median_seconds(lambda: [read() for _ in range(n_read)], a.repeats) / n_read * 1e6
    lazy = "open" if hasattr(fleet.codec, "open") else "decode"
    print(
        table(
            [
                ("commit", commit()),
                ("warmed key record (bytes)", f"{warmed:,}"),
                (f"new key of {NEW_KEY_EVENTS} events record (bytes)", f"{new_key:,}"),
                (
                    "records (rounds, keys, tombstones)",
                    f"{len(records):,} ({a.rounds}, {len(folded.keys):,} folded, {tombstones:,})",
                ),
                ("records total (MiB)", f"{total / 2**20:,.1f}"),
                (f"fold_records median (s, {a.repeats} repeats)", f"{fold_s:.3f}"),
                (f"restore {restored:,} folded keys median (s)", f"{restore_s:.3f}"),
                (f"read one warmed record, {lazy} (us)", f"{read_us:,.1f}"),
                ("load average at end", f"{os.getloadavg()[0]:.2f}"),
            ]
        )
    )


if __name__ == "__main__":
    main()
