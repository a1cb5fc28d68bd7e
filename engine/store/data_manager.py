"""Bulk reads of stored bars with SQLAlchemy Core (never an ORM object per bar).

Used by the session coordinator thread (history and each session's bars), the data
quality manager thread (gap filling in live mode), the CLI and scripts. A
:class:`DataManager` holds only the shared engine; each call opens its own connection, so
one instance may be used from several threads.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import repeat
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Engine,
    Select,
    bindparam,
    func,
    select,
    type_coerce,
)
from sqlalchemy.exc import SQLAlchemyError

from ..config import SessionConfig
from ..core.bar import Bar
from ..errors import ConfigError
from .column_reader import RawColumns
from .db import BarRecord, CalendarDay, Exchange, cannot_read, safe_url

_T = BarRecord.__table__.c
_new = tuple.__new__
"""``_new(Bar, fields)`` builds a Bar from a tuple of its fields at C level (no Python
frame per bar, as ``map(_new, repeat(Bar), rows)``: about 15% faster than a ``partial``)."""

StepColumns = tuple[
    Sequence[str],
    Sequence[int],
    Sequence[float],
    Sequence[float],
    Sequence[float],
    Sequence[float],
    Sequence[float],
]
"""Bars as columns, ordered by start then symbol: symbol, start (epoch seconds), open,
high, low, close, volume."""
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

    def _to_bars(self, rows: Sequence[Sequence]) -> list[Bar]:
        """Bars of ``(start, open, high, low, close, volume)`` rows (built column-wise)."""
        if not rows:
            return []
        starts, *values = zip(*rows, strict=True)
        return list(self.bars_of(starts, values))

    def bars_of(self, starts: Sequence[int], values: Sequence[Sequence]) -> Iterator[Bar]:
        """Bars of columns: start epochs and the open, high, low, close and volume columns.

        Built at C level (no Python frame per bar); the start ``datetime`` is one object per
        distinct instant, shared by every bar that starts then (and by later reads).
        """
        return map(_new, repeat(Bar), zip(self.instants(starts), *values, strict=True))

    def instants(self, epochs: Iterable[int]) -> list[datetime]:
        """The aware UTC ``datetime`` of each of ``epochs`` (seconds): one object per
        distinct epoch, shared with the bars' starts (:meth:`bars_of`)."""
        times = self._times
        if len(times) > 500_000:
            # A new dict, not cleared: another thread in the middle of this method keeps
            # the one it filled (the bars of a live session's backfill are built on the
            # quality manager's thread while the coordinator builds its own).
            self._times = times = {}
        epochs = epochs if isinstance(epochs, Sequence) else list(epochs)
        fromts = datetime.fromtimestamp
        for ts in set(epochs).difference(times):
            times[ts] = fromts(ts, UTC)
        return list(map(times.__getitem__, epochs))

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

    def step_query(
        self,
        symbols: Sequence[str],
        interval: str,
        start: int | BindParameter,
        end: int | BindParameter,
        order: Literal["start", "symbol"] = "start",
    ) -> Select:
        """The query of several symbols' bars starting in ``[start, end)`` (epoch seconds),
        ordered by start then symbol (``order="symbol"``: by symbol then start, the index's
        own order, for a history read symbol by symbol): symbol, start (epoch seconds),
        open, high, low, close, volume."""
        query = select(_T.symbol, _START, _T.open, _T.high, _T.low, _T.close, _T.volume).where(
            _T.symbol.in_(list(symbols)),
            _T.interval == interval,
            _START >= start,
            _START < end,
        )
        if order == "symbol":
            return query.order_by(_T.symbol, _T.start)
        return query.order_by(_T.start, _T.symbol)

    def step_statement(
        self, symbols: Sequence[str], interval: str, order: Literal["start", "symbol"] = "start"
    ) -> StepStatement:
        """:meth:`step_query` compiled once for this database's DBAPI, its bounds left as
        parameters (for a :class:`~sessionkit.engine.store.column_reader.ColumnReader`)."""
        lo, hi = bindparam("lo", 0, type_=BigInteger), bindparam("hi", 0, type_=BigInteger)
        compiled = self.step_query(symbols, interval, lo, hi, order).compile(
            dialect=self.database.dialect, compile_kwargs={"render_postcompile": True}
        )
        values = compiled.params
        order = tuple(compiled.positiontup or ())
        return StepStatement(compiled.string, tuple(values[name] for name in order), order)

    def get_step_columns(
        self, symbols: Sequence[str], interval: str, start: int, end: int
    ) -> StepColumns:
        """Several symbols' bars starting in ``[start, end)`` (epoch seconds) as columns,
        read in this process (see :meth:`bars_of`)."""
        rows = self._fetch(self.step_query(symbols, interval, start, end))
        if not rows:
            return ((), (), (), (), (), (), ())
        return tuple(zip(*rows, strict=True))  # type: ignore[return-value]

    def step_pairs(self, columns: StepColumns) -> list[tuple[str, Bar]]:
        """``(symbol, bar)`` pairs of ``columns``, built without per-row Python code.

        Bars of one instant share one start ``datetime``.
        """
        names, starts, *values = columns
        return list(zip(names, self.bars_of(starts, values), strict=True))

    def symbol_bars(self, raw: RawColumns) -> dict[str, list[Bar]]:
        """Each symbol's bars of a reader's answer ordered by symbol (``order="symbol"``),
        built as :meth:`step_pairs` builds them."""
        symbols, index, starts, *values = raw
        out: dict[str, list[Bar]] = {}
        position = 0
        for number, symbol in enumerate(symbols):  # in the order of their first rows
            end = bisect_right(index, number, position)
            out[symbol] = list(
                self.bars_of(starts[position:end], [column[position:end] for column in values])
            )
            position = end
        return out

    def get_step_bars(
        self, symbols: Sequence[str], interval: str, start: datetime, end: datetime
    ) -> list[tuple[str, Bar]]:
        """Bars of several symbols starting in ``[start, end)``, ordered by start then symbol."""
        lo, hi = int(start.timestamp()), int(end.timestamp())
        return self.step_pairs(self.get_step_columns(symbols, interval, lo, hi))


@dataclass(frozen=True, slots=True)
class StepStatement:
    """A compiled step query: positional SQL and its parameters, ``lo`` and ``hi`` (the
    bounds) to be filled in by :meth:`params`."""

    sql: str
    values: tuple
    names: tuple[str, ...]

    def params(self, lo: int, hi: int) -> tuple:
        """The parameters for bars starting in ``[lo, hi)`` (epoch seconds)."""
        bounds = {"lo": lo, "hi": hi}
        return tuple(
            bounds.get(name, value) for name, value in zip(self.names, self.values, strict=True)
        )


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
    DatabaseError
        If the database cannot be read (a damaged SQLite file, for one).
    """
    url = safe_url(engine.url.render_as_string(hide_password=False))
    try:
        _check_against_database(config, engine, url, source)
    except SQLAlchemyError as exc:
        raise cannot_read(url, exc) from None


def _check_against_database(config: SessionConfig, engine: Engine, url: str, source: str) -> None:
    with engine.connect() as connection:
        exchanges = set(connection.execute(select(Exchange.name)).scalars())
        if config.exchange_group not in exchanges:
            known = ", ".join(sorted(exchanges)) or "none"
            raise ConfigError(
                config.origin_of("exchange_group", source),
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
                config.origin_of("exchange_group", source),
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
        raise ConfigError(  # the symbols, or the interval they lack, may come from an option
            config.origin_of(("streams.symbols", "streams.interval"), source),
            "streams.symbols",
            ", ".join(repr(s) for s in missing)
            + f" not in the database {url} at interval {config.streams.interval!r}"
            + f" (it has: {listed})",
        )
