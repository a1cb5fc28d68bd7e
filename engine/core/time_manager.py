"""TimeManager: the trading calendar from the database, and the simulated clock.

:class:`TimeManager` answers calendar questions (is this a trading day, the session's open,
close and break, the next, previous or n-th trading day back) from the ``trading_calendar`` and
``exchanges`` tables, read through SQLAlchemy Core. It keeps, per instance and per
exchange, the sorted list of session dates (a few thousand rows, read once) for the date
arithmetic, and the spec's two-level cache (last query, then LRU) for session rows.

A date outside the calendar's coverage (before its first session or after its last) is
never answered with a guess: it raises
:class:`~sessionkit.engine.errors.CalendarCoverageError`, which names the coverage.

:class:`SimClock` is the simulated clock: the session coordinator sets it, every other
thread (processor, quality manager, analysis engine, UI snapshot) reads it.

Threads: the coordinator is the main user of a :class:`TimeManager`, but every method is
thread-safe (one lock guards the caches and statistics), so other threads may ask it too
and the UI may read its cache statistics.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from ..config import exchange_group_name, parse_date
from ..errors import CalendarCoverageError, DatabaseError
from ..store.db import CalendarDay, Exchange, safe_url
from . import windows
from .bar import interval_delta

__all__ = [
    "CacheStats",
    "ClockNotSetError",
    "SimClock",
    "TimeManager",
    "TradingSession",
]


# -- values ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TradingSession:
    """One trading session: its date, open and close (aware, UTC), early-close flag and break.

    A session with a break (Tokyo's lunch, 11:30-12:30) trades from the open to the break's
    start and from the break's end to the close; the functions of
    :mod:`~sessionkit.engine.core.windows` (regular minutes, expected bars, the windows of
    an interval) take a session, and the methods below are shortcuts to them.
    """

    date: date
    """The session's date in the exchange's calendar."""
    open: datetime
    """The opening instant, timezone-aware, in UTC."""
    close: datetime
    """The closing instant, timezone-aware, in UTC."""
    early_close: bool
    """Whether the session closes earlier than usual (e.g. 13:00 New York time)."""
    tz: tzinfo = field(default=UTC, compare=False, repr=False)
    """The exchange's time zone, for display."""
    break_start: datetime | None = None
    """Start of the session's break (aware, UTC), or None when it has no break."""
    break_end: datetime | None = None
    """End of the session's break (aware, UTC), or None when it has no break."""

    @property
    def local_open(self) -> datetime:
        """The opening instant in the exchange's time zone."""
        return self.open.astimezone(self.tz)

    @property
    def local_close(self) -> datetime:
        """The closing instant in the exchange's time zone."""
        return self.close.astimezone(self.tz)

    @property
    def duration(self) -> timedelta:
        """Length of the session."""
        return self.close - self.open

    @property
    def has_break(self) -> bool:
        """Whether the session has a break."""
        return self.break_start is not None and self.break_end is not None

    def is_open_at(self, t: datetime) -> bool:
        """Whether the market trades at ``t``: open <= t < close and ``t`` not in the break."""
        return self.open <= t < self.close and not windows.in_break(self, t)

    def in_break(self, t: datetime) -> bool:
        """Whether ``t`` lies in the session's break: break_start <= t < break_end."""
        return windows.in_break(self, t)

    @property
    def parts(self) -> tuple[tuple[datetime, datetime], ...]:
        """The regular trading periods: ``((open, close),)`` or morning and afternoon."""
        return windows.session_parts(self)

    @property
    def regular_minutes(self) -> int:
        """Trading minutes of the session, its break left out."""
        return windows.regular_minutes(self)

    def expected_bars(self, interval: str, now: datetime | None = None) -> int:
        """Bars of ``interval`` visible by ``now`` (None: the whole session), break excluded."""
        return windows.expected_bars(self, interval_delta(interval), now)

    def windows(self, interval: str) -> list[tuple[datetime, datetime]]:
        """The session's ``interval`` windows, as ``exchange_calendars``' ``trading_index``
        (``intervals=True, force=True``) gives them: (start, end) pairs."""
        return windows.session_windows(self, interval_delta(interval))


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Statistics of :meth:`TimeManager.get_trading_session`'s two-level cache."""

    hits: int
    """Lookups answered by the last-query cache or the LRU."""
    misses: int
    """Lookups that read the database."""
    size: int
    """Entries in the LRU now."""
    maxsize: int
    """Capacity of the LRU."""

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses), between 0 and 1; 0.0 before any lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


@dataclass(frozen=True, slots=True)
class _Calendar:
    """One exchange's session dates, sorted, with each date's position."""

    exchange: str
    sessions: list[date]
    position: dict[date, int]
    tz: ZoneInfo

    @property
    def first(self) -> date:
        return self.sessions[0]

    @property
    def last(self) -> date:
        return self.sessions[-1]

    def check(self, d: date) -> None:
        if not self.sessions[0] <= d <= self.sessions[-1]:
            raise CalendarCoverageError(self.exchange, d, self.sessions[0], self.sessions[-1])

    def beyond(self, what: str) -> CalendarCoverageError:
        return CalendarCoverageError(self.exchange, what, self.sessions[0], self.sessions[-1])


_MISSING = object()


def _as_date(value: object) -> date:
    """The one place that turns an argument into a calendar date.

    Accepts a :class:`datetime.date` or an ISO ``YYYY-MM-DD`` string. A datetime is
    refused: which zone's date it means would be a guess.
    """
    if type(value) is date:
        return value
    if isinstance(value, datetime):
        raise TypeError(
            f"expected a date, not the datetime {value!r}: take .date() in the zone you mean"
        )
    if isinstance(value, date):
        return date(value.year, value.month, value.day)
    if isinstance(value, str):
        return parse_date(value, "date")  # the engine's one date parser (a ValueError)
    raise TypeError(f"expected a date, not {type(value).__name__}: {value!r}")


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, not {n!r}")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# -- the calendar ---------------------------------------------------------------------------


class TimeManager:
    """The trading calendar of one or more exchanges, read from the database.

    Parameters
    ----------
    engine
        The shared SQLAlchemy engine of a sessionkit database.
    exchange
        The exchange asked about when a method gets no ``exchange`` argument.
    cache_size
        Capacity of the per-instance LRU of session rows (0 keeps only the last query).

    Notes
    -----
    The calendar's *coverage* for an exchange is the range from its first to its last
    session date in the table; every date argument must lie in it. Dates without a row
    inside the coverage are not trading days. The session-date list is read once per
    exchange and kept until :meth:`reload`; :meth:`invalidate_cache` empties only the
    session-row caches. (The spec calls it at each session start; the engine does not: the
    calendar does not change during a run, and emptying the cache would only turn every
    session's lookups into database reads.)
    """

    def __init__(self, engine: Engine, exchange: str = "NYSE", *, cache_size: int = 128) -> None:
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size must be a non-negative integer, not {cache_size!r}")
        self._engine = engine
        self._exchange = exchange_group_name(exchange)
        self._maxsize = cache_size
        self._lock = threading.RLock()
        self._calendars: dict[str, _Calendar] = {}
        # Level 1: the last query, as one (key, result) tuple.
        self._last_query: tuple[tuple[str, date], TradingSession | None] | None = None
        # Level 2: per-instance LRU (not functools.lru_cache, which a method would share
        # across instances and which would keep every instance alive).
        self._lru: OrderedDict[tuple[str, date], TradingSession | None] = OrderedDict()
        self._hits = 0
        self._misses = 0

    def __repr__(self) -> str:
        return f"TimeManager({safe_url(str(self._engine.url))!r}, {self._exchange!r})"

    @property
    def exchange(self) -> str:
        """The default exchange."""
        return self._exchange

    # -- loading ----------------------------------------------------------------------------

    def _calendar(self, exchange: str | None) -> _Calendar:
        name = self._exchange if exchange is None else exchange_group_name(exchange)
        calendar = self._calendars.get(name)
        if calendar is None:
            with self._lock:
                calendar = self._calendars.get(name)
                if calendar is None:
                    calendar = self._load(name)
                    self._calendars[name] = calendar
        return calendar

    def _load(self, exchange: str) -> _Calendar:
        table = CalendarDay.__table__
        where = safe_url(str(self._engine.url))
        try:
            with self._engine.connect() as connection:
                zone = connection.execute(
                    select(Exchange.timezone).where(Exchange.name == exchange)
                ).scalar_one_or_none()
                sessions = list(
                    connection.execute(
                        select(table.c.session_date)
                        .where(table.c.exchange == exchange)
                        .order_by(table.c.session_date)
                    ).scalars()
                )
        except SQLAlchemyError as exc:
            raise DatabaseError(
                f"cannot read the trading calendar of {exchange} from {where}: "
                f"{getattr(exc, 'orig', exc)}"
            ) from None
        if not sessions:
            raise CalendarCoverageError(exchange, None, None, None)
        if zone is None:
            raise DatabaseError(
                f"exchange {exchange!r} has calendar rows but no row in the exchanges table "
                f"of {where}, so its time zone is unknown; refill the calendar with: "
                f"sessionkit db calendar --exchange {exchange}"
            )
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise DatabaseError(
                f"exchange {exchange!r} has an unknown time zone {zone!r} in the exchanges "
                f"table of {where}"
            ) from None
        position = {d: i for i, d in enumerate(sessions)}
        return _Calendar(exchange, sessions, position, tz)

    def _query_session(self, calendar: _Calendar, d: date) -> TradingSession | None:
        table = CalendarDay.__table__
        try:
            with self._engine.connect() as connection:
                row = connection.execute(
                    select(
                        table.c.open,
                        table.c.close,
                        table.c.early_close,
                        table.c.break_start,
                        table.c.break_end,
                    ).where(table.c.exchange == calendar.exchange, table.c.session_date == d)
                ).one_or_none()
        except SQLAlchemyError as exc:
            raise DatabaseError(
                f"cannot read the {calendar.exchange} session of {d} from "
                f"{safe_url(str(self._engine.url))}: {getattr(exc, 'orig', exc)}"
            ) from None
        if row is None:
            return None
        return TradingSession(
            d,
            row.open,
            row.close,
            bool(row.early_close),
            calendar.tz,
            row.break_start,
            row.break_end,
        )

    # -- sessions ---------------------------------------------------------------------------

    def get_trading_session(
        self, d: date | str, *, exchange: str | None = None
    ) -> TradingSession | None:
        """Return the session on ``d``, or None if ``d`` is not a trading day.

        Answered from the last-query cache, else the LRU, else the database.

        Raises
        ------
        CalendarCoverageError
            If ``d`` is outside the calendar's coverage (or there is no calendar).
        DatabaseError
            If the database cannot be read or the exchange has no time zone.
        """
        if type(d) is not date:
            d = _as_date(d)
        key = (self._exchange if exchange is None else exchange, d)
        with self._lock:
            last = self._last_query
            if last is not None and last[0] == key:
                self._hits += 1
                return last[1]
            result = self._lru.get(key, _MISSING)
            if result is not _MISSING:
                self._lru.move_to_end(key)
                self._hits += 1
            else:
                calendar = self._calendar(key[0])
                calendar.check(d)
                result = self._query_session(calendar, d) if d in calendar.position else None
                self._misses += 1
                if self._maxsize:
                    self._lru[key] = result
                    if len(self._lru) > self._maxsize:
                        self._lru.popitem(last=False)
            self._last_query = (key, result)
            return result  # type: ignore[return-value]

    def is_trading_day(self, d: date | str, *, exchange: str | None = None) -> bool:
        """Whether ``d`` is a trading day.

        Raises
        ------
        CalendarCoverageError
            If ``d`` is outside the calendar's coverage.
        """
        d = _as_date(d)
        calendar = self._calendar(exchange)
        calendar.check(d)
        return d in calendar.position

    def get_first_trading_date(self, d: date | str, *, exchange: str | None = None) -> date:
        """Return ``d`` if it is a trading day, else the next one (inclusive search).

        Raises
        ------
        CalendarCoverageError
            If ``d`` is outside the coverage, or no session follows it inside it.
        """
        d = _as_date(d)
        calendar = self._calendar(exchange)
        calendar.check(d)
        if d in calendar.position:
            return d
        return self.get_next_trading_date(d, 1, exchange=exchange)

    def get_next_trading_date(
        self, d: date | str, n: int = 1, *, exchange: str | None = None
    ) -> date:
        """Return the n-th trading day strictly after ``d`` (``d`` need not be one).

        Raises
        ------
        ValueError
            If ``n`` is not a positive integer.
        CalendarCoverageError
            If ``d`` or the answer is outside the calendar's coverage.
        """
        d = _as_date(d)
        _check_n(n)
        calendar = self._calendar(exchange)
        calendar.check(d)
        i = bisect_right(calendar.sessions, d) + n - 1
        if i >= len(calendar.sessions):
            raise calendar.beyond(f"the {_ordinal(n)} trading day after {d}")
        return calendar.sessions[i]

    def get_previous_trading_date(
        self, d: date | str, n: int = 1, *, exchange: str | None = None
    ) -> date:
        """Return the n-th trading day strictly before ``d`` (``d`` need not be one).

        Raises
        ------
        ValueError
            If ``n`` is not a positive integer.
        CalendarCoverageError
            If ``d`` or the answer is outside the calendar's coverage.
        """
        d = _as_date(d)
        _check_n(n)
        calendar = self._calendar(exchange)
        calendar.check(d)
        i = bisect_left(calendar.sessions, d) - n
        if i < 0:
            raise calendar.beyond(f"the {_ordinal(n)} trading day before {d}")
        return calendar.sessions[i]

    def count_back_trading_days(
        self, end_date: date | str, n: int, *, exchange: str | None = None
    ) -> date:
        """Return the n-th trading day counting back from ``end_date``, inclusive.

        Counting starts at ``end_date`` if it is a trading day, else at the last trading
        day before it (which counts as the first). So the window ``[result, end_date]``
        always holds exactly ``n`` sessions: ``n=1`` gives the last session on or before
        ``end_date``. This is the start of a trailing window of ``n`` days ending at
        ``end_date``.

        Raises
        ------
        ValueError
            If ``n`` is not a positive integer.
        CalendarCoverageError
            If ``end_date`` or the answer is outside the calendar's coverage.
        """
        end_date = _as_date(end_date)
        _check_n(n)
        calendar = self._calendar(exchange)
        calendar.check(end_date)
        i = bisect_right(calendar.sessions, end_date) - n
        if i < 0:
            raise calendar.beyond(f"the {_ordinal(n)} trading day back from {end_date}")
        return calendar.sessions[i]

    def sessions_between(
        self, start: date | str, end: date | str, *, exchange: str | None = None
    ) -> list[date]:
        """Return the trading days from ``start`` to ``end``, both inclusive, in order.

        Empty if ``start`` is after ``end``.

        Raises
        ------
        CalendarCoverageError
            If ``start`` or ``end`` is outside the calendar's coverage.
        """
        start, end = _as_date(start), _as_date(end)
        calendar = self._calendar(exchange)
        calendar.check(start)
        calendar.check(end)
        sessions = calendar.sessions
        return sessions[bisect_left(sessions, start) : bisect_right(sessions, end)]

    def trading_days_between(
        self, start: date | str, end: date | str, *, exchange: str | None = None
    ) -> int:
        """Return how many trading days lie from ``start`` to ``end``, both inclusive.

        0 if ``start`` is after ``end``.

        Raises
        ------
        CalendarCoverageError
            If ``start`` or ``end`` is outside the calendar's coverage.
        """
        start, end = _as_date(start), _as_date(end)
        calendar = self._calendar(exchange)
        calendar.check(start)
        calendar.check(end)
        sessions = calendar.sessions
        return max(0, bisect_right(sessions, end) - bisect_left(sessions, start))

    def coverage(self, *, exchange: str | None = None) -> tuple[date, date]:
        """Return the first and last session dates in the calendar.

        Raises
        ------
        CalendarCoverageError
            If the database has no calendar for the exchange.
        """
        calendar = self._calendar(exchange)
        return calendar.first, calendar.last

    @property
    def timezone(self) -> ZoneInfo:
        """The default exchange's time zone, from the ``exchanges`` table."""
        return self._calendar(None).tz

    def get_timezone(self, *, exchange: str | None = None) -> ZoneInfo:
        """Return an exchange's time zone, from the ``exchanges`` table.

        Raises
        ------
        DatabaseError
            If the exchange has no row in the ``exchanges`` table.
        CalendarCoverageError
            If the database has no calendar for the exchange.
        """
        return self._calendar(exchange).tz

    def sim_clock(self, start: datetime | None = None, *, exchange: str | None = None) -> SimClock:
        """Return a new :class:`SimClock` that displays the exchange's time zone."""
        return SimClock(self.get_timezone(exchange=exchange), start)

    # -- cache ------------------------------------------------------------------------------

    def invalidate_cache(self) -> None:
        """Empty both levels of the session cache (for example after the calendar changed).

        The statistics are kept; the session-date lists are kept (see :meth:`reload`).
        """
        with self._lock:
            self._last_query = None
            self._lru.clear()

    def reload(self) -> None:
        """Forget everything read from the database (after the calendar was refilled)."""
        with self._lock:
            self._calendars.clear()
            self._last_query = None
            self._lru.clear()

    def cache_info(self) -> CacheStats:
        """Return the cache's hits, misses, size and capacity (``.hit_rate`` too)."""
        with self._lock:
            return CacheStats(self._hits, self._misses, len(self._lru), self._maxsize)

    def reset_cache_stats(self) -> None:
        """Set the hit and miss counters back to zero."""
        with self._lock:
            self._hits = 0
            self._misses = 0


# -- the simulated clock --------------------------------------------------------------------


class ClockNotSetError(RuntimeError):
    """The simulated clock was read before it was set."""


class SimClock:
    """The simulated clock: an aware UTC instant, set by one thread, read by any.

    Parameters
    ----------
    tz
        The zone used by :meth:`local` for display (the exchange's), a tzinfo or an IANA
        name.
    start
        The initial instant (aware); None leaves the clock unset until :meth:`set`.

    Notes
    -----
    :meth:`now` is a single attribute read, so readers never take a lock; :meth:`set` and
    :meth:`advance` are serialised by a lock.
    """

    def __init__(self, tz: tzinfo | str = UTC, start: datetime | None = None) -> None:
        self._tz: tzinfo = ZoneInfo(tz) if isinstance(tz, str) else tz
        self._lock = threading.Lock()
        self._now: datetime | None = None
        if start is not None:
            self.set(start)

    def __repr__(self) -> str:
        return f"SimClock({self._tz}, {self._now!r})"

    @property
    def tz(self) -> tzinfo:
        """The display time zone."""
        return self._tz

    @property
    def is_set(self) -> bool:
        """Whether the clock has been set."""
        return self._now is not None

    def now(self) -> datetime:
        """Return the simulated instant, aware, in UTC.

        Raises
        ------
        ClockNotSetError
            If the clock has not been set.
        """
        now = self._now
        if now is None:
            raise ClockNotSetError("the simulated clock has not been set yet")
        return now

    def local(self) -> datetime:
        """Return the simulated instant in the display time zone."""
        return self.now().astimezone(self._tz)

    def set(self, t: datetime) -> None:
        """Set the simulated instant (kept in UTC).

        Raises
        ------
        ValueError
            If ``t`` is naive.
        """
        if t.tzinfo is not UTC:
            if t.tzinfo is None or t.utcoffset() is None:
                raise ValueError(f"naive datetime {t!r}: the clock holds aware instants only")
            t = t.astimezone(UTC)
        self._now = t  # one attribute store: atomic, readers take no lock

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new instant.

        Raises
        ------
        ValueError
            If ``delta`` is negative.
        ClockNotSetError
            If the clock has not been set.
        """
        if delta < timedelta(0):
            raise ValueError(f"the clock only moves forward, not by {delta}")
        with self._lock:
            if self._now is None:
                raise ClockNotSetError("the simulated clock has not been set yet")
            self._now = self._now + delta
            return self._now
