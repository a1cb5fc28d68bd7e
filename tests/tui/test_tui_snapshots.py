"""Snapshot tests of the monitor (pytest-textual-snapshot), at 120x40 and 80x24.

Each test drives a real session on the bundled sample data to a fixed point (paused and
idle, or finished) *before* the app starts, and the app renders wall-clock figures frozen,
so every frame is the same on every run. Accept changed snapshots with
``pytest tests/tui --snapshot-update`` only after looking at them.
"""

from __future__ import annotations

from datetime import date

import pytest
from tui_helpers import EARLY_CLOSE, SNAPSHOT_SIZES, drive, run_to_end, settle, snapshot_app

STEPS = 60
"""Instants stepped for the 'stepped' snapshots (09:30 -> 10:30)."""

STEPPED_DAY = date(2024, 11, 26)
"""No gap before 13:00 that day: the data-quality thread logs gaps asynchronously (its
lines' order and simulated-time stamps depend on thread timing), so the stepped frames
avoid them."""


@pytest.mark.parametrize("size", SNAPSHOT_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_paused_at_start(snap_compare, make_session, size):
    """The demo, paused right after its first session loaded: history only, no bar yet."""
    session = make_session("demo")
    drive(session)
    app = snapshot_app(session)
    assert snap_compare(app, terminal_size=size, run_before=settle)
    assert session.snapshot().state == "paused"


@pytest.mark.parametrize("theme", ["dark", "light", "high-contrast"])
@pytest.mark.parametrize("size", SNAPSHOT_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_after_stepping(snap_compare, make_session, size, theme):
    """The demo after 60 steps, in each bundled theme (charts follow the theme's colours)."""
    session = make_session("demo", backtest={"start_date": STEPPED_DAY})
    drive(session, STEPS)
    app = snapshot_app(session, theme=theme)
    assert snap_compare(app, terminal_size=size, run_before=settle)
    assert session.snapshot().metrics.steps == STEPS


@pytest.mark.parametrize("size", SNAPSHOT_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_end_of_early_close_session(snap_compare, make_session, size):
    """2024-11-29 closes at 13:00: the whole session replayed, the chart ends at 13:00."""
    session = make_session(
        "demo",
        paused=False,
        backtest={"start_date": EARLY_CLOSE, "end_date": EARLY_CLOSE, "clock": "data-driven"},
    )
    run_to_end(session)
    snapshot = session.snapshot()
    assert snapshot.state == "completed"
    assert snapshot.early_close
    app = snapshot_app(session)
    assert snap_compare(app, terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SNAPSHOT_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_screen(snap_compare, make_session, size):
    """The help screen over the paused demo."""
    session = make_session("demo")
    drive(session)
    app = snapshot_app(session)

    async def open_help(pilot):
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=open_help)


@pytest.mark.parametrize("size", SNAPSHOT_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_engine_error(snap_compare, make_session, size):
    """An analysis that raises with on_error = "stop": notification, status bar and log."""
    session = make_session(
        "demo",
        paused=False,
        backtest={"clock": "data-driven"},
        analysis={"entry": "tui_analyses:FailAt", "on_error": "stop", "options": {"at": 3}},
    )
    run_to_end(session)
    snapshot = session.snapshot()
    assert snapshot.state == "error"
    assert "deliberate failure" in (snapshot.error or "")
    app = snapshot_app(session)
    assert snap_compare(app, terminal_size=size, run_before=settle)
