"""SessionCoordinator: initialize -> stream -> end, one trading day at a time.

Runs on the ``session_coordinator`` thread. It is the only writer of base-interval bar
series and of the simulated time. Per session it loads the trailing history and the
session's bars, asks the data processor to warm indicators up, then streams: per
simulated instant it appends the bars that become visible, hands the processor **one**
notification, queues the step for the quality manager and waits for the consumers as the
clock mode says. A session's break has no step: time moves from its start to its end at
once (:meth:`SessionCoordinator._leave_break`). Pause, step, speed and stop requests
arrive through :class:`~sessionkit.engine.pipeline.runtime.Controls`; every wait here is
interruptible.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import date, datetime

from ..core.bar import Bar, Step, interval_delta
from ..core.subscription import StreamSubscription
from ..core.time_manager import TimeManager, TradingSession
from ..core.windows import bar_end, in_break
from ..store.data_manager import DataManager
from .runtime import (
    SESSION_END,
    SESSION_START,
    STEP,
    STOP,
    Runtime,
    SessionPlan,
    StopRequested,
    monotonic,
)

"""One simulated instant: the time and the (symbol, bar) pairs visible from it."""


class Metrics:
    """Coordinator-owned counters (read by the snapshot; single writer)."""

    def __init__(self) -> None:
        self.steps = 0
        self.bars = 0
        self.initial_load: float | None = None
        self.subsequent_loads: list[float] = []
        self.step_time_total = 0.0
        self.step_time_count = 0
        self.step_time_max = 0.0
        self.active_seconds = 0.0
        self._active_since: float | None = None

    def resume_clock(self) -> None:
        if self._active_since is None:
            self._active_since = monotonic()

    def pause_clock(self) -> None:
        if self._active_since is not None:
            self.active_seconds += monotonic() - self._active_since
            self._active_since = None

    def streaming_seconds(self) -> float:
        since = self._active_since
        return self.active_seconds + (monotonic() - since if since is not None else 0.0)


class SessionCoordinator(threading.Thread):
    """The ``session_coordinator`` thread (component 4).

    Parameters
    ----------
    runtime
        Shared state (controls, status, event log, SessionData).
    time_manager, data_manager
        Calendar and bar access.
    sessions
        The trading days to stream, in order (checked against the calendar beforehand).
    consumers
        ``(queue, subscription, done)`` for the processor and, if any, the analysis
        engine, in the order the step flows through them; ``done()`` returns the last
        sequence number the consumer finished.
    quality
        The quality manager's queue (never waited on while streaming).
    """

    def __init__(
        self,
        runtime: Runtime,
        time_manager: TimeManager,
        data_manager: DataManager,
        sessions: Sequence[date],
        processor_queue,
        consumers: Sequence[tuple[StreamSubscription, Callable[[], int]]],
        quality_queue,
        analysis_queue=None,
        quality_done: Callable[[int, float], bool] | None = None,
    ) -> None:
        super().__init__(name="session_coordinator", daemon=True)
        self.runtime = runtime
        self.tm = time_manager
        self.dm = data_manager
        self.sessions = tuple(sessions)
        self.processor_queue = processor_queue
        self.consumers = tuple(consumers)
        self.quality_queue = quality_queue
        self.analysis_queue = analysis_queue
        self.quality_done = quality_done
        config = runtime.config
        self.symbols = tuple(config.streams.symbols)
        self.base = config.streams.interval
        self.delta = interval_delta(self.base)
        self.deques = {s: runtime.data.get_bars(s, self.base) for s in self.symbols}
        self.history_counts: dict[str, int] = dict.fromkeys(self.symbols, 0)
        self.prev_close: dict[str, float | None] = dict.fromkeys(self.symbols)
        self.trailing = self._trailing_days()
        self.metrics = Metrics()
        self.plan: SessionPlan | None = None
        self.seq = 0
        self._stepping = False
        self._generation = -1
        self._anchor_wall = 0.0
        self._anchor_sim: datetime | None = None
        self._pending_fills: list[tuple[str, list[Bar]]] = []
        self._fill_lock = threading.Lock()

    def _trailing_days(self) -> dict[str, int]:
        config = self.runtime.config
        trailing = dict.fromkeys(self.symbols, 0)
        for hist in config.historical:
            targets = self.symbols if hist.apply_to == "all" else hist.apply_to
            for symbol in targets:
                trailing[symbol] = max(trailing[symbol], hist.trailing_days)
        return trailing

    # -- thread -------------------------------------------------------------------------

    def run(self) -> None:
        runtime = self.runtime
        try:
            for index, day in enumerate(self.sessions, start=1):
                self._initialize_session(index, day)
                self._stream_session()
                self._end_session()
            self._settle()
            runtime.set_state("completed")
            runtime.log(
                "backtest complete"
                if runtime.config.mode == "backtest"
                else "live session complete"
            )
        except StopRequested:
            runtime.set_state("stopped")
        except Exception as exc:
            runtime.fail("session_coordinator", exc)
        finally:
            self._terminate()

    def _terminate(self) -> None:
        self.metrics.pause_clock()
        for q in (self.processor_queue, self.quality_queue, self.analysis_queue):
            if q is not None:
                q.put((STOP,))
        for subscription, _done in self.consumers:
            subscription.cancel()
        self.runtime.idle.set()

    # -- initialization -----------------------------------------------------------------

    def _initialize_session(self, index: int, day: date) -> None:
        runtime = self.runtime
        runtime.set_state("initializing")
        started = monotonic()
        tm = self.tm
        session = tm.get_trading_session(day)
        if session is None:  # pragma: no cover - sessions come from the calendar
            raise RuntimeError(f"{day} is not a trading day")
        # History: the trailing sessions' regular hours only.
        longest = max(self.trailing.values(), default=0)
        history: list[TradingSession] = []
        if longest:
            first = tm.get_previous_trading_date(day, longest)
            previous = tm.get_previous_trading_date(day, 1)
            history = [tm.get_trading_session(d) for d in tm.sessions_between(first, previous)]
        previous = self.plan
        carry = bool(history) and previous is not None and previous.open == history[-1].open
        for symbol in self.symbols:
            series = self.deques[symbol]
            days = self.trailing[symbol]
            windows = history[len(history) - days :] if days else []
            if carry and windows:
                first_open = windows[0].open
                while series and series[0].start < first_open:
                    series.popleft()  # drop old; the previous session's bars stay
            else:
                series.clear()
                series.extend(self._load_history(symbol, windows))
            self.history_counts[symbol] = len(series)
            self.prev_close[symbol] = series[-1].close if series else None
        plan = SessionPlan(
            index=index,
            date=day,
            open=session.open,
            close=session.close,
            early_close=session.early_close,
            history=tuple(history),
            carry=carry,
            break_start=session.break_start,
            break_end=session.break_end,
        )
        self.plan = plan
        runtime.sim_time = session.open
        # Historical indicators and warm-up (processor), historical quality (quality).
        self._send(self.processor_queue, SESSION_START, plan, include_quality=True)
        self._wait_consumers(self.seq, blocking=True)
        self._steps = self._take_steps(index, session.open, session.close)
        elapsed = monotonic() - started
        if self.metrics.initial_load is None:
            self.metrics.initial_load = elapsed
        else:
            self.metrics.subsequent_loads.append(elapsed)
        tz = runtime.tz
        runtime.log(
            f"session {index}/{len(self.sessions)} {day} "
            f"{session.open.astimezone(tz):%H:%M}-{session.close.astimezone(tz):%H:%M}"
            + (" (early close)" if session.early_close else "")
            + (
                f" (break {session.break_start.astimezone(tz):%H:%M}-"
                f"{session.break_end.astimezone(tz):%H:%M})"
                if session.has_break
                else ""
            )
            + f": {sum(len(s[1]) for s in self._steps)} bars in {len(self._steps)} steps, "
            f"{sum(self.history_counts.values())} history bars, loaded in {elapsed:.3f}s"
        )
        self._anchor(session.open)

    def _load_history(self, symbol: str, windows: list[TradingSession]) -> list[Bar]:
        if not windows:
            return []
        bars = self.dm.get_bars_between(symbol, self.base, windows[0].open, windows[-1].close)
        out: list[Bar] = []
        position = 0
        parts = [part for session in windows for part in session.parts]
        for open_, close in parts:  # keep regular-session bars only (no break, no extended)
            while position < len(bars) and bars[position].start < open_:
                position += 1
            while position < len(bars) and bars[position].start < close:
                out.append(bars[position])
                position += 1
        return out

    def _take_steps(self, index: int, open_: datetime, close: datetime) -> list[Step]:
        """This session's instants, read from the database.

        (Reading the next session in a background thread was tried and dropped: its
        Python work holds the GIL while the engine's threads hand steps to each other, and
        every such hand-off then waits up to the switch interval; the streaming cost rose by
        more than the load time saved.)
        """
        return self._load_steps(open_, close)

    def _load_steps(self, open_: datetime, close: datetime) -> list[Step]:
        """The session's bars grouped into instants (bars share a start: one step)."""
        pairs = self.dm.get_step_bars(self.symbols, self.base, open_, close)
        delta = self.delta
        plan = self.plan
        steps: list[Step] = []
        group: list[tuple[str, Bar]] = []
        current = None
        for pair in pairs:
            start = pair[1].start
            if start != current:
                if group:
                    steps.append((bar_end(plan, delta, current), tuple(group)))
                group = []
                current = start
                if in_break(plan, start):
                    continue  # no step inside a break
            elif not group:
                continue
            group.append(pair)
        if group:
            steps.append((bar_end(plan, delta, current), tuple(group)))
        return steps

    # -- streaming ----------------------------------------------------------------------

    def _stream_session(self) -> None:
        plan = self.plan
        assert plan is not None
        pause = plan.break_start  # the break still ahead, if any
        for t, items in self._steps:
            after = pause is not None and t > pause
            if after:
                self._reach_break(plan)
            self._gate()
            if after:
                self._leave_break(plan)
                pause = None
            self._wait_until(t)
            self._publish(t, items)
        if pause is not None:
            self._reach_break(plan)
        if self.runtime.sim_time < plan.close:
            # Data exhausted before the close: time advances to the close at once (the
            # spec's rule; there is nothing left to pace), as one more instant.
            self._gate()
            self._publish(plan.close, ())

    def _reach_break(self, plan: SessionPlan) -> None:
        """Make the break's start an instant (at once) if the morning's data ended before it.

        Windows cut by the break are emitted then; the time stays there (the snapshot shows
        the break) until the next instant is allowed to run.
        """
        if self.runtime.sim_time < plan.break_start:
            self._gate()
            self._publish(plan.break_start, ())

    def _leave_break(self, plan: SessionPlan) -> None:
        """Move time from the break's start to its end at once, in every clock mode."""
        self.runtime.sim_time = plan.break_end
        self._anchor(plan.break_end)
        self.runtime.version += 1

    def _publish(self, t: datetime, items: tuple[tuple[str, Bar], ...]) -> None:
        started = monotonic()
        if self._pending_fills:
            items = self._merge_fills(items)
        deques = self.deques
        for symbol, bar in items:
            deques[symbol].append(bar)
        runtime = self.runtime
        runtime.sim_time = t
        self._send(self.processor_queue, STEP, t, items, include_quality=True)
        metrics = self.metrics
        metrics.steps += 1
        metrics.bars += len(items)
        if self._stepping or runtime.controls.clock == "data-driven":
            self._wait_consumers(self.seq, blocking=True)
            elapsed = monotonic() - started
            metrics.step_time_total += elapsed
            metrics.step_time_count += 1
            if elapsed > metrics.step_time_max:
                metrics.step_time_max = elapsed
        runtime.version += 1

    def _send(self, q, tag: str, *payload, include_quality: bool = False) -> None:
        self.seq += 1
        message = (tag, self.seq, *payload)
        q.put(message)
        if include_quality:
            self.quality_queue.put(message)

    def _wait_consumers(self, seq: int, *, blocking: bool, deadline: float | None = None) -> bool:
        """Wait until every consumer finished ``seq``. Interruptible.

        ``blocking`` waits as long as it takes (data-driven mode and single steps). Else the
        wait ends at ``deadline`` (clock-driven); a signal still pending for an older step
        is left alone, so the consumer's next signal collides with it and the subscription
        counts an overrun.
        """
        runtime = self.runtime
        for subscription, done in self.consumers:
            while done() < seq:
                if runtime.stopping:
                    raise StopRequested
                if blocking:
                    subscription.wait_and_reset(None)
                    if subscription.cancelled and done() < seq:
                        raise StopRequested
                    continue
                remaining = deadline - monotonic() if deadline is not None else 0.0
                if remaining <= 0 or subscription.is_ready():
                    return False
                subscription.wait_until_ready(remaining)
            subscription.reset()
        return True

    def _end_session(self) -> None:
        plan = self.plan
        assert plan is not None
        # The close ends the clock's pacing: let the consumers finish the last instant first
        # (its ready signal is consumed, so the session-end signal is not an overrun).
        self._wait_consumers(self.seq, blocking=True)
        self._send(self.processor_queue, SESSION_END, plan.close, include_quality=True)
        self._wait_consumers(self.seq, blocking=True)
        self.runtime.set_state("session-ended")
        self.runtime.log(f"session {plan.date} ended")
        self.runtime.version += 1
        if plan.index < len(self.sessions):
            self._gate(consume=False)

    def _settle(self) -> None:
        """While paused, wait for the quality manager to catch up (determinism for tests)."""
        controls = self.runtime.controls
        if controls.paused and self.quality_done is not None:
            while not self.quality_done(self.seq, 0.5):
                if self.runtime.stopping:
                    raise StopRequested

    # -- pause, step and the clock ------------------------------------------------------

    def _gate(self, *, consume: bool = True) -> None:
        """Return when the next instant may run: not paused, or a step was requested.

        With ``consume=False`` (at a session's end) a pending step request lets the
        coordinator go on but is kept for the next session's first instant.
        """
        runtime = self.runtime
        controls = runtime.controls
        with controls.cond:
            while True:
                if runtime.stopping:
                    raise StopRequested
                if not controls.paused:
                    if runtime.state != "streaming":
                        runtime.set_state("streaming")
                    self._stepping = False
                    self.metrics.resume_clock()
                    runtime.idle.clear()
                    return
                if controls.step_budget > 0:
                    if consume:
                        controls.step_budget -= 1
                        self._stepping = True
                    runtime.idle.clear()
                    return
                if not runtime.idle.is_set():
                    self.metrics.pause_clock()
                    controls.cond.release()
                    try:
                        self._settle()
                    finally:
                        controls.cond.acquire()
                    if consume:
                        runtime.set_state("paused")
                    runtime.idle.set()
                    continue
                controls.cond.wait(0.5)

    def _anchor(self, sim: datetime) -> None:
        self._anchor_wall = monotonic()
        self._anchor_sim = sim
        self._generation = self.runtime.controls.generation

    def _wait_until(self, t: datetime) -> None:
        """In clock-driven mode, wait until ``t`` is due; count overruns of late consumers."""
        runtime = self.runtime
        controls = runtime.controls
        while True:
            if runtime.stopping:
                raise StopRequested
            if self._stepping or controls.clock == "data-driven":
                return
            if controls.paused:
                # Paused while waiting for the clock: wait for resume (the clock re-anchors
                # then), or run this instant at once if a step is requested.
                self._gate()
                if self._stepping:
                    return
                continue
            if controls.generation != self._generation:
                self._anchor(runtime.sim_time)
            due = self._anchor_wall + (t - self._anchor_sim).total_seconds() / controls.speed
            # Consumers first: they should finish the previous step before this one is due.
            self._wait_consumers(self.seq, blocking=False, deadline=due)
            remaining = due - monotonic()
            if remaining <= 0:
                return
            with controls.cond:
                if controls.generation == self._generation and not runtime.stopping:
                    controls.cond.wait(remaining)

    # -- live gap filling -----------------------------------------------------------------

    def fill(self, symbol: str, bars: list[Bar]) -> None:
        """Queue backfilled bars; they are appended before the next instant's bars."""
        with self._fill_lock:
            self._pending_fills.append((symbol, bars))

    def _merge_fills(self, items: tuple[tuple[str, Bar], ...]) -> tuple[tuple[str, Bar], ...]:
        """Backfilled bars that still fit in order go first; late ones are dropped."""
        with self._fill_lock:
            fills, self._pending_fills = self._pending_fills, []
        merged: list[tuple[str, Bar]] = []
        arriving = {(symbol, bar.start) for symbol, bar in items}
        last_of: dict[str, datetime | None] = {}
        for symbol, bars in fills:
            if symbol not in last_of:
                series = self.deques[symbol]
                last_of[symbol] = series[-1].start if series else None
            last = last_of[symbol]
            for bar in bars:
                if (symbol, bar.start) in arriving:
                    continue  # the feed delivered it after all
                if last is None or bar.start > last:
                    merged.append((symbol, bar))
                    last = last_of[symbol] = bar.start
                else:
                    self.runtime.log(
                        f"backfilled {symbol} bar {bar.start:%H:%M} UTC arrived after newer "
                        "bars: dropped",
                        "warning",
                    )
        # Each symbol's bars in time order: a fill must precede this instant's bar.
        merged.extend(items)
        merged.sort(key=lambda pair: pair[1].start)
        return tuple(merged)
