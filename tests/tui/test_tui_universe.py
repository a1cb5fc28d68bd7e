"""A 500-symbol universe in the monitor: sorting, filtering, and a selection that follows
the symbol. The engine is driven to a fixed point (paused, stepped, idle) before the app
starts, so every assertion is about a screen that no longer changes."""

from __future__ import annotations

import pytest
from sessionkit.tui.format import price as format_price
from sessionkit.tui.widgets.symbols_table import SymbolsTable
from tui_helpers import SNAPSHOT_SIZES, drive, settle, snapshot_app, wait_for
from universe import symbol_names

STEPS = 120
"""Instants stepped (09:30 -> 11:30): some symbols have had their missing bars by then."""


@pytest.fixture
def universe(universe_session):
    # 500 symbols load in a few seconds; the bound only catches a hang on a loaded machine.
    drive(universe_session, STEPS, timeout=180)
    return universe_session


async def test_sort_cycles_and_header_click_and_selection_follows(universe):
    app = snapshot_app(universe)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(SymbolsTable)
        assert table.row_count == 500
        assert table.shown == symbol_names(500)
        await pilot.press("down", "down", "down")
        assert app.symbol == "S003"
        # s: the next column (the 1m bar count), then 5m, then Last ...
        await pilot.press("s")
        assert table.sort_key == "1m"
        await pilot.press("s", "s")
        assert table.sort_key == "last"
        await settle(pilot)
        snapshot = universe.snapshot()
        prices = {s: snapshot.series[s, "1m"].last_bar.close for s in table.shown}
        assert list(prices.values()) == sorted(prices.values())
        # The selection stayed on its symbol, wherever the row went.
        assert app.symbol == "S003"
        assert table.get_row_at(table.cursor_row)[0].plain == "S003"
        # A click on the Gap header sorts by gaps; a second click reverses.
        before = 0
        for key, column in table.columns.items():
            if key.value == "gaps":
                break
            before += column.get_render_width(table)
        await pilot.click(SymbolsTable, offset=(1 + before + 1, 1))  # border, then the header
        await settle(pilot)
        column = table.sort_key
        assert column == "gaps", column
        gaps = [snapshot.series[s, "1m"].gaps for s in table.shown]
        assert gaps == sorted(gaps)
        table.sort_by("gaps")
        await settle(pilot)
        gaps = [snapshot.series[s, "1m"].gaps for s in table.shown]
        assert gaps == sorted(gaps, reverse=True) and gaps[0] > 0
        assert app.symbol == "S003"
        assert "by Gap ▼" in str(table.border_subtitle)


async def test_filter_then_escape_clears(universe):
    app = snapshot_app(universe)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(SymbolsTable)
        await pilot.press("down")
        assert app.symbol == "S001"
        await pilot.press("slash", *"s04")
        await settle(pilot)
        assert table.filter_text == "s04"
        assert table.shown == [f"S04{n}" for n in range(10)]
        # The charted symbol is filtered out: the first match is charted.
        assert app.symbol == "S040"
        assert "/s04 10 of 500" in str(table.border_subtitle)
        await pilot.press("enter", "down", "down")
        assert app.symbol == "S042"
        await pilot.press("escape")
        await settle(pilot)
        assert table.filter_text == "" and table.row_count == 500
        assert app.symbol == "S042"
        assert table.get_row_at(table.cursor_row)[0].plain == "S042"
        assert app.focused is table


async def test_keys_typed_into_the_filter_are_not_commands(universe):
    app = snapshot_app(universe)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"s1q")
        await settle(pilot)
        assert app.is_running
        table = app.query_one(SymbolsTable)
        assert table.filter_text == "s1q" and table.shown == []
        assert table.sort_key == "symbol"


@pytest.mark.parametrize("size", SNAPSHOT_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_universe_sorted_by_gaps(snap_compare, universe, size):
    """500 symbols, sorted by gaps (most first), after two hours of the session."""
    app = snapshot_app(universe)

    async def sort(pilot):
        await settle(pilot)
        table = app.query_one(SymbolsTable)
        table.sort_by("gaps")
        table.sort_by("gaps")
        await settle(pilot)
        assert await wait_for(lambda: table.shown[0] != "S000")

    assert snap_compare(app, terminal_size=size, run_before=sort)


def _last_cell(table: SymbolsTable, symbol: str) -> str:
    column = [key.value for key in table.columns].index("last")
    return str(table.get_row(symbol)[column])


async def test_a_new_order_while_scrolled_down_keeps_the_monitor_alive(universe):
    """QA: scrolled down, a sort whose order changed as the run went on ended the monitor
    with ``CellDoesNotExist``: laying the rows out again scrolled to the top, which filled
    the rows in view of the old order, just removed."""
    app = snapshot_app(universe)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(SymbolsTable)
        await pilot.press("pagedown", "pagedown")
        await settle(pilot)
        assert table.scroll_y > 0
        table.sort_by("last")  # an order that changes with every instant
        await settle(pilot)
        top = table.shown[0]
        universe.step(30)
        assert universe.wait_idle(60)
        # Every symbol's figures at once (the poll reads the rows in view), so that the
        # order changes with the rows at the top of the old one out of date.
        table.show(universe.snapshot())
        await settle(pilot)
        assert app.is_running and table.row_count == 500 and table.sort_key == "last"
        assert table.shown[0] != top or table.scroll_y == 0


async def test_rows_in_view_with_older_figures_are_read_again(universe):
    """QA: paused, after a step, rows scrolled into view kept the figures they had when
    last in view (the first load's): the poll reads the rows in view, and a row it did not
    hold was asked for only if it had never been filled. A row in view whose figures are
    older than the snapshot is asked for now."""
    app = snapshot_app(universe)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(SymbolsTable)
        first = table.shown[0]
        universe.step(30)
        assert universe.wait_idle(60)
        # A newer snapshot that holds other rows only (as after scrolling back while
        # paused: the last poll read the rows then in view).
        others = tuple(table.shown[100:140])
        table._asked = False
        table.show(universe.snapshot(symbols=others))
        assert first in table._on_screen()
        assert table._asked, "a row in view with older figures was not asked for"
        await settle(pilot)  # the app reads the rows in view
        price = universe.snapshot(symbols=(first,)).series[first, "1m"].last_bar.close
        assert _last_cell(table, first) == format_price(price)
