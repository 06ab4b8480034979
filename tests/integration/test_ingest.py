"""``driftwatch ingest`` on the real broker: nil-keyed OTLP records -> keyed per-span events."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path

import msgspec
from kafka import KafkaAdminClient, KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from stream.ingest.runner import IngestConfig, IngestRunner
from stream.ingest.stage import EVENT_ID_HEADER
from stream.tools.genai import GenAIDrift, GenAISpanGenerator, encode
from tests.support.broker import KafkaBroker, TopicFactory
from tests.support.pipeline import read_partitions
from tests.support.worker import DRIFTWATCH, RunningWorker, run_worker, wait_for

RECORDS = 60
SPANS_PER_RECORD = 50
FINISH = "gen_ai.response.finish_reasons"
DEADLINE_S = 120.0


def _expected(gen: GenAISpanGenerator) -> tuple[list[bytes], dict[str, str], int]:
    """Encoded records, chat span id -> stream key, and the number of tool spans."""
    values, chat, tools = [], {}, 0
    for _ in range(RECORDS):
        req = gen.request(SPANS_PER_RECORD)
        for rs in req.resource_spans:
            service = rs.resource.attributes[0].value.string_value
            for span in rs.scope_spans[0].spans:
                attrs = {kv.key: kv.value.string_value for kv in span.attributes}
                if attrs["gen_ai.operation.name"] == "chat":
                    key = f"{service}/{attrs['gen_ai.request.model']}"
                    chat[(span.trace_id + span.span_id).hex()] = key
                else:
                    tools += 1
        values.append(encode(req, "otlp_proto"))
    return values, chat, tools


def test_two_ingest_instances_repartition_every_stream_onto_one_partition(
    kafka_broker: KafkaBroker, topic_factory: TopicFactory
) -> None:
    bootstrap = kafka_broker.bootstrap
    raw = topic_factory("otlp-spans", partitions=4)
    telemetry = topic_factory("telemetry", partitions=4)
    dead = topic_factory("dead-letter", partitions=1)
    values, chat, tools = _expected(GenAISpanGenerator(seed=15, tool_share=0.3))
    config = IngestConfig(
        raw_topic=raw,
        telemetry_topic=telemetry,
        dead_letter_topic=dead,
        group=f"ingest-{raw}",
        poll_timeout_ms=200,
        batch_records=7,
    )
    runners = [IngestRunner(config, {"bootstrap_servers": bootstrap}) for _ in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in runners]
    try:
        # one instance, then a second joining it (as in a scale-out); both hold a share of the
        # raw topic before any record arrives (two started at once, right after the topic's
        # creation, were once seen to leave one of them without partitions for two minutes)
        for joined, t in enumerate(threads, start=1):
            t.start()
            deadline = time.monotonic() + DEADLINE_S
            while time.monotonic() < deadline:
                shares = [r._consumer.assignment() for r in runners[:joined]]
                if all(shares) and sum(len(s) for s in shares) == 4:
                    break
                time.sleep(0.2)
            assert all(shares) and sum(len(s) for s in shares) == 4, shares

        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for i, value in enumerate(values):  # nil keys, spread over the partitions
            producer.send(raw, key=None, value=value, partition=i % 4)
        producer.send(raw, key=None, value=b"\x0a\xff\xff not protobuf", partition=1)
        producer.flush()
        producer.close()

        got = read_partitions(bootstrap, telemetry, 4, len(chat))
        dead_letters = read_partitions(bootstrap, dead, 1, 1)
        deadline = time.monotonic() + DEADLINE_S  # the last commits follow the last produce
        while sum(r.stats.records for r in runners) < RECORDS + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            if t.is_alive():
                t.join(timeout=30)
        for r in runners:
            r.close()

    ids = [msgspec.json.decode(m.value)["event_id"] for m in got]
    assert len(ids) == len(set(ids)) == len(chat)  # every chat span, once
    assert {m.headers[0][1].decode() for m in got} == set(ids)
    assert all(m.headers[0][0] == EVENT_ID_HEADER for m in got)
    partitions_of = defaultdict(set)
    for m in got:
        key = m.key.decode()
        doc = msgspec.json.decode(m.value)
        assert (
            chat[doc["event_id"]] == key == f"{doc['service.name']}/{doc['gen_ai.request.model']}"
        )
        partitions_of[key].add(m.partition)
    assert len(partitions_of) == 9  # 3 services x 3 models
    assert all(len(p) == 1 for p in partitions_of.values()), partitions_of
    # per stream: as many events as spans produced
    per_stream = defaultdict(int)
    for key in chat.values():
        per_stream[key] += 1
    assert {k: sum(1 for m in got if m.key.decode() == k) for k in per_stream} == per_stream
    # both instances worked; tool spans skipped and counted, only the bad record dead-lettered
    assert all(r.stats.records > 0 for r in runners)
    assert sum(r.stats.skipped["filtered"] for r in runners) == tools
    assert sum(r.stats.spans for r in runners) == RECORDS * SPANS_PER_RECORD
    assert len(dead_letters) == 1
    headers = dict(dead_letters[0].headers)
    assert headers["driftwatch-reason"] == b"invalid_protobuf"
    assert headers["driftwatch-source"].decode().startswith(f"{raw}/1/")


def test_nil_keyed_spans_through_ingest_reach_two_workers_whole_and_drift_is_found(
    kafka_broker: KafkaBroker, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap
    raw = topic_factory("otlp-spans", partitions=4)
    telemetry = topic_factory("telemetry", partitions=4)
    drift_topic = topic_factory("drift", partitions=2)
    dead = topic_factory("dead-letter", partitions=1)
    drift = GenAIDrift("billing-agent", "gpt-4o-mini", "output_tokens", 0.6, start=8_000)
    shift = GenAIDrift("support-bot", "claude-sonnet-4", "finish_reasons", 0.5, start=8_000)
    gen = GenAISpanGenerator(seed=21, tool_share=0.3, drifts=(drift, shift))
    config = IngestConfig(
        raw_topic=raw, telemetry_topic=telemetry, dead_letter_topic=dead, group=f"ingest-{raw}"
    )
    runners = [IngestRunner(config, {"bootstrap_servers": bootstrap}) for _ in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in runners]
    features = "gen_ai.usage.output_tokens,duration_ms"
    settings = {
        "telemetry_topic": telemetry,
        "drift_topic": drift_topic,
        "dead_letter_topic": dead,
        "app_id": f"driftwatch-{telemetry}",
        "key_fields": "service.name,gen_ai.request.model",
        "features": features,
        "categorical_features": FINISH,
        "window_size": 200,
        "reference_size": 400,
        "alpha": "1e-7",
        "batch_size": 500,
    }
    try:
        with (
            run_worker(bootstrap, tmp_path / "w1", **settings) as w1,
            run_worker(bootstrap, tmp_path / "w2", **settings) as w2,
        ):
            workers = (w1, w2)
            group = f"{settings['app_id']}.telemetry"
            wait_for(
                lambda: _stable_members(bootstrap, group) == 2, 120, "both workers in the group"
            )
            for t in threads:
                t.start()
            chat = _produce_live(bootstrap, raw, gen, runners)

            def observed(feature: str) -> float:
                return sum(
                    w.sample("driftwatch_observations_total", {"feature": feature}) or 0
                    for w in workers
                )

            wait_for(
                lambda: observed("duration_ms") == chat, 180, f"{chat} chat spans observed", w1
            )
            assert observed("gen_ai.usage.output_tokens") == chat
            assert observed(FINISH) == chat
            assert all(observed_by(w) > 0 for w in workers)  # both workers hold streams
            assert read_partitions(bootstrap, drift_topic, 2, 2)  # the first drift events
            # and any other
            records = read_partitions(bootstrap, drift_topic, 2, 10**6, timeout=5.0)
            events = [msgspec.json.decode(r.value) for r in records]
            started = {(e["key"], e["feature"]) for e in events if e["type"] == "drift_started"}
            # latency follows output tokens in the generator, so both features of the stream move
            assert ("billing-agent/gpt-4o-mini", "gen_ai.usage.output_tokens") in started
            assert ("support-bot/claude-sonnet-4", FINISH) in started
            assert {key for key, _ in started} == {
                "billing-agent/gpt-4o-mini",
                "support-bot/claude-sonnet-4",
            }, started
            (moved,) = [
                e for e in events if e["type"] == "drift_started" and e["feature"] == FINISH
            ]
            assert moved["detector"] == "chi2" and moved["largest_change"]["category"] == "length"
            drift_ms = (gen.start_ns + drift.start * gen.step_ns) / 1e6
            assert all(e["event_time_ms"] >= drift_ms for e in events), (
                drift_ms,
                [
                    (e["key"], e["feature"], e["event_time"], e["p_value"], e["type"])
                    for e in events
                ],
            )
            assert all(_invalid_total(w) == 0 for w in workers)  # nothing valid dead-lettered
    finally:
        stop.set()
        for t in threads:
            if t.is_alive():
                t.join(timeout=30)
        for r in runners:
            r.close()
    assert sum(r.stats.events for r in runners) == chat
    assert sum(r.stats.skipped["filtered"] for r in runners) == 280 * SPANS_PER_RECORD - chat
    assert not any(r.stats.dead_letters for r in runners)


def _produce_live(
    bootstrap: str, raw: str, gen: GenAISpanGenerator, runners: list[IngestRunner]
) -> int:
    """Produce 280 records as a live Collector would: the stage keeps up (a backlog of at most
    a few records), so each stream's spans arrive in about their time order. Returns the number
    of chat spans."""
    chat = 0
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for i in range(280):
        req = gen.request(SPANS_PER_RECORD)
        chat += sum(
            s.attributes[0].value.string_value == "chat"
            for rs in req.resource_spans
            for s in rs.scope_spans[0].spans
        )
        producer.send(raw, key=None, value=encode(req, "otlp_proto"), partition=i % 4)
        if i % 4 == 3:
            producer.flush()
            behind = i - 8
            wait_for(lambda: sum(r.stats.records for r in runners) >= behind, 60, "ingest")  # noqa: B023
    producer.flush()
    producer.close()
    return chat


def _stable_members(bootstrap: str, group: str) -> int:
    """Members of a consumer group that is Stable, each with partitions (0 otherwise)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        info = admin.describe_groups([group]).get(group, {})
    finally:
        admin.close()
    if info.get("group_state", info.get("state")) != "Stable":
        return 0
    return sum(1 for m in info.get("members", []) if m.get("member_assignment"))


def _invalid_total(worker: RunningWorker) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(worker.scrape())
        for s in family.samples
        if s.name == "driftwatch_invalid_events_total"
    )


def observed_by(worker: RunningWorker) -> float:
    return worker.sample("driftwatch_observations_total", {"feature": "duration_ms"}) or 0.0


def test_the_ingest_command_runs_and_reports_its_counts(
    kafka_broker: KafkaBroker, topic_factory: TopicFactory
) -> None:
    bootstrap = kafka_broker.bootstrap
    raw = topic_factory("otlp-spans", partitions=2)
    telemetry = topic_factory("telemetry", partitions=2)
    dead = topic_factory("dead-letter", partitions=1)
    gen = GenAISpanGenerator(seed=5, tool_share=0.5)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(6):
        producer.send(raw, value=encode(gen.request(20), "otlp_json"), partition=i % 2)
    producer.send(raw, value=b'{"resourceSpans": 7}', partition=0)
    producer.flush()
    producer.close()
    proc = subprocess.run(
        [
            str(DRIFTWATCH),
            "ingest",
            "--bootstrap-servers",
            bootstrap,
            "--raw-topic",
            raw,
            "--topic",
            telemetry,
            "--dead-letter-topic",
            dead,
            "--format",
            "otlp_json",
            "--group",
            f"ingest-{raw}",
            "--idle-exit",
            "5",
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("ingest: 7 records, 120 spans -> ")
    assert "dead-lettered: invalid_otlp 1" in summary
    events = int(summary.split("-> ")[1].split(" events")[0])
    filtered = int(summary.split("filtered ")[1].split(";")[0].split(",")[0])
    assert events + filtered == 120 and events > 0
    assert len(read_partitions(bootstrap, telemetry, 2, events, timeout=30)) == events
