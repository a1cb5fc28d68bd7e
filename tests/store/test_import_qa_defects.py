"""Defects QA found in the import of bars: line numbers after a quoted line break,
Parquet times in a DST gap, fractions below a microsecond, one naive time among times with
offsets, rows out of time order, and prices at or below zero.
"""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sessionkit.engine.errors import DataImportError, NothingImportedError
from sessionkit.engine.store import import_csv, importing
from sessionkit.engine.store.db import BarRecord
from sessionkit.engine.store.importing import import_bars
from sqlalchemy import select
from sqlalchemy.engine import CursorResult
from test_import_formats import _both

HEADER = "timestamp,open,high,low,close,volume"


# --- 2: line numbers after a quoted field that spans lines -----------------------------


def test_rows_after_a_quoted_line_break_are_numbered_by_their_line(db, tmp_path: Path) -> None:
    """QA: pyarrow numbered rows by count (line 3) where the csv module numbers them by
    line (line 4): a quoted field of two lines before them; duplicates' "first at" too."""
    path = tmp_path / "notes.csv"
    path.write_text(
        f"{HEADER},note\n"
        '2011-01-03T09:30:00-05:00,126.71,126.74,126.66,126.72,2259046,"multi\n'  # 2-3
        'line note"\n'
        "2011-01-03T09:31:00-05:00,126.72,126.79,126.69,126.79,-5,x\n"  # 4
        "2011-01-03T09:32:00-05:00,126.72,126.79,126.69,126.79,5,x\n"  # 5
        "2011-01-03T09:32:00-05:00,126.72,126.79,126.69,126.79,6,x\n"  # 6: duplicate of 5
    )
    report, _rows = _both(db, path, "SPY", "1m")
    assert [ex.line for ex in report.examples[importing.NEGATIVE_VOLUME]] == [4]
    (duplicate,) = report.examples[importing.DUPLICATE]
    assert duplicate.line == 6 and "first at line 5" in duplicate.detail
    assert report.imported == 2


def test_quoted_fields_without_line_breaks_stay_with_pyarrow(db, tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text(
        f"{HEADER},note\n"
        '"2011-01-03T09:30:00-05:00","1","2","0.5","1.5","10","a, b"\n'
        '"2011-01-03T09:31:00-05:00","1","2","0.5","1.5","-1","c"\n'
    )
    report = import_bars(db(), path, "SPY", "1m", reader="arrow")
    assert report.reader == "pyarrow csv"
    assert [ex.line for ex in report.examples[importing.NEGATIVE_VOLUME]] == [3]


# --- 3: a naive Parquet time in a DST gap ------------------------------------------------


def _parquet(path: Path, stamps: pa.Array) -> Path:
    n = len(stamps)
    table = pa.table(
        {
            "timestamp": stamps,
            "open": [1.0] * n,
            "high": [2.0] * n,
            "low": [0.5] * n,
            "close": [1.5] * n,
            "volume": [10] * n,
        }
    )
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("ambiguous", ["reject", "earliest", "latest"])
def test_a_naive_parquet_time_in_a_dst_gap_rejects_its_row(
    db, tmp_path: Path, unit: str, ambiguous: str
) -> None:
    """QA: 02:30 on the night clocks go forward failed the whole file ("Casting from
    timestamp[us, tz=America/New_York] to timestamp[s, tz=UTC] would lose data"); CSV
    rejects that row only."""
    stamps = [
        datetime(2011, 3, 11, 9, 30),
        datetime(2011, 3, 13, 2, 30),
        datetime(2011, 3, 14, 9, 30),
    ]
    path = _parquet(tmp_path / "gap.parquet", pa.array(stamps, pa.timestamp(unit)))
    report = import_bars(
        db(),
        path,
        "SPY",
        "1m",
        "America/New_York",
        ambiguous=ambiguous,  # type: ignore[arg-type]
    )
    assert report.imported == 2
    assert report.rejected == {importing.NONEXISTENT_TIME: 1}
    (example,) = report.examples[importing.NONEXISTENT_TIME]
    assert example.line == 2
    # as the CSV file of the same rows
    csv = tmp_path / "gap.csv"
    csv.write_text(HEADER + "\n" + "".join(f"{t.isoformat()},1,2,0.5,1.5,10\n" for t in stamps))
    same, _rows = _both(db, csv, "SPY", "1m", "America/New_York", ambiguous=ambiguous)
    assert same.rejected == report.rejected


# --- 4: fractions below a microsecond -----------------------------------------------------


def test_fractions_below_a_microsecond_are_not_a_whole_minute(db, tmp_path: Path) -> None:
    """QA: 09:32:00.0000001 was read as 09:32 (datetime drops what is below a microsecond),
    while the epoch in nanoseconds 1 ns off a minute was rejected."""
    path = tmp_path / "fractions.csv"
    path.write_text(
        HEADER + "\n"
        "2011-01-03T09:30:00.000000000-05:00,1,2,0.5,1.5,10\n"  # 2 good: zeros only
        "2011-01-03T09:31:00.000001-05:00,1,2,0.5,1.5,10\n"  # 3
        "2011-01-03T09:32:00.0000001-05:00,1,2,0.5,1.5,10\n"  # 4
        "2011-01-03T09:33:00.000000001-05:00,1,2,0.5,1.5,10\n"  # 5
        "2011-01-03 09:34:00.0000000010Z,1,2,0.5,1.5,10\n"  # 6
        "1294065240000000001,1,2,0.5,1.5,10\n"  # 7
        "2011-01-03T09:35:00.0000000-05:00,1,2,0.5,1.5,10\n"  # 8 good: zeros only
    )
    report, rows = _both(db, path, "SPY", "1m")
    assert [ex.line for ex in report.examples[importing.NOT_WHOLE_MINUTE]] == [3, 4, 5, 6, 7]
    assert [r[2].minute for r in rows] == [30, 35]


@pytest.mark.parametrize("tz", ["UTC", None])
def test_a_parquet_nanosecond_off_a_minute_is_not_a_whole_minute(
    db, tmp_path: Path, tz: str | None
) -> None:
    minute = 1294065060 * 10**9
    stamps = pa.array(
        [minute - 60 * 10**9, minute + 1, minute + 60 * 10**9 + 1000], pa.timestamp("ns", tz)
    )
    path = _parquet(tmp_path / "ns.parquet", stamps)
    report = import_bars(db(), path, "SPY", "1m", None if tz else "UTC")
    assert report.imported == 1
    examples = report.examples[importing.NOT_WHOLE_MINUTE]
    assert [ex.line for ex in examples] == [2, 3]
    assert examples[0].detail.startswith("2011-01-03T14:31:00.000000001")
    assert examples[1].detail.startswith("2011-01-03T14:32:00.000001")


# --- 5: one naive time among times with offsets -------------------------------------------


def test_one_naive_time_among_offsets_rejects_its_row(db, tmp_path: Path) -> None:
    """QA: one row without an offset in a file of 1,000 with offsets stopped the import
    (exit 2, none of the 999 good rows imported)."""
    path = tmp_path / "mixed.csv"
    good = [f"2011-01-03T{9 + (30 + i) // 60:02d}:{(30 + i) % 60:02d}:00-05:00" for i in range(5)]
    path.write_text(
        HEADER
        + "\n"
        + "".join(f"{t},1,2,0.5,1.5,10\n" for t in good[:2])
        + "2011-01-05T09:54:00,1,2,0.5,1.5,10\n"  # line 4: naive
        + "".join(f"{t},1,2,0.5,1.5,10\n" for t in good[2:])
    )
    report, rows = _both(db, path, "SPY", "1m")
    assert report.imported == 5
    assert report.rejected == {importing.NO_OFFSET: 1}
    (example,) = report.examples[importing.NO_OFFSET]
    assert (example.line, example.detail) == (4, "'2011-01-05T09:54:00'")
    assert "UTC offset" in importing.NO_OFFSET and "--tz" in importing.NO_OFFSET


@pytest.mark.parametrize("reader", ["csv", "arrow"])
def test_a_file_of_naive_times_without_tz_still_says_to_give_it(
    db, tmp_path: Path, reader: str
) -> None:
    """A file none of whose rows is valid, most for want of --tz: the message of before,
    naming the first naive time (a row of another fault before it changes nothing)."""
    path = tmp_path / "naive.csv"
    path.write_text(
        HEADER + "\n"
        "2011-01-03 09:30:00,1,x,0.5,1.5,10\n"  # 2: non-numeric
        "2011-01-03 09:31:00,1,2,0.5,1.5,10\n"  # 3: naive
        "2011-01-03 09:32:00,1,2,0.5,1.5,10\n"
    )
    engine = db()
    with pytest.raises(DataImportError) as info:
        import_bars(engine, path, "SPY", "1m", reader=reader)  # type: ignore[arg-type]
    assert not isinstance(info.value, NothingImportedError)  # (stops an import of several)
    assert str(info.value) == (
        f"{path}, line 3: timestamp '2011-01-03 09:31:00' has no UTC offset; give the "
        "file's time zone (--tz ZONE, e.g. --tz America/New_York)"
    )


def test_naive_times_among_offsets_and_other_faults_read_alike(db, tmp_path: Path) -> None:
    """Both readers reject the same rows for the same reasons, in line order (pyarrow
    rejects the plain naive times at once, the others through the row rules)."""
    path = tmp_path / "faults.csv"
    path.write_text(
        HEADER + "\n"
        "2011-01-03T09:30:00-05:00,1,2,0.5,1.5,10\n"  # 2 good
        "2011-01-03 09:31:00,1,2,0.5,1.5,10\n"  # 3 naive
        "2011-01-03 09:32:00,1,x,0.5,1.5,10\n"  # 4 non-numeric (checked first)
        "2011-01-03T09:33,1,2,0.5,1.5,10\n"  # 5 naive, no seconds
        "2011-01-03 09:34:00,1,2,3,1.5,10\n"  # 6 naive (before high < low)
        "2011-01-03T09:35:00-05:00,1,2,3,1.5,10\n"  # 7 high < low
        "2011-01-03T09:36:00-05:00,1,2,0.5,1.5,10\n"  # 8 good
        "2011.01.03 09:37:00,1,2,0.5,1.5,10\n"  # 9 naive
    )
    report, rows = _both(db, path, "SPY", "1m")
    assert [ex.line for ex in report.examples[importing.NO_OFFSET]] == [3, 5, 6, 9]
    assert report.examples[importing.NO_OFFSET][1].detail == "'2011-01-03T09:33'"
    assert report.rejected[importing.NON_NUMERIC] == 1
    assert report.rejected[importing.HIGH_BELOW_LOW] == 1
    assert len(rows) == 2


# --- 6: rows out of time order --------------------------------------------------------------


def _minutes(n: int) -> list[str]:
    """``n`` one-minute bars from 2011-01-03 00:00 New York (any hour: 1m bars)."""
    return [
        f"2011-01-{3 + i // 1440:02d}T{(i // 60) % 24:02d}:{i % 60:02d}:00-05:00" for i in range(n)
    ]


def test_rows_out_of_order_read_back_no_more_stored_rows_than_they_have(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA: 2M shuffled rows took 79 s and 1.2 GB (in order: 3 s): each chunk read back
    every stored row of its span, which for rows out of order is most of the rows the
    import had written, so reading grew with the square of the rows."""
    monkeypatch.setattr(import_csv, "CHUNK", 50)  # many chunks, each spanning the file
    stamps = _minutes(2000)
    order = list(range(2000))
    random.Random(7).shuffle(order)
    path = tmp_path / "shuffled.csv"
    path.write_text(HEADER + "\n" + "".join(f"{stamps[i]},1,2,0.5,1.5,{i}\n" for i in order))
    fetched = []
    original = CursorResult.all

    def counting(self: CursorResult) -> list:
        rows = original(self)
        fetched.append(len(rows))
        return rows

    monkeypatch.setattr(CursorResult, "all", counting)
    engine = db()
    report = import_bars(engine, path, "SPY", "1m", reader="csv")
    assert report.imported == 2000
    assert sum(fetched) == 0  # (it was 39,000: every chunk read the earlier ones back)
    # Again, every row already present, a few of them with other values: each stored row
    # is read once, and the differences are seen.
    path.write_text(
        HEADER + "\n" + "".join(f"{stamps[i]},1,2,0.5,1.5,{i + (i % 500 == 0)}\n" for i in order)
    )
    fetched.clear()
    again = import_bars(engine, path, "SPY", "1m", reader="csv")
    assert (again.imported, again.already_present, again.conflicting) == (0, 2000, 4)
    assert sum(fetched) == 2000


def test_duplicates_out_of_order_keep_the_first_row_of_the_file(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_csv, "CHUNK", 7)
    stamps = _minutes(60)
    order = list(range(60))
    random.Random(3).shuffle(order)
    lines = [f"{stamps[i]},1,2,0.5,1.5,{i}" for i in order]
    lines += [f"{stamps[i]},1,2,0.5,1.5,{1000 + i}" for i in order[:10]]  # lines 62-71
    path = tmp_path / "dups.csv"
    path.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    engine = db()
    report = import_bars(engine, path, "SPY", "1m", reader="csv")
    assert (report.imported, report.rejected) == (60, {importing.DUPLICATE: 10})
    examples = report.examples[importing.DUPLICATE]
    assert [ex.line for ex in examples] == [62, 63, 64, 65, 66]
    assert "first at line 2;" in examples[0].detail
    with engine.connect() as connection:
        volumes = connection.execute(select(BarRecord.volume)).scalars().all()
    assert sorted(volumes) == list(range(60))  # the first of each, in file order


# --- 7: prices at or below zero ---------------------------------------------------------------


def test_prices_at_or_below_zero_are_kept_with_a_warning(db, tmp_path: Path) -> None:
    """QA: zero and negative prices were imported without a word. Negative prices exist
    (some futures, spreads): kept, with a warning giving their count and first line."""
    path = tmp_path / "prices.csv"
    path.write_text(
        HEADER + "\n"
        "2011-01-03T09:30:00-05:00,1,2,0.5,1.5,10\n"  # 2
        "2011-01-03T09:31:00-05:00,-1,126.79,-2,126.79,5\n"  # 3 negative
        "2011-01-03T09:32:00-05:00,0,0,0,0,5\n"  # 4 zero
        "2011-01-03T09:33:00-05:00,0,2,0,1,5\n"  # 5 a zero low
        "2011-01-03T09:33:00-05:00,0,0,0,0,5\n"  # 6 duplicate: not counted
    )
    report, rows = _both(db, path, "SPY", "1m")
    assert (report.imported, report.nonpositive) == (4, 3)
    (warning,) = report.warnings()
    assert warning.startswith(
        "3 of the 4 bars of SPY 1m have a price at or below zero, e.g. line 3: open -1.0, "
        "high 126.79, low -2.0, close 126.79; they are kept"
    )
    assert "3 bars with a price at or below zero (see the warning)" in report.summary()
    data = report.to_dict()
    assert data["warnings"] == [warning]
    assert data["nonpositive_prices"]["bars"] == 3
    assert data["nonpositive_prices"]["example"]["line"] == 3
    # None: no warning.
    clean = tmp_path / "clean.csv"
    clean.write_text(HEADER + "\n2011-01-03T09:30:00-05:00,1,2,0.5,1.5,10\n")
    report = import_bars(db(), clean, "SPY", "1m")
    assert (report.warnings(), report.to_dict()["nonpositive_prices"]["bars"]) == ([], 0)


def test_prices_at_or_below_zero_of_every_symbol(db, tmp_path: Path) -> None:
    path = tmp_path / "many.csv"
    path.write_text(
        "ticker," + HEADER + "\n"
        "AAA,2011-01-03T09:30:00-05:00,1,2,0.5,1.5,10\n"
        "BBB,2011-01-03T09:30:00-05:00,-1,2,-1.5,1.5,10\n"  # 3
        "AAA,2011-01-03T09:31:00-05:00,0,2,0,1.5,10\n"  # 4
    )
    report = import_bars(db(), path, None, "1m")
    assert report.nonpositive == 2
    (warning,) = report.warnings()
    assert warning.startswith("2 1m bars have a price at or below zero, e.g. BBB line 3:")
    counts = {s["symbol"]: s["nonpositive_prices"] for s in report.to_dict()["symbols"]}
    assert counts == {"AAA": 1, "BBB": 1}
