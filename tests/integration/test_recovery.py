"""Crash recovery and rebalancing on the real broker: nothing lost, nothing counted twice.

Each test produces telemetry with an injected drift at a steady rate, runs workers through
interruptions (SIGKILL at random points; a second worker joining and leaving), and compares with
an uninterrupted worker on the same messages: the drift events (deduplicated by ``event_id``)
must be equal, and every key's final state (read back from the checkpoint topic) must hold
exactly the events produced for it, with the same windows, counts and episodes.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import signal
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream.monitoring.monitor import DriftMonitor
from stream.settings import Settings
from stream.tools.rebaseline import build_command
from stream.tools.simulation import DriftSpec, TelemetrySimulator
from stream.worker.checkpoints import (
    CHECKPOINT_VERSION,
    CheckpointCodec,
    claim_record,
    fold_records,
    key_record,
    marker_body,
    marker_record,
)
from tests.support.broker import KafkaBroker, TopicFactory
from tests.support.pipeline import START_MS
from tests.support.worker import (
    RunningWorker,
    start_worker,
    stop_and_keep_log,
    wait_for,
)

pytestmark = pytest.mark.integration

AGENTS = 6
PARTITIONS = 3
EVENTS = 30_000
RATE = 1_000  # events/s while producing (half a minute: the joins and kills land while it runs)
DRIFT = DriftSpec("agent-2", "response_latency_ms", "shift", 0.6, start_event=14_000)
DETECTION = {
    "window_size": 50,
    "reference_size": 300,
    # one ERT for every stream: the worker budget's shares of these fast streams are far longer
    # and would spend the test calibrating
    "ert": 10_000,
    "checkpoint_interval": 1.0,
    "wait_for_calibration": "true",
    "topic_partitions": PARTITIONS,
    "session_timeout": 6,  # a killed worker's group membership expires after 6 s
}


@dataclass(frozen=True)
class Workload:
    """What a run produces: agents, events (at ``rate`` a second), their time step, a drift."""

    agents: int = AGENTS
    events: int = EVENTS
    rate: int = RATE
    step_ms: int = 10
    drift: DriftSpec = DRIFT
    hold_at: int | None = None  # the event before which production waits for its gate


def _produce(
    bootstrap: str,
    topic: str,
    done: threading.Event,
    load: Workload = Workload(),
    gate: threading.Event | None = None,
) -> Counter[str]:
    """Produce the telemetry at ``load.rate`` events/s; return how many events each agent got."""
    sim = TelemetrySimulator(load.agents, seed=11, drift=load.drift)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    per_agent: Counter[str] = Counter()
    started = time.monotonic()
    try:
        for i, ev in enumerate(sim.events(load.events, start_ms=START_MS, step_ms=load.step_ms)):
            if i == load.hold_at and gate is not None:
                producer.flush()
                assert gate.wait(timeout=300), "production was never let through its gate"
                started = time.monotonic() - i / load.rate
            producer.send(topic, key=ev["agent_id"].encode(), value=msgspec.json.encode(ev))
            per_agent[ev["agent_id"]] += 1
            if i % 100 == 99:
                ahead = (i + 1) / load.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush()
    finally:
        producer.close()
        done.set()
    return per_agent


class _Production:
    def __init__(self, bootstrap: str, topic: str, load: Workload = Workload()) -> None:
        self.done = threading.Event()
        self.gate = threading.Event()  # lets production past ``load.hold_at``
        self.started = time.monotonic()
        self.result: Counter[str] = Counter()

        def run() -> None:
            self.result = _produce(bootstrap, topic, self.done, load, self.gate)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self, timeout: float = 120) -> Counter[str]:
        self.thread.join(timeout=timeout)
        assert self.done.is_set(), "production did not finish"
        return self.result


def _settings(topics: dict[str, str], app_id: str) -> dict[str, object]:
    return {**DETECTION, **topics, "app_id": app_id}


def _caught_up(bootstrap: str, group: str, topic: str, partitions: int = PARTITIONS) -> bool:
    """Whether ``group`` has committed the end offset of every partition of ``topic``."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = consumer.end_offsets(tps)
        return all((consumer.committed(tp) or 0) == ends[tp] for tp in tps)
    finally:
        consumer.close()


def _records(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    try:
        return [(r.key, r.value) for r in consumer]
    finally:
        consumer.close()


def _drift_events(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    """Drift events by event_id; an id seen twice must carry the same event."""
    out: dict[str, dict[str, Any]] = {}
    for _key, value in _records(bootstrap, topic):
        assert value is not None
        doc = msgspec.json.decode(value)
        previous = out.setdefault(doc["event_id"], doc)
        assert previous == doc, f"two different events share event_id {doc['event_id']}"
    return out


def _final_state(
    bootstrap: str, app_id: str, window_size: int = 50, reference_size: int = 300
) -> dict[str, Any]:
    """Every key's state from the app's checkpoint topic, as comparable plain values."""
    settings = Settings(window_size=window_size, reference_size=reference_size, app_id=app_id)
    records = _records(bootstrap, settings.checkpoint_topic_name)
    monitor = DriftMonitor(settings)
    folded = fold_records(records, range(PARTITIONS), CheckpointCodec())
    for cp in folded.values():
        assert cp.offset is not None, f"partition {cp.partition} has no checkpoint marker"
        for blob in cp.keys.values():
            monitor.restore(blob)
    digest: dict[str, Any] = {}
    for key, state in monitor.keys.items():
        streams = []
        for fs in state.features:
            det = fs.detector
            window = None if det is None else np.asarray(getattr(det, "window", []))
            streams.append(
                (
                    fs.n_base,
                    None if det is None else det.n_seen,
                    None if det is None else det.in_drift,
                    None if window is None else window.tolist(),
                    list(fs.warmup),
                )
            )
        digest[key] = (state.seen, state.partition, state.last_offset, streams)
    return digest


def _uninterrupted(
    bootstrap: str, tmp_path: Path, topic_factory: TopicFactory, telemetry: str
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The reference run: one worker, never interrupted, over the same telemetry."""
    topics = {
        "telemetry_topic": telemetry,
        "drift_topic": topic_factory("drift-ref", partitions=1),
        "dead_letter_topic": topic_factory("dlq-ref", partitions=1),
        "control_topic": topic_factory("control-ref", partitions=1),
    }
    app_id = f"ref-{os.urandom(4).hex()}"
    worker = start_worker(bootstrap, tmp_path / "reference", **_settings(topics, app_id))
    try:
        _wait_caught_up(bootstrap, app_id, telemetry, worker)
    finally:
        stop_and_keep_log(worker.proc, worker.log, f"worker-{tmp_path.name}-reference.log")
    return _drift_events(bootstrap, topics["drift_topic"]), _final_state(bootstrap, app_id)


def _assert_equivalent(
    bootstrap: str,
    tmp_path: Path,
    topic_factory: TopicFactory,
    topics: dict[str, str],
    app_id: str,
    per_agent: Counter[str],
) -> None:
    telemetry = topics["telemetry_topic"]
    events = _drift_events(bootstrap, topics["drift_topic"])
    state = _final_state(bootstrap, app_id)
    ref_events, ref_state = _uninterrupted(bootstrap, tmp_path, topic_factory, telemetry)
    _assert_same((events, state), (ref_events, ref_state), per_agent, DRIFT)


def _assert_same(
    run: tuple[dict[str, dict[str, Any]], dict[str, Any]],
    reference: tuple[dict[str, dict[str, Any]], dict[str, Any]],
    per_agent: Counter[str],
    drift: DriftSpec,
) -> None:
    """The run's drift events and final state are the uninterrupted reference's."""
    (events, state), (ref_events, ref_state) = run, reference
    # the oracle of counts: every key holds exactly the events produced for it
    assert {k: v[0] for k, v in state.items()} == dict(per_agent)
    assert {k: v[0] for k, v in ref_state.items()} == dict(per_agent)
    assert state == ref_state
    started = {(e["key"], e["feature"]) for e in events.values() if e["type"] == "drift_started"}
    assert (drift.agent_id, drift.feature) in started
    # the reference is another deployment (its own app_id): the same events, disjoint ids
    assert not events.keys() & ref_events.keys()
    mine, theirs = _deployment_free(events), _deployment_free(ref_events)
    assert mine == theirs, _difference(mine, theirs)


def _difference(mine: list[bytes], theirs: list[bytes]) -> str:
    """The fields in which the first events that differ differ (for a failure's message)."""
    for a, b in zip(mine, theirs, strict=False):
        if a != b:
            x, y = msgspec.json.decode(a), msgspec.json.decode(b)
            fields = {k: (x.get(k), y.get(k)) for k in x.keys() | y.keys() if x.get(k) != y.get(k)}
            return f"{len(mine)} events against {len(theirs)}; first that differ: {fields}"
    return f"{len(mine)} events against {len(theirs)}"


def _deployment_free(events: dict[str, dict[str, Any]]) -> list[bytes]:
    """The events without what names their deployment (``app_id`` and the id it enters)."""
    return sorted(
        msgspec.json.encode(
            {k: v for k, v in e.items() if k not in ("event_id", "app_id")}, order="sorted"
        )
        for e in events.values()
    )


def _topics(topic_factory: TopicFactory) -> dict[str, str]:
    return {
        "telemetry_topic": topic_factory("telemetry", partitions=PARTITIONS),
        "drift_topic": topic_factory("drift", partitions=1),
        "dead_letter_topic": topic_factory("dlq", partitions=1),
        "control_topic": topic_factory("control", partitions=1),
    }


def _restored_keys(worker: RunningWorker) -> int:
    """Keys the worker restored from checkpoints, from its log."""
    found = re.findall(r"restored (\d+) keys of partitions", worker.log.read_text(errors="replace"))
    return sum(int(n) for n in found)


def _wait_caught_up(bootstrap: str, app_id: str, telemetry: str, worker: RunningWorker) -> None:
    wait_for(
        lambda: _caught_up(bootstrap, f"{app_id}.telemetry", telemetry),
        180,
        f"worker {worker.log.parent.name} to catch up",
        worker,
    )


def _start_run(
    bootstrap: str, topic_factory: TopicFactory, name: str, load: Workload = Workload()
) -> tuple[dict[str, str], str, dict[str, object], _Production]:
    """Topics, app id and worker settings of a run, with its telemetry being produced."""
    topics = _topics(topic_factory)
    app_id = f"{name}-{os.urandom(4).hex()}"
    return (
        topics,
        app_id,
        _settings(topics, app_id),
        _Production(bootstrap, topics["telemetry_topic"], load),
    )


def _consuming(worker: RunningWorker) -> bool:
    return (worker.sample("driftwatch_events_consumed_total") or 0.0) > 0


def _kill_five_times(
    bootstrap: str, tmp_path: Path, settings: dict[str, object], **start: Any
) -> int:
    """Start a worker and SIGKILL it at a random point, five times; the keys they restored."""
    rng = random.Random(20261124)
    restored = 0
    group, telemetry = f"{settings['app_id']}.telemetry", str(settings["telemetry_topic"])
    for i in range(5):
        worker = start_worker(bootstrap, tmp_path / f"run-{i}", **start, **settings)
        try:
            # consuming, or (production paused or done) caught up with nothing to read
            wait_for(
                lambda w=worker: _consuming(w) or _caught_up(bootstrap, group, telemetry),
                90,
                "the worker to consume",
                worker,
            )
            time.sleep(rng.uniform(0.2, 3.0))
            assert worker.proc.poll() is None, f"worker exited with {worker.proc.returncode}"
        finally:
            if worker.proc.poll() is None:
                os.killpg(worker.proc.pid, signal.SIGKILL)
            worker.proc.wait()
            stop_and_keep_log(worker.proc, worker.log, f"worker-{tmp_path.name}-{i}.log")
        restored += _restored_keys(worker)
    return restored


#: What the default-settings run sets: topics aside, only connection and operations settings
#: (the partitions of the topics it creates, how soon a killed member leaves the group, how
#: often it checkpoints). Window, reference, the budget-derived ERT and not waiting for
#: calibrations are the defaults.
OPERATIONS = {"topic_partitions": PARTITIONS, "session_timeout": 6, "checkpoint_interval": 1.0}
#: Three agents whose events are 0.2 s apart by their timestamps: the default budget gives each
#: of the 15 streams an ERT of about 4 x 10^6, and the 30,000 events before the drift span 6,000
#: s of event time, where 0.5 false alarms a day are about 0.035. By default a stream does not
#: test while its calibration runs (and a kill restarts the calibrations that were pending), so
#: which events a stream tests depends on timing: the drift is produced once both the killed
#: deployment's last worker and the uninterrupted one have caught up and finished calibrating
#: (a false alarm before it, in one deployment and not the other, fails the test). Production
#: runs about 50 s up to the drift, so the five kills land in warm-up, calibration and after.
DEFAULT_LOAD = Workload(
    agents=3,
    events=36_000,
    rate=600,
    step_ms=200,
    drift=DriftSpec("agent-2", "response_latency_ms", "shift", 0.6, start_event=30_000),
    hold_at=30_000,
)


def _calibrated(worker: RunningWorker, app_id: str, bootstrap: str, telemetry: str) -> bool:
    """Caught up, no calibration queued, and idle (a calibration running takes a core)."""
    if not _caught_up(bootstrap, f"{app_id}.telemetry", telemetry):
        return False
    if worker.sample("driftwatch_calibrations_pending") != 0.0:
        return False
    return _cpu_seconds(worker.pid, 2.0) < 0.2


def _cpu_seconds(pid: int, over: float) -> float:
    """CPU seconds process ``pid`` used in the next ``over`` seconds."""

    def used() -> float:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    before = used()
    time.sleep(over)
    return used() - before


@pytest.mark.timeout(600)
def test_sigkill_at_five_random_points_at_default_settings_loses_and_repeats_nothing(
    kafka_broker: KafkaBroker, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap
    topics = _topics(topic_factory)
    ref_topics = {
        "telemetry_topic": topics["telemetry_topic"],
        "drift_topic": topic_factory("drift-ref", partitions=1),
        "dead_letter_topic": topic_factory("dlq-ref", partitions=1),
        "control_topic": topic_factory("control-ref", partitions=1),
    }
    app_id, ref_id = f"kill-{os.urandom(4).hex()}", f"ref-{os.urandom(4).hex()}"
    settings = {**OPERATIONS, **topics, "app_id": app_id}
    production = _Production(bootstrap, topics["telemetry_topic"], DEFAULT_LOAD)
    # the uninterrupted worker reads the telemetry as it is produced, as the killed ones do
    reference = start_worker(
        bootstrap, tmp_path / "reference", defaults={}, **OPERATIONS, **ref_topics, app_id=ref_id
    )
    try:
        restored = _kill_five_times(bootstrap, tmp_path, settings, defaults={})
        final = start_worker(bootstrap, tmp_path / "final", defaults={}, **settings)
        try:
            telemetry = topics["telemetry_topic"]
            for worker, name in ((final, app_id), (reference, ref_id)):
                wait_for(
                    lambda w=worker, n=name: _calibrated(w, n, bootstrap, telemetry),
                    300,
                    f"worker {worker.log.parent.name} to calibrate",
                    worker,
                )
            production.gate.set()
            per_agent = production.join(timeout=180)
            _wait_caught_up(bootstrap, app_id, topics["telemetry_topic"], final)
            _wait_caught_up(bootstrap, ref_id, topics["telemetry_topic"], reference)
        finally:
            stop_and_keep_log(final.proc, final.log, f"worker-{tmp_path.name}-final.log")
        restored += _restored_keys(final)
    finally:
        stop_and_keep_log(reference.proc, reference.log, f"worker-{tmp_path.name}-reference.log")
    assert restored > 0, "no restart restored any key from a checkpoint"
    defaults = Settings()
    sizes = {"window_size": defaults.window_size, "reference_size": defaults.reference_size}
    _assert_same(
        (_drift_events(bootstrap, topics["drift_topic"]), _final_state(bootstrap, app_id, **sizes)),
        (
            _drift_events(bootstrap, ref_topics["drift_topic"]),
            _final_state(bootstrap, ref_id, **sizes),
        ),
        per_agent,
        DEFAULT_LOAD.drift,
    )


def test_a_second_worker_joining_and_leaving_changes_nothing(
    kafka_broker: KafkaBroker, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap
    # slower production: the second worker must join and leave while it runs
    load = Workload(rate=600)
    topics, app_id, settings, production = _start_run(bootstrap, topic_factory, "pair", load)
    first = start_worker(bootstrap, tmp_path / "first", **settings)
    try:
        wait_for(lambda: _consuming(first), 90, "the first worker to consume", first)
        time.sleep(4.0)
        second = start_worker(bootstrap, tmp_path / "second", **settings)
        try:
            wait_for(lambda: _consuming(second), 90, "the second worker to consume", second)
            time.sleep(6.0)
            assert first.proc.poll() is None
        finally:
            stop_and_keep_log(second.proc, second.log, f"worker-{tmp_path.name}-second.log")
        assert not production.done.is_set(), "the second worker left after production ended"
        per_agent = production.join()
        _wait_caught_up(bootstrap, app_id, topics["telemetry_topic"], first)
    finally:
        stop_and_keep_log(first.proc, first.log, f"worker-{tmp_path.name}-first.log")
    _assert_equivalent(bootstrap, tmp_path, topic_factory, topics, app_id, per_agent)


class _Marker:
    """Unpickling this creates a file: the proof that a checkpoint record ran code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def _inject_hostile_records(bootstrap: str, topic: str, marker: Path) -> set[str]:
    """Hostile and broken records for keys of telemetry partition 0; return the reasons."""
    records = _records(bootstrap, topic)
    folded = fold_records(records, [0], CheckpointCodec())[0]
    assert folded.keys, "partition 0 has no checkpointed key"
    victims = sorted(folded.keys)
    good = next(
        value for key, value in reversed(records) if key == key_record(0, victims[0]) and value
    )
    codec = CheckpointCodec()
    hostile = [
        # the former format: a pickle that would create the marker file
        (key_record(0, victims[0]), pickle.dumps(_Marker(marker))),
        (key_record(0, "intruder"), zlib.compress(pickle.dumps((2, [_Marker(marker)])))),
        # a claim far ahead, and a state written under it
        (claim_record(0), codec.encode(claim_record(0), 10**9, {"writer": "forger"})),
        (key_record(0, victims[-1]), codec.encode(key_record(0, victims[-1]), 10**9, {})),
        (marker_record(0), codec.encode(marker_record(0), 10**9, marker_body(0, "forger", 0))),
        # a truncated copy of a real record, and one of an unknown version
        (key_record(0, victims[0]), good[: len(good) // 2]),
        (key_record(0, victims[-1]), good[:4] + bytes((CHECKPOINT_VERSION + 40,)) + good[5:]),
    ]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for key, value in hostile:
            producer.send(topic, key=key, value=value, partition=0)  # partition 0 % N
        producer.flush()
    finally:
        producer.close()
    return {"not_a_checkpoint", "claim_ahead", "truncated", "version"}


def test_hostile_checkpoint_records_are_rejected_counted_and_never_run(
    kafka_broker: KafkaBroker, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap
    topics, app_id, settings, production = _start_run(bootstrap, topic_factory, "hostile")
    checkpoint_topic = Settings(app_id=app_id).checkpoint_topic_name
    marker = tmp_path / "pickle-ran"
    first = start_worker(bootstrap, tmp_path / "first", **settings)
    try:
        wait_for(lambda: _consuming(first), 90, "the first worker to consume", first)
        time.sleep(3.0)
    finally:
        stop_and_keep_log(first.proc, first.log, f"worker-{tmp_path.name}-first.log")
    reasons = _inject_hostile_records(bootstrap, checkpoint_topic, marker)
    second = start_worker(bootstrap, tmp_path / "second", **settings)
    try:
        per_agent = production.join()
        _wait_caught_up(bootstrap, app_id, topics["telemetry_topic"], second)
        rejected = {
            reason: second.sample(
                "driftwatch_checkpoint_records_rejected_total", {"reason": reason}
            )
            for reason in reasons
        }
    finally:
        stop_and_keep_log(second.proc, second.log, f"worker-{tmp_path.name}-second.log")
    assert not marker.exists(), "a checkpoint record ran code"
    assert all(n is not None and n >= 1 for n in rejected.values()), rejected
    assert _restored_keys(second) > 0
    _assert_equivalent(bootstrap, tmp_path, topic_factory, topics, app_id, per_agent)


class _ControlFlood:
    """Sends a re-baseline of one stream every 0.2 s until stopped; remembers the ids."""

    def __init__(self, bootstrap: str, topic: str, key: str, feature: str) -> None:
        self.ids: list[str] = []
        self.stop = threading.Event()
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")

        def run() -> None:
            try:
                while not self.stop.wait(0.2):
                    command = build_command(key, feature, "window")
                    producer.send(topic, key=key.encode(), value=msgspec.json.encode(command)).get(
                        30
                    )
                    self.ids.append(command["id"])
            finally:
                producer.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def halt(self) -> list[str]:
        self.stop.set()
        self.thread.join(timeout=60)
        return self.ids


@pytest.mark.timeout(600)
def test_a_control_flood_stays_visible_and_commands_survive_a_sigkill(
    kafka_broker: KafkaBroker, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap
    topics, app_id, settings, production = _start_run(bootstrap, topic_factory, "flood")
    flood = _ControlFlood(bootstrap, topics["control_topic"], DRIFT.agent_id, DRIFT.feature)
    first = start_worker(bootstrap, tmp_path / "first", **settings)
    try:
        wait_for(lambda: _consuming(first), 90, "the first worker to consume", first)
        # past the start of the shift (4,000 events in), then kill right after a command
        past_shift = (DRIFT.start_event + 4_000) / RATE
        time.sleep(max(0.0, past_shift - (time.monotonic() - production.started)))
        sent = flood.halt()
        limited_first = (
            first.sample("driftwatch_rebaseline_skipped_total", {"reason": "rate_limited"}) or 0.0
        )
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait()
    finally:
        flood.halt()
        stop_and_keep_log(first.proc, first.log, f"worker-{tmp_path.name}-first.log")
    second = start_worker(bootstrap, tmp_path / "second", **settings)
    try:
        production.join()
        _wait_caught_up(bootstrap, app_id, topics["telemetry_topic"], second)
        # every command read (again) and its offset committed, the last ones after the restart
        wait_for(
            lambda: _caught_up(bootstrap, app_id, topics["control_topic"], partitions=1),
            120,
            "the second worker to apply every command",
            second,
        )
        # commands rate-limited by either worker (the second re-reads only uncommitted ones)
        limited = limited_first + (
            second.sample("driftwatch_rebaseline_skipped_total", {"reason": "rate_limited"}) or 0.0
        )
    finally:
        stop_and_keep_log(second.proc, second.log, f"worker-{tmp_path.name}-second.log")
    # read once the worker has stopped (a running worker writes a marker every second)
    applied = _applied(bootstrap, app_id)
    assert applied and applied == sent[-len(applied) :], "commands lost, reordered or twice"
    events = [
        e
        for e in _drift_events(bootstrap, topics["drift_topic"]).values()
        if (e["key"], e["feature"]) == (DRIFT.agent_id, DRIFT.feature)
    ]
    refreshes = [e for e in events if e["type"] == "reference_refreshed"]
    started = [e for e in events if e["type"] == "drift_started"]
    closed = [e for e in events if e["type"] == "drift_resolved"]
    assert refreshes and all(e["command_id"] in sent for e in refreshes)
    # at most one refresh per window (one more where a crash made a command apply again)
    seen = max(e["observations"] for e in events)
    assert len({e["command_id"] for e in refreshes}) <= seen // DETECTION["window_size"] + 2
    assert len(refreshes) < len(sent) / 2 and limited > 0
    # every reported episode ends visibly: by its own resolution or re-baselined, with the
    # command that did it; none is left open without an event
    assert started and len(closed) == len(started)
    episodes = sorted(
        started + closed, key=lambda e: (e["observations"], e["type"] != "drift_started")
    )
    assert [e["type"] for e in episodes] == ["drift_started", "drift_resolved"] * len(started)
    rebaselined = [e for e in closed if e["reason"] == "rebaselined"]
    assert rebaselined and all(e["command_id"] in sent for e in rebaselined)
    assert all(e["reason"] is None for e in closed if e not in rebaselined)


def _applied(bootstrap: str, app_id: str) -> list[str]:
    """The command ids in the drifting key's checkpointed state."""
    settings = Settings(window_size=50, reference_size=300, app_id=app_id)
    folded = fold_records(
        _records(bootstrap, settings.checkpoint_topic_name), range(PARTITIONS), CheckpointCodec()
    )
    monitor = DriftMonitor(settings)
    for cp in folded.values():
        for body in cp.keys.values():
            monitor.restore(body)
    state = monitor.keys.get(DRIFT.agent_id)
    return [] if state is None else list(state.applied)
