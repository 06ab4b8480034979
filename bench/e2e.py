"""End-to-end throughput in the protected state: raw aiokafka consumption vs the worker.

A worker is only doing its job once every stream is calibrated and testing, so the timed part
starts from there:

1. ``--warmup`` telemetry messages (4 features and labels, A agents, keyed by agent) are
   produced to a fresh topic on a local Kafka broker; a ``driftwatch worker`` (a separate
   process, default settings unless given) consumes them until every tracked stream publishes
   a drift score (its calibration is done and it tests) and no calibration is pending. A
   stream publishes only when it is fed, so while the worker waits for calibrations, a few
   more messages (``--trickle``) are produced each time it has read everything. Then it is
   stopped (SIGTERM: a final checkpoint round).
2. ``--messages`` more messages are produced to the same topic (the same simulated agents,
   timestamps continuing), and measured in the same run:

   (a) raw consumption: an ``AIOKafkaConsumer`` reading the topic from the beginning;
   (b) the worker, started again with the same app id: it restores its streams from the
       checkpoint topic and consumes the new messages; its progress, the streams testing and
       the pending calibrations are read from ``/metrics``.

   With ``--repeats R`` step 2 is done R times (each time ``--messages`` more, read by a new
   worker that restores from the previous one's checkpoint); the median ratio is printed.

The workers' ``/metrics`` renderings are reused for 1 s (``metrics_cache_seconds=1`` unless
``--setting`` gives it; the default 5 s would measure a timed part of 10-20 s in steps of 5 s),
so the worker renders and publishes its streams' series about once a second while it is
polled every 0.25 s. Besides first-to-last and the second half (each end known to about a
second), the rate between the first and the last rendering that fell inside the timed part
is printed: the counter's value at two moments, without the ends' rounding. So are the
events per CPU second of each (the worker's ``process_cpu_seconds_total`` over the same
renderings, the raw consumer's process time), which a loaded machine disturbs less than the
wall-clock rates.

Usage::

    .venv/bin/python bench/e2e.py [--messages 1000000] [--warmup 300000] [--agents 100] \
        [--repeats 1]

Without ``--bootstrap`` a broker is started with tests/support/kafka_local.py and stopped at
the end; the workers' logs are kept in ``var/bench-logs/``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

from stream.tools.simulation import TelemetrySimulator  # noqa: E402
from tests.support import pipeline  # noqa: E402
from tests.support.broker import broker_or, create_topic  # noqa: E402
from tests.support.pipeline import START_MS, telemetry_records  # noqa: E402
from tests.support.worker import (  # noqa: E402
    RunningWorker,
    bench_topics,
    bench_worker,
    terminate_on_sigterm,
)

#: Milliseconds between simulated events (the whole fleet): 1,000 events/s of event time.
STEP_MS = 1.0


def produce(bootstrap: str, topic: str, sim: TelemetrySimulator, start: int, count: int) -> float:
    """Produce ``count`` simulated messages, the first stamped ``start`` events in; seconds."""
    started = time.perf_counter()
    pipeline.produce(
        topic,
        telemetry_records(
            sim.events(count, start_ms=int(START_MS + start * STEP_MS), step_ms=STEP_MS)
        ),
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=50,
        batch_size=512 * 1024,
        compression_type=None,
    )
    return time.perf_counter() - started


async def raw_consume(bootstrap: str, topic: str, messages: int) -> tuple[float, float]:
    """Seconds for a raw ``AIOKafkaConsumer`` to read ``messages`` from the beginning, and the
    CPU seconds this process spent meanwhile."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{time.time_ns()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    started = None
    cpu = 0.0
    try:
        while seen < messages:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                if started is None:
                    started = time.perf_counter()
                    cpu = time.process_time()
                seen += len(records)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await consumer.stop()
    return elapsed, cpu


@dataclass(frozen=True)
class Streams:
    """What /metrics says of the worker's streams at one moment."""

    consumed: float
    tracked: int
    testing: int
    pending: int
    cpu: float  # the worker process's CPU seconds (process_cpu_seconds_total)


def streams(worker: RunningWorker, topic: str) -> Streams:
    """Events consumed, streams tracked, streams testing (a drift score published), pending
    calibrations (the accuracy streams included, the numeric ones per (key, feature))."""
    samples = worker.metrics()
    testing = sum(1 for (name, _), _v in samples.items() if name == "driftwatch_drift_score")

    def one(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return samples.get((name, labels), 0.0)

    return Streams(
        consumed=one("driftwatch_events_consumed_total", (("topic", topic),)),
        tracked=int(one("driftwatch_tracked_streams")),
        testing=testing,
        pending=int(one("driftwatch_calibrations_pending")),
        cpu=one("process_cpu_seconds_total"),
    )


def poll(
    worker: RunningWorker, topic: str, done: Callable[[Streams], bool], timeout: float
) -> list[tuple[float, Streams]]:
    """Sample the worker every 0.25 s until ``done``; the samples (perf_counter, Streams)."""
    samples: list[tuple[float, Streams]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.alive():
            raise RuntimeError("worker exited:\n" + worker.log_tail(3000))
        try:
            s = streams(worker, topic)
        except OSError:
            time.sleep(0.25)
            continue
        samples.append((time.perf_counter(), s))
        if done(s):
            return samples
        time.sleep(0.25)
    last = samples[-1][1] if samples else None
    raise RuntimeError(f"worker not done within {timeout:.0f} s (last: {last})")


def protected(warmup: int, expected: int) -> Callable[[Streams], bool]:
    """Every warm-up event consumed, ``expected`` streams tracked, all testing, none pending."""

    def done(s: Streams) -> bool:
        return (
            s.consumed >= warmup
            and s.tracked >= expected
            and s.testing >= s.tracked
            and s.pending == 0
        )

    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--messages", type=int, default=1_000_000, help="timed messages")
    p.add_argument(
        "--warmup", type=int, default=300_000, help="messages before the timed part (to protect)"
    )
    p.add_argument(
        "--trickle", type=int, default=2_000, help="messages added while calibrations finish"
    )
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--repeats", type=int, default=1, help="timed parts (raw, then the worker)")
    p.add_argument("--bootstrap", help="use this broker instead of starting one")
    p.add_argument(
        "--protect-timeout", type=float, default=1800.0, help="seconds to wait for protection"
    )
    p.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra worker setting, e.g. --setting window_size=200",
    )
    args = p.parse_args(argv)
    terminate_on_sigterm()  # a SIGTERM stops the workers and the broker on the way out
    extra = dict(item.partition("=")[::2] for item in args.setting)
    topic = f"bench-telemetry-{time.time_ns()}"
    settings = {
        **bench_topics(topic),
        "log_level": "warning",
        "metrics_cache_seconds": "1",
        **extra,
    }
    expected = args.agents * 5  # 4 numeric features and the accuracy stream a key
    n, w = args.messages, args.warmup
    load_before = os.getloadavg()
    sim = TelemetrySimulator(args.agents, seed=1)
    with broker_or(args.bootstrap) as bootstrap:
        create_topic(bootstrap, topic, 6)
        produce_warm_s = produce(bootstrap, topic, sim, 0, w)
        started = time.perf_counter()
        produced = w
        done = protected(w, expected)
        deadline = time.monotonic() + args.protect_timeout
        with bench_worker(bootstrap, f"{topic}-warmup", settings) as worker:
            while True:
                warm = poll(
                    worker,
                    topic,
                    lambda s, target=produced: done(s) or s.consumed >= target,
                    max(1.0, deadline - time.monotonic()),
                )
                if done(warm[-1][1]):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not protected within {args.protect_timeout:.0f} s")
                produce(bootstrap, topic, sim, produced, args.trickle)
                produced += args.trickle
                time.sleep(1.0)
        protect_s = warm[-1][0] - started
        at_protection = warm[-1][1]
        warmed = produced
        timed_parts = []
        for repeat in range(args.repeats):
            produce_s = produce(bootstrap, topic, sim, produced, n)
            produced += n
            raw_s, raw_cpu = asyncio.run(raw_consume(bootstrap, topic, produced))
            restart = time.perf_counter()
            with bench_worker(bootstrap, f"{topic}-timed-{repeat}", settings) as worker:
                timed = poll(worker, topic, lambda s: s.consumed >= n, 1800.0)
                end = streams(worker, topic)
            timed_parts.append(
                Timed(produced, produce_s, raw_s, raw_cpu, restart, timed, end, os.getloadavg())
            )
    load_after = os.getloadavg()

    print(f"driftwatch end-to-end benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(
        f"{warmed:,} warm-up ({w:,} + trickle), then {args.repeats} x {n:,} timed messages, "
        f"{args.agents} agents x 4 features + accuracy, "
        f"6 partitions; settings: {extra or 'defaults'}"
    )
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    print(f"produced with kafka-python: warm-up {produce_warm_s:.1f} s")
    print(
        f"protection: {at_protection.testing} of {at_protection.tracked} streams testing, "
        f"0 calibrations pending, {protect_s:.1f} s after the first worker started"
    )
    ratios = []
    for i, part in enumerate(timed_parts):
        rows = part.rows(n)
        ratios.append(rows[1][2])
        print()
        print(
            f"timed part {i + 1}: {part.topic_size:,} messages in the topic (produced in "
            f"{part.produce_s:.1f} s); load average after {part.load}"
        )
        print(part.summary())
        print(f"{'measure':44s} {'events/s':>10s} {'vs raw':>8s}")
        for label, rate, ratio in rows:
            print(f"{label:44s} {rate:10,.0f} {ratio:8.2f}")
        if not part.all_testing():
            print("NOTE: not every stream was testing throughout the timed part (see above)")
    if len(ratios) > 1:
        print()
        median = statistics.median(ratios)
        print(f"median worker / raw ratio over {len(ratios)} timed parts: {median:.2f}")
    return 0


@dataclass(frozen=True)
class Timed:
    """One timed part: the topic's size, producing, raw and worker timings."""

    topic_size: int
    produce_s: float
    raw_s: float
    raw_cpu: float
    restart: float
    samples: list[tuple[float, Streams]]
    end: Streams
    load: tuple[float, float, float]

    def rows(self, n: int) -> list[tuple[str, float, float]]:
        """``(measure, events/s, ratio to raw)`` of raw, the worker and its second half."""
        first = next(t for t, s in self.samples if s.consumed > 0)
        half = next(t for t, s in self.samples if s.consumed >= n / 2)
        last = self.samples[-1][0]
        raw_rate = self.topic_size / self.raw_s
        worker_rate = n / (last - first)
        steady = (n / 2) / (last - half)
        rows = [
            ("(a) raw aiokafka consumption", raw_rate, 1.0),
            ("(b) worker, first to last timed message", worker_rate, worker_rate / raw_rate),
            ("(b) worker, second half", steady, steady / raw_rate),
        ]
        inside: dict[float, tuple[float, float]] = {}  # counter value: (when, cpu) first seen
        for t, s in self.samples:
            if 0 < s.consumed < n:
                inside.setdefault(s.consumed, (t, s.cpu))
        if len(inside) >= 2:
            (c0, (t0, cpu0)), (c1, (t1, cpu1)) = min(inside.items()), max(inside.items())
            between = (c1 - c0) / (t1 - t0)
            rows.append(("(b) worker, between renderings inside", between, between / raw_rate))
            if cpu1 > cpu0 and self.raw_cpu > 0:
                raw_per_cpu = self.topic_size / self.raw_cpu
                per_cpu = (c1 - c0) / (cpu1 - cpu0)
                rows.append(("(a) raw, events per CPU second", raw_per_cpu, 1.0))
                rows.append(("(b) worker, per CPU second inside", per_cpu, per_cpu / raw_per_cpu))
        return rows

    def pending(self) -> int:
        return max(s.pending for _, s in self.samples)

    def all_testing(self) -> bool:
        return self.end.testing >= self.end.tracked and not self.pending()

    def summary(self) -> str:
        first = next(t for t, s in self.samples if s.consumed > 0)
        return (
            f"timed worker: restored in {first - self.restart:.1f} s (start to first event); "
            f"streams testing at the end {self.end.testing} of {self.end.tracked}; most "
            f"calibrations pending at a sample {self.pending()}"
        )


if __name__ == "__main__":
    sys.exit(main())
