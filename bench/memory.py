"""Memory of the worker's state under key churn: is RSS bounded by ``max_tracked_keys``?

Telemetry goes through the worker's own pipeline (``BatchProcessor``: parsing, a
``DriftMonitor`` with its LRU key cap, ``Metrics`` on a fresh ``CollectorRegistry``) in this
process; there is no Kafka. RSS is read from ``/proc/self/status`` (VmRSS, VmHWM for the peak).

Modes::

    .venv/bin/python bench/memory.py                   # churn: 100,000 agents (default)
    .venv/bin/python bench/memory.py --saturate        # every tracked key fully warmed up
    .venv/bin/python bench/memory.py --soak 1800       # steady rate for 30 min, RSS every 10 s

* **churn** (default): ``--agents`` distinct agent ids (100,000) send ``--cold-events`` events
  each (3), in arrival blocks, while ``--hot`` agents (100) carry ``--hot-share`` of the
  traffic (half) and warm their detectors up. Keys beyond ``--max-keys`` (10,000) are evicted,
  least recently seen first.
* **saturate**: ``--max-keys`` agents each get ``reference_size + window_size`` events (and
  labels), so every tracked key holds four warmed-up feature detectors and an accuracy stream:
  the worst case, the bound to document. ``--rounds`` (2) repeats this with new agents, so the
  later rounds evict warmed-up keys and replace them with warmed-up keys. With the default ERT
  rule every detector on tied data (rounded latencies, integer counts) is calibrated on its own
  reference, in two background threads, about 0.45 s each here (2 cores): as in the worker the
  streams do not wait for it (they start testing once it is ready), so most are still queued
  when the run ends, and are then cancelled. ``--alpha 1e-6`` runs no calibration at all.
* **soak**: ``--rate`` events a second (5,000) for the given seconds: hot agents plus a stream of
  new agent ids (``--new-per-second``, 100), printing RSS every ``--every`` seconds (10), and the
  RSS slope over the second half, so flatness can be judged.

Values follow ``stream.tools.simulation``'s per-agent profiles (lognormal latency rounded to 0.1 ms,
Poisson token counts, zero-inflated retries, beta error rates rounded to 4 places, labels right
90 % of the time); ``--unrounded`` drops the rounding of latency and error rate (no ties: the
largest references). Window 200 and reference 1,000 are the worker's defaults.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

import msgspec  # noqa: E402
import numpy as np  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from stream.metrics import Metrics  # noqa: E402
from stream.monitoring.monitor import DriftMonitor  # noqa: E402
from stream.monitoring.processor import BatchProcessor, RawMessage  # noqa: E402
from stream.settings import Settings, load_settings  # noqa: E402
from stream.telemetry.records import TelemetryParser  # noqa: E402
from tests.support.pipeline import START_MS  # noqa: E402

LABELS = ("refund", "billing", "shipping", "account", "other")
MIB = 1024 * 1024


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_mib() -> float:
    return status_kib("VmRSS") / 1024


def peak_mib() -> float:
    return status_kib("VmHWM") / 1024


class Telemetry:
    """Vectorised telemetry for agent ids: each agent's profile is derived from its id."""

    def __init__(self, seed: int, unrounded: bool) -> None:
        self.rng = np.random.default_rng(seed)
        self.unrounded = unrounded
        self.offset = 0
        self.ts = START_MS

    def messages(self, agent_ids: list[int], prefix: str = "agent") -> list[RawMessage]:
        n = len(agent_ids)
        ids = np.asarray(agent_ids, dtype=np.int64)
        profile = (ids * 2_654_435_761 % 2**32) / 2**32  # in [0, 1), fixed per agent
        rng = self.rng
        latency = rng.lognormal(np.log(400 + 800 * profile), 0.25 + 0.2 * profile)
        tokens = rng.poisson(200 + 600 * profile)
        retries = np.where(rng.random(n) < 0.85, 0, 1 + rng.poisson(0.5, n))
        errors = rng.beta(2.0, 40 + 40 * profile)
        if not self.unrounded:
            latency, errors = latency.round(1), errors.round(4)
        truth = rng.integers(0, 5, n)
        predicted = np.where(rng.random(n) < 0.9, truth, (truth + 1 + rng.integers(0, 4, n)) % 5)
        out = []
        for i in range(n):
            agent = f"{prefix}-{agent_ids[i]}"
            doc = {
                "ts": self.ts,
                "agent_id": agent,
                "response_latency_ms": float(latency[i]),
                "token_count": int(tokens[i]),
                "retry_count": int(retries[i]),
                "error_rate": float(errors[i]),
                "predicted_label": LABELS[predicted[i]],
                "true_label": LABELS[truth[i]],
            }
            out.append(RawMessage(agent.encode(), msgspec.json.encode(doc), 0, self.offset))
            self.offset += 1
            self.ts += 1
        return out


class Pipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry, max_keys=settings.max_metric_keys)
        # as in the worker: streams never wait for their calibration
        self.monitor = DriftMonitor(settings, metrics=self.metrics, reproducible=False)
        self.processor = BatchProcessor(
            TelemetryParser(settings), self.monitor, self.metrics, settings.telemetry_topic
        )
        self.events = 0
        self.dead = 0
        self.drift = 0

    def feed(self, batch: list[RawMessage]) -> None:
        out = self.processor.handle(batch)
        self.events += len(batch)
        self.dead += len(out.dead_letters)
        self.drift += len(out.drift_events)

    @property
    def evictions_metric(self) -> float:
        return self.registry.get_sample_value("driftwatch_key_evictions_total") or 0.0

    def row(self, base: float, started: float, seen: int) -> list[str]:
        m = self.monitor
        rss = rss_mib()
        streams = m.tracked_streams
        per_stream = (rss - base) * MIB / streams if streams else float("nan")
        return [
            f"{time.perf_counter() - started:,.1f}",
            f"{self.events:,}",
            f"{seen:,}",
            f"{len(m.keys):,}",
            f"{m.evictions:,}",
            f"{streams:,}",
            f"{rss:,.1f}",
            f"{rss - base:,.1f}",
            f"{per_stream:,.0f}",
        ]


HEADER = [
    "s",
    "events",
    "agents seen",
    "keys",
    "evictions",
    "streams",
    "RSS MiB",
    "+MiB",
    "B/stream",
]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(h), 10) for h in HEADER]  # fixed: soak prints rows one at a time
    lines = ["  ".join(h.rjust(w) for h, w in zip(HEADER, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def churn_stream(args: argparse.Namespace, rng: np.random.Generator) -> Iterator[list[int]]:
    """Batches of agent ids: hot agents (ids < hot) and cold ones arriving in blocks."""
    cold_total = args.agents * args.cold_events
    hot_per_batch = round(args.batch * args.hot_share)
    cold_per_batch = args.batch - hot_per_batch
    block = 1000  # cold agents arrive 1,000 at a time, their events shuffled within the block
    pending: list[int] = []
    next_cold = 0
    emitted = 0
    while emitted < cold_total:
        while len(pending) < cold_per_batch and next_cold < args.agents:
            ids = np.repeat(
                np.arange(next_cold, min(next_cold + block, args.agents)), args.cold_events
            )
            rng.shuffle(ids)
            pending.extend((ids + args.hot).tolist())
            next_cold += block
        cold, pending = pending[:cold_per_batch], pending[cold_per_batch:]
        emitted += len(cold)
        hot = rng.integers(0, args.hot, hot_per_batch).tolist()
        batch = hot + cold
        rng.shuffle(batch)
        yield batch


def run_churn(args: argparse.Namespace, settings: Settings) -> None:
    rng = np.random.default_rng(args.seed)
    gen = Telemetry(args.seed, args.unrounded)
    pipe = Pipeline(settings)
    base = rss_mib()
    started = time.perf_counter()
    rows: list[list[str]] = []
    seen: set[int] = set()
    total_batches = -(
        -args.agents * args.cold_events // (args.batch - round(args.batch * args.hot_share))
    )
    every = max(1, total_batches // 12)
    for i, ids in enumerate(churn_stream(args, rng)):
        seen.update(ids)
        pipe.feed(gen.messages(ids))
        if i % every == every - 1:
            rows.append(pipe.row(base, started, len(seen)))
    rows.append(pipe.row(base, started, len(seen)))
    print(table(rows))
    report(pipe, base, started)


def run_saturate(args: argparse.Namespace, settings: Settings) -> None:
    gen = Telemetry(args.seed, args.unrounded)
    pipe = Pipeline(settings)
    base = rss_mib()
    started = time.perf_counter()
    per_key = settings.reference_size + settings.window_size
    group = 100  # keys fed together, interleaved, 10 events per key per batch
    rows: list[list[str]] = []
    keys_total = args.max_keys * args.rounds
    every = max(1, keys_total // group // (10 * args.rounds))
    half = args.max_keys // 2  # RSS at half and at all max_keys warmed keys: the marginal cost
    marks: dict[int, float] = {}
    for g, first in enumerate(range(0, keys_total, group)):
        keys = list(range(first, min(first + group, keys_total)))
        for _ in range(0, per_key, 10):
            pipe.feed(gen.messages(keys * 10))
        if g % every == every - 1:
            rows.append(pipe.row(base, started, first + len(keys)))
        if first + len(keys) in (half, args.max_keys):
            marks[first + len(keys)] = rss_mib()
    print(table(rows))
    if len(marks) == 2 and args.max_keys > half:
        marginal = (marks[args.max_keys] - marks[half]) * MIB / (args.max_keys - half)
        print(
            f"marginal {half:,} -> {args.max_keys:,} warmed keys: RSS {marks[half]:,.1f} -> "
            f"{marks[args.max_keys]:,.1f} MiB, {marginal:,.0f} B per key"
        )
    warm = sum(
        all(fs.detector is not None for fs in state.features)
        and state.accuracy is not None
        and state.accuracy.detector is not None
        for state in pipe.monitor.keys.values()
    )
    print(f"keys with every detector warmed up: {warm:,} of {len(pipe.monitor.keys):,}")
    report(pipe, base, started)
    if args.breakdown:
        breakdown(pipe, args.breakdown)


_ATOMS = (int, float, bool, str, bytes, type(None))


def deep_bytes(obj: object, path: str, seen: set[int], out: dict[str, int], depth: int) -> None:
    """Add ``obj``'s bytes (and those of what it holds, each object once) to ``out[path]``.

    Arrays count their data where they own it (a view counts its header, and its base under the
    path that reaches it first); attributes below ``depth`` levels are summed into their parent.
    """
    if id(obj) in seen or isinstance(obj, type) or (callable(obj) and not hasattr(obj, "__dict__")):
        return
    seen.add(id(obj))
    out[path] += sys.getsizeof(obj)
    if isinstance(obj, np.ndarray):
        if obj.base is not None:
            deep_bytes(obj.base, path, seen, out, depth)
        return
    if isinstance(obj, _ATOMS):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            deep_bytes(k, path, seen, out, depth)
            deep_bytes(v, path, seen, out, depth)
        return
    if isinstance(obj, list | tuple | set | frozenset):
        for v in obj:
            deep_bytes(v, path, seen, out, depth)
        return
    attrs: dict[str, object] = {}
    if hasattr(obj, "__dict__"):
        out[path] += sys.getsizeof(obj.__dict__)
        seen.add(id(obj.__dict__))
        attrs.update(vars(obj))
    for klass in type(obj).__mro__:
        for name in getattr(klass, "__slots__", ()):
            if hasattr(obj, name) and name not in ("__dict__", "__weakref__"):
                attrs[name] = getattr(obj, name)
    for name, value in attrs.items():
        sub = f"{path}.{name}" if depth > 0 else path
        deep_bytes(value, sub, seen, out, depth - 1)


def breakdown(pipe: Pipeline, sample: int) -> None:
    """Bytes per part of the last ``sample`` tracked keys, averaged per key."""
    m = pipe.monitor
    keys = [st for st in list(m.keys.values())[-sample:]]
    seen: set[int] = set()
    # what every key shares (settings, calibration caches, ...) is not a key's own
    for shared in (pipe.settings, pipe.metrics, m.settings):
        deep_bytes(shared, "shared", seen, defaultdict(int), 0)
    out: dict[str, int] = defaultdict(int)
    names = [*pipe.settings.features, "accuracy"]
    for st in keys:
        streams = list(st.features) + ([st.accuracy] if st.accuracy is not None else [])
        for name, fs in zip(names, streams, strict=False):
            for attr in fs.__slots__:
                value = getattr(fs, attr)
                if attr == "detector":
                    deep_bytes(value, f"{name}.detector", seen, out, 1)
                else:
                    deep_bytes(value, f"{name}.{attr}", seen, out, 0)
        deep_bytes(st, "key (other)", seen, out, 0)
    total = sum(out.values())
    n = len(keys)
    print(f"\nbreakdown of the last {n:,} keys (sys.getsizeof, each object once), per key:")
    for path, b in sorted(out.items(), key=lambda kv: -kv[1]):
        if b / n >= 50:
            print(f"  {path:<40} {b / n:>9,.0f} B")
    print(f"  {'total':<40} {total / n:>9,.0f} B")


def run_soak(args: argparse.Namespace, settings: Settings) -> None:
    rng = np.random.default_rng(args.seed)
    gen = Telemetry(args.seed, args.unrounded)
    pipe = Pipeline(settings)
    base = rss_mib()
    started = time.perf_counter()
    per_tick = max(1, round(args.rate / 10))  # ten batches a second
    new_per_tick = args.new_per_second / 10
    next_new = float(args.hot)
    samples: list[tuple[float, float]] = []
    rows: list[list[str]] = []
    seen = args.hot
    tick = 0
    next_print = args.every
    while True:
        now = time.perf_counter() - started
        if now >= args.soak:
            break
        first, next_new = int(next_new), next_new + new_per_tick
        fresh = list(range(first, int(next_new)))
        seen += len(fresh)
        ids = rng.integers(0, args.hot, per_tick - len(fresh)).tolist() + fresh
        pipe.feed(gen.messages(ids))
        tick += 1
        ahead = started + tick / 10 - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
        if now >= next_print:
            samples.append((now, rss_mib()))
            rows.append(pipe.row(base, started, seen))
            print(table(rows).splitlines()[-1] if len(rows) > 1 else table(rows), flush=True)
            while next_print <= now:  # one row per sample, also after falling behind
                next_print += args.every
    behind = tick / 10 - (time.perf_counter() - started)
    half = [(t, r) for t, r in samples if t >= args.soak / 2]
    if len(half) >= 2:
        t, r = np.array(half).T
        slope = float(np.polyfit(t / 60, r, 1)[0])
        print(
            f"second half: RSS {r.min():,.1f}-{r.max():,.1f} MiB, slope {slope:+.2f} MiB/min "
            f"(least squares over {len(half)} samples)"
        )
    if behind < -1:
        print(f"note: fell {-behind:.0f} s behind the {args.rate:,} events/s schedule")
    report(pipe, base, started)


def report(pipe: Pipeline, base: float, started: float) -> None:
    m = pipe.monitor
    rss = rss_mib()
    keys, streams = len(m.keys), m.tracked_streams
    print(
        f"\nend: {pipe.events:,} events in {time.perf_counter() - started:,.0f} s; "
        f"{keys:,} keys / {streams:,} streams tracked; evictions {m.evictions:,} "
        f"(driftwatch_key_evictions_total {pipe.evictions_metric:,.0f}); "
        f"{pipe.drift:,} drift events, {pipe.dead:,} dead letters"
    )
    print(
        f"RSS {rss:,.1f} MiB (peak {peak_mib():,.1f}), baseline before feeding {base:,.1f} MiB: "
        f"state {rss - base:,.1f} MiB = {(rss - base) * MIB / max(keys, 1):,.0f} B per key, "
        f"{(rss - base) * MIB / max(streams, 1):,.0f} B per stream"
    )
    # keys refused per-key series are remembered (to count each once), evicted or not
    print(f"keys remembered as refused per-key series: {len(pipe.metrics._refused):,}")
    from detectors import background

    print(f"calibrations queued: {background.queued():,}")  # submitted, not started yet


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--saturate", action="store_true", help="warm up every tracked key")
    mode.add_argument("--soak", type=float, default=0.0, metavar="SECONDS", help="steady rate")
    p.add_argument("--agents", type=int, default=100_000, help="distinct cold agents (churn)")
    p.add_argument("--cold-events", type=int, default=3, help="events per cold agent (churn)")
    p.add_argument("--hot", type=int, default=100, help="hot agents")
    p.add_argument("--hot-share", type=float, default=0.5, help="hot share of traffic (churn)")
    p.add_argument("--batch", type=int, default=1000, help="messages per batch")
    p.add_argument("--max-keys", type=int, default=10_000, help="max_tracked_keys")
    p.add_argument("--window", type=int, default=200, help="window_size")
    p.add_argument("--reference", type=int, default=1000, help="reference_size")
    p.add_argument("--alpha", type=float, default=None, help="alpha rule instead of the ERT")
    p.add_argument("--unrounded", action="store_true", help="no ties in latency, error rate")
    p.add_argument(
        "--rounds", type=int, default=2, help="saturate: rounds of max-keys new keys (evicting)"
    )
    p.add_argument("--rate", type=int, default=5000, help="events per second (soak)")
    p.add_argument("--new-per-second", type=float, default=100.0, help="new agents/s (soak)")
    p.add_argument("--every", type=float, default=10.0, help="seconds between samples (soak)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--breakdown",
        type=int,
        default=0,
        metavar="KEYS",
        help="saturate: print the bytes per part of the last KEYS keys",
    )
    args = p.parse_args(argv)
    overrides: dict[str, object] = {
        "max_tracked_keys": args.max_keys,
        "window_size": args.window,
        "reference_size": args.reference,
        "batch_size": args.batch,
    }
    if args.alpha is not None:
        overrides["alpha"] = args.alpha
    settings = load_settings(environ={}, **overrides)
    mode_name = "saturate" if args.saturate else f"soak {args.soak:g} s" if args.soak else "churn"
    print(
        f"driftwatch memory benchmark -- {mode_name}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n"
        f"python {platform.python_version()}, numpy {np.__version__}; "
        f"{platform.platform()}\n"
        f"max_tracked_keys {settings.max_tracked_keys:,}, window {settings.window_size}, "
        f"reference {settings.reference_size}, "
        + (f"alpha {settings.alpha:g}" if settings.alpha else f"ert {settings.effective_ert:,.0f}")
        + f", max_metric_keys {settings.max_metric_keys}, batch {args.batch}"
        + (", unrounded" if args.unrounded else "")
    )
    if args.saturate:
        run_saturate(args, settings)
    elif args.soak:
        print(f"{args.rate:,} events/s, {args.hot} hot agents, {args.new_per_second:g} new/s")
        run_soak(args, settings)
    else:
        print(
            f"{args.agents:,} cold agents x {args.cold_events} events, {args.hot} hot agents "
            f"with {args.hot_share:.0%} of the traffic"
        )
        run_churn(args, settings)
    # do not wait at exit for the background calibrations still queued
    from detectors import background

    for pool in background._POOLS.values():
        pool.shutdown(wait=False, cancel_futures=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
