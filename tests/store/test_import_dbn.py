"""Databento DBN import: files written with databento_dbn, read with databento.DBNStore."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import databento_dbn as dbn
import pytest
import zstandard
from sessionkit.engine.errors import DataImportError, InvalidSymbolError
from sessionkit.engine.store import importing
from sessionkit.engine.store.db import BarRecord, SymbolInfo, init_db
from sessionkit.engine.store.import_dbn import import_dbn
from sqlalchemy import Engine, select

NS = 1_000_000_000
T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * NS


def write_dbn(
    path: Path,
    bars: list[tuple[int, int, float, float, float, float, int]],
    *,
    symbols: dict[str, int],
    schema: dbn.Schema = dbn.Schema.OHLCV_1M,
    first: date = date(2024, 1, 2),
    last: date = date(2024, 1, 4),
    raw: list[tuple] | None = None,
) -> Path:
    """A DBN file of OHLCV records (instrument id, ts_event ns, o, h, l, c, volume)."""
    rtype = {
        dbn.Schema.OHLCV_1M: dbn.RType.OHLCV_1M,
        dbn.Schema.OHLCV_1H: dbn.RType.OHLCV_1H,
        dbn.Schema.OHLCV_1D: dbn.RType.OHLCV_1D,
    }[schema]
    mappings = [
        SimpleNamespace(
            raw_symbol=name,
            intervals=[SimpleNamespace(start_date=first, end_date=last, symbol=str(iid))],
        )
        for name, iid in symbols.items()
    ]
    start = min((b[1] for b in bars), default=_ns(T0))
    metadata = dbn.Metadata(
        dataset="XNAS.ITCH",
        start=start,
        stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID,
        schema=schema,
        symbols=list(symbols),
        mappings=mappings,
        end=start + 86_400 * NS,
    )
    data = bytes(metadata)
    for iid, ts, o, h, lo, c, v in bars:
        prices = [round(x * NS) if isinstance(x, float) else x for x in (o, h, lo, c)]
        data += bytes(dbn.OHLCVMsg(rtype, 1, iid, ts, *prices, v))
    if path.suffix == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


def session_bars(iid: int, count: int, base: float = 100.0, step_ns: int = 60 * NS) -> list:
    return [
        (
            iid,
            _ns(T0) + i * step_ns,
            base + i / 100,
            base + i / 100 + 0.25,
            base - 0.25,
            base,
            100 + i,
        )
        for i in range(count)
    ]


@pytest.fixture
def engine(tmp_path: Path):
    engine = init_db(f"sqlite:///{tmp_path / 'dbn.sqlite'}")
    yield engine
    engine.dispose()


def _stored(engine: Engine, symbol: str) -> list[tuple]:
    with engine.connect() as connection:
        return [
            tuple(r)
            for r in connection.execute(
                select(
                    BarRecord.interval,
                    BarRecord.start,
                    BarRecord.open,
                    BarRecord.high,
                    BarRecord.low,
                    BarRecord.close,
                    BarRecord.volume,
                )
                .where(BarRecord.symbol == symbol)
                .order_by(BarRecord.start)
            )
        ]


@pytest.mark.parametrize("name", ["bars.dbn", "bars.dbn.zst"])
def test_a_dbn_file_imports_every_symbol(engine: Engine, tmp_path: Path, name: str) -> None:
    bars = session_bars(101, 5) + session_bars(202, 3, base=50.0)
    bars.sort(key=lambda b: b[1])  # interleaved, as a vendor file is
    path = write_dbn(tmp_path / name, bars, symbols={"AAPL": 101, "BRK.B": 202})
    reports = import_dbn(engine, path)
    assert [(r.symbol, r.interval, r.imported) for r in reports] == [
        ("AAPL", "1m", 5),
        ("BRK.B", "1m", 3),
    ]
    assert reports[0].reader == "databento dbn"
    rows = _stored(engine, "AAPL")
    assert rows[0] == ("1m", T0, 100.0, 100.25, 99.75, 100.0, 100)
    assert rows[3][2] == 100.03  # fixed point 1e-9 to the nearest double of 100.03
    assert _stored(engine, "BRK.B")[-1][1] == datetime(2024, 1, 2, 14, 32, tzinfo=UTC)
    with engine.connect() as connection:
        assert set(connection.execute(select(SymbolInfo.symbol)).scalars()) == {"AAPL", "BRK.B"}
    again = import_dbn(engine, path)
    assert [(r.imported, r.already_present) for r in again] == [(0, 5), (0, 3)]


def test_bad_records_are_reported_with_their_record_number(engine: Engine, tmp_path: Path) -> None:
    bars = session_bars(101, 4)
    bars[1] = (101, bars[1][1], 100.0, 99.0, 99.5, 100.0, 7)  # high < low
    bars[2] = (101, bars[2][1] + 30 * NS, 100.0, 101.0, 99.0, 100.0, 7)  # not a whole minute
    bars.append((101, bars[0][1], 100.0, 101.0, 99.0, 100.0, 9))  # duplicate of record 1
    bars.append((101, bars[3][1] + 60 * NS, 2**63 - 1, 2**63 - 1, 99.0, 100.0, 9))  # undefined
    path = write_dbn(tmp_path / "bad.dbn", bars, symbols={"AAPL": 101})
    (report,) = import_dbn(engine, path)
    assert report.rows_read == 6 and report.imported == 2
    assert {r: [e.line for e in ex] for r, ex in report.examples.items()} == {
        importing.HIGH_BELOW_LOW: [2],
        importing.NOT_WHOLE_MINUTE: [3],
        importing.DUPLICATE: [5],
        importing.MISSING: [6],
    }
    assert "first at record 1" in report.examples[importing.DUPLICATE][0].detail
    listed = {item["reason"]: item for item in report.to_dict()["rejected"]}
    assert listed[importing.HIGH_BELOW_LOW]["examples"][0]["record"] == 2
    assert list(listed) == [  # in the order the rules check
        importing.MISSING,
        importing.NOT_WHOLE_MINUTE,
        importing.HIGH_BELOW_LOW,
        importing.DUPLICATE,
    ]


def test_hourly_bars_and_a_symbol_filter(engine: Engine, tmp_path: Path) -> None:
    bars = session_bars(101, 3, step_ns=3600 * NS) + session_bars(202, 2, step_ns=3600 * NS)
    path = write_dbn(
        tmp_path / "h.dbn", bars, symbols={"AAPL": 101, "MSFT": 202}, schema=dbn.Schema.OHLCV_1H
    )
    report, rest = import_dbn(engine, path, symbol="MSFT")
    assert (report.symbol, report.interval, report.imported) == ("MSFT", "1h", 2)
    # The other symbol's records are counted, skipped, in the report of the rest.
    assert (rest.symbol, rest.rows_read, rest.other_symbols) == ("", 3, {"AAPL": 3})
    assert _stored(engine, "AAPL") == []
    with pytest.raises(DataImportError, match="does not match the file's schema ohlcv-1h"):
        import_dbn(engine, path, interval="1m")
    with pytest.raises(DataImportError, match="'TSLA' is not in the file"):
        import_dbn(engine, path, symbol="TSLA")
    # Several symbols (--symbol AAPL,MSFT): those, each its own report.
    reports = import_dbn(engine, path, symbol=["MSFT", "AAPL"])
    assert [(r.symbol, r.imported, r.already_present) for r in reports] == [
        ("AAPL", 3, 0),
        ("MSFT", 0, 2),
    ]
    with pytest.raises(DataImportError, match="'TSLA', 'NFLX' is not in the file"):
        import_dbn(engine, path, symbol=["AAPL", "TSLA", "NFLX"])


def test_files_sessionkit_cannot_import(engine: Engine, tmp_path: Path) -> None:
    daily = write_dbn(
        tmp_path / "d.dbn", session_bars(101, 2), symbols={"AAPL": 101}, schema=dbn.Schema.OHLCV_1D
    )
    with pytest.raises(DataImportError, match="schema 'ohlcv-1d' is not one sessionkit imports"):
        import_dbn(engine, daily)
    evil = write_dbn(tmp_path / "e.dbn", session_bars(101, 2), symbols={"../evil": 101})
    with pytest.raises(
        DataImportError, match=r"e\.dbn: nothing imported: .*invalid symbol.*'\.\.'"
    ):
        import_dbn(engine, evil)
    with pytest.raises(InvalidSymbolError, match="'..'"):  # asked for
        import_dbn(engine, evil, symbol="../evil")
    text = tmp_path / "not.dbn"
    text.write_text("timestamp,open\n")
    with pytest.raises(DataImportError, match="not a readable DBN file"):
        import_dbn(engine, text)
    assert _stored(engine, "AAPL") == []
