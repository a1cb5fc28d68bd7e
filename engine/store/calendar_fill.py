"""Fill the ``trading_calendar`` and ``exchanges`` tables from ``exchange_calendars``.

Used by the ``sessionkit db calendar`` command and the sample database's build script, on
the caller's (main) thread; no engine thread calls it. The engine itself never hard-codes a
holiday or a session time: every session, open, close, early close and break (lunch)
comes from the rows written here.

``exchange_calendars`` costs about 0.4 s to import, so it is imported inside
:func:`fill_calendar` only.
"""

from __future__ import annotations

import warnings
from collections import Counter
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, bindparam, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from ..config import exchange_group_name, parse_date
from ..errors import CalendarFillError, ConfigError, DatabaseError
from .db import CalendarDay, Exchange, safe_url

DEFAULT_START = date(2000, 1, 1)
"""First date filled when none is given."""
DEFAULT_END = date(2030, 12, 31)
"""Last date filled when none is given."""

EXCHANGE_CODES: dict[str, str] = {
    "NYSE": "XNYS",
    "NASDAQ": "XNAS",
    "AMEX": "XASE",
    "ARCA": "ARCX",
    "CBOE": "XCBF",
    "LSE": "XLON",
    "TSX": "XTSE",
    "XETRA": "XETR",
    "EURONEXT": "XPAR",
    "JPX": "XTKS",
    "HKEX": "XHKG",
    "ASX": "XASX",
}
"""sessionkit exchange group names and their ``exchange_calendars`` codes.

Any other name that ``exchange_calendars`` knows (a code such as ``XNYS`` or one of its
aliases) is accepted as is.
"""

_MIN_SESSIONS_FOR_WEEKDAY_MODE = 8


def resolve_exchange(exchange: str) -> str:
    """Return the ``exchange_calendars`` code for a sessionkit exchange group name.

    Parameters
    ----------
    exchange
        A group name (``NYSE``, ``NASDAQ``, ...; case-insensitive) or a raw
        ``exchange_calendars`` code or alias (``XNYS``).

    Returns
    -------
    str
        The code to pass to ``exchange_calendars.get_calendar``.

    Raises
    ------
    CalendarFillError
        If neither sessionkit nor ``exchange_calendars`` knows the name.
    """
    import exchange_calendars as xcals

    name = exchange_group_name(exchange)
    if name in EXCHANGE_CODES:
        return EXCHANGE_CODES[name]
    known = set(xcals.get_calendar_names(include_aliases=True))
    for candidate in (exchange.strip(), name):
        if candidate in known:
            return candidate
    raise CalendarFillError(
        f"unknown exchange {exchange!r}: use one of {', '.join(sorted(EXCHANGE_CODES))} "
        "or an exchange_calendars code such as XNYS (see exchange_calendars.get_calendar_names())"
    )


def _as_date(value: date | str, what: str) -> date:
    """``value`` as a date (the engine's one date parser, naming ``what`` on failure)."""
    if isinstance(value, datetime):
        return value.date()
    try:
        return parse_date(value, what)
    except ConfigError as exc:
        raise CalendarFillError(str(exc)) from None


def _regular_close_times(
    sessions: list[date], closes: list[datetime], close_times: list[tuple[date | None, time]]
) -> list[time]:
    """The regular close (local time of day) of each session.

    The regular close of a session is the most common close of its weekday among the
    filled sessions under the same prevailing ``close_times`` entry; a weekday with too few
    sessions to tell falls back to that prevailing entry.
    """
    eras = [start for start, _ in close_times]

    def era_of(day: date) -> int:
        index = 0
        for i, start in enumerate(eras):
            if start is None or day >= start:
                index = i
        return index

    keys = [(era_of(day), day.weekday()) for day in sessions]
    by_key: dict[tuple[int, int], Counter[time]] = {}
    for key, close in zip(keys, closes, strict=True):
        by_key.setdefault(key, Counter())[close.time()] += 1
    regular: dict[tuple[int, int], time] = {}
    for key, counter in by_key.items():
        if counter.total() >= _MIN_SESSIONS_FOR_WEEKDAY_MODE:
            # The latest of the most common closes, so a tie never hides an early close.
            top = max(counter.values())
            regular[key] = max(t for t, n in counter.items() if n == top)
        else:
            regular[key] = close_times[key[0]][1]
    return [regular[key] for key in keys]


def _breaks(schedule) -> tuple[list[datetime | None], list[datetime | None]]:
    """Each session's break start and end (aware, UTC) from a schedule; None without one."""

    def column(name: str) -> list[datetime | None]:
        if name not in schedule.columns:
            return [None] * len(schedule)
        return [None if ts is None or ts != ts else ts.to_pydatetime() for ts in schedule[name]]

    starts, ends = column("break_start"), column("break_end")
    # A session has a break only when both ends are known.
    pairs = [
        (s, e) if s is not None and e is not None else (None, None)
        for s, e in zip(starts, ends, strict=True)
    ]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _open_calendar(exchange: str, first: date, last: date):
    """The ``exchange_calendars`` calendar of ``exchange`` from ``first`` to ``last``."""
    code = resolve_exchange(exchange)
    import exchange_calendars as xcals

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exchange_calendars' own pandas deprecations
            return xcals.get_calendar(code, start=first.isoformat(), end=last.isoformat())
    except ValueError as exc:
        raise CalendarFillError(
            f"cannot build the {exchange_group_name(exchange)} ({code}) calendar for {first} to "
            f"{last}: {exc}"
        ) from None
    except Exception as exc:  # a failure inside exchange_calendars (or pandas): no traceback
        from importlib.metadata import version

        raise CalendarFillError(
            f"exchange_calendars {version('exchange_calendars')} (with pandas "
            f"{version('pandas')}) failed to build the {exchange_group_name(exchange)} ({code}) "
            f"calendar for {first} to {last}: {exc.__class__.__name__}: {exc}"
        ) from None


def fill_breaks(engine: Engine, exchange: str) -> int:
    """Set the break columns of an exchange's stored sessions from ``exchange_calendars``.

    Used by ``sessionkit db init`` after it added the break columns to an older database:
    only ``break_start`` and ``break_end`` of the rows already stored are written (over the
    stored range, first to last session); no row is added or removed.

    Parameters
    ----------
    engine
        Engine of a database that has sessionkit's (upgraded) schema.
    exchange
        The exchange group name stored in the database.

    Returns
    -------
    int
        Number of stored sessions that have a break.

    Raises
    ------
    CalendarFillError
        If ``exchange_calendars`` does not know the exchange or its stored range.
    DatabaseError
        If the rows cannot be read or written.
    """
    table = CalendarDay.__table__
    try:
        with engine.connect() as connection:
            days = list(
                connection.execute(
                    select(table.c.session_date)
                    .where(table.c.exchange == exchange)
                    .order_by(table.c.session_date)
                ).scalars()
            )
    except SQLAlchemyError as exc:
        raise DatabaseError(_write_error(engine, exchange, exc, "read")) from None
    if not days:
        return 0
    calendar = _open_calendar(exchange, days[0], days[-1])
    schedule = calendar.schedule
    starts, ends = _breaks(schedule)
    stored = set(days)
    rows = [
        {"day": ts.date(), "start": s, "end": e}
        for ts, s, e in zip(schedule.index, starts, ends, strict=True)
        if s is not None and ts.date() in stored
    ]
    if rows:
        statement = (
            update(CalendarDay)
            .where(CalendarDay.exchange == exchange)
            .where(CalendarDay.session_date == bindparam("day"))
            .values(break_start=bindparam("start"), break_end=bindparam("end"))
        )
        try:
            with engine.begin() as connection:
                connection.execute(statement, rows)
        except SQLAlchemyError as exc:
            raise DatabaseError(_write_error(engine, exchange, exc, "write")) from None
    return len(rows)


def _write_error(engine: Engine, group: str, exc: SQLAlchemyError, verb: str) -> str:
    url = safe_url(engine.url.render_as_string(hide_password=False))
    return f"cannot {verb} the {group} calendar {'to' if verb == 'write' else 'from'} {url}: {getattr(exc, 'orig', exc)}"


def fill_calendar(
    engine: Engine,
    exchange: str = "NYSE",
    start: date | str = DEFAULT_START,
    end: date | str = DEFAULT_END,
) -> int:
    """Write the trading sessions of ``exchange`` from ``start`` to ``end`` into the database.

    The ``exchanges`` row (the group name and its time zone) is inserted or updated, and
    the calendar rows of the group in ``[start, end]`` are replaced, so running it twice
    changes nothing.

    Parameters
    ----------
    engine
        Engine of a database that has sessionkit's schema.
    exchange
        The exchange group name stored in the database (``NYSE``, ``NASDAQ``, ...) or a
        raw ``exchange_calendars`` code (``XNYS``), stored as given (upper-cased).
    start, end
        First and last dates to fill, inclusive (``date`` or ``YYYY-MM-DD``).

    Returns
    -------
    int
        Number of sessions written.

    Raises
    ------
    CalendarFillError
        If the exchange is unknown, ``end`` is before ``start``, or the range lies outside
        what ``exchange_calendars`` covers.
    DatabaseError
        If the rows cannot be written.
    """
    first = _as_date(start, "start date")
    last = _as_date(end, "end date")
    if last < first:
        raise CalendarFillError(f"end date {last} is before start date {first}")
    group = exchange_group_name(exchange)
    calendar = _open_calendar(exchange, first, last)

    zone = ZoneInfo(str(calendar.tz))
    schedule = calendar.schedule
    sessions = [ts.date() for ts in schedule.index]
    opens = [ts.to_pydatetime() for ts in schedule["open"]]
    closes = [ts.to_pydatetime() for ts in schedule["close"]]
    break_starts, break_ends = _breaks(schedule)
    local_closes = [c.astimezone(zone) for c in closes]
    close_times = [
        (None if start_ is None else start_.date(), t) for start_, t in calendar.close_times
    ]
    regular = _regular_close_times(sessions, local_closes, close_times)
    rows = [
        {
            "exchange": group,
            "session_date": day,
            "open": open_,
            "close": close,
            # A close on a later local day than the session (overnight markets) is never early.
            "early_close": local.date() == day and local.time() < regular_close,
            "break_start": break_start,
            "break_end": break_end,
        }
        for day, open_, close, local, regular_close, break_start, break_end in zip(
            sessions, opens, closes, local_closes, regular, break_starts, break_ends, strict=True
        )
    ]
    try:
        with engine.begin() as connection:
            connection.execute(delete(Exchange).where(Exchange.name == group))
            connection.execute(insert(Exchange), [{"name": group, "timezone": zone.key}])
            connection.execute(
                delete(CalendarDay)
                .where(CalendarDay.exchange == group)
                .where(CalendarDay.session_date >= first)
                .where(CalendarDay.session_date <= last)
            )
            if rows:
                connection.execute(insert(CalendarDay), rows)
    except SQLAlchemyError as exc:
        raise DatabaseError(_write_error(engine, group, exc, "write")) from None
    return len(rows)
