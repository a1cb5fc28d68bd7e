"""Every calendar ``exchange_calendars`` knows, filled and read back, against its oracle.

For each calendar (no aliases): ``fill_calendar`` writes February 2024 into a fresh
database under the calendar's own name (lower-case ones included: ``us_futures``), and the
:class:`TimeManager` of that name must give exactly ``exchange_calendars``' sessions, opens,
closes, breaks, trading minutes (``session_minutes``) and derived windows
(``trading_index(..., intervals=True, force=True)``) for 15m and 1h: what the engine
streams, expects and builds on any exchange.
"""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime

import exchange_calendars as xcals
import pandas as pd
import pytest
from sessionkit.engine.core.time_manager import TimeManager
from sessionkit.engine.store.calendar_fill import fill_calendar
from sessionkit.engine.store.db import init_db

FIRST, LAST = date(2024, 2, 1), date(2024, 2, 29)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    NAMES = sorted(xcals.get_calendar_names(include_aliases=False))


def _utc(ts) -> datetime | None:
    return None if pd.isna(ts) else ts.to_pydatetime().astimezone(UTC)


@pytest.mark.parametrize("name", NAMES)
def test_the_stored_calendar_is_exchange_calendars(name: str, tmp_path) -> None:
    engine = init_db(f"sqlite:///{tmp_path / 'calendar.sqlite'}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exchange_calendars' own pandas deprecations
            written = fill_calendar(engine, name, FIRST, LAST)
            oracle = xcals.get_calendar(name, start=FIRST.isoformat(), end=LAST.isoformat())
        schedule = oracle.schedule
        assert written == len(schedule) > 0
        manager = TimeManager(engine, name)
        labels = [ts.date() for ts in schedule.index]
        assert manager.sessions_between(labels[0], labels[-1]) == labels
        for label, row in schedule.iterrows():
            session = manager.get_trading_session(label.date())
            assert session is not None, label
            stored = (session.open, session.close, session.break_start, session.break_end)
            assert stored == (
                _utc(row.open),
                _utc(row.close),
                _utc(row.break_start),
                _utc(row.break_end),
            ), label
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                minutes = len(oracle.session_minutes(label))
                windows = {
                    interval: [
                        (_utc(w.left), _utc(w.right))
                        for w in oracle.trading_index(
                            label, label, period, intervals=True, force=True
                        )
                    ]
                    for interval, period in (("15m", "15min"), ("1h", "1h"))
                }
            assert session.regular_minutes == minutes, label
            for interval, expected in windows.items():
                assert session.windows(interval) == expected, (label, interval)
    finally:
        engine.dispose()
