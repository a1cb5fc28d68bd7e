"""DataProcessor: derived bars and real-time indicators, one step at a time.

Runs on the ``data_processor`` thread, woken by its notification queue (never polling).
It is the only writer of derived bar series, real-time indicators, historical indicators
and the indicator value rows that charts read. Per step it builds derived bars, updates
indicators, signals ready to the coordinator, then notifies the analysis engine.

Derived windows are anchored at the session open (and at a break's end), cut by a break's
start and by the close (:func:`~sessionkit.engine.core.windows.window_bounds`, the windows of
``exchange_calendars``' ``trading_index``); a window is emitted at the first step at or after
its end, holding the base bars that arrived in it; a window without bars is never emitted,
so a gap never invents a bar.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from datetime import datetime, timedelta
from itertools import islice

from ..config import SessionConfig
from ..core.bar import Bar, interval_delta
from ..core.session_data import ColumnView, TimeIndex
from ..core.subscription import StreamSubscription
from ..core.windows import SessionTimes, window_bounds
from .indicators import Indicator, make_indicator, output_names
from .runtime import SESSION_END, SESSION_START, STEP, STOP, Runtime, SessionPlan, next_message


class IndicatorStream:
    """Indicators of one (symbol, interval) and their values per bar (processor-owned)."""

    __slots__ = (
        "symbol",
        "interval",
        "bars",
        "configs",
        "indicators",
        "names",
        "rows",
        "history",
        "epochs",
        "total",
    )

    def __init__(self, symbol: str, interval: str, bars: deque[Bar], configs: list) -> None:
        self.symbol = symbol
        self.interval = interval
        self.bars = bars
        self.configs = configs
        self.names: tuple[str, ...] = tuple(n for c in configs for n in output_names(c))
        self.indicators: list[Indicator] = []
        self.rows: deque[tuple[float | None, ...]] = deque()
        """One tuple of all outputs per bar of ``bars``, aligned from the left."""
        self.history = 0
        """How many of ``bars`` are trailing history (set after the warm-up)."""
        self.epochs: deque[int] = deque()
        """Epoch seconds of ``bars``, extended at each session start (historical index)."""
        self.total = 0
        """Bars of the streamed sessions (history excluded)."""
        self.reset()

    def reset(self) -> None:
        self.indicators = [make_indicator(c) for c in self.configs]
        self.rows = deque()  # a new one: a reader holding the old one keeps a consistent copy
        self.epochs = deque()

    def update(self, bar: Bar) -> tuple[float | None, ...]:
        row: tuple[float | None, ...] = ()
        for indicator in self.indicators:
            row += indicator.update(bar)
        self.rows.append(row)
        return row

    def new_session(self) -> None:
        for indicator in self.indicators:
            indicator.new_session()


class _Window:
    """The derived bar being built for one (symbol, derived interval)."""

    __slots__ = ("stream", "delta", "start", "end", "o", "h", "l", "c", "v", "count", "emitted")

    def __init__(self, stream: IndicatorStream, delta: timedelta) -> None:
        self.stream = stream
        self.delta = delta
        self.start: datetime | None = None
        self.end: datetime | None = None
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


class DataProcessor(threading.Thread):
    """The ``data_processor`` thread (component 5)."""

    def __init__(
        self,
        runtime: Runtime,
        ready: StreamSubscription,
        analysis_queue: queue.SimpleQueue | None = None,
    ) -> None:
        super().__init__(name="data_processor", daemon=True)
        self.runtime = runtime
        self.config: SessionConfig = runtime.config
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.ready = ready
        self.analysis_queue = analysis_queue
        self.done_seq = 0
        """Sequence number of the last message fully processed (read by the coordinator)."""
        data = runtime.data
        config = self.config
        base = config.streams.interval
        self.base_delta = interval_delta(base)
        self.streams: dict[tuple[str, str], IndicatorStream] = {}
        self.symbols: dict[str, _Symbol] = {}
        for symbol in config.streams.symbols:
            for interval in config.intervals:
                configs = [c for c in config.indicators if c.interval == interval]
                self.streams[symbol, interval] = IndicatorStream(
                    symbol, interval, data.get_bars(symbol, interval), configs
                )
            windows = [
                _Window(self.streams[symbol, interval], interval_delta(interval))
                for interval in config.streams.derived
            ]
            self.symbols[symbol] = _Symbol(symbol, self.streams[symbol, base], windows)
        self._windows = [w for s in self.symbols.values() for w in s.windows]
        self._session: SessionTimes | None = None
        """The session whose windows are being built (open, close and break)."""
        self.record: dict[tuple[str, str], list[tuple[Bar, tuple]]] | None = None
        """When a dict, every streamed and derived bar of the sessions is kept with its
        indicator values, per (symbol, interval), for export."""
        self._streaming = False
        self._grids: dict[str, TimeIndex] = {}

    # -- thread -------------------------------------------------------------------------

    def run(self) -> None:
        runtime = self.runtime
        try:
            while (message := next_message(self.queue, runtime)) is not None:
                tag = message[0]
                if tag is STEP:
                    self.process_step(message[2], message[3])
                elif tag is SESSION_START:
                    self.start_session(message[2])
                elif tag is SESSION_END:
                    self.flush()
                elif tag is STOP:
                    return
                self.done_seq = message[1]
                self.ready.signal_ready()
                if self.analysis_queue is not None:
                    self.analysis_queue.put(message)
        except Exception as exc:
            runtime.fail("data_processor", exc)
        finally:
            self.ready.cancel()

    # -- work ---------------------------------------------------------------------------

    def process_step(self, t: datetime, items: tuple[tuple[str, Bar], ...]) -> None:
        """Handle the bars that became visible at ``t``.

        The hot path of the engine (see :meth:`_feed_windows` for the derived windows).
        """
        symbols = self.symbols
        delta = self.base_delta
        realtime = self.runtime.data.set_realtime_indicators
        record = self.record
        feed = self._feed_windows
        emit = self._emit
        for name, bar in items:
            symbol = symbols[name]
            base = symbol.base
            row = base.update(bar)
            base.total += 1
            if record is not None:
                record[name, base.interval].append((bar, row))
            if row:
                realtime(name, base.names, row)
            if symbol.windows:
                feed(symbol.windows, bar, bar.start + delta)
        for window in self._windows:
            if window.count and t >= window.end:
                emit(window)

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
            window.start, window.end = window_bounds(self._session, window.delta, bar.start)
            window.o, window.h, window.l, window.c = bar.open, bar.high, bar.low, bar.close
            window.v = bar.volume
            window.count = 1
            if end >= window.end:
                self._emit(window)

    def _emit(self, window: _Window) -> None:
        bar = tuple.__new__(Bar, (window.start, window.o, window.h, window.l, window.c, window.v))
        stream = window.stream
        stream.bars.append(bar)
        window.emitted = window.end
        row = stream.update(bar)
        if self._streaming:
            stream.total += 1
        if self.record is not None and self._streaming:
            self.record.setdefault((stream.symbol, stream.interval), []).append((bar, row))
        if row:
            self.runtime.data.set_realtime_indicators(stream.symbol, stream.names, row)
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

    def start_session(self, plan: SessionPlan) -> None:
        """Prepare a session: trim or rebuild the history, warm indicators up.

        When the coordinator kept the previous session's bars (``plan.carry``), the
        indicators simply carry on and the oldest bars and values are dropped with it;
        otherwise derived history is rebuilt and every indicator is warmed up afresh over
        the trailing history.
        """
        self._streaming = False
        if plan.carry:
            self._trim(plan)
        else:
            self._warm_up(plan)
        for symbol in self.symbols.values():
            self._begin(symbol, plan)
        for stream in self.streams.values():
            stream.history = len(stream.bars)
            self._store_historical(stream)
            self.publish_latest(stream)
            if self.record is not None:
                self.record.setdefault((stream.symbol, stream.interval), [])
        self._streaming = True

    def _trim(self, plan: SessionPlan) -> None:
        for symbol in self.symbols.values():
            base = symbol.base
            rows, epochs = base.rows, base.epochs
            for _ in range(len(rows) - len(base.bars)):
                rows.popleft()
                if epochs:
                    epochs.popleft()
            first = base.bars[0].start if base.bars else None
            for window in symbol.windows:
                stream = window.stream
                bars, rows = stream.bars, stream.rows
                while bars and (first is None or bars[0].start < first):
                    bars.popleft()
                    rows.popleft()
                    if stream.epochs:
                        stream.epochs.popleft()

    def _warm_up(self, plan: SessionPlan) -> None:
        for stream in self.streams.values():
            if stream.interval != self.config.streams.interval:
                stream.bars.clear()
            stream.reset()
        for window in self._windows:
            window.count = 0
        sessions = plan.history
        delta = self.base_delta
        for symbol in self.symbols.values():
            index = -1
            for bar in list(symbol.base.bars):
                while index + 1 < len(sessions) and bar.start >= sessions[index + 1].open:
                    index += 1
                    self._begin(symbol, sessions[index])
                symbol.base.update(bar)
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

    def _store_historical(self, stream: IndicatorStream) -> None:
        if not stream.names:
            return
        epochs = stream.epochs
        for bar in islice(stream.bars, len(epochs), None):  # only the bars added since
            epochs.append(int(bar.start.timestamp()))
        # Symbols without gaps share their times: one index serves them all.
        values = list(epochs)
        cached = self._grids.get(stream.interval)
        if cached is not None and cached.epochs == values:
            grid = cached
        else:
            grid = self._grids[stream.interval] = TimeIndex.from_epochs(values, stream.interval)
        rows = tuple(stream.rows)  # one C-level copy; the columns are views of it
        columns = {name: ColumnView(rows, i) for i, name in enumerate(stream.names)}
        self.runtime.data.set_historical_indicators(stream.symbol, stream.interval, grid, columns)

    def publish_latest(self, stream: IndicatorStream) -> None:
        """Copy the stream's latest values into SessionData's real-time indicators."""
        if not stream.rows:
            return
        self.runtime.data.set_realtime_indicators(stream.symbol, stream.names, stream.rows[-1])
