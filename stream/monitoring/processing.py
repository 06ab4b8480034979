"""Processing one key's events, with per-key rollback when processing raises."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from stream.metrics import Metrics
from stream.monitoring.accuracy import AccuracyFeeder
from stream.monitoring.categorical import CategoricalStreams
from stream.monitoring.context import MonitorContext
from stream.monitoring.detection import FeatureFeeder
from stream.monitoring.keys import KeyState
from stream.monitoring.rollback import SavedKey, restore_key, save_key
from stream.monitoring.state import KeyCodec
from stream.telemetry.records import DriftEvent, Telemetry

__all__ = ["KeyProcessor"]

log = logging.getLogger(__name__)


class KeyProcessor:
    """Feeds one key's events to its features', categorical and accuracy streams.

    Parameters
    ----------
    ctx : MonitorContext
        The monitor's shared parts.
    codec : KeyCodec
        Reads a key's saved state back (for rollback).
    parts : tuple
        The feeders: ``(features, categorical, accuracy)``; ``accuracy`` None when accuracy
        is not tracked.
    new_key : callable
        A new key's state.
    """

    def __init__(
        self,
        ctx: MonitorContext,
        codec: KeyCodec,
        parts: tuple[FeatureFeeder, CategoricalStreams, AccuracyFeeder | None],
        new_key: Callable[[], KeyState],
    ) -> None:
        self.ctx = ctx
        self.codec = codec
        self.features, self.categorical, self.accuracy = parts
        self.new_key = new_key
        self.skipped = 0  # events not applied again: their key's state already holds them
        self.failed: list[tuple[Telemetry, Exception]] = []

    @property
    def metrics(self) -> Metrics | None:
        """The monitor's metrics, if any."""
        return self.ctx.metrics

    def process_or_roll_back(self, key: str, evs: list[Telemetry]) -> list[DriftEvent]:
        """Process one key's events; if that raises, isolate the events that fail.

        The key is rolled back to its state before the batch and its events are applied again
        one by one, each from a copy of the state before it: an event that raises leaves the
        key as it was and is recorded in :attr:`failed`. Other keys are not touched.
        """
        snapshots = self.ctx.snapshots
        saved, mark = self._save(key), len(snapshots)
        try:
            return self.process(key, evs)
        except Exception:
            log.exception("processing %d event(s) of key %r failed; isolating", len(evs), key)
        out: list[DriftEvent] = []
        for ev in evs:
            self._restore(key, saved)
            del snapshots[mark:]
            try:
                got = self.process(key, [ev])
            except Exception as exc:
                self.failed.append((ev, exc))
                continue
            out.extend(got)
            saved, mark = self._save(key), len(snapshots)
        self._restore(key, saved)
        del snapshots[mark:]
        return out

    def _save(self, key: str) -> SavedKey | None:
        state = self.ctx.store.keys.get(key)
        return None if state is None else save_key(state)

    def _restore(self, key: str, saved: SavedKey | None) -> None:
        """Put a key back as :meth:`_save` found it (absent if it was)."""
        store = self.ctx.store
        if saved is None:
            store.pop(key)
            return
        store.put(key, restore_key(saved, self.codec.categorical, store.keys.get(key)))

    def process(self, key: str, evs: list[Telemetry]) -> list[DriftEvent]:
        """Feed one key's events (in order); return the drift events."""
        state = self.ctx.store.get(key, self.new_key)
        if state.replay_until >= 0:
            # read again after a restore: the restored state already holds these events
            fresh = [
                e for e in evs if e.partition != state.partition or e.offset > state.replay_until
            ]
            self.skipped += len(evs) - len(fresh)
            if self.metrics is not None:
                self.metrics.events_skipped.inc(len(evs) - len(fresh))
            if not fresh:
                return []
            evs = fresh
            state.replay_until = -1
        budget = self.ctx.budget
        if budget is None:
            return self._feed(key, state, evs)
        # the budget's rates are measured, and the streams recalibrated, at the events that
        # complete a block: points of the key's own events, whatever the batches or restarts
        out: list[DriftEvent] = []
        for part, completed in budget.parts(state.rates, evs, labelled=self.accuracy is not None):
            self.ctx.budget_streams = self.ctx.streams_at(part[0].ts)
            if completed:
                self.features.recalibrate(key, state)
            out.extend(self._feed(key, state, part))
        return out

    def _feed(self, key: str, state: KeyState, evs: Sequence[Telemetry]) -> list[DriftEvent]:
        """Feed events new to the key to its features', categorical and accuracy streams."""
        out = self.features.process(key, state, evs)
        if state.categorical:
            out.extend(self.categorical.process(key, state.categorical, evs))
        if self.accuracy is not None:
            out.extend(self.accuracy.process(key, state, evs))
        return out
