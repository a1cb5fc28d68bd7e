"""Instant-exact views: what the analysis sees at ``ctx.time`` is what was known then.

The scenario of issue 9: an analysis records, at every step and for every symbol, the
last 1m and 5m bars and an indicator of each interval; each must equal the recorded
(exported) row of the last bar ending at or before ``ctx.time``, whether the analysis
keeps up (data-driven) or falls far behind the clock (clock-driven with overruns).
"""

from __future__ import annotations

from bisect import bisect_right

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from running import run_to_end
from sessionkit.engine.config import config_from_dict
from sessionkit.engine.core.bar import interval_delta
from sessionkit.engine.core.windows import bar_end
from sessionkit.engine.pipeline.session import Session

DEMO = ["ACME", "BOLT", "CRUX", "DYNA", "EMBR", "FLUX"]
INDICATORS = {"sma_20": "1m", "sma_5m": "5m", "bb_20.upper": "1m"}


def demo_day(clock: str, speed: float, seconds: float, day: str = "2024-12-02") -> dict:
    return {
        "backtest": {"start_date": day, "end_date": day, "clock": clock, "speed": speed},
        "streams": {"symbols": DEMO, "derived": ["5m", "15m"]},
        "historical": [{"trailing_days": 1}],
        "indicators": [
            {"name": "sma_20", "kind": "sma", "period": 20, "interval": "1m"},
            {"name": "bb_20", "kind": "bollinger", "period": 20, "interval": "1m"},
            {"name": "sma_5m", "kind": "sma", "period": 10, "interval": "5m"},
        ],
        "analysis": {
            "entry": "pipeline_analyses:ViewRecorder",
            "options": {
                "intervals": ["1m", "5m"],
                "indicators": list(INDICATORS),
                "seconds": seconds,
            },
        },
    }


def run(config: dict) -> Session:
    return run_to_end(Session(config_from_dict(config), record=True))


def expected_views(session: Session):
    """What was known at each instant, from the recorded rows (bars ending <= t)."""
    day = session.time_manager.get_trading_session(session.sessions[-1])
    known = {}
    for (symbol, interval), rows in session.processor.record.items():
        delta = interval_delta(interval)
        ends = [bar_end(day, delta, bar.start) for bar, _row in rows]
        names = session.data.series(symbol, interval).names
        known[symbol, interval] = (ends, rows, names)

    def at(t, symbol, what):
        interval = INDICATORS.get(what, what)
        ends, rows, names = known[symbol, interval]
        i = bisect_right(ends, t)
        if not i:
            # Before the session's first bar of this interval: the history's last one.
            series = session.data.series(symbol, interval)
            row = series.row(t.timestamp())  # history values are known from their ends
            return series.last(t.timestamp()) if what == interval else row[what]
        bar, row = rows[i - 1]
        return bar if what == interval else row[names.index(what)]

    return at


@pytest.mark.parametrize(
    ("clock", "speed", "seconds"),
    [("data-driven", 60.0, 0.0), ("clock-driven", 36_000.0, 0.003)],
    ids=["data-driven", "clock-driven-overrunning"],
)
def test_views_are_exact_at_every_instant(clock: str, speed: float, seconds: float) -> None:
    session = run(demo_day(clock, speed, seconds))
    recorder = session.analysis.analysis
    if clock == "clock-driven":
        # The scenario needs the analysis far behind the clock: overruns prove it was.
        overruns = {s.stream: s.overruns for s in session.snapshot().subscriptions}
        assert overruns["analysis_engine"] > 50, overruns
    assert recorder.violations == []
    expected = expected_views(session)
    assert len(recorder.seen) == 390 * len(DEMO) * (2 + len(INDICATORS))
    wrong = [
        (t, symbol, what, got, expected(t, symbol, what))
        for t, symbol, what, got in recorder.seen
        if got != expected(t, symbol, what)
    ]
    assert wrong == [], f"{len(wrong)} views differ, first: {wrong[:3]}"
    # Never "nothing" when something was known: with a day of history, every view of
    # the 1m bars and of the 5m SMA shows something from the first instant on.
    assert all(got is not None for _t, _s, what, got in recorder.seen if what != "bb_20.upper")


@settings(max_examples=6, deadline=None)
@given(
    clock=st.sampled_from(["data-driven", "clock-driven"]),
    seconds=st.sampled_from([0.0, 0.0005, 0.002]),
    speed=st.sampled_from([6_000.0, 60_000.0]),
)
def test_the_analysis_never_sees_a_bar_ending_after_its_instant(clock, seconds, speed) -> None:
    config = demo_day(clock, speed, seconds, day="2024-11-29")  # 13:00 early close: 210 steps
    config["streams"]["derived"] = ["5m", "15m", "1h"]
    config["analysis"]["options"]["intervals"] = ["1m", "5m", "15m", "1h"]
    session = run(config)
    recorder = session.analysis.analysis
    assert recorder.violations == []
    times = sorted({t for t, *_rest in recorder.seen})
    assert len(times) == 210
    day = session.time_manager.get_trading_session(session.sessions[-1])
    assert times[-1] == day.close
    for t, _symbol, interval, bar in recorder.seen:
        if interval in ("1m", "5m", "15m", "1h") and bar is not None:
            assert bar_end(day, interval_delta(interval), bar.start) <= t


def test_same_results_at_any_speed(tmp_path) -> None:
    """Signals and exports are identical at max, 6000x and 100000x: overruns measure
    lateness, they never change results."""
    results = {}
    for label, clock, speed in [
        ("max", "data-driven", 60.0),
        ("6000x", "clock-driven", 6_000.0),
        ("100000x", "clock-driven", 100_000.0),
    ]:
        config = {
            "backtest": {
                "start_date": "2024-12-23",
                "end_date": "2024-12-24",
                "clock": clock,
                "speed": speed,
            },
            "streams": {"symbols": DEMO, "derived": ["5m", "15m"]},
            "historical": [{"trailing_days": 2}],
            "indicators": [{"name": "sma_20", "kind": "sma", "period": 20}],
            "analysis": {
                "entry": "sessionkit.engine.examples:SmaCross",
                "options": {"fast": 5, "slow": 12},
            },
        }
        session = run(config)
        paths = session.export_csv(tmp_path / label)
        exports = {p.relative_to(tmp_path / label): p.read_text() for p in paths}
        signals = [(s.sim_time, s.symbol, s.kind, s.price) for s in session.signals()]
        results[label] = (session.analysis.signal_count, signals, exports)
    counts = {label: r[0] for label, r in results.items()}
    assert counts["max"] > 50 and len(set(counts.values())) == 1, counts
    assert results["6000x"][1:] == results["max"][1:]
    assert results["100000x"][1:] == results["max"][1:]


def test_indicators_carry_on_across_sessions_without_history() -> None:
    """trailing_days = 0: only the run's first session starts cold; SMA 20 of the second
    session's first bar is the mean of the previous session's last 19 closes and its own."""
    config = {
        "backtest": {"start_date": "2024-12-02", "end_date": "2024-12-03", "clock": "data-driven"},
        "streams": {"symbols": ["ACME"], "derived": ["5m"]},
        "historical": [{"trailing_days": 0}],
        "indicators": [
            {"name": "sma_20", "kind": "sma", "period": 20},
            {"name": "sma_5m", "kind": "sma", "period": 3, "interval": "5m"},
        ],
    }
    session = run(config)
    for interval, period in (("1m", 20), ("5m", 3)):
        rows = session.processor.record["ACME", interval]
        closes = [bar.close for bar, _row in rows]
        got = [row[0] for _bar, row in rows]
        # A continuous series: the reference ignores session boundaries.
        reference = [
            None if i + 1 < period else sum(closes[i + 1 - period : i + 1]) / period
            for i in range(len(closes))
        ]
        assert got == pytest.approx(reference, abs=1e-9), interval
        first_of_day_two = next(
            i for i, (bar, _r) in enumerate(rows) if bar.start.day == 3 and bar.start.hour >= 14
        )
        assert got[first_of_day_two] is not None
    # Of the previous session's bars only the last is kept (trailing_days = 0): it and
    # its indicator values are what is known at the open.
    assert session.snapshot().series["ACME", "1m"].history_count == 1


@pytest.mark.parametrize(
    "historical",
    [{"trailing_days": 0}, {"trailing_days": 1, "intervals": ["1m"]}],
    ids=["no-trailing-days", "5m-not-kept"],
)
def test_views_at_a_carried_on_sessions_open_show_what_was_known(historical) -> None:
    """QA: with no trailing window for an interval, its views said None from the open until
    the session's first bar of it, although the previous session's last bar and its
    indicator values were known (and the indicators carried on from them)."""
    config = demo_day("data-driven", 60.0, 0.0)
    config["backtest"]["start_date"] = "2024-11-29"  # an early close, then 2024-12-02
    config["historical"] = [historical]
    session = run(config)
    recorder = session.analysis.analysis
    assert recorder.violations == []
    tm = session.time_manager
    known = {}
    for (symbol, interval), rows in session.processor.record.items():
        delta = interval_delta(interval)
        ends = [
            bar_end(
                tm.get_trading_session(bar.start.astimezone(tm.timezone).date()), delta, bar.start
            )
            for bar, _row in rows
        ]
        known[symbol, interval] = (ends, rows, session.data.series(symbol, interval).names)
    second = tm.get_trading_session(session.sessions[-1])
    checked = 0
    for t, symbol, what, got in recorder.seen:
        if t <= second.open or what == "bb_20.upper":
            continue
        interval = INDICATORS.get(what, what)
        ends, rows, names = known[symbol, interval]
        i = bisect_right(ends, t)
        bar, row = rows[i - 1]  # the run streamed the first session whole: never i == 0
        assert got == (bar if what == interval else row[names.index(what)]), (t, symbol, what)
        checked += 1
    assert checked == 390 * len(DEMO) * 4  # 1m, 5m, sma_20, sma_5m
