"""Benchmarks of the importers.

Run: ``.venv/bin/python -m pytest tests/benchmarks/test_bench_import.py --benchmark-only -s``
(the project skips benchmarks by default). Figures are printed with ``-s`` and kept in each
benchmark's ``extra_info``.

- 100,000 one-minute bars with the ``csv`` module (the reference reader): at least 40,000
  rows/s on the fastest round, and re-importing them (every row already present).
- 1,000,000 bars with pyarrow (the ``sessionkit[arrow]`` extra), from CSV and from Parquet,
  into a new SQLite database: what the benchmark times is one ``import_bars`` call (the
  database file is created before the clock starts; the modules are loaded by a warm-up
  round). Before each round, a raw ``sqlite3`` ``executemany`` of the same tuples (one
  one-row ``INSERT`` each, into the same schema, one transaction) is timed too, so the two
  are interleaved and the machine's load hits both alike. The import must take at most
  :data:`MAX_RATIO` times the raw insert (fastest against fastest): it parses, checks,
  finds duplicates and compares with stored rows on top, but inserts 100 rows per
  statement, and reading overlaps the inserts.
- Peak memory (the ``VmHWM`` of a child process doing only the import) for 1M, 2M and 5M
  rows, CSV and Parquet: it must not grow with the rows (the old importer took 730 MB for
  1M rows and 3.47 GB for 5M).
- Every symbol of a Polygon-style day file (2,000 tickers x 390 minutes, no ``--symbol``)
  in one pass, in ticker order and in time order; rows/s, and the time one symbol's import
  of the same file takes (what importing them one at a time would cost per symbol).
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from sessionkit.engine.store.db import init_db
from sessionkit.engine.store.import_csv import import_csv
from sessionkit.engine.store.importing import import_bars

ROWS = 100_000
TARGET_ROWS_PER_SECOND = 40_000
BIG = 1_000_000
ROUNDS = 5
MAX_RATIO = 1.0
PEAK_ROWS = (1_000_000, 2_000_000, 5_000_000)
MAX_PEAK_GROWTH = 1.1
"""The peak for 5M rows may exceed the peak for 1M rows by at most 10%."""


def write_bars_csv(path: Path, rows: int) -> Path:
    """A valid bars CSV of ``rows`` one-minute bars (offsets included, as exported)."""
    rng = random.Random(7)
    start = datetime(2020, 1, 2, 14, 30, tzinfo=UTC)
    price = 100.0
    with path.open("w", encoding="utf-8") as handle:
        handle.write("timestamp,open,high,low,close,volume\n")
        for i in range(rows):
            o = price
            c = max(1.0, o + rng.gauss(0, 0.05))
            h = max(o, c) + abs(rng.gauss(0, 0.02))
            lo = min(o, c) - abs(rng.gauss(0, 0.02))
            ts = (start + timedelta(minutes=i)).astimezone().isoformat()
            handle.write(f"{ts},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{rng.randint(100, 50_000)}\n")
            price = c
    return path


def write_big_csv(path: Path, rows: int) -> Path:
    """Like :func:`write_bars_csv` (UTC offsets, prices to the cent), built with numpy and
    pyarrow: 5M rows take seconds, not minutes."""
    rng = np.random.default_rng(7)
    close = np.maximum(1.0, 100.0 + np.cumsum(rng.normal(0, 0.05, rows)))
    opens = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(opens, close) + np.abs(rng.normal(0, 0.02, rows))
    low = np.minimum(opens, close) - np.abs(rng.normal(0, 0.02, rows))
    starts = np.datetime64("2020-01-02T14:30:00", "s") + np.arange(rows) * np.timedelta64(60, "s")
    table = pa.table(
        {
            "timestamp": pc.strftime(pa.array(starts), format="%Y-%m-%dT%H:%M:%S+00:00"),
            # rounding is monotonic, so low <= open, close <= high still holds
            **{
                name: pc.round(pa.array(values), 2)
                for name, values in (("open", opens), ("high", high), ("low", low))
            },
            "close": pc.round(pa.array(close), 2),
            "volume": pa.array(rng.integers(100, 50_000, rows)),
        }
    )
    with path.open("wb") as handle:
        handle.write(b"timestamp,open,high,low,close,volume\n")
        pa_csv.write_csv(
            table, handle, pa_csv.WriteOptions(include_header=False, quoting_style="none")
        )
    return path


def write_parquet(csv_path: Path) -> Path:
    """The CSV file's bars as Parquet (UTC timestamps, float prices, int64 volumes)."""
    types = {"timestamp": pa.timestamp("ns", "UTC"), "volume": pa.int64()}
    table = pa_csv.read_csv(csv_path, convert_options=pa_csv.ConvertOptions(column_types=types))
    path = csv_path.with_suffix(".parquet")
    pq.write_table(table, path)
    return path


@pytest.fixture(scope="module")
def csv_100k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bars_csv(tmp_path_factory.mktemp("bench_import") / "bars-100k.csv", ROWS)


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


@pytest.fixture(scope="module")
def files_1m(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    csv_path = write_big_csv(tmp_path_factory.mktemp("bench_arrow") / "bars-1m.csv", BIG)
    return {"csv": csv_path, "parquet": write_parquet(csv_path)}


def _raw_insert(path: Path, rows: list[tuple]) -> float:
    """Seconds for a plain ``sqlite3`` ``executemany`` of ``rows`` into a new database."""
    init_db(f"sqlite:///{path}").dispose()
    connection = sqlite3.connect(path)
    started = time.perf_counter()
    connection.executemany(
        "INSERT INTO bars (symbol, interval, start, open, high, low, close, volume) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    connection.commit()
    seconds = time.perf_counter() - started
    connection.close()
    path.unlink()
    return seconds


def _stored(path: Path) -> list[tuple]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(
            "SELECT symbol, interval, start, open, high, low, close, volume FROM bars "
            "ORDER BY start"
        ).fetchall()
    finally:
        connection.close()


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_bench_arrow_import_1m(benchmark, files_1m: dict[str, Path], kind: str, tmp_path) -> None:
    path = files_1m[kind]
    reference = tmp_path / "reference.sqlite"
    engine = init_db(f"sqlite:///{reference}")
    first = import_bars(engine, path, "BENCH", "1m")  # also loads the modules
    engine.dispose()
    assert first.reader == f"pyarrow {kind}"
    assert first.imported == BIG and first.rejected_total == 0
    rows = _stored(reference) if benchmark.enabled else []
    raw_seconds: list[float] = []
    engines = []
    counter = iter(range(1_000))

    def setup():
        if rows:  # the raw insert of the same tuples, just before each timed import
            raw_seconds.append(_raw_insert(tmp_path / "raw.sqlite", rows))
        engine = init_db(f"sqlite:///{tmp_path / f'bench-{next(counter)}.sqlite'}")
        engines.append(engine)
        return (engine, path, "BENCH", "1m"), {}

    report = benchmark.pedantic(import_bars, setup=setup, rounds=ROUNDS, warmup_rounds=0)
    for engine in engines:
        engine.dispose()
    assert report.imported == BIG and report.rejected_total == 0
    if not benchmark.enabled:
        return
    assert _stored(tmp_path / "bench-0.sqlite") == rows
    times = benchmark.stats.stats.data
    fastest, median = min(times), statistics.median(times)
    raw_fastest, raw_median = min(raw_seconds), statistics.median(raw_seconds)
    ratio = fastest / raw_fastest
    load = os.getloadavg()[0]
    benchmark.extra_info.update(
        {
            "rows": BIG,
            "import_seconds_fastest": round(fastest, 3),
            "import_seconds_median": round(median, 3),
            "raw_executemany_seconds_fastest": round(raw_fastest, 3),
            "raw_executemany_seconds_median": round(raw_median, 3),
            "ratio": round(ratio, 3),
            "load_average_1min": round(load, 2),
        }
    )
    print(
        f"\npyarrow {kind} import of {BIG:,} rows: fastest {fastest:.2f} s, median "
        f"{median:.2f} s; raw sqlite3 executemany of the same tuples: fastest "
        f"{raw_fastest:.2f} s, median {raw_median:.2f} s; ratio {ratio:.2f} (fastest, "
        f"{ROUNDS} interleaved rounds; load average {load:.1f})"
    )
    assert ratio <= MAX_RATIO, f"import takes {ratio:.2f}x the raw insert, limit {MAX_RATIO}"


# The child's own peak (VmHWM): ru_maxrss would keep the parent's peak across exec.
_PEAK = """
import sys
from sessionkit.engine.store.db import init_db
from sessionkit.engine.store.importing import import_bars
report = import_bars(init_db("sqlite:///" + sys.argv[2]), sys.argv[1], "BENCH", "1m")
assert report.reader.startswith("pyarrow") and report.rejected_total == 0, report.summary()
assert "pandas" not in sys.modules
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(int(status.split()[0]) * 1024)
"""


def _peak_bytes(path: Path, db_path: Path) -> int:
    result = subprocess.run(
        [sys.executable, "-c", _PEAK, str(path), str(db_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    db_path.unlink()
    return int(result.stdout.strip().splitlines()[-1])


def test_bench_import_peak_memory(benchmark, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("bench_peak")

    def measure() -> dict[str, dict[int, int]]:
        peaks: dict[str, dict[int, int]] = {"csv": {}, "parquet": {}}
        for rows in PEAK_ROWS:
            csv_path = write_big_csv(folder / f"bars-{rows}.csv", rows)
            parquet_path = write_parquet(csv_path)
            peaks["csv"][rows] = _peak_bytes(csv_path, folder / "peak.sqlite")
            peaks["parquet"][rows] = _peak_bytes(parquet_path, folder / "peak.sqlite")
            csv_path.unlink()
            parquet_path.unlink()
        return peaks

    peaks = benchmark.pedantic(measure, rounds=1, warmup_rounds=0)
    for kind, by_rows in peaks.items():
        shown = ", ".join(
            f"{rows // 10**6}M rows {peak / 2**20:.0f} MB" for rows, peak in by_rows.items()
        )
        print(f"\npeak RSS of a pyarrow {kind} import: {shown}")
        benchmark.extra_info[f"peak_rss_bytes_{kind}"] = {str(r): p for r, p in by_rows.items()}
    for kind, by_rows in peaks.items():
        low, high = by_rows[PEAK_ROWS[0]], by_rows[PEAK_ROWS[-1]]
        assert high <= MAX_PEAK_GROWTH * low, (
            f"{kind}: {low / 2**20:.0f} MB -> {high / 2**20:.0f} MB"
        )


MANY_TICKERS = 2_000
"""Tickers of the many-symbol day file (a Polygon day file holds about 11,000)."""


def write_day_file(path: Path, tickers: int, order: str) -> Path:
    """A Polygon-style day file: ``tickers`` tickers x 390 minutes, ``window_start`` in ns,
    in ticker order (as Polygon ships them) or in time order."""
    minutes = 390
    rng = np.random.default_rng(3)
    names = np.array([f"T{i:05d}" for i in range(tickers)], dtype=object)
    ticker = np.repeat(names, minutes)
    start = np.tile(1709562600 + 60 * np.arange(minutes), tickers).astype(np.int64) * 10**9
    opens = np.round(100 + rng.random(tickers * minutes), 2)
    closes = np.round(100 + rng.random(tickers * minutes), 2)
    table = pa.table(
        {
            "ticker": ticker,
            "volume": rng.integers(1, 10_000, tickers * minutes),
            "open": opens,
            "close": closes,
            "high": np.maximum(opens, closes) + 0.01,
            "low": np.minimum(opens, closes) - 0.01,
            "window_start": start,
        }
    )
    if order == "time":
        table = table.take(np.lexsort((ticker.astype(str), start)))
    pa_csv.write_csv(table, path)
    return path


@pytest.mark.parametrize("order", ["ticker", "time"])
def test_bench_import_every_symbol(benchmark, tmp_path: Path, order: str) -> None:
    """Every symbol of a many-symbol day file (no ``--symbol``) in one pass, in ticker
    and in time order (every chunk then holds every ticker): rows/s, against importing
    one symbol of the same file (which reads it all)."""
    path = write_day_file(tmp_path / f"day-{order}.csv", MANY_TICKERS, order)
    rows = MANY_TICKERS * 390
    engines = []

    def setup():
        engine = init_db(f"sqlite:///{tmp_path / f'every-{len(engines)}.sqlite'}")
        engines.append(engine)
        return (engine,), {}

    def run(engine) -> None:
        report = import_bars(engine, path, None, "1m")
        assert (report.imported, len(report.symbols)) == (rows, MANY_TICKERS)

    benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
    one = init_db(f"sqlite:///{tmp_path / 'one.sqlite'}")
    started = time.perf_counter()
    assert import_bars(one, path, "T00007", "1m").imported == 390
    single = time.perf_counter() - started
    for engine in (*engines, one):
        engine.dispose()
    best = benchmark.stats.stats.min
    benchmark.extra_info.update(
        {"rows": rows, "rows_per_second": round(rows / best), "one_symbol_seconds": single}
    )
    print(
        f"\nevery symbol ({MANY_TICKERS:,} tickers, {order} order): {rows:,} rows in "
        f"{best:.2f}s = {rows / best:,.0f} rows/s; one symbol of the file: {single:.2f}s "
        f"({MANY_TICKERS:,} one at a time: about {single * MANY_TICKERS / 60:,.0f} min)"
    )
