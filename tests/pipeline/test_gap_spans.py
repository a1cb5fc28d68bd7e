"""Gaps over a session's break (Hong Kong's lunch), with exchange_calendars as the oracle.

A run of missing minutes from the morning into the afternoon is one gap (the quality
manager's rule), but the break's minutes are not missing: :meth:`Session.gaps` counts and
places its bars in trading time, :attr:`GapSpan.minutes` leaves the break out, and the
chart marks exactly the missing bars. Every expectation comes from
``exchange_calendars``' XHKG sessions (``session_minutes``, the schedule's break), never
from the engine's calendar code.
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
from sessionkit.engine.core.windows import bars_between, bars_end
from sessionkit.engine.pipeline.session import Session
from sessionkit.engine.pipeline.snapshot import GapSpan, Snapshot
from sessionkit.engine.store.calendar_fill import fill_calendar
from sessionkit.engine.store.db import BarRecord, init_db
from sessionkit.tui.chart_data import missing_positions
from sessionkit.tui.charting import SessionAxis
from sqlalchemy import insert

HK = ZoneInfo("Asia/Hong_Kong")
MINUTE = timedelta(minutes=1)
DAY = "2025-01-14"
"""The streamed session (a Tuesday with the 12:00-13:00 lunch break)."""


def _calendar() -> xcals.ExchangeCalendar:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations inside exchange_calendars
        return xcals.get_calendar("XHKG", start="2025-01-02", end="2025-01-31")


def _utc(ts) -> datetime | None:
    return None if pd.isna(ts) else ts.to_pydatetime().astimezone(UTC)


def _hk(clock: str) -> datetime:
    return datetime.fromisoformat(f"{DAY} {clock}").replace(tzinfo=HK).astimezone(UTC)


def _minutes(calendar: xcals.ExchangeCalendar, label: str) -> list[datetime]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [_utc(m) for m in calendar.session_minutes(label)]


def _session(calendar: xcals.ExchangeCalendar, label: str) -> TradingSession:
    row = calendar.schedule.loc[pd.Timestamp(label)]
    return TradingSession(
        pd.Timestamp(label).date(),
        _utc(row.open),
        _utc(row.close),
        False,
        UTC,
        _utc(row.break_start),
        _utc(row.break_end),
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """A database with the XHKG calendar and two symbols over the session before ``DAY``
    (history) and ``DAY``: FULL has every trading minute, SYM lacks 11:55-11:59 and
    13:00-13:04 of ``DAY`` (five minutes each side of the break)."""
    calendar = _calendar()
    schedule = calendar.schedule
    label = pd.Timestamp(DAY)
    assert not pd.isna(schedule.at[label, "break_start"])
    previous = calendar.previous_session(label)
    dropped = [m for m in _minutes(calendar, DAY) if _hk("11:55") <= m < _hk("13:05")]
    # The break is no trading minute: what is dropped is ten minutes, not seventy.
    assert len(dropped) == 10
    rows = []
    for day in (previous, label):
        for m in _minutes(calendar, day):
            for symbol in ("FULL", "SYM"):
                if symbol == "SYM" and m in dropped:
                    continue
                rows.append(
                    {
                        "symbol": symbol,
                        "interval": "1m",
                        "start": m,
                        "open": 10.0,
                        "high": 11.0,
                        "low": 9.0,
                        "close": 10.0,
                        "volume": 100,
                    }
                )
    folder = tmp_path_factory.mktemp("gap_spans")
    url = f"sqlite:///{folder / 'hk.sqlite'}"
    engine = init_db(url)
    fill_calendar(engine, "XHKG", "2025-01-02", "2025-01-31")
    with engine.begin() as connection:
        connection.execute(insert(BarRecord), rows)
    engine.dispose()
    return calendar, url, dropped


def _step_to(session: Session, target: datetime) -> Snapshot:
    """Step the paused session until its simulated time reaches ``target``."""
    session.start()
    assert session.wait_idle(20)
    while True:
        snapshot = session.snapshot()
        if snapshot.sim_time is not None and snapshot.sim_time >= target:
            return snapshot
        assert not snapshot.finished, f"the run ended before {target}"
        session.step()
        assert session.wait_idle(20)


def _session_of(url: str) -> Session:
    config = config_from_dict(
        {
            "exchange_group": "XHKG",
            "database_url": url,
            "backtest": {"start_date": DAY, "end_date": DAY, "clock": "data-driven"},
            "streams": {"symbols": ["SYM", "FULL"], "interval": "1m", "derived": ["5m"]},
            "historical": [{"apply_to": "all", "trailing_days": 1}],
        }
    )
    return Session(config, start_paused=True)


def test_a_gap_over_the_break_counts_only_trading_minutes(world) -> None:
    """QA: at 13:03 the open gap said 11:55-12:03 (its end inside the break) and once
    closed 70 bars over 70 minutes for the ten minutes missing; the detail screen said
    "70 bar(s) missing" while quality was right."""
    calendar, url, dropped = world
    session = _session_of(url)
    try:
        snapshot = _step_to(session, _hk("13:03"))
        assert snapshot.sim_time == _hk("13:03")
        (span,) = session.gaps("SYM")
        due = [m for m in dropped if m + MINUTE <= snapshot.sim_time]
        assert len(due) == 8  # 11:55-11:59 and 13:00-13:02
        assert span.open
        assert (span.start, span.end) == (due[0], due[-1] + MINUTE)  # 13:03, not 12:03
        assert span.bars == 8 and span.minutes == 8
        assert span.bar_starts() == tuple(due)
        assert session.gaps("FULL") == ()

        snapshot = _step_to(session, _hk("13:10"))
        (span,) = session.gaps("SYM")
        assert not span.open
        assert (span.start, span.end) == (dropped[0], dropped[-1] + MINUTE)
        assert span.bars == len(dropped) == 10
        assert span.minutes == 10
        assert span.bar_starts() == tuple(dropped)
        # The quality manager agrees: the bars present plus the bars missing are what the
        # calendar expects by now.
        minutes = _minutes(calendar, DAY)
        expected = sum(1 for m in minutes if m + MINUTE <= snapshot.sim_time)
        present = snapshot.series["SYM", "1m"].bar_count
        assert present + span.bars == expected
        assert snapshot.series["SYM", "1m"].quality == pytest.approx(100.0 * present / expected)
    finally:
        assert session.stop()


def test_the_chart_marks_the_missing_bars_not_the_break(world) -> None:
    """The × marks sit on the slots of the missing bars: exchange_calendars' position of
    each missing minute in the session (the break is no slot)."""
    calendar, _url, dropped = world
    session = _session(calendar, DAY)
    span = GapSpan(
        dropped[0],
        dropped[-1] + MINUTE,
        len(dropped),
        interval=MINUTE,
        break_start=session.break_start,
        break_end=session.break_end,
    )
    snapshot = Snapshot(
        market_open=session.open,
        market_close=session.close,
        break_start=session.break_start,
        break_end=session.break_end,
    )
    minutes = _minutes(calendar, DAY)
    slots = [float(minutes.index(m)) for m in dropped]
    assert missing_positions((span,), SessionAxis.of(snapshot, "1m")) == tuple(slots)
    five = sorted({float(minutes.index(m) // 5) for m in dropped})
    assert missing_positions((span,), SessionAxis.of(snapshot, "5m")) == tuple(five)
    # Without the interval (a span built by hand), the bars are spread over trading time.
    bare = GapSpan(
        span.start, span.end, span.bars, break_start=span.break_start, break_end=span.break_end
    )
    assert bare.minutes == 10
    assert bare.bar_starts() == tuple(dropped)


def test_bars_end_is_the_end_of_the_nth_trading_minute() -> None:
    """``bars_end`` walks the session's minutes as exchange_calendars lists them (the
    break skipped), and is the inverse of ``bars_between``."""
    calendar = _calendar()
    for label in ("2025-01-14", "2025-01-15"):
        session = _session(calendar, label)
        minutes = _minutes(calendar, label)
        for i in range(0, len(minutes), 7):
            start = minutes[i]
            for count in (0, 1, 2, 5, 29, 60, 151, len(minutes)):
                end = bars_end(session, MINUTE, start, count)
                if count == 0:
                    assert end == start
                elif i + count <= len(minutes):
                    assert end == minutes[i + count - 1] + MINUTE, (label, start, count)
                    assert bars_between(session, MINUTE, start, end) == count
                else:
                    assert end == session.close
