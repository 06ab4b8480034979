from __future__ import annotations

import statistics

import msgspec
import pytest

from stream.cli import main
from stream.telemetry.genai import SpanMapping
from stream.telemetry.otlp import decode_spans
from stream.tools.genai import GenAIDrift, GenAISpanGenerator, encode


def spans_of(gen: GenAISpanGenerator, n: int, fmt: str = "otlp_proto") -> list:
    out = []
    while gen.spans_made < n:
        out += decode_spans(encode(gen.request(min(40, n - gen.spans_made)), fmt), fmt)  # type: ignore[arg-type]
    return out


def test_both_encodings_decode_to_the_same_spans() -> None:
    a, b = GenAISpanGenerator(seed=3), GenAISpanGenerator(seed=3)
    assert spans_of(a, 300, "otlp_proto") == spans_of(b, 300, "otlp_json")


def test_chat_and_tool_spans_over_services_and_models() -> None:
    spans = spans_of(GenAISpanGenerator(seed=1, tool_share=0.3), 3000)
    ops = [s.fields["gen_ai.operation.name"] for s in spans]
    assert 0.25 < ops.count("execute_tool") / len(ops) < 0.35
    chats = [s for s in spans if s.fields["gen_ai.operation.name"] == "chat"]
    assert {s.fields["service.name"] for s in chats} == {
        "support-bot",
        "billing-agent",
        "search-agent",
    }
    assert len({s.fields["gen_ai.request.model"] for s in chats}) == 3
    assert all(s.fields["duration_ms"] > 0 for s in spans)
    assert len({s.span_uid for s in spans}) == len(spans)
    mapped = SpanMapping().map(spans)
    assert mapped.skipped == {"filtered": ops.count("execute_tool")}


def by_stream(spans: list, start: int, service: str, model: str, field: str) -> tuple[list, list]:
    before, after = [], []
    for i, s in enumerate(spans):
        f = s.fields
        if (
            f.get("service.name") == service
            and f.get("gen_ai.request.model") == model
            and field in f
        ):
            (after if i >= start else before).append(f[field])
    return before, after


@pytest.mark.parametrize("kind", ["output_tokens", "latency"])
def test_injected_numeric_drift_changes_only_its_stream(kind: str) -> None:
    drift = GenAIDrift("billing-agent", "gpt-4o-mini", kind, 0.5, start=2000)  # type: ignore[arg-type]
    spans = spans_of(GenAISpanGenerator(seed=2, drift=drift), 6000)
    field = "gen_ai.usage.output_tokens" if kind == "output_tokens" else "duration_ms"
    before, after = by_stream(spans, 2000, "billing-agent", "gpt-4o-mini", field)
    assert statistics.mean(after) / statistics.mean(before) > 1.3
    other_before, other_after = by_stream(spans, 2000, "support-bot", "gpt-4o-mini", field)
    assert 0.9 < statistics.mean(other_after) / statistics.mean(other_before) < 1.1


def test_injected_finish_reason_drift() -> None:
    drift = GenAIDrift("support-bot", "llama-3.1-70b", "finish_reasons", 0.4, start=1000)
    spans = spans_of(GenAISpanGenerator(seed=4, drift=drift), 5000)
    before, after = by_stream(
        spans, 1000, "support-bot", "llama-3.1-70b", "gen_ai.response.finish_reasons"
    )
    share = lambda xs: sum(x == ["length"] for x in xs) / len(xs)  # noqa: E731
    assert share(before) < 0.15 and share(after) > 0.35


def test_simulate_writes_otlp_json_lines(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "spans.jsonl"
    code = main(
        [
            "simulate",
            "--format",
            "otlp_json",
            "--output",
            str(out),
            "--count",
            "250",
            "--rate",
            "0",
            "--spans-per-record",
            "100",
            "--start-ms",
            "1000",
        ]
    )
    assert code == 0
    lines = out.read_bytes().splitlines()
    assert len(lines) == 3
    spans = [s for line in lines for s in decode_spans(line, "otlp_json")]
    assert len(spans) == 250
    assert all(msgspec.json.decode(line)["resourceSpans"] for line in lines)


def test_simulate_rejects_binary_output_to_a_file(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(
        ["simulate", "--format", "otlp_proto", "--output", str(tmp_path / "x"), "--count", "1"]
    )
    assert code == 2
    assert "otlp_json" in capsys.readouterr().err
