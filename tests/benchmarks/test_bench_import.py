"""Benchmark of the CSV importer: 100,000 one-minute bars into a new SQLite database.

Run: ``.venv/bin/python -m pytest tests/benchmarks/test_bench_import.py --benchmark-only -s``
(the project skips benchmarks by default). The rate (rows per second, from the fastest
round) is printed with ``-s`` and kept in the benchmark's ``extra_info``. The target is
100k rows in well under a few seconds: at least 40,000 rows/s on the fastest round.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sessionkit.engine.store.db import init_db
from sessionkit.engine.store.import_csv import import_csv

ROWS = 100_000
TARGET_ROWS_PER_SECOND = 40_000


@pytest.fixture(scope="module")
def csv_100k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid bars CSV of 100,000 one-minute bars (offsets included, as exported)."""
    path = tmp_path_factory.mktemp("bench_import") / "bars-100k.csv"
    rng = random.Random(7)
    start = datetime(2020, 1, 2, 14, 30, tzinfo=UTC)
    price = 100.0
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(ROWS):
        o = price
        c = max(1.0, o + rng.gauss(0, 0.05))
        h = max(o, c) + abs(rng.gauss(0, 0.02))
        lo = min(o, c) - abs(rng.gauss(0, 0.02))
        ts = (start + timedelta(minutes=i)).astimezone().isoformat()
        lines.append(f"{ts},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{rng.randint(100, 50_000)}")
        price = c
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_bench_import_100k(benchmark, csv_100k: Path, tmp_path: Path) -> None:
    counter = iter(range(1_000))

    def setup():
        engine = init_db(f"sqlite:///{tmp_path / f'bench-{next(counter)}.sqlite'}")
        return (engine, csv_100k, "BENCH", "1m"), {}

    report = benchmark.pedantic(import_csv, setup=setup, rounds=5, warmup_rounds=0)
    assert report.imported == ROWS
    assert report.rejected_total == 0
    if not benchmark.enabled:
        return
    fastest = benchmark.stats.stats.min
    rate = ROWS / fastest
    benchmark.extra_info["rows"] = ROWS
    benchmark.extra_info["rows_per_second"] = round(rate)
    print(f"\nimport_csv: {ROWS:,} rows in {fastest:.2f} s = {rate:,.0f} rows/s (fastest round)")
    assert rate >= TARGET_ROWS_PER_SECOND, f"{rate:,.0f} rows/s, target {TARGET_ROWS_PER_SECOND:,}"


def test_bench_reimport_100k(benchmark, csv_100k: Path, tmp_path: Path) -> None:
    """Importing the same file again: every row is already present, nothing is written."""
    engine = init_db(f"sqlite:///{tmp_path / 'again.sqlite'}")
    import_csv(engine, csv_100k, "BENCH", "1m")
    report = benchmark.pedantic(
        import_csv, args=(engine, csv_100k, "BENCH", "1m"), rounds=3, warmup_rounds=0
    )
    assert (report.imported, report.already_present) == (0, ROWS)
    if benchmark.enabled:
        fastest = benchmark.stats.stats.min
        benchmark.extra_info["rows_per_second"] = round(ROWS / fastest)
        print(f"\nre-import: {ROWS:,} rows in {fastest:.2f} s = {ROWS / fastest:,.0f} rows/s")
    engine.dispose()
