"""Going to a date (``g`` and the palette): the date is checked against the run's calendar,
and the engine restarts at that session with its warm-up, keeping config, speed and pause.
"""

from __future__ import annotations

from datetime import date

import pytest
from sessionkit.tui.screens.seek import SeekScreen
from sessionkit.tui.seek import resolve
from sessionkit.tui.widgets.status_bar import StatusBar
from textual.widgets import Input, Static
from tui_helpers import SNAPSHOT_SIZES, drive, settle, snapshot_app, wait_for

SESSIONS = (date(2024, 11, 26), date(2024, 11, 27), date(2024, 11, 29), date(2024, 12, 2))


def test_resolve_against_the_calendar():
    exact = resolve("2024-11-27", SESSIONS)
    assert exact.day == date(2024, 11, 27) and exact.exact
    holiday = resolve("2024-11-28", SESSIONS)
    assert holiday.day == date(2024, 11, 29) and not holiday.exact
    assert "not a trading day; the next is 2024-11-29 (session 3/4)" in holiday.message
    weekend = resolve(" 2024-11-30 ", SESSIONS)
    assert weekend.day == date(2024, 12, 2)
    outside = resolve("2024-12-03", SESSIONS)
    assert outside.day is None and "outside this run (2024-11-26 to 2024-12-02)" in outside.message
    assert resolve("tomorrow", SESSIONS).day is None


async def test_g_goes_to_the_next_trading_day_keeping_speed_and_pause(make_session):
    session = make_session("demo")
    drive(session, 30)
    session.set_speed(600)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("g")
        assert isinstance(app.screen, SeekScreen)
        field = app.screen.query_one(Input)
        field.value = ""
        await pilot.press(*"2024-11-28", "enter")
        await pilot.pause()
        message = str(app.screen.query_one("#seek-message", Static).render())
        assert "2024-11-28 is not a trading day; the next is 2024-11-29" in message
        assert field.value == "2024-11-29"
        await pilot.press("enter")
        assert await wait_for(
            lambda: (
                app.latest is not None
                and app.latest.session_date == date(2024, 11, 29)
                and app.latest.state == "paused"
            ),
            20,
        )
        new = app.session
        assert new is not session and session.finished
        snapshot = new.snapshot()
        assert snapshot.session_index == snapshot.sessions.index(date(2024, 11, 29)) + 1
        assert snapshot.clock == "clock-driven" and snapshot.speed == 600
        assert snapshot.series["ACME", "1m"].history_count > 0  # warm-up loaded
        assert snapshot.indicators["ACME"]["sma_20"] is not None
        await settle(pilot)
        assert app.query_one(StatusBar).line.date == "2024-11-29"
        # The new session runs like the first: step it.
        await pilot.press("n")
        assert await wait_for(lambda: new.snapshot().metrics.steps == 1)
        await pilot.press("q")
        assert await wait_for(lambda: not app.is_running, 5)
    assert new.finished and not any(t.is_alive() for t in new._threads)


async def test_escape_cancels_and_bad_dates_are_refused(make_session):
    session = make_session("demo")
    drive(session)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("g")
        app.screen.query_one(Input).value = "2025-01-02"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SeekScreen)
        assert "outside this run" in str(app.screen.query_one("#seek-message", Static).render())
        await pilot.press("escape")
        assert not isinstance(app.screen, SeekScreen)
        assert app.session is session


async def test_palette_go_to_date(make_session):
    session = make_session("demo")
    drive(session)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert "Go to date" in [title for title, _, _ in app.palette_commands()]
        callback = next(cb for title, _, cb in app.palette_commands() if title == "Go to date")
        callback()
        await pilot.pause()
        assert isinstance(app.screen, SeekScreen)


@pytest.mark.parametrize("size", SNAPSHOT_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_seek_prompt(snap_compare, make_session, size):
    """The go-to-date prompt after a holiday was typed: the next trading day is offered."""
    session = make_session("demo")
    drive(session)
    app = snapshot_app(session)

    async def prompt(pilot):
        await settle(pilot)
        await pilot.press("g")
        app.screen.query_one(Input).value = "2024-11-28"
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=prompt)
