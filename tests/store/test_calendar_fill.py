"""Tests of sessionkit.engine.store.calendar_fill: the trading calendar written from exchange_calendars."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from sessionkit.engine.errors import SessionkitError
from sessionkit.engine.store.calendar_fill import (
    CalendarFillError,
    _regular_close_times,
    fill_calendar,
    resolve_exchange,
)
from sessionkit.engine.store.db import CalendarDay, Exchange, init_db
from sqlalchemy import Engine, func, select

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def nyse(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """A database holding the NYSE calendar 2010-01-01..2025-12-31 (read only in tests)."""
    path = tmp_path_factory.mktemp("calendar_fill") / "nyse.sqlite"
    engine = init_db(f"sqlite:///{path}")
    fill_calendar(engine, "NYSE", date(2010, 1, 1), date(2025, 12, 31))
    yield engine
    engine.dispose()


@pytest.fixture
def empty_engine(tmp_path) -> Engine:
    engine = init_db(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    yield engine
    engine.dispose()


def _day(engine: Engine, day: date, exchange: str = "NYSE") -> CalendarDay | None:
    with engine.connect() as connection:
        return connection.execute(
            select(CalendarDay)
            .where(CalendarDay.exchange == exchange)
            .where(CalendarDay.session_date == day)
        ).first()


def _count(engine: Engine, exchange: str, first: date, last: date) -> int:
    with engine.connect() as connection:
        return connection.execute(
            select(func.count())
            .select_from(CalendarDay)
            .where(CalendarDay.exchange == exchange)
            .where(CalendarDay.session_date.between(first, last))
        ).scalar_one()


def test_2024_has_252_nyse_sessions(nyse: Engine) -> None:
    assert _count(nyse, "NYSE", date(2024, 1, 1), date(2024, 12, 31)) == 252


def test_exchange_row_has_the_zone(nyse: Engine) -> None:
    with nyse.connect() as connection:
        rows = connection.execute(select(Exchange.name, Exchange.timezone)).all()
    assert rows == [("NYSE", "America/New_York")]


def test_early_close_2024_11_29_at_13_new_york(nyse: Engine) -> None:
    row = _day(nyse, date(2024, 11, 29))
    assert row is not None
    assert row.close.astimezone(NEW_YORK).time() == time(13, 0)
    assert row.open.astimezone(NEW_YORK).time() == time(9, 30)
    assert row.early_close is True
    christmas_eve = _day(nyse, date(2024, 12, 24))
    assert christmas_eve.early_close is True
    assert christmas_eve.close.astimezone(NEW_YORK).time() == time(13, 0)


def test_regular_day_is_not_an_early_close(nyse: Engine) -> None:
    row = _day(nyse, date(2024, 11, 27))
    assert row.early_close is False
    assert row.close.astimezone(NEW_YORK).time() == time(16, 0)
    # A regular Friday is not flagged either.
    assert _day(nyse, date(2024, 12, 6)).early_close is False


def test_holidays_are_absent(nyse: Engine) -> None:
    assert _day(nyse, date(2011, 1, 17)) is None  # Martin Luther King Jr. Day
    assert _day(nyse, date(2024, 11, 28)) is None  # Thanksgiving
    assert _day(nyse, date(2024, 12, 25)) is None  # Christmas
    assert _day(nyse, date(2024, 12, 28)) is None  # a Saturday


def test_dst_moves_the_utc_open(nyse: Engine) -> None:
    # Daylight saving time starts on 2011-03-13: the 09:30 open moves from 14:30 to 13:30 UTC.
    assert _day(nyse, date(2011, 3, 11)).open == datetime(2011, 3, 11, 14, 30, tzinfo=UTC)
    assert _day(nyse, date(2011, 3, 14)).open == datetime(2011, 3, 14, 13, 30, tzinfo=UTC)


def test_early_closes_match_exchange_calendars(nyse: Engine) -> None:
    import exchange_calendars as xcals

    calendar = xcals.get_calendar("XNYS", start="2010-01-01", end="2025-12-31")
    expected = {ts.date() for ts in calendar.early_closes}
    with nyse.connect() as connection:
        flagged = set(
            connection.execute(
                select(CalendarDay.session_date).where(CalendarDay.early_close.is_(True))
            ).scalars()
        )
    assert flagged == expected
    assert len(flagged) > 30


def test_fill_is_idempotent_and_replaces_the_range(empty_engine: Engine) -> None:
    first = fill_calendar(empty_engine, "NYSE", date(2024, 1, 1), date(2024, 12, 31))
    again = fill_calendar(empty_engine, "NYSE", date(2024, 1, 1), date(2024, 12, 31))
    assert first == again == 252
    assert _count(empty_engine, "NYSE", date(2000, 1, 1), date(2030, 12, 31)) == 252
    # Refilling a sub-range keeps the rest and duplicates nothing.
    assert fill_calendar(empty_engine, "NYSE", "2024-11-01", "2024-11-30") == 20
    assert _count(empty_engine, "NYSE", date(2000, 1, 1), date(2030, 12, 31)) == 252
    # Extending the range adds sessions.
    fill_calendar(empty_engine, "NYSE", date(2025, 1, 1), date(2025, 1, 31))
    assert _count(empty_engine, "NYSE", date(2025, 1, 1), date(2025, 1, 31)) == 20
    with empty_engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Exchange)).scalar_one() == 1


def test_small_range_still_flags_the_early_close(empty_engine: Engine) -> None:
    fill_calendar(empty_engine, "NYSE", date(2024, 11, 25), date(2024, 11, 29))
    assert _day(empty_engine, date(2024, 11, 29)).early_close is True
    assert _day(empty_engine, date(2024, 11, 27)).early_close is False


def test_raw_code_and_nasdaq(empty_engine: Engine) -> None:
    assert resolve_exchange("NYSE") == "XNYS"
    assert resolve_exchange("nasdaq") == "XNAS"
    assert resolve_exchange("XNYS") == "XNYS"
    assert fill_calendar(empty_engine, "XNYS", date(2024, 1, 1), date(2024, 1, 31)) == 21
    assert fill_calendar(empty_engine, "NASDAQ", date(2024, 1, 1), date(2024, 1, 31)) == 21
    with empty_engine.connect() as connection:
        zones = dict(connection.execute(select(Exchange.name, Exchange.timezone)).all())
    assert zones == {"XNYS": "America/New_York", "NASDAQ": "America/New_York"}


def test_another_zone(empty_engine: Engine) -> None:
    fill_calendar(empty_engine, "LSE", date(2024, 12, 23), date(2024, 12, 31))
    with empty_engine.connect() as connection:
        zone = connection.execute(
            select(Exchange.timezone).where(Exchange.name == "LSE")
        ).scalar_one()
    assert zone == "Europe/London"
    eve = _day(empty_engine, date(2024, 12, 24), "LSE")
    assert eve.early_close is True
    assert eve.close.astimezone(ZoneInfo(zone)).time() == time(12, 30)


def test_unknown_exchange_is_a_clear_error(empty_engine: Engine) -> None:
    with pytest.raises(CalendarFillError, match="unknown exchange 'MOON'") as info:
        fill_calendar(empty_engine, "MOON", date(2024, 1, 1), date(2024, 1, 31))
    assert isinstance(info.value, SessionkitError)
    assert "NYSE" in str(info.value)


def test_a_failure_inside_exchange_calendars_is_a_clear_error(
    empty_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With pandas 3, exchange_calendars 4.13 raised NotImplementedError deep in pandas for
    the Orthodox Easter calendars (ASEX ...): ``sessionkit db calendar`` printed a
    traceback and exited 1. Any failure of the library is one message naming it."""
    import exchange_calendars as xcals

    def broken(*_args, **_kwargs):
        raise NotImplementedError("implemented by subclasses")

    monkeypatch.setattr(xcals, "get_calendar", broken)
    with pytest.raises(CalendarFillError) as info:
        fill_calendar(empty_engine, "ASEX", date(2024, 1, 1), date(2024, 3, 31))
    message = str(info.value)
    assert message.startswith("exchange_calendars ") and " (with pandas " in message
    assert message.endswith(
        "failed to build the ASEX (ASEX) calendar for 2024-01-01 to 2024-03-31: "
        "NotImplementedError: implemented by subclasses"
    ), message


def test_reversed_range_is_an_error(empty_engine: Engine) -> None:
    with pytest.raises(CalendarFillError, match="before start date"):
        fill_calendar(empty_engine, "NYSE", date(2024, 2, 1), date(2024, 1, 1))
    with pytest.raises(CalendarFillError, match="not a date"):
        fill_calendar(empty_engine, "NYSE", "2024-13-01", date(2024, 1, 1))


def test_regular_close_is_per_weekday() -> None:
    # An exchange whose Fridays always close at 13:00 has no early closes on Fridays; a
    # Monday closing at 13:00 among 16:00 Mondays is early.
    sessions, closes = [], []
    for week in range(10):
        monday = date.fromordinal(date(2024, 1, 1).toordinal() + 7 * week)
        friday = date.fromordinal(monday.toordinal() + 4)
        sessions += [monday, friday]
        monday_close = time(13, 0) if week == 3 else time(16, 0)
        closes += [
            datetime.combine(monday, monday_close, NEW_YORK),
            datetime.combine(friday, time(13, 0), NEW_YORK),
        ]
    regular = _regular_close_times(sessions, closes, [(None, time(16, 0))])
    assert regular[1::2] == [time(13, 0)] * 10  # Fridays
    assert regular[0::2] == [time(16, 0)] * 10  # Mondays
