"""Tests of TimeManager (component 3) and SimClock, on the real NYSE calendar 2010-2030."""

from __future__ import annotations

import gc
import threading
import weakref
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sessionkit.engine.core.time_manager import (
    ClockNotSetError,
    SimClock,
    TimeManager,
    TradingSession,
)
from sessionkit.engine.errors import CalendarCoverageError, DatabaseError
from sessionkit.engine.store.db import CalendarDay, Exchange, init_db, open_db
from sqlalchemy import insert

NEW_YORK = ZoneInfo("America/New_York")
FIRST = date(2010, 1, 4)
LAST = date(2030, 12, 31)


@pytest.fixture(scope="module")
def engine(calendar_db_url):
    engine = open_db(calendar_db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def tm(engine) -> TimeManager:
    """One TimeManager shared by the read-only tests of this module."""
    return TimeManager(engine)


@pytest.fixture
def fresh(engine) -> TimeManager:
    """A TimeManager of its own, for tests that look at cache statistics."""
    return TimeManager(engine, cache_size=4)


# -- facts of the NYSE calendar -------------------------------------------------------------


def test_coverage_is_first_to_last_session(tm):
    assert tm.coverage() == (FIRST, LAST)
    assert tm.timezone == NEW_YORK
    assert tm.get_timezone(exchange="NYSE") == NEW_YORK


def test_2024_has_252_sessions(tm):
    sessions = tm.sessions_between(date(2024, 1, 1), date(2024, 12, 31))
    assert len(sessions) == 252
    assert tm.trading_days_between(date(2024, 1, 1), date(2024, 12, 31)) == 252
    assert sessions[0] == date(2024, 1, 2)
    assert sessions[-1] == date(2024, 12, 31)
    assert sessions == sorted(sessions)


def test_early_close_2024_11_29(tm):
    session = tm.get_trading_session(date(2024, 11, 29))
    assert isinstance(session, TradingSession)
    assert session.early_close is True
    assert session.close == datetime(2024, 11, 29, 18, 0, tzinfo=UTC)
    assert session.local_close.time() == time(13, 0)
    assert session.local_close.tzinfo == NEW_YORK
    assert session.local_open.time() == time(9, 30)
    assert session.duration == timedelta(hours=3, minutes=30)


def test_regular_session_is_aware_utc_and_not_early(tm):
    session = tm.get_trading_session(date(2024, 11, 27))
    assert session.early_close is False
    assert session.open.tzinfo is not None and session.open.utcoffset() == timedelta(0)
    assert session.local_open.time() == time(9, 30)
    assert session.local_close.time() == time(16, 0)
    assert session.is_open_at(session.open)
    assert not session.is_open_at(session.close)


def test_holiday_is_not_a_session(tm):
    assert tm.is_trading_day(date(2011, 1, 17)) is False  # Martin Luther King Jr. Day
    assert tm.get_trading_session(date(2011, 1, 17)) is None
    assert tm.is_trading_day(date(2011, 1, 18)) is True
    assert tm.is_trading_day(date(2011, 1, 15)) is False  # a Saturday


def test_dst_change_moves_the_utc_open(tm):
    before = tm.get_trading_session(date(2011, 3, 11))
    after = tm.get_trading_session(date(2011, 3, 14))
    assert before.open == datetime(2011, 3, 11, 14, 30, tzinfo=UTC)
    assert after.open == datetime(2011, 3, 14, 13, 30, tzinfo=UTC)
    assert before.local_open.time() == after.local_open.time() == time(9, 30)


# -- date arithmetic --------------------------------------------------------------------------


def test_first_trading_date_is_inclusive(tm):
    assert tm.get_first_trading_date(date(2011, 1, 18)) == date(2011, 1, 18)
    assert tm.get_first_trading_date(date(2011, 1, 15)) == date(2011, 1, 18)  # Sat -> Tue
    assert tm.get_first_trading_date(date(2024, 12, 25)) == date(2024, 12, 26)


def test_next_and_previous(tm):
    assert tm.get_next_trading_date(date(2011, 1, 14)) == date(2011, 1, 18)
    assert tm.get_next_trading_date(date(2011, 1, 14), 2) == date(2011, 1, 19)
    assert tm.get_next_trading_date(date(2011, 1, 16)) == date(2011, 1, 18)  # from a Sunday
    assert tm.get_previous_trading_date(date(2011, 1, 18)) == date(2011, 1, 14)
    assert tm.get_previous_trading_date(date(2011, 1, 18), 5) == date(2011, 1, 10)
    assert tm.get_previous_trading_date(date(2011, 1, 17)) == date(2011, 1, 14)


def test_count_back_window_holds_n_sessions(tm):
    # 2024-11-25 (Mon) .. 2024-11-29 (Fri), Thanksgiving (28th) closed: 4 sessions.
    assert tm.count_back_trading_days(date(2024, 11, 29), 1) == date(2024, 11, 29)
    assert tm.count_back_trading_days(date(2024, 11, 29), 4) == date(2024, 11, 25)
    assert tm.count_back_trading_days(date(2024, 11, 29), 5) == date(2024, 11, 22)
    # A non-session end date: counting starts at the last session before it.
    assert tm.count_back_trading_days(date(2024, 12, 1), 1) == date(2024, 11, 29)
    assert tm.count_back_trading_days(date(2024, 12, 1), 4) == date(2024, 11, 25)
    assert tm.trading_days_between(date(2024, 11, 25), date(2024, 12, 1)) == 4


def test_between_with_reversed_bounds_is_empty(tm):
    assert tm.sessions_between(date(2024, 2, 1), date(2024, 1, 1)) == []
    assert tm.trading_days_between(date(2024, 2, 1), date(2024, 1, 1)) == 0
    assert tm.sessions_between(date(2024, 1, 1), date(2024, 1, 1)) == []  # a holiday


def test_bad_arguments(tm):
    with pytest.raises(ValueError, match="positive integer"):
        tm.get_next_trading_date(date(2024, 1, 2), 0)
    with pytest.raises(ValueError, match="positive integer"):
        tm.count_back_trading_days(date(2024, 1, 2), -3)
    with pytest.raises(TypeError, match="datetime"):
        tm.is_trading_day(datetime(2024, 1, 2, 12, tzinfo=UTC))
    with pytest.raises(TypeError, match="datetime"):
        tm.get_trading_session(datetime(2024, 1, 2, 12, tzinfo=UTC))
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        tm.is_trading_day("2024/01/02")
    assert tm.is_trading_day("2024-01-02") is True
    assert tm.get_trading_session("2024-01-02").date == date(2024, 1, 2)
    with pytest.raises(ValueError, match="cache_size"):
        TimeManager(tm._engine, cache_size=-1)


# -- coverage ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda tm: tm.is_trading_day(date(2009, 12, 31)),
        lambda tm: tm.get_trading_session(date(2031, 1, 2)),
        lambda tm: tm.get_trading_session(date(2010, 1, 1)),  # a holiday before the first
        lambda tm: tm.get_first_trading_date(date(2031, 1, 1)),
        lambda tm: tm.get_next_trading_date(date(2030, 12, 31)),
        lambda tm: tm.get_next_trading_date(date(2030, 12, 20), 30),
        lambda tm: tm.get_previous_trading_date(date(2010, 1, 4)),
        lambda tm: tm.count_back_trading_days(date(2010, 1, 6), 4),
        lambda tm: tm.sessions_between(date(2009, 6, 1), date(2010, 2, 1)),
        lambda tm: tm.trading_days_between(date(2030, 6, 1), date(2031, 2, 1)),
    ],
)
def test_outside_coverage_raises_and_names_it(tm, call):
    with pytest.raises(CalendarCoverageError) as info:
        call(tm)
    message = str(info.value)
    assert "NYSE" in message
    assert "2010-01-04 to 2030-12-31" in message
    assert info.value.first == FIRST and info.value.last == LAST


def test_edges_of_coverage_are_answered(tm):
    assert tm.get_first_trading_date(FIRST) == FIRST
    assert tm.count_back_trading_days(date(2010, 1, 6), 3) == FIRST
    assert tm.get_previous_trading_date(date(2010, 1, 5)) == FIRST
    assert tm.get_next_trading_date(date(2030, 12, 30)) == LAST
    assert tm.get_trading_session(LAST).date == LAST


def test_unknown_exchange_says_there_is_no_calendar(tm):
    with pytest.raises(CalendarCoverageError, match="no trading calendar for exchange 'XLON'"):
        tm.is_trading_day(date(2024, 1, 2), exchange="XLON")


def _small_db(tmp_path, exchanges):
    engine = init_db(f"sqlite:///{tmp_path / 'small.sqlite'}")
    with engine.begin() as connection:
        if exchanges:
            connection.execute(insert(Exchange), exchanges)
        connection.execute(
            insert(CalendarDay),
            [
                {
                    "exchange": "TEST",
                    "session_date": date(2024, 1, day),
                    "open": datetime(2024, 1, day, 8, tzinfo=UTC),
                    "close": datetime(2024, 1, day, 16, 30, tzinfo=UTC),
                    "early_close": False,
                }
                for day in (2, 3, 5)
            ],
        )
    return engine


def test_exchange_keyword_and_its_own_time_zone(tmp_path):
    engine = _small_db(tmp_path, [{"name": "TEST", "timezone": "Europe/London"}])
    tm = TimeManager(engine, "TEST")
    assert tm.coverage() == (date(2024, 1, 2), date(2024, 1, 5))
    assert tm.timezone == ZoneInfo("Europe/London")
    assert tm.is_trading_day(date(2024, 1, 4)) is False
    assert tm.get_next_trading_date(date(2024, 1, 3)) == date(2024, 1, 5)
    other = TimeManager(engine, "NYSE")
    assert other.get_next_trading_date(date(2024, 1, 3), exchange="TEST") == date(2024, 1, 5)
    session = other.get_trading_session(date(2024, 1, 5), exchange="TEST")
    assert session.local_open.tzinfo == ZoneInfo("Europe/London")
    engine.dispose()


def test_missing_exchanges_row_is_a_database_error(tmp_path):
    engine = _small_db(tmp_path, [])
    tm = TimeManager(engine, "TEST")
    with pytest.raises(DatabaseError, match="no row in the exchanges table"):
        tm.is_trading_day(date(2024, 1, 2))
    with pytest.raises(DatabaseError, match="exchanges table"):
        _ = tm.timezone
    engine.dispose()


def test_database_without_tables_is_a_database_error(tmp_path):
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    with pytest.raises(DatabaseError, match="cannot read the trading calendar"):
        TimeManager(engine).is_trading_day(date(2024, 1, 2))
    engine.dispose()


# -- the two-level cache ----------------------------------------------------------------------


def test_last_query_and_lru_hits(fresh):
    d1, d2 = date(2024, 11, 25), date(2024, 11, 26)
    first = fresh.get_trading_session(d1)
    assert fresh.cache_info().misses == 1 and fresh.cache_info().hits == 0
    assert fresh.get_trading_session(d1) is first  # last-query hit
    fresh.get_trading_session(d2)  # miss
    assert fresh.get_trading_session(d1) is first  # LRU hit
    stats = fresh.cache_info()
    assert (stats.hits, stats.misses, stats.size, stats.maxsize) == (2, 2, 2, 4)
    assert stats.hit_rate == pytest.approx(0.5)


def test_non_trading_day_is_cached_too(fresh):
    assert fresh.get_trading_session(date(2024, 11, 28)) is None
    assert fresh.get_trading_session(date(2024, 11, 28)) is None
    assert fresh.cache_info().hits == 1 and fresh.cache_info().misses == 1


def test_lru_evicts_the_least_recently_used(fresh):
    days = [date(2024, 12, d) for d in (2, 3, 4, 5, 6)]  # five sessions, capacity 4
    for d in days:
        fresh.get_trading_session(d)
    assert fresh.cache_info().size == 4
    fresh.get_trading_session(days[1])  # still cached: a hit
    assert fresh.cache_info().misses == 5
    fresh.get_trading_session(days[0])  # evicted: a miss
    assert fresh.cache_info().misses == 6


def test_invalidate_cache_forces_a_miss_and_keeps_stats(fresh):
    d = date(2024, 12, 2)
    fresh.get_trading_session(d)
    fresh.get_trading_session(d)
    fresh.invalidate_cache()
    assert fresh.cache_info().size == 0
    fresh.get_trading_session(d)
    stats = fresh.cache_info()
    assert (stats.hits, stats.misses) == (1, 2)
    fresh.reset_cache_stats()
    assert fresh.cache_info().hit_rate == 0.0
    fresh.reload()
    assert fresh.get_trading_session(d).date == d


def test_cache_size_zero_keeps_only_the_last_query(engine):
    tm = TimeManager(engine, cache_size=0)
    a, b = date(2024, 12, 2), date(2024, 12, 3)
    tm.get_trading_session(a)
    tm.get_trading_session(a)
    tm.get_trading_session(b)
    tm.get_trading_session(a)
    assert (tm.cache_info().hits, tm.cache_info().misses, tm.cache_info().size) == (1, 3, 0)


def test_cache_is_per_instance_and_does_not_keep_instances_alive(engine):
    one, two = TimeManager(engine), TimeManager(engine)
    one.get_trading_session(date(2024, 12, 2))
    two.get_trading_session(date(2024, 12, 2))
    assert one.cache_info().misses == 1 and two.cache_info().misses == 1
    one.invalidate_cache()
    two.get_trading_session(date(2024, 12, 2))
    assert two.cache_info().hits == 1
    ref = weakref.ref(one)
    del one
    gc.collect()
    assert ref() is None


def test_hit_rate_of_a_20_session_backtest(fresh):
    """Each session: invalidate, find the day, then one lookup per 1-minute step."""
    day = fresh.get_first_trading_date(date(2024, 11, 25))
    for _ in range(20):
        fresh.invalidate_cache()
        session = fresh.get_trading_session(day)
        steps = int(session.duration.total_seconds() // 60)
        for _ in range(steps):
            assert fresh.get_trading_session(day) is session
        day = fresh.get_next_trading_date(day)
    assert fresh.cache_info().misses == 20
    assert fresh.cache_info().hit_rate >= 0.99


def test_concurrent_lookups_agree(engine):
    tm = TimeManager(engine, cache_size=8)
    days = tm.sessions_between(date(2024, 1, 1), date(2024, 3, 1))
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(400):
                d = days[(i + offset) % len(days)]
                assert tm.get_trading_session(d).date == d
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    stats = tm.cache_info()
    assert stats.hits + stats.misses == 1600


# -- properties -------------------------------------------------------------------------------

dates = st.dates(min_value=FIRST, max_value=LAST)
counts = st.integers(min_value=1, max_value=60)


@settings(max_examples=300, deadline=None)
@given(d=dates, n=counts)
def test_next_and_previous_are_inverse_on_sessions(tm, d, n):
    session = tm.get_first_trading_date(d)  # LAST is a session: always answered
    try:
        forward = tm.get_next_trading_date(session, n)
    except CalendarCoverageError:
        assume(False)
    assert forward > session
    assert tm.get_previous_trading_date(forward, n) == session
    assert tm.trading_days_between(session, forward) == n + 1


@settings(max_examples=300, deadline=None)
@given(d=dates, n=counts)
def test_previous_then_next_returns_to_the_session(tm, d, n):
    session = tm.count_back_trading_days(d, 1)
    try:
        back = tm.get_previous_trading_date(session, n)
    except CalendarCoverageError:
        assume(False)
    assert tm.get_next_trading_date(back, n) == session


@settings(max_examples=300, deadline=None)
@given(d=dates, n=counts)
def test_count_back_agrees_with_the_session_list(tm, d, n):
    try:
        start = tm.count_back_trading_days(d, n)
    except CalendarCoverageError:
        assume(False)
    window = tm.sessions_between(start, d)
    assert len(window) == n
    assert window[0] == start
    assert all(tm.is_trading_day(s) for s in window)


@settings(max_examples=300, deadline=None)
@given(d=dates)
def test_first_trading_date_of_a_session_is_itself(tm, d):
    try:
        first = tm.get_first_trading_date(d)
    except CalendarCoverageError:
        assume(False)
    assert tm.get_first_trading_date(first) == first
    assert tm.is_trading_day(first)
    assert first >= d
    assert tm.sessions_between(d, first) == [first]  # nothing in between was a session
    if tm.is_trading_day(d):
        assert first == d


# -- SimClock ---------------------------------------------------------------------------------


def test_sim_clock_set_now_local_advance():
    clock = SimClock("America/New_York")
    assert not clock.is_set
    with pytest.raises(ClockNotSetError):
        clock.now()
    with pytest.raises(ClockNotSetError):
        clock.advance(timedelta(minutes=1))
    clock.set(datetime(2024, 11, 29, 9, 30, tzinfo=NEW_YORK))
    assert clock.now() == datetime(2024, 11, 29, 14, 30, tzinfo=UTC)
    assert clock.now().tzinfo is UTC
    assert clock.local().tzinfo == NEW_YORK and clock.local().hour == 9
    assert clock.advance(timedelta(minutes=1)) == datetime(2024, 11, 29, 14, 31, tzinfo=UTC)
    with pytest.raises(ValueError, match="naive"):
        clock.set(datetime(2024, 11, 29, 9, 30))
    with pytest.raises(ValueError, match="forward"):
        clock.advance(timedelta(seconds=-1))
    assert clock.tz == NEW_YORK


def test_time_manager_builds_a_clock_in_exchange_time(tm):
    start = datetime(2024, 11, 29, 14, 30, tzinfo=UTC)
    clock = tm.sim_clock(start)
    assert clock.now() == start
    assert clock.local().hour == 9 and clock.local().tzinfo == NEW_YORK


def test_sim_clock_readers_see_a_monotonic_aware_time():
    clock = SimClock(UTC, datetime(2024, 1, 2, 14, 30, tzinfo=UTC))
    done = threading.Event()
    seen: list[datetime] = []

    def reader() -> None:
        last = clock.now()
        while not done.is_set():
            now = clock.now()
            assert now >= last and now.tzinfo is UTC
            last = now
        final = clock.now()
        assert final >= last
        seen.append(final)

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(20_000):
        clock.advance(timedelta(seconds=1))
    done.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert seen == [datetime(2024, 1, 2, 14, 30, tzinfo=UTC) + timedelta(seconds=20_000)]
