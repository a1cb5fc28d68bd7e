"""The run's progress and measured rates: sessions and trading time done, ETA, recent bars/s.

Used on the UI's event loop only (by the app, which feeds each snapshot to a
:class:`ProgressTracker`, and by the status bar, which shows what it reports). Nothing
here touches Textual, so it is tested directly: the wall clock is an argument.

Progress counts *trading* time only: the run's total is the sum of its sessions' open
hours, so a night or a weekend takes no share of the bar. The ETA divides what is left by
the rate measured over the last few seconds (never a configured speed), so it is right in
data-driven mode too, and it says nothing while the engine does not move.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from sessionkit.engine.pipeline.snapshot import Snapshot

RATE_WINDOW = 5.0
"""Seconds of wall time a measured rate looks back over."""


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
    total = sum((close - open_).total_seconds() for open_, close in bounds)
    if snapshot.state == "completed":
        return RunProgress(len(bounds), len(bounds), total, total)
    index = snapshot.session_index  # 1-based; 0 before the first session
    if index <= 0:
        return RunProgress(0, len(bounds), 0.0, total)
    done = sum((close - open_).total_seconds() for open_, close in bounds[: index - 1])
    open_, close = bounds[index - 1]
    now = snapshot.sim_time
    current = (
        _clip((now - open_).total_seconds(), 0.0, (close - open_).total_seconds())
        if (now is not None)
        else 0.0
    )
    ended = index - 1
    if snapshot.state == "session-ended" or (now is not None and now >= close):
        ended = index
    return RunProgress(ended, len(bounds), done + current, total)


def _clip(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


class RateMeter:
    """The recent rate of change of a growing counter (per wall second).

    ``add(wall, value)`` records a sample; :meth:`rate` is the slope over the samples of
    the last :data:`RATE_WINDOW` seconds, so it falls to 0 a few seconds after the counter
    stops (a paused engine), unlike a lifetime average. A counter that goes back (a new
    run after a seek) starts the meter again.
    """

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self._samples: deque[tuple[float, float]] = deque()

    def reset(self) -> None:
        self._samples.clear()

    def add(self, wall: float, value: float) -> None:
        samples = self._samples
        if samples and value < samples[-1][1]:
            samples.clear()
        if samples and samples[-1][1] == value and len(samples) > 1 and samples[-2][1] == value:
            samples[-1] = (wall, value)  # a flat run needs only its two ends
        else:
            samples.append((wall, value))
        while len(samples) > 2 and wall - samples[1][0] >= self.window:
            samples.popleft()

    def rate(self, wall: float) -> float | None:
        """Per-second rate over the window ending at ``wall``; None before two samples."""
        samples = self._samples
        if len(samples) < 2:
            return None
        first_wall, first = samples[0]
        last_wall, last = samples[-1]
        span = max(wall, last_wall) - first_wall
        if span <= 0:
            return None
        return (last - first) / span


class ProgressTracker:
    """Follows the snapshots of a run: its progress, its ETA and its recent bars/s."""

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.progress: RunProgress | None = None
        self._trading = RateMeter(window)
        self._bars = RateMeter(window)
        self._finished = False

    def reset(self) -> None:
        """Forget the measured rates (the engine restarted)."""
        self._trading.reset()
        self._bars.reset()

    def update(self, snapshot: Snapshot, wall: float) -> None:
        """Take a new snapshot seen at ``wall`` (monotonic seconds)."""
        self.progress = run_progress(snapshot)
        self._finished = snapshot.finished
        if self.progress is not None and snapshot.session_index > 0:
            # Before its first session a run (or a restarted one) has no position yet.
            self._trading.add(wall, self.progress.seconds_done)
        self._bars.add(wall, float(snapshot.metrics.bars_processed))

    def bars_per_second(self, wall: float) -> float | None:
        """Bars processed per wall second, recently (0 while paused)."""
        if self._finished:
            return None
        return self._bars.rate(wall)

    def eta(self, wall: float) -> float | None:
        """Wall seconds until the run ends at the measured pace; None if it cannot be told
        (not moving, finished, or not measured yet)."""
        progress = self.progress
        if progress is None or self._finished:
            return None
        rate = self._trading.rate(wall)
        if not rate or rate <= 0 or not math.isfinite(rate):
            return None
        return progress.seconds_left / rate


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
