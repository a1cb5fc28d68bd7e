"""DataProcessor: derived bars and indicator values, one step at a time.

Runs on the ``data_processor`` thread, woken by its notification queue (never polling),
or, in data-driven mode, on the coordinator's thread (see
:class:`~sessionkit.engine.pipeline.runtime.Stage`). It is the only writer of the bar
series in :class:`~sessionkit.engine.core.session_data.SessionData`: the base bars the
coordinator hands it and the derived bars it builds, each with its row of indicator values
and the instant from which it is known. Per step it appends and builds, updates
indicators, signals ready to the coordinator, then notifies the analysis engine.

Derived windows are anchored at the session open (and at a break's end), cut by a break's
start and by the close (:func:`~sessionkit.engine.core.windows.window_bounds`, the windows of
``exchange_calendars``' ``trading_index``, the one place that says where a window starts and
ends); a window is emitted at the first step at or after its end, holding the base bars that
arrived in it; a window without bars is never emitted, so a gap never invents a bar.
"""

from __future__ import annotations

from collections import deque
from collections.abc import MutableSequence
from datetime import UTC, datetime, timedelta
from operator import itemgetter

from ..config import SessionConfig
from ..core.bar import Bar, interval_delta
from ..core.session_data import BarSeries
from ..core.subscription import StreamSubscription
from ..core.windows import SessionTimes, bar_end, session_windows, window_bounds
from .indicators import Kernel, compile_kernel, make_indicator, output_names
from .runtime import (
    Recording,
    Runtime,
    SessionEnded,
    SessionPlan,
    SessionStarted,
    Stage,
    StepReady,
    StopRequested,
)

_HIGH, _LOW, _VOLUME = itemgetter(2), itemgetter(3), itemgetter(5)
_NEVER = datetime.max.replace(tzinfo=UTC)
_NOW = datetime.min.replace(tzinfo=UTC)


class IndicatorStream:
    """Indicators of one (symbol, interval) and the series they write (processor-owned)."""

    __slots__ = (
        "symbol",
        "interval",
        "series",
        "configs",
        "kernel",
        "names",
        "total",
        "update",
        "add_bar",
        "add_close",
        "add_row",
        "add_known",
    )

    def __init__(self, symbol: str, interval: str, series: BarSeries, configs: list) -> None:
        self.symbol = symbol
        self.interval = interval
        self.series = series
        self.configs = configs
        self.names: tuple[str, ...] = series.names
        self.kernel: Kernel
        self.total = 0
        """Bars of the streamed sessions (history excluded)."""
        self.reset()
        self.bind()

    def bind(self) -> None:
        """Take the series' list appends again (after it replaced its lists)."""
        self.add_bar, self.add_close, self.add_row, self.add_known = self.series.appenders()

    def reset(self) -> None:
        """Fresh indicators (a warm-up follows).

        :attr:`update` feeds one bar to every indicator and returns the row of all their
        outputs (:func:`~sessionkit.engine.pipeline.indicators.compile_kernel`).
        """
        self.kernel = compile_kernel([make_indicator(c) for c in self.configs])
        self.update = self.kernel.update

    def new_session(self) -> None:
        self.kernel.new_session()


class _Window:
    """The derived bar being built for one (symbol, derived interval): the base bars it
    holds so far (the bar is built from them when the window is emitted)."""

    __slots__ = ("stream", "delta", "bounds", "start", "end", "bars", "emitted", "lookup")

    start: datetime
    end: datetime

    def __init__(self, stream: IndicatorStream, delta: timedelta) -> None:
        self.stream = stream
        self.delta = delta
        self.bounds: tuple[datetime, datetime] | None = None
        """(start, end) of the window being built (shared with :attr:`lookup`)."""
        self.lookup: dict[datetime, tuple[tuple[datetime, datetime], bool]] = {}
        """The session's windows by base-bar start (see :meth:`DataProcessor._lookups`)."""
        self.bars: list[Bar] = []
        """The base bars of the open window, in order (empty: no window open)."""
        self.emitted: datetime | None = None
        """End of the last emitted window: a late (backfilled) bar before it is ignored."""


class _Symbol:
    __slots__ = ("name", "base", "windows")

    def __init__(self, name: str, base: IndicatorStream, windows: list[_Window]) -> None:
        self.name = name
        self.base = base
        self.windows = windows


class DataProcessor(Stage):
    """The ``data_processor`` thread (component 5).

    Parameters
    ----------
    runtime
        The session's shared state.
    ready
        Signalled to the coordinator after each message.
    downstream
        The analysis engine, notified after each message (or None).
    record
        Keep every streamed and derived bar with its indicator values, per (symbol,
        interval), in :attr:`record` (for the export): ``True`` in lists, ``"drain"`` in
        deques that the export empties as the run goes (see ``Recording``).
    """

    def __init__(
        self,
        runtime: Runtime,
        ready: StreamSubscription,
        downstream: Stage | None = None,
        *,
        record: Recording = False,
    ) -> None:
        super().__init__(runtime, "data_processor", ready, downstream)
        self.config: SessionConfig = runtime.config
        data = runtime.data
        config = self.config
        base = config.streams.interval
        self.base_delta = interval_delta(base)
        self.streams: dict[tuple[str, str], IndicatorStream] = {}
        self.symbols: dict[str, _Symbol] = {}
        for symbol in config.streams.symbols:
            for interval in config.intervals:
                configs = [c for c in config.indicators if c.interval == interval]
                names = tuple(n for c in configs for n in output_names(c))
                series = data.add_series(symbol, interval, names)
                self.streams[symbol, interval] = IndicatorStream(symbol, interval, series, configs)
            windows = [
                _Window(self.streams[symbol, interval], interval_delta(interval))
                for interval in config.streams.derived
            ]
            self.symbols[symbol] = _Symbol(symbol, self.streams[symbol, base], windows)
        self._windows = [w for s in self.symbols.values() for w in s.windows]
        self._lookup_cache: dict[tuple, dict[timedelta, dict]] = {}
        self._step_lookups: list[dict] = [{} for _ in config.streams.derived]
        """The session's ``lookup`` of each derived interval, in the windows' order (set
        by :meth:`_begin`; while streaming, every symbol is in the same session)."""
        self._due = _NEVER
        """No open window ends before this (see :meth:`process_step`); earlier is safe."""
        self._session: SessionTimes | None = None
        """The session whose windows are being built (open, close and break)."""
        self._known: float | None = None
        """Epoch of the instant being handled (what new bars are known from); None while
        warming up (each bar is then known from its own end)."""
        kept = deque if record == "drain" else list
        self.record: dict[tuple[str, str], MutableSequence[tuple[Bar, tuple]]] | None = (
            {key: kept() for key in self.streams} if record else None
        )
        """When a dict, every streamed and derived bar of the sessions with its indicator
        values, per (symbol, interval), for export."""
        self._streaming = False

    # -- messages -------------------------------------------------------------------------

    def on_step(self, message: StepReady) -> None:
        self._known = message.epoch
        self.process_step(message.time, message.items)

    def on_session_start(self, message: SessionStarted) -> None:
        self.start_session(message.plan, message.history)

    def on_session_end(self, message: SessionEnded) -> None:
        self._known = message.close.timestamp()
        self.flush()

    # -- work ---------------------------------------------------------------------------

    def process_step(self, t: datetime, items: tuple[tuple[str, Bar], ...]) -> None:
        """Handle the bars that became visible at ``t``.

        The hot path of the engine: per bar, its indicators, its series' appends and its
        derived windows (the common case here, the rest in :meth:`_feed_window`).
        """
        symbols = self.symbols
        record = self.record
        feed = self._feed_window
        emit = self._emit
        lookups = self._step_lookups
        known = self._known if self._known is not None else t.timestamp()
        step_start = None
        infos: list = []
        for name, bar in items:
            symbol = symbols[name]
            base = symbol.base
            row = base.update(bar)
            # BarSeries.append, inlined (readers are bounded by the known-from list: last)
            base.add_bar(bar)
            base.add_close(bar[4])
            base.add_row(row)
            base.add_known(known)
            base.total += 1
            if record is not None:
                record[name, base.interval].append((bar, row))
            windows = symbol.windows
            if windows:
                start = bar[0]
                if start != step_start:  # once per instant: its bars share their start
                    step_start = start
                    infos = [lookup.get(start) for lookup in lookups]
                # No ``strict=``: a keyword sends ``zip`` through its slow argument
                # parsing, per bar (both lists hold one entry per derived interval).
                for window, info in zip(windows, infos):  # noqa: B905
                    held = window.bars
                    if held and info is not None and info[0] is window.bounds:
                        held.append(bar)  # in the open window (its bounds' very tuple)
                        if info[1]:  # the bar reaches the window's end
                            emit(window)
                    else:
                        feed(window, bar, info)
        if t >= self._due:
            # A window whose last bars are missing is emitted at the first step at or
            # after its end (scanned only once the earliest open window's end is reached).
            due = _NEVER
            for window in self._windows:
                if window.bars:
                    if t >= window.end:
                        self._emit(window)
                    elif window.end < due:
                        due = window.end
            self._due = due

    def window_bounds(self, window: _Window, start: datetime) -> tuple[datetime, datetime]:
        """The derived window of ``window``'s interval that holds a bar starting at ``start``.

        Anchored at the session open and at its break's end; the break's start and the
        close cut the last window of each part (:func:`~sessionkit.engine.core.windows.window_bounds`).
        """
        session = self._session
        assert session is not None
        return window_bounds(session, window.delta, start)

    def _lookups(self, session: SessionTimes) -> dict[timedelta, dict]:
        """Per derived interval, the session's windows by the start of each base bar they
        hold: ``{start: ((window start, window end), closing)}``, ``closing`` when the bar's
        end (``start + base interval``) reaches the window's end. Computed once per session
        (the tuples are shared, so "same window" is an identity test); a bar that starts
        off the base grid is not in it and takes :meth:`window_bounds`."""
        key = (session.open, session.close, session.break_start, session.break_end)
        cached = self._lookup_cache.get(key)
        if cached is not None:
            return cached
        base = self.base_delta
        out: dict[timedelta, dict] = {}
        for delta in {window.delta for window in self._windows}:
            lookup = out[delta] = {}
            for bounds in session_windows(session, delta):
                start, end = bounds
                t = start
                while t < end:
                    lookup[t] = (bounds, t + base >= end)
                    t += base
        if len(self._lookup_cache) >= 64:
            self._lookup_cache.clear()
        self._lookup_cache[key] = out
        return out

    def _feed_window(
        self, window: _Window, bar: Bar, info: tuple[tuple[datetime, datetime], bool] | None
    ) -> None:
        """Add a base bar to one of its symbol's derived windows; ``info`` is the window's
        ``lookup`` entry for the bar's start (None: off the base grid)."""
        start = bar[0]
        if info is None:  # off the base grid: the general rule
            bounds = self.window_bounds(window, start)
            closing = start + self.base_delta >= bounds[1]
        else:
            bounds, closing = info
        held = window.bars
        if held:
            if bounds is window.bounds or window.start <= start < window.end:
                held.append(bar)  # in the window
                if closing:
                    self._emit(window)
                return
            if start < window.start:
                return  # late bar, older than the open window: never rewritten
            self._emit(window)  # past the window's end: its last bars are missing
        if window.emitted is not None and start < window.emitted:
            return  # late bar of a window already emitted: never rewritten
        window.bounds = bounds
        window.start, window.end = bounds
        if window.end < self._due:
            self._due = window.end
        held.append(bar)
        if closing:
            self._emit(window)

    def _emit(self, window: _Window) -> None:
        held = window.bars
        bar = tuple.__new__(
            Bar,
            (
                window.start,
                held[0][1],
                max(map(_HIGH, held)),
                min(map(_LOW, held)),
                held[-1][4],
                sum(map(_VOLUME, held)),
            ),
        )
        held.clear()
        stream = window.stream
        window.emitted = window.end
        row = stream.update(bar)
        known = self._known
        stream.series.append(bar, row, known if known is not None else window.end.timestamp())
        if self._streaming:
            stream.total += 1
            if self.record is not None:
                self.record[stream.symbol, stream.interval].append((bar, row))

    @property
    def totals(self) -> dict[tuple[str, str], int]:
        """Bars of the streamed sessions (history excluded) per (symbol, interval)."""
        return {key: stream.total for key, stream in self.streams.items()}

    def flush(self) -> None:
        """Emit every window still open (the close cut it, or its last bars are missing)."""
        for window in self._windows:
            if window.bars:
                self._emit(window)

    def start_session(self, plan: SessionPlan, history: dict[str, list[Bar]] | None = None) -> None:
        """Prepare a session: trim or rebuild the history, warm indicators up.

        When the previous session carries on (``plan.carry``, ``history`` None), the
        indicators simply carry on; otherwise every series is rebuilt from ``history`` (base
        bars per symbol) and every indicator is warmed up afresh over it. Then each series
        drops the bars older than its interval's trailing window (``plan.cutoffs``).
        """
        self._streaming = False
        self._known = None
        if not plan.carry:
            self._warm_up(plan, history or {})
        for symbol in self.symbols.values():
            self._begin(symbol, plan)
        for key, stream in self.streams.items():
            # Bars before the trailing window kept for this interval go (the indicators
            # keep what they learnt from them).
            stream.series.drop_before(plan.cutoffs.get(key, plan.open))
            stream.series.mark_history()
            stream.bind()
        self._due = _NOW
        self._streaming = True

    def _warm_up(self, plan: SessionPlan, history: dict[str, list[Bar]]) -> None:
        for stream in self.streams.values():
            stream.series.reset()
            stream.reset()
        for window in self._windows:
            window.bars.clear()
        sessions = plan.history
        delta = self.base_delta
        stopping = self.runtime.stop_event.is_set
        for name, symbol in self.symbols.items():
            if stopping():  # a long history: a stop must not wait for every symbol
                raise StopRequested
            base = symbol.base
            append = base.series.append
            index = -1
            session = None
            for bar in history.get(name, ()):
                while index + 1 < len(sessions) and bar.start >= sessions[index + 1].open:
                    index += 1
                    session = sessions[index]
                    self._begin(symbol, session)
                row = base.update(bar)
                # History holds regular minutes only: a bar is known from its end.
                append(bar, row, bar_end(session, delta, bar.start).timestamp())
                for window in symbol.windows:
                    self._feed_window(window, bar, window.lookup.get(bar.start))

    def _begin(self, symbol: _Symbol, session: SessionTimes) -> None:
        for window in symbol.windows:
            if window.bars:
                self._emit(window)
        self._session = session
        lookups = self._lookups(session) if symbol.windows else {}
        for window in symbol.windows:
            window.emitted = None
            window.lookup = lookups[window.delta]
        # Every symbol has the same derived intervals, in the same order.
        self._step_lookups = [window.lookup for window in symbol.windows]
        symbol.base.new_session()
        for window in symbol.windows:
            window.stream.new_session()
