"""Correctness of the session pipeline on the bundled sample database (real data).

Every check compares what the engine streamed, built or computed with an independent
reference: a direct sqlite3 query of the stored bars, New York wall-clock times, a pandas
resample, and pandas/numpy implementations of the indicators (never the engine's code).

Runs (module fixtures, each a few hundred milliseconds to ~2 s, data-driven):

- ``spy``: real SPY 1m bars 2011-01-10..2011-03-31 (extended hours in the database),
  5 trailing days of history, derived 5m/15m/1h, every indicator kind on every interval,
  a recording analysis; recorded for export.
- ``demo_early``: the synthetic demo universe over Thanksgiving and Christmas 2024 (two
  early closes at 13:00, two holidays).
- ``quality_runs``: demo days with documented gaps.
"""

from __future__ import annotations

import csv
import math
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from pipeline_analyses import visible_end
from sessionkit.engine.config import bundled_database_path, config_from_dict
from sessionkit.engine.pipeline.session import Session

NY = ZoneInfo("America/New_York")
DEMO = ["ACME", "BOLT", "CRUX", "DYNA", "EMBR", "FLUX"]
MINUTES = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60}
SPY_INTERVALS = ["1m", "5m", "15m", "1h"]


def indicators_for(interval: str) -> list[dict]:
    """One indicator of every kind on ``interval`` (names suffixed with the interval)."""
    return [
        {"name": f"sma_{interval}", "kind": "sma", "period": 20, "interval": interval},
        {"name": f"ema_{interval}", "kind": "ema", "period": 10, "interval": interval},
        {"name": f"rsi_{interval}", "kind": "rsi", "period": 14, "interval": interval},
        {"name": f"vwap_{interval}", "kind": "vwap", "interval": interval},
        {
            "name": f"bb_{interval}",
            "kind": "bollinger",
            "period": 20,
            "std": 2.5,
            "interval": interval,
        },
        {"name": f"atr_{interval}", "kind": "atr", "period": 14, "interval": interval},
        {
            "name": f"macd_{interval}",
            "kind": "macd",
            "fast": 12,
            "slow": 26,
            "signal": 9,
            "interval": interval,
        },
    ]


def run_to_end(config: dict, *, record: bool = True, timeout: float = 60.0) -> Session:
    """Run a backtest to completion and stop it; fails unless it completed.

    ``wait_idle`` returns when the coordinator finished; ``stop`` then lets the quality
    manager drain its queue and joins every thread (``wait`` would add a second of join
    timeout while the quality manager catches up: see test_pipeline_controls).
    """
    session = Session(config_from_dict(config), record=record)
    session.start()
    try:
        assert session.wait_idle(timeout), "the session did not finish in time"
        assert session.finished
    finally:
        assert session.stop()
    snap = session.snapshot()
    assert snap.state == "completed", snap.error
    return session


def ny(day: date, hh: int, mm: int) -> datetime:
    return datetime.combine(day, time(hh, mm), NY)


# -- the reference data ------------------------------------------------------------------------


def db_bars(symbol: str, first: date, last: date) -> pd.DataFrame:
    """Stored 1m bars of ``symbol`` on New York dates first..last, regular hours only.

    Regular hours are 09:30 to 16:00 New York time (the SPY months have no early close);
    the demo universe holds regular-session bars only.
    """
    lo = int(datetime.combine(first, time(0), NY).timestamp())
    hi = int(datetime.combine(last + timedelta(days=1), time(0), NY).timestamp())
    with sqlite3.connect(bundled_database_path()) as connection:
        rows = connection.execute(
            "SELECT start, open, high, low, close, volume FROM bars "
            "WHERE symbol = ? AND interval = '1m' AND start >= ? AND start < ? ORDER BY start",
            (symbol, lo, hi),
        ).fetchall()
    frame = pd.DataFrame(rows, columns=["epoch", "open", "high", "low", "close", "volume"])
    frame["start"] = pd.to_datetime(frame["epoch"], unit="s", utc=True)
    local = frame["start"].dt.tz_convert(NY)
    minutes = local.dt.hour * 60 + local.dt.minute
    frame = frame[(minutes >= 9 * 60 + 30) & (minutes < 16 * 60)].copy()
    frame["session"] = local[frame.index].dt.date
    return frame.reset_index(drop=True)


def calendar_join_bars(symbol: str, first: date, last: date) -> list[tuple]:
    """The regular-session bars per the calendar table, straight from SQL."""
    with sqlite3.connect(bundled_database_path()) as connection:
        return connection.execute(
            "SELECT b.start, b.open, b.high, b.low, b.close, b.volume FROM bars b "
            "JOIN trading_calendar c ON c.exchange = 'NYSE' AND b.start >= c.open "
            "AND b.start < c.close WHERE b.symbol = ? AND b.interval = '1m' "
            "AND c.session_date BETWEEN ? AND ? ORDER BY b.start",
            (symbol, first.isoformat(), last.isoformat()),
        ).fetchall()


def resample(base: pd.DataFrame, minutes: int, closes: dict[date, datetime] | None = None):
    """Derived bars: windows anchored at 09:30, cut by the close, none for empty windows."""
    frame = base.copy()
    opens = frame["session"].map(lambda d: pd.Timestamp(ny(d, 9, 30)))
    offset = (frame["start"] - opens).dt.total_seconds() // (minutes * 60)
    frame["window"] = opens + pd.to_timedelta(offset * minutes, unit="min")
    grouped = frame.groupby(["session", "window"], sort=True)
    out = grouped.agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
    ).reset_index()
    out["start"] = pd.to_datetime(out["window"], utc=True)
    close = out["session"].map(
        lambda d: pd.Timestamp((closes or {}).get(d) or ny(d, 16, 0)).tz_convert(UTC)
    )
    out["end"] = np.minimum(out["start"] + pd.Timedelta(minutes=minutes), close)
    return out[["session", "start", "end", "open", "high", "low", "close", "volume"]]


def _seeded(values: pd.Series, period: int, alpha: float) -> pd.Series:
    """Recursive mean with weight ``alpha``, seeded with the mean of the first values."""
    out = pd.Series(np.nan, index=values.index)
    if len(values) < period:
        return out
    seeded = values.iloc[period - 1 :].astype(float).copy()
    seeded.iloc[0] = values.iloc[:period].mean()
    out.iloc[period - 1 :] = seeded.ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return out


def reference(kind: str, bars: pd.DataFrame, spec: dict) -> dict[str, np.ndarray]:
    """Reference values of one indicator over ``bars`` (in order), keyed by output name."""
    name = spec["name"]
    close = bars["close"].reset_index(drop=True).astype(float)
    high = bars["high"].reset_index(drop=True).astype(float)
    low = bars["low"].reset_index(drop=True).astype(float)
    volume = bars["volume"].reset_index(drop=True).astype(float)
    period = spec.get("period", 14)
    if kind == "sma":
        return {name: close.rolling(period).mean().to_numpy()}
    if kind == "ema":
        return {name: _seeded(close, period, 2.0 / (period + 1)).to_numpy()}
    if kind == "rsi":
        change = close.diff().iloc[1:]
        gain = _seeded(change.clip(lower=0.0), period, 1.0 / period)
        loss = _seeded((-change).clip(lower=0.0), period, 1.0 / period)
        with np.errstate(divide="ignore", invalid="ignore"):
            rsi = 100.0 - 100.0 / (1.0 + gain / loss)
        rsi = rsi.where(loss != 0.0, np.where(gain > 0.0, 100.0, 50.0))
        rsi = rsi.where(gain.notna())
        return {name: rsi.reindex(close.index).to_numpy()}
    if kind == "vwap":
        typical = (high + low + close) / 3.0
        session = bars["session"].reset_index(drop=True)
        pv = (typical * volume).groupby(session).cumsum()
        v = volume.groupby(session).cumsum()
        return {name: (pv / v).where(v > 0).to_numpy()}
    if kind == "bollinger":
        mid = close.rolling(period).mean()
        sd = close.rolling(period).std(ddof=0)
        k = spec["std"]
        return {
            name: mid.to_numpy(),
            f"{name}.upper": (mid + k * sd).to_numpy(),
            f"{name}.lower": (mid - k * sd).to_numpy(),
        }
    if kind == "atr":
        previous = close.shift(1)
        tr = pd.concat([high - low, (high - previous).abs(), (low - previous).abs()], axis=1)
        tr = tr.max(axis=1)
        tr.iloc[0] = high.iloc[0] - low.iloc[0]
        return {name: _seeded(tr, period, 1.0 / period).to_numpy()}
    if kind == "macd":
        fast = _seeded(close, spec["fast"], 2.0 / (spec["fast"] + 1))
        slow = _seeded(close, spec["slow"], 2.0 / (spec["slow"] + 1))
        line = fast - slow
        valid = line.dropna()
        signal = _seeded(valid, spec["signal"], 2.0 / (spec["signal"] + 1)).reindex(line.index)
        return {
            name: line.to_numpy(),
            f"{name}.signal": signal.to_numpy(),
            f"{name}.hist": (line - signal).to_numpy(),
        }
    raise AssertionError(kind)


def as_array(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def bar_frame(bars) -> pd.DataFrame:
    """Engine bars (start, o, h, l, c, v) as a frame like :func:`db_bars`."""
    frame = pd.DataFrame(
        [tuple(b) for b in bars], columns=["start", "open", "high", "low", "close", "volume"]
    )
    frame["start"] = pd.to_datetime(frame["start"], utc=True)
    frame["session"] = frame["start"].dt.tz_convert(NY).dt.date
    return frame


# -- the SPY run ---------------------------------------------------------------------------------

SPY_FIRST, SPY_LAST = date(2011, 1, 10), date(2011, 3, 31)
SPY_HISTORY_FIRST = date(2011, 1, 3)  # the 5 trailing sessions of 2011-01-10


@dataclass
class Run:
    session: Session
    snap: object
    recorder: object
    record: dict


@pytest.fixture(scope="module")
def spy() -> Run:
    config = {
        "backtest": {"start_date": SPY_FIRST, "end_date": SPY_LAST, "clock": "data-driven"},
        "streams": {"symbols": ["SPY"], "interval": "1m", "derived": ["5m", "15m", "1h"]},
        "historical": [{"apply_to": "all", "intervals": ["1m"], "trailing_days": 5}],
        "indicators": [i for interval in SPY_INTERVALS for i in indicators_for(interval)],
        "analysis": {
            "entry": "pipeline_analyses:Recorder",
            "options": {"intervals": SPY_INTERVALS, "n": 3},
        },
    }
    session = run_to_end(config)
    return Run(session, session.snapshot(), session.analysis.analysis, session.processor.record)


@pytest.fixture(scope="module")
def spy_reference() -> pd.DataFrame:
    """History (2011-01-03..07) and streamed regular-session SPY bars, in order."""
    return db_bars("SPY", SPY_HISTORY_FIRST, SPY_LAST)


def test_spy_sessions_skip_the_holiday_and_have_390_bars(spy: Run) -> None:
    snap = spy.snap
    assert date(2011, 1, 17) not in snap.sessions  # Martin Luther King Jr. Day
    assert snap.sessions[0] == SPY_FIRST and snap.sessions[-1] == SPY_LAST
    assert [d for d, _t in spy.recorder.session_starts] == list(snap.sessions)
    base = bar_frame(bar for bar, _row in spy.record["SPY", "1m"])
    per_session = base.groupby("session").size()
    assert date(2011, 1, 17) not in per_session.index
    # January (from the 10th) and March have data; February is not in the sample database.
    with_data = [d for d in snap.sessions if d.month != 2]
    assert list(per_session.index) == with_data
    assert (per_session == 390).all(), per_session[per_session != 390]
    local = base["start"].dt.tz_convert(NY)
    assert local.dt.time.min() == time(9, 30)
    assert local.dt.time.max() == time(15, 59)
    assert spy.session.processor.totals["SPY", "1m"] == 390 * len(with_data)
    # Every session, with data or not, ends at 16:00 New York time.
    for day, t, _last in spy.recorder.session_ends:
        assert t == ny(day, 16, 0)


def test_spy_extended_hours_exist_but_are_not_streamed(spy: Run) -> None:
    lo = int(ny(date(2011, 1, 10), 0, 0).timestamp())
    hi = int(ny(date(2011, 1, 11), 0, 0).timestamp())
    with sqlite3.connect(bundled_database_path()) as connection:
        (stored,) = connection.execute(
            "SELECT COUNT(*) FROM bars WHERE symbol = 'SPY' AND start >= ? AND start < ?",
            (lo, hi),
        ).fetchone()
    assert stored > 390  # pre- and post-market bars are in the database
    streamed = [
        b for b, _r in spy.record["SPY", "1m"] if b.start.astimezone(NY).date() == date(2011, 1, 10)
    ]
    assert len(streamed) == 390


def test_dst_change_does_not_shift_bars(spy: Run) -> None:
    starts = [bar.start for bar, _row in spy.record["SPY", "1m"]]
    first = {}
    last = {}
    for start in starts:
        day = start.astimezone(NY).date()
        first.setdefault(day, start)
        last[day] = start
    assert first[date(2011, 3, 11)] == datetime(2011, 3, 11, 14, 30, tzinfo=UTC)  # EST
    assert first[date(2011, 3, 14)] == datetime(2011, 3, 14, 13, 30, tzinfo=UTC)  # EDT
    assert last[date(2011, 3, 11)] == datetime(2011, 3, 11, 20, 59, tzinfo=UTC)
    assert last[date(2011, 3, 14)] == datetime(2011, 3, 14, 19, 59, tzinfo=UTC)
    for day in first:
        assert first[day].astimezone(NY).time() == time(9, 30)
        assert last[day].astimezone(NY).time() == time(15, 59)


def test_every_stored_bar_is_streamed_exactly_once(spy: Run, spy_reference) -> None:
    expected = spy_reference[spy_reference["session"] >= SPY_FIRST]
    rows = list(
        zip(
            expected["epoch"],
            expected["open"],
            expected["high"],
            expected["low"],
            expected["close"],
            expected["volume"],
            strict=True,
        )
    )
    # The reference agrees with the calendar table's sessions.
    assert rows == calendar_join_bars("SPY", SPY_FIRST, SPY_LAST)

    def as_rows(bars):
        return [(int(b[0].timestamp()), *b[1:]) for b in bars]

    recorded = as_rows(bar for bar, _row in spy.record["SPY", "1m"])
    assert recorded == rows
    # What the analysis saw arrive, step by step: the same bars, once each, in order.
    seen = as_rows(bar for _symbol, bar in spy.recorder.items)
    assert seen == rows
    assert spy.snap.metrics.steps == len(rows) + sum(
        1 for d in spy.snap.sessions if d.month == 2
    )  # a session without data still advances to its close once


def test_analysis_never_sees_a_bar_before_its_end(spy: Run) -> None:
    recorder = spy.recorder
    assert len(recorder.times) > 10_000
    assert recorder.violations == []
    assert recorder.derived_lag == []  # a complete window is visible at once
    assert recorder.times == sorted(recorder.times)


@pytest.mark.parametrize("interval", ["5m", "15m", "1h"])
def test_derived_bars_equal_an_independent_resample(spy: Run, spy_reference, interval: str) -> None:
    streamed = spy_reference[spy_reference["session"] >= SPY_FIRST]
    expected = resample(streamed, MINUTES[interval])
    got = bar_frame(bar for bar, _row in spy.record["SPY", interval])
    assert len(got) == len(expected)
    assert list(got["start"]) == list(expected["start"])
    for column in ("open", "high", "low", "close", "volume"):
        assert list(got[column]) == list(expected[column]), column
    per_session = got.groupby("session").size()
    assert set(per_session) == {math.ceil(390 / MINUTES[interval])}
    if interval == "1h":  # the 15:30 window is cut by the 16:00 close, still emitted
        last = expected.groupby("session").tail(1)
        assert {t.tz_convert(NY).time() for t in last["start"]} == {time(15, 30)}
        assert {t.tz_convert(NY).time() for t in last["end"]} == {time(16, 0)}


@pytest.mark.parametrize("interval", SPY_INTERVALS)
def test_indicators_equal_an_independent_computation(
    spy: Run, spy_reference, interval: str
) -> None:
    # The engine warms up over the first session's 5 trailing days, then carries state
    # across sessions (VWAP restarts each session): the reference runs over all of it.
    minutes = MINUTES[interval]
    sequence = spy_reference if minutes == 1 else resample(spy_reference, minutes)
    rows = spy.record["SPY", interval]
    names = spy.session.processor.streams["SPY", interval].names
    assert len(sequence) > len(rows) > 0
    tail = len(rows)
    streamed = sequence.iloc[-tail:]
    assert [int(b.start.timestamp()) for b, _r in rows] == [
        int(t.timestamp()) for t in streamed["start"]
    ]
    checked = 0
    for spec in indicators_for(interval):
        for name, values in reference(spec["kind"], sequence, spec).items():
            column = names.index(name)
            got = as_array(row[column] for _bar, row in rows)
            want = values[-tail:]
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=name)
            checked += 1
    assert checked == 11


def test_warm_up_gives_valid_indicators_from_the_first_bar(spy: Run) -> None:
    for interval in SPY_INTERVALS:
        names = spy.session.processor.streams["SPY", interval].names
        _bar, first = spy.record["SPY", interval][0]
        missing = [n for n, v in zip(names, first, strict=True) if v is None]
        assert missing == [], f"{interval}: {missing} not warmed up"


def test_series_matches_the_recorded_values(spy: Run) -> None:
    """``Session.series`` returns copies aligned with its bars (history first)."""
    for interval in SPY_INTERVALS:
        names = spy.session.processor.streams["SPY", interval].names
        rows = spy.record["SPY", interval]
        per_session = len([b for b, _r in rows if b.start.astimezone(NY).date() == SPY_LAST])
        series = spy.session.series("SPY", interval, n=per_session)
        assert series.history == 0  # only the last session's bars were asked for
        tail = rows[-per_session:]
        assert series.starts == tuple(b.start for b, _r in tail)
        assert series.close == tuple(b.close for b, _r in tail)
        for position, name in enumerate(names):
            assert series.indicators[name] == tuple(r[position] for _b, r in tail), name
        everything = spy.session.series("SPY", interval, n=100_000)
        assert everything.history == len(everything.starts) - per_session
        assert everything.starts == tuple(sorted(everything.starts))


def test_warm_up_across_an_early_close_and_gaps_in_the_history() -> None:
    """2024-12-02..03 with 5 trailing days (11-22..11-29, early close on 11-29).

    EMBR has gaps in the history and the streamed days; the 1h windows of 11-29 are cut
    at 13:00. Indicators must equal the reference over history + streamed bars.
    """
    intervals = ["1m", "15m", "1h"]
    config = {
        "backtest": {"start_date": "2024-12-02", "end_date": "2024-12-03", "clock": "data-driven"},
        "streams": {"symbols": ["ACME", "EMBR"], "derived": ["15m", "1h"]},
        "historical": [{"trailing_days": 5}],
        "indicators": [i for interval in intervals for i in indicators_for(interval)],
    }
    session = run_to_end(config)
    closes = {date(2024, 11, 29): ny(date(2024, 11, 29), 13, 0)}
    for symbol in ("ACME", "EMBR"):
        base = db_bars(symbol, date(2024, 11, 22), date(2024, 12, 3))
        assert len(base) < 5 * 390 + 2 * 390  # the early close (and EMBR's gaps)
        for interval in intervals:
            minutes = MINUTES[interval]
            sequence = base if minutes == 1 else resample(base, minutes, closes)
            rows = session.processor.record[symbol, interval]
            streamed = sequence.iloc[-len(rows) :]
            assert [b.start for b, _r in rows] == list(streamed["start"])
            names = session.processor.streams[symbol, interval].names
            # Valid from the first bar (1h: 32 history bars are too few for MACD's signal).
            first = dict(zip(names, rows[0][1], strict=True))
            if interval == "1h":
                first = {k: v for k, v in first.items() if not k.startswith("macd_1h.")}
            assert None not in first.values(), (symbol, interval, first)
            for spec in indicators_for(interval):
                for name, values in reference(spec["kind"], sequence, spec).items():
                    got = as_array(row[names.index(name)] for _bar, row in rows)
                    np.testing.assert_allclose(
                        got, values[-len(rows) :], rtol=1e-9, atol=1e-9, err_msg=name
                    )


def test_warm_up_is_visible_before_the_first_step() -> None:
    """Paused at the first session's start: history and its indicators are loaded."""
    config = config_from_dict(
        {
            "backtest": {"start_date": "2011-01-10", "end_date": "2011-01-10"},
            "streams": {"symbols": ["SPY"], "derived": ["5m"]},
            "historical": [{"trailing_days": 5}],
            "indicators": indicators_for("1m") + indicators_for("5m"),
        }
    )
    session = Session(config, start_paused=True)
    session.start()
    try:
        assert session.wait_idle(10)
        snap = session.snapshot()
        assert snap.state == "paused"
        assert snap.sim_time == ny(date(2011, 1, 10), 9, 30)
        assert snap.series["SPY", "1m"].history_count == 5 * 390
        assert snap.series["SPY", "1m"].bar_count == 0
        assert snap.series["SPY", "5m"].history_count == 5 * 78
        series = session.series("SPY", "1m", n=10_000)
        assert series.history == 5 * 390
        assert series.starts[0] == ny(date(2011, 1, 3), 9, 30)
        assert series.starts[-1] == ny(date(2011, 1, 7), 15, 59)
        assert all(v is not None for v in snap.indicators["SPY"].values())
        # Historical indicators: one value per history bar, looked up by time (each value
        # is known from its bar's end).
        history = db_bars("SPY", date(2011, 1, 3), date(2011, 1, 7))
        for interval in ("1m", "5m"):
            bars = history if interval == "1m" else resample(history, 5)
            seconds = MINUTES[interval] * 60
            ends = [t.to_pydatetime().timestamp() + seconds for t in bars["start"]]
            series = session.data.series("SPY", interval)
            for spec in indicators_for(interval):
                for name, values in reference(spec["kind"], bars, spec).items():
                    got = as_array(series.value(name, at) for at in ends)
                    np.testing.assert_allclose(got, values, rtol=1e-9, atol=1e-9, err_msg=name)
        # Between sessions (overnight) the lookup gives the last value before.
        series = session.data.series("SPY", "1m")
        night = datetime(2011, 1, 5, 3, 0, tzinfo=UTC).timestamp()
        last = series.value("sma_1m", ny(date(2011, 1, 4), 16, 0).timestamp())
        assert series.value("sma_1m", night) == last
        assert series.value("sma_1m", ny(date(2011, 1, 3), 9, 0).timestamp()) is None
        session.step()
        assert session.wait_idle(10)
        snap = session.snapshot()
        assert snap.series["SPY", "1m"].bar_count == 1
        latest = snap.indicators["SPY"]
        assert all(latest[name] is not None for name in snap.indicator_names)
        series = session.series("SPY", "1m", n=1)
        assert series.starts == (ny(date(2011, 1, 10), 9, 30),)
        assert all(values[-1] is not None for values in series.indicators.values())
    finally:
        assert session.stop()


def test_export_csv_format(spy: Run, tmp_path: Path) -> None:
    paths = spy.session.export_csv(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in paths) == [
        f"SPY/{interval}.csv" for interval in sorted(SPY_INTERVALS)
    ]
    names = spy.session.processor.streams["SPY", "1m"].names
    with (tmp_path / "SPY" / "1m.csv").open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    assert header == ["start", "end", "open", "high", "low", "close", "volume", "quality"] + list(
        names
    )
    assert len(rows) == len(spy.record["SPY", "1m"])
    for row, (bar, values) in zip(rows, spy.record["SPY", "1m"], strict=True):
        start, end = datetime.fromisoformat(row[0]), datetime.fromisoformat(row[1])
        assert start == bar.start and end - start == timedelta(minutes=1)
        assert start.utcoffset() == bar.start.astimezone(NY).utcoffset()
        assert float(row[5]) == bar.close and int(row[6]) == bar.volume
        assert float(row[7]) == 100.0  # SPY is complete
        for text, value in zip(row[8:], values, strict=True):
            assert (
                (text == "")
                if value is None
                else math.isclose(float(text), value, rel_tol=1e-9, abs_tol=1e-9)
            )
    offsets = {datetime.fromisoformat(r[0]).utcoffset() for r in rows}
    assert offsets == {timedelta(hours=-5), timedelta(hours=-4)}  # EST and EDT
    by_day = {r[0][:10]: r[0] for r in rows}
    assert by_day["2011-03-11"].endswith("-05:00") and by_day["2011-03-14"].endswith("-04:00")
    with (tmp_path / "SPY" / "1h.csv").open(newline="") as handle:
        hourly = list(csv.DictReader(handle))
    last = [r for r in hourly if r["start"].startswith("2011-01-10")][-1]
    assert last["start"] == "2011-01-10T15:30:00-05:00"
    assert last["end"] == "2011-01-10T16:00:00-05:00"  # cut by the close


def test_analysis_sees_the_window_cut_by_the_close(spy: Run) -> None:
    """The 15:30 1h window ends at the 16:00 close: visible to the analysis at the close.

    Regression: ``AnalysisContext.bars`` used to hide it (it compared ``start + interval``
    with the time instead of the window's real end, the close).
    """
    for day, t, last in spy.recorder.session_ends:
        if day.month == 2:
            continue
        assert t == ny(day, 16, 0)
        bar = last["SPY", "1h"]
        assert bar is not None and bar.start == ny(day, 15, 30), (day, bar)


# -- the demo universe: early closes and holidays ---------------------------------------------


@pytest.fixture(scope="module", params=[("2024-11-27", "2024-12-02"), ("2024-12-23", "2024-12-26")])
def demo_early(request) -> Run:
    first, last = request.param
    config = {
        "backtest": {"start_date": first, "end_date": last, "clock": "data-driven"},
        "streams": {"symbols": DEMO, "derived": ["5m", "15m", "1h"]},
        "analysis": {
            "entry": "pipeline_analyses:Recorder",
            "options": {"intervals": ["1m", "5m", "15m", "1h"], "n": 2},
        },
    }
    session = run_to_end(config)
    return Run(session, session.snapshot(), session.analysis.analysis, session.processor.record)


EARLY = {date(2024, 11, 29), date(2024, 12, 24)}
HOLIDAYS = {date(2024, 11, 28), date(2024, 12, 25)}


def test_early_closes_end_at_13_00_with_210_bars(demo_early: Run) -> None:
    snap = demo_early.snap
    assert len(snap.sessions) == 3
    assert not HOLIDAYS & set(snap.sessions)
    early = EARLY & set(snap.sessions)
    assert len(early) == 1
    for day, t, last in demo_early.recorder.session_ends:
        closes_early = day in early
        assert t == ny(day, 13, 0) if closes_early else ny(day, 16, 0)
        assert last["ACME", "1m"].start == (ny(day, 12, 59) if closes_early else ny(day, 15, 59))
        assert last["ACME", "15m"].start == (ny(day, 12, 45) if closes_early else ny(day, 15, 45))
    first, last = snap.sessions[0], snap.sessions[-1]
    for symbol in DEMO:
        bars = bar_frame(bar for bar, _row in demo_early.record[symbol, "1m"])
        counts = bars.groupby("session").size().to_dict()
        stored = db_bars(symbol, first, last).groupby("session").size().to_dict()
        assert counts == stored, symbol
        for day in early:  # no documented gap on the early closes
            assert counts[day] == 210, (symbol, day)
        fifteen = bar_frame(bar for bar, _row in demo_early.record[symbol, "15m"])
        counts = fifteen.groupby("session").size().to_dict()
        assert counts == {d: (14 if d in early else 26) for d in snap.sessions}, symbol
        hourly = bar_frame(bar for bar, _row in demo_early.record[symbol, "1h"])
        counts = hourly.groupby("session").size().to_dict()
        assert counts == {d: (4 if d in early else 7) for d in snap.sessions}, symbol
    assert demo_early.recorder.violations == []
    assert demo_early.recorder.derived_lag == []


def test_early_close_bars_match_the_database(demo_early: Run) -> None:
    first, last = demo_early.snap.sessions[0], demo_early.snap.sessions[-1]
    closes = {d: ny(d, 13, 0) for d in EARLY}
    for symbol in ("ACME", "FLUX"):
        expected = db_bars(symbol, first, last)
        got = bar_frame(bar for bar, _row in demo_early.record[symbol, "1m"])
        assert list(got["start"]) == list(expected["start"])
        assert list(got["close"]) == list(expected["close"])
        fifteen = resample(expected, 15, closes)
        got = bar_frame(bar for bar, _row in demo_early.record[symbol, "15m"])
        assert list(got["start"]) == list(fifteen["start"])
        for column in ("open", "high", "low", "close", "volume"):
            assert list(got[column]) == list(fifteen[column]), column


# -- step by step: nothing is ever visible before its end ---------------------------------------


def test_stepping_never_shows_a_bar_before_its_end() -> None:
    """Step the early close of 2024-11-29 and into 2024-12-02, checking every instant."""
    config = config_from_dict(
        {
            "backtest": {
                "start_date": "2024-11-29",
                "end_date": "2024-12-02",
                "clock": "clock-driven",
                "speed": 1,
            },
            "streams": {"symbols": ["ACME", "DYNA"], "derived": ["5m", "15m", "1h"]},
            "historical": [{"trailing_days": 1}],
            "indicators": [{"name": "sma", "kind": "sma", "period": 3, "interval": "1h"}],
        }
    )
    closes = {
        date(2024, 11, 27): ny(date(2024, 11, 27), 16, 0),
        date(2024, 11, 29): ny(date(2024, 11, 29), 13, 0),
        date(2024, 12, 2): ny(date(2024, 12, 2), 16, 0),
    }
    session = Session(config, start_paused=True)
    session.start()
    try:
        assert session.wait_idle(10)
        previous = session.snapshot().sim_time
        assert previous == ny(date(2024, 11, 29), 9, 30)
        steps = 210 + 20
        for index in range(1, steps + 1):
            session.step()
            assert session.wait_idle(5), f"step {index} did not finish"
            snap = session.snapshot()
            now = snap.sim_time
            assert snap.metrics.steps == index
            if index <= 210:
                assert now == previous + timedelta(minutes=1)
                assert snap.session_date == date(2024, 11, 29)
            elif index == 211:
                assert now == ny(date(2024, 12, 2), 9, 31)
                assert snap.session_date == date(2024, 12, 2) and snap.session_index == 2
            else:
                assert now == previous + timedelta(minutes=1)
            previous = now
            open_ = snap.market_open
            for symbol in ("ACME", "DYNA"):
                for interval in ("1m", "5m", "15m", "1h"):
                    bars = session.data.series(symbol, interval).bars(10**6)
                    for bar in bars:
                        day = bar.start.astimezone(NY).date()
                        end = visible_end(bar.start, interval, closes[day])
                        assert end <= now, (index, symbol, interval, bar.start, now)
                    if interval == "1m":
                        continue
                    # Every complete window of this session is visible (the data is complete).
                    delta = timedelta(minutes=MINUTES[interval])
                    ends = []
                    while open_ + len(ends) * delta < snap.market_close:
                        ends.append(min(open_ + (len(ends) + 1) * delta, snap.market_close))
                    complete = sum(1 for end in ends if end <= now)
                    in_session = [b for b in bars if b.start >= open_]
                    assert len(in_session) == complete, (index, symbol, interval, now)
        assert snap.state == "paused"
    finally:
        assert session.stop()


# -- quality ---------------------------------------------------------------------------------

GAPS = {  # documented in sample_db/README.md (New York time, bar starts)
    "2024-11-25": {
        "BOLT": [("09:44", "09:45"), ("11:37", "11:38"), ("12:58", "12:59"), ("15:47", "15:48")],
        "EMBR": [("10:05", "10:06")],
    },
    "2024-12-10": {"DYNA": [("12:00", "16:00")], "EMBR": [("12:05", "12:06")]},
    "2024-12-31": {  # EMBR misses the open itself
        "BOLT": [("10:28", "10:29")],
        "EMBR": [("09:30", "09:31"), ("10:31", "10:32"), ("15:01", "15:02")],
    },
}


@pytest.fixture(
    scope="module",
    params=[(day, True) for day in sorted(GAPS)] + [("2024-11-25", False)],
    ids=lambda p: f"{p[0]}-{'recorded' if p[1] else 'live-quality'}",
)
def quality_run(request) -> tuple[str, Session]:
    """One demo day with documented gaps; recorded (quality at every step) or not (the
    quality manager then batches the steps it is behind on)."""
    day, record = request.param
    config = {
        "backtest": {"start_date": day, "end_date": day, "clock": "data-driven"},
        "streams": {"symbols": DEMO, "derived": ["5m", "15m"]},
        "indicators": [{"name": "sma_5m", "kind": "sma", "period": 3, "interval": "5m"}],
    }
    return day, run_to_end(config, record=record)


def _clock(day: str, hhmm: str) -> datetime:
    hh, mm = (int(x) for x in hhmm.split(":"))
    return ny(date.fromisoformat(day), hh, mm)


def test_quality_and_gaps_of_the_documented_gaps(quality_run) -> None:
    day, session = quality_run
    snap = session.snapshot()
    documented = GAPS[day]
    for symbol in DEMO:
        expected_gaps = [(_clock(day, a), _clock(day, b)) for a, b in documented.get(symbol, [])]
        assert session.quality.gaps(symbol) == expected_gaps, symbol
        missing = sum((b - a) // timedelta(minutes=1) for a, b in expected_gaps)
        stored = len(db_bars(symbol, date.fromisoformat(day), date.fromisoformat(day)))
        assert stored == 390 - missing  # the database agrees with the documentation
        quality = 100.0 * (390 - missing) / 390
        for interval in ("1m", "5m", "15m"):
            stats = snap.series[symbol, interval]
            assert stats.quality == pytest.approx(quality), (symbol, interval)
            assert stats.gaps == len(expected_gaps)
        if missing:
            assert quality < 100.0
        assert session.processor.totals[symbol, "1m"] == 390 - missing
    assert session.quality.filled == 0  # no gap filling in a backtest
    assert not [e for e in snap.events if "filled" in e.message]
    gap_events = [e.message for e in snap.events if e.message.startswith("gap in ")]
    assert len(gap_events) == sum(len(g) for g in documented.values())


def test_derived_bars_across_gaps_equal_an_independent_resample(quality_run) -> None:
    """A gap never merges two windows or invents a bar; windows stay anchored at the open."""
    day, session = quality_run
    if session.processor.record is None:
        pytest.skip("needs the recorded bars")
    for symbol in DEMO:
        base = db_bars(symbol, date.fromisoformat(day), date.fromisoformat(day))
        for interval in ("5m", "15m"):
            expected = resample(base, MINUTES[interval])
            got = bar_frame(bar for bar, _row in session.processor.record[symbol, interval])
            assert list(got["start"]) == list(expected["start"]), (symbol, interval)
            for column in ("open", "high", "low", "close", "volume"):
                assert list(got[column]) == list(expected[column]), (symbol, interval, column)
    if day == "2024-12-31":  # EMBR's 09:30 bar is missing: the window still starts at 09:30
        first, _row = session.processor.record["EMBR", "5m"][0]
        minute = [b for b, _r in session.processor.record["EMBR", "1m"]][0]
        assert first.start == ny(date(2024, 12, 31), 9, 30)
        assert minute.start == ny(date(2024, 12, 31), 9, 31) and first.open == minute.open
    if day == "2024-12-10":  # DYNA: nothing after 11:59, so no bar after the 11:55 window
        last, _row = session.processor.record["DYNA", "5m"][-1]
        assert last.start == ny(date(2024, 12, 10), 11, 55)


def test_quality_column_of_the_export(quality_run, tmp_path: Path) -> None:
    day, session = quality_run
    if session.processor.record is None:
        pytest.skip("export needs record=True")
    session.export_csv(tmp_path)
    symbol = {"2024-11-25": "BOLT", "2024-12-10": "DYNA", "2024-12-31": "EMBR"}[day]
    with (tmp_path / symbol / "1m.csv").open(newline="") as handle:
        rows = {r["start"][11:16]: r for r in csv.DictReader(handle)}
    if symbol == "BOLT":  # 09:44 is missing: 15 of the 16 bars due by 09:46 are there
        assert float(rows["09:43"]["quality"]) == pytest.approx(100.0)
        assert "09:44" not in rows
        assert float(rows["09:45"]["quality"]) == pytest.approx(100.0 * 15 / 16)
        assert len(rows) == 386
    elif symbol == "DYNA":
        assert float(rows["11:59"]["quality"]) == pytest.approx(100.0)
        assert max(rows) == "11:59" and len(rows) == 150
    else:  # EMBR misses 09:30: 1 of 2 bars due by 09:32
        assert float(rows["09:31"]["quality"]) == pytest.approx(50.0)
        assert "09:30" not in rows and len(rows) == 387
    with (tmp_path / symbol / "5m.csv").open(newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == [
            "start",
            "end",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "quality",
            "sma_5m",
        ]
        first = next(reader)
    assert first[0] == f"{day}T09:30:00-05:00" and first[1] == f"{day}T09:35:00-05:00"
    assert first[8] == ""  # the SMA needs three 5m bars and there is no history
    if symbol == "EMBR":  # 4 of the 5 minutes are there when the window is emitted
        assert float(first[7]) == pytest.approx(100.0 * 4 / 5)


def test_historical_quality_over_the_trailing_window() -> None:
    """2024-12-11 with 5 trailing days (12-04..12-10): DYNA's afternoon gap lowers it."""
    config = config_from_dict(
        {
            "backtest": {"start_date": "2024-12-11", "end_date": "2024-12-11"},
            "streams": {"symbols": DEMO},
            "historical": [{"trailing_days": 5}],
        }
    )
    session = Session(config, start_paused=True)
    session.start()
    try:
        assert session.wait_idle(10)
        for symbol in DEMO:
            stored = len(db_bars(symbol, date(2024, 12, 4), date(2024, 12, 10)))
            quality = session.data.get_quality_metric(symbol, "1m:history")
            assert quality == pytest.approx(100.0 * stored / (5 * 390)), symbol
            stats = session.snapshot().series
            assert stats[symbol, "1m"].history_count == stored
            assert stats[symbol, "1m"].history_quality == pytest.approx(quality)
        assert session.data.get_quality_metric("DYNA", "1m:history") < 100.0
        assert session.data.get_quality_metric("ACME", "1m:history") == 100.0
    finally:
        assert session.stop()


def test_disabled_session_quality_gives_100() -> None:
    config = {
        "backtest": {"start_date": "2024-12-10", "end_date": "2024-12-10", "clock": "data-driven"},
        "streams": {"symbols": DEMO, "derived": ["5m", "15m"]},
        "quality": {"enable_session_quality": False},
    }
    session = run_to_end(config)
    snap = session.snapshot()
    for symbol in DEMO:
        for interval in ("1m", "5m", "15m"):
            assert snap.series[symbol, interval].quality == 100.0, (symbol, interval)
        assert session.quality.overall_quality(symbol) == 100.0
    assert session.processor.totals["DYNA", "1m"] == 150  # the bars are still missing
