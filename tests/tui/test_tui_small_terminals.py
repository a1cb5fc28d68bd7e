"""Small terminals: the signals stay readable (compact rows, or listed in the events when
their pane would be too narrow) and the footer keeps ``? Help`` and ``q Quit`` in view.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sessionkit.engine.pipeline.snapshot import AnalysisSignal
from sessionkit.tui.app import FOOTER_DROP_ORDER
from sessionkit.tui.widgets.event_log import EventLog
from sessionkit.tui.widgets.signals_log import MESSAGE_MIN, SignalsLog
from textual.app import App, ComposeResult
from textual.widgets._footer import FooterKey
from tui_helpers import drive, settle, snapshot_app, wait_for

DAY = date(2024, 11, 26)
"""One session: by 10:30 the demo's analysis has bought and sold."""


def footer_keys(app) -> dict[str, FooterKey]:
    """The footer's keys (not the palette's) by key."""
    return {
        key.key: key for key in app.screen.query(FooterKey) if not key.has_class("-command-palette")
    }


def visible(app, key: FooterKey) -> bool:
    """The whole key is on the screen, not under the palette's key (docked right)."""
    region = key.region
    right = app.size.width
    palette = [k for k in app.screen.query(FooterKey) if k.has_class("-command-palette")]
    if palette and not key.has_class("-command-palette"):
        right = min(right, palette[0].region.x)
    return region.width > 0 and region.right <= right


async def test_signals_are_compact_under_100_columns_and_full_when_wide(make_session):
    """Under 100 columns the signals are in compact rows whatever the pane's width (QA:
    between 85 and 99 columns they were full rows cut mid-word), cut with an ellipsis."""
    session = make_session("demo", backtest={"start_date": DAY, "end_date": DAY})
    drive(session, 60)
    app = snapshot_app(session)
    async with app.run_test(size=(80, 24)) as pilot:
        signals = app.query_one(SignalsLog)
        for width in (80, 90, 99):
            await pilot.resize_terminal(width, 24)
            await settle(pilot)
            assert signals.display and signals.region.width >= 20
            assert await wait_for(lambda: len(signals.lines) > 0)
            rows = [line.text.rstrip() for line in signals.lines]
            room = signals.scrollable_content_region.width
            shown = session.snapshot().signals[-len(rows) :]
            # The prices right-aligned (QA: `▲ 24.34  SMA10` and `▲ 224.30  SMA10` started
            # their messages in different columns), and never cut.
            digits = max(len(f"{signal.price:,.2f}") for signal in shown)
            for row, signal in zip(rows, shown, strict=True):
                mark = {"buy": "▲", "sell": "▼"}[signal.kind]
                price = f"{mark} {signal.price:>{digits},.2f}"
                assert f" {signal.symbol} " in row and price in row, (width, row)
                assert len(row) <= room, (width, row)
                whole = row.endswith(f"{price}  {signal.message}")
                cut = row.endswith("…") and len(row) == room
                left_out = row.endswith(price) and len(row) > room - MESSAGE_MIN
                assert whole or cut or left_out, (width, row)
            ends = set()
            for row, signal in zip(rows, shown, strict=True):
                mark = {"buy": "▲", "sell": "▼"}[signal.kind]
                price = f"{mark} {signal.price:>{digits},.2f}"
                ends.add(row.index(price) + len(price))
            assert len(ends) == 1, rows  # the messages start in one column
            assert any(row.endswith("…") for row in rows) == (80 < width < 99), width
        log = app.query_one(EventLog)
        assert not any("signal " in line.text for line in log.lines)  # listed once
        # Wide again: full rows (kind spelt out), written again at the new width.
        await pilot.resize_terminal(120, 40)
        await settle(pilot)
        assert await wait_for(
            lambda: any(" buy " in line.text or " sell " in line.text for line in signals.lines)
        )
        assert not any("▲" in line.text or "▼" in line.text for line in signals.lines)


class SignalsApp(App[None]):
    """A signals pane alone, ``width`` cells wide (borders included)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width

    def compose(self) -> ComposeResult:
        yield SignalsLog(id="signals")

    def on_mount(self) -> None:
        self.query_one(SignalsLog).styles.width = self.width


FX = ("EUR/USD", "SPY", "GBP/JPY", "USD/CAD")
FX_SIGNALS = tuple(
    AnalysisSignal(
        datetime(2024, 11, 26, 15 + k, 0, tzinfo=UTC), symbol, kind, price, "cross of the SMAs"
    )
    for k, (symbol, kind, price) in enumerate(
        [("EUR/USD", "buy", 1.0842), ("SPY", "sell", 601.5), ("GBP/JPY", "sell", 191.23)]
    )
)


@pytest.mark.parametrize("narrow", [False, True], ids=["full", "compact"])
async def test_signal_columns_line_up_with_long_symbols(narrow):
    """7-character symbols (EUR/USD) pushed the kind, the price and the message of their
    rows right of the others': the symbols are padded to the run's longest."""
    app = SignalsApp(60)
    async with app.run_test(size=(80, 10)) as pilot:
        signals = app.query_one(SignalsLog)
        signals.narrow = narrow
        await pilot.pause()
        signals.show(FX_SIGNALS, "America/New_York", symbols=FX)
        await pilot.pause()
        rows = [line.text.rstrip() for line in signals.lines]
        assert len(rows) == 3
        marks = ("▲", "▼") if narrow else (" buy ", " sell")
        columns = {min(row.find(m) for m in marks if m in row) for row in rows}
        assert len(columns) == 1, rows
        # The prices (1.08, 601.50, 191.23) right-aligned: the messages in one column.
        assert len({row.index("cross") for row in rows}) == 1, rows
        assert len({row.index(".", row.index(" ", 12)) for row in rows}) == 1, rows
        assert all(("▲" in row or "▼" in row) == narrow for row in rows)
        # A longer symbol among the run's widens the column: the rows are written again.
        signals.show(FX_SIGNALS, "America/New_York", symbols=(*FX, "BTC/USDT"))
        await pilot.pause()
        again = [line.text.rstrip() for line in signals.lines]
        assert len(again) == 3
        assert {min(row.find(m) for m in marks if m in row) for row in again} == {
            next(iter(columns)) + 1
        }


async def test_a_narrow_signals_pane_gives_way_to_the_events(make_session):
    """At 70 columns the symbols table leaves the signals 13: the events list them."""
    session = make_session("demo", backtest={"start_date": DAY, "end_date": DAY})
    drive(session, 60)
    app = snapshot_app(session)
    async with app.run_test(size=(70, 25)) as pilot:
        await settle(pilot)
        assert not app.query_one(SignalsLog).display
        log = app.query_one(EventLog)
        assert await wait_for(lambda: any("signal sell EMBR" in line.text for line in log.lines))
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        assert app.query_one(SignalsLog).display
        assert await wait_for(lambda: not any("signal " in line.text for line in log.lines))


async def test_the_footer_keeps_help_and_quit_in_view(make_session):
    """At every width the footer shows whole keys, ``? Help`` and ``q Quit`` among them: it
    leaves out the fewest keys it can, least needed first (QA: between 100 and 118 columns
    the wide footer cut ``? Help`` and ``q Quit`` off)."""
    session = make_session("demo")
    drive(session)
    app = snapshot_app(session)
    async with app.run_test(size=(130, 40)) as pilot:
        await settle(pilot)
        left_out = 0
        for width in (130, 119, 118, 117, 110, 105, 101, 100, 99, 95, 94, 90, 85, 80):
            await pilot.resize_terminal(width, 24)
            await settle(pilot)
            keys = footer_keys(app)
            assert "question_mark" in keys and "q" in keys, width
            for key in keys.values():
                assert visible(app, key), (width, key.key)
            actions = {key.action for key in keys.values()}
            dropped = [action for action in FOOTER_DROP_ORDER if action not in actions]
            assert dropped == list(FOOTER_DROP_ORDER[: len(dropped)]), width
            assert len(dropped) >= left_out, width  # narrower never shows more
            left_out = len(dropped)
            if width >= 95:  # all fit, compact below 119 columns
                assert not dropped, width
        assert left_out > 0  # 80 columns leave some out
        # Their keys still work where the footer leaves them out.
        await pilot.resize_terminal(60, 20)
        await settle(pilot)
        shown = {key.action for key in footer_keys(app).values()}
        assert not {"next_theme", "filter", "next_interval", "toggle_clock"} & shown
        await pilot.press("t")
        assert app.theme == "light"
        await pilot.press("i")
        assert app.interval == "5m"
        await pilot.press("slash")
        assert app.focused is not None and app.focused.id == "filter"
        await pilot.press("escape")
        await pilot.press("m")
        assert await wait_for(lambda: session.snapshot().clock == "data-driven")
        await pilot.resize_terminal(120, 40)
        await settle(pilot)
        assert set(FOOTER_DROP_ORDER) <= {key.action for key in footer_keys(app).values()}
        # The help screen lists each key once.
        help_keys = [keys for keys, _, _ in app.key_help()]
        assert len(help_keys) == len(set(help_keys))
