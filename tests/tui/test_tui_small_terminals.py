"""Small terminals: the signals stay readable (compact rows, or listed in the events when
their pane would be too narrow) and the footer keeps ``? Help`` and ``q Quit`` in view.
"""

from __future__ import annotations

from datetime import date

from sessionkit.tui.app import FOOTER_SPARE, NARROW_WIDTH
from sessionkit.tui.widgets.event_log import EventLog
from sessionkit.tui.widgets.signals_log import SignalsLog
from textual.widgets._footer import FooterKey
from tui_helpers import drive, settle, snapshot_app, wait_for

DAY = date(2024, 11, 26)
"""One session: by 10:30 the demo's analysis has bought and sold."""


def footer_keys(app) -> dict[str, FooterKey]:
    return {key.key: key for key in app.screen.query(FooterKey)}


def visible(app, key: FooterKey) -> bool:
    region = key.region
    return region.width > 0 and region.right <= app.size.width


async def test_signals_are_compact_at_80_columns_and_full_when_wide(make_session):
    session = make_session("demo", backtest={"start_date": DAY, "end_date": DAY})
    drive(session, 60)
    app = snapshot_app(session)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        signals = app.query_one(SignalsLog)
        assert signals.display and signals.region.width >= 20
        rows = [line.text.rstrip() for line in signals.lines]
        assert rows, "the demo emitted signals by 10:30"
        width = signals.scrollable_content_region.width
        for row, signal in zip(rows, session.snapshot().signals[-len(rows) :], strict=True):
            mark = {"buy": "▲", "sell": "▼"}[signal.kind]
            price = f"{signal.price:,.2f}"
            assert f" {signal.symbol} " in row and f"{mark} {price}" in row, row
            assert len(f"{mark} {price}") + row.index(mark) <= width  # the price fits
        log = app.query_one(EventLog)
        assert not any("signal " in line.text for line in log.lines)  # listed once
        # Wide again: full rows (kind spelt out), written again at the new width.
        await pilot.resize_terminal(120, 40)
        await settle(pilot)
        assert await wait_for(
            lambda: any(" buy " in line.text or " sell " in line.text for line in signals.lines)
        )
        assert not any("▲" in line.text or "▼" in line.text for line in signals.lines)


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
    session = make_session("demo")
    drive(session)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        keys = footer_keys(app)
        spare = {app.get_key_display(b) for b in app.BINDINGS if b.action in FOOTER_SPARE}
        assert spare == {"m", "i", "/", "t"}
        assert {"t", "m", "i", "slash", "question_mark", "q"} <= set(keys)
        for width, height in ((80, 24), (70, 25), (60, 20)):
            await pilot.resize_terminal(width, height)
            await settle(pilot)
            keys = footer_keys(app)
            assert visible(app, keys["question_mark"]) and visible(app, keys["q"]), width
            assert not {"t", "m", "i", "slash"} & set(keys)
        # Their keys still work where the footer leaves them out.
        assert app.size.width < NARROW_WIDTH
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
        assert {"t", "m", "i", "slash"} <= set(footer_keys(app))
        # The help screen lists each key once.
        help_keys = [keys for keys, _, _ in app.key_help()]
        assert len(help_keys) == len(set(help_keys))
