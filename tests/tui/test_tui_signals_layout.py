"""The signals pane in narrow terminals (QA): its compact rows always show the time, the
symbol (cut at 10 characters), the side and the whole price, only the message is cut, or
the pane gives way to the events; and the layout is the same for the same terminal size
whatever sizes the terminal had before.

QA's cases: with ``VERYLONGSYMBOLNAME``, ``BRK/B`` and ``X`` at 80 columns no row showed a
price (``10:30 X          ▲  …``); at 99 columns the long symbol was written whole, so the
columns did not line up; at 70x20, then 30x8, then 70x24 the pane came back 11 columns wide
(a fresh start at 70x24 hides it).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fake_session import FakeSession
from sessionkit.engine.pipeline.snapshot import AnalysisSignal
from sessionkit.tui.widgets.event_log import EventLog
from sessionkit.tui.widgets.signals_log import SYMBOL_MAX, SignalsLog
from textual.app import App, ComposeResult
from tui_helpers import drive, settle, snapshot_app, wait_for

LONG = ("VERYLONGSYMBOLNAME", "BRK/B", "X")
PRICES = {"VERYLONGSYMBOLNAME": 141.53, "BRK/B": 38.04, "X": 85.5}
MESSAGE = "SMA5 above SMA20"
MARKS = {"buy": "▲", "sell": "▼"}


class SignallingSession(FakeSession):
    """The fake engine, with a signal of every symbol every third minute (buy and sell in
    turn, each symbol at about its QA price)."""

    def _advance(self) -> bool:
        going = super()._advance()
        if self._minute % 3 == 0:
            now = self._sim_time
            assert now is not None
            for k, symbol in enumerate(self.symbols):
                kind = ("buy", "sell")[(self._minute // 3 + k) % 2]
                price = PRICES.get(symbol, 50.0) + self._minute / 100
                signal = AnalysisSignal(
                    now, symbol, kind, price, MESSAGE, now - timedelta(minutes=1)
                )
                self._signals.append(signal)
            self._bump()
        return going


def shown_symbol(symbol: str) -> str:
    return symbol if len(symbol) <= SYMBOL_MAX else symbol[: SYMBOL_MAX - 1] + "…"


def check_rows(signals: SignalsLog, expected: list[AnalysisSignal], *, compact: bool) -> None:
    """Every row has its time, symbol (cut at 10), side and whole price, in columns that
    line up; only the message may be cut (or left out)."""
    rows = [line.text.rstrip() for line in signals.lines]
    assert rows, "no rows"
    room = signals.scrollable_content_region.width
    expected = expected[-len(rows) :]
    digits = max(len(f"{signal.price:,.2f}") for signal in expected)
    ends = set()
    for row, signal in zip(rows, expected, strict=True):
        assert len(row) <= room, row
        symbol = shown_symbol(signal.symbol)
        side = MARKS[signal.kind] if compact else f"{signal.kind:<4}"
        price = f"{signal.price:>{max(digits, 0 if compact else 8)},.2f}"
        head = re.escape(f" {symbol}") + r" +" + re.escape(f"{side} {price}")
        match = re.search(head, row)
        assert match and match.start() == (5 if compact else 11), (row, head)
        ends.add(match.end())
        rest = row[match.end() :]
        assert rest == "" or f"  {signal.message}".startswith(rest.removesuffix("…")), row
    assert len(ends) == 1, rows  # the prices end in one column: the messages line up


@pytest.mark.parametrize("width", [70, 75, 80, 85, 90, 95, 99])
async def test_compact_rows_show_the_whole_price_or_give_way(width):
    """Under 100 columns the pane shows only rows with the time, the symbol (cut at 10
    with …), the side and the whole price; where they do not fit beside the symbols table
    the pane is hidden and the events list the signals (QA: ``10:30 X          ▲  …`` at
    80 columns; at 99 the long symbol written whole misaligned the columns)."""
    session = SignallingSession(symbols=LONG, start_paused=True)
    drive(session, 40)
    app = snapshot_app(session)
    try:
        async with app.run_test(size=(width, 24)) as pilot:
            await settle(pilot)
            signals = app.query_one(SignalsLog)
            log = app.query_one(EventLog)
            expected = list(session.snapshot().signals)
            room = width - app.query_one("#symbols").outer_size.width
            if signals.display:
                assert signals.region.width == room
                assert await wait_for(lambda: len(signals.lines) > 0)
                check_rows(signals, expected, compact=True)
                assert log.hide_signals  # listed once
            else:
                assert not log.hide_signals  # the events list them
            # Shown where the rows fit: 3 (borders, scrollbar) + the time 5 + the symbol 10
            # + the mark 1 + a price of 6, with their 4 spaces.
            assert signals.display == (room >= 3 + 5 + 10 + 1 + 6 + 4), (width, room)
            if width in (80, 99):  # QA's
                assert signals.display == (width == 99)
    finally:
        session.stop()


async def test_full_rows_cut_long_symbols_too():
    """Wide: the full rows cut a long symbol at 10 characters, so that the kinds, prices
    and messages of all rows line up."""
    session = SignallingSession(symbols=LONG, start_paused=True)
    drive(session, 40)
    app = snapshot_app(session)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            signals = app.query_one(SignalsLog)
            assert await wait_for(lambda: len(signals.lines) > 0)
            check_rows(signals, list(session.snapshot().signals), compact=False)
    finally:
        session.stop()


def layout(app) -> dict[str, tuple[bool, object]]:
    """Which panes show, and where."""
    panes = ("symbols", "signals", "price", "log")
    return {
        name: (pane.display, pane.region if pane.display else None)
        for name in panes
        for pane in [app.query_one(f"#{name}")]
    } | {"events list the signals": not app.query_one(EventLog).hide_signals}


@pytest.mark.parametrize("symbols", [("AAA", "BBB", "CCC"), LONG], ids=["short", "long"])
async def test_the_layout_does_not_depend_on_the_resize_history(symbols):
    """The same final size gives the same layout, whether the app started at it or came
    to it from a tiny or a wide terminal (QA: 70x20, 30x8, 70x24 showed an 11-column
    signals pane that a fresh start at 70x24 hides)."""
    finals = [(70, 24), (80, 24), (90, 24)]
    fresh = {}
    for size in finals:
        session = SignallingSession(symbols=symbols, start_paused=True)
        drive(session, 40)
        app = snapshot_app(session)
        try:
            async with app.run_test(size=size) as pilot:
                await settle(pilot)
                fresh[size] = layout(app)
        finally:
            session.stop()
    session = SignallingSession(symbols=symbols, start_paused=True)
    drive(session, 40)
    app = snapshot_app(session)
    try:
        async with app.run_test(size=(70, 20)) as pilot:
            await settle(pilot)
            for before in [(30, 8), (120, 40), (69, 24)]:
                for size in finals:
                    await pilot.resize_terminal(*before)
                    await settle(pilot)
                    await pilot.resize_terminal(*size)
                    await settle(pilot)
                    assert layout(app) == fresh[size], (before, size)
    finally:
        session.stop()


async def test_the_filter_beside_the_signals_leaves_room_for_their_rows():
    """In a narrow layout the filter (14 columns) sits beside the symbols and the signals:
    the pane gives way while the signals' rows do not fit, and comes back after."""
    session = SignallingSession(symbols=LONG, start_paused=True)
    drive(session, 40)
    app = snapshot_app(session)
    try:
        async with app.run_test(size=(90, 24)) as pilot:
            await settle(pilot)
            signals = app.query_one(SignalsLog)
            assert signals.display
            await pilot.press("slash")
            await settle(pilot)
            assert app.query_one("#filter").display
            assert not signals.display
            assert not app.query_one(EventLog).hide_signals
            await pilot.press("escape")
            await settle(pilot)
            assert signals.display
            assert await wait_for(lambda: len(signals.lines) > 0)
            check_rows(signals, list(session.snapshot().signals), compact=True)
    finally:
        session.stop()


class SignalsApp(App[None]):
    """A signals pane alone, ``width`` cells wide (borders included)."""

    CSS = "SignalsLog { border: round white; }"

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width

    def compose(self) -> ComposeResult:
        yield SignalsLog(id="signals")

    def on_mount(self) -> None:
        self.query_one(SignalsLog).styles.width = self.width


def signal(minute: int, symbol: str, kind: str, price: float) -> AnalysisSignal:
    return AnalysisSignal(
        datetime(2024, 11, 27, 15, minute, tzinfo=UTC), symbol, kind, price, MESSAGE
    )


async def test_the_pane_says_the_room_its_rows_need():
    """``row_cells``: the time, the symbol column (the run's longest, at most 10), the mark
    and the price (at least 6 cells) with their spaces; ``fits`` adds the borders and the
    scrollbar's gutter."""
    app = SignalsApp(40)
    async with app.run_test(size=(80, 10)) as pilot:
        signals = app.query_one(SignalsLog)
        signals.narrow = True
        await pilot.pause()
        assert signals.row_cells == 5 + 1 + 5 + 1 + 1 + 1 + 6
        items = (signal(0, "BRK/B", "buy", 38.04), signal(1, "X", "sell", 85.5))
        signals.show(items, "America/New_York", symbols=("BRK/B", "X"))
        assert signals.row_cells == 20
        items = (*items, signal(2, "VERYLONGSYMBOLNAME", "sell", 1141.53))
        signals.show(items, "America/New_York", symbols=LONG)
        assert signals.row_cells == 5 + 1 + 10 + 1 + 1 + 1 + len("1,141.53")
        assert signals.row_cells == 27
        assert signals.fits(3 + 27) and not signals.fits(3 + 26)  # borders, scrollbar
        await pilot.pause()
        rows = [line.text.rstrip() for line in signals.lines]
        assert rows[-1].startswith("10:02 VERYLONGS… ▼ 1,141.53  SMA5"), rows
        assert rows[0].startswith("10:00 BRK/B      ▲    38.04  SMA5"), rows
