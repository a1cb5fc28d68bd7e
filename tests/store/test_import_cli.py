"""``sessionkit db import`` with the new formats and options, through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sessionkit.engine.cli import main
from sessionkit.engine.store.db import init_db
from test_import_dbn import session_bars, write_dbn


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def db(tmp_path: Path, calendar_db_url: str) -> Path:
    """A database with the NYSE calendar (so times show in America/New_York)."""
    import shutil

    path = tmp_path / "cli.sqlite"
    shutil.copy(calendar_db_url.removeprefix("sqlite:///"), path)
    init_db(f"sqlite:///{path}").dispose()
    return path


def test_csv_with_a_column_mapping_and_times_in_the_exchange_zone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db: Path
) -> None:
    path = tmp_path / "v.csv"
    path.write_text("When,o,h,l,c,Qty\n2011-01-03T14:30:00Z,1,2,0.5,1.5,10\n")
    args = ("db", "import", str(path), "--symbol", "SPY", "--columns", "timestamp=When,volume=Qty")
    code, out, err = run(capsys, *args, "--db", str(db), "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["imported"] == 1
    assert data["columns"] == {
        "timestamp": "When",
        "open": "o",
        "high": "h",
        "low": "l",
        "close": "c",
        "volume": "Qty",
    }
    assert data["first_start"] == "2011-01-03T09:30:00-05:00"
    assert data["timezone"] == "America/New_York"
    code, out, err = run(capsys, *args, "--db", str(db))
    assert code == 0
    assert "2011-01-03 09:30 .. 2011-01-03 09:30 America/New_York" in out
    assert "columns: timestamp=When" in out
    assert "1 already present" in out


def test_dbn_import_and_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db: Path
) -> None:
    path = write_dbn(tmp_path / "x.dbn", session_bars(7, 3), symbols={"ES=F": 7})
    code, out, err = run(capsys, "db", "import", str(path), "--db", str(db), "--json")
    assert (code, err) == (0, "")
    (report,) = json.loads(out)["imports"]
    assert (report["symbol"], report["imported"], report["reader"]) == ("ES=F", 3, "databento dbn")
    csv = tmp_path / "y.csv"
    csv.write_text("timestamp,open,high,low,close,volume\n")
    for extra, message in (
        ((), "has no column of symbols (symbol, ticker, sym): give the symbol of its bars"),
        (("--symbol", "X", "--ambiguous", "first"), "--ambiguous: 'first'"),
        (("--symbol", "X", "--reader", "polars"), "--reader: 'polars'"),
        (("--symbol", "X", "--columns", "ts"), "--columns: 'ts'"),
    ):
        code, out, err = run(capsys, "db", "import", str(csv), *extra, "--db", str(db))
        assert code == 2, extra
        assert message in err and len(err.strip().splitlines()) == 1


def test_dbn_records_of_no_importable_symbol_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    """An OPRA symbol with spaces aborted the import (naming no file) even with --symbol
    SPY; a record no mapping covers vanished."""
    option = "SPY   240119C00470000"
    bars = session_bars(101, 5) + session_bars(77, 2, base=5.0) + session_bars(4242, 1)
    path = write_dbn(tmp_path / "opt.dbn", bars, symbols={"SPY": 101, option: 77})
    code, out, err = run(capsys, "db", "import", str(path), "--symbol", "SPY", "--db", str(db))
    assert (code, err) == (0, "")
    assert f"{path}: 5 rows read, 5 imported" in out
    assert (
        f"{path}: 3 rows read, 0 imported, 0 already present, 1 rejected (records of no "
        f"imported symbol, 1m); 2 rows of 1 other symbol skipped ({option} 2)"
    ) in out
    assert "no symbol mapping" in out and "8: instrument 4242 on 2024-01-02" in out
    assert "1 file(s): 8 rows read, 5 imported, 0 already present, 1 rejected" in out
    code, out, err = run(capsys, "db", "import", str(path), "--db", str(db), "--json")
    assert (code, err) == (0, "")
    spy, rest = json.loads(out)["imports"]
    assert (spy["symbol"], spy["already_present"]) == ("SPY", 5)
    assert rest["symbol"] is None
    assert {r["reason"]: r["count"] for r in rest["rejected"]} == {
        "no symbol mapping": 1,
        "invalid symbol": 2,
    }
