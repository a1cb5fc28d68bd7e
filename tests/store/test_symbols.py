"""The one symbol rule (core.bar.check_symbol) and where it applies: import, config, export.

No symbol may make a command write outside the folder it was given, and user text is
printed as text, never as rich markup.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sessionkit.engine.cli import main
from sessionkit.engine.config import config_from_dict
from sessionkit.engine.core.bar import Bar, check_symbol, symbol_file_name
from sessionkit.engine.errors import ConfigError, InvalidSymbolError, SessionkitError
from sessionkit.engine.store.db import init_db
from sessionkit.engine.store.export import write_csv_export

REAL = ["SPY", "BRK.B", "BRK/B", "ES=F", "^GSPC", "EUR/USD", "BTC-USD", "6E:XCME", "A_B", "x" * 32]
BAD = [
    ("", "empty"),
    ("x" * 33, "33 characters"),
    ("../../evil", "'..'"),
    ("a..b", "'..'"),
    ("/etc", "leading '/'"),
    ("A B", "not allowed"),
    ("[/x]", "not allowed"),
    ("SPY\n", "not allowed"),
    ("A\\B", "not allowed"),
    ("É", "not allowed"),
    ("%2F", "not allowed"),
]


@pytest.mark.parametrize("symbol", REAL)
def test_real_tickers_obey_the_rule(symbol: str) -> None:
    assert check_symbol(symbol) == symbol
    name = symbol_file_name(symbol)
    assert "/" not in name and "\\" not in name and not name.startswith(".")
    assert name not in (".", "..")


@pytest.mark.parametrize(("symbol", "problem"), BAD)
def test_bad_symbols_get_a_typed_error(symbol: str, problem: str) -> None:
    with pytest.raises(InvalidSymbolError) as info:
        check_symbol(symbol)
    assert isinstance(info.value, ValueError) and isinstance(info.value, SessionkitError)
    assert problem in str(info.value)
    assert repr(symbol) in str(info.value)
    with pytest.raises(InvalidSymbolError):
        symbol_file_name(symbol)


def test_file_names_are_distinct_and_reversible() -> None:
    names = {symbol_file_name(s) for s in REAL}
    assert len(names) == len(REAL)
    assert symbol_file_name("BRK/B") == "BRK%2FB"
    assert symbol_file_name("BRK.B") == "BRK%2EB"
    from urllib.parse import unquote

    assert all(unquote(symbol_file_name(s)) == s for s in REAL)


def _records(*symbols: str) -> tuple[dict, dict, dict]:
    bar = Bar(datetime(2024, 1, 2, 14, 30, tzinfo=UTC), 1.0, 2.0, 0.5, 1.5, 10)
    records = {(s, "1m"): [(bar, ())] for s in symbols}
    names = {(s, "1m"): () for s in symbols}
    return records, names, {s: [(bar.start, 100.0)] for s in symbols}


def _uncut(start, delta):
    """Bars end at start + interval (no close cuts them here)."""
    return start + delta


def test_export_keeps_every_symbol_inside_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "x" / "exp" / "a"
    records, names, quality = _records("BRK/B", "BRK.B", "^GSPC")
    written = write_csv_export(out, records, names, quality, UTC, _uncut)
    assert len(set(written)) == 3
    for path in written:
        assert path.resolve().is_relative_to(out.resolve())
        assert path.parent.parent == out
    assert sorted(p.parent.name for p in written) == ["%5EGSPC", "BRK%2EB", "BRK%2FB"]
    everything = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert everything == set(written)


def test_export_refuses_a_traversing_symbol(tmp_path: Path) -> None:
    records, names, quality = _records("../x")
    with pytest.raises(InvalidSymbolError):
        write_csv_export(tmp_path / "exp", records, names, quality, UTC, _uncut)
    assert not any(tmp_path.rglob("*.csv"))


def test_export_refuses_symbols_that_differ_only_in_case(tmp_path: Path) -> None:
    records, names, quality = _records("abc", "ABC")
    with pytest.raises(SessionkitError, match="differ only in case"):
        write_csv_export(tmp_path / "exp", records, names, quality, UTC, _uncut)


def test_config_uses_the_same_rule() -> None:
    data = {"backtest": {"start_date": "2024-01-02", "end_date": "2024-01-03"}}
    with pytest.raises(ConfigError) as info:
        config_from_dict({**data, "streams": {"symbols": ["SPY", "../../evil"]}}, source="x.toml")
    message = str(info.value)
    assert "x.toml" in message and "streams.symbols" in message and "'..'" in message
    config = config_from_dict({**data, "streams": {"symbols": ["BRK/B", "^GSPC"]}})
    assert config.streams.symbols == ["BRK/B", "^GSPC"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


GOOD = (
    "timestamp,open,high,low,close,volume\n"
    "2011-01-03T09:30:00-05:00,126.70,126.80,126.60,126.75,1000\n"
)


def test_import_refuses_a_traversing_symbol(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "s.sqlite"
    init_db(f"sqlite:///{db}").dispose()
    csv = tmp_path / "s.csv"
    csv.write_text(GOOD)
    code, out, err = run(
        capsys, "db", "import", str(csv), "--symbol", "../../evil", "--db", str(db)
    )
    assert code == 2
    assert err.strip().splitlines() == [
        "sessionkit: error: " + str(InvalidSymbolError("../../evil", "contains '..'"))
    ]
    code, out, _ = run(capsys, "db", "info", "--db", str(db), "--json")
    assert json.loads(out)["symbols"] == []


def test_markup_in_user_text_is_printed_as_text(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    db = tmp_path / "m.sqlite"
    init_db(f"sqlite:///{db}").dispose()
    csv = tmp_path / "[red]bars[x].csv"
    csv.write_text(GOOD)
    args = ("db", "import", str(csv), "--symbol", "SPY", "--description", "[/x] [bold]S&P")
    code, out, err = run(capsys, *args, "--db", str(db))
    assert (code, err) == (0, "")
    assert "[red]bars[x].csv" in out
    code, out, err = run(capsys, "db", "info", "--db", str(db))
    assert (code, err) == (0, "")
    assert "[/x] [bold]S&P" in out
