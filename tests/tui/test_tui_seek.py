"""Going to a date (``g`` and the palette): the date is checked against the run's calendar,
and the engine restarts at that session with its warm-up, keeping config, speed and pause.
"""

from __future__ import annotations

from datetime import date

import pytest
from sessionkit.engine.pipeline.snapshot import Snapshot
from sessionkit.tui.app import replayed
from sessionkit.tui.screens.seek import SeekScreen
from sessionkit.tui.seek import resolve
from sessionkit.tui.widgets.price_chart import PriceChart
from sessionkit.tui.widgets.status_bar import StatusBar
from textual import events
from textual.keys import _character_to_key
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
    typing = resolve("2024-12-0", SESSIONS)
    assert typing.day is None and typing.partial  # not a mistake yet
    assert not resolve("2024-1x", SESSIONS).partial
    assert not resolve("2024-02-30", SESSIONS).partial


async def test_the_hint_follows_the_input_as_it_is_typed(make_session):
    session = make_session("demo")
    drive(session)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("g")
        assert isinstance(app.screen, SeekScreen)
        field = app.screen.query_one(Input)
        hint = app.screen.query_one("#seek-message", Static)

        async def typed(text: str) -> tuple[str, bool]:
            field.value = ""
            await pilot.press(*text)
            await pilot.pause()
            return str(hint.render()), hint.has_class("-error")

        assert await typed("2024-12-26") == ("go to 2024-12-26 (session 22/25)", False)
        assert await typed("hello") == ("'hello' is not a date: type YYYY-MM-DD", True)
        assert await typed("2024-02-30") == ("'2024-02-30' is not a date: type YYYY-MM-DD", True)
        assert await typed("2024-12-1") == ("type the date: YYYY-MM-DD", False)
        await pilot.press("5")
        await pilot.pause()
        assert str(hint.render()).startswith("2024-12-15 is not a trading day; the next is")
        assert await typed("2025-01-02") == (
            "2025-01-02 is outside this run (2024-11-25 to 2024-12-31)",
            True,
        )
        # enter on a holiday fills in the next session: the hint speaks of that one.
        await typed("2024-12-25")
        await pilot.press("enter")
        await pilot.pause()
        assert field.value == "2024-12-26"
        assert str(hint.render()) == (
            "go to 2024-12-26 (session 22/25), the next trading day after 2024-12-25: "
            "enter to go there"
        )
        assert isinstance(app.screen, SeekScreen)
        field.value = ""
        await pilot.pause()
        assert str(hint.render()) == SeekScreen.HINT


async def test_keys_sent_with_g_reach_the_prompt(make_session):
    """``g2024-12-02`` in one burst (tmux send-keys, a paste): the keys after ``g`` reach
    the monitor before the prompt's input has the focus, and must still be typed there."""
    session = make_session("demo")
    drive(session)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        overlays = app.query_one(PriceChart).hidden
        speed = session.snapshot().speed
        for character in "g2024-12-02":  # posted at once, as the terminal driver does
            app.post_message(events.Key(_character_to_key(character), character))
        await pilot.pause()
        assert isinstance(app.screen, SeekScreen)
        field = app.screen.query_one(Input)
        assert field.value == "2024-12-02"
        assert app.query_one(PriceChart).hidden == overlays  # 2 did not toggle an overlay
        await pilot.press("enter")
        assert await wait_for(
            lambda: app.latest is not None and app.latest.session_date == date(2024, 12, 2), 20
        )
        assert session.snapshot().speed == speed  # - did not slow the engine down


async def test_backtest_complete_counts_the_sessions_since_the_go_to(make_session):
    session = make_session(
        "demo",
        backtest={"start_date": "2024-11-25", "end_date": "2024-11-29", "clock": "data-driven"},
    )
    drive(session)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.latest is not None and app.latest.session_count == 4
        app.seek(date(2024, 11, 27))  # session 3/4, paused as before
        assert await wait_for(
            lambda: (
                app.latest is not None
                and app.latest.session_date == date(2024, 11, 27)
                and app.latest.state == "paused"
            ),
            20,
        )
        await pilot.press("space")
        assert await wait_for(
            lambda: app.latest is not None and app.latest.state == "completed", 30
        )
        assert await wait_for(
            lambda: any("Backtest complete" in str(n.title) for n in app._notifications)
        )
        done = [str(n.message) for n in app._notifications if "Backtest complete" in str(n.title)]
        assert done == ["2 session(s) replayed: sessions 3-4, from 2024-11-27"]


def test_sessions_replayed():
    snapshot = Snapshot(state="completed", session_count=4, sessions=SESSIONS)
    assert replayed(snapshot, None) == "4 session(s) replayed"
    assert replayed(snapshot, SESSIONS[0]) == "4 session(s) replayed"
    assert replayed(snapshot, SESSIONS[3]) == "1 session(s) replayed: session 4, from 2024-12-02"


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
        await pilot.press(*"2024-11-28")
        message = str(app.screen.query_one("#seek-message", Static).render())
        assert "2024-11-28 is not a trading day; the next is 2024-11-29" in message
        await pilot.press("enter")
        await pilot.pause()
        assert field.value == "2024-11-29"
        message = str(app.screen.query_one("#seek-message", Static).render())
        assert message.startswith("go to 2024-11-29 (session 4/25), the next trading day")
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
