"""Tests of sessionkit.engine.core.windows against exchange_calendars (the oracle).

Sessions are taken straight from ``exchange_calendars``' schedules (never from the
engine's calendar code); every window, count and minute is compared with
``trading_index(..., intervals=True, force=True)`` and ``session_minutes``.
"""

from __future__ import annotations

import warnings
from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from functools import cache

import exchange_calendars as xcals
import pandas as pd
import pytest
from sessionkit.engine.core import windows
from sessionkit.engine.core.time_manager import TradingSession

MINUTE = timedelta(minutes=1)
PERIODS = {"1m": "1min", "5m": "5min", "15m": "15min", "30m": "30min", "1h": "1h"}
DELTAS = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60}

# (calendar, first, last): ranges with breaks, half days without a break, a change of the
# close (XTKS 2024-11-05), DST changes (XLON, XNYS) and a 24-hour calendar.
RANGES = [
    ("XTKS", "2024-10-28", "2024-11-08"),
    ("XHKG", "2024-12-20", "2025-01-03"),
    ("XSHG", "2024-09-23", "2024-09-30"),
    ("XLON", "2024-03-25", "2024-04-05"),
    ("XLON", "2024-10-21", "2024-11-01"),
    ("XNYS", "2024-11-25", "2024-12-03"),
    ("24/7", "2024-03-08", "2024-03-12"),
]


@cache
def calendar(code: str, first: str, last: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xcals.get_calendar(code, start=first, end=last)


def _utc(ts) -> datetime | None:
    return None if pd.isna(ts) else ts.to_pydatetime().astimezone(UTC)


def sessions(code: str, first: str, last: str) -> list[tuple[pd.Timestamp, TradingSession]]:
    schedule = calendar(code, first, last).schedule
    return [
        (
            label,
            TradingSession(
                label.date(),
                _utc(row.open),
                _utc(row.close),
                False,
                UTC,
                _utc(row.break_start),
                _utc(row.break_end),
            ),
        )
        for label, row in schedule.iterrows()
    ]


def oracle_windows(code, first, last, label, interval) -> list[tuple[datetime, datetime]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations inside exchange_calendars
        index = calendar(code, first, last).trading_index(
            label, label, PERIODS[interval], intervals=True, force=True
        )
    return [(_utc(i.left), _utc(i.right)) for i in index]


@pytest.mark.parametrize("interval", list(PERIODS))
@pytest.mark.parametrize(("code", "first", "last"), RANGES)
def test_windows_are_trading_index(code, first, last, interval) -> None:
    delta = timedelta(minutes=DELTAS[interval])
    breaks = 0
    for label, session in sessions(code, first, last):
        expected = oracle_windows(code, first, last, label, interval)
        assert windows.session_windows(session, delta) == expected, (code, label, interval)
        assert session.windows(interval) == expected
        breaks += session.has_break
        # Every minute of the session lies in the window window_bounds gives it.
        for minute in calendar(code, first, last).session_minutes(label)[::7]:
            t = _utc(minute)
            bounds = windows.window_bounds(session, delta, t)
            assert bounds in expected and bounds[0] <= t < bounds[1]
            assert windows.bar_end(session, delta, bounds[0]) == bounds[1]
        # expected_bars: the windows ended by each instant; the whole session at the close.
        ends = [end for _start, end in expected]
        for now in sorted({*ends, session.open, session.close, *(e - delta / 2 for e in ends)}):
            assert windows.expected_bars(session, delta, now) == bisect_right(ends, now)
        assert windows.expected_bars(session, delta) == len(expected)
        # next_bar_start: the start of the following window (skipping the break).
        starts = [start for start, _end in expected]
        for here, following in zip(starts, starts[1:], strict=False):
            assert windows.next_bar_start(session, delta, here) == following
    if code in ("XTKS", "XHKG", "XSHG"):
        assert breaks >= 4


@pytest.mark.parametrize(("code", "first", "last"), RANGES)
def test_regular_minutes_and_break(code, first, last) -> None:
    cal = calendar(code, first, last)
    for label, session in sessions(code, first, last):
        minutes = [_utc(m) for m in cal.session_minutes(label)]
        assert windows.regular_minutes(session) == len(minutes) == session.regular_minutes
        assert windows.expected_bars(session, timedelta(minutes=1)) == len(minutes)
        inside = set(minutes)
        t = session.open
        while t < session.close:
            assert session.is_open_at(t) == (t in inside)
            assert windows.in_break(session, t) == (
                session.has_break and t not in inside and session.open <= t < session.close
            )
            t += timedelta(minutes=1)


@pytest.mark.parametrize(("code", "first", "last"), RANGES[:3])
def test_bars_between_counts_the_windows_inside(code, first, last) -> None:
    delta = timedelta(minutes=1)
    for label, session in sessions(code, first, last)[:3]:
        minutes = [_utc(m) for m in calendar(code, first, last).session_minutes(label)]
        probes = minutes[::17] + [session.open, session.close]
        if session.has_break:
            probes += [session.break_start, session.break_end]
        for a in probes:
            for b in probes:
                want = sum(1 for m in minutes if m >= a and m + delta <= b)
                assert windows.bars_between(session, delta, a, b) == want, (a, b)


def test_a_session_without_break_has_one_part() -> None:
    (_label, session), *_ = sessions("XNYS", "2024-11-25", "2024-11-26")
    assert session.parts == ((session.open, session.close),)
    assert not session.has_break
    assert not session.in_break(session.open)


@pytest.mark.parametrize(("code", "first", "last"), RANGES[:3] + RANGES[-1:])
def test_trading_time_is_the_trading_minutes_in_a_span(code, first, last) -> None:
    for label, session in sessions(code, first, last)[:2]:
        minutes = [_utc(m) for m in calendar(code, first, last).session_minutes(label)]
        probes = minutes[::23] + [session.open, session.close]
        if session.has_break:
            probes += [session.break_start, session.break_end, session.break_start + 7 * MINUTE]
        for a in probes:
            for b in probes:
                want = sum(1 for m in minutes if a <= m < b) * MINUTE
                assert windows.trading_time(session, a, b) == want, (a, b)
