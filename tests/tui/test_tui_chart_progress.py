"""Signals on the price chart, the run's progress and ETA, zoom, candles and overlay keys.

The engine is driven to a fixed point first; progress and rate figures are computed from
given wall-clock instants, never measured."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sessionkit.engine.pipeline.snapshot import EngineMetrics, Snapshot
from sessionkit.tui.chart_data import build_chart_data
from sessionkit.tui.progress import ProgressTracker, RateMeter, bar, duration, run_progress
from sessionkit.tui.widgets.oscillator_chart import OscillatorChart
from sessionkit.tui.widgets.price_chart import PriceChart, signal_points
from sessionkit.tui.widgets.signals_log import SignalsLog
from textual.widgets import Footer
from tui_helpers import drive, run_to_end, settle, snapshot_app, wait_for

DAY = date(2024, 11, 26)


def test_markers_sit_at_the_signal_bars_and_agree_with_the_log(make_session):
    session = make_session("demo", backtest={"start_date": DAY, "end_date": DAY})
    drive(session, 200)
    snapshot = session.snapshot()
    for symbol in snapshot.symbols:
        for interval in snapshot.intervals:
            data = build_chart_data(session, snapshot, symbol, interval, {}, ())
            assert data is not None
            mine = [s for s in snapshot.signals if s.symbol == symbol]
            assert list(data.signals) == mine
            xs = [float(i) for i in range(len(data.series.starts))]
            points = signal_points(data, xs)
            drawn = sum(len(px) for px, _ in points.values())
            assert drawn == len(mine)  # the window reaches back to the history
            for kind, (px, py) in points.items():
                assert kind in ("buy", "sell")
                for x, y in zip(px, py, strict=True):
                    start = data.series.starts[int(x)]
                    match = [
                        s
                        for s in mine
                        if s.kind == kind
                        and start <= s.bar_start < start + Snapshot.interval_length(interval)
                    ]
                    assert any(s.price == y for s in match)


def _snap(index, state="streaming", minutes=0.0, bars=0):
    opens = [datetime(2024, 11, d, 14, 30, tzinfo=UTC) for d in (25, 26, 27)]
    bounds = tuple((o, o + timedelta(hours=6.5)) for o in opens)
    return Snapshot(
        state=state,
        session_index=index,
        session_count=3,
        sessions=(date(2024, 11, 25), date(2024, 11, 26), date(2024, 11, 27)),
        session_bounds=bounds,
        sim_time=opens[index - 1] + timedelta(minutes=minutes) if index else None,
        metrics=EngineMetrics(bars_streamed=bars),
    )


def test_progress_counts_trading_time_only():
    assert run_progress(_snap(0)).fraction == 0.0
    middle = run_progress(_snap(2, minutes=195))
    assert middle.sessions_done == 1 and middle.sessions_total == 3
    assert middle.fraction == pytest.approx(1.5 / 3)
    assert run_progress(_snap(3, "completed", minutes=390)).fraction == 1.0
    assert run_progress(Snapshot()) is None


def test_eta_comes_from_the_measured_rate_and_stops_while_paused():
    tracker = ProgressTracker(window=5.0)
    # 39 trading minutes per wall second: 1/30 of the run (3 x 390 minutes) a second.
    for second in range(6):
        tracker.update(_snap(1, minutes=39 * second, bars=100 * second), float(second))
    assert tracker.eta(5.0) == pytest.approx((3 * 390 - 39 * 5) * 60 / (39 * 60))
    assert tracker.bars_per_second(5.0) == pytest.approx(100.0)
    # Stalled while streaming (a slow analysis): the wait counts once it is long.
    for second in range(6, 20):
        tracker.update(_snap(1, minutes=39 * 5, bars=500), float(second))
    assert 0.0 < tracker.bars_per_second(19.0) < 50.0
    # Paused: 0 bars/s and no ETA.
    tracker.update(_snap(1, "paused", minutes=39 * 5, bars=500), 20.0)
    assert tracker.bars_per_second(20.0) == 0.0
    assert tracker.eta(20.0) is None


def test_rate_meter_restarts_when_the_counter_goes_back():
    meter = RateMeter(window=5.0, steps=1)
    meter.add(0.0, 0.0)
    meter.add(1.0, 100.0)
    meter.add(2.0, 200.0)
    assert meter.rate(2.0) == 100.0
    meter.add(3.0, 10.0)  # a new run after a seek
    assert meter.rate(3.0) is None


def test_duration_and_bar_texts():
    assert duration(42) == "42s" and duration(185) == "3m 05s" and duration(8040) == "2h 14m"
    assert duration(None) == "-"
    assert bar(0.5, 10) == "█████░░░░░" and bar(0.0, 4) == "░░░░" and bar(1.0, 4) == "████"


async def test_footer_says_resume_while_paused(make_session):
    session = make_session("demo")
    drive(session)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.active_bindings["space"].binding.description == "Resume"
        await pilot.press("space")
        assert await wait_for(lambda: session.snapshot().state == "streaming", 10)
        await pilot.pause()
        assert app.active_bindings["space"].binding.description == "Pause"
        await pilot.press("space")
        await pilot.pause()
        assert app.active_bindings["space"].binding.description == "Resume"


async def test_controls_after_the_run_completed_say_so(make_session):
    session = make_session(
        "demo",
        paused=False,
        backtest={"start_date": DAY, "end_date": DAY, "clock": "data-driven"},
    )
    run_to_end(session)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        for key in ("m", "plus", "minus", "space", "n"):
            app.clear_notifications()
            await pilot.press(key)
            await pilot.pause()
            messages = [str(n.message) for n in app._notifications]
            assert any("The run is complete: nothing to control" in m for m in messages), key
        assert session.snapshot().clock == "data-driven"


async def test_zoom_candles_and_overlay_keys(make_session):
    session = make_session("demo", backtest={"start_date": DAY, "end_date": DAY})
    drive(session, 200)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        price, oscillator = app.query_one(PriceChart), app.query_one(OscillatorChart)
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert price.zoom == oscillator.zoom == 2
        window = price.window(price.data)
        assert window is not None and window[1] - window[0] == pytest.approx(390 / 2 + 1)
        zoomed = price.zoomed(price.data)
        assert len(zoomed.series.starts) < len(price.data.series.starts)
        await pilot.press("left_square_bracket", "left_square_bracket", "left_square_bracket")
        assert price.zoom == 0
        await pilot.press("c")
        assert price.candles and "candles" in str(price.border_title)
        await pilot.press("1")
        assert price.hidden == {"sma_20"}
        assert "1 sma_20 off" in str(price.border_subtitle)
        await pilot.press("1")
        assert price.hidden == frozenset()


async def test_screenshot_goes_to_the_current_folder_without_downloads(
    make_session, tmp_path, monkeypatch
):
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    session = make_session("demo")
    drive(session)
    app = snapshot_app(session)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.action_screenshot()
        await pilot.pause()
        saved = list(work.glob("*.svg"))
        assert len(saved) == 1
        assert any(str(saved[0]) in str(n.message) for n in app._notifications)


async def test_palette_hint_comes_back_when_widened(make_session):
    session = make_session("demo")
    drive(session)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        footer = app.query_one(Footer)
        assert footer.show_command_palette
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not footer.show_command_palette
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert footer.show_command_palette
        assert app.screen.query("FooterKey.-command-palette")


def test_a_restarted_run_measures_from_its_first_session():
    tracker = ProgressTracker(window=5.0)
    tracker.update(_snap(0), 0.0)  # loading: no position yet
    for second in range(1, 6):
        tracker.update(_snap(3, minutes=39 * second), float(second))
    rate = (39 * 60) / 1.0
    assert tracker.eta(5.0) == pytest.approx((390 - 39 * 5) * 60 / rate)


async def test_tab_moves_focus_between_panes(make_session):
    from sessionkit.tui.widgets.event_log import EventLog
    from sessionkit.tui.widgets.signals_log import SignalsLog
    from sessionkit.tui.widgets.symbols_table import SymbolsTable

    session = make_session("demo")
    drive(session, 30)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert isinstance(app.focused, SymbolsTable)
        await pilot.press("tab")
        assert isinstance(app.focused, SignalsLog)
        await pilot.press("tab")
        assert isinstance(app.focused, EventLog)
        await pilot.press("tab")
        assert isinstance(app.focused, SymbolsTable)
        # The keys still drive the monitor while a log has the focus.
        await pilot.press("shift+tab", "n")
        assert isinstance(app.focused, EventLog)
        assert await wait_for(lambda: session.snapshot().metrics.steps == 31)


async def test_a_tiny_terminal_lists_the_signals_in_the_events(make_session):
    from sessionkit.tui.widgets.event_log import EventLog

    session = make_session("demo", backtest={"start_date": DAY, "end_date": DAY})
    drive(session, 60)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        log = app.query_one(EventLog)
        assert not any("signal " in line.text for line in log.lines)
        await pilot.resize_terminal(60, 20)
        await settle(pilot)
        assert not app.query_one(SignalsLog).display or not app.query_one(SignalsLog).size.width
        assert any("signal sell EMBR" in line.text for line in log.lines)
