"""The diagnostics screen (``d``): busy and waiting time per engine thread."""

from __future__ import annotations

import pytest
from rich.console import Console
from sessionkit.tui import format as fmt
from sessionkit.tui.screens.diagnostics import (
    COORDINATOR,
    DiagnosticsScreen,
    diagnostics_renderable,
    thread_time,
)
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
        time = thread_time(stats)
        assert stats.name in text
        assert f"{time.work:,.3f} s" in text
        assert f"{time.waiting:,.3f} s" in text
        assert f" {stats.messages} " in text
    assert f"{snapshot.metrics.steps:,}" in text
    frozen = text_of(diagnostics_renderable(snapshot, fmt.FrozenFigures()))
    assert "#.### s" in frozen and "████" not in frozen


@pytest.mark.parametrize("clock", ["data-driven", "clock-driven"])
def test_inline_time_is_part_of_the_work_on_every_row(make_session, clock):
    """Data-driven, the coordinator runs the processor and the analysis on its thread: its
    inline time is theirs, and its work counts it (the engine's coordinator busy time does
    not); a stage's own thread was busy only for its work not run inline."""
    backtest = {"clock": clock, "start_date": "2024-11-25", "end_date": "2024-11-25"}
    if clock == "clock-driven":
        backtest["speed"] = 100000.0
    session = make_session("demo", paused=False, backtest=backtest)
    session.start()
    assert session.wait(60)
    threads = {stats.name: stats for stats in session.snapshot().metrics.threads}
    times = {name: thread_time(stats) for name, stats in threads.items()}
    for name, time in times.items():
        assert 0.0 <= time.inline <= time.work, name
        assert time.own + time.hosted <= time.work + 1e-9, name
        assert time.busy_share is not None and 0.0 <= time.busy_share <= 100.0, name
    coordinator = times[COORDINATOR]
    stages = [times[n] for n in threads if n != COORDINATOR]
    hosted = sum(stage.inline for stage in stages)
    assert coordinator.hosted == coordinator.inline == pytest.approx(hosted, abs=1e-6)
    assert coordinator.work == pytest.approx(
        threads[COORDINATOR].busy_seconds + threads[COORDINATOR].inline_seconds
    )
    if clock == "data-driven":
        processor = times["data_processor"]
        assert processor.inline == processor.work > 0.0
        assert processor.own == 0.0  # its own thread only waited
        assert coordinator.inline > threads[COORDINATOR].busy_seconds  # what looked wrong
    else:
        assert coordinator.inline == 0.0 and all(stage.inline == 0.0 for stage in stages)


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


def test_the_kinds_of_analysis_errors_are_listed(make_session):
    """Each kind the analysis raised, with its count and the user's line (pipeline tests'
    ``Misuser``: three kinds on alternate steps); none listed without errors."""
    session = make_session(
        "demo",
        paused=False,
        backtest={"start_date": "2024-12-02", "end_date": "2024-12-02", "clock": "data-driven"},
        analysis={"entry": "pipeline_analyses:Misuser"},
    )
    session.start()
    assert session.wait(60)
    snapshot = session.snapshot()
    text = text_of(diagnostics_renderable(snapshot, fmt.Figures()))
    assert "Analysis errors" in text
    for kind in snapshot.metrics.analysis_error_kinds:
        row = next(line for line in text.splitlines() if kind.where in line)
        assert f"{kind.count:,}" in row and f"on_{kind.hook}" in row, row
        assert kind.error[:30] in row, row
    assert "12-02 09:31" in text  # the first one's instant, in the exchange's zone
    quiet = make_session("demo")
    drive(quiet, 5)
    assert "Analysis errors" not in text_of(diagnostics_renderable(quiet.snapshot(), fmt.Figures()))


@pytest.mark.parametrize("width", [74, 70])
def test_a_narrow_panel_shrinks_the_bars_not_the_thread_names(make_session, width):
    """QA: at 80x24 (74 cells of content) the names were cut (``session_coo…``) and the
    bars kept their 16 cells."""
    session = make_session("demo")
    drive(session, 30)
    snapshot = session.snapshot()
    console = Console(width=width, record=True, color_system=None)
    console.print(diagnostics_renderable(snapshot, fmt.Figures()))
    lines = console.export_text().splitlines()
    for stats in snapshot.metrics.threads:
        row = next(line for line in lines if line.startswith(f" {stats.name} "))
        assert "…" not in row
        bar = row.rstrip().rsplit("  ", 1)[-1]
        assert 1 <= len(bar) < 16 and set(bar) <= set("█▓░")
        assert len(row.rstrip()) <= width
    wide = text_of(diagnostics_renderable(snapshot, fmt.Figures()))
    row = next(line for line in wide.splitlines() if line.startswith(" data_processor "))
    assert len(row.rstrip().rsplit("  ", 1)[-1]) == 16  # room enough: the whole bar
