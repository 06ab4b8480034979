"""Progress on stderr for the command-line tools: a bar on a terminal, plain lines otherwise.

stdout stays for results (drift events, reports); everything here goes to stderr. On a TTY one
line is redrawn in place (at most ten times a second); when stderr is a file or a pipe (CI logs,
``2> log``) a plain line is written every ``interval`` seconds, so a log shows the run is alive
without a flood. A run shorter than one interval prints nothing.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

_BAR_WIDTH = 24


class Progress:
    """Reports ``done`` out of ``total`` (unknown total: a count and a rate).

    Parameters
    ----------
    label : str
        The command's name, the start of every line (``replay``, ``simulate``, ``compare``).
    total : int or None
        The amount of work, when known in advance.
    unit : str
        What is counted (``events``, ``bytes``, ``features``).
    quiet : bool
        Print nothing.
    stream : TextIO or None
        Where to write (default ``sys.stderr``).
    interval : float or None
        Seconds between plain lines (default 5); the terminal bar redraws every 0.1 s.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> p = Progress("replay", total=10, unit="events", stream=out, interval=0)
    >>> p.update(5)
    >>> out.getvalue().split(": ")[1].split(" (")[0]
    '5/10 events'
    """

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        unit: str = "events",
        quiet: bool = False,
        stream: TextIO | None = None,
        interval: float | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.interval = interval if interval is not None else (0.1 if self.tty else 5.0)
        self._started = time.monotonic()
        # the first report comes one interval in: quick runs stay silent
        self._last = self._started
        self._drawn = False

    def update(self, done: int, note: str = "", *, force: bool = False) -> None:
        """Report ``done`` units so far, with an optional ``note`` (throttled unless ``force``)."""
        if self.quiet:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        self._emit(self._line(done, now, note))

    def status(self, message: str, *, force: bool = False) -> None:
        """Report a phase without a count (e.g. waiting for calibrations), throttled."""
        if self.quiet:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        self._emit(f"{self.label}: {message} ({now - self._started:.0f}s)")

    def close(self, done: int | None = None) -> None:
        """End the bar's line (a final redraw with ``done`` on a terminal)."""
        if self.quiet:
            return
        if self.tty:
            if done is not None:
                self._emit(self._line(done, time.monotonic(), ""))
            if self._drawn:
                self.stream.write("\n")
                self.stream.flush()
                self._drawn = False

    def _line(self, done: int, now: float, note: str) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = f"{done / elapsed:,.0f} {self.unit}/s"
        if self.total:
            share = min(done / self.total, 1.0)
            head = f"{done}/{self.total} {self.unit} ({share:.0%}, {rate})"
            if self.tty:
                filled = round(share * _BAR_WIDTH)
                head = f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] " + head
        else:
            head = f"{done} {self.unit} ({rate})"
        return f"{self.label}: {head}" + (f"; {note}" if note else "")

    def _emit(self, line: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
