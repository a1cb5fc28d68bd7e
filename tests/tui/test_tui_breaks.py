"""The UI and sessions with a break: the status bar's break text and the chart's axis."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sessionkit.engine.pipeline.snapshot import Snapshot
from sessionkit.tui.charting import SessionAxis
from sessionkit.tui.format import Figures
from sessionkit.tui.widgets.status_bar import status_line

TOKYO = ZoneInfo("Asia/Tokyo")
OPEN = datetime(2024, 11, 5, 0, 0, tzinfo=UTC)  # 09:00 JST
BREAK_START = datetime(2024, 11, 5, 2, 30, tzinfo=UTC)  # 11:30 JST
BREAK_END = datetime(2024, 11, 5, 3, 30, tzinfo=UTC)  # 12:30 JST
CLOSE = datetime(2024, 11, 5, 6, 30, tzinfo=UTC)  # 15:30 JST


def tokyo_snapshot(sim_time: datetime) -> Snapshot:
    return Snapshot(
        state="paused",
        exchange="JPX",
        timezone="Asia/Tokyo",
        session_date=date(2024, 11, 5),
        session_index=1,
        session_count=1,
        sim_time=sim_time,
        market_open=OPEN,
        market_close=CLOSE,
        break_start=BREAK_START,
        break_end=BREAK_END,
    )


def test_status_bar_says_lunch_break_until_its_end_in_exchange_time():
    line = status_line(tokyo_snapshot(BREAK_START), Figures())
    assert line.pause == "lunch break until 12:30 JST"
    assert line.time == "11:30:00 JST"


def test_status_bar_shows_no_break_outside_it():
    for t in (OPEN, datetime(2024, 11, 5, 2, 29, tzinfo=UTC), BREAK_END, CLOSE):
        assert status_line(tokyo_snapshot(t), Figures()).pause == ""
    assert status_line(Snapshot(), Figures()).pause == ""


def test_session_axis_leaves_the_break_out_and_marks_it():
    axis = SessionAxis.of(tokyo_snapshot(OPEN), "1m")
    assert axis is not None
    assert axis.slots == 150 + 180  # 09:00-11:30 and 12:30-15:30
    starts = [OPEN, datetime(2024, 11, 5, 2, 29, tzinfo=UTC), BREAK_END, CLOSE]
    assert axis.positions(starts, 0) == [0.0, 149.0, 150.0, 330.0]
    ticks, labels = axis.ticks(TOKYO, 200)
    assert labels[0] == "09:00" and labels[-1] == "15:30"
    assert "11:30|12:30" in labels
    assert "12:00" not in labels  # inside the break: no place on the axis
    assert ticks[labels.index("11:30|12:30")] == 150.0
    assert ticks[labels.index("13:00")] == 180.0
    assert ticks == sorted(ticks)


def test_session_axis_without_a_break_is_unchanged():
    snap = Snapshot(market_open=OPEN, market_close=CLOSE)
    axis = SessionAxis.of(snap, "5m")
    assert axis == SessionAxis(OPEN, CLOSE, "5m")
    assert axis.slots == 78
    assert SessionAxis.of(Snapshot(), "1m") is None
