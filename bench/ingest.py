"""Ingest stage throughput: OTLP records -> keyed per-span events, against the bare decoders.

Usage::

    nice -n 10 .venv/bin/python bench/ingest.py [--records 200] [--spans 50] [--repeats 5]

Generates ``--records`` export requests of ``--spans`` GenAI spans each (30 % tool spans), then
times, per format, :func:`stream.ingest.stage.explode` (decode, map, and serialise every event to
JSON) and the anchor measured in the same run: the bare decoder alone
(``ExportTraceServiceRequest.ParseFromString`` for ``otlp_proto``, ``msgspec.json.decode`` for
``otlp_json``). Reports the median spans per second of ``--repeats`` repeats and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import msgspec  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)

from stream.ingest.stage import explode  # noqa: E402
from stream.monitoring.processor import RawMessage  # noqa: E402
from stream.telemetry.genai import SpanMapping  # noqa: E402
from stream.tools.genai import GenAISpanGenerator, encode  # noqa: E402


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200)
    ap.add_argument("--spans", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    gen = GenAISpanGenerator(seed=1)
    requests = [gen.request(args.spans) for _ in range(args.records)]
    total = args.records * args.spans
    mapping = SpanMapping()
    print(
        f"# bench/ingest.py: {args.records} records x {args.spans} spans, "
        f"median of {args.repeats} repeats"
    )
    print(f"{'format':<11} {'MB':>6} {'stage spans/s':>14} {'anchor spans/s':>15} {'ratio':>6}")
    for fmt in ("otlp_proto", "otlp_json"):
        values = [encode(r, fmt) for r in requests]
        msgs = [RawMessage(None, v, 0, i) for i, v in enumerate(values)]

        def stage(msgs: list[RawMessage] = msgs, fmt: str = fmt) -> None:
            batch = explode(msgs, fmt, mapping)  # type: ignore[arg-type]
            for e in batch.events:
                e.to_json()

        if fmt == "otlp_proto":

            def anchor(values: list[bytes] = values) -> None:
                for v in values:
                    ExportTraceServiceRequest.FromString(v)
        else:

            def anchor(values: list[bytes] = values) -> None:
                for v in values:
                    msgspec.json.decode(v)

        stage_s = statistics.median(timed(stage) for _ in range(args.repeats))
        anchor_s = statistics.median(timed(anchor) for _ in range(args.repeats))
        mb = sum(map(len, values)) / 1e6
        print(
            f"{fmt:<11} {mb:>6.1f} {total / stage_s:>14,.0f} {total / anchor_s:>15,.0f} "
            f"{anchor_s / stage_s:>6.2f}"
        )


if __name__ == "__main__":
    main()
