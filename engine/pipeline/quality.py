"""DataQualityManager: quality percentages and gaps, in the background.

Runs on the ``data_quality_manager`` thread in clock-driven and live modes: it never blocks
anyone, the coordinator puts each step on its queue and goes on, and it works in batches.
In data-driven mode the coordinator runs it inline, like the processor and the analysis
(no hand-off; its thread then only waits): it accounts every instant's bars and refreshes
the percentages every ``QUALITY_REFRESH_STEPS`` instants, at every pause and single step,
and at each session's end. It is the only writer of quality metrics in
:class:`~sessionkit.engine.core.session_data.SessionData` and of its own gap lists, from one
thread at a time (switching the clock mode first drains its queue).

Quality of (symbol, interval) = bars present / bars the calendar expects so far in the
session, in percent; derived intervals carry their base's quality. Historical quality
(key ``"<interval>:history"``) is assigned at session start over the trailing window.
With ``enable_session_quality = false`` every stream gets 100%. Gap filling happens in
live mode only, through the feed's backfill; never in a backtest. After handling an instant
at which a symbol's bars were due and did not come, the manager asks the feed's backfill
for them and hands what it gets to the coordinator, which merges it into its next instant
(so a filled bar is known from that instant, never earlier); the live coordinator waits for
the manager before it publishes that instant (``pipeline/live.py``), so the fill comes
before any newer bar of its symbol. A fill counts, and the event log says "filled", only
when it arrived in a step: the coordinator drops (and logs) a fill that comes after newer
bars, and a run still missing is a gap. The bars missing at the close are asked for too:
their fills come with one more instant at the close.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, MutableSequence
from datetime import datetime
from operator import itemgetter

from ..core.bar import Bar, interval_delta
from ..core.windows import bar_end, bars_between, expected_bars, gap_end, next_bar_start
from .runtime import (
    Message,
    Recording,
    Runtime,
    SessionEnded,
    SessionPlan,
    SessionStarted,
    Stage,
    StepReady,
    next_message,
)

_START, _BAR = itemgetter(0), itemgetter(1)
"""A bar's start; a ``(symbol, bar)`` pair's bar."""

Gap = tuple[datetime, datetime]
"""A run of missing bars: start of the first missing bar, end of the last one."""


class _Track:
    __slots__ = ("present", "next_start", "gaps", "missing", "tried", "requested")

    def __init__(self) -> None:
        self.tried: datetime | None = None
        self.requested: dict[datetime, Bar] = {}
        """Backfilled bars handed to the coordinator whose start has not come in a step yet,
        by start (the very objects: a bar the feed delivered itself is not a fill)."""
        self.present = 0
        self.next_start: datetime | None = None
        self.gaps: list[Gap] = []
        self.missing = 0


class DataQualityManager(Stage):
    """The ``data_quality_manager`` thread (component 6).

    Parameters
    ----------
    runtime
        The session's shared state.
    backfill
        Live mode only: ``backfill(symbol, start, end) -> list[Bar]`` fetches missing bars
        (from the database or the feed); ``fill(symbol, bars)`` hands them to the
        coordinator, which hands them to the processor with its next instant (or drops
        them if newer bars of the symbol went first).
    record
        Keep the quality of every symbol at every step in :attr:`record` (for the export):
        ``True`` in lists, ``"drain"`` in deques the export empties as the run goes.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        backfill: Callable[[str, datetime, datetime], list[Bar]] | None = None,
        fill: Callable[[str, list[Bar]], None] | None = None,
        record: Recording = False,
    ) -> None:
        super().__init__(runtime, "data_quality_manager")
        config = runtime.config
        self.enabled = config.quality.enable_session_quality
        self.live = config.mode == "live"
        self.base = config.streams.interval
        self.delta = interval_delta(self.base)
        self.derived = tuple(config.streams.derived)
        self.symbols = tuple(config.streams.symbols)
        self.tracks: dict[str, _Track] = {s: _Track() for s in self.symbols}
        self.all_gaps: dict[str, list[Gap]] = {s: [] for s in self.symbols}
        """Every closed gap of the run, per symbol."""
        self.totals: dict[str, list[int]] = {s: [0, 0] for s in self.symbols}
        """[present, expected] bars over the sessions that ended, per symbol."""
        self.filled = 0
        """Backfilled bars that arrived in a step, in the run (live mode)."""
        self.fills_lost = 0
        """Backfilled bars handed to the coordinator that never arrived in a step, nor the
        feed's own copy (dropped after newer bars, or still on their way at the close), in
        the run (live mode)."""
        self._backfill = backfill if self.live else None
        self._fill = fill
        self._plan: SessionPlan | None = None
        self._aligned: datetime | None = None
        """The start every symbol's track expects next, when they all agree (the fast path
        of :meth:`account`); None otherwise."""
        self._session_open = False
        self._expected_now = 0
        kept = deque if record == "drain" else list
        self.record: dict[str, MutableSequence[tuple[datetime, float]]] | None = (
            {s: kept() for s in self.symbols} if record else None
        )
        """When a dict, the quality of every symbol at every step is kept (for export)."""
        self._cond = threading.Condition()
        self.throttle = 0.01 if runtime.config.clock == "data-driven" else 0.0
        """Pause (seconds) after each batch; set by the session for the clock mode."""

    # -- thread -------------------------------------------------------------------------

    def receive(self) -> list[Message] | None:
        """Everything queued: at full speed the manager works in batches."""
        message = next_message(self.queue, self.runtime)
        if message is None:
            return None
        batch = [message]
        while True:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                return batch

    def after_batch(self) -> None:
        with self._cond:  # the batch is done: wake :meth:`wait_done`
            self._cond.notify_all()
        if self.throttle and not self.runtime.controls.paused:
            # Best effort, never in anyone's way: at full speed, take the GIL at most
            # ~100 times a second instead of at every step.
            self.runtime.stop_event.wait(self.throttle)

    def finished(self, seq: int) -> None:
        # One writer; waiters are woken once per batch (:meth:`after_batch`), not per step.
        self.done_seq = seq

    def on_step(self, message: StepReady) -> None:
        if self.record is None and self.backlog:
            self.account(message.time, message.items)  # quality at the batch's last step
        else:
            self.refresh(message.time, message.items)

    def on_session_start(self, message: SessionStarted) -> None:
        self.start_session(message.plan)

    def on_session_end(self, message: SessionEnded) -> None:
        self.end_session(message.close)

    def wait_done(self, seq: int, timeout: float) -> bool:
        """Wait until message ``seq`` was handled (the coordinator, at the end and paused)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self.done_seq >= seq or self.runtime.stopping, timeout
            )

    # -- work ---------------------------------------------------------------------------

    def start_session(self, plan: SessionPlan) -> None:
        """Reset the session's tracks; assign historical quality over the trailing window.

        The processor has finished the session's start (the coordinator sends it here
        after), so the base series' history count is final.
        """
        self._plan = plan
        self.tracks = {s: _Track() for s in self.symbols}
        self._realign(plan)
        self._expected_now = 0
        self._session_open = True
        data = self.runtime.data
        for symbol in self.symbols:
            # Over the symbol's own trailing window (symbols may keep different histories).
            cutoff = plan.cutoffs.get((symbol, self.base), plan.open)
            expected = sum(
                expected_bars(session, self.delta)
                for session in plan.history
                if session.open >= cutoff
            )
            if not self.enabled or not expected:
                quality = 100.0
            else:
                present = data.series(symbol, self.base).history
                quality = min(100.0, 100.0 * present / expected)
            data.set_quality_metric(symbol, f"{self.base}:history", quality)
            for interval in (self.base, *self.derived):
                data.set_quality_metric(symbol, interval, 100.0)

    def end_session(self, close: datetime) -> None:
        """Final quality at the close; close the trailing gaps; add to the run's totals."""
        plan = self._plan
        if plan is None:
            return
        self.refresh(close, (), fills=False)  # nothing could arrive with a fill now
        self._session_open = False
        self._aligned = None
        expected = expected_bars(plan, self.delta)
        for symbol, track in self.tracks.items():
            if track.requested:  # still pending: the session ended before they came
                self.fills_lost += len(track.requested)
                track.requested.clear()
            self.totals[symbol][0] += track.present
            self.totals[symbol][1] += expected
            if track.missing:
                self._gap(symbol, track, track.next_start or plan.open, plan.close, plan.close)
                track.next_start = plan.close
                track.missing = 0

    def account(self, t: datetime, items: tuple[tuple[str, Bar], ...]) -> None:
        """Count the bars of the step at ``t`` and record the gaps they close."""
        plan = self._plan
        if plan is None:
            return
        tracks = self.tracks
        delta = self.delta
        aligned = self._aligned
        if (
            aligned is not None
            and len(items) == len(tracks)
            # every bar starts there (compared in C: no Python step per bar)
            and list(map(_START, map(_BAR, items))).count(aligned) == len(items)
        ):
            # The common case (a backtest's step holds each symbol once): every symbol's bar
            # starts where every track expects one; one new datetime for all of them.
            following = (
                aligned + delta
                if plan.break_start is None
                else next_bar_start(plan, delta, aligned)
            )
            for track in tracks.values():
                track.present += 1
                track.next_start = following
            self._aligned = following
            return
        plain = plan.break_start is None  # no break: the next bar starts one interval on
        filled: dict[str, int] | None = None
        for symbol, bar in items:
            track = tracks[symbol]
            start = bar[0]
            expected_start = track.next_start or plan.open
            # A bar asked for arrived: the very bar handed on (a fill the coordinator
            # accepted), or the feed's own copy after all (not a fill).
            if track.requested and track.requested.pop(start, None) is bar:
                if filled is None:
                    filled = {}
                filled[symbol] = filled.get(symbol, 0) + 1
            if start < expected_start:
                continue  # already counted (cannot happen: fills arrive in time order)
            if start > expected_start:
                self._gap(symbol, track, expected_start, gap_end(plan, start), t)
            track.present += 1
            track.next_start = start + delta if plain else next_bar_start(plan, delta, start)
        if self.live:
            self._settle_fills(t, items, filled)
        self._realign(plan)

    def _settle_fills(
        self, t: datetime, items: tuple[tuple[str, Bar], ...], filled: dict[str, int] | None
    ) -> None:
        """Live mode: log the fills that arrived at ``t``; forget (and count as lost) those
        a newer bar has passed, which the coordinator dropped."""
        if filled:
            self.filled += sum(filled.values())
            for symbol, count in filled.items():
                self.runtime.log(
                    f"filled {count} missing {symbol} {self.base} bar(s) from the feed's backfill",
                    sim_time=t,
                )
        tracks = self.tracks
        for symbol in {symbol for symbol, _bar in items}:
            track = tracks[symbol]
            if track.requested and track.next_start is not None:
                passed = [s for s in track.requested if s < track.next_start]
                for start in passed:
                    del track.requested[start]
                self.fills_lost += len(passed)

    def _realign(self, plan: SessionPlan) -> None:
        """Set :attr:`_aligned` to the start every track expects next, if they all agree
        (and no backfill can arrive: live mode always takes the general path)."""
        common = None
        if not self.live:
            for track in self.tracks.values():
                expected = track.next_start or plan.open
                if common is None:
                    common = expected
                elif expected != common:
                    common = None
                    break
        self._aligned = common

    def refresh(
        self, t: datetime, items: tuple[tuple[str, Bar], ...], *, fills: bool = True
    ) -> None:
        """Account the bars visible at ``t`` and refresh every symbol's quality; in live
        mode, ask for the bars missing by ``t`` (unless not ``fills``: the session ended)."""
        plan = self._plan
        if plan is None:
            return
        self.account(t, items)
        tracks = self.tracks
        delta = self.delta
        if fills and self._backfill is not None and t <= plan.close:
            # (Fills of the bars missing at the close come with one more instant at the
            # close: see ``LiveCoordinator``.)
            self._fill_missing(t)
        data = self.runtime.data
        now = min(t, plan.close)
        expected = expected_bars(plan, delta, now)
        self._expected_now = max(0, expected)
        for symbol, track in tracks.items():
            start = track.next_start or plan.open
            # A run still open at ``now`` counts as missing so far (none in the common
            # case: the symbol's last bar ended at ``now``).
            track.missing = bars_between(plan, delta, start, now) if start < now else 0
            if not self.enabled or expected <= 0:
                quality = 100.0
            else:
                quality = min(100.0, 100.0 * track.present / expected)
            data.set_quality_metric(symbol, self.base, quality)
            if self.record is not None:
                self.record[symbol].append((t, quality))
            for interval in self.derived:
                data.set_quality_metric(symbol, interval, quality)

    def _gap(
        self, symbol: str, track: _Track, start: datetime, end: datetime, found: datetime
    ) -> None:
        track.gaps.append((start, end))
        self.all_gaps[symbol].append((start, end))
        count = bars_between(self._plan, self.delta, start, end)
        self.runtime.log(
            sim_time=found,
            message=f"gap in {symbol} {self.base}: {count} bar(s) missing from "
            f"{start.astimezone(self.runtime.tz):%Y-%m-%d %H:%M}",
        )

    def _fill_missing(self, t: datetime) -> None:
        """Live mode: fetch the bars due by ``t`` that did not arrive, and hand them on.

        Due: the symbol's next expected bar ended by ``t`` (its bars up to ``t`` are
        accounted). Whatever else of the symbol came at ``t`` (a fill of an older bar)
        says nothing about the bars after it."""
        plan = self._plan
        assert plan is not None and self._backfill is not None and self._fill is not None
        delta = self.delta
        for symbol, track in self.tracks.items():
            start = track.next_start or plan.open
            if bar_end(plan, delta, start) > t or (track.tried and track.tried >= t):
                continue
            track.tried = t
            bars = [
                bar
                for bar in self._backfill(symbol, start, t)
                if bar.start >= start and bar.start not in track.requested
            ]
            if not bars:
                continue
            # Counted (present, filled) and logged only when they arrive with the
            # coordinator's next instant (:meth:`account`): it drops a fill that comes after
            # newer bars.
            track.requested.update((bar.start, bar) for bar in bars)
            self._fill(symbol, bars)

    def overall_quality(self, symbol: str) -> float | None:
        """Quality over the run so far: the ended sessions plus the current one up to now.

        None before any bar was expected.
        """
        present, expected = self.totals.get(symbol, (0, 0))
        if self._session_open:
            track = self.tracks.get(symbol)
            present += track.present if track is not None else 0
            expected += self._expected_now
        if not self.enabled:
            return 100.0
        return min(100.0, 100.0 * present / expected) if expected else None

    def gap_count(self, symbol: str) -> int:
        """Runs of missing bars so far in this session (an open run included). Any thread."""
        track = self.tracks.get(symbol)
        if track is None:
            return 0
        return len(track.gaps) + (1 if track.missing else 0)

    def run_gap_count(self, symbol: str) -> int:
        """Runs of missing bars in the run so far: every closed one, and the one still open
        (a run stopped inside a gap). Any thread."""
        track = self.tracks.get(symbol)
        open_run = 1 if track is not None and track.missing else 0
        return len(self.all_gaps.get(symbol, ())) + open_run

    def gaps(self, symbol: str) -> list[Gap]:
        """A copy of the closed gaps of ``symbol`` in this session. Any thread."""
        track = self.tracks.get(symbol)
        return list(track.gaps) if track is not None else []
