"""Bulk reads of stored bars with SQLAlchemy Core (never an ORM object per bar).

Used by the session coordinator thread (history and each session's bars), the data
quality manager thread (gap filling in live mode), the CLI and scripts. A
:class:`DataManager` holds only the shared engine; each call opens its own connection, so
one instance may be used from several threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Engine, func, select, type_coerce

from ..config import SessionConfig
from ..core.bar import Bar
from ..errors import ConfigError
from .db import BarRecord, CalendarDay, Exchange, safe_url

_T = BarRecord.__table__.c
_START = type_coerce(_T.start, BigInteger)  # raw epoch seconds: no per-row conversion


class DataManager:
    """Reads bars from the database.

    Parameters
    ----------
    database
        The shared SQLAlchemy ``Engine`` (called ``database`` here: ``engine`` names the
        ``sessionkit.engine`` package).
    tz
        Exchange time zone: dates given to :meth:`get_bars` are exchange dates.
    """

    def __init__(self, database: Engine, tz: str | ZoneInfo = "America/New_York") -> None:
        self.database = database
        self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        self._times: dict[int, datetime] = {}

    def _instant(self, day: date) -> int:
        return int(datetime.combine(day, time(0), self.tz).timestamp())

    def _to_bars(self, rows: Iterable[Sequence]) -> list[Bar]:
        # One datetime per distinct instant, shared by every symbol's bar at that instant.
        times = self._times
        fromts = datetime.fromtimestamp
        new = tuple.__new__
        out = []
        append = out.append
        for ts, o, h, lo, c, v in rows:
            start = times.get(ts)
            if start is None:
                start = times[ts] = fromts(ts, UTC)
            append(new(Bar, (start, o, h, lo, c, v)))
        if len(times) > 500_000:
            times.clear()
        return out

    def _fetch(self, query) -> list[tuple]:
        # Every column is a plain int, float or str that needs no result processing, so the
        # DBAPI cursor's own tuples are read directly: SQLAlchemy's Row objects cost ~40%.
        with self.database.connect() as connection:
            return connection.execute(query).cursor.fetchall()

    def get_bars(self, symbol: str, interval: str, start_date: date, end_date: date) -> list[Bar]:
        """Bars of ``symbol`` at ``interval`` starting on ``start_date`` to ``end_date``.

        Both dates are inclusive exchange dates (a day runs from midnight to midnight in the
        exchange's zone, so pre- and post-market bars belong to their day).

        Returns
        -------
        list of Bar
            Ordered by start time; start times are aware UTC datetimes.
        """
        lo = self._instant(start_date)
        hi = self._instant(end_date + timedelta(days=1))
        return self.get_bars_between(symbol, interval, lo, hi)

    def get_bars_between(
        self, symbol: str, interval: str, start: datetime | int, end: datetime | int
    ) -> list[Bar]:
        """Bars of ``symbol`` whose start lies in ``[start, end)`` (aware datetimes or epoch s)."""
        lo = start if isinstance(start, int) else int(start.timestamp())
        hi = end if isinstance(end, int) else int(end.timestamp())
        query = (
            select(_START, _T.open, _T.high, _T.low, _T.close, _T.volume)
            .where(_T.symbol == symbol, _T.interval == interval, _START >= lo, _START < hi)
            .order_by(_T.start)
        )
        return self._to_bars(self._fetch(query))

    def get_step_bars(
        self, symbols: Sequence[str], interval: str, start: datetime, end: datetime
    ) -> list[tuple[str, Bar]]:
        """Bars of several symbols starting in ``[start, end)``, ordered by start then symbol."""
        lo, hi = int(start.timestamp()), int(end.timestamp())
        query = (
            select(_T.symbol, _START, _T.open, _T.high, _T.low, _T.close, _T.volume)
            .where(
                _T.symbol.in_(list(symbols)),
                _T.interval == interval,
                _START >= lo,
                _START < hi,
            )
            .order_by(_T.start, _T.symbol)
        )
        times = self._times
        fromts = datetime.fromtimestamp
        new = tuple.__new__
        out: list[tuple[str, Bar]] = []
        append = out.append
        for symbol, ts, o, h, lo, c, v in self._fetch(query):
            start = times.get(ts)
            if start is None:
                start = times[ts] = fromts(ts, UTC)
            append((symbol, new(Bar, (start, o, h, lo, c, v))))
        return out


KNOWN_SYMBOLS_SHOWN = 20
"""How many of the database's symbols an unknown-symbol error lists."""


def check_against_database(
    config: SessionConfig, engine: Engine, *, source: str = "<config>"
) -> None:
    """Check what only the database can tell: the exchange's calendar and the symbols.

    Raises
    ------
    ConfigError
        If the exchange group has no calendar or a symbol has no bars at the base interval.
    """
    url = safe_url(engine.url.render_as_string(hide_password=False))
    with engine.connect() as connection:
        exchanges = set(connection.execute(select(Exchange.name)).scalars())
        if config.exchange_group not in exchanges:
            known = ", ".join(sorted(exchanges)) or "none"
            raise ConfigError(
                config.origin_of("exchange_group") if source == config.source else source,
                "exchange_group",
                f"unknown exchange group {config.exchange_group!r} (calendars in {url}: {known})",
            )
        has_days = connection.execute(
            select(func.count())
            .select_from(CalendarDay)
            .where(CalendarDay.exchange == config.exchange_group)
        ).scalar_one()
        if not has_days:
            raise ConfigError(
                config.origin_of("exchange_group") if source == config.source else source,
                "exchange_group",
                f"the calendar of {config.exchange_group!r} in {url} is empty",
            )
        present = set(
            connection.execute(
                select(BarRecord.symbol)
                .where(BarRecord.interval == config.streams.interval)
                .where(BarRecord.symbol.in_(config.streams.symbols))
                .distinct()
            ).scalars()
        )
    missing = [s for s in config.streams.symbols if s not in present]
    if missing:
        with engine.connect() as connection:
            known = list(
                connection.execute(
                    select(BarRecord.symbol)
                    .where(BarRecord.interval == config.streams.interval)
                    .distinct()
                    .order_by(BarRecord.symbol)
                    .limit(KNOWN_SYMBOLS_SHOWN + 1)
                ).scalars()
            )
        listed = ", ".join(known[:KNOWN_SYMBOLS_SHOWN]) or "none"
        if len(known) > KNOWN_SYMBOLS_SHOWN:
            listed += ", ... (sessionkit db info lists them all)"
        raise ConfigError(
            config.origin_of("streams.symbols") if source == config.source else source,
            "streams.symbols",
            ", ".join(repr(s) for s in missing)
            + f" not in the database {url} at interval {config.streams.interval!r}"
            + f" (it has: {listed})",
        )
