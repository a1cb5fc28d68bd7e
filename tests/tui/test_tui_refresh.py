"""What keeps the monitor light while the engine runs: the pane cadence (one group a poll at
max speed), snapshots of only the symbols shown, charts drawn from plotext's matrix, and
logs that grow without laying the screen out. The speed itself is measured in
``tests/benchmarks/test_bench_tui.py``; these tests pin the behaviours it relies on."""

from __future__ import annotations

import pytest
from rich.text import Text
from sessionkit.tui.refresh import CADENCE, PANES, PaneSchedule
from sessionkit.tui.widgets.chart_base import matrix_content
from sessionkit.tui.widgets.event_log import EventLog
from sessionkit.tui.widgets.symbols_table import SymbolsTable
from textual.app import App, ComposeResult
from textual.content import Content
from textual_plotext.plot import Plot
from tui_helpers import drive, settle, snapshot_app, wait_for

# -- the pane cadence ---------------------------------------------------------------------


def test_busy_polls_show_one_group_at_a_time_the_longest_waiting_first():
    schedule = PaneSchedule()
    schedule.mark_stale()
    assert schedule.due(0.0, busy=True) == list(PANES)  # none shown yet: in order
    assert schedule.next_due(0.0, busy=True) == ["tables"]
    schedule.shown("tables", 0.0)
    assert schedule.next_due(0.1, busy=True) == ["logs"]
    schedule.shown("logs", 0.1)
    schedule.shown("charts", 0.2)
    period = CADENCE["busy"]["tables"]
    schedule.mark_stale()
    assert schedule.due(0.5, busy=True) == []  # within the period
    assert schedule.due(period + 0.05, busy=True) == ["tables"]
    assert schedule.due(period + 0.25, busy=True) == ["tables", "logs", "charts"]
    schedule.shown("tables", period + 0.25)
    assert schedule.next_due(period + 0.3, busy=True) == ["logs"]


def test_normal_cadence_shows_every_due_group_and_force_shows_all():
    schedule = PaneSchedule()
    schedule.mark_stale()
    for pane in PANES:
        schedule.shown(pane, 0.0)
    schedule.mark_stale()
    assert schedule.due(0.1, busy=False) == ["tables", "logs"]  # charts: 0.25 s
    assert schedule.next_due(0.1, busy=False) == ["tables", "logs"]
    assert schedule.due(0.1, busy=False, force=True) == list(PANES)
    schedule.shown("tables", 0.1)
    assert schedule.due(0.1, busy=False, force=True) == ["logs", "charts"]


def test_expedite_makes_a_group_due_now():
    schedule = PaneSchedule()
    for pane in PANES:
        schedule.shown(pane, 10.0)
    schedule.expedite("tables")
    assert schedule.stale == {"tables"}
    assert schedule.due(10.01, busy=True) == ["tables"]
    assert schedule.next_due(10.01, busy=True) == ["tables"]


# -- the symbols table reads only what it shows ----------------------------------------------


@pytest.fixture
def universe(universe_session):
    drive(universe_session, 30, timeout=180)
    return universe_session


async def test_the_table_asks_for_the_rows_in_view_only(universe):
    app = snapshot_app(universe)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(SymbolsTable)
        needed = table.symbols_needed()
        assert needed is not None and 5 <= len(needed) <= 20  # the rows in view, not 500
        assert needed[0] == "S000" and app.symbol in needed
        table.sort_by("gaps")  # the order needs every symbol's figures
        assert table.symbols_needed() is None


async def test_rows_without_figures_coming_into_view_are_read(universe):
    app = snapshot_app(universe)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(SymbolsTable)
        # What a poll at max speed hands the table: the rows in view only.
        table.show(universe.snapshot(symbols=table.symbols_needed()))
        await pilot.pause()
        polls = app.polls
        await pilot.press("slash", *"s45")  # rows not in that snapshot, laid out blank
        snapshot = universe.snapshot()

        def filled() -> bool:
            cells = [table.get_row(symbol) for symbol in table.shown]
            return all(str(cell).strip() for row in cells for cell in row)

        assert await wait_for(filled)
        assert table.shown == [f"S45{n}" for n in range(10)]
        for symbol in table.shown:
            last = snapshot.series[symbol, "1m"].last_bar.close
            assert table.get_row(symbol)[3].plain == f"{last:,.2f}"
        assert app.polls == polls  # the engine is paused: the table read, nothing new


# -- charts: plotext's matrix, without the ANSI round trip ------------------------------------


@pytest.mark.parametrize("theme", ["dark", "clear", "matrix"])
def test_matrix_content_equals_the_parsed_ansi_text(theme):
    plot = Plot()
    plot.plotsize(50, 14)
    plot.theme(theme)
    plot.plot([1, 2, 3, 4, 5, 6], [3, 1, 4, 1, 5, 9], color=(250, 120, 30), marker="braille")
    plot.scatter([2, 4], [2, 2], marker="▲", color="red+", style="bold")
    plot.hline(4, "blue")
    plot.title("prices")
    plot._set_sizes()
    plot._build_matrix()
    fast = matrix_content(plot.monitor.matrix, {})
    slow = Content.from_rich_text(Text.from_ansi(plot.monitor.matrix.set_canvas()))
    assert fast.plain == slow.plain
    assert list(fast.render_segments()) == list(slow.render_segments())


# -- logs grow without laying the screen out -----------------------------------------------


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        log = EventLog()
        log.styles.height = 8
        yield log


async def test_a_growing_log_scrolls_and_moves_its_scrollbar_without_a_layout():
    app = LogApp()
    async with app.run_test(size=(60, 12)) as pilot:
        log = app.query_one(EventLog)
        for n in range(30):
            log.note(f"line {n}")
            await pilot.pause()
        assert log.show_vertical_scrollbar
        layouts = 0
        refresh_layout = app.screen._refresh_layout

        def counted(*args, **kwargs):
            nonlocal layouts
            layouts += 1
            return refresh_layout(*args, **kwargs)

        app.screen._refresh_layout = counted  # type: ignore[method-assign]
        for n in range(30, 60):
            log.note(f"line {n}")
            await pilot.pause()
        assert layouts == 0
        assert log.virtual_size.height == len(log.lines) == 60
        assert log.vertical_scrollbar.window_virtual_size == 60
        assert log.scroll_y == log.max_scroll_y > 0  # it follows the newest line
