"""Unit tests of the monitor's pure parts (themes, chart helpers, formatting, arguments) and
app behaviours that need an engine in a state the sample data cannot produce (a fake one).
"""

from __future__ import annotations

import math
import signal
import time
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fake_session import FakeSession
from sessionkit.engine import load_config
from sessionkit.engine.pipeline.session import Session
from sessionkit.tui import cli
from sessionkit.tui.app import create_app
from sessionkit.tui.charting import SessionAxis, base_name, classify, downsample
from sessionkit.tui.format import Figures, FrozenFigures, sim_clock, speed
from sessionkit.tui.themes import (
    CHART_VARIABLES,
    LINE_CONTRAST,
    chart_colours,
    contrast,
    load_theme_file,
    load_themes,
    parse_theme,
)
from sessionkit.tui.widgets.event_log import EventLog, unseen
from sessionkit.tui.widgets.price_chart import PriceChart
from sessionkit.tui.widgets.status_bar import StatusBar
from textual.color import Color
from textual.theme import BUILTIN_THEMES
from tui_helpers import wait_for

NEW_YORK = ZoneInfo("America/New_York")

GOOD_THEME = """
name = "ocean"
dark = true
primary = "#2E86AB"
background = "#001B2E"
[chart]
price = "#FFFFFF"
overlays = ["#F6AE2D", "#F26419"]
"""


# -- themes -------------------------------------------------------------------------------


def test_bundled_themes_load_in_order_with_chart_colours():
    themes = load_themes()
    assert themes.failures == []
    assert themes.names[:3] == ["dark", "light", "high-contrast"]
    for theme in themes.themes:
        for variable in CHART_VARIABLES:
            assert variable in theme.variables
    assert themes.get("light").dark is False
    assert (
        themes.get("dark").variables["chart-price"] != themes.get("light").variables["chart-price"]
    )


def test_theme_file_errors_name_the_file_and_key(tmp_path):
    bad_colour = tmp_path / "bad.toml"
    bad_colour.write_text('name = "bad"\nprimary = "not-a-colour"\n')
    with pytest.raises(ValueError, match=r"bad\.toml.*primary.*not-a-colour"):
        load_theme_file(bad_colour)
    with pytest.raises(ValueError, match="invalid TOML"):
        parse_theme("name = ", source="x.toml")
    with pytest.raises(ValueError, match="unknown_key"):
        parse_theme('name = "x"\nprimary = "#000000"\nunknown_key = 1\n', source="x.toml")
    with pytest.raises(ValueError, match=r"chart\.overlays"):
        parse_theme('name = "x"\nprimary = "#000"\n[chart]\noverlays = ["nope"]\n', source="x")


def test_broken_theme_files_are_reported_and_skipped(tmp_path):
    (tmp_path / "ocean.toml").write_text(GOOD_THEME)
    (tmp_path / "broken.toml").write_text("name = [")
    (tmp_path / "colour.toml").write_text('name = "c"\nprimary = "#12"\n')
    (tmp_path / "notes.txt").write_text("not a theme")
    themes = load_themes([tmp_path, tmp_path / "missing"])
    assert "ocean" in themes.names
    assert themes.names[:3] == ["dark", "light", "high-contrast"]
    failed = sorted(f.path for f in themes.failures)
    assert failed == sorted(
        [str(tmp_path / "broken.toml"), str(tmp_path / "colour.toml"), str(tmp_path / "missing")]
    )
    ocean = themes.get("ocean")
    assert ocean.variables["chart-overlay-2"] == "#F26419"
    # What the file leaves out follows its own colours.
    derived = chart_colours(ocean.to_color_system().generate(), dark=True)
    assert ocean.variables["chart-oscillator"] == derived["chart-oscillator"]


async def test_app_reports_broken_theme_files_and_runs(tmp_path):
    (tmp_path / "ocean.toml").write_text(GOOD_THEME)
    (tmp_path / "broken.toml").write_text("primary = ")
    session = FakeSession(start_paused=True)
    app = create_app(session, theme="ocean", theme_dirs=[tmp_path], frozen_metrics=True)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            assert app.theme == "ocean"
            assert any("broken.toml" in str(n.message) for n in app._notifications)
            log = app.query_one(EventLog)
            assert any("broken.toml" in line.text for line in log.lines)
            await pilot.press("t")
            assert app.theme == "dark"  # after the last loaded theme comes the first
    finally:
        session.stop()


def test_unknown_theme_is_refused():
    session = FakeSession()
    with pytest.raises(ValueError, match="unknown theme 'nope'"):
        create_app(session, theme="nope")
    assert create_app(session, theme="nord").theme_set.names[:3] == [
        "dark",
        "light",
        "high-contrast",
    ]


LINES = ("chart-price", "chart-overlay-1", "chart-overlay-2", "chart-overlay-3",
         "chart-overlay-4", "chart-oscillator", "chart-session", "chart-buy", "chart-sell",
         "chart-missing")  # fmt: skip
"""The chart colours drawn as lines or marks (the volume's area and the guides are faint)."""


async def test_chart_colours_stand_out_in_every_builtin_theme():
    """Textual's built-in themes have no chart colours: they follow each theme's own (QA:
    the dark themes' #E6EDF3 price line on textual-light, solarized-light ...). Every line
    contrasts with the chart's background by at least WCAG's 3 for graphics. Themes in
    the terminal's ANSI colours (whose background only the terminal knows) are left out."""
    session = FakeSession(start_paused=True)
    app = create_app(session, frozen_metrics=True)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            chart = app.query_one(PriceChart)
            assert await wait_for(lambda: chart.data is not None)
            names = sorted(name for name in BUILTIN_THEMES if not name.startswith("ansi"))
            assert {"textual-light", "solarized-light", "catppuccin-latte"} <= set(names)
            for name in names:
                app.theme = name
                await pilot.pause()
                background = chart.background_colors[1]
                for variable in LINES:
                    colour = Color(*chart.colour(variable))
                    ratio = contrast(colour, background)
                    assert ratio >= LINE_CONTRAST, (name, variable, colour.hex, background.hex)
                price = contrast(Color(*chart.colour("chart-price")), background)
                assert price >= 4.5, name
    finally:
        session.stop()


def test_a_theme_in_ansi_colours_gets_the_bundled_chart_colours():
    themes = load_themes()
    for name, bundled in (("ansi-dark", "dark"), ("ansi-light", "light")):
        theme = BUILTIN_THEMES[name]
        colours = chart_colours(theme.to_color_system().generate(), dark=theme.dark)
        expected = themes.get(bundled).variables
        assert colours == {variable: expected[variable] for variable in CHART_VARIABLES}


# -- chart helpers --------------------------------------------------------------------------


def test_session_axis_positions_and_early_close_slots():
    day_open = datetime(2024, 11, 29, 14, 30, tzinfo=UTC)  # 09:30 New York
    early_close = datetime(2024, 11, 29, 18, 0, tzinfo=UTC)  # 13:00 New York
    axis = SessionAxis(day_open, early_close, "1m")
    assert axis.slots == 210
    assert SessionAxis(day_open, early_close, "5m").slots == 42
    history = [
        datetime(2024, 11, 27, 20, 58, tzinfo=UTC),
        datetime(2024, 11, 27, 20, 59, tzinfo=UTC),
    ]
    session = [day_open, datetime(2024, 11, 29, 14, 35, tzinfo=UTC)]
    assert axis.positions(history + session, 2) == [-2.0, -1.0, 0.0, 5.0]
    ticks, labels = axis.ticks(NEW_YORK, 120)
    assert labels[0] == "09:30" and labels[-1] == "13:00"
    assert ticks[-1] == 210.0
    assert "10:00" in labels and "12:00" in labels
    narrow_ticks, narrow_labels = axis.ticks(NEW_YORK, 30)
    assert len(narrow_labels) < len(labels)
    assert narrow_labels[0] == "09:30" and narrow_labels[-1] == "13:00"


def test_downsample_keeps_extremes_and_splits_at_missing_values():
    xs = [float(i) for i in range(1000)]
    ys = [math.sin(i / 50) for i in range(1000)]
    ys[500] = 5.0  # a spike must survive
    segments = downsample(xs, ys, 50)
    assert len(segments) == 1
    points = segments[0]
    assert len(points) <= 2 * 51
    assert max(p[1] for p in points) == 5.0
    assert min(p[1] for p in points) == pytest.approx(min(ys))
    assert [p[0] for p in points] == sorted(p[0] for p in points)
    gappy = [None, None, 1.0, 2.0, float("nan"), 3.0, None]
    assert downsample(range(7), gappy, 50) == [[(2, 1.0), (3, 2.0)], [(5, 3.0)]]
    assert downsample([], [], 10) == []


def test_classify_uses_configured_kinds_then_names_then_values():
    columns = {
        "sma_20": [100.0],
        "bb_20.upper": [101.0],
        "rsi_14": [55.0],
        "mystery": [100.5],
        "other": [0.3],
        "macd.signal": [0.1],
    }
    overlays, oscillators = classify(columns, {"sma_20": "sma", "bb_20": "bollinger"}, 99.0, 102.0)
    assert overlays == ["sma_20", "bb_20.upper", "mystery"]
    assert oscillators == ["rsi_14", "other", "macd.signal"]
    assert base_name("bb_20.lower") == "bb_20"


# -- formatting -----------------------------------------------------------------------------


def test_wall_clock_figures_are_frozen_for_snapshots():
    live, frozen = Figures(), FrozenFigures()
    assert live.rate(12_345.0) == "12.3k bars/s"
    assert live.wait_ms(0.0042) == "4.2"
    message = "session 1/25 2024-11-25 09:30-16:00: 390 bars, loaded in 0.035s (12 ms)"
    assert live.message(message) == message
    assert frozen.rate(12_345.0) == frozen.rate(3.0)
    # Paused is 0, unknown is a dash; slow speeds get a decimal (1x: 6 bars a minute).
    assert (live.rate(0.0), live.rate(None)) == ("0 bars/s", "- bars/s")
    assert (live.rate(0.1), live.rate(6.0), live.rate(359.8)) == (
        "0.1 bars/s",
        "6.0 bars/s",
        "360 bars/s",
    )
    assert frozen.wait_ms(0.0042) == frozen.wait_ms(None)
    assert frozen.message(message) == (
        "session 1/25 2024-11-25 09:30-16:00: 390 bars, loaded in #s (#s)"
    )
    assert speed("data-driven", None) == "max"
    assert speed("clock-driven", 60.0) == "60x"
    assert sim_clock(datetime(2024, 7, 1, 13, 31, tzinfo=UTC), NEW_YORK) == "09:31:00 EDT"
    assert sim_clock(datetime(2024, 12, 2, 14, 31, tzinfo=UTC), NEW_YORK) == "09:31:00 EST"


def test_unseen_finds_new_items_by_identity():
    a, b, c, d = (object() for _ in range(4))
    assert unseen((a, b, c), None) == (a, b, c)
    assert unseen((a, b, c), b) == (c,)
    assert unseen((b, c, d), a) == (b, c, d)  # the last one seen left the window
    assert unseen((a, b), b) == ()


# -- command line ---------------------------------------------------------------------------


def test_options_are_applied_over_the_file():
    parse = cli.build_parser().parse_args
    args = parse(["demo", "--db", "sqlite:///x.db", "--start", "2024-12-02", "--speed", "max"])
    config = load_config("demo", options=cli.options_of(args))
    # (a relative file, also in a URL, is relative to the working folder)
    assert config.database_url == f"sqlite:///{Path.cwd().resolve() / 'x.db'}"
    assert config.backtest.start_date == date(2024, 12, 2)
    assert config.backtest.clock == "data-driven"
    args = parse(["--end", "2024-12-31", "--speed", "600x", "--set", "analysis.options.fast=5"])
    config = load_config(None, options=cli.options_of(args))
    assert config.backtest.end_date == date(2024, 12, 31)
    assert (config.backtest.clock, config.backtest.speed) == ("clock-driven", 600.0)
    assert config.analysis.options == {"fast": 5}
    assert config.overrides["analysis.options.fast"] == "--set analysis.options.fast=5"
    assert load_config("demo", options=cli.options_of(parse([]))) == load_config("demo")
    assert parse(["--paused"]).paused is True
    # A file path on the command line is relative to the working folder.
    config = load_config("demo", options=cli.options_of(parse(["--db", "some/file.sqlite"])))
    assert config.database_url == f"sqlite:///{Path.cwd().resolve() / 'some' / 'file.sqlite'}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no-such-config"], "no-such-config: the configuration file does not exist"),
        (["--speed", "0"], "'0': a speed is a finite number > 0"),
        (["--speed", "inf"], "'inf': a speed is a finite number > 0"),
        (["--speed", "fast"], "'fast': a speed is a finite number > 0"),
        (["--set", "backtest.speed=nan"], "a speed is a finite number > 0"),
        (["--set", "nokey"], "expected KEY=VALUE"),
        (["--set", "analysis.optons.fast=5"], "optons: unknown key"),
        (["--start", "2024-13-01"], "'2024-13-01' is not a date"),
        (["--theme", "nope"], "unknown theme 'nope'"),
        (["--db", "sqlite:////no/such/dir/x.db"], "does not exist"),
        (["--start", "2024-12-31", "--end", "2024-12-01"], "end_date 2024-12-01 is before"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["demo", "extra"], "unrecognized arguments: extra"),
    ],
)
def test_bad_arguments_exit_2_before_the_screen_opens(capsys, argv, message):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("sessionkit-tui: error: ")
    assert message in captured.err
    assert "Traceback" not in captured.err


def test_broken_theme_file_argument_exits_2(tmp_path, capsys):
    theme = tmp_path / "mine.toml"
    theme.write_text('name = "mine"\nprimary = "#zz"\n')
    assert cli.main(["--theme", str(theme)]) == 2
    err = capsys.readouterr().err
    assert "mine.toml" in err and "primary" in err


def test_ctrl_c_before_the_screen_opens_stops_the_started_engine(monkeypatch, capsys):
    """Ctrl-C while the themes load (the session already started, loading): status 130, no
    traceback, the engine stopped with its threads ended (see also the tmux test)."""
    started: list[Session] = []
    real_start = Session.start

    def start(self):
        started.append(self)
        return real_start(self)

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Session, "start", start)
    monkeypatch.setattr("sessionkit.tui.themes.load_themes", interrupted)
    previous = signal.getsignal(signal.SIGINT)
    try:
        assert cli.main(["--paused"]) == cli.INTERRUPTED == 130
    finally:
        signal.signal(signal.SIGINT, previous)  # main ignores a second Ctrl-C from then on
    [session] = started
    assert session.snapshot().state == "stopped"
    assert session.wait(0.0), "an engine thread is still running"
    assert "Traceback" not in capsys.readouterr().err


def test_a_hung_analysis_is_reported_after_the_screen_closes(monkeypatch, capsys):
    """The user quits while the analysis is stuck in code that does not return: the
    monitor exits at once (the stuck thread is a daemon) and then says which thread was
    left running and the line it is stuck in."""
    from pipeline_analyses import Hang
    from textual.app import App

    def quit_once_stuck(app, *_args, **_kwargs):  # instead of a screen: q once stuck
        analysis = app.session.analysis.analysis
        deadline = time.monotonic() + 30
        while analysis.steps < 3 and time.monotonic() < deadline:
            time.sleep(0.01)

    monkeypatch.setattr(App, "run", quit_once_stuck)
    Hang.release.clear()
    try:
        args = ["demo", "--speed", "max", "--set", "analysis.entry=pipeline_analyses:Hang"]
        assert cli.main([*args, "--set", "analysis.options.after=3"]) == 0
    finally:
        Hang.release.set()
    err = capsys.readouterr().err
    assert "sessionkit-tui: warning: session_coordinator still running 1s after stop, in " in err
    assert "pipeline_analyses.py:" in err and "(Hang.on_step)" in err


def test_bad_analysis_class_exits_2(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    demo = (Path(__file__).parents[2] / "sample_db" / "demo.toml").read_text()
    config.write_text(demo.replace("sessionkit.engine.examples:SmaCross", "no_such_mod:Nope"))
    assert cli.main([str(config)]) == 2
    assert "no_such_mod" in capsys.readouterr().err


# -- app behaviours with a fake engine ------------------------------------------------------


async def test_a_failing_snapshot_is_reported_once_and_the_ui_stays_up():
    session = FakeSession(start_paused=True)
    app = create_app(session, frozen_metrics=True, poll_interval=0.02)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.1)

            def broken(**_options):  # symbols=... (the panes read only what they show)
                raise RuntimeError("engine state unreadable")

            session.snapshot = broken  # type: ignore[method-assign]
            await pilot.pause(0.3)
            notes = [n for n in app._notifications if "unreadable" in str(n.message)]
            assert len(notes) == 1
            await pilot.press("i", "t")
            assert app.theme == "light"
            assert app.is_running
    finally:
        session.stop()


async def test_speed_at_the_ends_does_not_call_the_engine():
    session = FakeSession(start_paused=True, clock="data-driven")
    app = create_app(session, frozen_metrics=True)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("plus")
            assert not any(c.startswith("set_speed") for c in session.calls)
            await pilot.press("minus")
            assert "set_speed 3600.0" in session.calls
    finally:
        session.stop()


async def test_fake_early_close_session_completes_and_status_follows():
    session = FakeSession(clock="data-driven")
    app = create_app(session, frozen_metrics=True)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            assert await wait_for(lambda: app.latest is not None and app.latest.finished, 10)
            await pilot.pause(0.2)
            line = app.query_one(StatusBar).line
            assert line.state == "completed"
            assert line.date == "2024-11-29"
            assert line.sessions == "session 2/2 early close"
            assert line.time == "13:00:00 EST"
            assert any("Backtest complete" in str(n.title) for n in app._notifications)
    finally:
        session.stop()


async def test_event_log_caps_after_leaving_out_the_signals():
    """At max speed most events are signals: the cap must not crowd out the others."""
    from datetime import UTC, datetime

    from sessionkit.engine.pipeline.snapshot import EngineEvent
    from sessionkit.tui.widgets.event_log import EventLog
    from textual.app import App

    wall = datetime(2000, 1, 1, tzinfo=UTC)
    events = [EngineEvent(wall, None, "info", "session 2/3 loaded")] + [
        EngineEvent(wall, None, "info", f"signal buy X{n}") for n in range(100)
    ]

    class LogApp(App):
        def compose(self):
            yield EventLog(id="log")

    app = LogApp()
    async with app.run_test(size=(100, 20)) as pilot:
        log = app.query_one(EventLog)
        log.show(events, "America/New_York", limit=40)
        await pilot.pause()
        texts = [line.text for line in log.lines]
        assert any("session 2/3 loaded" in t for t in texts)
        assert not any("signal buy" in t for t in texts)
