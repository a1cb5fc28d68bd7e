"""A session's regular minutes and intraday windows, breaks included.

Pure functions of a session's open, close and break (anything with the attributes of
:class:`SessionTimes`: a :class:`~sessionkit.engine.core.time_manager.TradingSession` or
the pipeline's ``SessionPlan``); no state, no locks, safe from any thread. The session
coordinator uses them for steps and history, the data processor for derived windows, the
quality manager for expected bars and gaps, and the export for window ends.

A session is made of one or two *parts*: ``[open, close)``, or ``[open, break_start)``
and ``[break_end, close)`` when it has a break. The windows of an interval are anchored at
the start of each part and the last window of a part is cut by the part's end, exactly as
``exchange_calendars.ExchangeCalendar.trading_index(start, end, period, intervals=True,
force=True)`` builds them for one session (the tests use that function as the oracle;
``exchange_calendars`` is not imported here).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

__all__ = [
    "SessionTimes",
    "bar_end",
    "bars_between",
    "bars_end",
    "expected_bars",
    "gap_end",
    "in_break",
    "next_bar_start",
    "regular_minutes",
    "session_parts",
    "session_windows",
    "trading_time",
    "window_bounds",
]


class SessionTimes(Protocol):
    """What these functions read of a session (aware instants; breaks may be None)."""

    @property
    def open(self) -> datetime: ...

    @property
    def close(self) -> datetime: ...

    @property
    def break_start(self) -> datetime | None: ...

    @property
    def break_end(self) -> datetime | None: ...


def session_parts(session: SessionTimes) -> tuple[tuple[datetime, datetime], ...]:
    """Return the session's regular trading periods, in order.

    Returns
    -------
    tuple of (datetime, datetime)
        ``((open, close),)``, or ``((open, break_start), (break_end, close))`` when the
        session has a break.
    """
    start, end = session.break_start, session.break_end
    if start is None or end is None:
        return ((session.open, session.close),)
    return ((session.open, start), (end, session.close))


def in_break(session: SessionTimes, t: datetime) -> bool:
    """Whether the instant ``t`` lies in the session's break: ``break_start <= t < break_end``."""
    start, end = session.break_start, session.break_end
    return start is not None and end is not None and start <= t < end


def regular_minutes(session: SessionTimes) -> int:
    """Return the session's trading minutes, the break left out."""
    return sum(int((end - start).total_seconds()) // 60 for start, end in session_parts(session))


def _part(session: SessionTimes, t: datetime) -> tuple[datetime, datetime]:
    """The part a bar starting at ``t`` belongs to (the afternoon from the break's end)."""
    end = session.break_end
    if session.break_start is None or end is None:
        return session.open, session.close
    if t >= end:
        return end, session.close
    return session.open, session.break_start


def window_bounds(
    session: SessionTimes, delta: timedelta, t: datetime
) -> tuple[datetime, datetime]:
    """Return the ``delta`` window that holds the instant ``t`` (a bar's start).

    The window is anchored at the start of ``t``'s part and cut by that part's end.

    Parameters
    ----------
    session
        The session ``t`` belongs to.
    delta
        The window's length (a derived interval).
    t
        An instant of the session outside its break.

    Returns
    -------
    (datetime, datetime)
        The window's start and end.
    """
    start, end = _part(session, t)
    first = start + ((t - start) // delta) * delta
    return first, min(first + delta, end)  # bar_end(session, delta, first), its part known


def bar_end(session: SessionTimes, delta: timedelta, start: datetime) -> datetime:
    """Return when a ``delta`` bar starting at ``start`` ends (becomes visible).

    The engine's one statement of the rule (the coordinator's instants, the processor's
    windows and history, the live replay, the export's ``end`` column and the analysis's
    views all use it): its natural end, or the end of its part when that comes first (a
    bar cut by the break's start or by the close).
    """
    return min(start + delta, _part(session, start)[1])


def next_bar_start(session: SessionTimes, delta: timedelta, start: datetime) -> datetime:
    """Return the start of the ``delta`` bar expected after the one starting at ``start``.

    ``start + delta``, except that a bar reaching the break's start is followed by the
    first bar after the break.
    """
    following = start + delta
    break_start = session.break_start
    if break_start is not None and start < break_start <= following:
        return session.break_end  # type: ignore[return-value]
    return following


def gap_end(session: SessionTimes, following: datetime) -> datetime:
    """Return where a run of missing bars ends, given the start of the next bar present.

    The next bar's start, except that a run ended by the first bar after the break ends
    at the break's start (the break is not missing).
    """
    if following == session.break_end and session.break_start is not None:
        return session.break_start
    return following


def trading_time(session: SessionTimes, start: datetime, end: datetime) -> timedelta:
    """Return how much of ``[start, end)`` is trading time: its length, the break left out."""
    if end <= start:
        return timedelta(0)
    span = end - start
    a, b = session.break_start, session.break_end
    if a is not None and b is not None:
        overlap = min(end, b) - max(start, a)
        if overlap > timedelta(0):
            span -= overlap
    return span


def _ended(part_start: datetime, part_end: datetime, delta: timedelta, now: datetime) -> int:
    """Windows of one part that end at or before ``now``."""
    if now <= part_start:
        return 0
    if now >= part_end:
        return -((part_start - part_end) // delta)  # ceil: the last, cut window counts
    return (now - part_start) // delta


def _started(part_start: datetime, part_end: datetime, delta: timedelta, t: datetime) -> int:
    """Windows of one part that start before ``t``."""
    if t <= part_start:
        return 0
    return -((part_start - min(t, part_end)) // delta)


def expected_bars(session: SessionTimes, delta: timedelta, now: datetime | None = None) -> int:
    """Return how many ``delta`` bars the session has made visible by ``now``.

    That is the number of its windows (see :func:`session_windows`) that end at or before
    ``now``; bars of the break are not expected.

    Parameters
    ----------
    session
        The session.
    delta
        The bar interval.
    now
        An instant; None for the whole session.
    """
    if now is None:
        now = session.close
    return sum(_ended(start, end, delta, now) for start, end in session_parts(session))


def bars_between(session: SessionTimes, delta: timedelta, start: datetime, end: datetime) -> int:
    """Return how many of the session's ``delta`` windows lie within ``[start, end]``.

    A window counts when it starts at or after ``start`` and ends at or before ``end``:
    the bars missing from a gap that runs from ``start`` to ``end``.
    """
    parts = session_parts(session)
    ended = sum(_ended(a, b, delta, end) for a, b in parts)
    before = sum(_started(a, b, delta, start) for a, b in parts)
    return max(0, ended - before)


def bars_end(session: SessionTimes, delta: timedelta, start: datetime, count: int) -> datetime:
    """Return where ``count`` consecutive ``delta`` bars of the session from ``start`` end.

    The inverse of :func:`bars_between`: the bars run from ``start`` (a window's start)
    through the session's windows, the break skipped, so ``bars_between(session, delta,
    start, bars_end(session, delta, start, n)) == n``. ``count`` 0 gives ``start``; more
    bars than the session has left give its close.
    """
    end = start
    for part_start, part_end in session_parts(session):
        if count <= 0:
            break
        if part_end <= start:
            continue
        first = max(start, part_start)
        held = -((first - part_end) // delta)  # windows of the part from ``first`` (ceil)
        if count <= held:
            return min(first + count * delta, part_end)
        count -= held
        end = part_end
    return end


def session_windows(session: SessionTimes, delta: timedelta) -> list[tuple[datetime, datetime]]:
    """Return every ``delta`` window of the session, in order.

    Equal to ``trading_index(session, session, period, intervals=True, force=True)`` of
    ``exchange_calendars`` for the session: each part is divided into windows from its
    start, the last one cut by the part's end.
    """
    windows: list[tuple[datetime, datetime]] = []
    for start, end in session_parts(session):
        t = start
        while t < end:
            windows.append((t, min(t + delta, end)))
            t += delta
    return windows


def gap_instants(
    session: SessionTimes, base: timedelta, instants: Sequence[datetime]
) -> list[datetime]:
    """The ends of the session's ``base`` bars (its grid, :func:`session_windows`) that are
    not among ``instants`` (the instants at which some bar ends, sorted) and come before
    the last of them in their part of the session: the minutes in which no symbol's bar
    ended, while data of that part is still to come. Sorted.

    As instants of their own, time passes through a gap in the data as it does in live
    mode (the feed's silent minutes): quality counts the bars missing minute by minute,
    and the analysis is called at each. After a part's last bar there are none (the data
    is exhausted: time moves on at once, to the break's start or the close).
    """
    if not instants:
        return []
    step = base.total_seconds()
    have = {t.timestamp() for t in instants}
    missing: list[datetime] = []
    position = 0
    for start, end in session_parts(session):
        # The instants of this part: those up to its end.
        last = bisect_right(instants, end, position) - 1
        if last < position:
            continue  # no bar of this part: its time passes at once
        first = start.timestamp()
        until = instants[last].timestamp()  # (a bar cut by the part's end ends at it: last)
        t = first + step
        while t <= until:
            if t not in have:
                missing.append(start + timedelta(seconds=t - first))
            t += step
        position = last + 1
    return missing


def window_end_instants(
    session: SessionTimes,
    base: timedelta,
    deltas: Sequence[timedelta],
    starts: Sequence[datetime],
    *,
    break_start: bool = False,
) -> list[datetime]:
    """The ends of the ``deltas`` windows of the session that hold a bar of ``starts``
    (the ``base`` bars' starts, sorted) whose last bar ends before the window does, before
    the close (and the break's start, unless ``break_start``: a backtest makes it an
    instant of its own): the instants at which only a derived bar becomes visible (its
    window's last base bars are missing). A bar off the grid that ends after its window's
    end adds nothing (its window is emitted with it, as without these instants). Sorted.

    A derived bar is visible at its window's end whatever else is streamed; without these
    instants it waited for the next bar of any symbol, so a symbol's results depended on
    the others in the run.
    """
    if not starts or not deltas:
        return []
    extra: set[datetime] = set()
    for delta in deltas:
        for start, end in session_windows(session, delta):
            if end >= session.close or (end == session.break_start and not break_start):
                continue  # instants of their own already
            i = bisect_left(starts, start)
            if i < len(starts) and starts[i] < end:  # the window holds bars
                # Does one of them end at the window's end? Only its last can.
                last = bisect_left(starts, end, i) - 1
                if bar_end(session, base, starts[last]) < end:
                    extra.add(end)
    return sorted(extra)
