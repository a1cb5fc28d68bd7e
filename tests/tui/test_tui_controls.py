"""Pilot tests: every key (and the command palette) changes the engine as it should.

The engine is the real Session on the bundled demo. Waits for the engine happen with short
``asyncio`` sleeps (``wait_for``) so the app's event loop keeps running meanwhile.
"""

from __future__ import annotations

import time

import pytest
from fake_session import FakeSession
from sessionkit.tui.app import NOT_LIVE, SessionkitApp, create_app, next_speed
from sessionkit.tui.screens.detail import DetailScreen
from sessionkit.tui.screens.diagnostics import DiagnosticsScreen
from sessionkit.tui.screens.help import HelpScreen
from sessionkit.tui.screens.seek import SeekScreen
from sessionkit.tui.widgets.event_log import EventLog
from sessionkit.tui.widgets.oscillator_chart import OscillatorChart
from sessionkit.tui.widgets.price_chart import PriceChart
from sessionkit.tui.widgets.status_bar import StatusBar
from sessionkit.tui.widgets.symbols_table import SymbolsTable
from textual.command import CommandList
from textual.containers import VerticalScroll
from textual.widgets import Input
from textual.widgets._footer import FooterKey
from tui_helpers import drive, wait_for

SIZE = (120, 40)


def engine_threads(session):
    return [
        t
        for t in (session.coordinator, session.processor, session.quality, session.analysis)
        if t is not None
    ]


def palette_has_options(app) -> bool:
    lists = app.screen.query(CommandList)
    return bool(lists) and lists.first().option_count > 0


def make_app(session, **options) -> SessionkitApp:
    return create_app(session, frozen_metrics=True, **options)


async def test_space_pauses_and_resumes(make_session):
    session = make_session("demo", paused=False)
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(lambda: session.snapshot().state == "streaming", 10)
        await pilot.press("space")
        assert await wait_for(lambda: session.snapshot().state == "paused")
        assert await wait_for(lambda: app.query_one(StatusBar).line.state == "paused")
        await pilot.press("space")
        assert await wait_for(lambda: session.snapshot().state == "streaming")
        # Two quick presses: pause then resume, whatever the last frame said.
        await pilot.press("space", "space")
        await pilot.pause(0.3)
        assert session.snapshot().state == "streaming"


async def test_n_steps_one_instant(make_session):
    session = make_session("demo")
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(lambda: session.snapshot().state == "paused", 10)
        assert session.snapshot().metrics.steps == 0
        await pilot.press("n")
        assert await wait_for(lambda: session.snapshot().metrics.steps == 1)
        await pilot.press("n", "n", "n")
        assert await wait_for(lambda: session.snapshot().metrics.steps == 4)
        await pilot.pause(0.2)
        snapshot = session.snapshot()
        assert snapshot.metrics.steps == 4
        assert snapshot.state == "paused"
        assert await wait_for(lambda: app.query_one(StatusBar).line.time.startswith("09:34"))


async def test_plus_and_minus_walk_the_speed_presets(make_session):
    session = make_session("demo")  # clock-driven at 60x
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(lambda: session.snapshot().state == "paused", 10)

        def speed():
            snapshot = session.snapshot()
            return None if snapshot.clock == "data-driven" else snapshot.speed

        for expected in (300.0, 600.0, 3600.0, None):
            await pilot.press("plus")
            assert await wait_for(lambda expected=expected: speed() == expected), expected
        await pilot.press("plus")  # already at max
        await pilot.pause(0.1)
        assert speed() is None
        assert session.snapshot().clock == "data-driven"
        await pilot.press("minus")
        assert await wait_for(lambda: speed() == 3600.0)
        await pilot.press("minus", "minus", "minus", "minus")  # quick presses build up
        assert await wait_for(lambda: speed() == 10.0)
        await pilot.press("minus", "minus")
        assert await wait_for(lambda: speed() == 1.0)
        assert "1x" in app.query_one(StatusBar).line.speed or await wait_for(
            lambda: "1x" in app.query_one(StatusBar).line.speed
        )


def test_next_speed_presets():
    assert next_speed("clock-driven", 60.0, +1) == 300.0
    assert next_speed("clock-driven", 60.0, -1) == 10.0
    assert next_speed("clock-driven", 3600.0, +1) is None
    assert next_speed("data-driven", None, +1) is None
    assert next_speed("data-driven", None, -1) == 3600.0
    assert next_speed("clock-driven", 1.0, -1) == 1.0
    assert next_speed("clock-driven", 45.0, +1) == 60.0  # off-preset speeds snap onto them
    assert next_speed("clock-driven", 45.0, -1) == 10.0


async def test_m_switches_clock_mode_keeping_the_speed(make_session):
    session = make_session("demo")
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(lambda: session.snapshot().state == "paused", 10)
        assert session.snapshot().clock == "clock-driven"
        await pilot.press("m")
        assert await wait_for(lambda: session.snapshot().clock == "data-driven")
        await pilot.press("m")
        assert await wait_for(lambda: session.snapshot().clock == "clock-driven")
        assert session.snapshot().speed == 60.0
        assert await wait_for(lambda: app.query_one(StatusBar).line.speed == "60x clock")


async def test_up_down_and_mouse_pick_the_symbol(make_session):
    session = make_session("demo")
    drive(session, 30)
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(lambda: app.symbol == "ACME")
        chart = app.query_one(PriceChart)
        assert await wait_for(lambda: str(chart.border_title).startswith("ACME 1m"))
        await pilot.press("down")
        assert app.symbol == "BOLT"
        assert await wait_for(lambda: str(chart.border_title).startswith("BOLT 1m"))
        await pilot.press("down", "down")
        assert app.symbol == "DYNA"
        await pilot.press("up")
        assert app.symbol == "CRUX"
        # Click the row of FLUX: border (1) + header (1) + rows ACME..EMBR (5).
        await pilot.click(SymbolsTable, offset=(3, 7))
        assert await wait_for(lambda: app.symbol == "FLUX")
        assert await wait_for(lambda: str(chart.border_title).startswith("FLUX 1m"))
        assert chart.data is not None and chart.data.series.symbol == "FLUX"


async def test_i_cycles_the_chart_interval(make_session):
    session = make_session("demo")
    drive(session, 30)
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(lambda: app.interval == "1m")
        price = app.query_one(PriceChart)
        oscillator = app.query_one(OscillatorChart)
        assert await wait_for(lambda: str(oscillator.border_title).startswith("RSI rsi_14"))
        await pilot.press("i")
        assert app.interval == "5m"
        assert await wait_for(lambda: str(price.border_title).startswith("ACME 5m"))
        assert price.data is not None
        assert price.data.overlays == ("sma_5m",)
        assert len(price.data.series.close) >= 6  # 30 minutes of 5m bars (+ history)
        # No oscillator computed on 5m: the lower chart shows the volume.
        assert str(oscillator.border_title) == "Volume"
        await pilot.press("i")
        assert app.interval == "15m"
        await pilot.press("i")
        assert app.interval == "1m"
        assert await wait_for(lambda: str(oscillator.border_title).startswith("RSI"))


async def test_t_cycles_the_themes_and_charts_follow(make_session):
    session = make_session("demo")
    drive(session, 30)
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        chart = app.query_one(PriceChart)
        assert await wait_for(lambda: chart.data is not None)
        assert app.theme == "dark"
        colours = {}
        for expected in ("light", "high-contrast", "dark"):
            before = chart.replots
            await pilot.press("t")
            assert app.theme == expected
            assert await wait_for(lambda before=before: chart.replots > before)
            colours[expected] = chart.colour("chart-price")
            theme = app.get_theme(expected)
            assert theme is not None
            assert app.theme_variables["chart-price"] == theme.variables["chart-price"]
        assert colours["light"] != colours["dark"]
        assert colours["high-contrast"] == (255, 255, 255)


async def test_question_mark_opens_help_and_escape_closes_it(make_session):
    session = make_session("demo")
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = " ".join(str(row) for row in app.key_help())
        for key in ("space", "n", "+", "-", "m", "i", "t", "?", "q"):
            assert f"'{key}'" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark", "question_mark")  # ? closes it too
        assert not isinstance(app.screen, HelpScreen)
        assert app.is_running


@pytest.mark.parametrize(
    ("key", "panel"),
    [("enter", DetailScreen), ("d", DiagnosticsScreen), ("question_mark", HelpScreen)],
)
async def test_q_quits_from_every_panel(make_session, key, panel):
    session = make_session("demo")
    drive(session)
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(lambda: app.latest is not None)
        await pilot.press(key)
        assert isinstance(app.screen, panel)
        await _quit_and_measure(app, session, pilot)
        assert session.finished


@pytest.mark.parametrize(
    ("key", "panel"),
    [("question_mark", HelpScreen), ("d", DiagnosticsScreen), ("enter", DetailScreen)],
)
async def test_panels_scroll_with_the_keyboard(make_session, key, panel):
    """The panels are taller than a small screen (the help at 80x24 already): their box
    has the focus, so the arrows, page keys, home and end scroll it (and not the symbols
    table behind)."""
    session = make_session("demo")
    drive(session, 5)
    app = make_app(session)
    async with app.run_test(size=(80, 16)) as pilot:
        assert await wait_for(lambda: app.symbol is not None)
        symbol = app.symbol
        await pilot.press(key)
        await pilot.pause()
        assert isinstance(app.screen, panel)
        box = app.screen.query_one(VerticalScroll)
        assert app.focused is box
        assert await wait_for(lambda: box.max_scroll_y > 2)
        await pilot.press("down")
        assert await wait_for(lambda: box.scroll_y == 1)
        await pilot.press("pagedown")
        assert await wait_for(lambda: box.scroll_y > 1)
        await pilot.press("end")
        assert await wait_for(lambda: box.scroll_y == box.max_scroll_y)
        await pilot.press("home")
        assert await wait_for(lambda: box.scroll_y == 0)
        assert app.symbol == symbol  # the keys scrolled the panel, not the table
        await pilot.press("escape")
        assert not isinstance(app.screen, panel)
        assert app.focused is app.query_one(SymbolsTable)  # back where it was


async def test_live_mode_offers_only_what_a_live_session_can_do():
    """A live session follows the wall clock: no speed, clock or go-to keys in the footer or
    commands in the palette (QA: they all answered "Not possible"); pause and step stay."""
    session = FakeSession(start_paused=True, mode="live")
    app = make_app(session)
    try:
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for(lambda: app.latest is not None)
            await pilot.pause()
            actions = {key.action for key in app.screen.query(FooterKey)}
            assert not set(NOT_LIVE) & actions
            assert {"step", "toggle_pause('resume')", "quit", "help"} <= actions
            titles = [title for title, _, _ in app.palette_commands()]
            assert "Step one instant" in titles and "Pause / resume" in titles
            for gone in ("Faster", "Slower", "Toggle clock mode", "Go to date", "Speed"):
                assert not any(title.startswith(gone) for title in titles), gone
            # Their keys say why, without asking the engine.
            for key in ("plus", "minus", "m", "g"):
                await pilot.press(key)
            assert not any(call.startswith("set_") for call in session.calls)
            assert any("live session" in str(n.message) for n in app._notifications)
            assert not isinstance(app.screen, SeekScreen)
            await pilot.press("n")
            assert await wait_for(lambda: "step" in session.calls)
            await pilot.press("space")
            assert await wait_for(lambda: "resume" in session.calls)
    finally:
        session.stop()


async def test_palette_screenshot_without_downloads_saves_in_the_current_folder(
    make_session, tmp_path, monkeypatch
):
    """The palette's Screenshot is the monitor's own (Textual's fails without ~/Downloads)."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    session = make_session("demo")
    drive(session)
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(lambda: app.latest is not None)
        commands = [c for c in app.get_system_commands(app.screen) if c.title == "Screenshot"]
        assert len(commands) == 1
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"screenshot")
        assert await wait_for(lambda: palette_has_options(app), 3)
        await pilot.press("enter")
        assert await wait_for(lambda: bool(list(work.glob("*.svg"))), 3)
        (saved,) = work.glob("*.svg")
        assert "</svg>" in saved.read_text()
        assert await wait_for(lambda: any(str(saved) in str(n.message) for n in app._notifications))
        assert not any(n.severity == "error" for n in app._notifications)


async def test_command_palette_runs_session_commands(make_session):
    session = make_session("demo")
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(lambda: session.snapshot().state == "paused", 10)
        await pilot.press("ctrl+p")
        await pilot.pause()
        app.screen.query_one(Input).cursor_blink = False
        await pilot.press(*"step one")
        assert await wait_for(lambda: palette_has_options(app), 3)
        await pilot.press("enter")
        assert await wait_for(lambda: session.snapshot().metrics.steps == 1)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"speed max")
        assert await wait_for(lambda: palette_has_options(app), 3)
        await pilot.press("enter")
        assert await wait_for(lambda: session.snapshot().clock == "data-driven")
        titles = [title for title, _, _ in app.palette_commands()]
        for title in ("Pause / resume", "Step one instant", "Faster", "Slower",
                      "Toggle clock mode", "Next interval", "Next theme", "Help",
                      "Speed   60x", "Speed max", "Theme light", "Chart BOLT"):  # fmt: skip
            assert title in titles


def palette_prompts(app) -> list[str]:
    command_list = app.screen.query_one(CommandList)
    return [command_list.get_option_at_index(k).hit.text for k in range(command_list.option_count)]


async def test_palette_lists_the_speeds_in_order():
    """Before anything is typed the palette sorts its commands by title: the speed presets
    still come slowest first, max last (QA: 10x, 1x, 300x, 3600x, 600x, 60x, max), and so
    they do once ``speed`` is typed; 1x is one simulated second per wall second."""
    session = FakeSession(start_paused=True)
    app = make_app(session)
    try:
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for(lambda: app.latest is not None)
            expected = ["1x", "10x", "60x", "300x", "600x", "3600x", "max"]
            await pilot.press("ctrl+p")
            await pilot.pause()
            app.screen.query_one(Input).cursor_blink = False
            assert await wait_for(lambda: palette_has_options(app), 3)
            await pilot.pause(0.3)  # every provider has answered
            speeds = [p.split()[-1] for p in palette_prompts(app) if p.startswith("Speed")]
            assert speeds == expected
            await pilot.press(*"speed")
            assert await wait_for(
                lambda: sum(p.startswith("Speed") for p in palette_prompts(app)) == 7, 3
            )
            speeds = [p.split()[-1] for p in palette_prompts(app) if p.startswith("Speed")]
            assert speeds == expected
            helps = {
                t.split()[-1]: h for t, h, _ in app.palette_commands() if t.startswith("Speed")
            }
            assert helps["1x"] == "1 simulated second per wall second"
            assert helps["60x"] == "60 simulated seconds per wall second"
            await pilot.press("escape")
    finally:
        session.stop()


QUIT_HANG_BOUND = 3.0
"""Seconds after which a quit counts as hung. The quit *time* (about 0.1 s) is measured by
``tests/benchmarks/test_bench_tui.py``: a deadline of 1 s here failed on a loaded machine,
where joining the engine's threads alone can take longer."""


async def _quit_and_measure(app, session, pilot) -> float:
    started = time.monotonic()
    await pilot.press("q")
    assert await wait_for(lambda: not app.is_running, QUIT_HANG_BOUND + 2)
    elapsed = time.monotonic() - started
    assert not any(t.is_alive() for t in engine_threads(session))
    return elapsed


async def test_q_quits_while_running_at_max_speed(make_session):
    session = make_session(
        "spy-2011",
        paused=False,
        backtest={"clock": "data-driven"},
        analysis={"entry": "tui_analyses:Pace"},  # still running when q is pressed
    )
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(lambda: session.snapshot().metrics.steps > 10, 10)
        elapsed = await _quit_and_measure(app, session, pilot)
    assert elapsed < QUIT_HANG_BOUND
    assert session.snapshot().state == "stopped"


async def test_q_quits_while_paused(make_session):
    session = make_session("demo")
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(lambda: session.snapshot().state == "paused", 10)
        elapsed = await _quit_and_measure(app, session, pilot)
    assert elapsed < QUIT_HANG_BOUND


async def test_q_quits_while_loading_clock_driven(make_session):
    session = make_session("demo", paused=False)
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        elapsed = await _quit_and_measure(app, session, pilot)
    assert elapsed < QUIT_HANG_BOUND


async def test_q_quits_after_completion(make_session):
    session = make_session(
        "demo",
        paused=False,
        backtest={"start_date": "2024-11-29", "end_date": "2024-11-29", "clock": "data-driven"},
    )
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(lambda: session.snapshot().state == "completed", 20)
        assert await wait_for(lambda: app.query_one(StatusBar).line.state == "completed")
        elapsed = await _quit_and_measure(app, session, pilot)
    assert elapsed < QUIT_HANG_BOUND
    assert session.snapshot().state == "completed"


async def test_engine_error_is_shown_and_ui_stays_responsive(make_session):
    session = make_session(
        "demo",
        paused=False,
        backtest={"clock": "data-driven"},
        analysis={"entry": "tui_analyses:FailAt", "on_error": "stop", "options": {"at": 5}},
    )
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(lambda: app.latest is not None and app.latest.state == "error", 10)
        message = session.snapshot().error or ""
        assert "deliberate failure at step 5" in message
        # Notification, status bar and log: the error is reported when its panes refresh,
        # which may be a poll after the one that first saw the state.
        assert await wait_for(
            lambda: any(
                "deliberate failure" in str(n.message) and n.severity == "error"
                for n in app._notifications
            ),
            10,
        )
        assert app.query_one(StatusBar).line.state == "error"
        log = app.query_one(EventLog)
        assert any("deliberate failure" in line.text for line in log.lines)
        # Still responsive: keys work, controls on a finished session are refused kindly.
        await pilot.press("i")
        assert app.interval == "5m"
        app.clear_notifications()
        await pilot.press("space", "n", "t")
        assert app.theme == "light"
        assert session.snapshot().state == "error"
        refused = [str(n.message) for n in app._notifications if n.title == "Not possible"]
        assert refused and all(
            m == "The run ended with an error: nothing to control (g goes to a date)."
            for m in refused
        )
        elapsed = await _quit_and_measure(app, session, pilot)
    assert elapsed < QUIT_HANG_BOUND


async def test_polling_an_unchanged_engine_updates_nothing(make_session):
    session = make_session("demo")
    drive(session, 20)
    app = make_app(session, poll_interval=0.02)
    async with app.run_test(size=SIZE) as pilot:
        chart = app.query_one(PriceChart)
        assert await wait_for(lambda: chart.data is not None)
        await pilot.pause(0.2)
        polls, replots = app.polls, chart.replots
        await pilot.pause(0.5)  # ~25 polls of an idle, paused engine
        assert app.polls == polls
        assert chart.replots == replots
        app.sync()  # forced: same data, same size, same theme -> no re-plot
        await pilot.pause()
        assert chart.replots == replots
        await pilot.press("n")
        assert await wait_for(lambda: chart.replots == replots + 1)
