"""Soak: one ``driftwatch worker`` under a steady telemetry rate; does its memory stay flat?

A producer sends ``--rate`` events a second (2,000) from ``--agents`` agents (200), keyed by
agent, with ``stream.tools.simulation``'s per-agent profiles (lognormal latency, Poisson tokens,
zero-inflated retries, beta error rates, labels right 90 % of the time: 4 features plus the
accuracy stream) to a fresh 6-partition topic, for ``--minutes`` (30). One ``driftwatch worker``
process (default settings unless ``--setting``) consumes it. Every ``--every`` seconds (10) the
benchmark reads the worker's RSS (``VmRSS`` from ``/proc/<pid>/status``) and its ``/metrics``:
events consumed, consumer lag (summed over partitions), tracked streams, batch processing
latency (mean and p99 of the batches in the interval, from the histogram).

It prints a thinned table of the samples and a summary: RSS at 5 minutes and at the end, the
least-squares slope of RSS over the second half (MiB/hour) and the growth it implies over that
half, the largest lag, and whether the worker kept up (consumed at the produced rate, with a
backlog at the end under ``--max-backlog-seconds`` of traffic). Exit status 1 if the worker
died, an agent crashed (``Crashed`` in its log), it did not keep up, or RSS grew more than
``--tolerance-mib`` (32) over the second half; 0 otherwise.

Usage::

    .venv/bin/python bench/soak.py [--minutes 30] [--rate 2000] [--agents 200] \\
        [--bootstrap HOST:PORT] [--plot FILE.png] [--setting name=value ...]

Without ``--bootstrap`` a broker is started with tests/support/kafka_local.py. The broker and the
worker are stopped on exit, on Ctrl-C and on SIGTERM; the worker's log is kept in
``var/bench-logs/``.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

import msgspec  # noqa: E402

from stream.tools.simulation import TelemetrySimulator  # noqa: E402
from tests.support.broker import broker_or, create_topic  # noqa: E402
from tests.support.worker import (  # noqa: E402
    RunningWorker,
    bench_worker,
    by_label,
    terminate_on_sigterm,
    total,
)

MIB = 1024 * 1024


# ---------------------------------------------------------------------------- the producer


class SteadyProducer(threading.Thread):
    """Sends ``rate`` events a second in 50 ms ticks, paced on the monotonic clock."""

    TICK = 0.05

    def __init__(self, bootstrap: str, topic: str, rate: int, agents: int, seconds: float) -> None:
        super().__init__(name="soak-producer", daemon=True)
        from kafka import KafkaProducer

        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=256 * 1024
        )
        self.topic = topic
        self.rate = rate
        self.seconds = seconds
        self.sim = TelemetrySimulator(agents, seed=20_261_124)
        self.sent = 0
        self.behind_max = 0.0  # seconds the producer fell behind its schedule, worst case
        self.started = 0.0
        self.finished = 0.0
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.started = time.monotonic()
            total = int(self.seconds * self.rate)
            while not self.stop_event.is_set() and self.sent < total:
                now = time.monotonic()
                due = min(int((now - self.started) * self.rate) + 1, total)
                self.behind_max = max(self.behind_max, (due - self.sent) / self.rate)
                ts = int(time.time() * 1000)
                while self.sent < due:
                    ev = self.sim.event(ts)
                    self.producer.send(
                        self.topic, key=ev["agent_id"].encode(), value=msgspec.json.encode(ev)
                    )
                    self.sent += 1
                self.stop_event.wait(max(0.0, self.TICK - (time.monotonic() - now)))
            self.producer.flush(timeout=60)
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            self.finished = time.monotonic()
            self.producer.close(timeout=10)


# ---------------------------------------------------------------------------- samples


@dataclass
class Sample:
    t: float  # seconds since the producer started
    produced: int
    consumed: float
    lag: float  # driftwatch_consumer_lag summed over partitions
    streams: float
    batches: float
    latency_sum: float
    buckets: dict[float, float]  # le -> cumulative count
    rss: float

    @property
    def backlog(self) -> float:
        return self.produced - self.consumed


def take_sample(worker: RunningWorker, producer: SteadyProducer, topic: str) -> Sample:
    m = worker.metrics()
    buckets: dict[float, float] = {}
    for (name, labels), v in m.items():
        if name == "driftwatch_processing_latency_seconds_bucket":
            buckets[float(dict(labels)["le"])] = v
    return Sample(
        t=time.monotonic() - producer.started,
        produced=producer.sent,
        consumed=by_label(m, "driftwatch_events_consumed_total", "topic").get(topic, 0.0),
        lag=total(m, "driftwatch_consumer_lag"),
        streams=total(m, "driftwatch_tracked_streams"),
        batches=total(m, "driftwatch_processing_latency_seconds_count"),
        latency_sum=total(m, "driftwatch_processing_latency_seconds_sum"),
        buckets=buckets,
        rss=worker.rss_mib(),
    )


def interval_latency(a: Sample, b: Sample) -> tuple[float, float]:
    """(mean, p99) batch processing seconds over the batches between two samples (NaN if none).
    The p99 is the upper bound of the histogram bucket that holds it."""
    n = b.batches - a.batches
    if n <= 0:
        return math.nan, math.nan
    mean = (b.latency_sum - a.latency_sum) / n
    for le in sorted(b.buckets):
        if b.buckets[le] - a.buckets.get(le, 0.0) >= 0.99 * n:
            return mean, le
    return mean, math.inf


def least_squares_slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0


def fmt_ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    return "inf" if math.isinf(seconds) else f"{seconds * 1000:,.0f}"


def print_row(prev: Sample | None, s: Sample, file: object = sys.stdout) -> None:
    rate = (s.consumed - prev.consumed) / (s.t - prev.t) if prev else math.nan
    mean, p99 = interval_latency(prev, s) if prev else (math.nan, math.nan)
    print(
        f"{s.t / 60:7.1f} {s.produced:11,} {s.consumed:11,.0f} {s.backlog:8,.0f} {s.lag:8,.0f}"
        f" {'-' if math.isnan(rate) else f'{rate:,.0f}':>8s} {s.streams:8,.0f}"
        f" {fmt_ms(mean):>8s} {fmt_ms(p99):>8s} {s.rss:9.1f}",
        file=file,  # type: ignore[arg-type]
        flush=True,
    )


HEADER = (
    f"{'min':>7s} {'produced':>11s} {'consumed':>11s} {'backlog':>8s} {'lag':>8s}"
    f" {'ev/s':>8s} {'streams':>8s} {'batch ms':>8s} {'p99 ms':>8s} {'RSS MiB':>9s}"
)


def plot(samples: list[Sample], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.plot([s.t / 60 for s in samples], [s.rss for s in samples], color="tab:blue")
    ax.set_xlabel("minutes")
    ax.set_ylabel("worker RSS (MiB)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot([s.t / 60 for s in samples], [s.backlog for s in samples], color="tab:orange")
    ax2.set_ylabel("backlog: produced - consumed (events)", color="tab:orange")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--rate", type=int, default=2000, help="events a second")
    p.add_argument("--agents", type=int, default=200)
    p.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--rows", type=int, default=31, help="rows of the printed table (thinned)")
    p.add_argument(
        "--tolerance-mib",
        type=float,
        default=32.0,
        help="largest RSS growth over the second half (fitted line) that passes",
    )
    p.add_argument(
        "--max-backlog-seconds",
        type=float,
        default=10.0,
        help="the worker kept up if its final backlog is under this many seconds of traffic",
    )
    p.add_argument("--bootstrap", help="use this broker instead of starting one")
    p.add_argument("--plot", type=Path, help="save RSS and backlog over time as a PNG")
    p.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="worker setting, e.g. --setting window_size=100",
    )
    args = p.parse_args(argv)
    terminate_on_sigterm()
    extra = dict(item.partition("=")[::2] for item in args.setting)
    seconds = args.minutes * 60
    topic = f"soak-telemetry-{time.time_ns()}"
    settings = {
        "telemetry_topic": topic,
        "drift_topic": f"{topic}-drift",
        "dead_letter_topic": f"{topic}-dlq",
        "control_topic": f"{topic}-control",
        "app_id": f"soak-{topic}",
        **extra,
    }
    started_at = time.gmtime()
    samples: list[Sample] = []
    status = "ok"
    peak = crashes = math.nan
    pid = 0
    with broker_or(args.bootstrap) as bootstrap:
        for name in (topic, settings["drift_topic"], settings["dead_letter_topic"]):
            create_topic(bootstrap, name, 6)  # as an operator would, before the worker
        with bench_worker(bootstrap, topic, settings) as worker:
            pid = worker.pid
            producer = SteadyProducer(bootstrap, topic, args.rate, args.agents, seconds)
            producer.start()
            print(HEADER, file=sys.stderr, flush=True)
            try:
                next_at = time.monotonic() + args.every
                while producer.is_alive():
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    next_at += args.every
                    if not worker.alive():
                        status = f"worker died (exit {worker.proc.returncode})"
                        break
                    samples.append(take_sample(worker, producer, topic))
                    print_row(samples[-2] if len(samples) > 1 else None, samples[-1], sys.stderr)
                if producer.error is not None:
                    raise producer.error
                # drain: give the worker time to catch up with what was produced
                drain_started = time.monotonic()
                drain_until = drain_started + 120
                while status == "ok" and time.monotonic() < drain_until:
                    if not worker.alive():
                        status = f"worker died (exit {worker.proc.returncode})"
                        break
                    last = take_sample(worker, producer, topic)
                    if last.backlog <= 0:
                        break
                    time.sleep(1)
                if status == "ok":
                    crashes = worker.crashes()
                    peak = worker.peak_mib()
                    drained = take_sample(worker, producer, topic)
                    drain_s = time.monotonic() - drain_started
            finally:
                producer.stop_event.set()
                producer.join(timeout=30)
    if not samples:
        print(f"no samples: {status}")
        return 1

    # ------------------------------------------------------------------ report
    print(
        f"driftwatch soak, {time.strftime('%Y-%m-%d %H:%M UTC', started_at)}: "
        f"{args.rate:,} events/s, {args.agents} agents x 4 features (+ accuracy), "
        f"6 partitions, {args.minutes:g} min; worker settings: {extra or 'defaults'}"
    )
    print(f"worker pid {pid}; samples every {args.every:g} s; table thinned to ~{args.rows} rows")
    print()
    print(HEADER)
    step = max(1, math.ceil(len(samples) / args.rows))
    shown = list(range(step - 1, len(samples), step))
    if shown[-1] != len(samples) - 1:
        shown.append(len(samples) - 1)
    prev: Sample | None = None
    for i in shown:
        print_row(samples[i - 1] if i > 0 else prev, samples[i])
    print()

    last = samples[-1]
    at5 = min(samples, key=lambda s: abs(s.t - 300))
    half = [s for s in samples if s.t >= last.t / 2]
    slope = least_squares_slope([s.t for s in half], [s.rss for s in half])  # MiB/s
    growth = slope * (half[-1].t - half[0].t)
    max_lag = max(s.lag for s in samples)
    max_backlog = max(s.backlog for s in samples)
    produced_rate = last.produced / last.t
    consumed_rate = last.consumed / last.t
    final_backlog_s = last.backlog / args.rate
    kept_up = status == "ok" and final_backlog_s <= args.max_backlog_seconds
    print(
        f"produced {last.produced:,} at {produced_rate:,.0f}/s (at most "
        f"{producer.behind_max:.2f} s behind schedule); consumed {consumed_rate:,.0f}/s"
    )
    print(
        f"RSS: {at5.rss:.1f} MiB at {at5.t / 60:.1f} min, {last.rss:.1f} MiB at the end "
        f"({last.rss - at5.rss:+.1f} MiB); min/max over the second half "
        f"{min(s.rss for s in half):.1f}/{max(s.rss for s in half):.1f} MiB; peak (VmHWM) "
        f"{peak:.1f} MiB"
    )
    print(
        f"second-half slope (least squares, {len(half)} samples): {slope * 3600:+.1f} MiB/hour "
        f"= {growth:+.1f} MiB over {(half[-1].t - half[0].t) / 60:.1f} min "
        f"(tolerance {args.tolerance_mib:g} MiB)"
    )
    print(
        f"lag: max {max_lag:,.0f} (consumer_lag metric); backlog max {max_backlog:,.0f}, "
        f"at the end of production {last.backlog:,.0f} ({final_backlog_s:.1f} s of traffic)"
        + (
            f"; then, production stopped, {drained.backlog:,.0f} after {drain_s:.0f} s of "
            f"draining"
            + (
                f" ({(drained.consumed - last.consumed) / drain_s:,.0f} events/s)"
                if drain_s >= 5
                else ""
            )
            if status == "ok"
            else ""
        )
    )
    print(
        f"worker: {status}; same process from start to end (0 restarts); "
        f"crash/restart lines in its log: {crashes:g}; kept up: {'yes' if kept_up else 'NO'}"
    )
    if args.plot is not None:
        plot(
            samples,
            args.plot,
            f"driftwatch soak: {args.rate:,} events/s, {args.agents} agents, "
            f"{args.minutes:g} min (worker RSS, backlog)",
        )
        print(f"plot: {args.plot}")
    failed = status != "ok" or crashes != 0 or not kept_up or growth > args.tolerance_mib
    print("RESULT: " + ("FAIL" if failed else "pass"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
