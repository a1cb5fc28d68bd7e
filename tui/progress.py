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

A consumer on its own thread (the processor, the analysis, the quality manager) may not
keep up with the clock: the coordinator publishes the instants on time while that consumer
builds a backlog, and waits for it at the session's end. The clock's pace then says
nothing of the run's end, so the ETA is also bound by the slowest consumer: its backlog
(instants published, ``metrics.steps``, less the messages it handled) plus the instants
still to come (the trading time left, at the instants per trading second seen so far),
at the wall seconds it is busy per message, measured over the last ten seconds. The ETA
is the larger of the two; while a consumer is behind (and for a pace window after), the
clock-bound one is at the speed, since the clock's standstill is that consumer's backlog.
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

BEHIND = 2
"""A consumer is behind when at least this many instants published wait for it (one may
be in its hands: it counts the ones it handled)."""

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


class LoadMeter:
    """The wall seconds one consumer is busy per message it handles, recently.

    Fed its cumulative ``messages`` and ``busy_seconds``, and the run's session index; the
    cost is the busy time's growth over the instants' growth across the samples of the
    last ``window`` seconds (and at least ``steps`` instants): the messages less two per
    session change (a session's end and the next one's start, which the consumer handles
    before the coordinator moves on). Busy time is its own work only, so the cost does not
    depend on the speed, on pauses, or on whether the consumer waits for instants. A count
    that goes back (a new run) starts it again."""

    def __init__(self, window: float = PACE_WINDOW, steps: int = RATE_STEPS) -> None:
        self.window = window
        self.steps = max(1, steps)
        self._samples: deque[tuple[float, int, float]] = deque()
        self._messages = 0

    def add(self, wall: float, messages: int, busy: float, session: int = 0) -> None:
        samples = self._samples
        instants = messages - 2 * session
        if samples and (messages < self._messages or busy < samples[-1][2]):
            samples.clear()
        self._messages = messages
        if samples and instants == samples[-1][1]:
            return  # no instant handled since: only the ones that moved on measure
        samples.append((wall, instants, busy))
        while (
            len(samples) > 2
            and wall - samples[1][0] >= self.window
            and instants - samples[1][1] >= self.steps
        ):
            samples.popleft()

    def cost(self) -> float | None:
        """Busy seconds per instant; None before ``steps`` instants were measured."""
        samples = self._samples
        if len(samples) < 2:
            return None
        _, first_instants, first_busy = samples[0]
        _, last_instants, last_busy = samples[-1]
        handled = last_instants - first_instants
        if handled < self.steps:
            return None
        return max(0.0, last_busy - first_busy) / handled


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
        self._pace_window = pace_window
        self._steps = max(1, steps)
        self._loads: dict[str, LoadMeter] = {}
        """Per consumer thread, its cost per message (kept through pauses and speeds)."""
        self._first_session = 1
        """The session this engine started at (a seek's; its messages count from it)."""
        self._origin: tuple[float, float] | None = None
        """(instants, trading seconds) at the run's first position: their ratio since."""
        self._instants: tuple[float, float] | None = None
        """(instants published, trading seconds replayed) as of the last snapshot."""
        self._step_seconds: float | None = None
        """Trading seconds of one base bar (the instants' spacing when not measured)."""
        self._backlogs: dict[str, int] = {}
        """Per consumer thread, the instants published it has not handled yet."""
        self._lagging: dict[str, float] = {}
        """Per consumer thread seen behind, the wall time it last was."""

    def reset(self) -> None:
        """Forget the measured rates (the engine restarted, paused or changed speed)."""
        self._trading.reset()
        self._bars.reset()

    def restart(self) -> None:
        """Forget everything measured of the run (a new engine: a seek)."""
        self.reset()
        self._loads.clear()
        self._origin = self._instants = None
        self._backlogs.clear()
        self._lagging.clear()

    def update(self, snapshot: Snapshot, wall: float) -> None:
        """Take a new snapshot seen at ``wall`` (monotonic seconds)."""
        self.progress = run_progress(snapshot)
        self._finished = snapshot.finished
        self._paused = snapshot.state == "paused"
        self._follow_consumers(snapshot, wall)
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

    def _follow_consumers(self, snapshot: Snapshot, wall: float) -> None:
        """Measure the consumer threads' cost per message and backlog, and the instants
        per trading second."""
        metrics = snapshot.metrics
        steps = metrics.steps
        if self._instants is not None and steps < self._instants[0]:
            self.restart()  # a new run (after a seek): its counters start again
        progress = self.progress
        if progress is not None and snapshot.session_index > 0:
            self._instants = (float(steps), progress.seconds_done)
            if self._origin is None:
                self._origin = self._instants
                self._first_session = snapshot.session_index
        if snapshot.intervals:
            try:
                seconds = Snapshot.interval_length(snapshot.intervals[0]).total_seconds()
            except (ValueError, KeyError, TypeError):
                seconds = 0.0
            self._step_seconds = seconds if seconds > 0 else None
        self._backlogs.clear()
        if metrics.stages == "threads":  # inline, the coordinator's pace includes them
            for index, thread in enumerate(metrics.threads):
                if index == 0 or thread.name in ("session_coordinator", "session_reader"):
                    continue
                meter = self._loads.get(thread.name)
                if meter is None:
                    meter = self._loads[thread.name] = LoadMeter(self._pace_window, self._steps)
                meter.add(wall, thread.messages, thread.busy_seconds, snapshot.session_index)
                # Its messages: the instants, each session's start and end (the ended
                # ones': the coordinator waits for it at a session's end).
                sessions = max(0, snapshot.session_index - self._first_session) * 2 + 1
                backlog = max(0, steps - (thread.messages - sessions))
                self._backlogs[thread.name] = backlog
                if backlog >= BEHIND:
                    self._lagging[thread.name] = wall

    def _instants_left(self) -> float | None:
        """Instants still to be published, from the trading time left."""
        progress, now, origin = self.progress, self._instants, self._origin
        if progress is None or now is None:
            return None
        per_second = None
        if origin is not None:
            instants, seconds = now[0] - origin[0], now[1] - origin[1]
            if seconds > 0 and instants >= self._steps:
                per_second = instants / seconds
        if per_second is None and self._step_seconds:
            per_second = 1.0 / self._step_seconds
        if per_second is None:
            return None
        return progress.seconds_left * per_second

    def _lagging_now(self, wall: float) -> list[str]:
        """The consumers behind now, or within the pace window (one that caught up at a
        session's end falls behind again in the next)."""
        return [
            name
            for name, since in self._lagging.items()
            if name in self._backlogs and wall - since <= self._pace_window
        ]

    def consumer_eta(self, wall: float) -> float | None:
        """Wall seconds until the slowest consumer that does not keep up (behind now or
        within the pace window) has handled every instant of the run, its backlog and
        those to come, at its measured cost per message; None when every consumer keeps up
        or its cost is not measured yet."""
        lagging = self._lagging_now(wall)
        if not lagging:
            return None
        left = self._instants_left()
        if left is None:
            return None
        worst: float | None = None
        for name in lagging:
            backlog = self._backlogs[name]
            meter = self._loads.get(name)
            cost = meter.cost() if meter is not None else None
            if cost is None:
                continue
            eta = (backlog + left) * cost
            worst = eta if worst is None else max(worst, eta)
        return worst

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
        """Wall seconds until the run ends: at the :meth:`pace`, or as long as the slowest
        consumer needs for its backlog and the instants to come (:meth:`consumer_eta`),
        whichever is longer; None if it cannot be told (paused, finished, or not measured
        yet).

        While a consumer is behind (and for a pace window after), a clock-driven run's own
        bound is at its speed: the clock stood still only to wait for that consumer, which
        its bound counts."""
        progress = self.progress
        if progress is None or self._paused or self._finished:
            return None
        clock, speed = self._clock or ("data-driven", None)
        if clock == "clock-driven" and speed and self._lagging_now(wall):
            pace: float | None = speed
        else:
            pace = self.pace(wall)
        bound = progress.seconds_left / pace if pace is not None else None
        consumer = self.consumer_eta(wall)
        if consumer is None:
            return bound
        return consumer if bound is None else max(bound, consumer)


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
    "LoadMeter",
    "ProgressTracker",
    "RateMeter",
    "RunProgress",
    "bar",
    "duration",
    "run_progress",
]
