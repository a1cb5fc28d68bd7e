"""A load's trailing history, read by the reader process while the indicators warm up.

Used by the ``session_coordinator`` thread, which builds a :class:`HistoryReads` and asks
the reader process for the history's reads, and by whichever thread runs the data
processor's session start (the coordinator's in data-driven mode, else the
``data_processor`` thread while the coordinator waits for it), which takes each symbol's
bars as it warms that symbol's indicators up. One thread at a time: the coordinator waits
for the session start before it takes anything else from the reader.

Reading the history on the coordinator's thread and then warming every indicator up took
one after the other (about 2.5 us a bar for SQLite, 3 us for the bars and the warm-up);
here the reader reads the next symbols while the processor warms up the ones before. The
first group is read in this process, while the reader process starts (it answers its first
request 45-75 ms after it is spawned).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import itemgetter

from ..core.bar import Bar
from ..core.time_manager import TradingSession
from ..core.windows import regular_minutes
from ..store.column_reader import ColumnReader, ReaderFailed, StopWaiting
from ..store.data_manager import DataManager
from .runtime import StopRequested, monotonic

__all__ = ["HISTORY_READ_BARS", "HistoryReads", "read_history", "regular_bars"]

HISTORY_READ_BARS = 10_000
"""About how many bars one history read by the reader covers (whole symbols): small
enough for the warm-up to start early and run beside the reads, large enough that a read
is not mostly its query's start."""

READ_SECONDS_PER_BAR = 2.5e-6
"""SQLite's time per bar read (either process; measured on the scaling benchmark's
database, where each row is fetched from the table through the symbol's index)."""

WARM_SECONDS_PER_BAR = 4.0e-6
"""Building a history bar and warming the indicators up on it (1m + 5m + 15m, SMA)."""

READER_START_SECONDS = 0.06
"""From spawning the reader process to its first answer (measured 45-75 ms)."""

_first = itemgetter(0)


def regular_bars(bars: list[Bar], windows: Sequence[TradingSession]) -> list[Bar]:
    """The bars of ``bars`` (in time order) in the regular hours of ``windows`` (in
    order): no break, no extended hours."""
    out: list[Bar] = []
    position = 0
    for session in windows:
        for open_, close in session.parts:
            position = bisect_left(bars, open_, position, key=_first)
            end = bisect_left(bars, close, position, key=_first)
            out += bars[position:end]
            position = end
    return out


def read_history(
    dm: DataManager, symbol: str, interval: str, windows: Sequence[TradingSession]
) -> list[Bar]:
    """``symbol``'s bars of the regular hours of ``windows`` (its trailing sessions, in
    order), read in this process."""
    if not windows:
        return []
    bars = dm.get_bars_between(symbol, interval, windows[0].open, windows[-1].close)
    return regular_bars(bars, windows)


class HistoryReads(Mapping[str, list[Bar]]):
    """Each symbol's trailing history (regular hours), read when it is first asked for.

    The symbols are grouped, in order: the first group is read in this process when it is
    asked for, the others are asked of ``reader`` at once, in reads of about
    :data:`HISTORY_READ_BARS` bars (it answers them in order, then reads the session's
    bars). The first group is as large as makes both processes end about together: this
    one reads it and then warms everything up, the reader starts, reads the rest and the
    session (see :meth:`here`).

    Parameters
    ----------
    dm
        Reads the first group, and every group left when the reader fails.
    reader
        The reader process (nothing else may be pending on it).
    interval
        The base interval.
    windows
        Per symbol, the trailing sessions it loads (oldest first; empty: none).
    minutes
        Minutes per bar (to estimate each symbol's bars).
    session_bars
        About how many bars the reader reads for the session after the history.
    stopping
        True once a stop is requested (checked while waiting and between symbols).
    failed
        Called with the reader's failure (it is closed); the rest is read in this process.
    """

    def __init__(
        self,
        dm: DataManager,
        reader: ColumnReader,
        interval: str,
        windows: Mapping[str, Sequence[TradingSession]],
        minutes: float,
        session_bars: int,
        stopping: Callable[[], bool],
        failed: Callable[[ReaderFailed], None],
    ) -> None:
        self._dm = dm
        self._reader: ColumnReader | None = reader
        self._interval = interval
        self._windows = windows
        self._stopping = stopping
        self._failed = failed
        self._ready: dict[str, list[Bar]] = {}
        self._group_of: dict[str, int] = {}
        self.groups: list[list[str]] = []
        """The symbols of each read, in order (the first is read in this process)."""
        estimates = {
            symbol: sum(int(regular_minutes(s) / minutes) for s in sessions)
            for symbol, sessions in windows.items()
            if sessions
        }
        here = self.here(sum(estimates.values()), session_bars)
        self.groups.append([])  # it may stay empty: everything from the reader
        size = 0
        for symbol, bars in estimates.items():  # a new group past its limit (but one empty)
            limit = here if len(self.groups) == 1 else HISTORY_READ_BARS
            if size + bars / 2 > limit and (self.groups[-1] or len(self.groups) == 1):
                self.groups.append([])
                size = 0
            self.groups[-1].append(symbol)
            self._group_of[symbol] = len(self.groups) - 1
            size += bars
        self._taken = 0
        """Groups taken so far (read, answered or given up)."""
        self.asked = 0
        """Groups asked of the reader."""
        self.bars = 0
        """Bars read so far."""
        self.seconds = 0.0
        """Seconds spent reading, waiting for the reader and building bars."""
        for group in self.groups[1:]:
            lo, hi = self._span(group)
            statement = dm.step_statement(group, interval, order="symbol")
            try:
                reader.submit(statement.sql, statement.params(lo, hi))
            except ReaderFailed as failure:
                self._reader = None
                failed(failure)
                break
            self.asked += 1

    @staticmethod
    def here(history: int, session: int) -> int:
        """How many of ``history`` bars to read in this process, the reader reading the rest
        and then ``session`` bars: this process ends after its reads and the whole warm-up,
        the reader after its start and its reads; equal when both take ``x`` such that
        ``x r + h w = s0 + (h + n - x) r`` (``r``, ``w``: :data:`READ_SECONDS_PER_BAR`,
        :data:`WARM_SECONDS_PER_BAR`; ``s0``: :data:`READER_START_SECONDS`)."""
        read, warm = READ_SECONDS_PER_BAR, WARM_SECONDS_PER_BAR
        x = (READER_START_SECONDS + (history + session) * read - history * warm) / (2 * read)
        return int(min(history, max(0.0, x)))

    def _span(self, symbols: Sequence[str]) -> tuple[int, int]:
        """Epoch bounds covering every window of ``symbols``."""
        lo = min(int(self._windows[s][0].open.timestamp()) for s in symbols)
        hi = max(int(self._windows[s][-1].close.timestamp()) for s in symbols)
        return lo, hi

    def __getitem__(self, symbol: str) -> list[Bar]:
        bars = self._ready.get(symbol)
        if bars is not None:
            return bars
        group = self._group_of.get(symbol)
        if group is None:  # no trailing sessions
            if symbol in self._windows:
                return []
            raise KeyError(symbol)
        started = monotonic()
        while self._taken <= group:
            self._take()
        self.seconds += monotonic() - started
        return self._ready[symbol]

    def __iter__(self) -> Iterator[str]:
        return iter(self._windows)

    def __len__(self) -> int:
        return len(self._windows)

    def _take(self) -> None:
        """Take the next group: from the reader if it was asked, else read it here."""
        number = self._taken
        symbols = self.groups[number]
        self._taken += 1
        reader = self._reader
        if number and number <= self.asked and reader is not None:
            try:
                raw = reader.result(self._stopping)
            except StopWaiting:
                raise StopRequested from None
            except ReaderFailed as failure:
                self._reader = None
                self._failed(failure)
            else:
                read = self._dm.symbol_bars(raw)
                for symbol in symbols:
                    self._keep(symbol, regular_bars(read.get(symbol, []), self._windows[symbol]))
                return
        for symbol in symbols:
            if self._stopping():
                raise StopRequested
            windows = self._windows[symbol]
            self._keep(symbol, read_history(self._dm, symbol, self._interval, windows))

    def _keep(self, symbol: str, bars: list[Bar]) -> None:
        """Keep ``symbol``'s history (regular hours only)."""
        self._ready[symbol] = bars
        self.bars += len(bars)

    def finish(self) -> None:
        """Take every answer still due from the reader, so that its next answer is a
        session's (called once the warm-up is over; it asks for every symbol)."""
        started = monotonic()
        self._taken = max(self._taken, 1)  # the first group is read here, if at all
        while self._taken <= self.asked and self._reader is not None:
            self._take()
        self.seconds += monotonic() - started
