"""SessionData: the engine's one in-memory store of bars, indicator values and quality.

Every engine thread uses it. The data processor writes every bar series (the streamed
base bars the coordinator hands it, the derived bars it builds) together with each bar's
indicator values; the data quality manager writes quality metrics; the analysis engine,
the UI snapshot and the export read.

Who writes the base bars
------------------------
DESIGN.md ("One step") names the coordinator the writer of the base bars and the processor
the writer of the indicator values. Here one key is one :class:`BarSeries` (bars, their
indicator rows and their known-from instants together), and its one writer is the data
processor, which appends each base bar the coordinator hands it (in the step message)
with the row it computes on it. Splitting the series into a coordinator-written bar key
and a processor-written row key was weighed and not done, because:

* **Alignment.** A reader takes the bar, its row and its instant from one tuple of
  parallel lists, so they always match. Old bars are dropped at each session start by
  swapping in new lists; with two writers either both would have to trim their lists
  (readers could then see a bar beside the row of another bar until the second swap), or
  every read would have to map positions through per-key offsets.
* **Hand-off.** In clock-driven and live modes the coordinator would write bars that the
  processor (another thread) then extends with rows; a reader between the two sees a bar
  without its row, and the snapshot would have to re-align the two as ``Session.series``
  used to (the issue that made the series one key).
* **No gain to pay for.** Throughput is not the obstacle (the writer appends through the
  lists' own ``append``, see :meth:`BarSeries.appenders`, so the appends would only move
  between threads); what a split would buy is a second writer to coordinate with at every
  session start and in every reader, for nothing a reader could see.

So the rule the code keeps is: each key has exactly one writing component (every bar
series the processor, quality the quality manager), which writes it from one thread at a
time: its own thread, or in data-driven mode the coordinator's thread, where the
coordinator runs the processor's handlers in order (the processor's thread then only
waits; switching the clock mode first drains it). ``tests/pipeline/test_single_writer.py``
checks it.

A :class:`BarSeries` holds one (symbol, interval): each bar (and its close, for cheap
views of closes), the row of indicator values computed on it, and the instant from which
it is *known* (the simulated instant at which
it was published; for trailing history, its end). Readers ask by time: "the last ``n``
bars known at ``t``", "the value of ``sma_20`` known at ``t``" (a bisect on the known-from
instants, O(1) when ``t`` is at or after the latest bar). So a reader that lags behind the
writer (the analysis in clock-driven mode) still sees exactly what was known at its own
instant, never a later value and never nothing when something was known.

Thread-safety contract
----------------------
**One writer per key, any number of readers, no lock on the hot paths.**

* A series is four plain lists (bars, closes, rows, known-from epochs) in one tuple,
  with the history count and the index of the first bar still in view. The writer
  appends to the lists in that order, so the known-from list is never longer than the
  others; readers take the tuple once, bound themselves by ``len(known)`` (or a bisect
  on it) and by the first index, and slice: a list slice is one C call, atomic under the
  GIL, and a :class:`Bar` is an immutable tuple, so there are no torn reads.
* Dropping old bars (at a session start, to keep memory flat) replaces the tuple: with
  a later first index, or with new, shorter lists once the dropped bars are as many as
  the kept ones. A reader holding the old tuple keeps a consistent copy.
* New keys are created under a lock; lookups of existing keys take none.

Why Python objects, not columns
-------------------------------
Dropping the oldest session frees its bars, about nine objects each, long cold: about
0.9 us per dropped bar on 50 symbols, a fifth of a load's time. Keeping the bars as
columns instead (starts in a list, prices and volumes in ``array``, the rows flat) was
built and measured, interleaved, on the 50-symbol scaling run, together with building
each step's bars at its instant, one step at a time: loads fell from 1.0-1.3 s to
0.55-0.72 s, streaming rose from 1.9-2.4 s to 3.1-3.5 s (``array.append`` parses each
value; the processor took about 1.3 us more per bar, 0.5 us of it with the step building
alone), so the run took longer. Columns pay only when bars arrive in blocks, not one
append per bar. (The steps' bars are now built as they stream, but a block of about 4,096
at a time, :mod:`~sessionkit.engine.pipeline.steps`: that costs the same as building them
at the load.)
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any

from .bar import INTERVAL_SECONDS, Bar, interval_delta

__all__ = ["BarSeries", "SessionData"]

_START = itemgetter(0)
"""A bar's start (its first field), as a bisect key."""

_CLOSE = itemgetter(4)
"""A bar's close."""

_Cols = tuple[list[Bar], list[tuple], list[float], int, list[float], int]


class BarSeries:
    """One (symbol, interval): bars with their indicator rows and known-from instants.

    Written by one thread (the data processor); read by any. Times given to the readers
    are epoch seconds (``datetime.timestamp()``); None means "the latest".

    Parameters
    ----------
    symbol, interval
        What the series holds.
    names
        The indicator outputs of each row, in order (``sma_20``, ``bb_20.upper`` ...).
    """

    __slots__ = ("symbol", "interval", "names", "columns", "_cols")

    def __init__(self, symbol: str, interval: str, names: Sequence[str] = ()) -> None:
        self.symbol = symbol
        self.interval = interval
        self.names: tuple[str, ...] = tuple(names)
        self.columns: dict[str, int] = {name: i for i, name in enumerate(self.names)}
        """Position of each indicator output in a row."""
        # (bars, rows, known-from epochs, history, closes, first): the bars before ``first``
        # are dropped (see :meth:`drop_before`); ``history`` counts from ``first``.
        self._cols: _Cols = ([], [], [], 0, [], 0)

    def __repr__(self) -> str:
        return f"BarSeries({self.symbol!r}, {self.interval!r}, {len(self)} bars)"

    # -- writer -----------------------------------------------------------------------------

    def append(self, bar: Bar, row: tuple, known: float) -> None:
        """Add a bar with its indicator row, known from epoch ``known``. Writer only.

        Bars come in time order and ``known`` never decreases; neither is checked here
        (the hot path).
        """
        bars, rows, knowns, _history, closes, _first = self._cols
        bars.append(bar)
        closes.append(bar[4])
        rows.append(row)
        knowns.append(known)

    def extend(self, bars: list[Bar], rows: list[tuple], known: list[float]) -> None:
        """Add bars with their rows and known-from epochs (three lists of one length), as
        :meth:`append` would one by one. Writer only."""
        cols = self._cols
        cols[0].extend(bars)
        cols[4].extend(map(_CLOSE, bars))
        cols[1].extend(rows)
        cols[2].extend(known)

    def appenders(self) -> tuple[Callable, Callable, Callable, Callable]:
        """The writer's hot path: the ``append`` of the bar, close, row and known-from lists,
        to be called in that order for each bar (as :meth:`append` does, without its call).
        Writer only; valid until the next :meth:`reset` or :meth:`drop_before`, which may
        replace the lists."""
        bars, rows, knowns, _history, closes, _first = self._cols
        return bars.append, closes.append, rows.append, knowns.append

    def written(self) -> list[Bar]:
        """The list the bars are appended to, for the writer to read back what it wrote
        (the processor builds derived bars from its tail). Writer only; valid, like
        :meth:`appenders`, until the next :meth:`reset` or :meth:`drop_before`."""
        return self._cols[0]

    def reset(self, bars: Iterable[Bar] = (), rows: Iterable[tuple] = (), known=()) -> None:
        """Replace the whole content (all three the same length). Writer only."""
        bars = list(bars)
        self._cols = (bars, list(rows), list(known), 0, [bar[4] for bar in bars], 0)

    def drop_before(self, start, keep: int = 0, floor=None) -> int:
        """Drop the bars that start before ``start`` (a datetime), but the last ``keep`` of
        them that start at or after ``floor`` (a datetime; None: any). Writer only.

        No reader sees them afterwards. They are only moved out of view while they are
        fewer than the bars kept, and removed (the lists copied) once they are as many:
        copying at every session start made new lists of every series that the garbage
        collector then traversed again (measured: 3 of the 5 seconds it took in a
        50-symbol run); this way each bar is copied about once, and memory stays within
        twice what is kept.

        Returns
        -------
        int
            How many were dropped.
        """
        bars, rows, knowns, history, closes, first = self._cols
        cut = bisect_left(bars, start, first, key=_START)
        if keep:
            lowest = first if floor is None else bisect_left(bars, floor, first, cut, key=_START)
            cut = max(lowest, cut - keep)
        dropped = cut - first
        if dropped <= 0:
            return 0
        history = max(0, history - dropped)
        if cut >= len(knowns) - cut:
            self._cols = (bars[cut:], rows[cut:], knowns[cut:], history, closes[cut:], 0)
        else:
            self._cols = (bars, rows, knowns, history, closes, cut)
        return dropped

    def mark_history(self) -> None:
        """Mark every bar held now as history (called at a session start). Writer only."""
        bars, rows, knowns, _history, closes, first = self._cols
        self._cols = (bars, rows, knowns, len(knowns) - first, closes, first)

    # -- readers (any thread) ---------------------------------------------------------------

    def _locate(self, at: float | None) -> tuple[_Cols, int]:
        """The columns (one consistent read) and how many bars of them are known at ``at``
        (an index into the lists; the visible ones start at the columns' ``first``)."""
        cols = self._cols
        knowns = cols[2]
        count = len(knowns)
        if at is None or not count or knowns[count - 1] <= at:
            return cols, count
        return cols, bisect_right(knowns, at, 0, count)

    def __len__(self) -> int:
        cols = self._cols
        return len(cols[2]) - cols[5]

    @property
    def history(self) -> int:
        """How many of the bars (from the left) are trailing history of this session."""
        return self._cols[3]

    def count(self, at: float | None = None) -> int:
        """Number of bars known at ``at``."""
        cols, i = self._locate(at)
        return max(0, i - cols[5])

    def last(self, at: float | None = None) -> Bar | None:
        """The last bar known at ``at``, or None."""
        cols = self._cols
        knowns = cols[2]
        i = len(knowns)  # inline :meth:`_locate` (hot path)
        if at is not None and i and knowns[i - 1] > at:
            i = bisect_right(knowns, at, 0, i)
        return cols[0][i - 1] if i > cols[5] else None

    def bars(self, n: int, at: float | None = None) -> list[Bar]:
        """A copy of the last ``n`` bars known at ``at``, oldest first. O(n)."""
        if n <= 0:
            return []
        cols = self._cols
        knowns = cols[2]
        i = len(knowns)  # inline :meth:`_locate` (hot path)
        if at is not None and i and knowns[i - 1] > at:
            i = bisect_right(knowns, at, 0, i)
        first = cols[5]
        return cols[0][max(first, i - n) : i] if i > first else []

    def closes(self, n: int, at: float | None = None) -> list[float]:
        """The closes of the last ``n`` bars known at ``at``, oldest first. O(n)."""
        if n <= 0:
            return []
        cols = self._cols
        knowns = cols[2]
        i = len(knowns)  # inline :meth:`_locate`: the analysis's hot path
        if at is not None and i and knowns[i - 1] > at:
            i = bisect_right(knowns, at, 0, i)
        first = cols[5]
        i_n = i - n
        if i_n < first:
            return cols[4][first:i] if i > first else []
        return cols[4][i_n:i]

    def value(self, name: str, at: float | None = None) -> Any:
        """Indicator output ``name`` of the last bar known at ``at`` (None if none).

        Raises
        ------
        KeyError
            If the series has no such indicator output.
        """
        column = self.columns[name]
        cols = self._cols
        knowns = cols[2]
        i = len(knowns)  # inline :meth:`_locate` (hot path)
        if at is not None and i and knowns[i - 1] > at:
            i = bisect_right(knowns, at, 0, i)
        return cols[1][i - 1][column] if i > cols[5] else None

    def values(self, name: str, n: int, at: float | None = None) -> list[Any]:
        """Indicator output ``name`` of the last ``n`` bars known at ``at``, oldest first.

        Raises
        ------
        KeyError
            If the series has no such indicator output.
        """
        column = self.columns[name]
        if n <= 0:
            return []
        cols, i = self._locate(at)
        first = cols[5]
        if i <= first:
            return []
        return [row[column] for row in cols[1][max(first, i - n) : i]]

    def row(self, at: float | None = None) -> dict[str, Any]:
        """Every indicator output of the last bar known at ``at`` ({name: value})."""
        cols, i = self._locate(at)
        if i <= cols[5]:
            return dict.fromkeys(self.names)
        return dict(zip(self.names, cols[1][i - 1], strict=True))

    def summary(self) -> tuple[int, int, Bar | None, tuple | None, float | None]:
        """Latest state, consistently: (bars, of which history, last bar, its row, the
        close of the last history bar or None)."""
        bars, rows, knowns, history, _closes, first = self._cols
        end = len(knowns)
        count = end - first
        if count <= 0:
            return 0, 0, None, None, None
        history = min(history, count)
        prev_close = bars[first + history - 1][4] if history else None
        return count, history, bars[end - 1], rows[end - 1], prev_close

    def window(self, n: int | None = None) -> tuple[list[Bar], list[tuple], int]:
        """Consistent copies of the last ``n`` (None: all) bars and rows, and how many of
        them are history."""
        bars, rows, knowns, history, _closes, first = self._cols
        end = len(knowns)
        skip = first if n is None else max(first, end - n)
        return bars[skip:end], rows[skip:end], max(0, history - (skip - first))


class SessionData:
    """The session's in-memory store: bar series with their indicator rows, and quality.

    See the module docstring for the thread-safety contract (one writer per key, any
    number of readers, reads bounded by time).
    """

    def __init__(self) -> None:
        # Structure changes only (new keys); never taken on the hot paths.
        self._lock = threading.Lock()
        # {symbol: {interval: BarSeries}}: two plain dict lookups are faster than one
        # lookup on a (symbol, interval) tuple, whose hash is not cached.
        self._series: dict[str, dict[str, BarSeries]] = {}
        # {symbol: {key: percent}}
        self._quality: dict[str, dict[str, float]] = {}

    # -- bar series -------------------------------------------------------------------------

    def add_series(self, symbol: str, interval: str, names: Sequence[str] = ()) -> BarSeries:
        """Create (or return) the series of (symbol, interval) with these indicator outputs.

        Called by the series' writer before it starts.

        Raises
        ------
        ValueError
            If the symbol is empty, the interval unknown, or the series exists with other
            indicator outputs.
        """
        if not isinstance(symbol, str) or not symbol:
            raise ValueError(f"a symbol must be a non-empty string, not {symbol!r}")
        interval_delta(interval)
        with self._lock:
            per_symbol = self._series.setdefault(symbol, {})
            series = per_symbol.get(interval)
            if series is None:
                series = per_symbol[interval] = BarSeries(symbol, interval, names)
            elif series.names != tuple(names):
                raise ValueError(
                    f"series {symbol} {interval} exists with outputs {series.names}, "
                    f"not {tuple(names)}"
                )
            return series

    def series(self, symbol: str, interval: str) -> BarSeries:
        """The series of (symbol, interval). Any thread.

        Raises
        ------
        KeyError
            If there is no such series; the message lists the streamed ones.
        """
        try:
            return self._series[symbol][interval]
        except KeyError:
            known = ", ".join(f"{s} {i}" for s in self._series for i in self._series[s])
            raise KeyError(f"no series {symbol} {interval} (streamed: {known or 'none'})") from None

    def symbols(self) -> list[str]:
        """The symbols that have a bar series, sorted. Any thread."""
        return sorted(self._series)

    def intervals(self, symbol: str) -> list[str]:
        """The intervals of the symbol's bar series, shortest first. Any thread."""
        per_symbol = self._series.get(symbol, {})
        return sorted(per_symbol, key=lambda interval: INTERVAL_SECONDS.get(interval, 0))

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
