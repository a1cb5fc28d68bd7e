"""Defects QA found in the import of bars: line numbers after a quoted line break,
Parquet times in a DST gap, fractions below a microsecond, one naive time among times with
offsets, rows out of time order, and prices at or below zero.
"""

from __future__ import annotations

from pathlib import Path

from sessionkit.engine.store import importing
from sessionkit.engine.store.importing import import_bars
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
