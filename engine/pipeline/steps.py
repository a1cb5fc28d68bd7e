"""A session's instants over the columns of one read, their bars built as they stream.

Used by the ``session_coordinator`` thread only: a session's load groups the rows of a
read (:class:`StepChunk`: the columns a reader process or an in-process query returned)
into the session's instants (:func:`session_steps`), without a Python step per row; the
streaming then takes the instants in order (:meth:`SessionSteps.iterate`), and the
``(symbol, bar)`` pairs of :data:`BLOCK_ROWS` rows or so are built at once when it reaches
them.

Building the bars when they stream instead of at the load takes them out of the session
change (the clock stops there; a 200-symbol session's bars took about 70 ms to build),
keeps the sessions read ahead as compact columns (8 bytes a value instead of a Python
object), and hands each block to the processor while it is still in the cache. Each bar is
still built once, at C level (``DataManager.bars_of``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from itertools import repeat
from operator import add, itemgetter, ne
from typing import Protocol

from ..core.bar import Bar, Step
from ..core.windows import SessionTimes, gap_instants, window_end_instants

__all__ = ["BLOCK_ROWS", "SessionSteps", "StepChunk", "session_steps"]

BLOCK_ROWS = 4096
"""About how many rows (bars) one block of instants builds at once when the stream
reaches it: large enough that the per-block work is spread over many bars, small enough
that the block's bars are still in the CPU cache when the processor takes them."""

_first = itemgetter(0)


class BarBuilder(Protocol):
    """Builds bars of columns (``DataManager.bars_of``) and instants of epochs
    (``DataManager.instants``), sharing one ``datetime`` per epoch."""

    def bars_of(self, starts: Sequence[int], values: Sequence[Sequence]) -> Iterator[Bar]: ...

    def instants(self, epochs: Iterable[int]) -> list[datetime]: ...


class StepChunk:
    """The rows of one read, ordered by start then symbol, as columns.

    Parameters
    ----------
    symbols
        The symbol of each index in ``names`` when ``names`` holds indexes (a reader
        process's answer), or None when ``names`` holds the symbols themselves.
    names, starts, values
        Each row's symbol (or its index), start (epoch seconds) and open, high, low, close
        and volume columns.
    """

    __slots__ = ("symbols", "names", "starts", "values", "builder")

    def __init__(
        self,
        symbols: Sequence[str] | None,
        names: Sequence,
        starts: Sequence[int],
        values: Sequence[Sequence],
        builder: BarBuilder,
    ) -> None:
        self.symbols = symbols
        self.names = names
        self.starts = starts
        self.values = values
        self.builder = builder

    def pairs(self, lo: int, hi: int) -> list[tuple[str, Bar]]:
        """The ``(symbol, bar)`` pairs of rows ``lo`` to ``hi`` (built at C level)."""
        names = self.names[lo:hi]
        if self.symbols is not None:
            names = map(self.symbols.__getitem__, names)
        bars = self.builder.bars_of(self.starts[lo:hi], [v[lo:hi] for v in self.values])
        return list(zip(names, bars, strict=True))


class SessionSteps:
    """One session's instants: their times, and the rows of a :class:`StepChunk` that
    become visible at each (none for an instant at which only time passes).

    A sequence of :data:`~sessionkit.engine.core.bar.Step`: ``len``, indexing and
    iteration build the pairs of the instants they reach, a block at a time.
    """

    __slots__ = ("times", "los", "his", "chunk", "bars", "block")

    def __init__(
        self,
        times: list[datetime] | None = None,
        los: list[int] | None = None,
        his: list[int] | None = None,
        chunk: StepChunk | None = None,
    ) -> None:
        self.times = times if times is not None else []
        """Each instant, in order."""
        self.los = los if los is not None else []
        self.his = his if his is not None else []
        """The rows of the chunk that become visible at each instant: ``los[i]:his[i]``."""
        self.chunk = chunk
        self.bars = sum(map(int.__sub__, self.his, self.los))
        """How many bars the session streams."""
        steps = sum(map(ne, self.his, self.los))  # those with bars
        self.block = max(1, BLOCK_ROWS * steps // self.bars) if self.bars else len(self.times)
        """Instants built at once (about :data:`BLOCK_ROWS` rows)."""

    def __len__(self) -> int:
        return len(self.times)

    def __iter__(self) -> Iterator[Step]:
        return self.iterate()

    def __getitem__(self, index: int) -> Step:
        if not -len(self.times) <= index < len(self.times):
            raise IndexError(index)
        index %= len(self.times)
        return next(self.iterate(index, index + 1))

    def iterate(self, lo: int = 0, hi: int | None = None) -> Iterator[Step]:
        """The instants ``lo`` to ``hi`` (the end: None) in order, each with its pairs."""
        times, los, his = self.times, self.los, self.his
        end = len(times) if hi is None else min(hi, len(times))
        block = self.block
        chunk = self.chunk
        while lo < end:
            upto = min(end, lo + block)
            first, last = los[lo], his[upto - 1]
            pairs = chunk.pairs(first, last) if chunk is not None and last > first else []
            for i in range(lo, upto):
                yield times[i], tuple(pairs[los[i] - first : his[i] - first])
            lo = upto


def session_steps(
    chunk: StepChunk,
    position: int,
    end: int,
    session: SessionTimes,
    delta: timedelta,
    derived: Sequence[timedelta],
) -> SessionSteps:
    """The instants of rows ``position`` to ``end`` of ``chunk`` (one session's, in time
    order), each at its bars' end (:func:`~sessionkit.engine.core.windows.bar_end`), with
    the instants at which only time passes (a gap in the data, a derived window's end:
    :func:`~sessionkit.engine.core.windows.gap_instants`,
    :func:`~sessionkit.engine.core.windows.window_end_instants`). Bars of the break have
    no instant; a bar is cut by the break's start and by the close.

    Grouped with C-level calls (a count per start, running sums), not a Python step per
    row.
    """
    if end <= position:
        return SessionSteps()
    starts = chunk.starts
    distinct = sorted(set(starts[position:end]))
    # Each instant's first row: a bisect per instant over the rows, not a step per row.
    los = list(map(bisect_left, repeat(starts), distinct, repeat(position), repeat(end)))
    his = [*los[1:], end]
    length = int(delta.total_seconds())
    close = int(session.close.timestamp())
    pause, resume = session.break_start, session.break_end
    if pause is not None and resume is not None:
        stop, restart = int(pause.timestamp()), int(resume.timestamp())
        cut = bisect_left(distinct, stop)
        after = bisect_left(distinct, restart, cut)
        del distinct[cut:after], los[cut:after], his[cut:after]
        ends = [
            *map(min, map(add, distinct[:cut], repeat(length)), repeat(stop)),
            *map(min, map(add, distinct[cut:], repeat(length)), repeat(close)),
        ]
    else:
        ends = list(map(min, map(add, distinct, repeat(length)), repeat(close)))
    if not distinct:
        return SessionSteps()
    builder = chunk.builder
    times = builder.instants(ends)
    extra = set(gap_instants(session, delta, times))
    if derived:
        extra.update(window_end_instants(session, delta, derived, builder.instants(distinct)))
    extra.difference_update(times)
    if extra:
        rows = [*zip(times, los, his, strict=True)]
        for t in extra:
            at = bisect_left(times, t)
            row = los[at] if at < len(los) else his[-1]
            rows.append((t, row, row))
        rows.sort(key=_first)
        times, los, his = (list(column) for column in zip(*rows, strict=True))
    return SessionSteps(times, los, his, chunk)


def chunk_of_columns(
    columns: Sequence[Sequence], builder: BarBuilder, symbols: Sequence[str] | None = None
) -> StepChunk:
    """A :class:`StepChunk` of ``columns``: names (or indexes into ``symbols``), starts,
    then the open, high, low, close and volume columns."""
    names, starts, *values = columns
    return StepChunk(symbols, names, starts, values, builder)
