from __future__ import annotations

import orjson

from stream.ingest.stage import IngestStats, explode
from stream.processor import RawMessage
from stream.telemetry.genai import SpanMapping
from stream.tools.genai import GenAISpanGenerator, encode


def test_explode_keys_every_chat_span_by_stream_and_skips_tool_spans() -> None:
    gen = GenAISpanGenerator(seed=8, tool_share=0.4)
    requests = [gen.request(30) for _ in range(5)]
    chat = {}
    tools = 0
    for req in requests:
        for rs in req.resource_spans:
            service = rs.resource.attributes[0].value.string_value
            for span in rs.scope_spans[0].spans:
                attrs = {kv.key: kv.value for kv in span.attributes}
                if attrs["gen_ai.operation.name"].string_value == "chat":
                    model = attrs["gen_ai.request.model"].string_value
                    chat[(span.trace_id + span.span_id).hex()] = f"{service}/{model}"
                else:
                    tools += 1
    msgs = [RawMessage(None, encode(r, "otlp_proto"), 0, i, 1.0) for i, r in enumerate(requests)]
    msgs.append(RawMessage(None, b"\x0a\xff\xff", 0, 5, 1.0))  # truncated protobuf
    msgs.append(RawMessage(None, None, 0, 6, 1.0))
    batch = explode(msgs, "otlp_proto", SpanMapping())
    assert batch.spans == 150
    assert {e.event_id: e.key for e in batch.events} == chat
    assert batch.skipped == {"filtered": tools}
    assert [(d.message.offset, d.reason) for d in batch.dead_letters] == [
        (5, "invalid_protobuf"),
        (6, "invalid_otlp"),
    ]
    doc = orjson.loads(batch.events[0].to_json())
    assert doc["event_id"] == batch.events[0].event_id
    stats = IngestStats()
    stats.add(len(msgs), batch)
    assert "dead-lettered: invalid_otlp 1, invalid_protobuf 1" in stats.summary()
    assert stats.events == len(chat)


def test_oversized_records_are_dead_lettered_whole() -> None:
    raw = encode(GenAISpanGenerator(seed=1).request(20), "otlp_json")
    batch = explode([RawMessage(None, raw, 3, 7)], "otlp_json", SpanMapping(), max_bytes=1000)
    assert [d.reason for d in batch.dead_letters] == ["oversized"]
    assert batch.dead_letters[0].value == raw and not batch.events
