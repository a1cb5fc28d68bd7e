"""Database layer: schema, round trip through DataManager, clear errors."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sessionkit.engine.core.bar import Bar
from sessionkit.engine.errors import DatabaseError
from sessionkit.engine.store.data_manager import DataManager
from sessionkit.engine.store.db import BarRecord, init_db, open_db, safe_url
from sqlalchemy import insert


def test_round_trip_orders_by_start_and_filters_by_exchange_dates(tmp_path: Path) -> None:
    engine = init_db(f"sqlite:///{tmp_path / 'db.sqlite'}")
    start = datetime(2024, 3, 8, 14, 30, tzinfo=UTC)  # 09:30 New York, the Friday before DST
    rows = []
    for i in (5, 1, 3, 0, 2, 4):  # inserted out of order
        t = start + timedelta(days=i)
        rows.append(
            {
                "symbol": "ACME",
                "interval": "1m",
                "start": t,
                "open": 10.0 + i,
                "high": 11.0 + i,
                "low": 9.0 + i,
                "close": 10.5 + i,
                "volume": 100 * i,
            }
        )
    rows.append({**rows[0], "symbol": "BOLT"})
    with engine.begin() as connection:
        connection.execute(insert(BarRecord), rows)
    manager = DataManager(engine, "America/New_York")
    bars = manager.get_bars("ACME", "1m", date(2024, 3, 9), date(2024, 3, 12))
    assert [b.start for b in bars] == [start + timedelta(days=i) for i in (1, 2, 3, 4)]
    assert all(isinstance(b, Bar) for b in bars)
    assert bars[0] == Bar(start + timedelta(days=1), 11.0, 12.0, 10.0, 11.5, 100)
    assert bars[0].start.tzinfo is not None
    assert manager.get_bars("ACME", "5m", date(2024, 3, 1), date(2024, 3, 31)) == []
    # The Monday after the DST change: 09:30 New York is 13:30 UTC, stored instants keep it.
    pairs = manager.get_step_bars(["ACME", "BOLT"], "1m", start, start + timedelta(days=6))
    assert [(s, b.start) for s, b in pairs][:2] == [
        ("ACME", start),
        ("ACME", start + timedelta(days=1)),
    ]
    assert ("BOLT", start + timedelta(days=5)) in [(s, b.start) for s, b in pairs]


def test_naive_datetimes_are_refused(tmp_path: Path) -> None:
    engine = init_db(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as connection:
        connection.execute(
            insert(BarRecord),
            [
                {
                    "symbol": "X",
                    "interval": "1m",
                    "start": datetime(2024, 1, 2, 9, 30),
                    "open": 1,
                    "high": 1,
                    "low": 1,
                    "close": 1,
                    "volume": 1,
                }
            ],
        )


def test_missing_file_is_a_clear_error_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.sqlite"
    with pytest.raises(DatabaseError, match="does not exist"):
        open_db(f"sqlite:///{path}")
    assert not path.exists()


def test_a_database_another_program_is_writing_says_so(tmp_path: Path) -> None:
    """A write lock held longer than the 5 s busy timeout (an import in progress): the
    message says why the database cannot be opened, and what to do."""
    url = f"sqlite:///{tmp_path / 'locked.sqlite'}"
    init_db(url).dispose()
    holder = sqlite3.connect(tmp_path / "locked.sqlite", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(DatabaseError) as info:
            open_db(url)
    finally:
        holder.close()
    assert str(info.value) == (
        f"cannot open database {url}: database is locked (another program is writing to "
        "it, e.g. an import: try again when it is done)"
    )
    open_db(url).dispose()  # the lock gone, it opens


def test_database_without_schema(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    sqlite3.connect(path).execute("create table t (x)").connection.commit()
    with pytest.raises(DatabaseError, match="lacks sessionkit's schema"):
        open_db(f"sqlite:///{path}")


def test_malformed_url_and_unreachable_server_hide_the_password() -> None:
    with pytest.raises(DatabaseError) as info:
        open_db("notadialect://user:hunter2@host/db")
    assert "hunter2" not in str(info.value)
    with pytest.raises(DatabaseError) as info:
        open_db("postgresql+psycopg2://user:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in str(info.value)
    assert "***" in safe_url("postgresql://user:hunter2@host/db")


# -- the same database work on SQLite and on a real PostgreSQL server ------------------------

SPY_CSV = Path(__file__).parents[2] / "sample_db" / "data" / "SPY-extended-hours.csv"
SPY_ROWS = 31_757
CLI = [sys.executable, "-m", "sessionkit.engine.cli"]


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def cli_json(*args: str) -> dict:
    result = cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def loaded(request, tmp_path_factory) -> dict[str, str]:
    """Per backend, a database filled through the command line: schema, the NYSE calendar of
    2011, and the SPY bars of the sample data. Returns {backend: URL}."""
    urls = {
        "sqlite": f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'bars.sqlite'}",
        "postgresql": request.getfixturevalue("postgres_server").new_database("loaded"),
    }
    for url in urls.values():
        assert cli("db", "init", "--db", url).returncode == 0
        calendar = cli_json(
            "db", "calendar", "--db", url, "--from", "2011-01-01", "--to", "2011-12-31"
        )
        assert calendar["sessions_written"] == 252
        assert calendar["coverage"]["early_closes"] == 1  # 2011-11-25
        report = cli_json("db", "import", str(SPY_CSV), "--symbol", "SPY", "--db", url)
        assert report["imported"] == SPY_ROWS
    return urls


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_info_and_reimport_on_each_backend(loaded, backend: str) -> None:
    url = loaded[backend]
    info = cli_json("db", "info", "--db", url)
    assert info["total_bars"] == SPY_ROWS
    (spy,) = info["symbols"]
    assert spy["intervals"] == [
        {
            "interval": "1m",
            "bars": SPY_ROWS,
            "first": "2011-01-03T04:00:00-05:00",
            "last": "2011-03-31T19:58:00-04:00",
        }
    ]
    (nyse,) = info["calendars"]
    assert (nyse["sessions"], nyse["first_session"], nyse["last_session"]) == (
        252,
        "2011-01-03",
        "2011-12-30",
    )
    assert nyse["early_closes"] == 1
    again = cli_json("db", "import", str(SPY_CSV), "--symbol", "SPY", "--db", url)
    assert (again["imported"], again["already_present"]) == (0, SPY_ROWS)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_import_reports_bad_rows_and_keeps_good_ones(loaded, backend, tmp_path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2011-03-01T09:30:00-05:00,1,2,0.5,1.5,10\n"
        "2011-03-01T09:31:00-05:00,1,2,0.5,oops,10\n"
        "2011-03-01T09:32:00-05:00,1,2,0.5,1.5,10\n"
    )
    report = cli_json(
        "db", "import", str(path), "--symbol", f"BAD{backend}", "--db", loaded[backend]
    )
    assert (report["rows_read"], report["imported"], report["rejected_total"]) == (3, 2, 1)


def test_get_bars_is_the_same_on_both_backends(loaded) -> None:
    bars = {}
    for backend, url in loaded.items():
        engine = open_db(url)
        try:
            manager = DataManager(engine, "America/New_York")
            bars[backend] = manager.get_bars("SPY", "1m", date(2011, 3, 1), date(2011, 3, 31))
        finally:
            engine.dispose()
    assert len(bars["sqlite"]) > 10_000
    assert bars["postgresql"] == bars["sqlite"]
    assert all(b.start.tzinfo is not None for b in bars["postgresql"][:5])


def test_a_run_exports_the_same_bytes_on_both_backends(loaded, tmp_path) -> None:
    exports = {}
    for backend, url in loaded.items():
        folder = tmp_path / backend
        data = cli_json(
            "run",
            "spy-2011",
            "--db",
            url,
            "--start",
            "2011-03-08",
            "--end",
            "2011-03-10",
            "--export",
            str(folder),
        )
        assert data["state"] == "completed"
        assert data["bars"]["SPY"] == {"1m": 1170, "5m": 234, "15m": 78}
        exports[backend] = {
            p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.csv")
        }
    assert sorted(exports["sqlite"]) == [
        "SPY/15m.csv",
        "SPY/1m.csv",
        "SPY/5m.csv",
        "signals.csv",
    ]
    assert exports["postgresql"] == exports["sqlite"]


def test_a_sweep_whose_workers_share_the_postgresql_database(loaded) -> None:
    url = loaded["postgresql"]
    data = cli_json(
        "sweep",
        "spy-2011",
        "--db",
        url,
        "--start",
        "2011-03-08",
        "--end",
        "2011-03-10",
        "--shard-by",
        "session",
        "--param",
        "analysis.options.fast=5,10",
        "--workers",
        "2",
    )
    runs = data["runs"]
    assert len(runs) == 6 and all(r["state"] == "completed" for r in runs)
    for run in runs:
        assert run["result"]["bars"]["SPY"]["1m"] == 390
        assert run["result"]["parameters"]["database_url"] == url


def test_an_unreachable_server_or_a_bad_url_is_one_line_exit_2() -> None:
    for url in (
        "postgresql+psycopg://user@127.0.0.1:9/db?password=hunter2",
        "postgresql+psycopg://user:hunter2@host:port/db",
    ):
        result = cli("db", "info", "--db", url)
        assert result.returncode == 2
        assert "hunter2" not in result.stderr
        assert len(result.stderr.strip().splitlines()) <= 2
    assert safe_url("postgresql://u@h/db?password=hunter2&sslmode=require") == (
        "postgresql://u@h/db?password=***&sslmode=require"
    )


def test_history_before_the_calendar_is_exit_2_before_the_run(loaded) -> None:
    result = cli(
        "run",
        "spy-2011",
        "--db",
        loaded["sqlite"],
        "--start",
        "2011-01-04",
        "--end",
        "2011-01-05",
        "--json",
    )
    assert result.returncode == 2 and result.stdout == ""
    assert (
        "invalid configuration from --start 2011-01-04:\n  historical[0].trailing_days: 5 "
        "trading days of history before the first session 2011-01-04 reach before the NYSE "
        "calendar in the database (it starts on 2011-01-03)" in result.stderr
    )
