"""Import and read figures on both databases: SQLite and a real PostgreSQL server.

Run: ``python -m pytest tests/benchmarks/test_bench_databases.py --benchmark-only -s``
(the project skips benchmarks by default). One round each (the import of 1,000,000 rows
takes tens of seconds); the figures are printed with ``-s`` and kept in ``extra_info``.
The importer used is the project's (:func:`~sessionkit.engine.store.import_csv.import_csv`).
"""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sessionkit.engine.store.data_manager import DataManager
from sessionkit.engine.store.db import init_db
from sessionkit.engine.store.import_csv import import_csv

ROWS = 1_000_000
FIRST_DAY = date(2015, 1, 1)


@pytest.fixture(scope="module")
def csv_1m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000,000 one-minute bars: 390 a weekday from 2015 (regular hours, UTC offsets)."""
    path = tmp_path_factory.mktemp("bench_databases") / "bars-1m.csv"
    rng = random.Random(11)
    price = 100.0
    written = 0
    day = datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, 14, 30, tzinfo=UTC)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("timestamp,open,high,low,close,volume\n")
        while written < ROWS:
            if day.weekday() < 5:
                for minute in range(min(390, ROWS - written)):
                    o = price
                    c = max(1.0, o + rng.gauss(0, 0.05))
                    h = max(o, c) + 0.01
                    lo = min(o, c) - 0.01
                    ts = (day + timedelta(minutes=minute)).isoformat()
                    handle.write(f"{ts},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{100 + minute}\n")
                    price = c
                    written += 1
            day += timedelta(days=1)
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bench.sqlite'}"
    return request.getfixturevalue("postgres_server").new_database("bench")


def test_bench_import_1m_and_get_bars(benchmark, csv_1m: Path, empty_url: str) -> None:
    engine = init_db(empty_url)
    backend = engine.dialect.name
    try:
        report = benchmark.pedantic(
            import_csv, args=(engine, csv_1m, "BENCH", "1m"), rounds=1, warmup_rounds=0
        )
        assert report.imported == ROWS
        seconds = benchmark.stats.stats.min if benchmark.enabled else 0.0
        manager = DataManager(engine, "America/New_York")
        reads = {}
        for label, last in (("one year", date(2015, 12, 31)), ("all", date(2030, 12, 31))):
            began = time.perf_counter()
            bars = manager.get_bars("BENCH", "1m", FIRST_DAY, last)
            reads[label] = (len(bars), time.perf_counter() - began)
        benchmark.extra_info.update(
            backend=backend,
            import_seconds=round(seconds, 2),
            import_rows_per_second=round(ROWS / seconds) if seconds else None,
            get_bars={k: {"bars": n, "seconds": round(s, 3)} for k, (n, s) in reads.items()},
        )
        print(
            f"\n{backend}: import {ROWS:,} rows in {seconds:.1f} s "
            f"({ROWS / seconds:,.0f} rows/s); get_bars "
            + ", ".join(
                f"{label} {n:,} bars in {s:.2f} s ({n / s:,.0f} bars/s)"
                for label, (n, s) in reads.items()
            )
        )
    finally:
        engine.dispose()
