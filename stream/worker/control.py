"""The worker's control-command handler: re-baselining on request.

``driftwatch rebaseline`` (:mod:`stream.tools.rebaseline`) sends one command to every partition
of the control topic; the command's ``id`` lets a worker that reads several of those partitions
apply it once. Each worker applies it to the keys it tracks
(:meth:`stream.monitoring.monitor.DriftMonitor.rebaseline`) and records every refreshed stream as a
``reference_refreshed`` event on the drift-events topic. Invalid commands are logged and sent to
the dead-letter topic with the reason, like invalid telemetry.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field

from stream.exceptions import DriftwatchError, UnknownKeyError
from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.processor import DeadLetter, RawMessage
from stream.telemetry.records import ControlParser, DriftEvent, Invalid

__all__ = ["ControlHandler", "ControlOutcome"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ControlOutcome:
    """What one control message produced."""

    drift_events: list[DriftEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicate: bool = False
    #: The command reached the monitor: the keys it names now remember its id (even where a rate
    #: limit refreshed nothing), so that state must be checkpointed before the offset is committed.
    applied: bool = False


class ControlHandler:
    """Parses control messages and applies them to a :class:`DriftMonitor` (no I/O here).

    Parameters
    ----------
    parser : ControlParser
        Validates the commands.
    monitor : DriftMonitor
        The monitor to re-baseline.
    metrics : Metrics, optional
        Rejected commands are counted in ``driftwatch_invalid_events_total`` by reason.
    remember : int
        How many command ids are remembered to drop the copies of a command.
    max_streams : int
        Most streams one command refreshes (the others are counted in
        ``driftwatch_rebaseline_skipped_total{reason="fan_out"}``).
    """

    def __init__(
        self,
        parser: ControlParser,
        monitor: DriftMonitor,
        metrics: Metrics | None = None,
        *,
        remember: int = 1024,
        max_streams: int = 1000,
    ) -> None:
        self.parser = parser
        self.monitor = monitor
        self.metrics = metrics
        self.remember = remember
        self.max_streams = max_streams
        self._seen: OrderedDict[str, None] = OrderedDict()

    def handle(self, msg: RawMessage) -> ControlOutcome:
        out = ControlOutcome()
        cmd = self.parser.parse(msg.value, partition=msg.partition, offset=msg.offset)
        if isinstance(cmd, Invalid):
            log.warning(
                "rejected control command at %d@%d: %s (%s)",
                msg.partition,
                msg.offset,
                cmd.reason,
                cmd.detail,
            )
            self._reject(out, msg, cmd.reason, cmd.detail)
            return out
        # a command without an id is told apart by its position
        command_id = cmd.command_id or f"control-{msg.partition}-{msg.offset}"
        if command_id in self._seen:
            out.duplicate = True
            return out
        self._seen[command_id] = None
        while len(self._seen) > self.remember:
            self._seen.popitem(last=False)
        try:
            out.drift_events = self.monitor.rebaseline(
                cmd.key,
                cmd.feature,
                cmd.source,
                command_id=command_id,
                max_streams=self.max_streams,
            )
        except UnknownKeyError as exc:
            log.warning("rebaseline %s: %s", command_id, exc)
            self._reject(out, msg, "unknown_key", str(exc))
            return out
        except (DriftwatchError, ValueError) as exc:
            log.error("rebaseline %s failed: %s", msg.value, exc)
            self._reject(out, msg, "rebaseline_failed", str(exc))
            return out
        out.applied = True
        log.info(
            "rebaseline key=%s feature=%s source=%s: %d stream(s) refreshed",
            cmd.key or "*",
            cmd.feature or "*",
            cmd.source,
            len(out.drift_events),
        )
        return out

    def _reject(self, out: ControlOutcome, msg: RawMessage, reason: str, detail: str) -> None:
        out.dead_letters.append(DeadLetter(msg, reason, detail))
        if self.metrics is not None:
            self.metrics.invalid_events.labels(reason).inc()
