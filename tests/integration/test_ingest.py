"""``driftwatch ingest`` on the real broker: nil-keyed OTLP records -> keyed per-span events."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream.ingest.runner import IngestConfig, IngestRunner
from stream.ingest.stage import EVENT_ID_HEADER
from stream.tools.genai import GenAISpanGenerator, encode
from tests.integration.conftest import KafkaBroker, TopicFactory

RECORDS = 60
SPANS_PER_RECORD = 50
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


def _read_all(bootstrap: str, topic: str, partitions: int, want: int) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    got: list = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(got) < want and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=500).values():
                got.extend(recs)
    finally:
        consumer.close()
    return got


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
    for t in threads:
        t.start()
    try:
        # both instances hold a share of the raw topic before any record arrives
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            shares = [r._consumer.assignment() for r in runners]
            if all(shares) and sum(len(s) for s in shares) == 4:
                break
            time.sleep(0.2)
        assert all(shares), shares

        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for i, value in enumerate(values):  # nil keys, spread over the partitions
            producer.send(raw, key=None, value=value, partition=i % 4)
        producer.send(raw, key=None, value=b"\x0a\xff\xff not protobuf", partition=1)
        producer.flush()
        producer.close()

        got = _read_all(bootstrap, telemetry, 4, len(chat))
        dead_letters = _read_all(bootstrap, dead, 1, 1)
        deadline = time.monotonic() + DEADLINE_S  # the last commits follow the last produce
        while sum(r.stats.records for r in runners) < RECORDS + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        for r in runners:
            r.close()

    ids = [orjson.loads(m.value)["event_id"] for m in got]
    assert len(ids) == len(set(ids)) == len(chat)  # every chat span, once
    assert {m.headers[0][1].decode() for m in got} == set(ids)
    assert all(m.headers[0][0] == EVENT_ID_HEADER for m in got)
    partitions_of = defaultdict(set)
    for m in got:
        key = m.key.decode()
        doc = orjson.loads(m.value)
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
