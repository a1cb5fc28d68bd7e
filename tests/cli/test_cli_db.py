"""Tests of the ``sessionkit db`` commands (init, import, calendar, info).

Most run the real entry point (:func:`sessionkit.engine.cli.main`) in-process; one runs the
installed module in a subprocess to check the exit status and that no traceback is shown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sessionkit.engine.cli import main
from sessionkit.engine.config import bundled_database_path

GOOD = (
    "timestamp,open,high,low,close,volume\n"
    "2011-01-03T09:30:00-05:00,126.70,126.80,126.60,126.75,1000\n"
    "2011-01-03T09:31:00-05:00,126.75,126.90,126.70,126.85,2000\n"
    "2011-01-03T09:32:00-05:00,126.85,126.85,126.90,126.55,1500\n"  # high < low: rejected
)


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``sessionkit ARGS`` in-process; return (exit status, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def db_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """A new database with the schema and the NYSE calendar of January 2011."""
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    assert run(capsys, "db", "init", "--db", url)[0] == 0
    code, _, err = run(
        capsys, "db", "calendar", "--from", "2011-01-01", "--to", "2011-01-31", "--db", url
    )
    assert code == 0, err
    return url


def test_init_creates_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "new" / "db.sqlite"
    code, out, _ = run(capsys, "db", "init", "--db", str(path))
    assert code == 0
    assert path.is_file()
    assert "schema ready" in out
    # The new database is usable, and empty.
    code, out, err = run(capsys, "db", "info", "--db", f"sqlite:///{path}", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["symbols"] == [] and info["calendars"] == [] and info["total_bars"] == 0
    code, out, _ = run(capsys, "db", "info", "--db", str(path))
    assert "no symbols or bars yet" in out and "no trading calendar yet" in out


def test_calendar_command(tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    code, out, _ = run(
        capsys, "db", "calendar", "--exchange", "NYSE", "--from", "2024-11-01", "--to",
        "2024-11-30", "--db", db_url, "--json",
    )  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["sessions_written"] == 20
    assert data["code"] == "XNYS"
    assert data["coverage"]["sessions"] == 20 + 20  # January 2011 is still there
    assert data["coverage"]["early_closes"] == 1
    code, _, err = run(capsys, "db", "calendar", "--from", "2024-02-30", "--db", db_url)
    assert code == 2
    assert "--from" in err and "2024-02-30" in err
    code, _, err = run(capsys, "db", "calendar", "--exchange", "MOON", "--db", db_url)
    assert code == 2 and "unknown exchange 'MOON'" in err


def test_import_reports_and_is_idempotent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    csv = tmp_path / "spy.csv"
    csv.write_text(GOOD)
    code, out, err = run(
        capsys, "db", "import", str(csv), "--symbol", "SPY", "--interval", "1m", "--db", db_url
    )
    assert code == 0, err
    assert "2 imported" in out
    assert "1 rejected" in out
    assert "high < low" in out
    assert "4:" in out  # the line number of the rejected row
    code, out, _ = run(
        capsys, "db", "import", str(csv), "--symbol", "SPY", "--db", db_url, "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert (data["imported"], data["already_present"], data["rejected_total"]) == (0, 2, 1)
    assert data["rejected"][0]["examples"][0]["line"] == 4


def test_import_several_files_one_after_the_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    """A month per file (Binance's monthly klines, a vendor's yearly files): one command
    imports them all, each in its own transaction, with a report each and a total; a bad
    file stops there, the ones before it kept."""
    header = "timestamp,open,high,low,close,volume\n"
    files = []
    for day in (3, 4, 5):
        path = tmp_path / f"spy-2011-01-{day:02d}.csv"
        path.write_text(header + f"2011-01-{day:02d}T09:30:00-05:00,1,2,0.5,1.5,{day}\n")
        files.append(str(path))
    code, out, err = run(capsys, "db", "import", *files, "--symbol", "SPY", "--db", db_url)
    assert code == 0, err
    assert out.count("1 imported") == 3
    assert "3 file(s): 3 rows read, 3 imported, 0 already present, 0 rejected" in out
    code, out, err = run(
        capsys, "db", "import", *files[:2], "--symbol", "SPY", "--db", db_url, "--json"
    )
    assert code == 0, err
    imports = json.loads(out)["imports"]
    assert [(i["path"], i["already_present"]) for i in imports] == [(f, 1) for f in files[:2]]
    naive = tmp_path / "naive.csv"
    naive.write_text(header + "2011-01-06 09:30:00,1,2,0.5,1.5,10\n")
    later = tmp_path / "later.csv"
    later.write_text(header + "2011-01-07T09:30:00-05:00,1,2,0.5,1.5,10\n")
    code, out, err = run(
        capsys, "db", "import", files[0], str(naive), str(later), "--symbol", "SPY",
        "--db", db_url,
    )  # fmt: skip
    assert code == 2 and "naive.csv, line 2" in err and "Traceback" not in err
    assert "1 already present" in out and "later.csv" not in out


def test_without_symbol_every_symbol_of_a_file_is_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    """A file of many symbols without --symbol imports every symbol, as a DBN file does
    (it was refused: one import per symbol read the file once per symbol); a file without
    a column of symbols still needs --symbol."""
    path = tmp_path / "day.csv"
    path.write_text(
        "ticker,window_start,open,high,low,close,volume\n"
        + "".join(
            f"{t},1709562600,1,2,0.5,1.5,10\n" for t in ["AAPL", "MSFT", "AAPL"] + list("BCDEF")
        )
    )
    code, out, err = run(capsys, "db", "import", str(path), "--db", db_url)
    assert code == 0, err
    assert (
        f"{path}: 8 rows read, 7 imported, 0 already present, 1 rejected (7 symbols 1m); rows "
        "per symbol: AAPL 1, B 1, C 1, D 1, E 1, +2 more"
    ) in out
    code, out, err = run(capsys, "db", "import", str(path), "--db", db_url, "--json")
    data = json.loads(out)
    assert code == 0 and data["symbol"] is None and data["already_present"] == 7
    assert [s["symbol"] for s in data["symbols"]] == ["AAPL", "B", "C", "D", "E", "F", "MSFT"]
    code, out, _err = run(capsys, "db", "info", "--db", db_url, "--json")
    assert {s["symbol"] for s in json.loads(out)["symbols"]} >= {"AAPL", "MSFT", "F"}
    # --symbol with a comma names several (a comma is no symbol character).
    code, out, err = run(capsys, "db", "import", str(path), "--symbol", "MSFT, B,Q", "--db", db_url)
    assert code == 0, err
    assert (
        f"{path}: 8 rows read, 0 imported, 2 already present, 0 rejected (2 symbols 1m); rows "
        "per symbol: B 1, MSFT 1; no row of Q; 6 rows of 5 other symbols skipped"
    ) in out
    plain = tmp_path / "plain.csv"
    plain.write_text("timestamp,open,high,low,close,volume\n1709562600,1,2,0.5,1.5,10\n")
    code, _out, err = run(capsys, "db", "import", str(plain), "--db", db_url)
    assert code == 2 and "Traceback" not in err
    assert err.strip().endswith(
        f"{plain} has no column of symbols (symbol, ticker, sym): give the symbol of its "
        "bars with --symbol"
    )


def test_import_naive_timestamps_with_tz(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    csv = tmp_path / "naive.csv"
    csv.write_text("timestamp,open,high,low,close,volume\n2011-01-03 09:30:00,1,2,0.5,1.5,10\n")
    code, _, err = run(capsys, "db", "import", str(csv), "--symbol", "SPY", "--db", db_url)
    assert code == 2
    assert str(csv) in err and "--tz" in err
    assert "Traceback" not in err
    code, out, err = run(
        capsys, "db", "import", str(csv), "--symbol", "SPY", "--tz", "America/New_York",
        "--db", db_url, "--json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)  # times in the exchange zone, like db info
    assert (data["first_start"], data["timezone"]) == (
        "2011-01-03T09:30:00-05:00",
        "America/New_York",
    )


def test_bad_csv_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    for path in (binary, tmp_path / "missing.csv"):
        code, out, err = run(capsys, "db", "import", str(path), "--symbol", "X", "--db", db_url)
        assert code == 2
        assert out == ""
        assert err.count("\n") == 1 and err.startswith("sessionkit: error: ")
        assert str(path) in err


def test_missing_database_and_no_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nothere.sqlite"
    code, _, err = run(capsys, "db", "info", "--db", f"sqlite:///{missing}")
    assert code == 2
    assert "does not exist" in err and str(missing) in err and "sessionkit db init" in err
    assert not missing.exists()  # info never creates a database

    import sqlite3

    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).execute("CREATE TABLE other (x)").connection.close()
    for args in (("db", "info"), ("db", "calendar"), ("db", "import", str(empty), "--symbol", "X")):
        code, _, err = run(capsys, *args, "--db", str(empty))
        assert code == 2, args
        assert "lacks sessionkit's schema" in err
        assert err.count("\n") == 1


def test_password_is_never_printed(capsys: pytest.CaptureFixture[str]) -> None:
    for url in (
        "postgresql://trader:hunter2secret@127.0.0.1:1/bars",
        "mysql+pymysql://trader:hunter2secret@127.0.0.1:1/bars",
    ):
        code, out, err = run(capsys, "db", "info", "--db", url)
        assert code == 2
        assert "hunter2secret" not in out + err
        assert "trader:***@" in err


def test_info_on_the_bundled_database(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "db", "info")  # default: the bundled sample database
    assert code == 0, err
    assert str(bundled_database_path()) in out
    for text in ("ACME", "FLUX", "SPY", "SYNTHETIC", "real", "31,757", "NYSE", "America/New_York",
                 "2000-01-03", "2030-12-31", "7,794", "2011-01-03 04:00", "2024-12-31 15:59"):  # fmt: skip
        assert text in out, text
    # SYNTHETIC marks exactly the six demo symbols (in the data column).
    marked = [line.split()[1] for line in out.splitlines() if "│ SYNTHETIC │" in line]
    assert sorted(marked) == ["ACME", "BOLT", "CRUX", "DYNA", "EMBR", "FLUX"]


def test_info_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "db", "info", "--json", "--db", str(bundled_database_path()))
    assert code == 0
    info = json.loads(out)
    assert info["timezone"] == "America/New_York"
    symbols = {s["symbol"]: s for s in info["symbols"]}
    assert symbols["SPY"]["synthetic"] is False
    assert symbols["SPY"]["intervals"] == [
        {
            "interval": "1m",
            "bars": 31757,
            "first": "2011-01-03T04:00:00-05:00",
            "last": "2011-03-31T19:58:00-04:00",
        }
    ]
    assert all(symbols[s]["synthetic"] for s in ("ACME", "BOLT", "CRUX", "DYNA", "EMBR", "FLUX"))
    assert symbols["DYNA"]["intervals"][0]["bars"] == 11340 - 240
    assert info["calendars"] == [
        {
            "exchange": "NYSE",
            "timezone": "America/New_York",
            "sessions": 7794,
            "first_session": "2000-01-03",
            "last_session": "2030-12-31",
            "early_closes": 69,
            "sessions_with_break": 0,
            "holes": [],  # 9/11 closed the NYSE for 4 trading days, a hole is 15 days
        }
    ]
    assert info["total_bars"] == 31757 + 67740


def test_subprocess_exit_status_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("date,price\n2011-01-03,1\n")
    db = tmp_path / "sub.sqlite"
    command = [sys.executable, "-m", "sessionkit.engine.cli", "db"]
    assert subprocess.run([*command, "init", "--db", str(db)], capture_output=True).returncode == 0
    result = subprocess.run(
        [*command, "import", str(bad), "--symbol", "X", "--db", str(db)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"sessionkit: error: {bad} is not a file of bars: its header 'date,price' does not "
        "match 'timestamp,open,high,low,close,volume' (missing open, high, low, "
        "close, volume; other names are accepted case-insensitively, e.g. datetime, "
        "date+time, ts_event, Vol; or map them with --columns FIELD=NAME)"
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("db", "init"),
        ("db", "calendar", "--exchange", "NYSE", "--from", "2024-01-01", "--to", "2024-12-31"),
        ("db", "import", "bars.csv", "--symbol", "X", "--interval", "1m"),
    ],
)
def test_writing_commands_need_db(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    before = bundled_database_path().stat().st_mtime_ns
    code, out, err = run(capsys, *args)
    assert code == 2
    assert "pass --db" in err and "Traceback" not in err
    assert bundled_database_path().stat().st_mtime_ns == before


def test_emoji_codes_in_symbols_and_file_names_print_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    """``:`` is a symbol character: ``--symbol :fire:`` was printed as 🔥 (rich's emoji
    codes), in the import's summary and in a run's summary table."""
    import shutil
    import sqlite3

    from sessionkit.sample_db import __file__ as sample

    path = tmp_path / ":fire:.csv"
    path.write_text("timestamp,open,high,low,close,volume\n2024-03-04T14:30:00Z,1,2,0.5,1.5,10\n")
    code, out, _err = run(capsys, "db", "import", str(path), "--symbol", ":fire:", "--db", db_url)
    assert code == 0 and "🔥" not in out
    assert f"{path}: 1 rows read, 1 imported, 0 already present, 0 rejected (:fire: 1m)" in out
    copy = tmp_path / "sample.sqlite"
    shutil.copy(Path(sample).parent / "sample.sqlite", copy)
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE bars SET symbol = ':fire:' WHERE symbol = 'SPY'")
        db.execute("UPDATE symbols SET symbol = ':fire:' WHERE symbol = 'SPY'")
    code, out, err = run(
        capsys, "run", "spy-2011", "--db", str(copy), "--start", "2011-01-03", "--end",
        "2011-01-03", "--set", 'streams.symbols=[":fire:"]',
    )  # fmt: skip
    assert code == 0, err
    assert ":fire:" in out and "🔥" not in out


def test_a_calendar_filled_in_parts_says_where_it_has_no_session(
    capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    """Fills far apart said "calendar now covers 1990-01-02 to 2024-12-31": the years
    between have no session (and no backtest can run there). The fixture holds January
    2011."""
    for year in ("2024", "1990"):
        code, out, err = run(
            capsys, "db", "calendar", "--exchange", "NYSE", "--from", f"{year}-01-01",
            "--to", f"{year}-12-31", "--db", db_url,
        )  # fmt: skip
        assert code == 0, err
    assert out.splitlines()[1:] == [
        "calendar now covers 1990-01-02 to 2024-12-31 (525 sessions, 4 early closes, 0 with "
        "a break, zone America/New_York)",
        "but not between: no session from 1991-01-01 to 2011-01-02, 2011-02-01 to "
        "2024-01-01 (fill it: sessionkit db calendar --exchange NYSE --from 1991-01-01 --to "
        "2011-01-02)",
    ]
    code, out, _err = run(capsys, "db", "info", "--db", db_url, "--json")
    (nyse,) = [c for c in json.loads(out)["calendars"] if c["exchange"] == "NYSE"]
    assert nyse["holes"] == [
        {"from": "1991-01-01", "to": "2011-01-02"},
        {"from": "2011-02-01", "to": "2024-01-01"},
    ]
    code, out, _err = run(capsys, "db", "info", "--db", db_url)
    assert "NYSE: no session from 1991-01-01 to 2011-01-02" in out


def test_bar_times_of_several_exchanges_are_shown_in_utc(
    capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    """With New York's and Hong Kong's calendars, db info showed every bar in New York
    time (a Hong Kong 09:00 open as 20:00 the day before); the exchanges' zone is used only
    when the calendars share one, else UTC."""
    code, out, _err = run(capsys, "db", "info", "--db", db_url, "--json")
    assert json.loads(out)["timezone"] == "America/New_York"  # NYSE alone
    code, _out, err = run(
        capsys, "db", "calendar", "--exchange", "XHKG", "--from", "2011-01-01", "--to",
        "2011-01-31", "--db", db_url,
    )  # fmt: skip
    assert code == 0, err
    code, out, _err = run(capsys, "db", "info", "--db", db_url, "--json")
    assert json.loads(out)["timezone"] == "UTC"


def test_import_of_no_valid_row_exits_2_and_makes_no_symbol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    """A file whose every row is rejected (day-first dates with slashes) or that has a
    header only: one line naming the file, the commonest reason and an example line, exit
    status 2, and no symbol of 0 bars left behind (it was registered, exit 0)."""
    eu = tmp_path / "eu.csv"
    eu.write_text(
        "Date;Time;Open;High;Low;Close;Volume\n"
        "03/01/2011;09:30:00;126,71;126,74;126,66;126,72;2259046\n"
        "03/01/2011;09:31:00;126,72;126,79;126,69;126,79;815728\n"
    )
    header = tmp_path / "header.csv"
    header.write_text("timestamp,open,high,low,close,volume\n")
    for path, message in (
        (eu, "nothing imported: all 2 rows of bars rejected, all as 'unparseable timestamp' "
         "(e.g. line 2: '03/01/2011 09:30:00')"),
        (header, "has no rows of bars (only a header line): nothing imported"),
    ):  # fmt: skip
        code, out, err = run(
            capsys, "db", "import", str(path), "--symbol", "EUR", "--tz", "America/New_York",
            "--db", db_url,
        )  # fmt: skip
        assert (code, out) == (2, "")
        assert err.startswith(f"sessionkit: error: {path}") and message in err
        assert err.count("\n") == 1 and "Traceback" not in err
    code, out, _ = run(capsys, "db", "info", "--db", db_url, "--json")
    assert json.loads(out)["symbols"] == []


def test_calendar_counts_say_one_early_close(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: "1 early closes"."""
    url = f"sqlite:///{tmp_path / 'one.sqlite'}"
    assert run(capsys, "db", "init", "--db", url)[0] == 0
    code, out, err = run(
        capsys, "db", "calendar", "--exchange", "NYSE", "--from", "2024-11-25", "--to",
        "2024-11-29", "--db", url,
    )  # fmt: skip
    assert code == 0, err
    assert "(4 sessions, 1 early close, 0 with a break" in out


def test_a_file_of_several_that_imports_nothing_does_not_stop_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    """Day files of a month, one of them a holiday's with only its header: the others are
    imported, the empty one is named, and the command fails (exit 2) at the end."""
    header = "timestamp,open,high,low,close,volume\n"
    files = []
    for day in (3, 4, 5):
        path = tmp_path / f"spy-2011-01-{day:02d}.csv"
        rows = "" if day == 4 else f"2011-01-{day:02d}T09:30:00-05:00,1,2,0.5,1.5,{day}\n"
        path.write_text(header + rows)
        files.append(str(path))
    for extra in ((), ("--json",)):
        code, out, err = run(
            capsys, "db", "import", *files, "--symbol", "SPY", "--db", db_url, *extra
        )
        assert code == 2 and "Traceback" not in err
        assert f"{files[1]} has no rows of bars (only a header line)" in err
        assert "1 of 3 files imported nothing (above); the others were imported" in err
    assert "spy-2011-01-05.csv" in out  # imported after the empty one
    code, out, _ = run(capsys, "db", "info", "--db", db_url, "--json")
    (spy,) = json.loads(out)["symbols"]
    assert [i["bars"] for i in spy["intervals"]] == [2]


def test_import_warns_of_bars_off_the_session_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    """Clock-aligned hourly bars (10:00, 11:00 for NYSE, whose hours start at 09:30): a
    warning, not an error (they were imported without a word)."""
    path = tmp_path / "hours.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        + "".join(f"2011-01-03T{h:02d}:00:00-05:00,1,2,0.5,1.5,10\n" for h in (9, 10, 11))
    )
    args = ("db", "import", str(path), "--symbol", "CLK", "--interval", "1h", "--db", db_url)
    code, out, err = run(capsys, *args)
    assert (code, err) == (0, "")
    assert "warning: 2 of the 3 bars of CLK 1h do not start on NYSE's 1h session grid" in out
    assert "e.g. line 3: 2011-01-03 10:00, in a session whose windows start at 09:30" in out
    assert "engine will treat them as off-grid" in out
    code, out, err = run(capsys, *args, "--json")
    data = json.loads(out)
    assert data["off_grid"]["bars"] == 2 and data["off_grid"]["example"]["line"] == 3
    assert data["off_grid"]["example"]["start"] == "2011-01-03T10:00:00-05:00"
    assert len(data["warnings"]) == 1


def test_output_to_a_pipe_is_not_wrapped(tmp_path: Path) -> None:
    """QA: piped (no terminal), the import's caption broke mid-sentence and ``db info``'s
    calendar table split ``America/New_York`` over two lines, at 80 columns."""
    bars = tmp_path / "bars.csv"
    bars.write_text(GOOD.replace("-05:00", ""))  # naive times: the caption names the zone
    db = tmp_path / "pipe.sqlite"
    command = [sys.executable, "-m", "sessionkit.engine.cli", "db"]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}

    def piped(*args: str) -> list[str]:
        result = subprocess.run(
            [*command, *args], capture_output=True, text=True, env=env, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    piped("init", "--db", str(db))
    piped("calendar", "--from", "2011-01-01", "--to", "2011-01-31", "--db", str(db))
    lines = piped(
        "import", str(bars), "--symbol", "SPY", "--interval", "1m",
        "--tz", "America/New_York", "--db", str(db),
    )  # fmt: skip
    caption = [line for line in lines if line.strip().startswith("bars 2011-01-03 09:30")]
    assert len(caption) == 1, lines
    assert caption[0].rstrip().endswith(tuple(f"read by {r}" for r in ("pyarrow csv", "python")))
    assert "America/New_York;" in caption[0]
    assert any(line.strip().startswith("columns: timestamp=timestamp") for line in lines)
    assert max(len(line) for line in lines) > 80  # as long as it takes
    info = piped("info", "--db", str(db))
    calendar = [line for line in info if "NYSE" in line]
    assert len(calendar) == 1 and "America/New_York" in calendar[0], info
    assert not any(line.strip("│ ") == "ork" for line in info)


@pytest.mark.parametrize("command", ["init", "import", "calendar"])
@pytest.mark.parametrize("form", ["path", "url", "relative"])
def test_the_bundled_sample_database_is_never_written(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    form: str,
) -> None:
    """Left out, --db is required; named by its path (as QA did), the sample database
    was written: 390 bars imported into the installed package's file, exit 0."""
    sample = bundled_database_path()
    before = sample.read_bytes()
    monkeypatch.chdir(sample.parent)
    db = {"path": str(sample), "url": f"sqlite:///{sample}", "relative": sample.name}[form]
    data = tmp_path / "x.csv"
    data.write_text(GOOD)
    args = {
        "init": ["db", "init"],
        "import": ["db", "import", str(data), "--symbol", "X", "--tz", "America/New_York"],
        "calendar": ["db", "calendar", "--exchange", "NYSE", "--from", "2011-01-03",
                     "--to", "2011-01-07"],
    }[command]  # fmt: skip
    code, _out, err = run(capsys, *args, "--db", db)
    assert code == 2
    assert f"sessionkit db {command} would write to the bundled sample database" in err
    assert "cp " in err and "Traceback" not in err
    assert sample.read_bytes() == before


def test_rejection_reasons_are_printed_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    """QA: rich read "[low, high]" of "open or close outside [low, high]" as markup, and
    the table said "open or close outside"."""
    path = tmp_path / "outside.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2011-01-03T09:30:00-05:00,126.71,126.74,126.66,126.72,10\n"
        "2011-01-03T09:31:00-05:00,126.9,126.8,126.6,126.7,5\n"  # open above high
        "2011-01-03T09:32:00-05:00,nope,126.8,126.6,126.7,5\n"
        "not a time,126.7,126.8,126.6,126.7,5\n"
    )
    code, out, err = run(capsys, "db", "import", str(path), "--symbol", "SPY", "--db", db_url)
    assert code == 0, err
    assert "open or close outside [low, high]" in out
    assert "accepted timestamps: ISO 8601" in out


def test_import_warns_of_prices_at_or_below_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    """QA: zero and negative prices were imported without a word; they are kept (negative
    prices exist), with a warning line, and in --json."""
    path = tmp_path / "prices.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2011-01-03T09:30:00-05:00,-1,126.79,-2,126.79,5\n"
        "2011-01-03T09:31:00-05:00,0,0,0,0,5\n"
    )
    args = ("db", "import", str(path), "--symbol", "SPY", "--db", db_url)
    code, out, err = run(capsys, *args)
    assert (code, err) == (0, "")
    assert "2 imported" in out
    assert "warning: 2 of the 2 bars of SPY 1m have a price at or below zero, e.g. line 2:" in out
    code, out, err = run(capsys, *args, "--json")
    data = json.loads(out)
    assert data["nonpositive_prices"]["bars"] == 2
    assert data["nonpositive_prices"]["example"]["line"] == 2
    assert len(data["warnings"]) == 1 and "at or below zero" in data["warnings"][0]


def test_an_interrupted_import_says_what_was_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str, monkeypatch
) -> None:
    """QA: Ctrl-C during an import exited 130 without a word: each file is one
    transaction, so the one being read is rolled back and those before it are kept."""
    from sessionkit.engine.store import importing

    header = "timestamp,open,high,low,close,volume\n"
    files = []
    for day in (3, 4):
        path = tmp_path / f"spy-2011-01-{day:02d}.csv"
        path.write_text(header + f"2011-01-{day:02d}T09:30:00-05:00,1,2,0.5,1.5,{day}\n")
        files.append(str(path))
    real = importing.import_bars

    def interrupted(engine, path, *args, **kwargs):
        if str(path).endswith("04.csv"):
            raise KeyboardInterrupt
        return real(engine, path, *args, **kwargs)

    monkeypatch.setattr(importing, "import_bars", interrupted)
    code, out, err = run(capsys, "db", "import", *files, "--symbol", "SPY", "--db", db_url)
    assert code == 130
    assert "1 imported" in out
    assert err.strip() == (
        f"sessionkit: interrupted: nothing of {files[1]} was imported (rolled back); "
        "the files before it are imported"
    )
