"""Database layer: schema, round trip through DataManager, clear errors."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sessionkit.engine.core.bar import Bar
from sessionkit.engine.errors import DatabaseError
from sessionkit.engine.store.data_manager import DataManager
from sessionkit.engine.store.db import BarRecord, init_db, open_db, safe_url
from sqlalchemy import insert


def test_round_trip_orders_by_start_and_filters_by_exchange_dates(tmp_path: Path) -> None:
    engine = init_db(f"sqlite:///{tmp_path / 'db.sqlite'}")
    start = datetime(2024, 3, 8, 14, 30, tzinfo=UTC)  # 09:30 New York, the Friday before DST
    rows = []
    for i in (5, 1, 3, 0, 2, 4):  # inserted out of order
        t = start + timedelta(days=i)
        rows.append(
            {
                "symbol": "ACME",
                "interval": "1m",
                "start": t,
                "open": 10.0 + i,
                "high": 11.0 + i,
                "low": 9.0 + i,
                "close": 10.5 + i,
                "volume": 100 * i,
            }
        )
    rows.append({**rows[0], "symbol": "BOLT"})
    with engine.begin() as connection:
        connection.execute(insert(BarRecord), rows)
    manager = DataManager(engine, "America/New_York")
    bars = manager.get_bars("ACME", "1m", date(2024, 3, 9), date(2024, 3, 12))
    assert [b.start for b in bars] == [start + timedelta(days=i) for i in (1, 2, 3, 4)]
    assert all(isinstance(b, Bar) for b in bars)
    assert bars[0] == Bar(start + timedelta(days=1), 11.0, 12.0, 10.0, 11.5, 100)
    assert bars[0].start.tzinfo is not None
    assert manager.get_bars("ACME", "5m", date(2024, 3, 1), date(2024, 3, 31)) == []
    # The Monday after the DST change: 09:30 New York is 13:30 UTC, stored instants keep it.
    pairs = manager.get_step_bars(["ACME", "BOLT"], "1m", start, start + timedelta(days=6))
    assert [(s, b.start) for s, b in pairs][:2] == [
        ("ACME", start),
        ("ACME", start + timedelta(days=1)),
    ]
    assert ("BOLT", start + timedelta(days=5)) in [(s, b.start) for s, b in pairs]


def test_naive_datetimes_are_refused(tmp_path: Path) -> None:
    engine = init_db(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as connection:
        connection.execute(
            insert(BarRecord),
            [
                {
                    "symbol": "X",
                    "interval": "1m",
                    "start": datetime(2024, 1, 2, 9, 30),
                    "open": 1,
                    "high": 1,
                    "low": 1,
                    "close": 1,
                    "volume": 1,
                }
            ],
        )


def test_missing_file_is_a_clear_error_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.sqlite"
    with pytest.raises(DatabaseError, match="does not exist"):
        open_db(f"sqlite:///{path}")
    assert not path.exists()


def test_database_without_schema(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    sqlite3.connect(path).execute("create table t (x)").connection.commit()
    with pytest.raises(DatabaseError, match="lacks sessionkit's schema"):
        open_db(f"sqlite:///{path}")


def test_malformed_url_and_unreachable_server_hide_the_password() -> None:
    with pytest.raises(DatabaseError) as info:
        open_db("notadialect://user:hunter2@host/db")
    assert "hunter2" not in str(info.value)
    with pytest.raises(DatabaseError) as info:
        open_db("postgresql+psycopg2://user:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in str(info.value)
    assert "***" in safe_url("postgresql://user:hunter2@host/db")
