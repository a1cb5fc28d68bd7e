"""Tests of the bundled sample database (sample_db/sample.sqlite) and its build script.

The committed database is only read here; the determinism test builds a copy in a
temporary directory.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import sqlite3
import tomllib
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sessionkit.engine.config import bundled_database_path

NEW_YORK = ZoneInfo("America/New_York")
DEMO = ("ACME", "BOLT", "CRUX", "DYNA", "EMBR", "FLUX")
SAMPLE_DIR = bundled_database_path().parent


@pytest.fixture(scope="module")
def db() -> sqlite3.Connection:
    """A read-only connection to the bundled sample database."""
    path = bundled_database_path()
    assert path.is_file(), f"{path} is missing: run python -m sessionkit.sample_db.build"
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    yield connection
    connection.close()


def _sessions(db: sqlite3.Connection, first: date, last: date) -> list[tuple[date, int, int]]:
    rows = db.execute(
        "SELECT session_date, open, close FROM trading_calendar "
        "WHERE exchange = 'NYSE' AND session_date BETWEEN ? AND ? ORDER BY session_date",
        (first.isoformat(), last.isoformat()),
    ).fetchall()
    return [(date.fromisoformat(d), o, c) for d, o, c in rows]


def _readme_gaps() -> dict[str, set[int]]:
    """The missing minutes listed in sample_db/README.md, as UTC epoch seconds."""
    text = (SAMPLE_DIR / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- gaps:start -->")[1].split("<!-- gaps:end -->")[0]
    gaps: dict[str, set[int]] = {}
    for line in block.strip().strip("`").strip().splitlines():
        symbol, day, rest = line.split(" ", 2)
        d = date.fromisoformat(day)
        span = re.fullmatch(r"(\d\d):(\d\d)-(\d\d):(\d\d) \((\d+) minutes\)", rest)
        if span:
            h1, m1, h2, m2, n = map(int, span.groups())
            times = [datetime(d.year, d.month, d.day, h1, m1, tzinfo=NEW_YORK)]
            while times[-1] < datetime(d.year, d.month, d.day, h2, m2, tzinfo=NEW_YORK):
                times.append(times[-1] + timedelta(minutes=1))
            assert len(times) == n
        else:
            times = [
                datetime(d.year, d.month, d.day, int(t[:2]), int(t[3:]), tzinfo=NEW_YORK)
                for t in rest.split(", ")
            ]
        gaps.setdefault(symbol, set()).update(int(t.timestamp()) for t in times)
    return gaps


def test_file_is_small(db: sqlite3.Connection) -> None:
    assert bundled_database_path().stat().st_size < 15_000_000


def test_symbols_and_synthetic_flags(db: sqlite3.Connection) -> None:
    rows = {
        symbol: (description, bool(synthetic), source)
        for symbol, description, synthetic, source in db.execute(
            "SELECT symbol, description, synthetic, source FROM symbols"
        )
    }
    assert set(rows) == {"SPY", *DEMO}
    assert rows["SPY"][1] is False
    assert "PyAlgoTrade" in rows["SPY"][2] and "Apache" in rows["SPY"][2]
    for symbol in DEMO:
        description, synthetic, _source = rows[symbol]
        assert synthetic is True
        assert description.startswith("SYNTHETIC")
        assert "fictional" in description


def test_calendar_coverage(db: sqlite3.Connection) -> None:
    assert db.execute("SELECT name, timezone FROM exchanges").fetchall() == [
        ("NYSE", "America/New_York")
    ]
    first, last, count = db.execute(
        "SELECT min(session_date), max(session_date), count(*) FROM trading_calendar "
        "WHERE exchange = 'NYSE'"
    ).fetchone()
    assert (first, last) == ("2000-01-03", "2030-12-31")
    assert count == 7794
    assert len(_sessions(db, date(2024, 1, 1), date(2024, 12, 31))) == 252


def test_spy_real_bars(db: sqlite3.Connection) -> None:
    assert db.execute("SELECT count(*) FROM bars WHERE symbol = 'SPY'").fetchone() == (31757,)
    assert db.execute("SELECT DISTINCT interval FROM bars WHERE symbol = 'SPY'").fetchall() == [
        ("1m",)
    ]
    starts = [s for (s,) in db.execute("SELECT start FROM bars WHERE symbol = 'SPY'")]
    with_data = 0
    for day, open_, close in _sessions(db, date(2011, 1, 1), date(2011, 3, 31)):
        regular = [s for s in starts if open_ <= s < close]
        if day.month == 2:
            assert regular == []  # February 2011 is not in the data
            continue
        with_data += 1
        assert len(regular) == 390, day
        assert sorted(regular) == list(range(open_, close, 60))
    assert with_data == 43
    # Extended hours are there too: the first bar is at 04:00 New York time.
    first = datetime.fromtimestamp(min(starts), UTC).astimezone(NEW_YORK)
    assert (first.date(), first.hour, first.minute) == (date(2011, 1, 3), 4, 0)


def test_demo_bars_follow_the_calendar_except_the_documented_gaps(
    db: sqlite3.Connection,
) -> None:
    sessions = _sessions(db, date(2024, 11, 18), date(2024, 12, 31))
    assert len(sessions) == 30
    lengths = {day: (close - open_) // 60 for day, open_, close in sessions}
    assert lengths[date(2024, 11, 29)] == lengths[date(2024, 12, 24)] == 210
    assert Counter(lengths.values()) == {390: 28, 210: 2}
    expected = {m for _, open_, close in sessions for m in range(open_, close, 60)}
    gaps = _readme_gaps()
    assert set(gaps) == {"BOLT", "DYNA", "EMBR"}
    assert (len(gaps["BOLT"]), len(gaps["EMBR"]), len(gaps["DYNA"])) == (24, 36, 240)
    for symbol in DEMO:
        starts = {s for (s,) in db.execute("SELECT start FROM bars WHERE symbol = ?", (symbol,))}
        assert starts <= expected, f"{symbol} has bars outside the regular sessions"
        assert expected - starts == gaps.get(symbol, set()), symbol
        counts = Counter(datetime.fromtimestamp(s, UTC).astimezone(NEW_YORK).date() for s in starts)
        assert date(2024, 11, 28) not in counts  # Thanksgiving
        assert date(2024, 12, 25) not in counts  # Christmas
        if symbol not in gaps:
            assert all(counts[day] == lengths[day] for day in lengths), symbol
    dyna = db.execute(
        "SELECT count(*), max(start) FROM bars WHERE symbol = 'DYNA' AND start >= ? AND start < ?",
        (
            int(datetime(2024, 12, 10, tzinfo=NEW_YORK).timestamp()),
            int(datetime(2024, 12, 11, tzinfo=NEW_YORK).timestamp()),
        ),
    ).fetchone()
    assert dyna[0] == 150
    assert datetime.fromtimestamp(dyna[1], UTC).astimezone(NEW_YORK).strftime("%H:%M") == "11:59"


def test_readme_gaps_match_the_build_script(db: sqlite3.Connection) -> None:
    from sessionkit.sample_db import build

    sessions = [
        (day, datetime.fromtimestamp(o, UTC), datetime.fromtimestamp(c, UTC))
        for day, o, c in _sessions(db, build.DEMO_START, build.DEMO_END)
    ]
    assert {k: set(v) for k, v in build.missing_minutes(sessions).items()} == _readme_gaps()


def test_every_bar_is_consistent(db: sqlite3.Connection) -> None:
    bad = db.execute(
        "SELECT count(*) FROM bars WHERE NOT (low <= open AND open <= high AND low <= close "
        "AND close <= high AND low > 0 AND volume >= 0 AND typeof(volume) = 'integer')"
    ).fetchone()[0]
    assert bad == 0
    assert db.execute("SELECT count(*) FROM bars").fetchone() == (31757 + 67740,)


def test_demo_prices_move_together_and_volume_is_u_shaped(db: sqlite3.Connection) -> None:
    closes: dict[str, dict[int, float]] = {}
    for symbol in ("ACME", "FLUX"):
        closes[symbol] = dict(
            db.execute("SELECT start, close FROM bars WHERE symbol = ?", (symbol,)).fetchall()
        )
    common = sorted(set(closes["ACME"]) & set(closes["FLUX"]))
    returns = {
        s: [closes[s][b] / closes[s][a] - 1 for a, b in itertools.pairwise(common) if b - a == 60]
        for s in closes
    }
    from statistics import correlation

    assert correlation(returns["ACME"], returns["FLUX"]) > 0.1
    # Mean volume by minute of the day: the open and the close beat mid-day.
    by_minute: dict[int, list[int]] = {}
    for start, volume in db.execute("SELECT start, volume FROM bars WHERE symbol = 'ACME'"):
        local = datetime.fromtimestamp(start, UTC).astimezone(NEW_YORK)
        by_minute.setdefault(local.hour * 60 + local.minute, []).append(volume)
    mean = {m: sum(v) / len(v) for m, v in by_minute.items()}
    assert mean[9 * 60 + 30] > 2 * mean[12 * 60 + 30]
    assert mean[15 * 60 + 59] > 2 * mean[12 * 60 + 30]


def test_bundled_configurations(db: sqlite3.Connection) -> None:
    from sessionkit.engine.config import load_config
    from sessionkit.engine.store.data_manager import check_against_database
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///file:{bundled_database_path()}?mode=ro&uri=true")
    try:
        demo = load_config("demo")
        check_against_database(demo, engine)
        spy = load_config("spy-2011")
        check_against_database(spy, engine)
    finally:
        engine.dispose()
    assert demo.mode == "backtest" and demo.exchange_group == "NYSE"
    assert demo.database_url is None
    assert (demo.backtest.start_date, demo.backtest.end_date) == (
        date(2024, 11, 25),
        date(2024, 12, 31),
    )
    assert (demo.backtest.clock, demo.backtest.speed) == ("clock-driven", 60)
    assert demo.streams.symbols == list(DEMO)
    assert demo.streams.derived == ["5m", "15m"]
    assert [(h.apply_to, h.intervals, h.trailing_days) for h in demo.historical] == [
        ("all", ["1m", "5m", "15m"], 5)
    ]
    assert [(i.name, i.kind, i.interval) for i in demo.indicators] == [
        ("sma_20", "sma", "1m"),
        ("ema_20", "ema", "1m"),
        ("rsi_14", "rsi", "1m"),
        ("vwap", "vwap", "1m"),
        ("bb_20", "bollinger", "1m"),
        ("sma_5m", "sma", "5m"),
    ]
    assert demo.indicators[-1].period == 10
    assert demo.quality.enable_session_quality is True
    assert demo.analysis.entry == "sessionkit.engine.examples:SmaCross"
    assert spy.streams.symbols == ["SPY"]
    assert (spy.backtest.start_date, spy.backtest.end_date) == (date(2011, 3, 8), date(2011, 3, 31))
    # Every session of the window, and its trailing history, has all its regular bars
    # (February 2011 is not in the data: the bundled window must not need it).
    (trailing,) = {h.trailing_days for h in spy.historical}
    days = db.execute(
        "SELECT session_date, open, close FROM trading_calendar WHERE exchange = 'NYSE' "
        "AND session_date <= ? ORDER BY session_date DESC",
        (spy.backtest.end_date.isoformat(),),
    ).fetchall()
    window = [d for d in days if d[0] >= spy.backtest.start_date.isoformat()]
    history = [d for d in days if d[0] < spy.backtest.start_date.isoformat()][:trailing]
    assert len(window) == 18 and len(history) == trailing
    for _day, open_, close in window + history:
        (count,) = db.execute(
            "SELECT count(*) FROM bars WHERE symbol = 'SPY' AND interval = '1m' "
            "AND start >= ? AND start < ?",
            (open_, close),
        ).fetchone()
        assert count == 390
    # Only the contract's keys are used.
    allowed = {
        "": {"mode", "exchange_group", "backtest", "streams", "historical", "indicators",
             "quality", "analysis"},
        "backtest": {"start_date", "end_date", "clock", "speed"},
        "streams": {"symbols", "interval", "derived"},
        "historical": {"apply_to", "intervals", "trailing_days"},
        "indicators": {"name", "kind", "period", "interval"},
        "quality": {"enable_session_quality"},
        "analysis": {"entry"},
    }  # fmt: skip
    for name in ("demo.toml", "spy-2011.toml"):
        data = tomllib.loads((SAMPLE_DIR / name).read_text(encoding="utf-8"))
        assert set(data) <= allowed[""]
        for key, value in data.items():
            if key in allowed:
                for table in value if isinstance(value, list) else [value]:
                    assert set(table) <= allowed[key], (name, key)


def test_attribution_ships_beside_the_database() -> None:
    license_text = (SAMPLE_DIR / "SPY-LICENSE").read_text(encoding="utf-8")
    assert "Apache License, Version 2.0" in license_text
    assert "PyAlgoTrade" in license_text
    readme = (SAMPLE_DIR / "README.md").read_text(encoding="utf-8")
    assert "PyAlgoTrade" in readme and "SPY-LICENSE" in readme and "SYNTHETIC" in readme


def _digest(path: Path) -> dict[str, str]:
    connection = sqlite3.connect(path)
    try:
        out = {}
        for table, order in (
            ("bars", "symbol, interval, start"),
            ("trading_calendar", "exchange, session_date"),
            ("exchanges", "name"),
            ("symbols", "symbol"),
        ):
            digest = hashlib.sha256()
            for row in connection.execute(
                f"SELECT * FROM {table} ORDER BY {order}"  # noqa: S608 - fixed names
            ):
                digest.update(repr(row).encode())
            out[table] = digest.hexdigest()
        return out
    finally:
        connection.close()


def test_build_is_deterministic_and_matches_the_committed_file(tmp_path: Path) -> None:
    from sessionkit.sample_db import build

    output = tmp_path / "sample.sqlite"
    timings = build.build(output, quiet=True)
    assert timings["bytes"] < 15_000_000
    assert _digest(output) == _digest(bundled_database_path())
