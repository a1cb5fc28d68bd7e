"""Tests of sessionkit.engine.store.import_csv: CSV bars import, its rejection report and idempotence."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from sessionkit.engine.errors import DataImportError, InvalidSymbolError, SessionkitError
from sessionkit.engine.store import import_csv as importer
from sessionkit.engine.store.data_manager import DataManager
from sessionkit.engine.store.db import BarRecord, SymbolInfo, init_db
from sessionkit.engine.store.import_csv import import_csv
from sqlalchemy import Engine, func, insert, select

HEADER = "timestamp,open,high,low,close,volume\n"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = init_db(f"sqlite:///{tmp_path / 'bars.sqlite'}")
    yield engine
    engine.dispose()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _bar_count(engine: Engine, symbol: str = "SPY") -> int:
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(BarRecord).where(BarRecord.symbol == symbol)
        ).scalar_one()


GOOD = (
    HEADER
    + "2011-01-03T09:30:00-05:00,126.70,126.80,126.60,126.75,1000\n"
    + "2011-01-03T09:31:00-05:00,126.75,126.90,126.70,126.85,2000\n"
    + "2011-01-03T09:32:00-05:00,126.85,126.85,126.50,126.55,1500\n"
)

# Line numbers count the header as line 1.
MIXED = (
    HEADER  # 1
    + "2011-01-03T09:30:00-05:00,126.70,126.80,126.60,126.75,1000\n"  # 2 good
    + "2011-01-03T09:31:00-05:00,126.75,,126.70,126.85,2000\n"  # 3 missing high
    + "2011-01-03T09:32:00-05:00,126.85,abc,126.50,126.55,1500\n"  # 4 non-numeric
    + "2011-01-03T09:33:00-05:00,nan,126.90,126.50,126.55,1500\n"  # 5 NaN
    + "2011-01-03T09:34:00-05:00,126.60,126.50,126.70,126.60,1500\n"  # 6 high < low
    + "2011-01-03T09:35:00-05:00,127.00,126.90,126.50,126.55,1500\n"  # 7 open > high
    + "2011-01-03T09:36:00-05:00,126.60,126.90,126.50,126.40,1500\n"  # 8 close < low
    + "2011-01-03T09:37:00-05:00,126.60,126.90,126.50,126.70,-5\n"  # 9 negative volume
    + "not a time,126.60,126.90,126.50,126.70,5\n"  # 10 bad timestamp
    + "2011-01-03T09:30:00-05:00,126.60,126.90,126.50,126.70,5\n"  # 11 duplicate of 2
    + "2011-01-03T09:38:00-05:00,126.60,126.90,126.50,126.70,7\n"  # 12 good
    + "2011-01-03T09:39:00-05:00,126.60,126.90\n"  # 13 too few fields
    + "2011-01-03T09:40:00-05:00,126.60,126.90,126.50,126.70,7.5\n"  # 14 good (a fractional volume)
    + "2011-01-03T09:41:30-05:00,126.60,126.90,126.50,126.70,7\n"  # 15 not whole minute
    + "2011-01-03T09:42:00-05:00,126.60,126.90,126.50,126.70,7,9\n"  # 16 extra field
    + "\n"  # 17 blank: ignored
    + "2011-01-03T09:43:00-05:00,126.6,126.9,126.5,126.7,1e3\n"  # 18 good (volume 1000)
)


def test_good_file_is_imported(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "good.csv", GOOD)
    report = import_csv(engine, path, "SPY", "1m")
    assert (report.rows_read, report.imported, report.already_present) == (3, 3, 0)
    assert report.rejected == {}
    assert report.first_start == datetime(2011, 1, 3, 14, 30, tzinfo=UTC)
    assert report.last_start == datetime(2011, 1, 3, 14, 32, tzinfo=UTC)
    bars = DataManager(engine).get_bars(
        "SPY", "1m", report.first_start.date(), report.last_start.date()
    )
    assert [b.start for b in bars] == [
        datetime(2011, 1, 3, 14, 30, tzinfo=UTC),
        datetime(2011, 1, 3, 14, 31, tzinfo=UTC),
        datetime(2011, 1, 3, 14, 32, tzinfo=UTC),
    ]
    assert bars[0][1:] == (126.70, 126.80, 126.60, 126.75, 1000)
    assert isinstance(bars[0].volume, int)
    with engine.connect() as connection:
        info = connection.execute(select(SymbolInfo)).one()
    assert (info.symbol, info.synthetic, info.description) == ("SPY", False, "")
    assert "good.csv" in info.source


def test_each_rejection_reason_is_reported_with_line_numbers(
    engine: Engine, tmp_path: Path
) -> None:
    path = _write(tmp_path / "mixed.csv", MIXED)
    report = import_csv(engine, path, "SPY", "1m")
    assert report.rows_read == 16
    assert report.imported == 4  # lines 2, 12, 14, 18
    assert report.rejected == {
        importer.MISSING: 2,
        importer.NON_NUMERIC: 1,
        importer.NOT_FINITE: 1,
        importer.HIGH_BELOW_LOW: 1,
        importer.OUTSIDE_RANGE: 2,
        importer.NEGATIVE_VOLUME: 1,
        importer.BAD_TIMESTAMP: 1,
        importer.DUPLICATE: 1,
        importer.NOT_WHOLE_MINUTE: 1,
        importer.WRONG_FIELD_COUNT: 1,
    }
    assert report.rejected_total == 12

    def lines(reason: str) -> list[int]:
        return [ex.line for ex in report.examples[reason]]

    assert lines(importer.MISSING) == [3, 13]
    assert lines(importer.NON_NUMERIC) == [4]
    assert lines(importer.NOT_FINITE) == [5]
    assert lines(importer.HIGH_BELOW_LOW) == [6]
    assert lines(importer.OUTSIDE_RANGE) == [7, 8]
    assert lines(importer.NEGATIVE_VOLUME) == [9]
    assert lines(importer.BAD_TIMESTAMP) == [10]
    assert lines(importer.DUPLICATE) == [11]
    assert lines(importer.NOT_WHOLE_MINUTE) == [15]
    assert lines(importer.WRONG_FIELD_COUNT) == [16]
    assert "high" in report.examples[importer.MISSING][0].detail
    assert "'abc'" in report.examples[importer.NON_NUMERIC][0].detail
    assert "first at line 2" in report.examples[importer.DUPLICATE][0].detail

    # The good rows are in the database, with the first of the duplicates kept.
    with engine.connect() as connection:
        rows = connection.execute(
            select(BarRecord.start, BarRecord.volume).order_by(BarRecord.start)
        ).all()
    assert [(r.start.minute, r.volume) for r in rows] == [
        (30, 1000),
        (38, 7),
        (40, 7.5),
        (43, 1000),
    ]
    assert [type(r.volume) for r in rows] == [int, int, float, int]


def test_examples_are_capped_but_counts_are_not(engine: Engine, tmp_path: Path) -> None:
    rows = "".join(f"2011-01-03T10:{m:02d}:00-05:00,1,1,1,1,-{m + 1}\n" for m in range(20))
    rows += "2011-01-03T10:30:00-05:00,1,1,1,1,1\n"
    report = import_csv(engine, _write(tmp_path / "neg.csv", HEADER + rows), "X", "1m")
    assert report.rejected == {importer.NEGATIVE_VOLUME: 20}
    assert [ex.line for ex in report.examples[importer.NEGATIVE_VOLUME]] == [2, 3, 4, 5, 6]
    assert report.imported == 1


def test_importing_twice_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "mixed.csv", MIXED)
    first = import_csv(engine, path, "SPY", "1m")
    second = import_csv(engine, path, "SPY", "1m")
    assert first.imported == 4
    assert second.imported == 0
    assert second.already_present == 4
    assert second.conflicting == 0  # 7.5 read back equals 7.5
    assert second.rejected == first.rejected  # rejections are still reported, not errors
    assert _bar_count(engine) == 4


def test_already_present_rows_that_differ_are_counted_and_kept(
    engine: Engine, tmp_path: Path
) -> None:
    import_csv(engine, _write(tmp_path / "a.csv", GOOD), "SPY", "1m")
    changed = GOOD.replace("126.70,126.80,126.60,126.75,1000", "126.70,126.80,126.60,126.75,9999")
    extra = changed + "2011-01-03T09:33:00-05:00,126.55,126.60,126.50,126.60,500\n"
    report = import_csv(engine, _write(tmp_path / "b.csv", extra), "SPY", "1m")
    assert (report.imported, report.already_present, report.conflicting) == (1, 3, 1)
    with engine.connect() as connection:
        volume = connection.execute(
            select(BarRecord.volume).where(
                BarRecord.start == datetime(2011, 1, 3, 14, 30, tzinfo=UTC)
            )
        ).scalar_one()
    assert volume == 1000  # the stored row is kept
    assert "differ" in report.summary()


def test_same_times_for_another_symbol_or_interval_are_new(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "good.csv", GOOD)
    import_csv(engine, path, "SPY", "1m")
    assert import_csv(engine, path, "QQQ", "1m").imported == 3
    assert import_csv(engine, path, "SPY", "5m").imported == 3
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(BarRecord)).scalar_one() == 9


def test_naive_timestamps_with_a_zone(engine: Engine, tmp_path: Path) -> None:
    text = (
        HEADER
        + "2011-03-11 09:30:00,1,2,0.5,1.5,10\n"  # EST: 14:30 UTC
        + "2011-03-14 09:30:00,1,2,0.5,1.5,10\n"  # EDT: 13:30 UTC
        + "2011-03-13 02:30:00,1,2,0.5,1.5,10\n"  # does not exist in New York
    )
    report = import_csv(
        engine, _write(tmp_path / "naive.csv", text), "SPY", "1m", "America/New_York"
    )
    assert report.imported == 2
    assert report.rejected == {importer.NONEXISTENT_TIME: 1}
    assert report.examples[importer.NONEXISTENT_TIME][0].line == 4
    with engine.connect() as connection:
        starts = (
            connection.execute(select(BarRecord.start).order_by(BarRecord.start)).scalars().all()
        )
    assert starts == [
        datetime(2011, 3, 11, 14, 30, tzinfo=UTC),
        datetime(2011, 3, 14, 13, 30, tzinfo=UTC),
    ]


def test_offsets_win_over_the_zone(engine: Engine, tmp_path: Path) -> None:
    text = HEADER + "2011-01-03T14:30:00Z,1,2,0.5,1.5,10\n"
    report = import_csv(engine, _write(tmp_path / "z.csv", text), "SPY", "1m", "Asia/Tokyo")
    assert report.first_start == datetime(2011, 1, 3, 14, 30, tzinfo=UTC)


def test_naive_timestamps_without_a_zone_are_an_error(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "naive.csv", HEADER + "2011-01-03 09:30:00,1,2,0.5,1.5,10\n")
    with pytest.raises(DataImportError) as info:
        import_csv(engine, path, "SPY", "1m")
    message = str(info.value)
    assert str(path) in message
    assert "line 2" in message
    assert "--tz" in message
    assert _bar_count(engine) == 0


def test_unknown_zone_interval_or_symbol(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "good.csv", GOOD)
    with pytest.raises(DataImportError, match="unknown time zone 'Mars/Olympus'"):
        import_csv(engine, path, "SPY", "1m", "Mars/Olympus")
    with pytest.raises(DataImportError, match="unknown interval '2m'"):
        import_csv(engine, path, "SPY", "2m")
    with pytest.raises(InvalidSymbolError, match="invalid symbol"):
        import_csv(engine, path, "  ", "1m")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"\n\n", "is empty"),
        (b"PK\x03\x04\x00\x00binary\x00zip", "binary"),
        (b"\xff\xfa not utf-8 at all\n", "UTF-8"),
        ("timestamp,open\n".encode("utf-16"), "is UTF-16 text, not UTF-8"),
        (b"date,price\n2011-01-03,1\n", "does not match"),
        (b"timestamp,open,high,low,close\n2011-01-03T09:30:00Z,1,1,1,1\n", "missing volume"),
        # no header, and not six fields to read as the bar's (test_import_formats: six)
        (b"2011-01-03T09:30:00Z,1,1,1,1\n", "does not match"),
    ],
    ids=[
        "missing",
        "empty",
        "blank",
        "binary",
        "latin",
        "utf16",
        "wrong-header",
        "no-volume",
        "no-header",
    ],
)
def test_not_a_bars_csv_is_a_clear_error(
    engine: Engine, tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "input.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataImportError) as info:
        import_csv(engine, path, "SPY", "1m")
    assert isinstance(info.value, SessionkitError)
    assert str(path) in str(info.value)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_a_directory_is_not_a_file(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(DataImportError, match="is not a file"):
        import_csv(engine, tmp_path, "SPY", "1m")


def test_header_in_another_order_with_bom_and_case(engine: Engine, tmp_path: Path) -> None:
    text = "\ufeffVolume,Timestamp,Close,Low,High,Open\n10,2011-01-03T09:30:00-05:00,1.5,0.5,2,1\n"
    report = import_csv(engine, _write(tmp_path / "order.csv", text), "SPY", "1m")
    assert report.imported == 1
    bars = DataManager(engine).get_bars(
        "SPY", "1m", report.first_start.date(), report.first_start.date()
    )
    assert bars[0][1:] == (1.0, 2.0, 0.5, 1.5, 10)


def test_an_existing_description_is_kept(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(SymbolInfo).values(
                symbol="SPY", description="S&P 500 ETF", synthetic=False, source="vendor"
            )
        )
    import_csv(engine, _write(tmp_path / "good.csv", GOOD), "SPY", "1m")
    with engine.connect() as connection:
        info = connection.execute(select(SymbolInfo)).one()
    assert (info.description, info.source) == ("S&P 500 ETF", "vendor")
    import_csv(engine, _write(tmp_path / "good.csv", GOOD), "SPY", "1m", description="new")
    with engine.connect() as connection:
        assert connection.execute(select(SymbolInfo.description)).scalar_one() == "new"


def test_report_renders_as_json_and_tables(engine: Engine, tmp_path: Path) -> None:
    report = import_csv(engine, _write(tmp_path / "mixed.csv", MIXED), "SPY", "1m")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["imported"] == 4
    assert data["rejected_total"] == 12
    reasons = {item["reason"]: item for item in data["rejected"]}
    assert reasons[importer.DUPLICATE]["examples"][0]["line"] == 11
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(report)
    text = console.export_text()
    assert "Rejected rows" in text
    assert "high < low" in text
    assert "11:" in text
    assert "12 rejected" in report.summary()
