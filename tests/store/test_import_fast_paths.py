"""The importer's fast paths give what the reference gives.

- pyarrow parses the numbers of a clean CSV block itself (no pattern matching, no text):
  for every number text, the rows and report equal the ``csv`` module's;
- the written starts are kept as runs (memory flat in rows): a lookup in the runs finds
  exactly what a dictionary of every start would;
- SQLite inserts many rows per statement: the counts of imported, already present and
  conflicting rows are exact across whole statements and the rest;
- Parquet columns of other types (unsigned, float volumes, nulls, naive times) are checked
  like their text;
- pyarrow never imports pandas during an import (0.4 s and 50 MB for nothing).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sessionkit.engine.store import import_arrow, importing
from sessionkit.engine.store.importing import _Runs, import_bars
from test_import_csv import HEADER
from test_import_formats import _both, _rows

PRICES = [
    "1.5",
    "+1.5",
    " 1.5",
    "1.5 ",
    "1_5",
    "1e0",
    "1E+00",
    ".5",
    "5.",
    "0x1",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "nan(1)",
    "1e400",
    "1e-400",
    "0001.5",
    "\u0661",  # ARABIC-INDIC DIGIT ONE: Python's float reads it
    "1.5e",
    "-0",
    "9007199254740993",
    "0.1000000000000000055511151231257827021181583404541015625",
]
VOLUMES = [
    "10",
    "+10",
    " 10",
    "10 ",
    "1_0",
    "010",
    "-0",
    "10.0",
    "1e1",
    "9223372036854775807",
    "9223372036854775808",
    "-1",
    "\u0661",
    # fractional (crypto, FX): stored as doubles, the whole ones above as integers
    "7.5",
    "0.00000001",
    "1271.03400000",
    "1.5e-3",
    ".5",
    "-0.5",
    "1e300",
]


def _file(path: Path, price: str, volume: str, rows: int = 3, good: bool = False) -> Path:
    """``rows`` bars of these prices and volume, and with ``good`` one more of a plain
    price and volume (a file whose every row is rejected is refused)."""
    first = datetime.fromisoformat("2011-01-03T09:30:00-05:00")
    lines = [
        f"{(first + timedelta(minutes=i)).isoformat()},{price},{price},{price},{price},{volume}"
        for i in range(rows)
    ]
    if good:
        lines.append(f"{(first + timedelta(minutes=rows)).isoformat()},1.5,1.5,1.5,1.5,10")
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("price", PRICES)
def test_every_price_text_reads_as_the_csv_module_reads_it(db, tmp_path: Path, price) -> None:
    report, rows = _both(db, _file(tmp_path / "p.csv", price, "10", good=True), "SPY", "1m")
    assert report.reader == "pyarrow csv"
    assert report.rows_read == 4


@pytest.mark.parametrize("volume", VOLUMES)
def test_every_volume_text_reads_as_the_csv_module_reads_it(db, tmp_path: Path, volume) -> None:
    report, rows = _both(db, _file(tmp_path / "v.csv", "1.5", volume, good=True), "SPY", "1m")
    assert report.reader == "pyarrow csv"


def test_clean_blocks_take_the_fast_path_and_doubtful_ones_the_text(
    db,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcomes: list[bool] = []
    clean = import_arrow._clean

    def spy(*args, **kwargs):
        batch = clean(*args, **kwargs)
        outcomes.append(batch is not None)
        return batch

    monkeypatch.setattr(import_arrow, "_clean", spy)
    report = import_bars(db(), _file(tmp_path / "a.csv", "1.5", "10", 250), "SPY", "1m")
    assert (outcomes, report.imported) == ([True], 250)
    outcomes.clear()
    bad = tmp_path / "b.csv"
    bad.write_text(_file(tmp_path / "c.csv", "1.5", "10", 250).read_text() + "x,1,1,1,1,1\n")
    report = import_bars(db(), bad, "SPY", "1m")
    # (parsed as int64 volumes, then as float64 ones, then read as text)
    assert (outcomes, report.imported, report.rejected_total) == ([False, False], 250, 1)
    # Fractional volumes (crypto, FX): the int64 parse fails, the float64 one passes.
    outcomes.clear()
    report = import_bars(
        engine := db(), _file(tmp_path / "f.csv", "1.5", "0.125", 250), "SPY", "1m"
    )
    assert (outcomes, report.imported) == ([False, True], 250)
    assert {r[-1] for r in _rows(engine)} == {0.125}


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.sampled_from([1, 1, 1, 1, 5, 60, 1000]), min_size=1, max_size=60),
    line_gaps=st.lists(st.sampled_from([1, 1, 1, 2, 7]), min_size=60, max_size=60),
    shuffle=st.booleans(),
    queries=st.lists(st.integers(-5, 5000), max_size=40),
)
def test_runs_find_what_a_dictionary_finds(gaps, line_gaps, shuffle, queries) -> None:
    minutes = np.cumsum(np.asarray(gaps, dtype=np.int64)) + 100
    lines = np.cumsum(np.asarray(line_gaps[: len(gaps)], dtype=np.int64))
    if shuffle:
        lines = lines[::-1].copy()
    runs = _Runs.of(minutes, lines)
    assert runs.counts.sum() == len(minutes)
    every = dict(zip(minutes.tolist(), lines.tolist(), strict=True))
    asked = np.asarray(queries + minutes.tolist(), dtype=np.int64)
    hit, found = runs.find(asked)
    assert hit.tolist() == [m in every for m in asked.tolist()]
    assert found[hit].tolist() == [every[m] for m in asked[hit].tolist()]


def test_runs_of_regular_bars_are_few() -> None:
    # 100 sessions of 390 one-minute bars, one line each: one run per session
    minutes = np.concatenate([np.arange(390) + day * 1440 for day in range(100)])
    runs = _Runs.of(minutes.astype(np.int64), np.arange(len(minutes), dtype=np.int64) + 2)
    assert len(runs.heads) == 100


def test_counts_across_whole_statements_and_the_rest(db, tmp_path: Path) -> None:
    engine = db()
    rows = 1234
    lines = [
        f"2011-01-{3 + i // 390:02d}T{9 + (30 + i % 390) // 60:02d}:{(30 + i % 390) % 60:02d}"
        f":00-05:00,1,2,0.5,1.5,{i}"
        for i in range(rows)
    ]
    first = tmp_path / "first.csv"
    stored = lines[100:357] + [line.replace(",1.5,", ",1.25,") for line in lines[700:705]]
    first.write_text(HEADER + "\n".join(stored) + "\n")
    assert import_bars(engine, first, "SPY", "1m").imported == 262
    path = tmp_path / "all.csv"
    path.write_text(HEADER + "\n".join(lines) + "\n")
    for reader in ("arrow", "csv"):
        report = import_bars(engine, path, "SPY", "1m", reader=reader)
        if reader == "arrow":
            assert (report.imported, report.already_present) == (rows - 262, 262)
        else:
            assert (report.imported, report.already_present) == (0, rows)
        assert report.conflicting == 5
    assert len(_rows(engine)) == rows


def test_parquet_columns_of_other_types(db, tmp_path: Path) -> None:
    starts = [datetime(2011, 1, 3, 9, 30 + i) for i in range(7)]
    table = pa.table(
        {
            "timestamp": pa.array(starts, pa.timestamp("s")),  # naive: --tz
            "open": pa.array([1, 1, None, 1, 1, 1, 1], pa.int32()),
            "high": pa.array([2.0] * 7),
            "low": pa.array([0.5] * 7, pa.float32()),
            "close": pa.array([1.5] * 7),
            "volume": pa.array([10, 2**63, 10, 2**63 - 1, 0, 3, 4], pa.uint64()),
        }
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    float_volumes = table.set_column(5, "volume", pa.array([7.0, 7.5, 1.0, 1e30, 0.0, -1.0, 4]))
    float_path = tmp_path / "float.parquet"
    pq.write_table(float_volumes, float_path)
    report = import_bars(db(), path, "SPY", "1m", "America/New_York")
    assert report.rejected == {importing.VOLUME_TOO_LARGE: 1, importing.MISSING: 1}
    assert [ex.line for ex in report.examples[importing.VOLUME_TOO_LARGE]] == [2]
    assert report.imported == 5
    report = import_bars(engine := db(), float_path, "SPY", "1m", "America/New_York")
    assert report.rejected == {
        importing.MISSING: 1,
        importing.VOLUME_TOO_LARGE: 1,
        importing.NEGATIVE_VOLUME: 1,
    }
    stored = [r[-1] for r in _rows(engine)]
    assert stored == [7, 7.5, 0, 4]
    assert [type(v) for v in stored] == [int, float, int, int]


START = 1709683200
"""2024-03-06 00:00 UTC as a Unix epoch in seconds."""

EPOCHS = [
    (str(START), START),  # seconds
    (str(START * 1000), START),  # milliseconds (Binance, Polygon)
    (str(START * 10**6), START),  # microseconds
    (str(START * 10**9), START),  # nanoseconds (Databento's ts_event as a number)
    (f" {START}", START),  # padded, as the csv module reads it
    (f"00{START}", START),
    (str(START * 1000 + 30_000), importing.NOT_WHOLE_MINUTE),
    (str(START + 7), importing.NOT_WHOLE_MINUTE),
    ("-60", -60),  # 1969-12-31 23:59
    (str(-3 * 10**9), importing.TIME_OUT_OF_RANGE),  # 1874
    ("9" * 19, importing.TIME_OUT_OF_RANGE),  # above 2^63-1: the row rules read it
    ("9" * 20, importing.BAD_TIMESTAMP),
    (f"+{START}", importing.BAD_TIMESTAMP),
    (f"{START}.0", importing.BAD_TIMESTAMP),
]


@pytest.mark.parametrize(("text", "expected"), EPOCHS, ids=[text for text, _ in EPOCHS])
def test_unix_epoch_timestamps_in_any_unit(db, tmp_path: Path, text, expected) -> None:
    """A whole-number timestamp is a Unix epoch, its unit told by its size; both readers
    read it alike (it was "unparseable timestamp")."""
    path = tmp_path / "epochs.csv"
    good = [str((START + 600 + 60 * i) * 1000) for i in range(3)]  # ms, like Binance
    path.write_text(
        HEADER + "".join(f"{ts},1.5,2,1,1.5,10\n" for ts in [*good, text]), encoding="utf-8"
    )
    report, rows = _both(db, path, "SPY", "1m")
    starts = [int(row[2].timestamp()) for row in rows]
    if isinstance(expected, int):
        assert report.rejected == {} and report.imported == 4
        assert sorted(starts) == sorted([expected, START + 600, START + 660, START + 720])
    else:
        assert report.rejected == {expected: 1}, report.rejected
        assert starts == [START + 600, START + 660, START + 720]


def test_parquet_epoch_columns(db, tmp_path: Path) -> None:
    """A Parquet column of whole numbers is read as Unix epochs (signed or not), and
    checked like their text."""
    values = [START * 1000, (START + 60) * 1000, START * 1000 + 1, (START + 120) * 10**9]
    for kind in (pa.int64(), pa.uint64()):
        table = pa.table(
            {
                "timestamp": pa.array(values, kind),
                "open": [1.0] * 4,
                "high": [2.0] * 4,
                "low": [0.5] * 4,
                "close": [1.5] * 4,
                "volume": [10] * 4,
            }
        )
        path = tmp_path / f"epochs-{kind}.parquet"
        pq.write_table(table, path)
        report = import_bars(engine := db(), path, "SPY", "1m")
        assert report.rejected == {importing.NOT_WHOLE_MINUTE: 1}
        assert [int(r[2].timestamp()) for r in _rows(engine)] == [START, START + 60, START + 120]


_NO_PANDAS = """
import sys
from sessionkit.engine.store.db import init_db
from sessionkit.engine.store.importing import import_bars
for path in sys.argv[1:]:
    report = import_bars(init_db("sqlite:///" + path + ".sqlite"), path, "SPY", "1m")
    assert report.imported == 250, report.summary()
print("pandas" in sys.modules)
"""


def test_an_import_does_not_import_pandas(tmp_path: Path) -> None:
    pytest.importorskip("pandas")  # installed with the dask and databento extras
    csv_path = _file(tmp_path / "a.csv", "1.5", "10", 250)
    parquet = tmp_path / "a.parquet"
    pq.write_table(pa_csv.read_csv(csv_path), parquet)
    result = subprocess.run(
        [sys.executable, "-c", _NO_PANDAS, str(csv_path), str(parquet)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "False"
