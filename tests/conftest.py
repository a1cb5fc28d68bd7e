"""Shared pytest fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def calendar_db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a SQLite database holding the NYSE calendar 2010-01-01..2030-12-31.

    Built once per test run from ``exchange_calendars`` (XNYS), with the ``exchanges`` row
    NYSE / America/New_York. Tests must not write to it.
    """
    import warnings

    import exchange_calendars as xcals
    from sessionkit.engine.store.db import CalendarDay, Exchange, init_db
    from sqlalchemy import insert

    path = tmp_path_factory.mktemp("calendar") / "calendar.sqlite"
    url = f"sqlite:///{path}"
    engine = init_db(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exchange_calendars' own pandas deprecations
        calendar = xcals.get_calendar("XNYS", start="2010-01-01", end="2030-12-31")
    schedule = calendar.schedule
    early = set(calendar.early_closes)
    rows = [
        {
            "exchange": "NYSE",
            "session_date": session.date(),
            "open": opens.to_pydatetime(),
            "close": closes.to_pydatetime(),
            "early_close": session in early,
        }
        for session, opens, closes in zip(
            schedule.index, schedule["open"], schedule["close"], strict=True
        )
    ]
    with engine.begin() as connection:
        connection.execute(insert(Exchange), [{"name": "NYSE", "timezone": "America/New_York"}])
        connection.execute(insert(CalendarDay), rows)
    engine.dispose()
    return url
