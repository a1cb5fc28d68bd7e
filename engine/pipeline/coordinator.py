"""SessionCoordinator: initialize -> stream -> end, one trading day at a time.

Runs on the ``session_coordinator`` thread. It is the only writer of the simulated time.
Per session it loads the trailing history and groups the session's bars into its instants
(their bars are built as the stream reaches them: :mod:`~sessionkit.engine.pipeline.steps`;
the streaming clock is stopped meanwhile; on a SQLite file the bars come from a reader process that read them
while the session before streamed, and the first session's history and bars while the
indicators warmed up: :mod:`~sessionkit.engine.store.column_reader`,
:mod:`~sessionkit.engine.pipeline.history`), hands the processor the session start,
then streams: per simulated instant it sends **one**
:class:`~sessionkit.engine.pipeline.runtime.StepReady` message and waits for the consumers
as the clock mode says:

* clock-driven and live: the processor and the analysis run on their own threads, one
  hand-off per instant, paced by the clock, with overruns counted; the quality manager
  gets the instant on its queue and works in batches on its own thread (it never blocks
  anyone);
* data-driven: nothing paces the run, so the coordinator runs the processor's, the
  analysis's and the quality manager's handlers itself, in order, on its own thread (no
  hand-off at all: measured 1.95x the rate of one hand-off per instant, against 1.69x for
  batches of 16 instants and 1.54x for a bounded pipeline; the quality manager's own
  thread, taking the GIL at every batch, cost about 10% more). Switching the clock mode
  mid-run first drains what the threads still hold, so every count is kept and every
  instant is handled once, in order.

A session's break has no step: the break's start is an instant (windows cut by it are
emitted then), and time moves from the break's start to its end at once, in every clock
mode (:meth:`SessionCoordinator._leave_break`). Pause, step, speed and stop requests arrive
through :class:`~sessionkit.engine.pipeline.runtime.Controls`; every wait here, and every
load, checks for a stop.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Literal

from ..core.bar import Bar, Step, interval_delta
from ..core.subscription import LONGEST_WAIT
from ..core.time_manager import TimeManager, TradingSession
from ..core.windows import SessionTimes, regular_minutes
from ..errors import CalendarCoverageError
from ..store.column_reader import ColumnReader, ReaderFailed, StopWaiting
from ..store.data_manager import DataManager, StepStatement
from ..store.db import sqlite_file
from .history import HistoryReads, read_history
from .runtime import (
    Message,
    Runtime,
    SessionEnded,
    SessionPlan,
    SessionStarted,
    Stage,
    StageFailed,
    StepReady,
    Stop,
    StopRequested,
    monotonic,
)
from .snapshot import CoordinatorStats, ThreadStats
from .steps import SessionSteps, StepChunk, chunk_of_columns, session_steps

Reader = Literal["auto", "process", "inline"]
"""Where a run reads its sessions' bars: ``"process"`` in a reader process
(:mod:`~sessionkit.engine.store.column_reader`, SQLite files only) while the session before
streams, ``"inline"`` on the coordinator's thread when a session starts, ``"auto"``
(the default) a reader process for a backtest of :data:`READER_MIN_BARS` bars or more on a
SQLite file run from a program's main process that may use two CPUs or more (sweep
and Dask workers already run one session per core), else inline."""

READ_AHEAD_BARS = 20_000
"""About how many bars of the coming sessions one step load reads (bounds the memory, and
the time a stop may wait for one uninterruptible query)."""

READER_IN_FLIGHT = 2
"""Reads asked of the reader process at a time: the next one is read while the one before
it waits to be taken, so the reader never idles while a session streams (with one, it
started each read only when the engine took the previous one, and the engine, streaming
a session about as fast as the reader reads one, then waited for it)."""

PREFETCH_BARS = 5_000
"""About how many bars one read by the reader process covers: it reads the next while the
engine streams this one (smaller than :data:`READ_AHEAD_BARS`, so the reader has its
answer ready before the engine has streamed what it took before)."""

READER_MIN_BARS = 40_000
"""A run streaming fewer bars reads in-process with ``reader="auto"``: the reader process
answers its first request 45-75 ms after it is spawned and the run's first session is read
in-process unless its history is long (:data:`READER_HEAD_START_BARS`), so a run this
short has little left for it to read ahead."""

READER_HEAD_START_BARS = 20_000
"""With this many bars of trailing history or more, the reader process reads part of the
history while the indicators warm up on what came before, then the run's first session
(:class:`~sessionkit.engine.pipeline.history.HistoryReads`: a 200-symbol run with 2
trailing days was loaded in 0.63-0.86 s instead of 0.76-1.13 s; a 50-symbol one, in
0.23-0.28 s, showed no clear change); with less (at about 4 us per bar, the reader's
45-75 ms start would not pay), all of it is read in-process."""

EXPORT_BACKLOG = 50_000
"""Rows recorded for an export written as the run goes that may wait, at a session's end,
before the run waits for the export's writer (see ``_wait_for_export``)."""

QUALITY_REFRESH_STEPS = 64
"""In data-driven mode the quality manager runs inline, in batches of this many instants
(and at every pause, single step, session end and clock switch): it accounts every
instant's bars and refreshes its percentages at the batch's last. Its own thread, taking
the GIL at every batch, cost the demo about 10% of its streaming rate; inline and batched,
it costs about 0.2 us per bar."""

GC_YOUNG_THRESHOLD = 20_000
"""While a run streams, the collector's youngest generation is collected after this many
allocations instead of CPython's 700 (restored when the last running session ends).

The engine allocates a tuple per bar and indicator row that lives for the session; with
700, the collector ran about 300 times per demo run and took 12-15% of its CPU time
(measured with ``gc.callbacks``); at 20,000 the demo's streaming CPU time is about 20%
lower, the work of the collections being spent once on many objects instead of on every
700. Session loads run without the collector and freeze what they leave alive
(:func:`_collector_paused`): in all, the demo's collections went from about 300 taking
120-160 ms to about 12 taking under 10 ms, a 50-symbol run's from 5.4 s to 0.4 s. Memory
stays flat (``tests/benchmarks/test_bench_pipeline.py -k scaling``)."""

_gc_lock = threading.Lock()
_gc_runs = 0
_gc_saved: tuple[int, int, int] | None = None


def _gc_enter() -> None:
    """A run starts streaming: raise the young-generation threshold (once per process)."""
    global _gc_runs, _gc_saved
    with _gc_lock:
        if _gc_runs == 0:
            _gc_saved = gc.get_threshold()
            young, middle, old = _gc_saved
            if young:  # 0 means the collector is off: leave it so
                gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)
        _gc_runs += 1


def _gc_exit() -> None:
    """A run ended: restore the thresholds and unfreeze (see :func:`_collector_paused`)
    once no other run is streaming."""
    global _gc_runs, _gc_saved
    with _gc_lock:
        _gc_runs -= 1
        if _gc_runs == 0:
            gc.unfreeze()
            if _gc_saved is not None:
                gc.set_threshold(*_gc_saved)
                _gc_saved = None


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Read a session's bars without the collector, then freeze what is alive.

    A load allocates tens of thousands of tuples (bars, their pairs, the steps) that live
    until their session streamed; collecting while they are built examines each of them
    once or more (measured: about as long as the database read itself), and they would
    be examined again at every older collection. Frozen, no collection looks at them
    (they are still freed by reference counting). Frozen objects go back to the
    collector when the last running session ends (:func:`_gc_exit`).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


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
        self.waiting = 0.0
        """Seconds spent waiting for consumers or the clock while streaming (the waits
        that ended; :meth:`waiting_seconds` adds the one in progress)."""
        self.waiting_since: float | None = None
        """When the wait in progress began (None: not waiting)."""
        self.paused = 0.0
        """Seconds spent paused, waiting for a resume or a step (the pauses that ended;
        :meth:`waiting_seconds` adds the one in progress)."""
        self.paused_since: float | None = None
        """When the pause in progress began (None: not paused)."""
        self.read_seconds = 0.0
        """Of the loads, seconds spent reading bars (history and sessions: queries, waits
        for the reader process, building the bars and steps); the rest is the components'
        session starts (indicator warm-up, trimming the history)."""
        self.active_seconds = 0.0
        self._active_since: float | None = None

    def resume_clock(self) -> None:
        if self._active_since is None:
            self._active_since = monotonic()

    def pause_clock(self) -> None:
        if self._active_since is not None:
            self.active_seconds += monotonic() - self._active_since
            self._active_since = None

    @contextmanager
    def waiting_now(self) -> Iterator[None]:
        """Count the time spent in the block as waiting (in progress: see
        :meth:`waiting_seconds`). The coordinator's thread only."""
        started = self.waiting_since = monotonic()
        try:
            yield
        finally:
            self.waiting_since = None
            self.waiting += monotonic() - started

    def pause_begins(self) -> None:
        """The coordinator waits for a resume or a step (counted from the first call)."""
        if self.paused_since is None:
            self.paused_since = monotonic()

    def pause_ends(self) -> None:
        since = self.paused_since
        if since is not None:
            self.paused += monotonic() - since
            self.paused_since = None

    def streaming_waits(self) -> float:
        """Seconds spent waiting for consumers or the clock while streaming, the wait in
        progress included (a consumer that hangs shows as the coordinator waiting, not
        working). Any thread."""
        waited = self.waiting  # read before the wait in progress: a wait that ends
        since = self.waiting_since  # between the two reads is missed once, never doubled
        return waited + (monotonic() - since if since is not None else 0.0)

    def waiting_seconds(self) -> float:
        """Seconds spent waiting: :meth:`streaming_waits` and the pauses (the one in
        progress included). Any thread."""
        paused = self.paused
        since = self.paused_since
        return self.streaming_waits() + paused + (monotonic() - since if since else 0.0)

    def streaming_seconds(self) -> float:
        """Wall seconds spent streaming (pauses and session loads excluded)."""
        since = self._active_since
        return self.active_seconds + (monotonic() - since if since is not None else 0.0)

    @property
    def load_seconds(self) -> float:
        return (self.initial_load or 0.0) + sum(self.subsequent_loads)


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity, e.g. under ``taskset``), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - platforms without affinity
        return os.cpu_count() or 1


class PendingFills:
    """Backfilled bars on their way from the quality manager to the coordinator (live).

    ``put`` is called by the ``data_quality_manager`` thread, ``take`` by the coordinator;
    one lock guards the list.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fills: list[tuple[str, list[Bar]]] = []

    def put(self, symbol: str, bars: list[Bar]) -> None:
        """Queue backfilled bars; they are handed on before the next instant's bars."""
        with self._lock:
            self._fills.append((symbol, bars))

    def take(self) -> list[tuple[str, list[Bar]]]:
        """Everything queued so far, oldest first (and forget it)."""
        with self._lock:
            fills, self._fills = self._fills, []
        return fills

    def __bool__(self) -> bool:
        return bool(self._fills)


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
    processor
        The data processor; it passes each message on to the analysis engine.
    analysis
        The analysis engine, or None.
    quality
        The quality manager (never waited on while streaming).
    fills
        Live mode: backfilled bars from the quality manager, merged into the next instant.
    first
        1-based index of the session to start at (a seek restarts the run there).
    """

    def __init__(
        self,
        runtime: Runtime,
        time_manager: TimeManager,
        data_manager: DataManager,
        sessions: Sequence[date],
        processor: Stage,
        analysis: Stage | None,
        quality: Stage,
        fills: PendingFills | None = None,
        *,
        first: int = 1,
        reader: Reader = "auto",
    ) -> None:
        super().__init__(name="session_coordinator", daemon=True)
        self.ended = threading.Event()
        """Set when :meth:`run` ends (see :attr:`Stage.ended`)."""
        self.runtime = runtime
        self.tm = time_manager
        self.dm = data_manager
        self.sessions = tuple(sessions)
        self.first = first
        """1-based index of the session to start at (a seek restarts the run there)."""
        self.processor = processor
        self.analysis = analysis
        self.quality = quality
        self.stages = tuple(s for s in (processor, analysis) if s is not None)
        """The consumers waited on, in the order a step flows through them."""
        config = runtime.config
        self.symbols = tuple(config.streams.symbols)
        self.base = config.streams.interval
        self.delta = interval_delta(self.base)
        self.derived = tuple(interval_delta(i) for i in config.streams.derived)
        """The derived intervals' lengths (their windows' ends may be instants of their own)."""
        self.kept = config.trailing_days()
        """Trading days of history kept per (symbol, interval)."""
        self.trailing = {
            symbol: max(self.kept[symbol, i] for i in config.intervals) for symbol in self.symbols
        }
        """Trading days of base history loaded per symbol (the longest kept interval's)."""
        self.metrics = Metrics()
        self.plan: SessionPlan | None = None
        self.seq = 0
        self._threaded_seq = 0
        """The last message handed to the stages' threads (the rest ran inline)."""
        self._stepping = False
        self._generation = -1
        self._anchor_wall = 0.0
        self._anchor_sim: datetime | None = None
        self._clock_from: tuple[float, datetime | None, int] = (0.0, None, -1)
        """(wall, simulated time, controls' generation) of the last anchoring, swapped whole
        (read by :meth:`clock_time` from other threads)."""
        self._waiting_for: datetime | None = None
        """The instant the clock is running towards (clock-driven waits), else None."""
        self._steps = SessionSteps()
        self._read_ahead: dict[int, SessionSteps] = {}
        """Steps of coming sessions, read with an earlier one (by session index)."""
        self.reader = reader
        self._reader: ColumnReader | None = None
        """The reader process of this run (opened when it starts, killed when it ends;
        kept once closed or failed, for its stats: ``failed`` says it is unusable)."""
        self._pending: deque[tuple[int, list[TradingSession]]] = deque()
        """The reads the reader was asked for, oldest first (at most
        :data:`READER_IN_FLIGHT`): each one's first session's index and its sessions."""
        self._first_bars: int | None = None
        """The first session's bar estimate (see :meth:`_first_session_bars`)."""
        self._statement: StepStatement | None = None
        """The step query compiled for the reader (once per run)."""
        self._fills = fills if fills is not None else PendingFills()
        self._live = config.mode == "live"
        """Live mode: backfills may arrive (merged into the next instant, in order)."""
        self._set_clock = runtime.sim_clock.set
        self._last_start: dict[str, datetime] = {}
        """Start of each symbol's latest base bar (to order backfills)."""
        self._ended_seq = 0
        """The last session end handed to the quality manager."""
        self._quality_queued = 0
        """The last message put on the quality manager's queue (the rest ran inline)."""
        self._quality_batch: list[StepReady] = []
        """Data-driven: instants not yet handed to the quality manager (run inline, in
        batches of :data:`QUALITY_REFRESH_STEPS`)."""

    # -- thread -------------------------------------------------------------------------

    def run(self) -> None:
        runtime = self.runtime
        _gc_enter()
        try:
            self._reader = self._open_reader()
            # The reader starts in 45-75 ms: with a long history, the first load asks it
            # for part of the history and then the first session (_history_reads); else
            # the first session is read here and the reader reads the next ones.
            if self._history_bars() < READER_HEAD_START_BARS and self.first < len(self.sessions):
                self._prefetch(self.first + 1)
            first = self.first
            for index, day in enumerate(self.sessions[first - 1 :], start=first):
                self._initialize_session(index, day)
                self._stream_session()
                self._end_session()
            self._settle(always=True)
            if runtime.stopping:
                raise StopRequested
            runtime.set_state("completed")
            runtime.log(
                "backtest complete"
                if runtime.config.mode == "backtest"
                else "live session complete"
            )
        except StopRequested:
            self._last_quality()
            runtime.set_state("stopped")
        except StageFailed as failed:
            if failed.component != self.quality.name:
                self._last_quality()
            runtime.fail(failed.component, failed.error)
        except BaseException as exc:  # noqa: BLE001 - the thread must not die unreported
            self._last_quality()
            runtime.fail("session_coordinator", exc)
        finally:
            try:
                _gc_exit()
                self._terminate()
            finally:
                self.ended.set()

    def _terminate(self) -> None:
        self.metrics.pause_clock()
        if self._reader is not None:
            self._reader.close()
        for stage in (self.processor, self.quality, self.analysis):
            if stage is not None:
                stage.queue.put(Stop())
        for stage in self.stages:
            if stage.ready is not None:
                stage.ready.cancel()
        self.runtime.idle.set()

    def stats(self) -> CoordinatorStats:
        """The coordinator's counters and its busy, waiting and loading seconds, frozen,
        for the snapshot. Any thread (each value is read once; they may be a step apart)."""
        metrics = self.metrics
        hosted = (*self.stages, self.quality)  # every stage it may run inline
        inline = sum(stage.inline_busy for stage in hosted)
        # While streaming: its own publishing, plus its share of the inline instants.
        handlers = sum(stage.inline_steps for stage in hosted)
        streaming = metrics.streaming_seconds()  # (pauses excluded)
        busy = streaming - metrics.streaming_waits() - handlers
        thread = ThreadStats(
            name=self.name,
            busy_seconds=max(0.0, busy),
            inline_seconds=inline,
            waiting_seconds=metrics.waiting_seconds(),
            messages=metrics.steps,
            load_seconds=metrics.load_seconds,
        )
        reader = self._reader
        # Instants timed here (inline) and by the chain's last stage (on its thread).
        total, count, longest = self.stages[-1].step_latency if self.stages else (0.0, 0, 0.0)
        return CoordinatorStats(
            thread=thread,
            reader=None
            if reader is None
            else ThreadStats(
                name="session_reader",
                busy_seconds=reader.read_seconds,
                inline_seconds=0.0,
                waiting_seconds=reader.idle_seconds,
                messages=reader.reads,
                load_seconds=reader.read_seconds,
            ),
            steps=metrics.steps,
            bars=metrics.bars,
            streaming_seconds=streaming,
            initial_load_seconds=metrics.initial_load,
            subsequent_load_seconds=tuple(metrics.subsequent_loads),
            read_seconds=metrics.read_seconds,
            step_latency_total=metrics.step_time_total + total,
            step_latency_count=metrics.step_time_count + count,
            step_latency_max=max(metrics.step_time_max, longest),
        )

    # -- hand-offs ----------------------------------------------------------------------

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _dispatch(self, message: Message, *, wait: bool) -> None:
        """Hand ``message`` to the processor (and through it to the analysis).

        Data-driven: run both handlers here, in order, after draining what their threads
        still hold. Otherwise: queue it to the processor's thread, and wait for the
        consumers if ``wait``.
        """
        if self.runtime.controls.clock == "data-driven":
            if self._threaded_seq:
                self._drain()
            started = monotonic()
            for stage in self.stages:
                started = stage.run_inline(message, started)
            return
        self.processor.queue.put(message)
        self._threaded_seq = message.seq
        if wait:
            self._wait_consumers(message.seq, blocking=True)

    def _drain(self) -> None:
        """Wait for the stages' threads to finish what they hold (switching to inline)."""
        self._wait_consumers(self._threaded_seq, blocking=True)
        self._threaded_seq = 0

    def _flush_quality(self) -> None:
        """Run the quality manager inline over the instants batched for it (data-driven)."""
        batch = self._quality_batch
        if batch:
            self._quality_batch = []
            if self._quality_queued:
                self._drain_quality()
            self.quality.run_inline_batch(batch, monotonic())

    def _last_quality(self) -> None:
        """The run stops or failed: the quality manager accounts the instants batched for
        it (data-driven), so that the quality and gaps reported, and the export's quality
        column, are as of the last instant (a run stopped before its 64th instant
        reported no quality at all, a later one the quality of up to 63 instants before).
        Not if the manager's thread still holds messages (it must be their only writer);
        a failure here leaves the quality as it was."""
        batch = self._quality_batch
        if not batch or (self._quality_queued and self.quality.done_seq < self._quality_queued):
            return
        self._quality_batch = []
        try:
            self.quality.run_inline_batch(batch, monotonic())
        except StopRequested:
            return
        except Exception as exc:  # noqa: BLE001 - the run ends anyway; say so
            self.runtime.log(f"quality not brought up to date at the end: {exc}", "warning")

    def _to_quality(self, message: Message) -> None:
        """Hand ``message`` to the quality manager: inline in data-driven mode (after its
        thread finished what it holds), else on its queue (it never blocks anyone); the
        instants batched for it go first, in order."""
        self._flush_quality()
        if self.runtime.controls.clock == "data-driven":
            if self._quality_queued:
                self._drain_quality()
            self.quality.run_inline(message, monotonic())
        else:
            self.quality.queue.put(message)
            self._quality_queued = message.seq

    def _drain_quality(self) -> None:
        """Wait for the quality manager's thread to finish what it holds. Interruptible."""
        while not self.quality.wait_done(self._quality_queued, 0.5):
            if self.runtime.stopping:
                raise StopRequested
        self._quality_queued = 0

    # -- initialization -----------------------------------------------------------------

    def _initialize_session(self, index: int, day: date) -> None:
        with _collector_paused():
            self._load_session(index, day)

    def _load_session(self, index: int, day: date) -> None:
        runtime = self.runtime
        runtime.set_state("initializing")
        metrics = self.metrics
        metrics.pause_clock()  # loading is not streaming
        started = monotonic()
        tm = self.tm
        session = tm.get_trading_session(day)
        if session is None:  # pragma: no cover - sessions come from the calendar
            raise RuntimeError(f"{day} is not a trading day")
        try:
            previous: date | None = tm.get_previous_trading_date(day, 1)
        except CalendarCoverageError:  # the calendar table starts at ``day``
            previous = None
        # History: the trailing sessions' regular hours only.
        longest = max(self.trailing.values(), default=0)
        history: list[TradingSession] = []
        if longest:
            first = tm.get_previous_trading_date(day, longest)
            assert previous is not None  # (``first`` is in the calendar: so is it)
            history = [tm.get_trading_session(d) for d in tm.sessions_between(first, previous)]
        # The previous session streamed just before this one: its bars and the
        # indicators' state carry on (also without trailing history).
        before = self.plan
        carry = before is not None and before.date == previous
        before_open = tm.get_trading_session(previous) if previous is not None else None
        loaded: Mapping[str, list[Bar]] | None = None
        reads: HistoryReads | None = None
        cutoffs: dict[tuple[str, str], datetime] = {}
        for key, days in self.kept.items():
            windows = history[len(history) - days :] if days else []
            cutoffs[key] = windows[0].open if windows else session.open
        if not carry:
            trailing = {
                symbol: history[len(history) - days :] if (days := self.trailing[symbol]) else []
                for symbol in self.symbols
            }
            reads = self._history_reads(trailing, session)
            if reads is not None:
                # The reader reads the history while the indicators warm up, then this
                # session's bars.
                loaded = reads
                self._prefetch(index)
            else:
                loaded = {}
                for symbol in self.symbols:
                    if runtime.stopping:
                        raise StopRequested
                    loaded[symbol] = read_history(self.dm, symbol, self.base, trailing[symbol])
            metrics.read_seconds += monotonic() - started
        plan = SessionPlan(
            index=index,
            date=day,
            open=session.open,
            close=session.close,
            early_close=session.early_close,
            history=tuple(history),
            carry=carry,
            cutoffs=cutoffs,
            break_start=session.break_start,
            break_end=session.break_end,
            previous_open=before_open.open if before_open is not None else None,
        )
        self.plan = plan
        runtime.sim_time = session.open
        # Warm-up and historical indicators (processor and analysis), then historical
        # quality (the quality manager reads the history the processor holds now).
        message = SessionStarted(self._next_seq(), plan, loaded)
        self._dispatch(message, wait=True)
        if reads is not None:
            reads.finish()
            metrics.read_seconds += reads.seconds
        self._to_quality(message)
        if runtime.stopping:
            raise StopRequested
        reading = monotonic()
        self._steps = self._take_steps(index, session)
        finished = monotonic()
        metrics.read_seconds += finished - reading
        elapsed = finished - started
        if metrics.initial_load is None:
            metrics.initial_load = elapsed
        else:
            metrics.subsequent_loads.append(elapsed)
        tz = runtime.tz
        if reads is not None:
            history_bars = reads.bars
        else:
            history_bars = sum(len(bars) for bars in loaded.values()) if loaded else 0

        def local(instant: datetime) -> str:
            """``09:30`` in the exchange's zone, ``03-05 00:00`` on another day than the
            session's (a 24-hour session's close, an evening open)."""
            at = instant.astimezone(tz)
            return f"{at:%H:%M}" if at.date() == day else f"{at:%m-%d %H:%M}"

        runtime.log(
            f"session {index}/{len(self.sessions)} {day} "
            f"{local(session.open)}-{local(session.close)}"
            + (" (early close)" if session.early_close else "")
            + (
                f" (break {local(session.break_start)}-{local(session.break_end)})"
                if session.has_break
                else ""
            )
            + (
                ": bars from the live feed, "  # (none read ahead: "0 bars in 0 steps")
                if self._live
                else f": {self._steps.bars} bars in {len(self._steps)} steps, "
            )
            + (f"{history_bars} history bars, " if loaded is not None else "history carried on, ")
            + f"loaded in {elapsed:.3f}s"
        )
        self._anchor(session.open)

    def _history_reads(
        self, trailing: dict[str, list[TradingSession]], session: TradingSession
    ) -> HistoryReads | None:
        """The history read by the reader process while the indicators warm up, if there
        is a usable reader with nothing asked of it yet and the history is long enough
        (:data:`READER_HEAD_START_BARS`) to be worth it."""
        reader = self._reader
        if (
            reader is None
            or reader.failed is not None
            or self._pending
            or self._history_bars() < READER_HEAD_START_BARS
        ):
            return None
        return HistoryReads(
            self.dm,
            reader,
            self.base,
            trailing,
            self.delta.total_seconds() / 60,
            self._session_bars(session),
            self.runtime.stop_event.is_set,
            self._reader_failed,
        )

    def _chunk(self, index: int, bars: int = READ_AHEAD_BARS) -> list[TradingSession]:
        """The sessions one step read starting at session ``index`` covers.

        One query per session costs more than streaming a small universe's session, so
        from the second session on, the sessions that follow are read with it, up to about
        ``bars`` bars, and kept until their turn.
        """
        day = self.sessions[index - 1]
        session = self.tm.get_trading_session(day)
        assert session is not None  # sessions come from the calendar
        count = max(1, min(len(self.sessions) - index + 1, bars // self._session_bars(session)))
        if index == self.first:
            count = 1  # the first session alone: the run (or the monitor) starts sooner
        sessions = [session]
        for day in self.sessions[index : index - 1 + count]:
            coming = self.tm.get_trading_session(day)
            assert coming is not None  # sessions come from the calendar
            sessions.append(coming)
        return sessions

    def _take_steps(self, index: int, session: TradingSession) -> SessionSteps:
        """This session's instants, read from the database, reading ahead.

        The coming sessions are read with this one (:meth:`_chunk`); with a reader process
        (:mod:`~sessionkit.engine.store.column_reader`), the next read is asked for as
        soon as this one is taken, so it runs while this session streams. Each session is
        grouped by its own times (no step in its break, bars cut by its break's start and
        close); its bars are built as they stream (:mod:`~sessionkit.engine.pipeline.steps`).
        """
        cached = self._read_ahead.pop(index, None)
        if cached is not None:
            return cached
        pending = self._pending
        sessions = pending[0][1] if pending and pending[0][0] == index else self._chunk(index)
        chunk = self._read_steps(index, sessions)
        following = index + len(sessions)
        if following <= len(self.sessions):
            self._prefetch(following)
        starts = chunk.starts
        position = 0
        own = SessionSteps()
        for offset, each in enumerate(sessions):
            position = bisect_left(starts, int(each.open.timestamp()), position)
            end = bisect_left(starts, int(each.close.timestamp()), position)
            steps = session_steps(chunk, position, end, each, self.delta, self.derived)
            position = end
            if offset:
                self._read_ahead[index + offset] = steps
            else:
                own = steps
        return own

    def _span(self, sessions: Sequence[SessionTimes]) -> tuple[int, int]:
        return int(sessions[0].open.timestamp()), int(sessions[-1].close.timestamp())

    def _prefetch(self, index: int) -> None:
        """Ask the reader process for the reads from session ``index`` on (or from the
        end of the last one asked for), until :data:`READER_IN_FLIGHT` are asked for, if
        there is a reader."""
        reader = self._reader
        if reader is None or reader.failed is not None:
            return
        pending = self._pending
        if pending:
            last, sessions = pending[-1]
            index = last + len(sessions)
        while len(pending) < READER_IN_FLIGHT and index <= len(self.sessions):
            sessions = self._chunk(index, PREFETCH_BARS)
            if self._statement is None:
                self._statement = self.dm.step_statement(self.symbols, self.base)
            try:
                reader.submit(self._statement.sql, self._statement.params(*self._span(sessions)))
            except ReaderFailed as failed:
                self._reader_failed(failed)
                return
            pending.append((index, sessions))
            index += len(sessions)

    def _read_steps(self, index: int, sessions: Sequence[SessionTimes]) -> StepChunk:
        """The bars of ``sessions`` as columns: the reader's answer if it was asked for
        them (a wait that checks for a stop), else read in this process."""
        lo, hi = self._span(sessions)
        pending = self._pending
        reader = self._reader
        if pending and pending[0][0] == index and reader is not None:
            # (a pending read means the reader was usable when it was asked)
            pending.popleft()
            try:
                symbols, *columns = reader.result(self.runtime.stop_event.is_set)
                return chunk_of_columns(columns, self.dm, symbols)
            except StopWaiting:
                raise StopRequested from None
            except ReaderFailed as failed:
                self._reader_failed(failed)
        return chunk_of_columns(self.dm.get_step_columns(self.symbols, self.base, lo, hi), self.dm)

    def _reader_failed(self, failed: ReaderFailed) -> None:
        """The reader is unusable (``failed`` set, process killed): read in-process."""
        if self._reader is not None:
            self._reader.close()
        self._pending.clear()
        self.runtime.log(
            f"reader process failed, reading in-process from now on: {failed}", "warning"
        )

    def _open_reader(self) -> ColumnReader | None:
        """A reader process, if this run should have one (see :data:`Reader`)."""
        mode = self.reader
        if mode == "inline" or self._live:  # live: the feed delivers the bars
            return None
        path = sqlite_file(self.dm.database)  # None: Session refused "process" already
        if path is None or (
            mode == "auto"
            and (
                _usable_cpus() < 2
                or multiprocessing.current_process().name != "MainProcess"
                or self._run_bars() < READER_MIN_BARS
            )
        ):
            return None
        try:
            return ColumnReader(path)
        except (OSError, ValueError) as exc:  # cannot start a process here (pass_fds)
            self.runtime.log(f"no reader process ({exc}), reading in-process", "warning")
            return None

    def _session_bars(self, session: TradingSession) -> int:
        """About how many bars ``session`` streams (its regular minutes, every symbol)."""
        minutes = self.delta.total_seconds() / 60
        return max(1, int(regular_minutes(session) / minutes)) * max(1, len(self.symbols))

    def _first_session_bars(self) -> int:
        """About how many bars the run's first session streams (looked up once)."""
        if self._first_bars is None:
            first = self.tm.get_trading_session(self.sessions[self.first - 1])
            assert first is not None  # sessions come from the calendar
            self._first_bars = self._session_bars(first)
        return self._first_bars

    def _history_bars(self) -> int:
        """About how many bars of trailing history the run's first session loads."""
        per_symbol = self._first_session_bars() // max(1, len(self.symbols))
        return per_symbol * sum(self.trailing.values())

    def _run_bars(self) -> int:
        """About how many bars this run streams (its first session's bars per session)."""
        return self._first_session_bars() * (len(self.sessions) - self.first + 1)

    # -- streaming ----------------------------------------------------------------------

    def _stream_session(self) -> None:
        plan = self.plan
        assert plan is not None
        steps = self._steps
        pause = plan.break_start
        if pause is None:
            self._stream_steps(steps.iterate())
        else:
            # Once per session: the morning's steps end at or before the break's start.
            morning = bisect_right(steps.times, pause)
            self._stream_steps(steps.iterate(0, morning))
            self._reach_break(plan)
            if morning < len(steps):
                t, items = steps[morning]
                self._gate()
                self._leave_break(plan)
                self._wait_until(t)
                self._publish(t, items)
                self._stream_steps(steps.iterate(morning + 1))
        if self.runtime.sim_time < plan.close:
            # Data exhausted before the close: time advances to the close at once (the
            # spec's rule; there is nothing left to pace), as one more instant.
            self._gate()
            self._publish_at_once(plan.close)

    def _stream_steps(self, steps: Iterable[Step]) -> None:
        runtime = self.runtime
        controls = runtime.controls
        stop = runtime.stop_event
        for t, items in steps:
            # Fast path, data-driven and running (attribute reads are atomic): the gate
            # and the clock have nothing to do; a pause or stop is seen at the next instant.
            if (
                controls.paused
                or self._stepping
                or controls.clock != "data-driven"
                or runtime.state != "streaming"
                or stop.is_set()
            ):
                self._gate()
                self._wait_until(t)
            self._publish(t, items)

    def _reach_break(self, plan: SessionPlan) -> None:
        """Make the break's start an instant (at once) if the morning's data ended before it.

        Windows cut by the break are emitted then; the time stays there (the snapshot shows
        the break) until the next instant is allowed to run.
        """
        assert plan.break_start is not None
        if self.runtime.sim_time < plan.break_start:
            self._gate()
            self._publish_at_once(plan.break_start)

    def _publish_at_once(self, t: datetime) -> None:
        """Publish an empty instant that comes at once (the break's start, or the close once
        the data ran out): it has no time of its own to be late for, so the consumers first
        finish the instant before (without, a consumer still busy with it counted an
        overrun, at any speed: QA). Interruptible."""
        if self.runtime.controls.clock != "data-driven" and self._threaded_seq:
            self._wait_consumers(self.seq, blocking=True)
        self._publish(t, ())

    def _leave_break(self, plan: SessionPlan) -> None:
        """Move time from the break's start to its end at once, in every clock mode."""
        assert plan.break_end is not None
        self.runtime.sim_time = plan.break_end
        self._anchor(plan.break_end)
        self.runtime.version += 1

    def _publish(self, t: datetime, items: tuple[tuple[str, Bar], ...]) -> None:
        started = monotonic()
        if self._live:
            if self._fills:
                items = self._merge_fills(items)
            last = self._last_start
            for symbol, bar in items:
                last[symbol] = bar.start
        runtime = self.runtime
        self._set_clock(t)
        self.seq += 1
        message = StepReady(self.seq, t, t.timestamp(), items, started)
        metrics = self.metrics
        metrics.steps += 1
        metrics.bars += len(items)
        if runtime.controls.clock == "data-driven":
            # The hot path: every handler in order here; one clock reading between them
            # times each (:meth:`Stage.run_inline`).
            if self._threaded_seq:
                self._drain()
            ended = started
            for stage in self.stages:
                ended = stage.run_inline(message, ended)
            batch = self._quality_batch
            batch.append(message)
            if self._stepping or len(batch) >= QUALITY_REFRESH_STEPS:
                self._flush_quality()
        else:
            # Timed by the last stage of the chain, on its thread, when it finishes.
            self._to_quality(message)
            self._dispatch(message, wait=self._stepping)
            runtime.version += 1
            return
        elapsed = ended - started
        metrics.step_time_total += elapsed
        metrics.step_time_count += 1
        if elapsed > metrics.step_time_max:
            metrics.step_time_max = elapsed
        runtime.version += 1

    def _wait_consumers(self, seq: int, *, blocking: bool, deadline: float | None = None) -> bool:
        """Wait until every consumer finished ``seq``. Interruptible.

        ``blocking`` waits as long as it takes (data-driven mode and single steps). Else the
        wait ends at ``deadline`` (clock-driven), or at once while a signal of an older
        step is pending (the caller then waits for the clock); a consumer still behind when
        the instant is due counts an overrun (:meth:`_count_overruns`).
        """
        runtime = self.runtime
        with self.metrics.waiting_now():
            for stage in self.stages:
                subscription = stage.ready
                assert subscription is not None
                while stage.done_seq < seq:
                    if runtime.stopping:
                        raise StopRequested
                    if blocking:
                        subscription.wait_and_reset(None)
                        if subscription.cancelled and stage.done_seq < seq:
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
        if self._threaded_seq:
            self._wait_consumers(self._threaded_seq, blocking=True)
        if self.quality.record is not None and self._ended_seq:
            # Recording for an export: the quality manager may fall at most a session
            # behind, so the bars waiting for their quality (the export's backlog) stay
            # bounded however long the run.
            while not self.quality.wait_done(self._ended_seq, 0.5):
                if self.runtime.stopping:
                    raise StopRequested
        self._wait_for_export()
        message = SessionEnded(self._next_seq(), plan.close)
        self._ended_seq = message.seq
        self._to_quality(message)
        self._dispatch(message, wait=True)
        self.runtime.set_state("session-ended")
        self.runtime.log(f"session {plan.date} ended")
        self.runtime.version += 1
        if plan.index < len(self.sessions):
            self._gate(consume=False)

    def _wait_for_export(self) -> None:
        """With an export written as the run goes (``record="drain"``), wait at a session's
        end until its writer has taken the backlog below :data:`EXPORT_BACKLOG` rows: a
        bounded pipeline, so a long run never holds its bars for an export that cannot keep
        up. Interruptible."""
        record = self.processor.record
        if not record or not isinstance(next(iter(record.values())), deque):
            return
        stop_event = self.runtime.stop_event
        while sum(map(len, record.values())) > EXPORT_BACKLOG:
            if stop_event.wait(0.01):
                raise StopRequested

    def _settle(self, *, always: bool = False) -> None:
        """Wait for the quality manager to catch up: at the end of the run (a run is
        complete once every component finished its work, and a fault there is still the
        run's), and while paused (determinism for tests). Interruptible."""
        if always or self.runtime.controls.paused:
            self._flush_quality()  # inline (data-driven): its batch ends refreshed
            if self._quality_queued:
                self._drain_quality()

    # -- pause, step and the clock ------------------------------------------------------

    def _gate(self, *, consume: bool = True) -> None:
        """Return when the next instant may run: not paused, or a step was requested.

        With ``consume=False`` (at a session's end) a pending step request lets the
        coordinator go on but is kept for the next session's first instant.
        """
        runtime = self.runtime
        controls = runtime.controls
        with controls.cond:
            try:
                self._await_go(consume)
            finally:
                self.metrics.pause_ends()

    def _await_go(self, consume: bool) -> None:
        """:meth:`_gate`'s wait, ``controls.cond`` held; the pause counted as waiting."""
        runtime = self.runtime
        controls = runtime.controls
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
            self.metrics.pause_begins()
            controls.cond.wait(0.5)

    def _anchor(self, sim: datetime) -> None:
        self._anchor_wall = monotonic()
        self._anchor_sim = sim
        self._generation = self.runtime.controls.generation
        self._clock_from = (self._anchor_wall, sim, self._generation)

    def clock_time(self) -> datetime | None:
        """The running clock's simulated time now, between two instants: from the instant
        the clock was anchored at, at the speed, up to the instant it waits for (never
        past it, nor before the last one published). None unless the clock is running
        towards an instant or stopped between two (clock-driven; data-driven, loading,
        ended: the simulated time is the last instant's). Any thread (a monitor shows the clock
        ticking at 1x, where instants are a minute apart)."""
        controls = self.runtime.controls
        if controls.clock != "clock-driven":
            return None
        held = controls.clock_at  # where a change stopped it, until an instant passes it
        if held is not None and held < self.runtime.sim_time:
            held = None
        target = self._waiting_for
        wall, sim, generation = self._clock_from
        if controls.paused or target is None or sim is None or controls.generation != generation:
            return held
        now = sim + timedelta(seconds=(monotonic() - wall) * controls.speed)
        return max(self.runtime.sim_time, min(now, target))

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
                # From where the clock stood when it was stopped or re-timed, if that is
                # still between the last instant and this one.
                at = controls.clock_at
                self._anchor(
                    at if at is not None and runtime.sim_time <= at <= t else runtime.sim_time
                )
            due = self._anchor_wall + (t - self._anchor_sim).total_seconds() / controls.speed
            # Consumers first: they should finish the previous step before this one is due.
            self._waiting_for = t
            try:
                finished = self._wait_consumers(self.seq, blocking=False, deadline=due)
                remaining = due - monotonic()
                if remaining <= 0:
                    if not finished:
                        self._count_overruns()
                    return
                with controls.cond:
                    if controls.generation == self._generation and not runtime.stopping:
                        with self.metrics.waiting_now():
                            controls.cond.wait(min(remaining, LONGEST_WAIT))
            finally:
                self._waiting_for = None

    def _count_overruns(self) -> None:
        """An instant is due: each consumer that has not finished the one before is late
        for it, one overrun (DESIGN.md's definition; its subscription counts
        ``"by-producer"``, so a late consumer is counted once an instant whether it
        signals, works through a backlog or hangs)."""
        seq = self.seq
        for stage in self.stages:
            if stage.done_seq < seq and stage.ready is not None:
                stage.ready.count_overrun()

    # -- live gap filling -----------------------------------------------------------------

    def _merge_fills(self, items: tuple[tuple[str, Bar], ...]) -> tuple[tuple[str, Bar], ...]:
        """Backfilled bars that still fit in order go first; late ones are dropped."""
        fills = self._fills.take()
        merged: list[tuple[str, Bar]] = []
        arriving = {(symbol, bar.start) for symbol, bar in items}
        last_of: dict[str, datetime | None] = {}
        for symbol, bars in fills:
            if symbol not in last_of:
                last_of[symbol] = self._last_start.get(symbol)
            last = last_of[symbol]
            for bar in bars:
                if (symbol, bar.start) in arriving:
                    continue  # the feed delivered it after all
                if last is None or bar.start > last:
                    merged.append((symbol, bar))
                    last = last_of[symbol] = bar.start
                else:
                    local = bar.start.astimezone(self.runtime.tz)
                    self.runtime.log(
                        f"backfilled {symbol} bar {local:%H:%M} {local.tzname()} arrived after "
                        "newer bars: dropped",
                        "warning",
                    )
        # Each symbol's bars in time order: a fill must precede this instant's bar.
        merged.extend(items)
        merged.sort(key=lambda pair: pair[1].start)
        return tuple(merged)
