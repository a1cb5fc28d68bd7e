"""window_coverage: the bars a run will stream, and the checks of its window, before it starts.

Only the bars inside each session's regular hours (outside its break) are streamed, so
only those count: for the progress total and ETA, for the "no bar in the window" error,
and for the warnings about sessions without a bar. Expectations come from
``exchange_calendars``' own session minutes (XHKG, with its lunch break) and from the
bundled spy-2011 data (which holds pre- and post-market bars), never from the engine's
calendar code.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import exchange_calendars as xcals
import pandas as pd
import pytest
from running import run_to_end
from sessionkit.engine import ConfigError, run_backtest, window_coverage
from sessionkit.engine.config import config_from_dict
from sessionkit.engine.pipeline.session import Session
from sessionkit.engine.runs.backtest import BacktestRun, resolve_config
from sessionkit.engine.store.calendar_fill import fill_calendar
from sessionkit.engine.store.db import BarRecord, init_db
from sqlalchemy import insert

MINUTE = timedelta(minutes=1)
FIRST, LAST = "2025-01-06", "2025-01-24"
"""The window of the XHKG runs: 15 sessions with the 12:00-13:00 lunch break."""


def _utc(ts) -> datetime:
    return ts.to_pydatetime().astimezone(UTC)


def _quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations inside exchange_calendars
        return call(*args, **kwargs)


@dataclass(frozen=True)
class World:
    """The bars of an XHKG database (see :func:`_world`)."""

    rows: list[tuple[str, datetime]]
    streamed: dict[str, int]
    """Bars of AAA and HOLE inside the window's trading hours (what a run streams)."""
    labels: list[pd.Timestamp]
    """The window's sessions."""


@cache
def _world() -> World:
    """The bars of an XHKG database, over the window and the two sessions before it:

    - ``AAA``: every trading minute, plus bars before the open, in the break, after the
      close and overnight (never streamed);
    - ``HOLE``: every trading minute but those of two runs of sessions in the middle of
      the window (the 3rd-5th and the 9th) and of its first session;
    - ``TKY``: every trading minute, stamped as if Hong Kong times were New York times
      (imported with the wrong ``--tz``): all outside trading hours;
    - ``OLD``: the two sessions before the window only.
    """
    calendar = _quiet(xcals.get_calendar, "XHKG", start="2024-12-01", end="2025-01-31")
    labels = list(calendar.sessions_in_range(FIRST, LAST))
    history = calendar.sessions_in_range(calendar.first_session, FIRST)[-3:-1]  # two before
    assert len(labels) == 15 and all(
        not pd.isna(calendar.schedule.at[label, "break_start"]) for label in labels
    )
    minutes = {
        label: [_utc(m) for m in _quiet(calendar.session_minutes, label)]
        for label in [*history, *labels]
    }
    holes = {labels[0], labels[2], labels[3], labels[4], labels[8]}
    rows: list[tuple[str, datetime]] = []
    streamed = {"AAA": 0, "HOLE": 0}
    for label in [*history, *labels]:
        row = calendar.schedule.loc[label]
        for m in minutes[label]:
            rows.append(("AAA", m))
            if label not in holes:
                rows.append(("HOLE", m))
            # Hong Kong's wall clock read as New York's: 09:30 HKT -> 09:30 EST (22:30 HKT).
            wall = m.astimezone(calendar.tz).replace(tzinfo=None)
            rows.append(("TKY", pd.Timestamp(wall, tz="America/New_York").to_pydatetime()))
            if label in history:
                rows.append(("OLD", m))
        if label in labels:
            streamed["AAA"] += len(minutes[label])
            streamed["HOLE"] += 0 if label in holes else len(minutes[label])
        # AAA's bars outside trading hours: before the open, in the break, after the close,
        # at night.
        open_, close = _utc(row.open), _utc(row.close)
        pause, resume = _utc(row.break_start), _utc(row.break_end)
        noise = [open_ - 30 * MINUTE, open_ - MINUTE, pause, pause + 17 * MINUTE]
        noise += [resume - MINUTE, close, close + 45 * MINUTE, close + 8 * 60 * MINUTE]
        rows.extend(("AAA", t) for t in noise)
    return World(rows, streamed, labels)


def _write(url: str, rows: list[tuple[str, datetime]]) -> None:
    engine = init_db(url)
    fill_calendar(engine, "XHKG", "2024-12-01", "2025-01-31")
    with engine.begin() as connection:
        connection.execute(
            insert(BarRecord),
            [
                {
                    "symbol": symbol,
                    "interval": "1m",
                    "start": start,
                    "open": 10.0,
                    "high": 11.0,
                    "low": 9.0,
                    "close": 10.0,
                    "volume": 100,
                }
                for symbol, start in rows
            ],
        )
    engine.dispose()


@pytest.fixture(scope="module")
def hk(tmp_path_factory: pytest.TempPathFactory):
    """A SQLite database of :func:`_world`: its URL, streamed bars and window's sessions."""
    world = _world()
    url = f"sqlite:///{tmp_path_factory.mktemp('coverage') / 'hk.sqlite'}"
    _write(url, world.rows)
    return url, world.streamed, world.labels


def _config(url: str, *symbols: str):
    return config_from_dict(
        {
            "exchange_group": "XHKG",
            "database_url": url,
            "backtest": {"start_date": FIRST, "end_date": LAST, "clock": "data-driven"},
            "streams": {"symbols": list(symbols), "interval": "1m"},
            "historical": [{"apply_to": "all", "trailing_days": 1}],
        }
    )


def test_only_bars_inside_trading_hours_count(hk) -> None:
    """QA: the count took every bar from the first open to the last close (pre- and
    post-market, overnight, the break): spy-2011 showed 326/1109 for a run of 780."""
    url, streamed, _labels = hk
    session = Session(_config(url, "AAA", "HOLE"))
    expected, _warnings = window_coverage(session)
    assert expected == streamed["AAA"] + streamed["HOLE"]  # exchange_calendars' minutes
    run_to_end(session, 120)
    assert session.coordinator.metrics.bars == expected  # what the run streamed


def test_the_progress_total_of_spy_2011_is_what_the_run_streams() -> None:
    """The sample's SPY bars include pre- and post-market: two sessions stream 2 x 390."""
    window = {"backtest.start_date": "2011-03-08", "backtest.end_date": "2011-03-09"}
    run = BacktestRun(resolve_config("spy-2011", window))
    try:
        assert run.expected_bars == 780
    finally:
        run.stop()
    assert run_backtest("spy-2011", overrides=window).bars["SPY"]["1m"] == 780


def test_a_symbol_with_bars_only_outside_trading_hours_is_refused(hk) -> None:
    """QA: Hong Kong times imported as New York's passed the check, and the run completed
    with 0 bars, exit 0, no warning."""
    url, _streamed, _labels = hk
    for count in (True, False):  # sessionkit run, and the monitor's check
        session = Session(_config(url, "AAA", "TKY"))
        try:
            with pytest.raises(ConfigError) as caught:
                window_coverage(session, count=count)
        finally:
            session.stop()
        message = str(caught.value)
        assert f"no 1m bar of TKY in the window {FIRST} to {LAST}" in message
        assert "AAA" not in message
        assert "TKY has 1m bars on those days, but none inside XHKG's trading hours" in message
        assert "wrong time zone" in message


def test_a_symbol_without_any_bar_on_the_windows_days_gets_no_time_zone_hint(hk) -> None:
    url, _streamed, _labels = hk
    session = Session(_config(url, "AAA", "OLD"))
    try:
        with pytest.raises(ConfigError) as caught:
            window_coverage(session)
    finally:
        session.stop()
    assert f"no 1m bar of OLD in the window {FIRST} to {LAST}" in str(caught.value)
    assert "time zone" not in str(caught.value)


def test_the_run_command_refuses_it_with_exit_2(hk, tmp_path: Path) -> None:
    url, _streamed, _labels = hk
    config = tmp_path / "tky.toml"
    config.write_text(
        f'exchange_group = "XHKG"\ndatabase_url = "{url}"\n'
        f"[backtest]\nstart_date = {FIRST}\nend_date = {LAST}\n"
        '[streams]\nsymbols = ["TKY"]\ninterval = "1m"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "sessionkit.engine.cli", "run", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert "no 1m bar of TKY" in result.stderr and "wrong time zone" in result.stderr


def test_sessions_without_a_bar_inside_the_window_are_a_warning(hk) -> None:
    """QA: a hole in the middle of the window (spy-2011 has no February) gave no warning."""
    url, streamed, labels = hk
    session = Session(_config(url, "AAA", "HOLE"))
    try:
        expected, warnings = window_coverage(session)
        day = [label.date() for label in labels]
        assert expected == streamed["AAA"] + streamed["HOLE"]
        assert warnings == (
            f"HOLE: 1m bars cover only {day[1]} to {day[-1]} of the window {FIRST} to {LAST}",
            f"HOLE: no 1m bar in 4 of the 14 sessions from {day[1]} to {day[-1]}: "
            f"{day[2]} to {day[4]}, {day[8]}",
        )
        assert window_coverage(session, count=False) == (None, warnings)
    finally:
        session.stop()


def test_the_hole_in_spy_2011_is_said() -> None:
    """February 2011 is not in the sample: 19 of the window's 32 sessions have no bar."""
    result = run_backtest(
        "spy-2011",
        overrides={"backtest.start_date": "2011-01-25", "backtest.end_date": "2011-03-10"},
    )
    assert result.state == "completed"
    assert result.warnings == (
        "SPY: no 1m bar in 19 of the 32 sessions from 2011-01-25 to 2011-03-10: "
        "2011-02-01 to 2011-02-28",
    )


def test_postgresql_gives_what_sqlite_gives(hk, postgres_url: str) -> None:
    """The one statement (a VALUES list of the symbols joined with the calendar, a count
    or an EXISTS per session part) on a real PostgreSQL server."""
    url, _streamed, _labels = hk
    _write(postgres_url, _world().rows)
    for count in (True, False):
        got = []
        for database in (url, postgres_url):
            session = Session(_config(database, "AAA", "HOLE"))
            try:
                got.append(window_coverage(session, count=count))
            finally:
                session.stop()
        assert got[0] == got[1]
        session = Session(_config(postgres_url, "AAA", "TKY"))
        try:
            with pytest.raises(ConfigError, match="TKY has 1m bars on those days"):
                window_coverage(session, count=count)
        finally:
            session.stop()
