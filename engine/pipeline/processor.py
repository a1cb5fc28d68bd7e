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
from datetime import datetime, timedelta

from ..config import SessionConfig
from ..core.bar import Bar, interval_delta
from ..core.session_data import BarSeries
from ..core.subscription import StreamSubscription
from ..core.windows import SessionTimes, bar_end, window_bounds
from .indicators import Indicator, make_indicator, output_names
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


class IndicatorStream:
    """Indicators of one (symbol, interval) and the series they write (processor-owned)."""

    __slots__ = (
        "symbol",
        "interval",
        "series",
        "configs",
        "indicators",
        "names",
        "total",
        "_updates",
    )

    def __init__(self, symbol: str, interval: str, series: BarSeries, configs: list) -> None:
        self.symbol = symbol
        self.interval = interval
        self.series = series
        self.configs = configs
        self.names: tuple[str, ...] = series.names
        self.indicators: list[Indicator] = []
        self.total = 0
        """Bars of the streamed sessions (history excluded)."""
        self.reset()

    def reset(self) -> None:
        """Fresh indicators (a warm-up follows)."""
        self.indicators = [make_indicator(c) for c in self.configs]
        self._updates = tuple(indicator.update for indicator in self.indicators)

    def update(self, bar: Bar) -> tuple[float | None, ...]:
        """Feed one bar to every indicator; return the row of all their outputs."""
        row: tuple[float | None, ...] = ()
        for update in self._updates:
            row += update(bar)
        return row

    def new_session(self) -> None:
        for indicator in self.indicators:
            indicator.new_session()


class _Window:
    """The derived bar being built for one (symbol, derived interval)."""

    __slots__ = ("stream", "delta", "start", "end", "o", "h", "l", "c", "v", "count", "emitted")

    start: datetime
    end: datetime

    def __init__(self, stream: IndicatorStream, delta: timedelta) -> None:
        self.stream = stream
        self.delta = delta
        self.o = self.h = self.l = self.c = 0.0
        self.v = 0
        self.count = 0
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

        The hot path of the engine (see :meth:`_feed_windows` for the derived windows).
        """
        symbols = self.symbols
        delta = self.base_delta
        record = self.record
        feed = self._feed_windows
        known = self._known if self._known is not None else t.timestamp()
        for name, bar in items:
            symbol = symbols[name]
            base = symbol.base
            row = base.update(bar)
            base.series.append(bar, row, known)
            base.total += 1
            if record is not None:
                record[name, base.interval].append((bar, row))
            if symbol.windows:
                feed(symbol.windows, bar, bar.start + delta)
        for window in self._windows:
            if window.count and t >= window.end:
                self._emit(window)

    def window_bounds(self, window: _Window, start: datetime) -> tuple[datetime, datetime]:
        """The derived window of ``window``'s interval that holds a bar starting at ``start``.

        Anchored at the session open and at its break's end; the break's start and the
        close cut the last window of each part (:func:`~sessionkit.engine.core.windows.window_bounds`).
        """
        session = self._session
        assert session is not None
        return window_bounds(session, window.delta, start)

    def _feed_windows(self, windows: list[_Window], bar: Bar, end: datetime) -> None:
        """Add a base bar (ending at ``end``) to each of its symbol's derived windows."""
        for window in windows:
            if window.count:
                if window.start <= bar.start < window.end:  # the common case: in the window
                    if bar.high > window.h:
                        window.h = bar.high
                    if bar.low < window.l:
                        window.l = bar.low
                    window.c = bar.close
                    window.v += bar.volume
                    window.count += 1
                    if end >= window.end:
                        self._emit(window)
                    continue
                if bar.start < window.start:
                    continue  # late bar, older than the open window: never rewritten
                self._emit(window)  # past the window's end: its last bars are missing
            if window.emitted is not None and bar.start < window.emitted:
                continue  # late bar of a window already emitted: never rewritten
            window.start, window.end = self.window_bounds(window, bar.start)
            window.o, window.h, window.l, window.c = bar.open, bar.high, bar.low, bar.close
            window.v = bar.volume
            window.count = 1
            if end >= window.end:
                self._emit(window)

    def _emit(self, window: _Window) -> None:
        bar = tuple.__new__(Bar, (window.start, window.o, window.h, window.l, window.c, window.v))
        stream = window.stream
        window.emitted = window.end
        row = stream.update(bar)
        known = self._known
        stream.series.append(bar, row, known if known is not None else window.end.timestamp())
        if self._streaming:
            stream.total += 1
            if self.record is not None:
                self.record[stream.symbol, stream.interval].append((bar, row))
        window.count = 0

    @property
    def totals(self) -> dict[tuple[str, str], int]:
        """Bars of the streamed sessions (history excluded) per (symbol, interval)."""
        return {key: stream.total for key, stream in self.streams.items()}

    def flush(self) -> None:
        """Emit every window still open (the close cut it, or its last bars are missing)."""
        for window in self._windows:
            if window.count:
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
        self._streaming = True

    def _warm_up(self, plan: SessionPlan, history: dict[str, list[Bar]]) -> None:
        for stream in self.streams.values():
            stream.series.reset()
            stream.reset()
        for window in self._windows:
            window.count = 0
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
                if symbol.windows:
                    self._feed_windows(symbol.windows, bar, bar.start + delta)

    def _begin(self, symbol: _Symbol, session: SessionTimes) -> None:
        for window in symbol.windows:
            if window.count:
                self._emit(window)
        self._session = session
        for window in symbol.windows:
            window.emitted = None
        symbol.base.new_session()
        for window in symbol.windows:
            window.stream.new_session()
