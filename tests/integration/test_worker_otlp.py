"""The worker reading OTLP/protobuf export requests straight from Kafka (TELEMETRY_FORMAT).

Nil-keyed records of GenAI spans, as the Collector's Kafka exporter writes them, go to a topic
one worker reads whole. The oracle is the generator: which spans are chat spans (observations)
and which are tool spans (skipped, reason ``filtered``), per (service, model) stream, and where
the two injected drifts begin.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import msgspec
from kafka import KafkaProducer

from stream.tools.genai import GenAIDrift, GenAISpanGenerator, encode
from tests.support.broker import KafkaBroker, TopicFactory
from tests.support.pipeline import read_partitions
from tests.support.worker import run_worker, wait_for

RECORDS = 240
SPANS_PER_RECORD = 50
TOKENS = "gen_ai.usage.output_tokens"
FINISH = "gen_ai.response.finish_reasons"


#: The first drifted span (both drifts), and the records made only of spans before it.
DRIFT_AT = 7_000
RECORDS_BEFORE = DRIFT_AT // SPANS_PER_RECORD


def _produce(
    bootstrap: str, topic: str, gen: GenAISpanGenerator
) -> tuple[Counter[str], Counter[str], int]:
    """Produce the records with nil keys over both partitions, then one that is not protobuf.
    Returns the chat spans per stream key, those of them before the drift, and the number of
    tool spans."""
    chat: Counter[str] = Counter()
    before: Counter[str] = Counter()
    tools = 0
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for i in range(RECORDS):
        req = gen.request(SPANS_PER_RECORD)
        for rs in req.resource_spans:
            service = rs.resource.attributes[0].value.string_value
            for span in rs.scope_spans[0].spans:
                attrs = {kv.key: kv.value.string_value for kv in span.attributes}
                if attrs["gen_ai.operation.name"] == "chat":
                    chat[f"{service}/{attrs['gen_ai.request.model']}"] += 1
                    if i < RECORDS_BEFORE:
                        before[f"{service}/{attrs['gen_ai.request.model']}"] += 1
                else:
                    tools += 1
        producer.send(topic, key=None, value=encode(req, "otlp_proto"), partition=i % 2)
    producer.send(topic, key=None, value=b"\x0a\xff\xff not protobuf", partition=1)
    producer.flush()
    producer.close()
    return chat, before, tools


def test_worker_reads_otlp_proto_spans_finds_both_drifts_and_counts_every_chat_span(
    kafka_broker: KafkaBroker, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap
    telemetry = topic_factory("otlp-spans", partitions=2)
    drift_topic = topic_factory("drift", partitions=1)
    dead = topic_factory("dead-letter", partitions=1)
    control = topic_factory("control", partitions=1)
    tokens = GenAIDrift("billing-agent", "gpt-4o-mini", "output_tokens", 0.6, start=DRIFT_AT)
    finish = GenAIDrift("support-bot", "claude-sonnet-4", "finish_reasons", 0.5, start=DRIFT_AT)
    gen = GenAISpanGenerator(seed=31, tool_share=0.3, drifts=(tokens, finish))
    settings = {
        "telemetry_topic": telemetry,
        "drift_topic": drift_topic,
        "dead_letter_topic": dead,
        "control_topic": control,
        "app_id": f"driftwatch-{telemetry}",
        "telemetry_format": "otlp_proto",
        "key_fields": "service.name,gen_ai.request.model",
        "features": TOKENS,
        "categorical_features": FINISH,
        "window_size": 200,
        "reference_size": 400,
        "alpha": "1e-7",
        "batch_size": 500,
    }
    with run_worker(bootstrap, tmp_path / "w", **settings) as worker:
        chat, before, tools = _produce(bootstrap, telemetry, gen)
        n_chat = sum(chat.values())
        wait_for(
            lambda: worker.summed("driftwatch_observations_total", {"feature": FINISH}) == n_chat,
            90,
            f"{n_chat} chat spans observed",
            worker,
        )
        assert worker.summed("driftwatch_observations_total", {"feature": TOKENS}) == n_chat
        assert worker.summed("driftwatch_skipped_total", {"reason": "filtered"}) == tools
        assert worker.summed("driftwatch_missing_features_total") == 0
        assert worker.summed("driftwatch_invalid_events_total") == 1  # the bad record only
        letters = read_partitions(bootstrap, dead, 1, 1)
        assert [dict(m.headers)["driftwatch-reason"] for m in letters] == [b"invalid_protobuf"]

        # a re-baseline of both features: every stream reports its observation count
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for feature in (TOKENS, FINISH):
            command = {"action": "rebaseline", "feature": feature, "id": uuid.uuid4().hex}
            producer.send(control, value=msgspec.json.encode(command))
        producer.flush()
        producer.close()
        refreshes = 2 * len(chat)
        records = read_partitions(bootstrap, drift_topic, 1, 10**6, timeout=20.0)
        events = [msgspec.json.decode(r.value) for r in records]
        while sum(e["type"] == "reference_refreshed" for e in events) < refreshes:
            more = read_partitions(bootstrap, drift_topic, 1, 10**6, timeout=5.0)
            assert len(more) > len(records), f"{len(events)} events, refreshes missing"
            records = more
            events = [msgspec.json.decode(r.value) for r in records]

    started = [e for e in events if e["type"] == "drift_started"]
    assert {(e["key"], e["feature"]) for e in started} == {
        ("billing-agent/gpt-4o-mini", TOKENS),
        ("support-bot/claude-sonnet-4", FINISH),
    }, [(e["key"], e["feature"], e["p_value"]) for e in started]
    # found after the drift began: when each alarm was raised, the worker had read more of its
    # stream than the spans before the drift (its reference's 400 included). The records have
    # nil keys over two partitions, read at their own paces, so the observation that completed
    # the alarm (whose time is event_time) may be an earlier one of the lagging partition.
    assert all(e["observations"] + 400 > before[e["key"]] for e in started), [
        (e["key"], e["feature"], e["observations"], before[e["key"]]) for e in started
    ]
    (shift,) = [e for e in started if e["feature"] == FINISH]
    assert shift["detector"] == "chi2"
    change = shift["largest_change"]
    assert change["category"] == "length"
    assert change["window_share"] > change["reference_share"] + 0.1
    (tokens_event,) = [e for e in started if e["feature"] == TOKENS]
    assert tokens_event["largest_change"] is None and tokens_event["detector"] == "incremental_ks"

    refreshed = [e for e in events if e["type"] == "reference_refreshed"]
    for feature in (TOKENS, FINISH):
        per_stream = {e["key"]: e["observations"] for e in refreshed if e["feature"] == feature}
        # each stream whole: every chat span once (the first reference_size made its reference)
        assert {k: n + 400 for k, n in per_stream.items()} == dict(chat), feature
    # the finish_reason episode open at the re-baseline is closed by it
    assert any(
        e["type"] == "drift_resolved"
        and e["reason"] == "rebaselined"
        and e["feature"] == FINISH
        and e["key"] == "support-bot/claude-sonnet-4"
        for e in events
    )
