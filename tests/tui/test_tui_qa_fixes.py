"""Behaviours fixed after a QA pass: the monitor's own event lines, a broken theme named
on the command line, sort directions, the diagnostics' names, and more (one section each).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fake_session import FakeSession
from sessionkit.tui import cli
from sessionkit.tui.app import SessionkitApp, create_app
from sessionkit.tui.format import price
from sessionkit.tui.sweep_cli import main as sweep_main
from sessionkit.tui.widgets.event_log import EventLog
from sessionkit.tui.widgets.metrics_pane import MetricsPane
from sessionkit.tui.widgets.price_chart import PriceChart
from sessionkit.tui.widgets.symbols_table import SymbolsTable, last_price
from textual.app import App, ComposeResult
from textual.widgets._footer import FooterKey
from tui_helpers import drive, run_to_end, settle, snapshot_app, wait_for

DAY = "2024-12-09"

BROKEN_THEME = 'name = "broken"\n[chart\nfoo=1\n'
"""The tester's theme file: invalid TOML (line 2, column 7)."""


# -- the monitor's own event lines wrap and say whose they are ------------------------------


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield EventLog()


async def test_a_long_note_wraps_whole_and_says_it_is_the_monitors():
    message = (
        "invalid TOML in /tmp/qaB/themes/broken.toml: Expected ']' at the end of a table "
        "declaration (at line 2, column 7)"
    )
    app = LogApp()
    async with app.run_test(size=(80, 12)) as pilot:
        log = app.query_one(EventLog)
        log.note(message, "warning")
        await pilot.pause()
        lines = [line.text.rstrip() for line in log.lines]
    assert len(lines) > 1  # wrapped, not cut
    assert " ".join(lines) == f"monitor: {message}"
    assert not lines[0].startswith(" ")  # no label padded into the time column


# -- a theme whose file is broken is named with its error -----------------------------------


@pytest.mark.parametrize("as_sweep", [False, True])
def test_a_broken_theme_file_is_reported_as_invalid_not_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], as_sweep
):
    (tmp_path / "broken.toml").write_text(BROKEN_THEME)
    monkeypatch.setenv(cli.THEME_DIR_ENV, str(tmp_path))
    if as_sweep:
        status = sweep_main(["demo", "--param", "analysis.options.fast=5", "--theme", "broken"])
    else:
        status = cli.main(["--theme", "broken"])
    assert status == 2
    err = capsys.readouterr().err
    assert "unknown theme" not in err
    assert "theme 'broken' cannot be used: invalid TOML in" in err
    assert "broken.toml" in err and "(at line 2, column 7)" in err
    assert "Traceback" not in err


# -- the chart's title: the table's last price, and what is drawn -----------------------------


def _last_cell(app) -> str:
    table = app.query_one(SymbolsTable)
    keys = [column.key.value for column in table.ordered_columns]
    return table.get_row(app.symbol)[keys.index("last")].plain


async def test_the_chart_title_says_the_tables_last_price_without_replotting(make_session):
    """QA: while running, the title's price (from the chart's snapshot) lagged the table's
    ``Last`` (the panes follow at their own cadence). Here the tables follow a newer
    snapshot than the chart, as they do at max speed."""
    session = make_session("demo")
    drive(session, 30)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        chart = app.query_one(PriceChart)
        assert price(last_price(session.snapshot(), app.symbol)) in str(chart.border_title)
        before = str(chart.border_title)
        replots = chart.replots
        # The app's own polls must not show the newer snapshot first (they did, once, on
        # a loaded machine: the chart then followed it too).
        assert app.poll_timer is not None
        app.poll_timer.pause()
        session.step(7)
        assert await asyncio.to_thread(session.wait_idle, 20)
        newer = session.snapshot()
        assert last_price(newer, app.symbol) != last_price(app.latest, app.symbol)
        assert app._show_pane("tables", newer, force=False)
        await pilot.pause()
        title = str(chart.border_title)
        assert title != before
        assert title.endswith(f"  {_last_cell(app)}")
        assert chart.replots == replots  # the title only, not the drawing


async def test_candles_asked_for_at_a_wide_window_say_a_line_is_drawn_and_how_to_zoom(
    make_session,
):
    session = make_session("demo", backtest={"start_date": DAY, "end_date": DAY})
    drive(session, 200)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        chart = app.query_one(PriceChart)
        await pilot.press("c")
        assert chart.candles
        assert " close (candles: zoom in with ])  " in str(chart.border_title)
        for _ in range(4):
            await pilot.press("right_square_bracket")
        await pilot.pause()
        title = str(chart.border_title)
        assert " candles  " in title and "close" not in title and "zoom" not in title
        await pilot.press("c")
        assert " 1m close  " in str(chart.border_title)


# -- a finished run's footer offers no engine controls ------------------------------------


def _footer_keys(app) -> set[str]:
    return {key.key for key in app.screen.query(FooterKey) if not key.has_class("-command-palette")}


CONTROL_KEYS = {"space", "n", "plus", "minus", "m"}


async def test_the_footer_has_no_controls_once_the_run_completed(make_session):
    """QA: it offered ``space Pause`` after the run completed (pressing it said "nothing to
    control")."""
    session = make_session(
        "demo", paused=False, backtest={"start_date": DAY, "end_date": DAY, "clock": "data-driven"}
    )
    run_to_end(session)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        keys = _footer_keys(app)
        assert not keys & CONTROL_KEYS, keys
        assert {"g", "question_mark", "q"} <= keys
        await pilot.press("space")  # its key still says why
        await pilot.pause()
        assert any("nothing to control" in str(n.message) for n in app._notifications)


async def test_the_footer_has_no_controls_once_the_engine_failed():
    session = FakeSession(start_paused=True, fail_at_step=3)
    app = create_app(session, frozen_metrics=True)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            assert CONTROL_KEYS - {"plus", "minus"} <= _footer_keys(app)  # paused: all there
            session.step(3)
            assert await wait_for(lambda: session.snapshot().state == "error")
            await settle(pilot)
            assert not _footer_keys(app) & CONTROL_KEYS
    finally:
        session.stop()


# -- an engine error: the metrics' caption, and the exit status --------------------------------

FAIL_EARLY = [
    "--set", "analysis.entry=tui_analyses:FailAt",
    "--set", "analysis.on_error=stop",
    "--set", "analysis.options.at=3",
    "--set", "backtest.clock=data-driven",
]  # fmt: skip


async def test_the_metrics_caption_says_they_are_as_of_the_error(make_session):
    """QA: it said ``at the last session end`` when the analysis failed in the first
    session (no session ended)."""
    session = make_session(
        "demo",
        paused=False,
        backtest={"clock": "data-driven"},
        analysis={"entry": "tui_analyses:FailAt", "on_error": "stop", "options": {"at": 3}},
    )
    run_to_end(session)
    assert session.snapshot().state == "error"
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.query_one(MetricsPane).border_subtitle == "as of the error"


def _run_until_the_engine_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """The monitor's ``run`` without a screen: it returns once the engine's run ended."""
    monkeypatch.setattr(SessionkitApp, "run", lambda self, *a, **k: self.session.wait(60))


def test_the_monitor_exits_1_after_the_engine_failed(monkeypatch, capsys):
    """QA: it exited 0 after the run ended in an error (``sessionkit run`` exits 1)."""
    _run_until_the_engine_ends(monkeypatch)
    assert cli.main(["demo", *FAIL_EARLY]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_the_monitor_exits_0_after_the_run_completed(monkeypatch):
    _run_until_the_engine_ends(monkeypatch)
    window = ["--start", DAY, "--end", DAY, "--set", "backtest.clock=data-driven"]
    assert cli.main(["demo", *window]) == 0


def test_the_console_script_leaves_the_engine_to_the_system_at_exit() -> None:
    """QA: quitting the monitor after a 300-symbol run took 4-5 s, the interpreter's last
    collection examining every object the engine left (0.4 s once frozen). The console
    script freezes them as it ends; ``main(argv)`` called by a program (a test) does not."""
    import subprocess
    import sys

    script = (
        "import gc, sys\n"
        "from sessionkit.tui.cli import main\n"
        "sys.argv = ['sessionkit-tui', 'demo', '--speed', '0']\n"  # exit 2, before the screen
        "status = main()\n"
        "print(status, gc.get_freeze_count() > 0)\n"
        "gc.unfreeze()\n"
        "status = main(['demo', '--speed', '0'])\n"
        "print(status, gc.get_freeze_count() > 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "True", "2", "False"], result.stdout + result.stderr
