"""SessionData: the engine's one in-memory store of bars, indicators and quality.

Every engine thread uses it. The session coordinator writes base bars, the data processor
writes derived bars and real-time indicators, the data quality manager writes quality
metrics, and the analysis engine and the UI snapshot read everything.

Thread-safety contract
----------------------
**One writer per key, any number of readers.** A key is a (symbol, interval) bar series, a
(symbol, name) real-time indicator, a (symbol, interval) quality metric, or a (name,
symbol, interval) historical indicator. No lock is taken on the hot paths; the guarantees
below rest on the GIL making each single C-level operation on a deque or dict atomic.

* :meth:`SessionData.get_bars` returns the live :class:`collections.deque` itself (zero
  copy, the same object on every call). Its **writer** may do anything with it. Any
  **other** thread may take ``len(bars)``, ``bars[-1]`` and ``bars[0]`` (each one atomic
  call), but must **not** iterate it (``for bar in bars``, ``sum(...)``, ``sorted(...)``,
  ``islice(...)``): the deque's iterator raises ``RuntimeError: deque mutated during
  iteration`` when the writer appends between two steps of the loop (measured: about one
  reader loop in four fails while a writer appends). Nor may it read by positive index
  across calls: with a retention limit every append shifts the indices.
* To iterate from another thread, take a copy with :meth:`SessionData.snapshot_bars` or
  :meth:`SessionData.tail`. A full snapshot is ``list(deque)``: the iterator is created and
  drained inside one C call, so no bytecode boundary (where the GIL could pass to the
  writer) lies between the first and the last element; the copy is a consistent prefix of
  the series. A tail (last ``n`` bars) walks ``reversed(deque)`` through ``islice``; there
  *is* a bytecode boundary between creating that iterator and draining it, so a tail can
  meet a concurrent append and raise ``RuntimeError``. It is retried a few times and then
  taken from ``deque.copy()``, which is one C call under the GIL and holds the deque's
  own lock in free-threaded builds.
* There are no torn reads: a :class:`~sessionkit.engine.core.bar.Bar` is an immutable tuple,
  built whole before it is appended, so a reader sees a bar entirely or not at all.
* New keys are created under a lock; lookups of existing keys take no lock. Copies of the
  small dicts (:meth:`SessionData.realtime_indicators`, :meth:`SessionData.quality_metrics`)
  are single C calls too. A historical indicator is replaced as a whole object.
* :meth:`SessionData.clear` must be called while no writer is active (the coordinator calls
  it between sessions, when the other threads are idle).
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from itertools import islice
from typing import Any

from .bar import INTERVAL_SECONDS, Bar, interval_delta

__all__ = ["ColumnView", "HistoricalIndicator", "SessionData", "TimeIndex"]

_TAIL_RETRIES = 8
"""Attempts at an iterator-based tail before falling back to ``deque.copy()``."""


class ColumnView(Sequence[Any]):
    """One column of an immutable tuple of rows, without copying it (read-only, any thread)."""

    __slots__ = ("_rows", "_position")

    def __init__(self, rows: tuple[tuple[Any, ...], ...], position: int) -> None:
        self._rows = rows
        self._position = position

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [row[self._position] for row in self._rows[index]]
        return self._rows[index][self._position]

    def __iter__(self):
        position = self._position
        return (row[position] for row in self._rows)


class TimeIndex:
    """Validated times of one series, indexed for O(1) lookup; immutable and shareable.

    Several :class:`HistoricalIndicator` objects computed on the same bars share one index,
    so the times are checked and hashed once per series, not once per indicator.

    Raises
    ------
    ValueError
        If a time is naive, the times are not strictly increasing, or the interval is
        unknown.
    """

    __slots__ = ("interval", "epochs", "index", "step", "anchor")

    def __init__(self, times: Sequence[datetime], interval: str) -> None:
        interval_delta(interval)  # validates the interval
        for t in times:
            if t.tzinfo is None or t.utcoffset() is None:
                raise ValueError(f"historical indicator times for {interval}: naive time {t!r}")
        epochs = [math.floor(t.timestamp()) for t in times]
        for position in range(1, len(epochs)):
            if epochs[position] <= epochs[position - 1]:
                raise ValueError(
                    f"historical indicator times for {interval} must be strictly increasing "
                    f"({times[position].isoformat()} does not follow the time before)"
                )
        self._finish(epochs, interval)

    @classmethod
    def from_epochs(cls, epochs: Sequence[int], interval: str) -> TimeIndex:
        """Build from whole epoch seconds the caller keeps in strictly increasing order.

        Raises
        ------
        ValueError
            If the interval is unknown or the epochs are not strictly increasing.
        """
        interval_delta(interval)
        values = list(epochs)
        if any(b <= a for a, b in zip(values, values[1:], strict=False)):
            raise ValueError(f"historical indicator times for {interval} must be increasing")
        index = cls.__new__(cls)
        index._finish(values, interval)
        return index

    def _finish(self, epochs: list[int], interval: str) -> None:
        step = INTERVAL_SECONDS[interval]
        anchor = epochs[0] % step if epochs else 0
        on_grid = all((epoch - anchor) % step == 0 for epoch in epochs)
        self.interval = interval
        self.epochs = epochs
        # Without a regular grid the floor lookup could skip a stored time: always bisect.
        self.index: dict[int, int] | None = (
            {epoch: i for i, epoch in enumerate(epochs)} if on_grid else None
        )
        self.step = step
        self.anchor = anchor


class HistoricalIndicator:
    """One indicator's values over the trailing history, looked up by time in O(1).

    Values sit at the times the caller gives (by convention the start times of the bars
    they were computed from). When every time lies on one regular grid (a multiple of the
    interval away from the first time: true of bars anchored at the session open, also
    across nights, weekends and DST changes), :meth:`at` floors the requested time to the
    grid and finds it in a dict: O(1). When that grid point has no value (a gap in the
    data, or a time outside the session), or the times are not on one grid, it falls back
    to a binary search: O(log n), same answer.

    Instances are immutable after construction, so any thread may read one.

    Parameters
    ----------
    name, symbol, interval
        What the values are: indicator name, symbol and bar interval.
    times
        Strictly increasing, timezone-aware instants (whole seconds are used).
    values
        One value per time.

    Raises
    ------
    ValueError
        If the lengths differ, a time is naive, the times are not strictly increasing, or
        the interval is unknown.
    """

    __slots__ = ("name", "symbol", "interval", "_epochs", "_values", "_index", "_step", "_anchor")

    def __init__(
        self,
        name: str,
        symbol: str,
        interval: str,
        times: Sequence[datetime],
        values: Sequence[Any],
        *,
        time_index: TimeIndex | None = None,
    ) -> None:
        if len(times) != len(values):
            raise ValueError(
                f"historical indicator {name!r} for {symbol} {interval}: "
                f"{len(times)} times but {len(values)} values"
            )
        grid = time_index if time_index is not None else TimeIndex(times, interval)
        if grid.interval != interval or len(grid.epochs) != len(values):
            raise ValueError(
                f"historical indicator {name!r} for {symbol} {interval}: the time index is "
                f"for {grid.interval} with {len(grid.epochs)} times"
            )
        self.name = name
        self.symbol = symbol
        self.interval = interval
        self._epochs = grid.epochs
        # Immutable sequences are kept as they are (no copy); anything else is copied.
        self._values = values if isinstance(values, tuple | ColumnView) else list(values)
        self._index = grid.index
        self._step = grid.step
        self._anchor = grid.anchor

    def __len__(self) -> int:
        return len(self._epochs)

    def __repr__(self) -> str:
        return (
            f"HistoricalIndicator({self.name!r}, {self.symbol!r}, {self.interval!r}, "
            f"{len(self)} values)"
        )

    @property
    def values(self) -> list[Any]:
        """A copy of the values, oldest first."""
        return list(self._values)

    def at(self, t: datetime) -> Any | None:
        """Return the value at ``t`` or, if none, the latest one before it.

        Parameters
        ----------
        t
            A timezone-aware instant.

        Returns
        -------
        object or None
            The value whose time is the latest at or before ``t``; None if ``t`` is before
            the first time (or there are no values).
        """
        epoch = math.floor(t.timestamp())
        index = self._index
        if index is not None:
            position = index.get(epoch - (epoch - self._anchor) % self._step)
            if position is not None:
                return self._values[position]
        position = bisect_right(self._epochs, epoch) - 1
        return self._values[position] if position >= 0 else None


class SessionData:
    """The session's in-memory store: bars, historical and real-time indicators, quality.

    See the module docstring for the thread-safety contract (one writer per key, any
    number of readers; readers copy with :meth:`snapshot_bars` or :meth:`tail`).

    Parameters
    ----------
    retention
        Optional maximum number of bars kept per series, by interval (for example
        ``{"1m": 5000}``). When a series is full, each append drops its oldest bar.
        Intervals not named keep every bar.

    Raises
    ------
    ValueError
        If a retention interval is unknown or its limit is not a positive integer.
    """

    def __init__(self, retention: Mapping[str, int] | None = None) -> None:
        checked: dict[str, int] = {}
        for interval, max_bars in (retention or {}).items():
            interval_delta(interval)
            if isinstance(max_bars, bool) or not isinstance(max_bars, int) or max_bars < 1:
                raise ValueError(
                    f"retention for {interval} must be a positive number of bars, not {max_bars!r}"
                )
            checked[interval] = max_bars
        self._retention = checked
        # Structure changes only (new keys, clear); never taken on the hot paths.
        self._lock = threading.Lock()
        # {symbol: {interval: deque[Bar]}}: two plain dict lookups are faster than one
        # lookup on a (symbol, interval) tuple, whose hash is not cached.
        self._bars: dict[str, dict[str, deque[Bar]]] = {}
        # {(name, symbol, interval): HistoricalIndicator}
        self._historical: dict[tuple[str, str, str], HistoricalIndicator] = {}
        # {symbol: {name: value}}
        self._realtime: dict[str, dict[str, Any]] = {}
        # {symbol: {interval: percent}}
        self._quality: dict[str, dict[str, float]] = {}

    # -- bars -------------------------------------------------------------------------------

    @property
    def retention(self) -> dict[str, int]:
        """A copy of the per-interval retention limits (max bars kept)."""
        return dict(self._retention)

    def _series(self, symbol: str, interval: str) -> deque[Bar]:
        """Return the deque of (symbol, interval), creating it (under the lock) if needed."""
        with self._lock:
            per_symbol = self._bars.get(symbol)
            if per_symbol is not None:
                series = per_symbol.get(interval)
                if series is not None:
                    return series
            if not isinstance(symbol, str) or not symbol:
                raise ValueError(f"a symbol must be a non-empty string, not {symbol!r}")
            interval_delta(interval)
            series = deque(maxlen=self._retention.get(interval))
            if per_symbol is None:
                # Publish the inner dict complete: readers never see it half built.
                self._bars[symbol] = {interval: series}
            else:
                per_symbol[interval] = series
            return series

    def append_bar(self, symbol: str, interval: str, bar: Bar) -> None:
        """Append one bar to the (symbol, interval) series. Writer of that series only.

        The hot path: two dict lookups and ``deque.append``; the series is created on
        first use. Bars must come in time order; that is not checked here.

        Raises
        ------
        TypeError
            If ``bar`` is not a :class:`~sessionkit.engine.core.bar.Bar`.
        ValueError
            If the series is new and the symbol or interval is invalid.
        """
        if bar.__class__ is not Bar:
            raise TypeError(f"append_bar needs a Bar, not {type(bar).__name__}")
        try:
            self._bars[symbol][interval].append(bar)
        except KeyError:
            self._series(symbol, interval).append(bar)

    def append_bars(self, symbol: str, interval: str, bars: Iterable[Bar]) -> int:
        """Append many bars at once (bulk load of history). Writer of that series only.

        Returns
        -------
        int
            The number of bars appended.

        Raises
        ------
        TypeError
            If an element is not a :class:`~sessionkit.engine.core.bar.Bar` (nothing is appended).
        """
        items = bars if isinstance(bars, list | tuple) else list(bars)
        for bar in items:
            if bar.__class__ is not Bar:
                raise TypeError(f"append_bars needs Bars, not {type(bar).__name__}")
        try:
            series = self._bars[symbol][interval]
        except KeyError:
            series = self._series(symbol, interval)
        series.extend(items)
        return len(items)

    def get_bars(self, symbol: str, interval: str) -> deque[Bar]:
        """Return the live deque of (symbol, interval): zero copy, the same object each time.

        The series is created (empty) if it does not exist yet, so a reader may take the
        reference before the first bar arrives. Other threads than the writer must not
        iterate it: use :meth:`snapshot_bars` or :meth:`tail` (see the module docstring).
        The object changes only after :meth:`clear`.
        """
        try:
            return self._bars[symbol][interval]
        except KeyError:
            return self._series(symbol, interval)

    def get_last_bar(self, symbol: str, interval: str) -> Bar | None:
        """Return the latest bar of (symbol, interval), or None if there is none. Any thread."""
        try:
            return self._bars[symbol][interval][-1]
        except (KeyError, IndexError):
            return None

    def bar_count(self, symbol: str, interval: str) -> int:
        """Return the number of bars held for (symbol, interval) (0 if none). Any thread."""
        try:
            return len(self._bars[symbol][interval])
        except KeyError:
            return 0

    def snapshot_bars(self, symbol: str, interval: str, n: int | None = None) -> list[Bar]:
        """Return a consistent copy of the series' bars (the last ``n`` if given). Any thread.

        Parameters
        ----------
        n
            How many of the latest bars to copy; None for all of them.

        Returns
        -------
        list of Bar
            Oldest first; empty if the series does not exist.
        """
        if n is not None and n < 0:
            raise ValueError(f"n must be >= 0, not {n}")
        try:
            series = self._bars[symbol][interval]
        except KeyError:
            return []
        if n is None:
            try:
                return list(series)  # one C call: atomic under the GIL
            except RuntimeError:  # pragma: no cover - only without a GIL
                return list(series.copy())
        if n == 0:
            return []
        for _ in range(_TAIL_RETRIES):
            try:
                latest = list(islice(reversed(series), n))
            except RuntimeError:
                continue  # the writer appended between reversed() and list(): try again
            latest.reverse()
            return latest
        frozen = series.copy()  # pragma: no cover - needs eight collisions in a row
        return list(islice(frozen, max(0, len(frozen) - n), None))  # pragma: no cover

    def tail(self, symbol: str, interval: str, n: int) -> list[Bar]:
        """Return a copy of the last ``n`` bars of (symbol, interval), oldest first. Any thread.

        Costs O(n), whatever the length of the series.
        """
        return self.snapshot_bars(symbol, interval, n)

    def symbols(self) -> list[str]:
        """Return the symbols that have a bar series, sorted. Any thread."""
        return sorted(self._bars)

    def intervals(self, symbol: str) -> list[str]:
        """Return the intervals of the symbol's bar series, shortest first. Any thread."""
        per_symbol = self._bars.get(symbol)
        if per_symbol is None:
            return []
        return sorted(per_symbol, key=lambda interval: INTERVAL_SECONDS.get(interval, 0))

    # -- historical indicators --------------------------------------------------------------

    def set_historical_indicator(
        self,
        name: str,
        symbol: str,
        interval: str,
        times: Sequence[datetime],
        values: Sequence[Any],
    ) -> HistoricalIndicator:
        """Store (replacing) a historical indicator indexed for O(1) lookup by time.

        Called at session start by the thread that computes historical indicators.

        Returns
        -------
        HistoricalIndicator
            The stored, immutable index.

        Raises
        ------
        ValueError
            See :class:`HistoricalIndicator`.
        """
        indicator = HistoricalIndicator(name, symbol, interval, times, values)
        self._historical[name, symbol, interval] = indicator  # one atomic store
        return indicator

    def set_historical_indicators(
        self,
        symbol: str,
        interval: str,
        times: Sequence[datetime] | TimeIndex,
        columns: Mapping[str, Sequence[Any]],
    ) -> None:
        """Store several historical indicators computed on the same bars (one time index).

        Parameters
        ----------
        times
            The bars' times, or a :class:`TimeIndex` of them already built.

        Raises
        ------
        ValueError
            See :class:`TimeIndex` and :class:`HistoricalIndicator`.
        """
        grid = times if isinstance(times, TimeIndex) else TimeIndex(times, interval)
        for name, values in columns.items():
            self._historical[name, symbol, interval] = HistoricalIndicator(
                name, symbol, interval, grid.epochs, values, time_index=grid
            )

    def get_historical_indicator(
        self, name: str, symbol: str, interval: str, at: datetime
    ) -> Any | None:
        """Return the indicator's value at ``at`` or the latest before it. Any thread.

        O(1) when ``at`` falls on a stored grid point, O(log n) across a gap (see
        :class:`HistoricalIndicator`).

        Returns
        -------
        object or None
            None if ``at`` precedes the indicator's first value.

        Raises
        ------
        KeyError
            If no such indicator is stored; the message lists those that are.
        """
        indicator = self._historical.get((name, symbol, interval))
        if indicator is None:
            known = ", ".join(sorted(" ".join(key) for key in list(self._historical))) or "none"
            raise KeyError(
                f"no historical indicator {name!r} for {symbol} {interval} (stored: {known})"
            )
        return indicator.at(at)

    def historical_indicator(
        self, name: str, symbol: str, interval: str
    ) -> HistoricalIndicator | None:
        """Return the stored :class:`HistoricalIndicator`, or None. Any thread."""
        return self._historical.get((name, symbol, interval))

    # -- real-time indicators ---------------------------------------------------------------

    def set_realtime_indicator(self, symbol: str, name: str, value: Any) -> None:
        """Set the current value of a real-time indicator. Writer of (symbol, name) only."""
        try:
            self._realtime[symbol][name] = value
        except KeyError:
            with self._lock:
                self._realtime.setdefault(symbol, {})[name] = value

    def set_realtime_indicators(
        self, symbol: str, names: Sequence[str], values: Sequence[Any]
    ) -> None:
        """Set several real-time indicators of ``symbol`` at once (one dict update).

        Writer of those (symbol, name) keys only. ``names`` and ``values`` pair up.
        """
        try:
            self._realtime[symbol].update(zip(names, values, strict=True))
        except KeyError:
            with self._lock:
                self._realtime.setdefault(symbol, {}).update(zip(names, values, strict=True))

    def get_realtime_indicator(self, symbol: str, name: str, default: Any = None) -> Any:
        """Return the current value of a real-time indicator, or ``default``. Any thread."""
        per_symbol = self._realtime.get(symbol)
        if per_symbol is None:
            return default
        return per_symbol.get(name, default)

    def realtime_indicators(self, symbol: str) -> dict[str, Any]:
        """Return a copy of the symbol's real-time indicators ({name: value}). Any thread."""
        per_symbol = self._realtime.get(symbol)
        return dict(per_symbol) if per_symbol is not None else {}

    # -- quality ----------------------------------------------------------------------------

    def set_quality_metric(self, symbol: str, interval: str, pct: float) -> None:
        """Set the quality of (symbol, interval) in percent. Writer of that key only.

        Raises
        ------
        ValueError
            If ``pct`` is not a number between 0 and 100.
        """
        if not 0.0 <= pct <= 100.0:  # also refuses NaN
            raise ValueError(f"quality of {symbol} {interval} must be 0-100 %, not {pct!r}")
        try:
            self._quality[symbol][interval] = float(pct)
        except KeyError:
            with self._lock:
                self._quality.setdefault(symbol, {})[interval] = float(pct)

    def get_quality_metric(self, symbol: str, interval: str) -> float | None:
        """Return the quality of (symbol, interval) in percent, or None if unset. Any thread."""
        per_symbol = self._quality.get(symbol)
        return per_symbol.get(interval) if per_symbol is not None else None

    def quality_metrics(self, symbol: str) -> dict[str, float]:
        """Return a copy of the symbol's quality metrics ({interval: percent}). Any thread."""
        per_symbol = self._quality.get(symbol)
        return dict(per_symbol) if per_symbol is not None else {}

    # -- lifecycle --------------------------------------------------------------------------

    def clear(self) -> None:
        """Drop everything: bars, indicators and quality, releasing their memory.

        Every existing bar deque is emptied first, so its bars are freed even if some
        thread still holds a reference to the deque (it will see an empty series); the
        containers are then replaced by new empty ones, so :meth:`get_bars` returns new
        deques afterwards. Call only while no writer is active.
        """
        with self._lock:
            old_bars = self._bars
            self._bars = {}
            self._historical = {}
            self._realtime = {}
            self._quality = {}
            for per_symbol in old_bars.values():
                for series in per_symbol.values():
                    series.clear()
