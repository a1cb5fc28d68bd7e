"""The run's progress and measured pace: sessions and trading time done, ETA, recent bars/s.

Used on the UI's event loop only (by the app, which feeds each snapshot to a
:class:`ProgressTracker`, and by the status bar, which shows what it reports). Nothing
here touches Textual, so it is tested directly: the wall clock is an argument.

Progress counts *trading* time only: the run's total is the sum of its sessions' open
hours, so a night, a weekend or a session's break (a lunch break in Tokyo or Hong Kong:
the engine moves on to its end at once) takes no share of the bar. The ETA divides what is left by
the pace: the trading seconds replayed per wall second, measured between the steps seen
over the last ten seconds (and at least the last few steps, however slow), so it is right
in data-driven mode too. A pause, a speed or clock change and a restart start the
measurement again: a paused engine shows 0 bars/s and no ETA, and paused time never counts
in a pace. A clock-driven run is at its speed until a few steps were measured, and while
the measured pace keeps up with it (they differ only by when the polls fell).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sessionkit.engine.pipeline.snapshot import Snapshot

RATE_WINDOW = 5.0
"""Seconds of wall time a measured rate (bars/s) looks back over (at least)."""

PACE_WINDOW = 10.0
"""Seconds of wall time the measured pace (the ETA's) looks back over (at least): a poll's
lateness is a smaller share of it."""

RATE_STEPS = 3
"""Steps a measured rate spans at least, however long they took: at 10x a 1-minute bar
arrives every 6 wall seconds, at 1x every minute. A rate needs this many too."""

KEEPS_UP = 0.05
"""A clock-driven run whose measured pace is within this share of its speed keeps up: its
pace is the speed (the measured one differs only by when the polls fell, and the session
loads)."""


@dataclass(frozen=True, slots=True)
class RunProgress:
    """How far a run has gone."""

    sessions_done: int
    """Sessions fully replayed."""
    sessions_total: int
    seconds_done: float
    """Trading seconds replayed (ended sessions plus the current one up to its sim time)."""
    seconds_total: float

    @property
    def fraction(self) -> float:
        """Share of the run's trading time replayed, 0 to 1."""
        if self.seconds_total <= 0:
            return 0.0
        return min(1.0, max(0.0, self.seconds_done / self.seconds_total))

    @property
    def seconds_left(self) -> float:
        return max(0.0, self.seconds_total - self.seconds_done)


def run_progress(snapshot: Snapshot) -> RunProgress | None:
    """The progress of ``snapshot``'s run, or None when the run's sessions are unknown."""
    bounds = snapshot.session_bounds
    if not bounds or len(bounds) != len(snapshot.sessions):
        return None
    breaks = snapshot.session_breaks
    if len(breaks) != len(bounds):
        breaks = (None,) * len(bounds)
    lengths = [
        _trading(open_, close, pause) for (open_, close), pause in zip(bounds, breaks, strict=True)
    ]
    total = sum(lengths)
    if snapshot.state == "completed":
        return RunProgress(len(bounds), len(bounds), total, total)
    index = snapshot.session_index  # 1-based; 0 before the first session
    if index <= 0:
        return RunProgress(0, len(bounds), 0.0, total)
    done = sum(lengths[: index - 1])
    open_, close = bounds[index - 1]
    now = snapshot.sim_time
    current = (
        _trading(open_, _clip(now, open_, close), breaks[index - 1]) if now is not None else 0.0
    )
    ended = index - 1
    if snapshot.state == "session-ended" or (now is not None and now >= close):
        ended = index
    return RunProgress(ended, len(bounds), done + current, total)


def _clip(value: Any, low: Any, high: Any) -> Any:
    return min(high, max(low, value))


def _trading(start: datetime, end: datetime, pause: tuple[datetime, datetime] | None) -> float:
    """Seconds of trading time from ``start`` to ``end`` (within one session), its break
    (``pause``) left out: time does not run through a break (the engine moves on to its end
    at once), nor does the clock-driven pace."""
    seconds = (end - start).total_seconds()
    if pause is not None:
        low, high = max(start, pause[0]), min(end, pause[1])
        if high > low:
            seconds -= (high - low).total_seconds()
    return max(0.0, seconds)


class RateMeter:
    """The recent rate of a counter that grows in steps (per wall second).

    The polls see the counter ten times a second; a step may come every few wall seconds
    (a slow clock-driven speed). The slope between two polls depends on where they fell
    between the steps, but the slope between two polls that each saw a step is right to a
    poll's time. So only the samples where the counter changed count: :meth:`rate` is the
    slope across those of its window (:data:`RATE_WINDOW` seconds unless told), and at least the last
    :data:`RATE_STEPS` + 1 of them; None before :data:`RATE_STEPS` steps were seen after
    the first sample. When the counter is late (no step for longer than twice the steps'
    mean interval), the wait beyond that counts too, so the rate falls while it stands
    still. A counter that
    goes back (a new run after a seek) starts the meter again, as :meth:`reset` does (the
    owner's call when the engine paused or changed speed).
    """

    def __init__(self, window: float = RATE_WINDOW, steps: int = RATE_STEPS) -> None:
        self.window = window
        self.steps = max(1, steps)
        self._changes: deque[tuple[float, float]] = deque()
        self._first: float | None = None
        self._last: float | None = None

    def reset(self) -> None:
        self._changes.clear()
        self._first = self._last = None

    def add(self, wall: float, value: float) -> None:
        """Record the counter's ``value`` seen at ``wall``."""
        if self._last is not None and value < self._last:
            self.reset()
        if self._last is None:
            self._first = value  # where the counter stood: not a step
        elif value != self._last:
            changes = self._changes
            changes.append((wall, value))
            while len(changes) > self.steps + 1 and wall - changes[1][0] >= self.window:
                changes.popleft()
        self._last = value

    @property
    def growth(self) -> float:
        """How much the counter grew since the meter (re)started."""
        if self._first is None or self._last is None:
            return 0.0
        return self._last - self._first

    def rate(self, wall: float) -> float | None:
        """Per-second rate over the steps of the window, as of ``wall``; None while fewer
        than :data:`RATE_STEPS` steps were seen."""
        changes = self._changes
        intervals = len(changes) - 1
        if intervals < self.steps:
            return None
        first_wall, first = changes[0]
        last_wall, last = changes[-1]
        span = last_wall - first_wall
        if span <= 0:
            return None
        late = wall - last_wall - 2.0 * span / intervals  # a poll late is not a stall
        return (last - first) / (span + max(0.0, late))


class ProgressTracker:
    """Follows the snapshots of a run: its progress, its pace, ETA and recent bars/s."""

    def __init__(
        self,
        window: float = RATE_WINDOW,
        steps: int = RATE_STEPS,
        pace_window: float = PACE_WINDOW,
    ) -> None:
        self.progress: RunProgress | None = None
        self._trading = RateMeter(pace_window, steps)
        self._bars = RateMeter(window, steps)
        self._finished = False
        self._paused = False
        self._clock: tuple[str, float | None] | None = None

    def reset(self) -> None:
        """Forget the measured rates (the engine restarted, paused or changed speed)."""
        self._trading.reset()
        self._bars.reset()

    def update(self, snapshot: Snapshot, wall: float) -> None:
        """Take a new snapshot seen at ``wall`` (monotonic seconds)."""
        self.progress = run_progress(snapshot)
        self._finished = snapshot.finished
        self._paused = snapshot.state == "paused"
        clock = (snapshot.clock, snapshot.speed)
        if self._paused or clock != self._clock:
            # Paused time (and steps taken while paused) must not count in a pace, nor the
            # pace of another speed: measure again from the next snapshot that moves on.
            self._clock = clock
            self.reset()
            if self._paused:
                return
        if self.progress is not None and snapshot.session_index > 0:
            # Before its first session a run (or a restarted one) has no position yet.
            self._trading.add(wall, self.progress.seconds_done)
        # Base bars, as the engine's bars/s counts them (`sessionkit run --json` too).
        self._bars.add(wall, float(snapshot.metrics.bars_streamed))

    def pace(self, wall: float) -> float | None:
        """Trading seconds replayed per wall second now; None if it cannot be told (paused,
        finished, or data-driven and not measured yet).

        Clock-driven, the speed until :data:`RATE_STEPS` steps were measured, and while the
        measured pace is within :data:`KEEPS_UP` of it; a slower measured pace (the engine
        does not keep up) otherwise.
        """
        if self._paused or self._finished:
            return None
        measured = self._trading.rate(wall)
        clock, speed = self._clock or ("data-driven", None)
        if (
            clock == "clock-driven"
            and speed
            and (measured is None or measured >= speed * (1.0 - KEEPS_UP))
        ):
            return speed
        if measured is None or measured <= 0 or not math.isfinite(measured):
            return None
        return measured

    def bars_per_second(self, wall: float) -> float | None:
        """Bars processed per wall second, recently: 0 while paused; None when finished or
        not measured yet.

        At a clock-driven speed the engine keeps up with, the pace times the bars per
        trading second since the measurement started (exact, whenever the polls fell).
        """
        if self._finished:
            return None
        if self._paused:
            return 0.0
        measured = self._bars.rate(wall)
        if self._clock is not None and self._clock[0] == "clock-driven":
            pace, trading = self.pace(wall), self._trading.growth
            if pace is not None and pace == self._clock[1] and trading > 0:
                return pace * self._bars.growth / trading
        return measured

    def eta(self, wall: float) -> float | None:
        """Wall seconds until the run ends at the :meth:`pace`; None if it cannot be told
        (paused, finished, or not measured yet)."""
        progress = self.progress
        pace = self.pace(wall)
        if progress is None or pace is None:
            return None
        return progress.seconds_left / pace


def duration(seconds: float | None) -> str:
    """``42s``, ``3m 05s``, ``2h 14m``; ``-`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24:02d}h"


def bar(fraction: float, width: int) -> str:
    """A text progress bar of ``width`` cells with eighth-cell resolution."""
    width = max(1, width)
    eighths = int(round(_clip(fraction, 0.0, 1.0) * width * 8))
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part] if part else ""
    return ("█" * full + partial).ljust(width, "░")[:width]


__all__ = [
    "ProgressTracker",
    "RateMeter",
    "RunProgress",
    "bar",
    "duration",
    "run_progress",
]
