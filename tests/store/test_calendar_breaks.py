"""Session breaks in the calendar table: filled from exchange_calendars, read by the
TimeManager, and added to an older database by ``sessionkit db init`` without losing data."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import warnings
from datetime import UTC, date, datetime
from pathlib import Path

import exchange_calendars as xcals
import pandas as pd
import pytest
from sessionkit.engine.core.time_manager import TimeManager
from sessionkit.engine.errors import DatabaseError
from sessionkit.engine.store.calendar_fill import fill_calendar
from sessionkit.engine.store.db import CalendarDay, init_db, open_db
from sqlalchemy import select


def _schedule(code: str, first: str, last: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xcals.get_calendar(code, start=first, end=last).schedule


def _utc(ts) -> datetime | None:
    return None if pd.isna(ts) else ts.to_pydatetime().astimezone(UTC)


@pytest.mark.parametrize(
    ("group", "code", "first", "last"),
    [
        ("JPX", "XTKS", "2024-10-28", "2024-11-08"),
        ("HKEX", "XHKG", "2024-12-20", "2025-01-03"),
        ("LSE", "XLON", "2024-03-25", "2024-04-05"),
        ("NYSE", "XNYS", "2024-11-25", "2024-12-03"),
    ],
)
def test_fill_writes_each_sessions_break(tmp_path, group, code, first, last) -> None:
    engine = init_db(f"sqlite:///{tmp_path / 'cal.sqlite'}")
    count = fill_calendar(engine, group, first, last)
    schedule = _schedule(code, first, last)
    assert count == len(schedule)
    tm = TimeManager(engine, group)
    for label, row in schedule.iterrows():
        session = tm.get_trading_session(label.date())
        assert session.open == _utc(row.open)
        assert session.close == _utc(row.close)
        assert session.break_start == _utc(row.break_start)
        assert session.break_end == _utc(row.break_end)
        assert session.has_break == (not pd.isna(row.break_start))
    if code in ("XTKS", "XHKG"):
        assert schedule["break_start"].notna().sum() >= 5
        local = tm.get_trading_session(date(2024, 11, 1) if code == "XTKS" else date(2024, 12, 23))
        assert local.break_start.astimezone(tm.timezone).strftime("%H:%M %Z") == (
            "11:30 JST" if code == "XTKS" else "12:00 HKT"
        )
    else:
        assert schedule["break_start"].isna().all()
    engine.dispose()


OLD_SCHEMA = """
CREATE TABLE bars (id INTEGER PRIMARY KEY, symbol VARCHAR(32), interval VARCHAR(8),
    start BIGINT, open FLOAT, high FLOAT, low FLOAT, close FLOAT, volume BIGINT,
    CONSTRAINT uq_bars_symbol_interval_start UNIQUE (symbol, interval, start));
CREATE TABLE exchanges (name VARCHAR(16) PRIMARY KEY, timezone VARCHAR(64));
CREATE TABLE trading_calendar (exchange VARCHAR(16), session_date DATE, open BIGINT,
    close BIGINT, early_close BOOLEAN, PRIMARY KEY (exchange, session_date));
CREATE TABLE symbols (symbol VARCHAR(32) PRIMARY KEY, description TEXT, synthetic BOOLEAN,
    source TEXT);
"""


def _old_database(path: Path) -> list[tuple]:
    """A database with the schema before breaks (as main wrote it), holding XTKS sessions
    without breaks and a few bars; returns its calendar rows."""
    schedule = _schedule("XTKS", "2024-11-05", "2024-11-08")
    rows = [
        (
            "JPX",
            label.date().isoformat(),
            int(row.open.timestamp()),
            int(row.close.timestamp()),
            0,
        )
        for label, row in schedule.iterrows()
    ]
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.execute("INSERT INTO exchanges VALUES ('JPX', 'Asia/Tokyo')")
        db.executemany("INSERT INTO trading_calendar VALUES (?, ?, ?, ?, ?)", rows)
        db.executemany(
            "INSERT INTO bars (symbol, interval, start, open, high, low, close, volume) "
            "VALUES ('ABC', '1m', ?, 1, 2, 0.5, 1.5, 100)",
            [(rows[0][2] + 60 * i,) for i in range(30)],
        )
        db.execute("INSERT INTO symbols VALUES ('ABC', 'test', 1, 'made up')")
    return rows


def test_open_db_refuses_an_older_schema_and_says_how_to_upgrade(tmp_path) -> None:
    path = tmp_path / "old.sqlite"
    _old_database(path)
    with pytest.raises(DatabaseError) as info:
        open_db(f"sqlite:///{path}")
    message = str(info.value)
    assert "trading_calendar.break_start" in message
    assert "sessionkit db init --db URL" in message


def test_db_init_upgrades_an_older_database_keeping_its_data(tmp_path) -> None:
    path = tmp_path / "old.sqlite"
    rows = _old_database(path)
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "sessionkit.engine.cli", "db", "init", "--db", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "added trading_calendar.break_start, trading_calendar.break_end" in result.stdout
    assert "JPX: 4 sessions with a break filled" in result.stdout
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM bars").fetchone() == (30,)
        assert db.execute("SELECT COUNT(*) FROM symbols").fetchone() == (1,)
        kept = db.execute(
            "SELECT exchange, session_date, open, close, early_close FROM trading_calendar "
            "ORDER BY session_date"
        ).fetchall()
    assert kept == rows
    engine = open_db(f"sqlite:///{path}")
    schedule = _schedule("XTKS", "2024-11-05", "2024-11-08")
    with engine.connect() as connection:
        stored = connection.execute(
            select(CalendarDay.session_date, CalendarDay.break_start, CalendarDay.break_end)
            .where(CalendarDay.exchange == "JPX")
            .order_by(CalendarDay.session_date)
        ).all()
    assert stored == [
        (label.date(), _utc(row.break_start), _utc(row.break_end))
        for label, row in schedule.iterrows()
    ]
    engine.dispose()
    # Running it again changes nothing and says nothing about an upgrade.
    again = subprocess.run(
        [sys.executable, "-m", "sessionkit.engine.cli", "db", "init", "--db", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert again.returncode == 0
    assert "upgraded" not in again.stdout


def test_db_calendar_reports_the_sessions_with_a_break(tmp_path) -> None:
    import json

    path = tmp_path / "tokyo.sqlite"
    command = [sys.executable, "-m", "sessionkit.engine.cli", "db"]
    init = subprocess.run([*command, "init", "--db", str(path)], capture_output=True, timeout=60)
    assert init.returncode == 0
    result = subprocess.run(
        [*command, "calendar", "--exchange", "XTKS", "--from", "2024-11-01", "--to",
         "2024-11-08", "--db", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    coverage = json.loads(result.stdout)["coverage"]
    schedule = _schedule("XTKS", "2024-11-01", "2024-11-08")
    assert coverage["sessions"] == len(schedule) == 5
    assert coverage["sessions_with_break"] == int(schedule["break_start"].notna().sum()) == 5
