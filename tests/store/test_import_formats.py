"""The importers agree: the csv module (reference) and pyarrow give the same rows and report;
Parquet imports the rows of the CSV it came from; vendor headers, compression, range faults,
DST-ambiguous times and concurrent imports.
"""

from __future__ import annotations

import gzip
import threading
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from sessionkit.engine.errors import DataImportError
from sessionkit.engine.store import importing
from sessionkit.engine.store.db import BarRecord, init_db
from sessionkit.engine.store.importing import import_bars, parse_column_mapping
from sqlalchemy import Engine, select
from test_import_csv import GOOD, HEADER, MIXED

# MIXED without the lines pyarrow cannot split like the csv module (blank line, wrong
# field counts), so both readers really read it.
MIXED_SPLITTABLE = "".join(
    line for line in MIXED.splitlines(keepends=True) if line.strip() and line.count(",") == 5
)

FAULTS = (
    HEADER
    + "2011-01-03T09:30:00-05:00,1,2,0.5,1.5,9223372036854775808\n"  # 2 volume >= 2^63
    + "9999-12-31T09:30:00-05:00,1,2,0.5,1.5,10\n"  # 3 year 9999
    + "1899-12-31T09:30:00+00:00,1,2,0.5,1.5,10\n"  # 4 before 1900
    + "2011-02-30T09:30:00-05:00,1,2,0.5,1.5,10\n"  # 5 no such day
    + "2011-01-03T09:31:00-05:00,1,2,0.5,1.5,9223372036854775807\n"  # 6 good (2^63-1)
    + "2011-01-03T09:32:00-05:00, 1.25,2,0.5,1.5,10.0\n"  # 7 good (space, float volume)
    + "2011-01-03T09:33:00-05:00,1e0,2E0,.5,1.5,1e3\n"  # 8 good
    + "2011-01-03 09:34:00Z,1,2,0.5,1.5,10\n"  # 9 good
    + "2011-01-03T09:35:00.5-05:00,1,2,0.5,1.5,10\n"  # 10 not a whole minute
    + "2011-01-03T09:36-05:00,1,2,0.5,1.5,10\n"  # 11 good (no seconds)
    + "2011-01-03T09:37:00+0530,1,2,0.5,1.5,10\n"  # 12 good (+HHMM)
    + "2011-01-03T09:38:00-05:00,inf,2,0.5,1.5,10\n"  # 13 infinite
    + "2011-01-03T09:39:00-05:00,1,2,0.5,1.5,-0\n"  # 14 good (-0)
)


def _rows(engine: Engine) -> list[tuple]:
    with engine.connect() as connection:
        return [
            tuple(r)
            for r in connection.execute(
                select(
                    BarRecord.symbol,
                    BarRecord.interval,
                    BarRecord.start,
                    BarRecord.open,
                    BarRecord.high,
                    BarRecord.low,
                    BarRecord.close,
                    BarRecord.volume,
                ).order_by(BarRecord.symbol, BarRecord.start)
            )
        ]


def _same(a: importing.ImportReport, b: importing.ImportReport) -> None:
    da, dbb = a.to_dict(), b.to_dict()
    for key in ("reader", "seconds", "path"):
        da.pop(key), dbb.pop(key)
    da["rejected"] = sorted(da["rejected"], key=lambda r: r["reason"])
    dbb["rejected"] = sorted(dbb["rejected"], key=lambda r: r["reason"])
    assert da == dbb


def _both(db, path: Path, *args, **kwargs) -> tuple:
    reports = []
    rows = []
    for reader in ("csv", "arrow"):
        engine = db(reader)
        report = import_bars(engine, path, *args, reader=reader, **kwargs)
        reports.append(report)
        rows.append(_rows(engine))
    assert reports[0].reader == "csv module"
    _same(*reports)
    assert rows[0] == rows[1]
    # and the same types: a whole volume an integer, a fractional one a double
    assert [type(r[7]) for r in rows[0]] == [type(r[7]) for r in rows[1]]
    return reports[1], rows[1]


@pytest.mark.parametrize("text", [GOOD, MIXED_SPLITTABLE, FAULTS], ids=["good", "mixed", "faults"])
def test_arrow_and_csv_module_give_the_same_rows_and_report(db, tmp_path: Path, text) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(text)
    report, rows = _both(db, path, "SPY", "1m")
    assert report.reader == "pyarrow csv"
    assert report.rows_read == len(text.splitlines()) - 1


def test_range_faults_are_rejected_per_row_and_the_good_rows_kept(db, tmp_path: Path) -> None:
    path = tmp_path / "faults.csv"
    path.write_text(FAULTS)
    report, rows = _both(db, path, "SPY", "1m")

    def lines(reason: str) -> list[int]:
        return [ex.line for ex in report.examples[reason]]

    assert lines(importing.VOLUME_TOO_LARGE) == [2]
    assert lines(importing.TIME_OUT_OF_RANGE) == [3, 4]
    assert lines(importing.BAD_TIMESTAMP) == [5]
    assert lines(importing.NOT_WHOLE_MINUTE) == [10]
    assert lines(importing.NOT_FINITE) == [13]
    assert report.imported == 7
    volumes = [r[-1] for r in rows]
    assert 2**63 - 1 in volumes and 1000 in volumes and 0 in volumes


def test_naive_times_dst_nonexistent_and_ambiguous(db, tmp_path: Path) -> None:
    text = (
        HEADER
        + "2011-11-06 00:30:00,1,2,0.5,1.5,10\n"  # EDT
        + "2011-11-06 01:30:00,1,2,0.5,1.5,11\n"  # ambiguous (EDT then EST)
        + "2011-11-06 02:30:00,1,2,0.5,1.5,12\n"  # EST
        + "2011-03-13 02:30:00,1,2,0.5,1.5,13\n"  # does not exist
    )
    path = tmp_path / "dst.csv"
    path.write_text(text)
    report, rows = _both(db, path, "SPY", "1m", "America/New_York")
    assert report.rejected == {importing.AMBIGUOUS_TIME: 1, importing.NONEXISTENT_TIME: 1}
    assert report.examples[importing.AMBIGUOUS_TIME][0].line == 3
    assert [r[2] for r in rows] == [
        datetime(2011, 11, 6, 4, 30, tzinfo=UTC),
        datetime(2011, 11, 6, 7, 30, tzinfo=UTC),
    ]
    for policy, hour in (("earliest", 5), ("latest", 6)):
        report, rows = _both(db, path, "SPY", "1m", "America/New_York", ambiguous=policy)
        assert report.rejected == {importing.NONEXISTENT_TIME: 1}
        assert datetime(2011, 11, 6, hour, 30, tzinfo=UTC) in [r[2] for r in rows]


def test_the_real_est_bar_is_not_a_duplicate_of_the_edt_one(db, tmp_path: Path) -> None:
    text = HEADER + "2011-11-06 01:30:00,1,2,0.5,1.5,10\n2011-11-06 01:30:00,1,2,0.5,1.5,11\n"
    text += "2011-11-06 02:30:00,1,2,0.5,1.5,12\n"
    path = tmp_path / "twice.csv"
    path.write_text(text)
    report, _ = _both(db, path, "SPY", "1m", "America/New_York")
    assert report.rejected == {importing.AMBIGUOUS_TIME: 2}


def _parquet(path: Path, text: str) -> None:
    rows = [line.split(",") for line in text.splitlines()[1:]]
    table = pa.table(
        {
            "ts_event": pa.array(
                [datetime.fromisoformat(r[0]) for r in rows], pa.timestamp("ns", "UTC")
            ),
            "Open": pa.array([float(r[1]) for r in rows]),
            "High": pa.array([float(r[2]) for r in rows]),
            "Low": pa.array([float(r[3]) for r in rows]),
            "Close": pa.array([float(r[4]) for r in rows]),
            "Volume": pa.array([int(float(r[5])) for r in rows], pa.int64()),
            "symbol": pa.array(["SPY"] * len(rows)),
        }
    )
    pq.write_table(table, path, row_group_size=2)


def test_parquet_imports_the_rows_of_the_csv_it_came_from(db, tmp_path: Path) -> None:
    text = (
        HEADER
        + "2011-01-03T09:30:00-05:00,126.70,126.80,126.60,126.75,1000\n"
        + "2011-01-03T09:31:00-05:00,126.75,126.90,126.70,126.85,2000\n"
        + "2011-01-03T09:32:00-05:00,126.85,126.85,126.50,126.55,1500\n"
        + "2011-01-03T09:33:00-05:00,126.85,126.80,126.90,126.55,1500\n"  # high < low
        + "2011-01-03T09:33:30-05:00,126.85,126.85,126.50,126.55,1500\n"  # not whole
        + "2011-01-03T09:31:00-05:00,126.75,126.90,126.70,126.85,2000\n"  # duplicate
    )
    csv_path, parquet_path = tmp_path / "bars.csv", tmp_path / "bars.parquet"
    csv_path.write_text(text)
    _parquet(parquet_path, text)
    from_csv = import_bars(csv_engine := db("csv"), csv_path, "SPY", "1m")
    from_parquet = import_bars(pq_engine := db("pq"), parquet_path, "SPY", "1m")
    assert _rows(csv_engine) == _rows(pq_engine)
    assert from_parquet.reader == "pyarrow parquet"
    assert from_parquet.columns["timestamp"] == "ts_event"
    assert from_parquet.columns["symbol"] == "symbol"  # (every row's is SPY)
    assert from_parquet.ignored_columns == [] and from_parquet.other_symbols == {}
    assert from_parquet.rejected == from_csv.rejected
    assert [ex.line for ex in from_parquet.examples[importing.HIGH_BELOW_LOW]] == [4]
    assert "first at row 2" in from_parquet.examples[importing.DUPLICATE][0].detail
    again = import_bars(pq_engine, parquet_path, "SPY", "1m")
    assert (again.imported, again.already_present) == (0, 3)


MT5 = (
    "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
    "2024.03.05\t00:00:00\t1.08512\t1.08530\t1.08500\t1.08520\t120\t0\t2\n"
    "2024.03.05\t00:01:00\t1.08520\t1.08540\t1.08510\t1.08530\t80\t0\t2\n"
    "2024.13.05\t00:02:00\t1.08520\t1.08540\t1.08510\t1.08530\t80\t0\t2\n"
    "2024.03.05\t00:03:30\t1.08520\t1.08540\t1.08510\t1.08530\t80\t0\t2\n"
    "2024.03.05\t00:05:00\t1.08530\t1.08550\t1.08520\t1.08540\t95\t0\t2\n"
)
"""MetaTrader 5's "Export bars": tab-separated, dates as 2024.03.05, tick volume apart
(with a bad month and a time off the minute)."""


def test_metatrader_exports_tabs_and_dotted_dates(db, tmp_path: Path) -> None:
    """A tab-separated file (MetaTrader's exports) or a semicolon-separated one (with
    decimal commas) is read as its header says, and ``2024.03.05`` is a date, by both
    readers alike: the header was refused ("missing timestamp, open, ...")."""
    path = tmp_path / "EURUSD_M1.csv"
    path.write_text(MT5, encoding="utf-8")
    report, rows = _both(db, path, "EURUSD", "1m", "UTC")
    assert report.reader == "pyarrow csv"
    assert report.columns["timestamp"] == "<DATE>+<TIME>"
    assert report.columns["volume"] == "<VOL>"
    assert report.ignored_columns == ["<TICKVOL>", "<SPREAD>"]
    assert report.imported == 3
    assert report.rejected == {importing.BAD_TIMESTAMP: 1, importing.NOT_WHOLE_MINUTE: 1}
    assert [ex.detail for ex in report.examples[importing.BAD_TIMESTAMP]] == [
        "'2024.13.05 00:02:00'"
    ]
    assert [(r[2], r[6], r[7]) for r in rows] == [
        (datetime(2024, 3, 5, 0, 0, tzinfo=UTC), 1.0852, 0),
        (datetime(2024, 3, 5, 0, 1, tzinfo=UTC), 1.0853, 0),
        (datetime(2024, 3, 5, 0, 5, tzinfo=UTC), 1.0854, 0),
    ]
    # The tick volume, mapped by its name without the brackets.
    mapping = parse_column_mapping("volume=TICKVOL")
    _, ticks = _both(db, path, "EURUSD", "1m", "UTC", columns=mapping)
    assert [r[7] for r in ticks] == [120, 80, 95]
    # Semicolons (European exports): decimal commas, whose dots group thousands only
    # (test_decimal_comma_files_read_dots_as_thousands_or_reject_them); the details as
    # written.
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text(
        "\ufeffDate;Time;Open;High;Low;Close;Volume\n"
        "2024-03-05;00:00;1,0850;1,0860;1,0840;1,0855;10\n"
        "2024-03-05;00:01;1.0850;1.0860;1.0840;1.0855;12\n"
        "2024-03-05;00:02;1,0850;1,0830;1,0840;1,0855;12\n"
        "2024-03-05;00:03;1.234,5;1,0860;1,0840;1,0855;12\n",
        encoding="utf-8",
    )
    report, rows = _both(db, semicolons, "EURUSD", "1m", "UTC")
    assert report.imported == 1
    assert [(r[3], r[4], r[5], r[6], r[7]) for r in rows] == [(1.085, 1.086, 1.084, 1.0855, 10)]
    assert report.rejected == {
        importing.DECIMAL_DOT: 1,
        importing.HIGH_BELOW_LOW: 1,
        importing.OUTSIDE_RANGE: 1,  # open 1234.5
    }
    assert report.examples[importing.DECIMAL_DOT][0].detail.startswith(
        "open='1.0850', high='1.0860', low='1.0840', close='1.0855' (the file's numbers"
    )
    assert report.examples[importing.HIGH_BELOW_LOW][0].detail == "high 1,0830 < low 1,0840"
    # or decimal points, when the numbers have no comma
    points = tmp_path / "points.csv"
    points.write_text(semicolons.read_text().replace(",", "."), encoding="utf-8")
    report, rows = _both(db, points, "EURUSD", "1m", "UTC")
    assert [(r[3], r[7]) for r in rows] == [(1.085, 10), (1.085, 12)]
    assert report.rejected == {importing.HIGH_BELOW_LOW: 1, importing.NON_NUMERIC: 1}


DUKASCOPY = (
    "Gmt time,Open,High,Low,Close,Volume\n"
    "04.03.2024 00:00:00.000,1.08372,1.08378,1.08369,1.08376,187.41\n"
    "04.03.2024 00:01:00.000,1.08376,1.08381,1.08374,1.08379,103.5\n"
    "04.03.2024 00:02:30.000,1.08376,1.08381,1.08374,1.08379,103.5\n"
    "04.03.2024 00:03:00.500,1.08376,1.08381,1.08374,1.08379,103.5\n"
    "31.02.2024 00:03:00.000,1.08376,1.08381,1.08374,1.08379,103.5\n"
    "04.03.2024 00:04:00.000,1.08376,1.08381,1.08374,1.08379,0\n"
)


def test_dukascopy_exports_day_first_dates_in_gmt(db, tmp_path: Path, monkeypatch) -> None:
    """Dukascopy's FX exports: a ``Gmt time`` column (refused: "missing timestamp") of
    day-first dotted dates with milliseconds (``04.03.2024 00:01:00.000``: "unparseable
    timestamp"). The times are UTC without --tz; a zone given explicitly wins."""
    path = tmp_path / "EURUSD_Candlestick_1_M_BID.csv"
    path.write_text(DUKASCOPY, encoding="utf-8")
    report, rows = _both(db, path, "EURUSD", "1m")
    assert report.columns["timestamp"] == "Gmt time"
    assert [(r[2], r[7]) for r in rows] == [
        (datetime(2024, 3, 4, 0, 0, tzinfo=UTC), 187.41),
        (datetime(2024, 3, 4, 0, 1, tzinfo=UTC), 103.5),
        (datetime(2024, 3, 4, 0, 4, tzinfo=UTC), 0),
    ]
    assert report.rejected == {importing.BAD_TIMESTAMP: 1, importing.NOT_WHOLE_MINUTE: 2}
    assert [ex.line for ex in report.examples[importing.NOT_WHOLE_MINUTE]] == [4, 5]
    _report, zurich = _both(db, path, "EURUSD", "1m", "Europe/Zurich")
    assert zurich[0][2] == datetime(2024, 3, 3, 23, 0, tzinfo=UTC)
    # A clean file takes pyarrow's fast path (no row is read as text).
    from sessionkit.engine.store import import_arrow

    texts = []
    monkeypatch.setattr(import_arrow.RowRules, "check", lambda self, *a: texts.append(a))
    clean = tmp_path / "clean.csv"
    clean.write_text("".join(DUKASCOPY.splitlines(keepends=True)[i] for i in (0, 1, 2, 6)))
    assert import_bars(db(), clean, "EURUSD", "1m").imported == 3 and texts == []


def _polygon(path: Path, bad_line: bool = False) -> Path:
    """A Polygon flat file: every ticker's minutes in one file, ``window_start`` in ns."""
    t0 = 1709562600 * 10**9  # 2024-03-04 14:30 UTC
    lines = ["ticker,volume,open,close,high,low,window_start,transactions"]
    for m in range(5):
        for ticker, price in (("AAPL", 175.0), ("MSFT", 410.0), ("A", 150.0)):
            if ticker == "AAPL" and m == 2:
                continue  # AAPL has no bar at 14:32; MSFT and A have
            high = price - 1 if bad_line and ticker == "AAPL" and m == 3 else price + 0.2
            lines.append(f"{ticker},{1000 + m},{price},{price + 0.1},{high},{price - 0.1},"
                         f"{t0 + m * 60 * 10**9},12")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_file_of_many_symbols_imports_only_the_symbols_rows(db, tmp_path: Path) -> None:
    """Polygon's flat files (and Kaggle's, Databento's CSV) hold many tickers, in a
    ``ticker`` or ``symbol`` column. It was ignored: every row was taken as the imported
    symbol's, so another ticker's bar filled a minute the symbol lacks (here AAPL's 14:32
    became A's) and the rest were "duplicates". Now only the symbol's rows are read; the
    others are counted and skipped, not rejected; line numbers stay the file's."""
    path = _polygon(tmp_path / "2024-03-04.csv")
    report, rows = _both(db, path, "AAPL", "1m")
    assert report.columns["symbol"] == "ticker" and report.ignored_columns == ["transactions"]
    assert [(r[2].minute, r[3]) for r in rows] == [
        (30, 175.0),
        (31, 175.0),
        (33, 175.0),
        (34, 175.0),
    ]
    assert (report.rows_read, report.imported, report.rejected_total) == (14, 4, 0)
    assert report.other_symbols == {"MSFT": 5, "A": 5}
    assert "10 rows of 2 other symbols skipped (A 5, MSFT 5)" in report.summary()
    data = report.to_dict()["other_symbols"]
    assert data == {"rows": 10, "symbols": 2, "rows_per_symbol": {"A": 5, "MSFT": 5}}
    # A rejected row is named by its line in the file.
    bad, _rows_bad = _both(db, _polygon(tmp_path / "bad.csv", bad_line=True), "AAPL", "1m")
    assert [ex.line for ex in bad.examples[importing.HIGH_BELOW_LOW]] == [10]
    # --columns symbol=NAME names the column; Parquet files are read the same way.
    renamed = tmp_path / "renamed.csv"
    renamed.write_text(path.read_text().replace("ticker,", "Instrument,", 1))
    mapped, _ = _both(db, renamed, "AAPL", "1m", columns=parse_column_mapping("symbol=Instrument"))
    assert mapped.imported == 4 and mapped.other_symbols == {"MSFT": 5, "A": 5}
    table = pa_csv.read_csv(path)
    table = table.set_column(0, "ticker", table.column("ticker").dictionary_encode())
    pq.write_table(table, tmp_path / "day.parquet", row_group_size=7)
    parquet = import_bars(engine := db(), tmp_path / "day.parquet", "AAPL", "1m")
    assert (parquet.imported, parquet.other_symbols) == (4, {"MSFT": 5, "A": 5})
    assert _rows(engine) == rows
    # A --symbol in none of the rows (a file of ESH4 imported as ES=F) is an error that
    # says what the file holds; --columns symbol= reads every row as the symbol's.
    for reader in ("csv", "arrow"):
        with pytest.raises(DataImportError) as failure:
            import_bars(engine := db(), path, "ES=F", "1m", reader=reader)
        assert str(failure.value).endswith(
            "--symbol ES=F names none of its rows: its 'ticker' column holds A (5 rows), "
            "MSFT (5 rows), AAPL (4 rows); give one of those, or --columns symbol= to read "
            "every row as ES=F's"
        )
        assert _rows(engine) == []
    single = tmp_path / "esh4.csv"
    single.write_text(path.read_text().replace("MSFT,", "AAPL,").replace("\nA,", "\nAAPL,"))
    every, _ = _both(db, single, "ES=F", "1m", columns=parse_column_mapping("symbol="))
    assert (every.imported, every.other_symbols) == (5, {})  # the first of each minute
    assert every.rejected == {importing.DUPLICATE: 9} and "symbol" not in every.columns


def test_without_a_symbol_every_symbol_of_the_file_is_imported_in_one_pass(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day file of Polygon's holds about 11,000 tickers: importing them one ``--symbol``
    at a time read the whole file once per symbol. Without a symbol, every row goes to its
    own symbol in one pass: the same rows as one import per symbol, with both CSV readers
    and Parquet; a row whose symbol breaks the symbol rule is rejected (named by its
    line), the others kept; duplicates are found within each symbol."""
    path = _polygon(tmp_path / "2024-03-04.csv", bad_line=True)
    lines = path.read_text().splitlines()
    lines[4:4] = ["BAD SYM,1,1,1,1,1,1709562600000000000,1", ",1,1,1,1,1,1709562600000000000,1"]
    lines.append(lines[2])  # MSFT 14:30 again: a duplicate of line 3
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(importing, "ROUTED_ROWS", 10)  # rows held per symbol, then written
    report, rows = _both(db, path, None, "1m")
    assert report.symbol == "" and sorted(report.symbols) == ["A", "AAPL", "MSFT"]
    assert (report.rows_read, report.imported, report.rejected_total) == (17, 13, 4)
    assert report.rejected == {
        importing.HIGH_BELOW_LOW: 1,
        importing.BAD_SYMBOL: 2,
        importing.DUPLICATE: 1,
    }
    assert [(ex.line, ex.detail) for ex in report.examples[importing.BAD_SYMBOL]] == [
        (5, "'BAD SYM': characters not allowed: ' '"),
        (6, "'': empty"),
    ]
    assert [(ex.line, ex.detail) for ex in report.examples[importing.DUPLICATE]] == [
        (18, "MSFT 2024-03-04T14:30:00+00:00 (first at line 3; that one is kept)")
    ]
    counts = {name: (r.imported, r.rejected) for name, r in report.symbols.items()}
    assert counts == {"A": (5, {}), "AAPL": (3, {}), "MSFT": (5, {importing.DUPLICATE: 1})}
    # The same rows as one import per symbol.
    one_by_one = db("one")
    for symbol in ("A", "AAPL", "MSFT"):
        import_bars(one_by_one, path, symbol, "1m")
    assert _rows(one_by_one) == rows and len(rows) == 13
    # The summary, JSON and symbols' rows; a second import finds every row present.
    assert report.summary().endswith(
        "4 rejected (3 symbols 1m); rows per symbol: A 5, MSFT 5, AAPL 3"
    )
    data = report.to_dict()
    assert data["symbol"] is None
    assert [(s["symbol"], s["imported"], s["duplicates"]) for s in data["symbols"]] == [
        ("A", 5, 0),
        ("AAPL", 3, 0),
        ("MSFT", 5, 1),
    ]
    engine = db("again")
    import_bars(engine, path, None, "1m")
    again = import_bars(engine, path, None, "1m", reader="csv")
    assert (again.imported, again.already_present) == (0, 13)
    # Parquet, its tickers dictionary-encoded, in row groups smaller than a ticker's rows.
    table = pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(
        column_types={"ticker": pa.string()}, strings_can_be_null=False))  # fmt: skip
    table = table.set_column(0, "ticker", table.column("ticker").dictionary_encode())
    pq.write_table(table, tmp_path / "day.parquet", row_group_size=4)
    parquet = import_bars(engine := db("pq"), tmp_path / "day.parquet", None, "1m")
    assert _rows(engine) == rows
    assert (parquet.imported, parquet.rejected) == (13, report.rejected)
    assert [ex.line for ex in parquet.examples[importing.BAD_SYMBOL]] == [4, 5]  # rows
    # A file without a column of symbols needs the symbol.
    plain = tmp_path / "plain.csv"
    plain.write_text("timestamp,open,high,low,close,volume\n1709562600,1,2,0.5,1.5,10\n")
    for reader in ("csv", "arrow"):
        with pytest.raises(DataImportError) as failure:
            import_bars(db(), plain, None, "1m", reader=reader)
        assert str(failure.value) == (
            f"{plain} has no column of symbols (symbol, ticker, sym): give the symbol of "
            "its bars with --symbol"
        )


def test_several_symbols_of_a_file_in_one_pass(db, tmp_path: Path) -> None:
    """``--symbol AAPL,MSFT``: those symbols' rows, each to its own, in one pass (the
    others counted and skipped, as with one symbol); a symbol asked for that the file does
    not hold is said; none of them is an error."""
    path = _polygon(tmp_path / "2024-03-04.csv", bad_line=True)
    report, rows = _both(db, path, ["MSFT", "AAPL", "NOPE"], "1m")
    assert sorted(report.symbols) == ["AAPL", "MSFT"] and report.wanted == {"AAPL", "MSFT", "NOPE"}
    assert (report.rows_read, report.imported, report.rejected_total) == (14, 8, 1)
    assert report.other_symbols == {"A": 5} and report.missing_symbols == ["NOPE"]
    assert report.summary().endswith(
        "1 rejected (2 symbols 1m); rows per symbol: MSFT 5, AAPL 3; no row of NOPE; 5 rows "
        "of 1 other symbol skipped (A 5)"
    )
    assert report.to_dict()["missing_symbols"] == ["NOPE"]
    one_by_one = db("one")
    for symbol in ("AAPL", "MSFT"):
        import_bars(one_by_one, path, symbol, "1m")
    assert _rows(one_by_one) == rows
    table = pa_csv.read_csv(path)
    table = table.set_column(0, "ticker", table.column("ticker").dictionary_encode())
    pq.write_table(table, tmp_path / "day.parquet", row_group_size=4)
    parquet = import_bars(engine := db("pq"), tmp_path / "day.parquet", ["AAPL", "MSFT"], "1m")
    assert _rows(engine) == rows and parquet.other_symbols == {"A": 5}
    for reader in ("csv", "arrow"):
        with pytest.raises(DataImportError) as failure:
            import_bars(db(), path, ["NOPE", "ZZZ"], "1m", reader=reader)
        assert str(failure.value).endswith(
            "--symbol NOPE,ZZZ names none of its rows: its 'ticker' column holds A (5 rows), "
            "MSFT (5 rows), AAPL (4 rows)"
        )


def test_a_file_without_a_header_reads_its_first_six_columns(db, tmp_path: Path) -> None:
    """A first line that is data (a timestamp and five numbers: Binance's klines have no
    header) is read as data, the first six columns as timestamp, open, high, low, close,
    volume, the rest ignored; it was taken for a header and refused. Their volumes are
    fractional (in the base asset, eight decimals): they were rejected as such."""
    path = tmp_path / "klines.csv"
    path.write_text(
        "1704067200000,42283.58,42554.57,42261.02,42475.23,1271.03400000,1704067259999,47134\n"
        "1704067260000,42475.23,42500.00,42400.00,42450.00,100.00000000,1704067319999,9\n"
        "1704067320000,42450.00,42400.00,42500.00,42450.00,100,1704067379999,9\n"
        "1704067380000,42450.00,42460.00,42440.00,42455.00,100.5,1704067439999,9\n",
        encoding="utf-8",
    )
    report, rows = _both(db, path, "BTCUSDT", "1m")
    assert report.reader == "pyarrow csv"
    assert report.columns == {
        "timestamp": "column 1",
        "open": "column 2",
        "high": "column 3",
        "low": "column 4",
        "close": "column 5",
        "volume": "column 6",
    }
    assert report.ignored_columns == ["column 7", "column 8"]
    assert [(r[2], r[3], r[7]) for r in rows] == [
        (datetime(2024, 1, 1, 0, 0, tzinfo=UTC), 42283.58, 1271.034),
        (datetime(2024, 1, 1, 0, 1, tzinfo=UTC), 42475.23, 100),
        (datetime(2024, 1, 1, 0, 3, tzinfo=UTC), 42450.0, 100.5),
    ]
    assert [type(r[7]) for r in rows] == [float, int, float]  # whole volumes stay integers
    # The first line is data: its faults are reported with line 1 like any other's.
    assert report.rejected == {importing.HIGH_BELOW_LOW: 1}
    assert [ex.line for ex in report.examples[importing.HIGH_BELOW_LOW]] == [3]
    with pytest.raises(DataImportError, match="has no header line .* --columns cannot name"):
        import_bars(db(), path, "BTCUSDT", "1m", columns=parse_column_mapping("volume=v"))
    # A header of names, even after a line of data's shape elsewhere, is a header.
    named = tmp_path / "named.csv"
    named.write_text("time,open,high,low,close,volume\n1704067200,1,2,0.5,1.5,10\n")
    assert import_bars(db(), named, "BTCUSDT", "1m").imported == 1


def test_vendor_headers_and_a_column_mapping(db, tmp_path: Path) -> None:
    text = (
        "<TICKER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>\n"
        "SPY,2011-01-03,09:30:00,1,2,0.5,1.5,10\n"
        "SPY,2011-01-03,09:31:00,1,2,0.5,1.5,11\n"
        "SPY, 2011-01-03 ,  09:32:00,1,2,0.5,1.5,12\n"
    )
    path = tmp_path / "vendor.csv"
    path.write_text(text)
    report, rows = _both(db, path, "SPY", "1m", "America/New_York")
    assert report.imported == 3
    assert report.columns["timestamp"] == "<DATE>+<TIME>"
    assert report.columns["volume"] == "<VOL>"
    assert report.columns["symbol"] == "<TICKER>" and report.ignored_columns == []
    assert rows[0][2] == datetime(2011, 1, 3, 14, 30, tzinfo=UTC)

    odd = tmp_path / "odd.csv"
    odd.write_text("When,First,Top,Bottom,Last,Qty\n2011-01-03T09:30:00Z,1,2,0.5,1.5,10\n")
    with pytest.raises(DataImportError, match="missing timestamp, open, high, low, volume"):
        import_bars(db(), odd, "SPY", "1m")
    mapping = parse_column_mapping("timestamp=When,open=First,high=Top,low=Bottom,volume=qty")
    report, _ = _both(db, odd, "SPY", "1m", columns=mapping)
    assert report.imported == 1 and report.columns["close"] == "Last"
    with pytest.raises(DataImportError, match="no such column"):
        import_bars(db(), odd, "SPY", "1m", columns={"timestamp": "Nope"})
    with pytest.raises(DataImportError, match="FIELD=COLUMN"):
        parse_column_mapping("stamp=When")
    both = tmp_path / "both.csv"
    both.write_text("timestamp,datetime,open,high,low,close,volume\n")
    with pytest.raises(DataImportError, match="timestamp could be any of timestamp, datetime"):
        import_bars(db(), both, "SPY", "1m")


@pytest.mark.parametrize("suffix", [".csv.gz", ".zst"])
def test_compressed_files(db, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"bars{suffix}"
    data = MIXED_SPLITTABLE.encode()
    if suffix == ".csv.gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    plain = tmp_path / "plain.csv"
    plain.write_bytes(data)
    report, rows = _both(db, path, "SPY", "1m")
    reference = import_bars(engine := db(), plain, "SPY", "1m", reader="csv")
    _same(report, reference)
    assert rows == _rows(engine)


def test_unsplittable_csv_falls_back_to_the_csv_module(db, tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(MIXED)
    report = import_bars(engine := db(), path, "SPY", "1m")
    assert report.reader == "csv module"
    assert report.rejected_total == 12 and report.imported == 4
    assert len(_rows(engine)) == 4  # the aborted pyarrow attempt was rolled back


def test_many_chunks_and_duplicates_across_chunks(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "CHUNK", 7)
    from sessionkit.engine.store import import_arrow, import_csv

    monkeypatch.setattr(import_csv, "CHUNK", 7)
    monkeypatch.setattr(import_arrow, "CHUNK", 7)
    lines = [HEADER.strip()]
    for i in range(40):
        minute = i if i % 9 else 0  # every 9th row repeats 09:30 (the first row's time)
        lines.append(f"2011-01-03T10:{minute:02d}:00-05:00,1,2,0.5,1.5,{i}")
    for i in range(40, 50):  # unsorted rows
        lines.append(f"2011-01-03T11:{59 - i:02d}:00-05:00,1,2,0.5,1.5,{i}")
    path = tmp_path / "chunks.csv"
    path.write_text("\n".join(lines) + "\n")
    report, rows = _both(db, path, "SPY", "1m")
    assert report.rejected == {importing.DUPLICATE: 4}
    assert [ex.line for ex in report.examples[importing.DUPLICATE]] == [11, 20, 29, 38]
    assert report.imported == 46 == len(rows)
    assert rows[0][-1] == 0


def test_two_imports_of_the_same_bars_at_once(db, tmp_path: Path) -> None:
    lines = [HEADER.strip()] + [
        f"2011-01-{3 + i // 390:02d}T{9 + (30 + i % 390) // 60:02d}:{(30 + i % 390) % 60:02d}"
        f":00-05:00,1,2,0.5,1.5,{i}"
        for i in range(3000)
    ]
    path = tmp_path / "same.csv"
    path.write_text("\n".join(lines) + "\n")
    engine = db()
    reports: list = []
    errors: list = []
    barrier = threading.Barrier(2)

    def work(reader: str) -> None:
        barrier.wait()
        try:
            reports.append(import_bars(engine, path, "SPY", "1m", reader=reader))
        except Exception as exc:  # pragma: no cover - the failure this test guards against
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in ("csv", "arrow")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r.imported for r in reports) == 3000
    assert sum(r.already_present for r in reports) == 3000
    assert len(_rows(engine)) == 3000


def test_without_pyarrow_the_csv_module_reads_and_parquet_is_a_clear_error(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "arrow_available", lambda: False)
    path = tmp_path / "good.csv"
    path.write_text(GOOD)
    report = import_bars(db(), path, "SPY", "1m")
    assert (report.reader, report.imported) == ("csv module", 3)
    parquet = tmp_path / "bars.parquet"
    _parquet(parquet, GOOD)
    with pytest.raises(
        DataImportError, match=r"needs pyarrow: pip install -e '\.\[arrow\]' in the sessionkit"
    ):
        import_bars(db(), parquet, "SPY", "1m")
    with pytest.raises(DataImportError, match="needs pyarrow"):
        import_bars(db(), path, "SPY", "1m", reader="arrow")


_NUMBERS = ["1", "1.5", "2", "0.5", " 1.25", "1e0", "2E0", ".5", "+1", "-1", "nan", "inf", ""]
_NUMBERS += ["abc", "1_0", "3", "2.0", "0"]
_VOLUMES = ["10", "0", "-0", "7.0", "7.5", "1e3", "-5", "", "x", "9223372036854775807"]
_VOLUMES += ["9223372036854775808", "+4", "10.00"]
_STAMPS = [
    "2011-11-06T{h:02d}:{m:02d}:00-05:00",
    "2011-11-06 {h:02d}:{m:02d}:00Z",
    "2011-11-06T{h:02d}:{m:02d}:00",
    "2011-11-06 {h:02d}:{m:02d}",
    "2011-03-13T{h:02d}:{m:02d}:{m:02d}",
    "2011-02-30T{h:02d}:{m:02d}:00+01:00",
    "9999-12-31T{h:02d}:{m:02d}:00+00:00",
    " 2011-11-06T{h:02d}:{m:02d}:00+05:30",
    "not a time {h}",
]


@settings(max_examples=25, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(_STAMPS),
            st.integers(0, 3),
            st.integers(0, 2),
            st.lists(st.sampled_from(_NUMBERS), min_size=4, max_size=4),
            st.sampled_from(_VOLUMES),
        ),
        min_size=1,
        max_size=25,
    ),
    zone=st.sampled_from([None, "America/New_York"]),
    ambiguous=st.sampled_from(["reject", "earliest", "latest"]),
)
def test_property_the_readers_agree(rows, zone, ambiguous) -> None:
    import tempfile

    lines = [HEADER.strip()]
    for stamp, h, m, prices, volume in rows:
        lines.append(",".join([stamp.format(h=h, m=m * 29), *prices, volume]))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.csv"
        path.write_text("\n".join(lines) + "\n")
        outcomes = []
        for reader in ("csv", "arrow"):
            engine = init_db(f"sqlite:///{folder}/{reader}.sqlite")
            try:
                report = import_bars(
                    engine, path, "SPY", "1m", zone, ambiguous=ambiguous, reader=reader
                )
                outcomes.append((report, _rows(engine)))
            except DataImportError as exc:  # a naive time without --tz: the same error
                outcomes.append((str(exc), None))
            finally:
                engine.dispose()
    (first, rows_a), (second, rows_b) = outcomes
    if isinstance(first, str):
        assert first == second
        return
    _same(first, second)
    assert rows_a == rows_b


def test_a_naive_parquet_timestamp_names_its_row(db, tmp_path: Path) -> None:
    """Parquet rows are numbered as rows (as every other Parquet message numbers them):
    the naive-timestamp error said "line 1"."""
    table = pa.table(
        {
            "timestamp": pa.array([datetime(2024, 3, 4, 9, 30)], pa.timestamp("s")),
            "open": [1.0],
            "high": [2.0],
            "low": [0.5],
            "close": [1.5],
            "volume": [10],
        }
    )
    pq.write_table(table, path := tmp_path / "naive.parquet")
    with pytest.raises(DataImportError) as failure:
        import_bars(db(), path, "X", "1m")
    assert str(failure.value).startswith(
        f"{path}, row 1: timestamp '2024-03-04T09:30:00' has no UTC offset"
    )


def test_interactive_brokers_dates_with_the_time_in_one_column(db, tmp_path: Path) -> None:
    """TWS / ib_insync exports: one ``date`` column holding ``20110103  09:30:00`` (two
    spaces), optionally with a zone name after it (``US/Eastern``); it was refused as
    "missing timestamp" at the header."""
    path = tmp_path / "ib.csv"
    path.write_text(
        "date,open,high,low,close,volume,barCount,average\n"
        "20110103  09:30:00,126.7,126.8,126.6,126.75,1000,10,126.7\n"
        "20110103  09:31:00,126.75,126.9,126.7,126.85,900,9,126.8\n"
    )
    report, rows = _both(db, path, "SPY", "1m", "America/New_York")
    assert report.imported == 2 and report.columns["timestamp"] == "date"
    assert [r[2] for r in rows] == [
        datetime(2011, 1, 3, 14, 30, tzinfo=UTC),
        datetime(2011, 1, 3, 14, 31, tzinfo=UTC),
    ]
    zoned = tmp_path / "zoned.csv"
    zoned.write_text(
        "date,open,high,low,close,volume\n"
        "20231106 09:30:00 US/Eastern,1,2,0.5,1.5,10\n"  # no --tz needed: the zone is named
        "20230707 9:31 America/New_York,1,2,0.5,1.5,10\n"  # summer time, no seconds
        "20231106 09:32:00 Mars/Base,1,2,0.5,1.5,10\n"
    )
    report, rows = _both(db, zoned, "AAA", "1m")
    assert [r[2] for r in rows] == [
        datetime(2023, 7, 7, 13, 31, tzinfo=UTC),
        datetime(2023, 11, 6, 14, 30, tzinfo=UTC),
    ]
    assert report.rejected == {importing.BAD_TIMESTAMP: 1}
    assert "unknown time zone 'Mars/Base'" in report.examples[importing.BAD_TIMESTAMP][0].detail
    # Without a zone, naive: the file needs --tz (one message, as for any naive time).
    with pytest.raises(DataImportError, match=r"ib\.csv, line 2: timestamp '20110103  09:30:00'"):
        import_bars(db("naive"), path, "SPY", "1m")
