"""Session: the facade that wires the engine threads and publishes snapshots.

Built and controlled from the caller's thread (a script, the CLI, or the UI's event loop):
every method here is thread-safe and none blocks for long (``stop`` joins the threads with
a deadline of about a second; ``wait``/``wait_idle`` block only as long as asked).
Construction validates everything a user can get wrong (database, calendar coverage,
symbols, the analysis class) and raises a :class:`~sessionkit.engine.errors.SessionkitError`
before any thread starts.
"""

from __future__ import annotations

import math
import sys
import threading
from bisect import bisect_right
from collections.abc import Callable, Collection
from datetime import date, datetime, timedelta
from pathlib import Path
from types import FrameType, MappingProxyType
from typing import Any, Literal, get_args

from sqlalchemy import Engine

from ..config import ClockMode, SessionConfig
from ..core.session_data import SessionData
from ..core.subscription import StreamSubscription
from ..core.time_manager import TimeManager
from ..core.windows import SessionTimes, bar_end, bars_between, bars_end
from ..errors import CalendarCoverageError, ConfigError, DatabaseError, SessionControlError
from ..store.data_manager import DataManager
from ..store.db import open_db, sqlite_file
from .analysis import AnalysisEngine, load_analysis_class
from .coordinator import PendingFills, Reader, SessionCoordinator
from .processor import DataProcessor
from .quality import DataQualityManager
from .runtime import Recording, Runtime, Stop, engine_code
from .snapshot import (
    FINAL_STATES,
    AnalysisSignal,
    EngineMetrics,
    GapSpan,
    Series,
    SeriesStats,
    Snapshot,
    SubscriptionStats,
)


class Session:
    """One backtest (or live session): engine threads, controls and snapshots.

    Parameters
    ----------
    config
        The validated configuration.
    start_paused
        Load the first session, then wait for :meth:`resume` or :meth:`step`.
    source
        Where the configuration came from, for error messages (default: the
        configuration's own ``source``).
    record
        Keep every streamed and derived bar with its indicators and quality, for
        :meth:`export_csv` (``True``), or hand them to an export that writes them as the
        run goes (``"drain"``: :class:`~sessionkit.engine.store.export.ExportWriter`).
    first_session
        Start the run at this planned session (with its warm-up) instead of the first;
        the run keeps its numbering (``session 5/20``). See :meth:`restarted_at`.
    reader
        Where the sessions' bars are read: ``"process"`` (a reader process reads the next
        session while this one streams; SQLite files only), ``"inline"``, or ``"auto"``
        (:data:`~sessionkit.engine.pipeline.coordinator.Reader`).

    Raises
    ------
    SessionkitError
        If the database cannot be opened, a symbol or the exchange's calendar is missing,
        the dates are outside the calendar, or the analysis class cannot be loaded.
    SessionControlError
        (a ``ValueError`` too) If ``reader`` is unknown, or ``"process"`` without a SQLite
        file, or ``first_session`` is not one of the planned sessions.
    """

    def __init__(
        self,
        config: SessionConfig,
        *,
        start_paused: bool = False,
        source: str | None = None,
        record: Recording = False,
        first_session: date | None = None,
        reader: Reader = "auto",
    ) -> None:
        from ..store.data_manager import check_against_database

        self.config = config
        source = source or config.source
        self.source = source
        self.database = open_database(config, source)
        check_against_database(config, self.database, source=source)
        self.time_manager = TimeManager(self.database, config.exchange_group)
        tz = self.time_manager.timezone
        self.data_manager = DataManager(self.database, tz)
        if reader not in get_args(Reader):
            raise SessionControlError(
                "reader", reader, f"reader must be one of {get_args(Reader)}, not {reader!r}"
            )
        if reader == "process" and sqlite_file(self.database) is None:
            raise SessionControlError(
                "reader", reader, "reader='process' needs a SQLite database file"
            )
        self.sessions = plan_sessions(config, self.time_manager, source)
        first = 1
        if first_session is not None:
            if first_session not in self.sessions:
                raise SessionControlError(
                    "first_session",
                    first_session,
                    f"{first_session} is not a session of this run "
                    f"({self.sessions[0]} to {self.sessions[-1]})"
                    if self.sessions
                    else f"{first_session} is not a session of this run",
                )
            first = self.sessions.index(first_session) + 1
        analysis = load_analysis(config, source)

        self.data = SessionData()
        runtime = self.runtime = Runtime(
            config,
            self.data,
            sim_clock=self.time_manager.sim_clock(),
            paused=start_paused,
        )
        mode = config.clock
        # Overruns: counted by the coordinator, once an instant a consumer is late for.
        self.processor_ready = StreamSubscription(mode, "data_processor", overruns="by-producer")
        self.analysis_ready = (
            StreamSubscription(mode, "analysis_engine", overruns="by-producer")
            if analysis
            else None
        )
        self.analysis = (
            AnalysisEngine(runtime, analysis, self.analysis_ready) if self.analysis_ready else None
        )
        self.processor = DataProcessor(runtime, self.processor_ready, self.analysis, record=record)
        fills = PendingFills()
        feed = None
        if config.mode == "live":
            from ..feeds.replay import make_feed

            feed = make_feed(config, self.data_manager, self.time_manager)
            self.sessions = [feed.session_date]
        self.quality = DataQualityManager(
            runtime,
            backfill=feed.backfill if feed is not None else None,
            fill=fills.put,
            record=record,
        )
        stages = (self.processor, self.analysis, self.quality)
        self.coordinator: SessionCoordinator
        if feed is not None:
            from .live import LiveCoordinator

            self.coordinator = LiveCoordinator(
                runtime, self.time_manager, self.data_manager, feed, *stages, fills
            )
        else:
            self.coordinator = SessionCoordinator(
                runtime,
                self.time_manager,
                self.data_manager,
                self.sessions,
                *stages,
                fills,
                first=first,
                reader=reader,
            )
        tm = self.time_manager
        self._trading = [
            session for session in map(tm.get_trading_session, self.sessions) if session is not None
        ]
        """The planned sessions, in order (where :meth:`gaps` counts a gap's bars)."""
        self.session_bounds, self.session_breaks = self._session_bounds()
        """(open, close) of each planned session, and its break or None (for the run's
        progress)."""
        self._threads = [
            t
            for t in (self.processor, self.quality, self.analysis, self.coordinator)
            if t is not None
        ]
        self._started = False
        self._start_lock = threading.Lock()
        self._stuck: dict[str, str] = {}
        """Threads :meth:`stop` left running, with where they were (see :attr:`left_running`)."""

    # -- construction helpers ------------------------------------------------------------

    def _session_bounds(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        bounds = []
        breaks = []
        for session in self._trading:
            bounds.append((session.open, session.close))
            has = session.break_start is not None and session.break_end is not None
            breaks.append((session.break_start, session.break_end) if has else None)
        if len(bounds) != len(self.sessions):
            return (), ()
        return tuple(bounds), tuple(breaks)

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> Session:
        """Start the engine threads; returns at once.

        A session runs once. Calling it again on a started session does nothing, whether
        it still runs or has ended (the monitor starts the session it is given, which its
        caller may have started already); to run again, build a new :class:`Session` (or
        :meth:`restarted_at` a day).

        Raises
        ------
        RuntimeError
            If the session was stopped before it started (:meth:`stop` first): it will
            never run.
        """
        with self._start_lock:
            if not self._started:
                if self.finished:
                    raise RuntimeError(
                        f"start() on a session already {self.runtime.state} before it "
                        "started: a Session runs once; build a new Session to run"
                    )
                self._started = True
                for thread in self._threads:
                    thread.start()
        return self

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop every engine thread and join them within ``timeout`` seconds.

        Returns
        -------
        bool
            True if every thread ended in time.
        """
        runtime = self.runtime
        deadline = _now() + timeout
        if self._started and runtime.state == "completed":
            # Finished normally: the consumers are finishing the queued work (the final
            # quality among it); let them, within most of the allowed time.
            for thread in self._threads:
                thread.ended.wait(max(0.0, deadline - _now() - 0.25 * timeout))
        if not self.finished:
            runtime.set_state("stopped")
            runtime.log("stopped")
        runtime.request_stop()
        for subscription in (self.processor_ready, self.analysis_ready):
            if subscription is not None:
                subscription.cancel()
        for stage in (self.processor, self.quality, self.analysis):
            if stage is not None:
                stage.queue.put(Stop())
        if not self._started:
            return True
        # Each thread's own "ended" event, not join() and is_alive(): a join interrupted
        # earlier (Ctrl-C while the program waited in :meth:`wait`) makes CPython 3.11
        # mark the thread it waited for as stopped, even if it runs on.
        # A thread an earlier stop() left behind is stuck: checked, not waited for again
        # (the programs stop once, then again on their way out).
        gave_up = bool(self.left_running)
        for thread in self._threads:
            thread.ended.wait(0.0 if gave_up else max(0.0, deadline - _now()))
        hung = [thread for thread in self._threads if not thread.ended.is_set()]
        for thread in self._threads:
            if thread.ended.is_set():  # let it leave (microseconds after its run ended)
                thread.join(max(0.0, deadline - _now()))
        if hung and not gave_up:
            # Threads cannot be killed; they are daemons, so they never keep the process
            # alive. Say which one is stuck, and where (usually user code that never returns).
            frames = sys._current_frames()
            self._stuck = {
                thread.name: f"{thread.name} still running {timeout:g}s after stop, in "
                f"{code_location(frames.get(thread.ident))}: code that does not return; left behind "
                "as a daemon thread"
                for thread in hung
            }
            for line in self._stuck.values():
                runtime.log(f"stop: {line}", "error")
        # (a later stop keeps the first report of the threads still stuck)
        self._stuck = {t.name: self._stuck[t.name] for t in hung if t.name in self._stuck}
        return not hung

    @property
    def left_running(self) -> tuple[str, ...]:
        """What :meth:`stop` found still running after its timeout: one line per thread,
        naming it and the code it is stuck in (empty when every thread ended)."""
        return tuple(self._stuck.values())

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the session ended and every engine thread finished its work.

        Returns True if that happened within ``timeout`` seconds (None: no limit), at once
        for a session stopped before it started (it ended; no thread has work). Never call
        it from the UI's event loop.

        Raises
        ------
        RuntimeError
            If the session was neither started nor stopped (it would never end).
        """
        if not self._started:
            if self.finished:
                return True
            raise RuntimeError("wait() on a session not started (call start() first)")
        deadline = None if timeout is None else _now() + timeout
        for thread in self._threads:  # their "ended" events (see :meth:`stop`)
            if not thread.ended.wait(None if deadline is None else max(0.0, deadline - _now())):
                return False
        return True

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until the engine is paused (or finished) with all queued work done."""
        return self.runtime.idle.wait(timeout)

    @property
    def finished(self) -> bool:
        """True once the session completed, stopped or failed."""
        return self.runtime.state in FINAL_STATES

    def restarted_at(self, day: date) -> Session:
        """A new, unstarted Session of the same run, starting at the planned session ``day``.

        The new session has this one's configuration, clock, speed and pause state (paused
        if this one has ended: going back to look at a day of a finished run at ``max`` must
        not race to the end again); it loads ``day``'s warm-up like any first session. This session is left as it is (stop
        it). Blocks while the new session checks the database: call it off the UI's loop.

        Raises
        ------
        SessionControlError
            (a ``ValueError`` too) If ``day`` is not one of the run's sessions, or the
            session is live.
        """
        if self.config.mode == "live":
            raise SessionControlError("day", day, "a live session cannot go to another date")
        controls = self.runtime.controls
        with controls.cond:
            paused, clock, speed = controls.paused, controls.clock, controls.speed
        paused = paused or self.runtime.state in ("completed", "stopped", "error")
        session = Session(
            self.config,
            start_paused=paused,
            source=self.source,
            record=self.processor.record is not None,
            first_session=day,
            reader=self.coordinator.reader,
        )
        if clock != session.runtime.controls.clock or speed != session.runtime.controls.speed:
            session._set_clock(clock, speed)
        return session

    # -- controls (any thread) -----------------------------------------------------------

    def pause(self) -> None:
        """Pause before the next instant (the clock stops where it is)."""
        controls = self.runtime.controls
        with controls.cond:
            controls.change(paused=True, **self._clock_held())

    def resume(self) -> None:
        """Resume at the current speed, without a catch-up burst."""
        controls = self.runtime.controls
        with controls.cond:
            controls.change(paused=False, step_budget=0, **self._clock_held())

    def _clock_held(self) -> dict[str, datetime]:
        """Where the running clock stands now, for a change that stops or re-times it:
        the clock goes on from there (see ``Controls.clock_at``). Under the controls' lock."""
        at = self.coordinator.clock_time()
        return {"clock_at": at} if at is not None else {}

    def toggle_pause(self) -> None:
        """Pause if running, resume if paused."""
        controls = self.runtime.controls
        with controls.cond:  # read and change in one hold (reentrant), as :meth:`step`
            if controls.paused:
                self.resume()
            else:
                self.pause()

    def step(self, n: int = 1) -> None:
        """Advance exactly ``n`` simulated instants, then stay paused (pauses if running).

        Raises
        ------
        SessionControlError
            (a ``ValueError`` too) If ``n`` is not a whole number >= 1.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise SessionControlError("n", n, f"step needs a whole number n >= 1, not {n!r}")
        controls = self.runtime.controls
        # One hold of the lock for the read and the write (it is reentrant): else the
        # coordinator may take a step in between, which the write would give back, and two
        # callers would both add to the same old budget.
        with controls.cond:
            budget = controls.step_budget if controls.paused else 0
            self.runtime.idle.clear()
            controls.change(paused=True, step_budget=budget + n)
            if self.finished:
                # No instant will come: idle again (the coordinator sets idle after its
                # final state, so it is set here or by the coordinator, never neither).
                self.runtime.idle.set()

    def set_speed(self, speed: float | None) -> None:
        """``None`` runs data-driven (as fast as possible); a number runs clock-driven at it.

        Raises
        ------
        SessionControlError
            (a ``ValueError`` too) If ``speed`` is not a finite positive number, or the
            session is live.
        """
        if self.config.mode == "live":
            raise SessionControlError(
                "speed", speed, "a live session runs in wall-clock time: its speed is fixed"
            )
        if speed is None:
            self._set_clock("data-driven", None)
            return
        if isinstance(speed, bool) or not (isinstance(speed, int | float) and 0 < speed < math.inf):
            raise SessionControlError(
                "speed",
                speed,
                f"speed must be a finite number > 0 (or None for data-driven), not {speed!r}",
            )
        self._set_clock("clock-driven", float(speed))

    def set_clock(self, clock: ClockMode) -> None:
        """Switch between data-driven and clock-driven (keeping the last speed).

        Raises
        ------
        SessionControlError
            (a ``ValueError`` too) If ``clock`` is neither, or the session is live.
        """
        if clock not in ("data-driven", "clock-driven"):
            raise SessionControlError(
                "clock", clock, f"clock must be 'data-driven' or 'clock-driven', not {clock!r}"
            )
        if self.config.mode == "live":
            raise SessionControlError("clock", clock, "a live session runs in wall-clock time")
        self._set_clock(clock, None)

    def _set_clock(self, clock: str, speed: float | None) -> None:
        """Switch the clock (``speed`` None: keep the current speed). One hold of the
        controls' (reentrant) lock for the read and every change: else a concurrent call
        could be undone (a speed read before another caller set one, written back after),
        or leave the subscriptions in another mode than the controls."""
        controls = self.runtime.controls
        with controls.cond:
            if speed is None:
                speed = controls.speed
            self.quality.throttle = 0.01 if clock == "data-driven" else 0.0
            for subscription in (self.processor_ready, self.analysis_ready):
                if subscription is not None:
                    subscription.set_mode(clock)
            controls.change(clock=clock, speed=speed, **self._clock_held())
            label = "max (data-driven)" if clock == "data-driven" else f"{speed:g}x"
            self.runtime.log(f"speed set to {label}")  # in the order of the changes

    # -- observation (any thread) --------------------------------------------------------

    def log(self, message: str, level: Literal["info", "warning", "error"] = "info") -> None:
        """Add a line to the run's event log (the snapshot's ``events``). Any thread."""
        self.runtime.log(message, level)

    def snapshot(self, *, symbols: Collection[str] | None = None) -> Snapshot:
        """An immutable picture of the session now; cheap enough for 10 Hz polling.

        Parameters
        ----------
        symbols
            Only these symbols' ``series`` and ``indicators`` (default: every symbol). The
            rest of the snapshot is complete; a monitor of hundreds of symbols asks for the
            few it shows between full refreshes.
        """
        runtime = self.runtime
        config = self.config
        coordinator = self.coordinator
        processor = self.processor
        data = self.data
        plan = coordinator.plan
        base = config.streams.interval
        series: dict[tuple[str, str], SeriesStats] = {}
        indicators = {}
        wanted = config.streams.symbols
        if symbols is not None:
            chosen = set(symbols)
            wanted = [s for s in wanted if s in chosen]
        for symbol in wanted:
            gaps = self.quality.gap_count(symbol)
            history_quality = data.get_quality_metric(symbol, f"{base}:history")
            _n, _h, _last, _row, prev_close = data.series(symbol, base).summary()
            latest: dict[str, float | None] = {}
            for interval in config.intervals:
                stream = data.series(symbol, interval)
                count, history, last, row, _prev = stream.summary()
                latest.update(zip(stream.names, row or (None,) * len(stream.names), strict=True))
                in_session = count - history
                change = None
                if in_session and last is not None and prev_close:
                    change = (last.close / prev_close - 1.0) * 100.0
                series[symbol, interval] = SeriesStats(
                    symbol=symbol,
                    interval=interval,
                    bar_count=in_session,
                    history_count=history,
                    last_bar=last,
                    quality=data.get_quality_metric(symbol, interval),
                    gaps=gaps,
                    change_pct=change,
                    history_quality=history_quality,
                )
            indicators[symbol] = MappingProxyType(latest)
        # Each component hands over its own frozen stats; nothing private is read here.
        coord = coordinator.stats()
        threads = (
            coord.thread,
            *(stage.stats() for stage in (processor, self.analysis, self.quality) if stage),
            *((coord.reader,) if coord.reader is not None else ()),
        )
        streaming = coord.streaming_seconds
        loads = coord.subsequent_load_seconds
        cache = self.time_manager.cache_info()
        controls = runtime.controls
        clock = controls.clock
        analysis = self.analysis
        version = runtime.version + sum(thread.messages for thread in threads[1:])
        return Snapshot(
            state=runtime.state,  # type: ignore[arg-type]
            error=runtime.error,
            mode=config.mode,
            clock=clock,  # type: ignore[arg-type]
            speed=None if clock == "data-driven" else controls.speed,
            exchange=config.exchange_group,
            timezone=str(runtime.tz),
            session_date=plan.date if plan else None,
            session_index=plan.index if plan else 0,
            session_count=len(self.sessions),
            sessions=tuple(self.sessions),
            session_bounds=self.session_bounds,
            session_breaks=self.session_breaks,
            sim_time=runtime.sim_time,
            clock_time=coordinator.clock_time(),
            market_open=plan.open if plan else None,
            market_close=plan.close if plan else None,
            early_close=plan.early_close if plan else False,
            break_start=plan.break_start if plan else None,
            break_end=plan.break_end if plan else None,
            symbols=tuple(config.streams.symbols),
            intervals=tuple(config.intervals),
            series=MappingProxyType(series),
            subscriptions=tuple(self._subscription_stats()),
            indicators=MappingProxyType(indicators),
            indicator_names=self._indicator_names(),
            metrics=EngineMetrics(
                steps=coord.steps,
                bars_processed=coord.bars
                + sum(n for (_sym, iv), n in processor.totals.items() if iv != base),
                bars_streamed=coord.bars,
                bars_per_second=coord.bars / streaming if streaming > 0 else 0.0,
                initial_load_seconds=coord.initial_load_seconds,
                subsequent_load_seconds=sum(loads) / len(loads) if loads else None,
                step_latency_ms=(
                    coord.step_latency_total / coord.step_latency_count * 1000.0
                    if coord.step_latency_count
                    else None
                ),
                max_step_latency_ms=coord.step_latency_max * 1000.0
                if coord.step_latency_count
                else None,
                cache_hit_rate=cache.hit_rate * 100.0 if cache.hits + cache.misses else None,
                analysis_errors=sum(thread.errors for thread in threads),
                analysis_error_kinds=analysis.error_kinds() if analysis else (),
                threads=threads,
                stages="inline" if clock == "data-driven" else "threads",
            ),
            events=runtime.events(),
            signals=analysis.signals() if analysis else (),
            analysis_metrics=analysis.metrics if analysis else MappingProxyType({}),
            version=version,
        )

    def _indicator_names(self) -> tuple[str, ...]:
        names: list[str] = []
        symbol = self.config.streams.symbols[0]
        for interval in self.config.intervals:
            names.extend(self.data.series(symbol, interval).names)
        return tuple(names)

    def _subscription_stats(self) -> list[SubscriptionStats]:
        out = []
        for subscription in (self.processor_ready, self.analysis_ready):
            if subscription is None:
                continue
            stats = subscription.stats()
            out.append(
                SubscriptionStats(
                    stream=stats.stream_id,
                    mode=stats.mode,
                    signals=stats.signals,
                    overruns=stats.overruns,
                    waits=stats.waits,
                    last_wait=stats.last_wait,
                    max_wait=stats.max_wait,
                )
            )
        return out

    def series(self, symbol: str, interval: str, n: int = 500) -> Series:
        """Copies of the last ``n`` bars of (symbol, interval) with aligned indicator values.

        Raises
        ------
        KeyError
            If the symbol or interval is not streamed.
        """
        stream = self.data.series(symbol, interval)
        bars, rows, history = stream.window(n)
        names = stream.names
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        return Series(
            symbol=symbol,
            interval=interval,
            starts=tuple(bar.start for bar in bars),
            open=tuple(bar.open for bar in bars),
            high=tuple(bar.high for bar in bars),
            low=tuple(bar.low for bar in bars),
            close=tuple(bar.close for bar in bars),
            volume=tuple(bar.volume for bar in bars),
            indicators=MappingProxyType(dict(zip(names, map(tuple, columns), strict=True))),
            history=history,
            version=len(stream),
        )

    def export_csv(self, directory: str | Path) -> list[Path]:
        """Write the recorded bars as ``directory/<symbol>/<interval>.csv`` (after the run).

        Raises
        ------
        SessionControlError
            (a ``ValueError`` too) If the session was not built with ``record=True``.
        """
        from ..store.export import write_csv_export

        if self.processor.record is None or self.quality.record is None:
            raise SessionControlError(
                "record", False, "export_csv needs a Session built with record=True"
            )
        names = {key: stream.names for key, stream in self.processor.streams.items()}
        return write_csv_export(
            Path(directory),
            self.processor.record,
            names,
            self.quality.record,
            self.runtime.tz,
            self.bar_end_of(),
        )

    def bar_end_of(self) -> Callable[[datetime, timedelta], datetime]:
        """A function giving a bar's end from its start and interval, in the run's sessions
        (the one rule, :func:`~sessionkit.engine.core.windows.bar_end`: cut by the
        session's break start or close). Any thread."""
        sessions = [self.time_manager.get_trading_session(d) for d in self.sessions]
        opens = [session.open for session in sessions]

        def end_of(start: datetime, delta: timedelta) -> datetime:
            session = sessions[max(0, bisect_right(opens, start) - 1)]
            return bar_end(session, delta, start)

        return end_of

    def gaps(self, symbol: str) -> tuple[GapSpan, ...]:
        """The runs of missing base bars of ``symbol`` so far in the current session.

        Closed runs first, in time order, then the run still open at the simulated time
        (if bars are missing up to it).

        Raises
        ------
        KeyError
            If the symbol is not streamed.
        """
        if symbol not in self.quality.tracks:
            streamed = ", ".join(self.quality.tracks)
            raise KeyError(f"{symbol!r} is not streamed (streamed: {streamed or 'none'})")
        quality = self.quality
        track = quality.tracks[symbol]
        delta = quality.delta
        # Counted and placed in the gap's own session, as the quality manager does: a run
        # from the morning into the afternoon skips the break (its bars are not missing).
        spans = []
        for start, end in list(track.gaps):
            session = self._session_of(start)
            spans.append(
                GapSpan(
                    start,
                    end,
                    bars_between(session, delta, start, end) if session else (end - start) // delta,
                    interval=delta,
                    break_start=session.break_start if session else None,
                    break_end=session.break_end if session else None,
                )
            )
        missing, start = track.missing, track.next_start
        plan = self.coordinator.plan
        if missing and plan is not None:
            start = start or plan.open
            session = self._session_of(start) or plan
            spans.append(
                GapSpan(
                    start,
                    bars_end(session, delta, start, missing),
                    missing,
                    open=True,
                    interval=delta,
                    break_start=session.break_start,
                    break_end=session.break_end,
                )
            )
        return tuple(spans)

    def _session_of(self, t: datetime) -> SessionTimes | None:
        """The planned session holding the instant ``t`` (between its open and close), or
        the current session's plan (a live session); None if neither does."""
        trading = self._trading
        index = bisect_right(trading, t, key=_open_of) - 1
        if index >= 0 and t <= trading[index].close:
            return trading[index]
        plan = self.coordinator.plan
        if plan is not None and plan.open <= t <= plan.close:
            return plan
        return None

    def signals(self) -> tuple[AnalysisSignal, ...]:
        """Recent analysis signals."""
        return self.analysis.signals() if self.analysis else ()


def open_database(config: SessionConfig, source: str | None = None) -> Engine:
    """The configuration's database (:func:`~sessionkit.engine.store.db.open_db`). Used by
    :class:`Session` as it is built, and by a sweep to check its runs before any starts.
    ``source`` names where the configuration came from, when not its own file.

    Raises
    ------
    ConfigError
        If it cannot be opened, naming the file or option that set ``database_url``.
    """
    try:
        return open_db(config.resolved_database_url())
    except DatabaseError as exc:
        raise ConfigError(
            config.origin_of("database_url", source), "database_url", str(exc)
        ) from None


def plan_sessions(config: SessionConfig, tm: TimeManager, source: str | None = None) -> list[date]:
    """The trading days a backtest's window holds (none for a live session). Used by
    :class:`Session` as it is built, and by a sweep to check its runs before any starts.
    ``source`` names where the configuration came from, when not its own file.

    Raises
    ------
    ConfigError
        If the window holds no trading day, or reaches outside the calendar in the
        database (naming the date's key and the file or option that set it).
    CalendarCoverageError
        If the database has no calendar for the exchange.
    """
    if config.mode == "live":
        return []
    backtest = config.backtest
    assert backtest is not None
    try:
        sessions = tm.sessions_between(backtest.start_date, backtest.end_date)
    except CalendarCoverageError as exc:
        if exc.first is None:  # no calendar at all: not the window's fault
            raise
        key = (
            "backtest.start_date"
            if exc.requested == backtest.start_date
            else "backtest.end_date"
            if exc.requested == backtest.end_date
            else "backtest"
        )
        raise ConfigError(
            config.origin_of(key, source), key, f"{str(exc)}: choose dates inside it"
        ) from None
    if not sessions:
        raise ConfigError(
            config.origin_of("backtest", source),
            "backtest",
            f"no {config.exchange_group} trading day from {backtest.start_date} to "
            f"{backtest.end_date}",
        )
    return sessions


def load_analysis(config: SessionConfig, source: str | None = None) -> Any:
    """The configured analysis, built with its options (None without one). Used by
    :class:`Session` as it is built, and by a sweep to check its runs before any starts.
    ``source`` names where the configuration came from, when not its own file.

    Raises
    ------
    ConfigError
        If the class cannot be loaded, or refuses its options.
    """
    entry = config.analysis.entry
    if entry is None:
        return None
    # Blame the option that set the entry (``--set analysis.entry=...``), not the file.
    origin = config.origin_of("analysis.entry", source)
    # An entry set by an option (``--set``, an override) is looked for where the command
    # was typed, as one in a file is next to the file (a bundled configuration's folder is
    # the package's).
    set_by_option = config.origin_of("analysis.entry") != config.source
    folder = Path.cwd() if set_by_option else config.folder
    cls = load_analysis_class(entry, source=origin, folder=folder)
    options = config.analysis.options
    try:
        return cls(**options)
    except Exception as exc:
        if options:  # most likely what they are (a wrong name or value)
            raise ConfigError(
                config.origin_of("analysis.options", source),
                "analysis.options",
                f"{entry} refused them: {exc.__class__.__name__}: {exc}",
            ) from None
        # Built without options: its ``__init__`` itself failed.
        raise ConfigError(
            origin,
            "analysis.entry",
            f"{entry} raised {exc.__class__.__name__} as it was built (without options): {exc}",
        ) from None


def code_location(frame: FrameType | None) -> str:
    """Where a thread is, as ``file:line (function)``: its innermost frame outside the
    engine and the standard library's threading and queue (the user's code, when the user's
    code is what does not return), else its innermost frame."""
    if frame is None:
        return "an unknown place"
    innermost = frame
    while frame is not None:
        path = frame.f_code.co_filename
        if not engine_code(path) and Path(path).name not in ("threading.py", "queue.py"):
            break
        frame = frame.f_back
    chosen = frame or innermost
    code = chosen.f_code
    return f"{code.co_filename}:{chosen.f_lineno} ({code.co_qualname})"


def _open_of(session: SessionTimes) -> datetime:
    return session.open


def _now() -> float:
    from time import monotonic

    return monotonic()


__all__ = ["Session"]
