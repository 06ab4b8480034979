"""Messages per second through ``TelemetryParser.parse`` (the worker's per-record validation).

Usage::

    .venv/bin/python bench/parse.py [--messages 100000] [--repeats 7]

The project's simulated telemetry (100 agents, 4 features and the labels, the flat JSON the
simulator and most producers write), sparse rules as the worker runs them; the median of
``--repeats`` passes over the same messages, and the load average. ``record`` times what the
worker's consumer did per Kafka record before the monitor: the record's ``RawMessage`` and
``RecordDecoder.decode`` (the parse above, plus the missing-feature counts); ``batch`` what it
does now, ``RecordDecoder.decode_batch`` of the Kafka records as they are (in a checkout that
has it; aiokafka's ``ConsumerRecord``, timestamps in ms). Also times the
bare JSON decode of the same bytes by the standard library's ``json`` (an anchor that does not
change with the project's code). Run from the root of any checkout: one command times two commits
side by side (see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(Path.cwd()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args()

    from stream.monitoring.processor import RawMessage
    from stream.settings import load_settings
    from stream.telemetry.decoding import RecordDecoder
    from stream.telemetry.records import Telemetry, TelemetryParser
    from stream.tools.simulation import TelemetrySimulator

    sim = TelemetrySimulator(100, seed=1)
    events = sim.events(a.messages, start_ms=1_779_350_400_000, step_ms=10)
    raw = [json.dumps(e, separators=(",", ":")).encode() for e in events]
    parser = TelemetryParser(load_settings(environ={}), sparse=True)
    decoder = RecordDecoder(TelemetryParser(load_settings(environ={}), sparse=True))
    records = [(None, m, 0, i, 1_779_350_400_000 + i) for i, m in enumerate(raw)]

    def record() -> int:
        ok = 0
        for key, value, partition, offset, ts_ms in records:
            msg = RawMessage(key, value, partition, offset, ts_ms / 1000.0)
            r = decoder.decode(
                msg.value, partition=msg.partition, offset=msg.offset, timestamp=msg.timestamp
            )
            ok += isinstance(r, list) and len(r) == 1
        return ok

    from aiokafka.structs import ConsumerRecord

    kafka = [ConsumerRecord("t", p, o, ts, 0, k, v, None, 0, 0, ()) for k, v, p, o, ts in records]
    decode_batch = getattr(decoder, "decode_batch", None)

    def batch() -> int:
        assert decode_batch is not None
        events, _ = decode_batch(kafka, 1000.0)
        return len(events)

    def parse() -> int:
        ok = 0
        for i, m in enumerate(raw):
            ok += isinstance(parser.parse(m, partition=0, offset=i), Telemetry)
        return ok

    def decode() -> int:
        for m in raw:
            json.loads(m)
        return len(raw)

    print(f"load average before: {os.getloadavg()}")
    rates: dict[str, list[float]] = {"parse": [], "record": [], "batch": [], "json.loads": []}
    timed = [("parse", parse), ("record", record), ("json.loads", decode)]
    if decode_batch is not None:
        timed.insert(2, ("batch", batch))
    valid = 0
    for _ in range(a.repeats):
        for name, fn in timed:
            t = time.perf_counter()
            n = fn()
            rates[name].append(len(raw) / (time.perf_counter() - t))
            valid = n if name == "parse" else valid
    parse_rate, anchor = statistics.median(rates["parse"]), statistics.median(rates["json.loads"])
    print(f"{len(raw):,} messages, {valid:,} valid, median of {a.repeats}")
    print(f"parse       {parse_rate:>12,.0f} msgs/s  x json.loads {parse_rate / anchor:.2f}")
    per_record = statistics.median(rates["record"])
    print(f"record      {per_record:>12,.0f} msgs/s  x json.loads {per_record / anchor:.2f}")
    if rates["batch"]:
        per_batch = statistics.median(rates["batch"])
        print(f"batch       {per_batch:>12,.0f} msgs/s  x json.loads {per_batch / anchor:.2f}")
    print(f"json.loads  {anchor:>12,.0f} msgs/s")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
