"""The engine on exchanges other than New York, with exchange_calendars as the oracle.

For each exchange a synthetic SQLite database is built here: the calendar (``sessionkit
db calendar``'s :func:`fill_calendar`), and 1-minute bars for every trading minute that
``exchange_calendars``' ``session_minutes`` lists, for two symbols. ``AAA`` is complete
(plus bars inside the break and before the open, which must never be streamed or loaded);
``BBB`` misses a known set of minutes (around the break among them).

Every expectation comes from ``exchange_calendars`` (sessions, minutes, and
``trading_index(..., intervals=True, force=True)`` for the derived windows) and from the
inserted bars, never from the engine's code: sessions, steps, derived 5m/30m/1h windows
and their OHLCV, quality (100% on complete data, the exact figure with missing minutes),
gaps, history (regular minutes only) and the export's times in the exchange's own zone.
"""

from __future__ import annotations

import csv
import time as wall
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd
import pytest
from running import run_to_end
from sessionkit.engine.config import config_from_dict
from sessionkit.engine.pipeline.session import Session
from sessionkit.engine.store.calendar_fill import fill_calendar
from sessionkit.engine.store.db import BarRecord, init_db
from sqlalchemy import insert

MINUTE = timedelta(minutes=1)
DERIVED = {"5m": "5min", "30m": "30min", "1h": "1h"}
TRAILING = 2


@dataclass(frozen=True)
class Case:
    group: str
    """The exchange group written to the database (and the config's exchange_group)."""
    code: str
    start: str
    end: str
    zone: str


CASES = [
    # Tokyo: lunch 11:30-12:30; the close moved from 15:00 to 15:30 on 2024-11-05.
    Case("JPX", "XTKS", "2024-10-30", "2024-11-06", "Asia/Tokyo"),
    # Hong Kong: lunch 12:00-13:00; 2024-12-24 and 12-31 are half days without a break.
    Case("HKEX", "XHKG", "2024-12-20", "2024-12-31", "Asia/Hong_Kong"),
    # London: the weeks when London and New York are 4 hours apart (New York already on
    # summer time, London not yet / no longer), and London's own DST changes.
    Case("LSE", "XLON", "2024-03-22", "2024-04-03", "Europe/London"),
    Case("LSE", "XLON", "2024-10-24", "2024-11-01", "Europe/London"),
    # A 24-hour calendar: sessions from 00:00 to 24:00 UTC.
    Case("24/7", "24/7", "2024-03-08", "2024-03-10", "UTC"),
]


def _utc(ts) -> datetime | None:
    return None if pd.isna(ts) else ts.to_pydatetime().astimezone(UTC)


def _quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations inside exchange_calendars
        return call(*args, **kwargs)


@dataclass
class World:
    case: Case
    calendar: xcals.ExchangeCalendar
    labels: list[pd.Timestamp]
    """Streamed sessions (exchange_calendars' labels)."""
    history_labels: list[pd.Timestamp]
    minutes: dict[pd.Timestamp, list[datetime]]
    """Trading minutes (UTC) of every session, history included."""
    bars: dict[str, dict[datetime, tuple]]
    """Inserted regular-session bars per symbol: start -> (o, h, l, c, v)."""
    missing: set[datetime]
    """Minutes of the streamed sessions that BBB lacks."""
    url: str


def _bar(i: int, fractional: bool = False) -> tuple[float, float, float, float, float]:
    """A bar; ``fractional``: a crypto volume (in eighths, so that any sum is exact), else
    whole shares."""
    close = 100.0 + (i % 97) * 0.25 + i * 0.001
    open_ = close - 0.125
    volume = (100 + i % 13) / 8 if fractional else 100 + i % 13
    return (open_, close + 0.5, open_ - 0.5, close, volume)


def build_world(case: Case, folder: Path) -> World:
    first = pd.Timestamp(case.start) - pd.Timedelta(days=10)
    calendar = _quiet(xcals.get_calendar, case.code, start=first, end=case.end)
    labels = list(calendar.sessions_in_range(case.start, case.end))
    earlier = list(
        calendar.sessions_in_range(
            calendar.first_session, pd.Timestamp(case.start) - pd.Timedelta(days=1)
        )
    )
    history_labels = earlier[-TRAILING:]
    minutes = {
        label: [_utc(m) for m in _quiet(calendar.session_minutes, label)]
        for label in history_labels + labels
    }
    # BBB's missing minutes: around the break (last morning and first afternoon minute) of
    # the first streamed session with one, a run of three, the very first and very last
    # minutes of the run.
    streamed = [m for label in labels for m in minutes[label]]
    missing = {streamed[0], streamed[-1], *streamed[40:43]}
    schedule = calendar.schedule
    with_break = [label for label in labels if not pd.isna(schedule.at[label, "break_start"])]
    if with_break:
        label = with_break[0]
        start = _utc(schedule.at[label, "break_start"])
        end = _utc(schedule.at[label, "break_end"])
        missing |= {start - MINUTE, end}
    bars: dict[str, dict[datetime, tuple]] = {"AAA": {}, "BBB": {}}
    rows = []
    for i, m in enumerate(m for label in history_labels + labels for m in minutes[label]):
        for symbol in bars:
            if symbol == "BBB" and m in missing:
                continue
            values = _bar(i + (7 if symbol == "BBB" else 0), fractional=case.code == "24/7")
            bars[symbol][m] = values
            rows.append((symbol, m, values))
    # Noise that must never be streamed or loaded: AAA bars in every break and before
    # every open.
    noise = []
    for label in history_labels + labels:
        row = schedule.loc[label]
        extra = [_utc(row.open) - 30 * MINUTE, _utc(row.open) - MINUTE]
        if not pd.isna(row.break_start):
            extra += [_utc(row.break_start), _utc(row.break_start) + 17 * MINUTE]
            extra.append(_utc(row.break_end) - MINUTE)
        noise.extend(extra)
    regular = set(bars["AAA"])  # (a 24-hour calendar has no "before the open")
    rows.extend(("AAA", m, (1.0, 1.0, 1.0, 1.0, 1)) for m in noise if m not in regular)
    url = f"sqlite:///{folder / 'exchange.sqlite'}"
    engine = init_db(url)
    fill_calendar(engine, case.group, first.date(), pd.Timestamp(case.end).date())
    with engine.begin() as connection:
        connection.execute(
            insert(BarRecord),
            [
                {
                    "symbol": symbol,
                    "interval": "1m",
                    "start": start,
                    "open": o,
                    "high": h,
                    "low": low,
                    "close": c,
                    "volume": v,
                }
                for symbol, start, (o, h, low, c, v) in rows
            ],
        )
    engine.dispose()
    return World(case, calendar, labels, history_labels, minutes, bars, missing, url)


def config(world: World, **backtest) -> dict:
    case = world.case
    return {
        "exchange_group": case.group,
        "database_url": world.url,
        "backtest": {
            "start_date": case.start,
            "end_date": case.end,
            "clock": "data-driven",
            **backtest,
        },
        "streams": {"symbols": ["AAA", "BBB"], "interval": "1m", "derived": list(DERIVED)},
        "historical": [{"apply_to": "all", "intervals": ["1m"], "trailing_days": TRAILING}],
        "indicators": [{"name": "sma_3", "kind": "sma", "period": 3, "interval": "30m"}],
        "analysis": {"entry": "pipeline_analyses:Recorder", "options": {"intervals": ["1m"]}},
    }


@dataclass
class Run:
    world: World
    session: Session
    export: Path


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c.code}-{c.start}")
def run(request, tmp_path_factory) -> Run:
    folder = tmp_path_factory.mktemp("exchange")
    world = build_world(request.param, folder)
    session = run_to_end(Session(config_from_dict(config(world)), record=True), 120)
    session.export_csv(folder / "export")
    return Run(world, session, folder / "export")


def test_sessions_are_the_calendars(run: Run) -> None:
    snap = run.session.snapshot()
    assert list(snap.sessions) == [label.date() for label in run.world.labels]
    assert snap.exchange == run.world.case.group
    assert snap.timezone == run.world.case.zone


def test_each_sessions_bounds_and_break_are_the_calendars(run: Run) -> None:
    """What the monitor's progress counts as trading time: each session's open, close and
    break (none on a half day), as exchange_calendars has them."""
    snap = run.session.snapshot()
    schedule = run.world.calendar.schedule
    labels = run.world.labels
    assert snap.session_bounds == tuple(
        (_utc(schedule.at[label, "open"]), _utc(schedule.at[label, "close"])) for label in labels
    )
    breaks = [
        (_utc(schedule.at[label, "break_start"]), _utc(schedule.at[label, "break_end"]))
        for label in labels
    ]
    assert snap.session_breaks == tuple(
        None if start is None else (start, end) for start, end in breaks
    )


def test_steps_are_the_trading_minutes_never_in_a_break(run: Run) -> None:
    world = run.world
    recorder = run.session.analysis.analysis
    expected = [m + MINUTE for label in world.labels for m in world.minutes[label]]
    assert recorder.times == expected
    assert run.session.snapshot().metrics.steps == len(expected)
    assert recorder.violations == []
    schedule = world.calendar.schedule
    for label in world.labels:
        start, end = _utc(schedule.at[label, "break_start"]), _utc(schedule.at[label, "break_end"])
        if start is not None:
            assert not any(start < t <= end for t in recorder.times)
    # Only regular-session bars were streamed: AAA's bars in the break or before the open
    # never reached the analysis.
    streamed = {(symbol, bar[0]) for symbol, bar in recorder.items}
    regular = {m for label in world.labels for m in world.minutes[label]}
    assert {t for _s, t in streamed} <= regular
    assert len([1 for s, _t in streamed if s == "AAA"]) == len(regular)


def _oracle_windows(world: World, symbol: str, period: str) -> list[tuple]:
    """(start, end, o, h, l, c, v) of every trading_index window holding a bar of symbol."""
    out = []
    bars = world.bars[symbol]
    for label in world.labels:
        index = _quiet(
            world.calendar.trading_index, label, label, period, intervals=True, force=True
        )
        for interval in index:
            left, right = _utc(interval.left), _utc(interval.right)
            inside = [(m, bars[m]) for m in world.minutes[label] if left <= m < right and m in bars]
            if not inside:
                continue  # a window without bars is never emitted
            out.append(
                (
                    left,
                    right,
                    inside[0][1][0],
                    max(b[1] for _m, b in inside),
                    min(b[2] for _m, b in inside),
                    inside[-1][1][3],
                    sum(b[4] for _m, b in inside),
                )
            )
    return out


def _export_rows(run: Run, symbol: str, interval: str) -> list[dict]:
    with (run.export / symbol / f"{interval}.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("interval", list(DERIVED))
@pytest.mark.parametrize("symbol", ["AAA", "BBB"])
def test_derived_windows_are_trading_index(run: Run, symbol: str, interval: str) -> None:
    want = _oracle_windows(run.world, symbol, DERIVED[interval])
    recorded = run.session.processor.record[symbol, interval]
    got_bars = [
        (bar.start, bar.open, bar.high, bar.low, bar.close, bar.volume) for bar, _ in recorded
    ]
    assert got_bars == [(w[0], *w[2:]) for w in want]
    rows = _export_rows(run, symbol, interval)
    assert [(r["start"], r["end"]) for r in rows] == [
        (w[0].astimezone(ZoneInfo(run.world.case.zone)).isoformat(),
         w[1].astimezone(ZoneInfo(run.world.case.zone)).isoformat())
        for w in want
    ]  # fmt: skip


def test_quality_is_100_on_complete_data_and_exact_with_missing_minutes(run: Run) -> None:
    world = run.world
    quality = run.session.quality
    expected = sum(len(world.minutes[label]) for label in world.labels)
    assert quality.overall_quality("AAA") == 100.0
    assert quality.totals["AAA"] == [expected, expected]
    missing = len(world.missing)
    assert quality.totals["BBB"] == [expected - missing, expected]
    assert quality.overall_quality("BBB") == 100.0 * (expected - missing) / expected
    # AAA's quality is 100% at every step of every session (a break is never a gap).
    assert {row["quality"] for row in _export_rows(run, "AAA", "1m")} == {"100.0"}
    # History: the trailing sessions' regular minutes, all present.
    snap = run.session.snapshot()
    assert snap.series["AAA", "1m"].history_quality == 100.0
    assert quality.all_gaps["AAA"] == []


def test_gaps_are_the_runs_of_missing_minutes(run: Run) -> None:
    world = run.world
    runs: list[tuple[datetime, datetime]] = []
    for label in world.labels:
        minutes = world.minutes[label]
        current = None
        for m in minutes:
            if m in world.missing:
                if current is None:
                    current = [m, m + MINUTE]
                else:
                    current[1] = m + MINUTE
            elif current is not None:
                runs.append(tuple(current))
                current = None
        if current is not None:
            runs.append(tuple(current))
    # A run that goes from the morning into the afternoon is one gap of consecutive
    # expected bars; its start and end are the first missing bar's start and the last
    # missing bar's end.
    assert run.session.quality.all_gaps["BBB"] == runs


def test_export_times_are_in_the_exchanges_zone(run: Run) -> None:
    world = run.world
    zone = ZoneInfo(world.case.zone)
    rows = _export_rows(run, "AAA", "1m")
    minutes = [m for label in world.labels for m in world.minutes[label]]
    assert [r["start"] for r in rows] == [m.astimezone(zone).isoformat() for m in minutes]
    assert [r["end"] for r in rows] == [(m + MINUTE).astimezone(zone).isoformat() for m in minutes]
    offsets = {r["start"][-6:] for r in rows}
    expected_offsets = {
        "JPX": {"+09:00"},
        "HKEX": {"+08:00"},
        "LSE": {"+00:00", "+01:00"},  # both weeks cross a London DST change
        "24/7": {"+00:00"},
    }[world.case.group]
    assert offsets == expected_offsets
    if world.case.group == "LSE":
        # Local opening time stays 08:00 across the change, so the UTC open moves by an hour.
        opens = {r["start"][11:16] for r in rows if r["start"][11:16] == "08:00"}
        assert opens == {"08:00"}


def test_export_volumes_are_as_stored(run: Run) -> None:
    """Whole volumes are written as integers, fractional ones (the 24-hour case's crypto
    volumes) as they are, in the base interval and summed in the derived ones."""
    world = run.world
    rows = _export_rows(run, "AAA", "1m")
    minutes = [m for label in world.labels for m in world.minutes[label]]
    want = [world.bars["AAA"][m][4] for m in minutes]
    assert [r["volume"] for r in rows] == [
        str(int(v)) if float(v).is_integer() else repr(v) for v in want
    ]
    fractional = world.case.code == "24/7"
    assert any("." in r["volume"] for r in rows) == fractional
    hourly = _export_rows(run, "AAA", "1h")
    assert any("." in r["volume"] for r in hourly) == fractional
    assert sum(float(r["volume"]) for r in hourly) == sum(want)


def test_history_is_regular_minutes_only(run: Run) -> None:
    world = run.world
    # The last session's history: the TRAILING sessions before it.
    labels = world.history_labels + world.labels
    before = labels[-1 - TRAILING : -1]
    want = [m for label in before for m in world.minutes[label]]
    series = run.session.series("AAA", "1m", n=100_000)
    assert list(series.starts[: series.history]) == want


# -- the clock through a break ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tokyo(tmp_path_factory) -> World:
    return build_world(
        Case("JPX", "XTKS", "2024-11-05", "2024-11-05", "Asia/Tokyo"),
        tmp_path_factory.mktemp("tokyo"),
    )


def _wait_for(predicate, timeout: float) -> bool:
    deadline = wall.monotonic() + timeout
    while wall.monotonic() < deadline:
        if predicate():
            return True
        wall.sleep(0.01)
    return predicate()


def test_stepping_into_the_break_shows_it_then_time_jumps_to_its_end(tokyo: World) -> None:
    schedule = tokyo.calendar.schedule
    label = tokyo.labels[0]
    break_start = _utc(schedule.at[label, "break_start"])
    break_end = _utc(schedule.at[label, "break_end"])
    morning = sum(1 for m in tokyo.minutes[label] if m < break_start)
    cfg = config(tokyo, clock="clock-driven", speed=60)
    session = Session(config_from_dict(cfg), start_paused=True)
    session.start()
    try:
        assert session.wait_idle(20)
        session.set_clock("data-driven")
        session.step(morning)
        assert _wait_for(lambda: session.snapshot().metrics.steps == morning, 30)
        assert session.wait_idle(20)
        snap = session.snapshot()
        assert snap.state == "paused"
        assert snap.sim_time == break_start
        assert snap.in_break
        assert (snap.break_start, snap.break_end) == (break_start, break_end)
        # One step: the first instant of the afternoon (time went through the break).
        session.step()
        assert _wait_for(lambda: session.snapshot().metrics.steps == morning + 1, 30)
        assert session.wait_idle(20)
        snap = session.snapshot()
        assert snap.sim_time == break_end + MINUTE
        assert not snap.in_break
    finally:
        assert session.stop()


def test_clock_driven_time_does_not_wait_through_the_break(tokyo: World) -> None:
    schedule = tokyo.calendar.schedule
    label = tokyo.labels[0]
    break_start = _utc(schedule.at[label, "break_start"])
    morning = sum(1 for m in tokyo.minutes[label] if m < break_start)
    session = Session(
        config_from_dict(config(tokyo, clock="clock-driven", speed=60)), start_paused=True
    )
    session.start()
    try:
        assert session.wait_idle(20)
        session.set_clock("data-driven")
        session.step(morning)
        assert _wait_for(lambda: session.snapshot().metrics.steps == morning, 30)
        assert session.wait_idle(20)
        assert session.snapshot().in_break
        session.set_speed(60)  # clock-driven, 60 simulated seconds per wall second
        assert session.snapshot().clock == "clock-driven"
        session.resume()
        # Waiting through the break would take 60 wall seconds before this step.
        assert _wait_for(lambda: session.snapshot().metrics.steps > morning, 20)
    finally:
        assert session.stop()


def test_live_replay_skips_the_break(tokyo: World) -> None:
    from sessionkit.engine.core.time_manager import TimeManager
    from sessionkit.engine.feeds.replay import make_feed
    from sessionkit.engine.store.data_manager import DataManager
    from sessionkit.engine.store.db import open_db

    label = tokyo.labels[0]
    schedule = tokyo.calendar.schedule
    break_start = _utc(schedule.at[label, "break_start"])
    break_end = _utc(schedule.at[label, "break_end"])
    cfg = config(tokyo)
    cfg.pop("backtest")
    cfg.update(
        mode="live",
        live={"replay_date": label.date().isoformat(), "replay_start": "11:29", "speed": 60},
    )
    engine = open_db(tokyo.url)
    feed = make_feed(
        config_from_dict(cfg), DataManager(engine, "Asia/Tokyo"), TimeManager(engine, "JPX")
    )
    try:
        # The feed's instants: the trading minutes' ends; none inside the break.
        times = [t for t, _items in feed._steps]
        assert times == [m + MINUTE for m in tokyo.minutes[label]]
        # From 11:29 at 60x: 11:30 after one wall second, then the first afternoon instant
        # one simulated minute later: the hour of the break takes no wall time (at 60x it
        # would take a minute).
        got = []
        deadline = wall.monotonic() + 20
        while len(got) < 2 and wall.monotonic() < deadline:
            step = feed.next_step(0.25)
            if step is not None and step[0] >= break_start:
                got.append(step[0])
        assert got == [break_start, break_end + MINUTE]
    finally:
        feed.close()
        engine.dispose()


def test_london_opens_4_hours_before_new_york_in_the_weeks_between_dst_changes(run: Run) -> None:
    if run.world.case.group != "LSE":
        pytest.skip("London only")
    new_york = ZoneInfo("America/New_York")
    first_bars: dict[str, datetime] = {}
    for row in _export_rows(run, "AAA", "1m"):
        start = datetime.fromisoformat(row["start"])
        first_bars.setdefault(start.date().isoformat(), start)
    hours_apart = {}
    for day, start in first_bars.items():
        assert start.strftime("%H:%M") == "08:00"  # London's open, in London time
        hours_apart[day] = 8 - start.astimezone(new_york).hour
    four = {day for day, hours in hours_apart.items() if hours == 4}
    assert set(hours_apart.values()) == {4, 5}
    if run.world.case.start.startswith("2024-03"):
        # New York on summer time since 03-10, London from 03-31.
        assert four == {d for d in hours_apart if d <= "2024-03-28"}
    else:
        # London back on winter time from 10-27, New York from 11-03.
        assert four == {d for d in hours_apart if d >= "2024-10-28"}
