"""Time passes through a gap in the data minute by minute, as in live mode.

QA: with one symbol missing 10:00-10:29, a backtest had no instant between 10:00 and 10:31:
the monitor's clock ran through the gap while quality said 100% and no gap, and the
analysis was not called, unlike live mode, whose feed hands on its silent minutes. Each
minute of a gap (while data of that part of the session is still to come) is now an empty
instant; after the data of a part ends, time still moves on at once (to the break's start
or the close). Every expectation comes from ``exchange_calendars``' XHKG minutes.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd
import pytest
from sessionkit.engine.config import config_from_dict
from sessionkit.engine.core.time_manager import TradingSession
from sessionkit.engine.core.windows import gap_instants
from sessionkit.engine.pipeline.session import Session
from sessionkit.engine.store.calendar_fill import fill_calendar
from sessionkit.engine.store.db import BarRecord, init_db
from sqlalchemy import insert

HK = ZoneInfo("Asia/Hong_Kong")
MINUTE = timedelta(minutes=1)
DAY = "2025-01-14"
"""A Tuesday with Hong Kong's 12:00-13:00 lunch break."""


def _hk(clock: str) -> datetime:
    return datetime.fromisoformat(f"{DAY} {clock}").replace(tzinfo=HK).astimezone(UTC)


@pytest.fixture(scope="module")
def calendar() -> xcals.ExchangeCalendar:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations inside exchange_calendars
        return xcals.get_calendar("XHKG", start="2025-01-02", end="2025-01-31")


def _minutes(calendar: xcals.ExchangeCalendar, label) -> list[datetime]:
    """The session's trading minutes (each a 1m bar's start), the break left out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [m.to_pydatetime().astimezone(UTC) for m in calendar.session_minutes(label)]


def _session(calendar: xcals.ExchangeCalendar) -> TradingSession:
    row = calendar.schedule.loc[pd.Timestamp(DAY)]
    utc = [ts.to_pydatetime().astimezone(UTC) for ts in (row.open, row.close)]
    breaks = [ts.to_pydatetime().astimezone(UTC) for ts in (row.break_start, row.break_end)]
    return TradingSession(pd.Timestamp(DAY).date(), *utc, False, UTC, *breaks)


SOLO_MISSING = [("09:30", "09:35"), ("10:00", "10:30"), ("11:50", "12:00"), ("15:00", "16:00")]
"""SOLO's minutes that have no bar on ``DAY``: the open's first five, half an hour in the
morning, the morning's last ten (up to the break), and the afternoon's last hour."""


def _missing(minute: datetime) -> bool:
    return any(_hk(a) <= minute < _hk(b) for a, b in SOLO_MISSING)


def test_the_minutes_of_a_gap_are_instants_not_the_minutes_after_the_data(calendar) -> None:
    session = _session(calendar)
    present = [m for m in _minutes(calendar, DAY) if not _missing(m)]
    instants = [m + MINUTE for m in present]  # 1m bars, none cut by the break or close
    missing = gap_instants(session, MINUTE, instants)
    # Oracle: the ends of the minutes without a bar that come before the last bar of
    # their part (the morning ends at the break's start, the afternoon at the close).
    morning_last = max(t for t in instants if t <= _hk("12:00"))
    afternoon_last = max(instants)
    expected = [
        m + MINUTE
        for m in _minutes(calendar, DAY)
        if _missing(m) and m + MINUTE <= (morning_last if m < _hk("12:00") else afternoon_last)
    ]
    assert missing == expected
    assert len(missing) == 5 + 30  # the open's five and the morning's half hour
    assert missing[0] == _hk("09:31") and missing[-1] == _hk("10:30")
    assert gap_instants(session, MINUTE, []) == []
    assert gap_instants(session, MINUTE, [m + MINUTE for m in _minutes(calendar, DAY)]) == []


def test_an_afternoon_that_starts_late_has_its_missing_minutes(calendar) -> None:
    session = _session(calendar)
    afternoon = [m + MINUTE for m in _minutes(calendar, DAY) if m >= _hk("13:20")]
    missing = gap_instants(session, MINUTE, afternoon)
    assert missing == [_hk("13:00") + k * MINUTE for k in range(1, 21)]  # 13:01 to 13:20


@pytest.fixture(scope="module")
def database(calendar, tmp_path_factory: pytest.TempPathFactory) -> str:
    previous = calendar.previous_session(pd.Timestamp(DAY))
    rows = [
        {"symbol": "SOLO", "interval": "1m", "start": m, "open": 10.0, "high": 11.0,
         "low": 9.0, "close": 10.0, "volume": 100}
        for day in (previous, pd.Timestamp(DAY))
        for m in _minutes(calendar, day)
        if not _missing(m)
    ]  # fmt: skip
    url = f"sqlite:///{tmp_path_factory.mktemp('gap_instants') / 'hk.sqlite'}"
    engine = init_db(url)
    fill_calendar(engine, "XHKG", "2025-01-02", "2025-01-31")
    with engine.begin() as connection:
        connection.execute(insert(BarRecord), rows)
    engine.dispose()
    return url


@pytest.mark.parametrize("clock", ["data-driven", "clock-driven"])
def test_quality_and_the_analysis_follow_time_through_a_gap(database, clock) -> None:
    config = config_from_dict(
        {
            "exchange_group": "XHKG",
            "database_url": database,
            "backtest": {"start_date": DAY, "end_date": DAY, "clock": clock, "speed": 60},
            "streams": {"symbols": ["SOLO"], "interval": "1m", "derived": ["5m"]},
            "historical": [{"apply_to": "all", "trailing_days": 1}],
            "analysis": {"entry": "pipeline_analyses:Recorder"},
        }
    )
    session = Session(config, start_paused=True)
    try:
        session.start()
        assert session.wait_idle(20)
        seen = []
        while (snapshot := session.snapshot()).sim_time < _hk("10:15"):
            session.step()  # exactly one instant
            assert session.wait_idle(20)
            seen.append(session.snapshot().sim_time)
        # Every minute is an instant, through the gap (it jumped from 10:00 to 10:31).
        assert seen == [_hk("09:31") + k * MINUTE for k in range(len(seen))]
        assert snapshot.sim_time == _hk("10:15")
        # Quality counts the gap's minutes as they pass: 25 present of 45 expected
        # (the open's five are missing too), two gaps, the second still open.
        solo = snapshot.series["SOLO", "1m"]
        assert (solo.bar_count, solo.quality) == (25, pytest.approx(100 * 25 / 45))
        spans = session.gaps("SOLO")
        assert [(s.bars, s.open) for s in spans] == [(5, False), (15, True)]
        recorder = session.analysis.analysis
        assert recorder.times == seen  # called at each
        assert len(recorder.items) == 25  # the bars: nothing new in the gap
        if clock == "clock-driven":
            session.set_speed(1_000_000)  # the rest of the session in a fraction of a second
        session.resume()
        assert session.wait(60)
        snapshot = session.snapshot()
        assert snapshot.state == "completed", snapshot.error
        times = recorder.times
        # After the morning's data ended (11:50) time moved on at once to the break's
        # start, after the afternoon's (15:00) to the close: no instant in between.
        assert [t for t in times if _hk("11:50") < t < _hk("12:00")] == []
        assert _hk("12:00") in times and _hk("16:00") in times
        assert [t for t in times if _hk("15:00") < t < _hk("16:00")] == []
        assert recorder.violations == [] and recorder.derived_lag == []
    finally:
        assert session.stop()


def test_the_live_replay_hands_on_the_same_instants(database) -> None:
    """Live mode replays a session from the database: its instants are a backtest's."""
    config = config_from_dict(
        {
            "mode": "live",
            "exchange_group": "XHKG",
            "database_url": database,
            "streams": {"symbols": ["SOLO"], "interval": "1m"},
            "live": {"replay_date": DAY, "speed": 6000},
        }
    )
    session = Session(config)
    times = [t for t, _items in session.coordinator.feed._steps]
    morning = [_hk("09:31") + k * MINUTE for k in range(140)]  # to 11:50, its last bar's end
    afternoon = [_hk("13:01") + k * MINUTE for k in range(120)]  # to 15:00
    assert times == morning + afternoon
