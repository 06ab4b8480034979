"""Shared builders for stream tests."""

from __future__ import annotations

import orjson

from stream.processor import RawMessage
from stream.tools.simulation import DriftSpec, TelemetrySimulator

START_MS = 1_779_350_400_000


def simulated_messages(
    count: int,
    *,
    agents: int = 4,
    seed: int = 0,
    drift: DriftSpec | None = None,
    step_ms: float = 10.0,
) -> list[RawMessage]:
    sim = TelemetrySimulator(agents, seed=seed, drift=drift)
    return [
        RawMessage(ev["agent_id"].encode(), orjson.dumps(ev), 0, i)
        for i, ev in enumerate(sim.events(count, start_ms=START_MS, step_ms=step_ms))
    ]
