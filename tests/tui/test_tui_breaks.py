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


def test_progress_leaves_the_break_out():
    """The progress and the ETA counted a Tokyo session's lunch hour as trading time: the
    bar jumped at the break's end (the engine moves on to it at once) and a clock-driven
    ETA was too long by the breaks left divided by the speed."""
    from dataclasses import replace

    from sessionkit.tui.progress import run_progress

    two = (OPEN, OPEN.replace(day=6))
    snapshot = replace(
        tokyo_snapshot(OPEN),
        state="streaming",
        session_count=2,
        sessions=(date(2024, 11, 5), date(2024, 11, 6)),
        session_bounds=tuple((o, o + (CLOSE - OPEN)) for o in two),
        session_breaks=tuple((o + (BREAK_START - OPEN), o + (BREAK_END - OPEN)) for o in two),
    )
    hours = 3600.0
    assert run_progress(snapshot).seconds_total == 2 * 5.5 * hours  # 6.5 h less the hour
    for at, done in (
        (BREAK_START, 2.5),  # 11:30: the morning
        (BREAK_END, 2.5),  # 12:30: the break took no time
        (datetime(2024, 11, 5, 4, 30, tzinfo=UTC), 3.5),  # 13:30
        (CLOSE, 5.5),
    ):
        progress = run_progress(replace(snapshot, sim_time=at))
        assert progress.seconds_done == done * hours, at
    # A session without a break (or a snapshot that does not say) counts its whole day.
    plain = replace(snapshot, session_breaks=(), sim_time=BREAK_END)
    assert run_progress(plain).seconds_done == 3.5 * hours


def test_a_sessions_snapshot_has_each_sessions_break() -> None:
    from sessionkit.engine import Session, load_config

    config = load_config("demo", options={"start": "2024-12-09", "end": "2024-12-10"})
    session = Session(config, start_paused=True)
    try:
        snapshot = session.snapshot()
        assert snapshot.session_breaks == (None, None)  # NYSE has no break
        assert len(snapshot.session_bounds) == 2
    finally:
        assert session.stop()


def test_the_status_bar_shows_the_running_clock_between_instants() -> None:
    """At 1x the instants are a minute apart: the time shown is the clock's, ticking."""
    from dataclasses import replace

    snapshot = replace(tokyo_snapshot(OPEN), state="running")
    assert status_line(snapshot, Figures()).time.startswith("09:00:00")
    ticking = replace(snapshot, clock_time=datetime(2024, 11, 5, 0, 0, 42, tzinfo=UTC))
    assert status_line(ticking, Figures()).time.startswith("09:00:42")
