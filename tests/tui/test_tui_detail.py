"""The symbol detail screen (``enter``): gaps in the exchange's zone, quality per interval,
history quality, latest indicator values. Driven to a fixed point before the app starts."""

from __future__ import annotations

from datetime import date

import pytest
from rich.console import Console
from sessionkit.tui.screens.detail import DetailScreen, detail_renderable
from tui_helpers import SNAPSHOT_SIZES, drive, settle, snapshot_app

DAY = date(2024, 11, 26)
STEPS = 214
"""09:30 -> 13:04: BOLT missed its 13:03 bar, an open run at this instant."""


def text_of(renderable) -> str:
    console = Console(width=100, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_detail_lists_gaps_quality_and_indicators(make_session):
    session = make_session("demo", backtest={"start_date": DAY, "end_date": DAY})
    drive(session, STEPS + 10)  # 13:14: BOLT's gap at 13:03 is closed (the next is at 13:28)
    snapshot = session.snapshot()
    text = text_of(detail_renderable("BOLT", snapshot, session.gaps("BOLT")))
    assert "2024-11-26 13:03" in text and "13:04" in text
    assert "1 gap(s), 1 bar(s) missing so far" in text
    stats = snapshot.series["BOLT", "1m"]
    assert f"{stats.quality:.1f}" in text and f"{stats.history_quality:.1f}" in text
    for interval in ("1m", "5m", "15m"):
        assert f"\n{interval} " in text or f" {interval} " in text
    for name, value in snapshot.indicators["BOLT"].items():
        assert name in text
        if value is not None:
            assert f"{value:,.4f}" in text
    assert "No gap on 2024-11-26 so far." in text_of(
        detail_renderable("ACME", snapshot, session.gaps("ACME"))
    )


async def test_enter_opens_the_detail_of_the_selected_symbol(make_session):
    session = make_session("demo", backtest={"start_date": DAY, "end_date": DAY})
    drive(session, STEPS)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.symbol == "BOLT"
        body = text_of(app.screen.shown)
        assert "13:03" in body and "(open)" in body
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)


@pytest.mark.parametrize("size", SNAPSHOT_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_detail_screen(snap_compare, make_session, size):
    """BOLT at 13:04 on 2024-11-26: its open one-bar gap, quality and indicators."""
    session = make_session("demo", backtest={"start_date": DAY, "end_date": DAY})
    drive(session, STEPS)
    app = snapshot_app(session)

    async def open_detail(pilot):
        await settle(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_detail)


def test_a_gap_over_midnight_shows_the_date_of_its_end() -> None:
    """A 24-hour market's gap from 23:58 to 00:03: its end was shown as "00:03" alone,
    which reads as before its start."""
    from datetime import UTC, datetime

    from sessionkit.engine.pipeline.snapshot import GapSpan, Snapshot

    snapshot = Snapshot(timezone="UTC", session_date=date(2024, 3, 4), symbols=("BTC-USD",))
    gaps = (
        GapSpan(
            datetime(2024, 3, 4, 12, 0, tzinfo=UTC), datetime(2024, 3, 4, 12, 2, tzinfo=UTC), 2
        ),
        GapSpan(
            datetime(2024, 3, 4, 23, 58, tzinfo=UTC),
            datetime(2024, 3, 5, 0, 3, tzinfo=UTC),
            5,
            True,
        ),
    )
    lines = text_of(detail_renderable("BTC-USD", snapshot, gaps)).splitlines()
    rows = [line.split() for line in lines if line.strip().startswith("2024-03-04")]
    assert rows == [
        ["2024-03-04", "12:00", "12:02", "2", "2"],
        ["2024-03-04", "23:58", "2024-03-05", "00:03", "(open)", "5", "5"],
    ], lines
