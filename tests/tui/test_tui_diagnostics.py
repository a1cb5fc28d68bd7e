"""The diagnostics screen (``d``): busy and waiting time per engine thread."""

from __future__ import annotations

import pytest
from rich.console import Console
from sessionkit.tui import format as fmt
from sessionkit.tui.screens.diagnostics import DiagnosticsScreen, diagnostics_renderable
from tui_helpers import SNAPSHOT_SIZES, drive, settle, snapshot_app


def text_of(renderable) -> str:
    console = Console(width=120, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_every_thread_is_listed_with_its_times(make_session):
    session = make_session("demo")
    drive(session, 60)
    snapshot = session.snapshot()
    assert snapshot.metrics.threads
    text = text_of(diagnostics_renderable(snapshot, fmt.Figures()))
    for stats in snapshot.metrics.threads:
        assert stats.name in text
        assert f"{stats.busy_seconds:,.3f} s" in text
        assert f"{stats.waiting_seconds:,.3f} s" in text
        assert f" {stats.messages} " in text
    assert f"{snapshot.metrics.steps:,}" in text
    frozen = text_of(diagnostics_renderable(snapshot, fmt.FrozenFigures()))
    assert "#.### s" in frozen and "████" not in frozen


async def test_d_opens_and_closes_the_diagnostics(make_session):
    session = make_session("demo")
    drive(session, 10)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, DiagnosticsScreen)
        assert "session_coordinator" in text_of(app.screen.shown)
        await pilot.press("d")
        assert not isinstance(app.screen, DiagnosticsScreen)


@pytest.mark.parametrize("size", SNAPSHOT_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_diagnostics_screen(snap_compare, make_session, size):
    """The diagnostics over the paused demo (wall-clock figures frozen)."""
    session = make_session("demo")
    drive(session, 30)
    app = snapshot_app(session)

    async def open_diagnostics(pilot):
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_diagnostics)
