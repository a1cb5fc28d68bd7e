"""get_bars throughput on the bundled SPY 2011 bars, against a raw sqlite3 fetchall.

Run: ``python -m pytest tests/benchmarks/test_bench_db.py --benchmark-only``.
"""

from __future__ import annotations

import sqlite3
from datetime import date

import pytest
from sessionkit.engine.config import bundled_database_path, default_database_url
from sessionkit.engine.store.data_manager import DataManager
from sessionkit.engine.store.db import open_db

FIRST, LAST = date(2011, 1, 1), date(2011, 3, 31)


@pytest.fixture(scope="module")
def manager() -> DataManager:
    return DataManager(open_db(default_database_url()), "America/New_York")


def _raw_rows() -> list[tuple]:
    connection = sqlite3.connect(bundled_database_path())
    try:
        return connection.execute(
            "SELECT start, open, high, low, close, volume FROM bars "
            "WHERE symbol = 'SPY' AND interval = '1m' AND start >= ? AND start < ? "
            "ORDER BY start",
            (1293858000, 1301630400),  # 2011-01-01 and 2011-04-01, New York midnight
        ).fetchall()
    finally:
        connection.close()


def test_get_bars_rate(benchmark, manager: DataManager) -> None:
    bars = benchmark(manager.get_bars, "SPY", "1m", FIRST, LAST)
    assert len(bars) == 31_757
    benchmark.extra_info["rows_per_second"] = len(bars) / benchmark.stats.stats.mean


def test_raw_sqlite_fetchall_rate(benchmark) -> None:
    rows = benchmark(_raw_rows)
    assert len(rows) == 31_757
    benchmark.extra_info["rows_per_second"] = len(rows) / benchmark.stats.stats.mean
