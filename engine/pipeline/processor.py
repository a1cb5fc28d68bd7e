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

from bisect import bisect_left
from collections import deque
from collections.abc import Mapping, MutableSequence
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Literal

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

_START, _HIGH, _LOW, _VOLUME = itemgetter(0), itemgetter(2), itemgetter(3), itemgetter(5)
_BAR = itemgetter(1)
_NEVER = datetime.max.replace(tzinfo=UTC)
_DAWN = datetime.min.replace(tzinfo=UTC)


class IndicatorStream:
    """Indicators of one (symbol, interval) and the series they write (processor-owned)."""

    __slots__ = (
        "symbol",
        "interval",
        "series",
        "configs",
        "kernel",
        "names",
        "_count",
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
        self._count: tuple[int, list[Bar] | None, int] = (0, None, 0)
        """(bars streamed before this session, the list this session's are appended to,
        its length when this session started): swapped whole, so :attr:`total` reads one
        consistent state from any thread."""
        self.reset()
        self.bind()

    @property
    def total(self) -> int:
        """Bars of the streamed sessions (history excluded). Any thread."""
        before, written, mark = self._count
        return before if written is None else before + len(written) - mark

    def start_counting(self) -> None:
        """Count the bars appended from now on as streamed (a session starts streaming,
        its history in place): :attr:`total` counts the series' own list, which saves an
        increment per bar."""
        written = self.series.written()
        self._count = (self._count[0], written, len(written))

    def stop_counting(self) -> None:
        """Stop counting appended bars (a session loads: history, trims, warm-up)."""
        self._count = (self.total, None, 0)

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


class _KnownFrom(dict):
    """History bars' known-from epochs (their ends, :func:`bar_end`) by start, for one
    session: computed on the first lookup of each start, shared by every symbol."""

    __slots__ = ("session", "delta")

    def __init__(self, session: SessionTimes, delta: timedelta) -> None:
        super().__init__()
        self.session = session
        self.delta = delta

    def __missing__(self, start: datetime) -> float:
        known = self[start] = bar_end(self.session, self.delta, start).timestamp()
        return known


class _Interval:
    """One derived interval: every symbol's window of it, the session's windows by base-bar
    start, and the earliest instant at which one of them may be due."""

    __slots__ = ("delta", "windows", "lookup", "due", "regular")

    def __init__(self, delta: timedelta) -> None:
        self.delta = delta
        self.windows: list[_Window] = []
        self.lookup: dict[datetime, tuple[tuple[datetime, datetime], bool]] = {}
        """The session's windows by base-bar start (see :meth:`DataProcessor._lookups`)."""
        self.due = _NEVER
        """No window of this interval holding bars (or bars not yet taken in) ends before
        this: a step before it has nothing of this interval to emit."""
        self.regular = True
        """Every step since the windows were last taken up to date was regular: its bars
        shared one start on the base grid, later than every earlier step's (so each
        symbol's bars not yet taken in start on the grid, in increasing order)."""


class _Window:
    """The derived bar being built for one (symbol, derived interval).

    The base bars are not handed to the window one by one: they are in the base series
    already (:attr:`written`), and the window takes in the ones it has not seen
    (from :attr:`done` on) only when a window of its interval may be due
    (:meth:`DataProcessor._settle`), usually as one slice. The bar is built from them
    when the window is emitted.
    """

    __slots__ = (
        "stream",
        "delta",
        "base",
        "written",
        "done",
        "bounds",
        "start",
        "end",
        "bars",
        "emitted",
        "lookup",
    )

    start: datetime
    end: datetime

    def __init__(self, stream: IndicatorStream, delta: timedelta, base: IndicatorStream) -> None:
        self.stream = stream
        self.delta = delta
        self.base = base
        self.written: list[Bar] = base.series.written()
        """The symbol's base bars, as appended (rebound when the series replaces its list)."""
        self.done = 0
        """The bars of :attr:`written` before this index are taken in (or ignored as late)."""
        self.bounds: tuple[datetime, datetime] | None = None
        """(start, end) of the window being built (shared with :attr:`lookup`)."""
        self.lookup: dict[datetime, tuple[tuple[datetime, datetime], bool]] = {}
        """The session's windows by base-bar start (see :meth:`DataProcessor._lookups`)."""
        self.bars: list[Bar] = []
        """The base bars of the open window taken in so far, in order (empty: none open)."""
        self.emitted: datetime | None = None
        """End of the last emitted window: a late (backfilled) bar before it is ignored."""

    def rebind(self, done: Literal["none", "all"]) -> None:
        """Follow the base series' list after it was replaced; its bars count as taken in
        (``"all"``) or not (``"none"``)."""
        self.written = self.base.series.written()
        self.done = len(self.written) if done == "all" else 0


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
        self._intervals = [_Interval(interval_delta(i)) for i in config.streams.derived]
        """Per derived interval, every symbol's window of it."""
        for symbol in config.streams.symbols:
            for interval in config.intervals:
                configs = [c for c in config.indicators if c.interval == interval]
                names = tuple(n for c in configs for n in output_names(c))
                series = data.add_series(symbol, interval, names)
                self.streams[symbol, interval] = IndicatorStream(symbol, interval, series, configs)
            base_stream = self.streams[symbol, base]
            windows = []
            for interval, group in zip(config.streams.derived, self._intervals, strict=True):
                window = _Window(self.streams[symbol, interval], group.delta, base_stream)
                group.windows.append(window)
                windows.append(window)
            self.symbols[symbol] = _Symbol(symbol, base_stream, windows)
        self._windows = [w for s in self.symbols.values() for w in s.windows]
        self._bases = {name: symbol.base for name, symbol in self.symbols.items()}
        self._lookup_cache: dict[tuple, dict[timedelta, dict]] = {}
        self._last_start = _DAWN
        """The latest bar start of the steps so far (see :attr:`_Interval.regular`)."""
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

        The hot path of the engine: per bar, its indicators and its series' appends. The
        derived windows are not touched per bar: per instant, each derived interval notes
        the end of the window its new bars fall in, and when ``t`` reaches the earliest of
        those ends, :meth:`_emit_due` emits every window that has ended (a window is emitted at
        the first step at or after its end, holding the base bars that arrived in it).
        """
        bases = self._bases
        record = self.record
        known = self._known if self._known is not None else t.timestamp()
        for name, bar in items:
            base = bases[name]
            row = base.update(bar)
            # BarSeries.append, inlined (readers are bounded by the known-from list: last)
            base.add_bar(bar)
            base.add_close(bar[4])
            base.add_row(row)
            base.add_known(known)
            if record is not None:
                record[name, base.interval].append((bar, row))
        groups = self._intervals
        if groups:
            if items:
                # The end of the window the new bars fall in: one start, later than the
                # last step's, on the grid (the regular case), else each bar's own.
                starts = set(map(_START, map(_BAR, items)))
                latest = max(starts)
                regular = len(starts) == 1 and latest > self._last_start
                if latest > self._last_start:
                    self._last_start = latest
                for group in groups:
                    info = group.lookup.get(latest) if regular else None
                    if info is None:
                        self._irregular(group, starts)
                    elif info[0][1] < group.due:
                        group.due = info[0][1]
            for group in groups:
                if t >= group.due:
                    self._emit_due(group, t)

    def _irregular(self, group: _Interval, starts: set[datetime]) -> None:
        """Note the window ends of a step whose bars are not regular (see
        :attr:`_Interval.regular`): the windows are then taken up to date bar by bar."""
        group.regular = False
        lookup = group.lookup
        for start in starts:
            info = lookup.get(start)
            end = info[0][1] if info is not None else self._bounds(group, start)[1]
            if end < group.due:
                group.due = end

    def _emit_due(self, group: _Interval, t: datetime) -> None:
        """Take every window of ``group`` up to date and emit the ones that end by ``t``."""
        due = _NEVER
        settle = self._settle
        regular = group.regular
        for window in group.windows:
            if window.done != len(window.written):
                settle(window, regular)
            if window.bars:
                if t >= window.end:
                    self._emit(window)
                elif window.end < due:
                    due = window.end
        group.due = due
        group.regular = True

    def _settle(self, window: _Window, regular: bool = False) -> None:
        """Take in the base bars that ``window`` has not seen, as :meth:`_feed_window` would
        one by one. After regular steps (``regular``, see :attr:`_Interval.regular`) they
        are taken in as one slice when the first and the last fall in the same window that
        can take them: on the grid and in increasing order, only the last can then reach
        the window's end. Otherwise one by one (``tests/pipeline/test_derived_windows.py``
        checks both against the rules stated bar by bar).

        A late bar never takes the slice path: its step is not regular (its start is not
        later than the last step's), and its window has ended, so :meth:`process_step`
        settles it at once, alone or after bars of a later window. The check against
        :attr:`_Window.emitted` below repeats that guard on purpose."""
        written = window.written
        done = window.done
        count = len(written)
        if count == done:
            return
        window.done = count
        pending = written[done:count]
        lookup = window.lookup
        if regular:
            info = lookup.get(pending[-1][0])
            if info is not None:
                bounds = info[0]
                if count - done == 1 or (
                    (first := lookup.get(pending[0][0])) is not None
                    and first[0] is bounds
                    and pending[-2][0] < pending[-1][0]  # no repeated start at the end
                ):
                    held = window.bars
                    if held:
                        if window.bounds is bounds:
                            held.extend(pending)
                            return
                    elif window.emitted is None or bounds[0] >= window.emitted:
                        window.bounds = bounds
                        window.start, window.end = bounds
                        window.bars = pending
                        return
        feed = self._feed_window
        for bar in pending:
            feed(window, bar, lookup.get(bar[0]))

    def _bounds(self, window: _Window | _Interval, start: datetime) -> tuple[datetime, datetime]:
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
        off the base grid is not in it and takes :meth:`_bounds`."""
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
            bounds = self._bounds(window, start)
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
        # BarSeries.append, inlined (as in process_step)
        stream.add_bar(bar)
        stream.add_close(bar[4])
        stream.add_row(row)
        stream.add_known(known if known is not None else window.end.timestamp())
        if self._streaming and self.record is not None:
            self.record[stream.symbol, stream.interval].append((bar, row))

    @property
    def totals(self) -> dict[tuple[str, str], int]:
        """Bars of the streamed sessions (history excluded) per (symbol, interval)."""
        return {key: stream.total for key, stream in self.streams.items()}

    def flush(self) -> None:
        """Emit every window still open (the close cut it, or its last bars are missing)."""
        for window in self._windows:
            self._settle(window)
            if window.bars:
                self._emit(window)
        for group in self._intervals:
            group.due = _NEVER
            group.regular = True

    def start_session(
        self, plan: SessionPlan, history: Mapping[str, list[Bar]] | None = None
    ) -> None:
        """Prepare a session: trim or rebuild the history, warm indicators up.

        When the previous session carries on (``plan.carry``, ``history`` None), the
        indicators simply carry on; otherwise every series is rebuilt from ``history`` (base
        bars per symbol) and every indicator is warmed up afresh over it. Then each series
        drops the bars older than its interval's trailing window (``plan.cutoffs``).
        """
        self._streaming = False
        self._known = None
        for stream in self.streams.values():
            stream.stop_counting()
        if not plan.carry:
            self._warm_up(plan, history or {})
        for symbol in self.symbols.values():
            self._begin(symbol, plan)
        for key, stream in self.streams.items():
            # Bars before the trailing window kept for this interval go (the indicators
            # keep what they learnt from them). Without a trailing window, the last bar of
            # the session before stays (streamed just before, or built from the history):
            # it and its indicator values are what is known at the open (views never say
            # "nothing" then); a bar of an older session does not.
            cutoff = plan.cutoffs.get(key, plan.open)
            if cutoff >= plan.open and plan.previous_open is not None:
                stream.series.drop_before(cutoff, keep=1, floor=plan.previous_open)
            else:
                stream.series.drop_before(cutoff)
            stream.series.mark_history()
            stream.bind()
            stream.start_counting()
        for window in self._windows:
            window.rebind("all")  # every window was emitted by _begin
        for group in self._intervals:
            group.due = _NEVER
            group.regular = True
        self._last_start = _DAWN
        self._streaming = True

    def _warm_up(self, plan: SessionPlan, history: Mapping[str, list[Bar]]) -> None:
        for stream in self.streams.values():
            stream.series.reset()
            stream.bind()
            stream.reset()
        for window in self._windows:
            window.bars.clear()
            window.rebind("none")
        sessions = plan.history
        # Known-from epochs by start, one dict per history session shared by every symbol
        # (a bar's end, computed once per instant, not once per bar).
        known = [_KnownFrom(session, self.base_delta) for session in sessions]
        stopping = self.runtime.stop_event.is_set
        for name, symbol in self.symbols.items():
            if stopping():  # a long history: a stop must not wait for every symbol
                raise StopRequested
            bars = history.get(name)
            if bars:
                self._warm_up_symbol(symbol, bars, sessions, known)
            for window in symbol.windows:  # the last history session's (_begin the others)
                self._settle_history(window)

    def _warm_up_symbol(
        self,
        symbol: _Symbol,
        bars: list[Bar],
        sessions: tuple[SessionTimes, ...],
        known: list[_KnownFrom],
    ) -> None:
        """Feed one symbol's history (its trailing sessions' regular minutes, in time
        order) to its indicators and series, a session at a time: the indicators as bar
        by bar (``map`` over the kernel), the series in one extend per session."""
        base = symbol.base
        update = base.update
        extend = base.series.extend
        last = bars[-1][0]
        position = 0
        for index, session in enumerate(sessions):
            if last < session.open:  # no bar of this session or later ones
                break
            for window in symbol.windows:  # the previous session's bars
                self._settle_history(window)
            self._begin(symbol, session)
            end = (
                bisect_left(bars, sessions[index + 1].open, position, key=_START)
                if index + 1 < len(sessions)
                else len(bars)
            )
            chunk = bars[position:end]
            position = end
            extend(
                chunk,
                list(map(update, chunk)),
                list(map(known[index].__getitem__, map(_START, chunk))),
            )

    def _settle_history(self, window: _Window) -> None:
        """:meth:`_settle` for history: the bars not yet taken in are in time order (never
        a late one), so each window's bars before its closing one are held in one slice
        (those :meth:`_feed_window` would only append); the first of each window and the
        closing ones still go through it."""
        written = window.written
        count = len(written)
        position = window.done
        window.done = count
        lookup = window.lookup
        feed = self._feed_window
        cut = self.base_delta
        while position < count:
            bar = written[position]
            feed(window, bar, lookup.get(bar[0]))
            position += 1
            held = window.bars
            if held and held[-1] is bar:  # the window is open and holds it
                # The next bars that start before the window's last base bar starts (so
                # neither reach its end nor leave it) are simply held.
                end = bisect_left(written, window.end - cut, position, count, key=_START)
                if end > position:
                    held += written[position:end]
                    position = end

    def _begin(self, symbol: _Symbol, session: SessionTimes) -> None:
        for window in symbol.windows:
            self._settle(window)  # the bars of the session that ends
            if window.bars:
                self._emit(window)
        self._session = session
        lookups = self._lookups(session) if symbol.windows else {}
        for window in symbol.windows:
            window.emitted = None
            window.lookup = lookups[window.delta]
        # While streaming, every symbol is in the same session.
        for group in self._intervals:
            group.lookup = lookups[group.delta]
        symbol.base.new_session()
        for window in symbol.windows:
            window.stream.new_session()
