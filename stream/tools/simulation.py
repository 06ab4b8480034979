"""Realistic multi-agent telemetry, with a scheduled drift (pure numpy; no Kafka here).

Each agent has its own baseline: lognormal response latency, Poisson token counts,
zero-inflated retry counts, beta-distributed error rates, and labelled predictions that are right
90 % of the time. A :class:`DriftSpec` changes one feature of one agent from a given event on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["DRIFT_KINDS", "AgentProfile", "DriftSpec", "TelemetrySimulator"]

DriftKind = Literal["shift", "scale", "accuracy"]
DRIFT_KINDS: tuple[str, ...] = ("shift", "scale", "accuracy")
LABELS = ("refund", "billing", "shipping", "account", "other")
MODELS = ("m-2026-05", "m-2026-03")
TOOLS = ("search", "crm", "kb", "none")


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """One agent's baseline behaviour."""

    agent_id: str
    latency_log_mean: float
    latency_log_sd: float
    tokens_mean: float
    retry_zero_prob: float
    retry_mean: float
    error_a: float
    error_b: float
    accuracy: float


@dataclass(frozen=True, slots=True)
class DriftSpec:
    """Which agent and feature drift, how, and from which event on.

    ``shift`` moves the feature's typical value by ``magnitude`` (relative: 0.3 is +30 %);
    ``scale`` widens its spread by ``magnitude`` (relative) keeping the median; ``accuracy``
    lowers the agent's accuracy by ``magnitude`` (absolute).
    """

    agent_id: str
    feature: str
    kind: DriftKind = "shift"
    magnitude: float = 0.3
    start_event: int = 0

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise ValueError(f"kind must be one of {DRIFT_KINDS}, got {self.kind!r}")
        if self.start_event < 0:
            raise ValueError(f"start_event must be >= 0, got {self.start_event!r}")


class TelemetrySimulator:
    """Generates telemetry dicts for ``agents`` agents (seeded, reproducible).

    Examples
    --------
    >>> sim = TelemetrySimulator(3, seed=1)
    >>> event = next(sim.events(1, start_ms=1_779_350_400_000, step_ms=10))
    >>> sorted(event)[:4]
    ['agent_id', 'error_rate', 'model', 'predicted_label']
    """

    def __init__(self, agents: int = 5, *, seed: int = 0, drift: DriftSpec | None = None) -> None:
        if agents < 1:
            raise ValueError(f"agents must be >= 1, got {agents!r}")
        self.rng = np.random.default_rng(seed)
        r = np.random.default_rng(seed + 1_000_003)
        self.profiles = [
            AgentProfile(
                agent_id=f"agent-{i}",
                latency_log_mean=float(np.log(r.uniform(400, 1200))),
                latency_log_sd=float(r.uniform(0.25, 0.45)),
                tokens_mean=float(r.uniform(200, 800)),
                retry_zero_prob=float(r.uniform(0.8, 0.92)),
                retry_mean=float(r.uniform(0.3, 0.8)),
                error_a=2.0,
                error_b=float(r.uniform(40, 80)),
                accuracy=0.9,
            )
            for i in range(agents)
        ]
        self.drift = drift
        if drift is not None and drift.agent_id not in {p.agent_id for p in self.profiles}:
            raise ValueError(f"drift agent {drift.agent_id!r} is not one of the simulated agents")
        self.emitted = 0

    def _sample(self, p: AgentProfile, drifting: bool) -> dict[str, Any]:
        rng = self.rng
        d = self.drift if drifting else None
        feature = d.feature if d else ""
        mag = d.magnitude if d else 0.0
        kind = d.kind if d else ""

        log_mean, log_sd = p.latency_log_mean, p.latency_log_sd
        if feature == "response_latency_ms":
            if kind == "shift":
                log_mean += float(np.log1p(mag))
            elif kind == "scale":
                log_sd *= 1 + mag
        latency = float(rng.lognormal(log_mean, log_sd))

        tokens_mean = p.tokens_mean
        if feature == "token_count" and kind == "shift":
            tokens_mean *= 1 + mag
        tokens = int(rng.poisson(tokens_mean))
        if feature == "token_count" and kind == "scale":
            tokens = max(0, round(tokens_mean + (tokens - tokens_mean) * (1 + mag) * 3))

        zero_prob = p.retry_zero_prob
        if feature == "retry_count" and kind in ("shift", "scale"):
            zero_prob = max(0.0, 1 - (1 - zero_prob) * (1 + mag))
        retries = 0 if rng.random() < zero_prob else 1 + int(rng.poisson(p.retry_mean))

        a, b = p.error_a, p.error_b
        if feature == "error_rate" and kind == "shift":
            b = b / (1 + mag)
        error_rate = float(rng.beta(a, b))

        accuracy = p.accuracy - (mag if kind == "accuracy" else 0.0)
        true_label = LABELS[int(rng.integers(len(LABELS)))]
        if rng.random() < accuracy:
            predicted = true_label
        else:
            predicted = LABELS[(LABELS.index(true_label) + 1 + int(rng.integers(4))) % 5]
        return {
            "agent_id": p.agent_id,
            "model": MODELS[0] if rng.random() < 0.8 else MODELS[1],
            "tool": TOOLS[int(rng.integers(len(TOOLS)))],
            "response_latency_ms": round(latency, 1),
            "token_count": tokens,
            "retry_count": retries,
            "error_rate": round(error_rate, 4),
            "predicted_label": predicted,
            "true_label": true_label,
        }

    def event(self, ts_ms: int) -> dict[str, Any]:
        """The next event (a random agent), stamped ``ts_ms``."""
        p = self.profiles[int(self.rng.integers(len(self.profiles)))]
        d = self.drift
        drifting = d is not None and d.agent_id == p.agent_id and self.emitted >= d.start_event
        self.emitted += 1
        return {"ts": ts_ms, **self._sample(p, drifting)}

    def events(self, count: int, *, start_ms: int, step_ms: float) -> Iterator[dict[str, Any]]:
        """``count`` events with timestamps ``start_ms + i * step_ms``."""
        for i in range(count):
            yield self.event(int(start_ms + i * step_ms))
