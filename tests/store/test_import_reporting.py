"""Nothing an import reads is lost without a word: a file of no valid row is refused (and
makes no symbol), bytes that are not UTF-8 reject their row in both readers alike, a DBN
record without a symbol is counted, a decimal-comma file never reads ``1.000`` as 1, and
bars off the session grid are imported with a warning.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import databento_dbn as dbn
import pytest
from sessionkit.engine.errors import DataImportError
from sessionkit.engine.store import importing
from sessionkit.engine.store.calendar_fill import fill_calendar
from sessionkit.engine.store.db import BarRecord, SymbolInfo
from sessionkit.engine.store.import_dbn import import_dbn
from sessionkit.engine.store.importing import import_bars
from sqlalchemy import Engine, select
from test_import_dbn import NS, _ns, session_bars, write_dbn
from test_import_formats import _both

HEADER = "timestamp,open,high,low,close,volume\n"


def _symbols(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(connection.execute(select(SymbolInfo.symbol)).scalars())


def _bars(engine: Engine, symbol: str) -> list[tuple]:
    with engine.connect() as connection:
        return [
            tuple(r)
            for r in connection.execute(
                select(BarRecord.start, BarRecord.open, BarRecord.volume)
                .where(BarRecord.symbol == symbol)
                .order_by(BarRecord.start)
            )
        ]


# --- a file of no valid row -----------------------------------------------------------


@pytest.mark.parametrize("reader", ["csv", "arrow"])
def test_a_file_whose_every_row_is_rejected_is_refused_and_makes_no_symbol(
    db, tmp_path: Path, reader: str
) -> None:
    engine = db()
    path = tmp_path / "eu.csv"
    path.write_text(
        "Date;Time;Open;High;Low;Close;Volume\n"
        "03/01/2011;09:30:00;126,71;126,74;126,66;126,72;2259046\n"
        "03/01/2011;09:31:00;126,72;126,79;126,69;126,79;815728\n"
        "2011-01-03;09:32:00;126,72;126,70;126,69;126,79;815728\n"  # high < low
    )
    with pytest.raises(DataImportError) as info:
        import_bars(engine, path, "EUR", "1m", "America/New_York", reader=reader)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith(f"{path}: nothing imported: all 3 rows of bars rejected")
    assert "2 as 'unparseable timestamp' (e.g. line 2: '03/01/2011 09:30:00')" in message
    assert "1 for other reasons" in message
    assert "accepted timestamps: ISO 8601" in message  # the formats it reads
    assert "\n" not in message
    assert _symbols(engine) == []
    # A header and nothing else.
    empty = tmp_path / "empty.csv"
    empty.write_text(HEADER + "\n")
    with pytest.raises(DataImportError, match=r"empty\.csv has no rows of bars \(only a header"):
        import_bars(engine, empty, "EUR", "1m", reader=reader)  # type: ignore[arg-type]
    assert _symbols(engine) == []


def test_a_symbol_already_stored_stays_when_a_file_brings_nothing(db, tmp_path: Path) -> None:
    engine = db()
    good = tmp_path / "good.csv"
    good.write_text(HEADER + "2011-01-03T09:30:00-05:00,1,2,0.5,1,10\n")
    assert import_bars(engine, good, "SPY", "1m", description="kept").imported == 1
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "2011-01-03T09:31:00-05:00,1,0.2,0.5,1,10\n")
    with pytest.raises(DataImportError, match="all 1 rows of bars rejected, all as 'high < low'"):
        import_bars(engine, bad, "SPY", "1m", description="changed")
    assert _symbols(engine) == ["SPY"]
    with engine.connect() as connection:
        assert connection.execute(select(SymbolInfo.description)).scalar_one() == "kept"


def test_every_symbol_of_a_file_with_no_valid_row_is_refused(db, tmp_path: Path) -> None:
    engine = db()
    path = tmp_path / "many.csv"
    path.write_text(
        "ticker," + HEADER.replace("\n", ",x\n")
        + "A B,2011-01-03T09:30:00-05:00,1,2,0.5,1,10,x\n"
        + "A B,2011-01-03T09:31:00-05:00,1,2,0.5,1,10,x\n"
    )  # fmt: skip
    with pytest.raises(DataImportError, match=r"all as 'invalid symbol' \(e\.g\. line 2: 'A B'"):
        import_bars(engine, path, None, "1m")
    assert _symbols(engine) == []


# --- bytes that are not UTF-8 ---------------------------------------------------------


def test_bytes_that_are_not_utf8_reject_their_row_in_a_column_read(db, tmp_path: Path) -> None:
    """Both readers: a Latin-1 byte in a column read rejects its row (line and column
    named), in a column not read it does not matter; the header may have one too."""
    path = tmp_path / "latin.csv"
    path.write_bytes(
        b"timestamp,open,high,low,close,volume,B\xf6rse\n"
        b"2011-01-03T09:30:00-05:00,1,2,0.5,1,10,Xetra\n"
        b"2011-01-03T09:31:00-05:00,1,2,0.5,1,10,B\xf6rse Frankfurt\n"  # not read: fine
        b"2011-01-03T09:32:00-05:00,1,2,0.5,1,10\xe4,Xetra\n"  # volume
        b"2011-01-03T09:33:00-05:0\xe4,1\xe4,2,0.5,1,10,Xetra\n"  # timestamp, open
        b"2011-01-03T09:34:00-05:00,1,2,0.5,1,11,Xetra\n"
    )
    report, rows = _both(db, path, "S", "1m")
    assert report.reader == "csv module"  # (pyarrow hands such a file to it)
    assert [(r[2].minute, r[7]) for r in rows] == [(30, 10), (31, 10), (34, 11)]
    assert report.rejected == {importing.NOT_UTF8: 2}
    assert [(ex.line, ex.detail) for ex in report.examples[importing.NOT_UTF8]] == [
        (4, "volume='10\\xe4'"),
        (5, "timestamp='2011-01-03T09:33:00-05:0\\xe4', open='1\\xe4'"),
    ]
    assert report.ignored_columns == ["B\\xf6rse"]
    # Text that is UTF-8 but not ASCII is text like any other.
    path.write_text(
        HEADER.replace("\n", ",Börse\n") + "2011-01-03T09:30:00-05:00,1,2,0.5,1,10,Köln\n"
    )
    report, rows = _both(db, path, "S", "1m")
    assert report.imported == 1 and report.reader == "pyarrow csv"


def test_a_file_of_another_encoding_says_so(db, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(HEADER.encode() + b"2011-01-03 09:30:00,1,2,0.5,1,10\xa0\n" * 3)
    with pytest.raises(DataImportError, match=r"all as 'not UTF-8 text' .*iconv"):
        import_bars(db(), path, "S", "1m", "UTC")


# --- DBN records of no symbol ---------------------------------------------------------


def test_dbn_records_without_a_symbol_mapping_are_rejected_and_counted(db, tmp_path: Path) -> None:
    bars = session_bars(101, 10)
    bars[5] = (4242, *bars[5][1:])  # no mapping names instrument 4242
    late = datetime(2024, 1, 9, 14, 30, tzinfo=UTC)  # after the mapping's dates
    bars.append((101, _ns(late), 100.0, 101.0, 99.0, 100.0, 9))
    path = write_dbn(tmp_path / "unmapped.dbn", bars, symbols={"AAPL": 101})
    engine = db()
    report, rest = import_dbn(engine, path)
    assert (report.symbol, report.rows_read, report.imported) == ("AAPL", 9, 9)
    assert (rest.symbol, rest.rows_read, rest.rejected) == ("", 2, {importing.NO_MAPPING: 2})
    assert [(e.line, e.detail) for e in rest.examples[importing.NO_MAPPING]] == [
        (6, "instrument 4242 on 2024-01-02"),
        (11, "instrument 101 on 2024-01-09"),
    ]
    assert "rest" not in rest.summary() and "records of no imported symbol" in rest.summary()
    assert rest.to_dict()["symbol"] is None


def test_a_dbn_symbol_that_breaks_the_rule_is_rejected_and_the_others_imported(
    db, tmp_path: Path
) -> None:
    option = "SPY   240119C00470000"  # OPRA: spaces
    bars = session_bars(101, 5) + session_bars(77, 5, base=5.0)
    path = write_dbn(tmp_path / "opt.dbn", bars, symbols={"SPY": 101, option: 77})
    engine = db()
    spy, rest = import_dbn(engine, path)
    assert spy.imported == 5
    assert rest.rejected == {importing.BAD_SYMBOL: 5}
    assert rest.examples[importing.BAD_SYMBOL][0].line == 6
    assert rest.examples[importing.BAD_SYMBOL][0].detail.startswith(f"{option!r}: characters")
    assert _symbols(engine) == ["SPY"]
    # Only SPY: the option's records are another symbol's, skipped.
    spy, rest = import_dbn(db(), path, symbol="SPY")
    assert (spy.imported, rest.rejected, rest.other_symbols) == (5, {}, {option: 5})
    # A file of the option alone has nothing to import, and says why, naming the file.
    alone = write_dbn(tmp_path / "alone.dbn", session_bars(77, 2), symbols={option: 77})
    with pytest.raises(DataImportError, match=r"alone\.dbn: nothing imported: all 2 records"):
        import_dbn(engine, alone)


def test_a_dbn_file_of_no_record_is_refused(db, tmp_path: Path) -> None:
    path = write_dbn(tmp_path / "none.dbn", [], symbols={"SPY": 101})
    engine = db()
    with pytest.raises(DataImportError, match=r"none\.dbn has no records: nothing imported"):
        import_dbn(engine, path)
    assert _symbols(engine) == []


# --- decimal commas -------------------------------------------------------------------


def test_decimal_comma_files_read_dots_as_thousands_or_reject_them(db, tmp_path: Path) -> None:
    """In a file of decimal commas, ``1.000`` is a thousand (never 1), ``1.234,5``
    1234.5; a dot that groups no thousands (``1.5``) rejects its row. Both readers."""
    path = tmp_path / "euro.csv"
    path.write_text(
        "Date;Time;Open;High;Low;Close;Volume\n"
        "2011-01-03;09:30;126,71;126,74;126,66;126,72;1.000\n"
        "2011-01-03;09:31;1.126,72;1.126,79;1.126,69;1.126,79;2.259.046\n"
        "2011-01-03;09:32;126,72;126,79;126,69;126,79;1.5\n"
        "2011-01-03;09:33;126,72;126,79;126,69;126,79;1.00\n"
        "2011-01-03;09:34;126,72;126,79;126,69;126.79;7\n"
        "2011-01-03;09:35;126,72;126,79;126,69;126,79;12,5\n"
    )
    report, rows = _both(db, path, "EUR", "1m", "America/New_York")
    assert [(r[3], r[7]) for r in rows] == [(126.71, 1000), (1126.72, 2259046), (126.72, 12.5)]
    assert report.rejected == {importing.DECIMAL_DOT: 3}
    assert [ex.detail.split(" (")[0] for ex in report.examples[importing.DECIMAL_DOT]] == [
        "volume='1.5'",
        "volume='1.00'",
        "close='126.79'",
    ]
    # A semicolon file whose numbers have decimal points (more than decimal commas):
    # 1.000 is 1, and a comma no part of a number.
    points = tmp_path / "points.csv"
    points.write_text(
        "Date;Time;Open;High;Low;Close;Volume\n"
        "2011-01-03;09:30;1.0850;1.0860;1.0840;1.0850;1.000\n"
        "2011-01-03;09:31;1.0850;1.0860;1.0840;1.0850;1,5\n"
    )
    report, rows = _both(db, points, "EUR", "1m", "UTC")
    assert [(r[3], r[7]) for r in rows] == [(1.085, 1)]
    assert report.rejected == {importing.NON_NUMERIC: 1}
    # Numbers that tell neither (1.000, 1,000): any comma says decimal commas.
    either = tmp_path / "either.csv"
    either.write_text(
        "Date;Time;Open;High;Low;Close;Volume\n"
        "2011-01-03;09:30;1.234;1.300;1.200;1.250;1.000\n"
        "2011-01-03;09:31;1,234;1,300;1,200;1,250;1000\n"
    )
    report, rows = _both(db, either, "EUR", "1m", "UTC")
    assert [(r[3], r[7]) for r in rows] == [(1234.0, 1000), (1.234, 1000)]


# --- the session grid -----------------------------------------------------------------


def _grid_file(path: Path, starts: list[str]) -> Path:
    path.write_text(HEADER + "".join(f"{s},1,2,0.5,1,10\n" for s in starts))
    return path


@pytest.fixture
def nyse(db) -> Engine:
    engine = db("nyse")
    fill_calendar(engine, "NYSE", date(2011, 1, 1), date(2011, 1, 31))
    return engine


def test_bars_off_the_session_grid_are_imported_with_a_warning(nyse: Engine, tmp_path) -> None:
    # 5m bars a minute late (09:31, 09:36 ...), and a pre-market one (not checked)
    late = [f"2011-01-03T{h:02d}:{m:02d}:00-05:00" for h, m in ((9, 31), (9, 36), (10, 1))]
    path = _grid_file(tmp_path / "late.csv", ["2011-01-03T08:00:00-05:00", *late])
    report = import_bars(nyse, path, "OFF", "5m")
    assert report.imported == 4
    assert (report.grid_exchanges, report.off_grid) == (("NYSE",), 3)
    assert report.off_grid_example is not None and report.off_grid_example.line == 3
    report.display_zone = importing.ZoneInfo("America/New_York")
    (warning,) = report.warnings()
    assert warning.startswith("3 of the 4 bars of OFF 5m do not start on NYSE's 5m session grid")
    assert "e.g. line 3: 2011-01-03 09:31, in a session whose windows start at 09:30" in warning
    assert "the engine will treat them as off-grid" in warning
    assert report.to_dict()["off_grid"]["bars"] == 3
    assert "3 bars off the session grid" in report.summary()
    # Clock-aligned hourly bars: 10:00 ... are off NYSE's grid (09:30, 10:30 ...); the
    # 09:00 bar is outside the session.
    hours = [f"2011-01-04T{h:02d}:00:00-05:00" for h in range(9, 16)]
    report = import_bars(nyse, _grid_file(tmp_path / "clock.csv", hours), "CLK", "1h")
    assert report.off_grid == 6
    # Bars on the grid (and 1m bars, always on it): no warning.
    grid = [f"2011-01-04T{h:02d}:30:00-05:00" for h in range(9, 16)]
    report = import_bars(nyse, _grid_file(tmp_path / "on.csv", grid), "ON", "1h")
    assert (report.off_grid, report.warnings()) == (0, [])
    report = import_bars(nyse, path, "ONE", "1m")
    assert (report.grid_exchanges, report.off_grid) == ((), 0)


def test_the_grid_restarts_after_a_break_and_any_stored_calendar_will_do(
    db, tmp_path: Path
) -> None:
    engine = db("tokyo")
    fill_calendar(engine, "XTKS", date(2024, 1, 1), date(2024, 1, 31))
    # Tokyo: 09:00-11:30, 12:30-15:00 (the afternoon's 1h windows: 12:30, 13:30, 14:30)
    starts = ["09:00", "10:00", "11:00", "12:30", "13:30", "14:30", "13:00"]
    path = _grid_file(tmp_path / "t.csv", [f"2024-01-04T{s}:00+09:00" for s in starts])
    report = import_bars(engine, path, "TKY", "1h")
    assert report.off_grid == 1 and report.off_grid_example.line == 8  # type: ignore[union-attr]
    assert "; 1 bar off the session grid (see the warning)" in report.summary()
    # With New York's calendar too, a bar is off when no calendar whose session holds it
    # has it on its grid.
    fill_calendar(engine, "NYSE", date(2024, 1, 1), date(2024, 1, 31))
    report = import_bars(engine, path, "TKY", "1h")
    assert (report.grid_exchanges, report.off_grid) == (("NYSE", "XTKS"), 1)
    assert "of any stored calendar (NYSE, XTKS)" in report.warnings()[0]
    # Every symbol of a file: the warning names them.
    many = tmp_path / "many.csv"
    many.write_text(
        "symbol," + HEADER
        + "".join(f"A,2024-01-04T{s}:00+09:00,1,2,0.5,1,10\n" for s in starts)
        + "B,2024-01-04T09:30:00+09:00,1,2,0.5,1,10\n"
    )  # fmt: skip
    report = import_bars(db("many"), many, None, "1h")
    assert report.grid_exchanges == ()  # no calendar there: not checked
    report = import_bars(engine, many, None, "1h")
    assert report.off_grid == 2
    assert report.symbols is not None and report.symbols["A"].off_grid == 1
    assert report.warnings()[0].startswith("2 1h bars of 2 symbols (A 1, B 1) do not start")


def test_dbn_bars_off_the_grid_are_counted(nyse: Engine, tmp_path: Path) -> None:
    t0 = datetime(2011, 1, 3, 15, 0, tzinfo=UTC)  # 10:00 New York: off the 1h grid
    bars = [(101, _ns(t0) + i * 3600 * NS, 100.0, 101.0, 99.0, 100.0, 9) for i in range(3)]
    path = write_dbn(
        tmp_path / "h.dbn",
        bars,
        symbols={"SPY": 101},
        schema=dbn.Schema.OHLCV_1H,
        first=date(2011, 1, 3),
        last=date(2011, 1, 4),
    )
    (report,) = import_dbn(nyse, path)
    assert (report.imported, report.off_grid) == (3, 3)
    assert _bars(nyse, "SPY")[0][0] == t0
