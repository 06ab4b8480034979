from __future__ import annotations

import msgspec

from stream.ingest.stage import IngestStats, explode
from stream.monitoring.processor import RawMessage
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
    doc = msgspec.json.decode(batch.events[0].to_json())
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


def test_ingest_command_line_builds_the_mapping_and_rejects_bad_filters(capsys) -> None:  # type: ignore[no-untyped-def]
    from stream.cli import build_parser, main
    from stream.ingest.cli import config_from_args
    from stream.telemetry.genai import SpanFilter

    args = build_parser().parse_args(
        [
            "ingest",
            "--format",
            "otlp_json",
            "--features",
            "duration_ms",
            "--span-filter",
            "",
            "--categorical-features",
            "status.code, error.type",
            "--topic",
            "t",
        ]
    )
    cfg = config_from_args(args)
    assert cfg.fmt == "otlp_json" and cfg.telemetry_topic == "t"
    assert cfg.mapping.features == ("duration_ms",)
    assert cfg.mapping.categorical_features == ("status.code", "error.type")
    assert cfg.mapping.span_filter is None
    assert cfg.max_bytes >= 1_000_000
    default = config_from_args(build_parser().parse_args(["ingest"]))
    assert default.mapping.span_filter == SpanFilter.parse(
        "gen_ai.operation.name=chat,text_completion,generate_content"
    )
    assert main(["ingest", "--span-filter", "no-equals-sign"]) == 2
    assert "FIELD=VALUE" in capsys.readouterr().err
    assert main(["ingest", "--max-bytes", "10"]) == 2
