"""The status bar's pace figures (bars/s, ETA) and its fit to narrow terminals.

The tracker is fed synthetic snapshots at given wall-clock instants (a poll every 0.1 s,
steps when the simulated clock would take them); nothing here sleeps or measures time.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sessionkit.engine.pipeline.snapshot import EngineMetrics, Snapshot
from sessionkit.tui.format import Figures
from sessionkit.tui.progress import ProgressTracker, RateMeter
from sessionkit.tui.widgets.status_bar import BAR_MIN, StatusBar, StatusLine, status_line
from textual.app import App, ComposeResult

OPENS = [datetime(2024, 11, d, 14, 30, tzinfo=UTC) for d in (25, 26, 27)]
SESSION = 6.5 * 3600.0
"""Trading seconds of one session (09:30-16:00)."""
TOTAL = 3 * SESSION
SYMBOLS = 6
"""Base bars per 1-minute step."""


def snap(
    minutes: float,
    *,
    state: str = "streaming",
    clock: str = "clock-driven",
    speed: float | None = 60.0,
    bars: int | None = None,
) -> Snapshot:
    """A snapshot of a 3-session run, ``minutes`` of trading time in (a session is 390)."""
    index = min(2, int(minutes // 390))
    return Snapshot(
        state=state,  # type: ignore[arg-type]
        clock=clock,  # type: ignore[arg-type]
        speed=speed if clock == "clock-driven" else None,
        session_index=index + 1,
        session_count=3,
        sessions=(date(2024, 11, 25), date(2024, 11, 26), date(2024, 11, 27)),
        session_bounds=tuple((o, o + timedelta(hours=6.5)) for o in OPENS),
        sim_time=OPENS[index] + timedelta(minutes=minutes - 390 * index),
        metrics=EngineMetrics(bars_streamed=SYMBOLS * int(minutes) if bars is None else bars),
    )


def replay(
    tracker: ProgressTracker,
    start_wall: float,
    start_minute: int,
    seconds: float,
    *,
    speed: float,
    clock: str = "clock-driven",
    lag: float = 1.0,
    phase: float = 0.037,
):
    """Poll every 0.1 s for ``seconds`` while 1-minute bars arrive at ``speed`` (times ``lag``
    slower); yields (wall, minute) after each poll. ``phase`` puts the polls off the steps."""
    step = 60.0 / speed * lag
    polls = int(round(seconds / 0.1))
    for k in range(polls + 1):
        wall = start_wall + phase + 0.1 * k
        minute = start_minute + int((wall - start_wall) // step)
        tracker.update(snap(minute, clock=clock, speed=speed), wall)
        yield wall, minute


# -- defect: bars/s and the ETA while paused ----------------------------------------------


def test_paused_shows_zero_bars_per_second_and_no_eta_even_while_stepping():
    tracker = ProgressTracker()
    walls = list(replay(tracker, 0.0, 0, 10.0, speed=60.0))
    wall, minute = walls[-1]
    assert tracker.bars_per_second(wall) == pytest.approx(6.0)
    # Paused, then stepped with `n`: the counters move while paused.
    for k in range(1, 60):
        tracker.update(snap(minute + k // 5, state="paused"), wall + 0.1 * k)
        assert tracker.bars_per_second(wall + 0.1 * k) == 0.0
        assert tracker.eta(wall + 0.1 * k) is None
    line = status_line(snap(minute + 11, state="paused"), Figures(), tracker, wall + 6.0)
    assert (line.rate, line.eta) == ("0 bars/s", "ETA -")


# -- defect: a pause poisons the pace after the resume ------------------------------------


def test_after_a_pause_the_eta_is_the_pace_of_the_resumed_run():
    tracker = ProgressTracker()
    *_, (wall, minute) = replay(tracker, 0.0, 0, 20.0, speed=60.0)
    for k in range(1, 600):  # paused for a minute
        tracker.update(snap(minute, state="paused"), wall + 0.1 * k)
    resumed = wall + 60.0
    for now, at in replay(tracker, resumed, minute, 30.0, speed=60.0):
        left = TOTAL - at * 60.0
        assert tracker.eta(now) == pytest.approx(left / 60.0), now
        if now > resumed + 1.0:
            assert tracker.bars_per_second(now) == pytest.approx(6.0), now


def test_data_driven_after_a_pause_shows_no_eta_until_measured_again():
    tracker = ProgressTracker()
    clock = dict(clock="data-driven", speed=3600.0)
    *_, (wall, minute) = replay(tracker, 0.0, 0, 5.0, **clock)
    assert tracker.eta(wall) == pytest.approx((TOTAL - minute * 60.0) / 3600.0, rel=0.03)
    for k in range(1, 300):
        tracker.update(snap(minute, state="paused", clock="data-driven"), wall + 0.1 * k)
    resumed = wall + 30.0
    tracker.update(snap(minute, clock="data-driven"), resumed)
    assert tracker.eta(resumed) is None and tracker.bars_per_second(resumed) is None
    *_, (now, at) = replay(tracker, resumed, minute, 3.0, **clock)
    assert tracker.eta(now) == pytest.approx((TOTAL - at * 60.0) / 3600.0, rel=0.03)


def test_a_speed_change_starts_the_measurement_again():
    tracker = ProgressTracker()
    *_, (wall, minute) = replay(tracker, 0.0, 0, 20.0, speed=60.0)
    for now, at in replay(tracker, wall + 0.1, minute, 20.0, speed=600.0):
        assert tracker.eta(now) == pytest.approx((TOTAL - at * 60.0) / 600.0)


# -- defect: slow speeds ------------------------------------------------------------------


@pytest.mark.parametrize("speed", [1.0, 10.0, 60.0])
def test_the_eta_and_bars_per_second_are_steady_at_slow_speeds(speed):
    """A step every 60 / speed wall seconds, polls ten times a second: every poll's ETA is
    the trading time left at the speed, and bars/s is 6 bars a step from the first step."""
    tracker = ProgressTracker()
    first_step = 60.0 / speed
    for now, at in replay(tracker, 0.0, 0, 8 * first_step, speed=speed):
        assert tracker.eta(now) == pytest.approx((TOTAL - at * 60.0) / speed)
        rate = tracker.bars_per_second(now)
        if now < first_step:
            assert rate is None
        else:
            assert rate == pytest.approx(SYMBOLS * speed / 60.0), now
    line = status_line(snap(8, speed=speed), Figures(), tracker, now)
    assert line.rate == {1.0: "0.1 bars/s", 10.0: "1.0 bars/s", 60.0: "6.0 bars/s"}[speed]


def test_a_clock_driven_run_that_does_not_keep_up_is_at_its_measured_pace():
    tracker = ProgressTracker()
    # 3600x asked, every step takes twice its time (overruns): 1800 trading seconds a second.
    *_, (now, at) = replay(tracker, 0.0, 0, 10.0, speed=3600.0, lag=2.0)
    assert tracker.eta(now) == pytest.approx((TOTAL - at * 60.0) / 1800.0, rel=0.03)
    assert tracker.bars_per_second(now) == pytest.approx(SYMBOLS * 30.0, rel=0.03)


def test_slow_data_driven_steps_give_a_steady_rate_between_them():
    """Data-driven with a slow analysis: a step every 7 s. Between the steps the rate is the
    same at every poll (the window holds several steps), until the next step is late."""
    tracker = ProgressTracker()
    rates = []
    for now, _at in replay(tracker, 0.0, 0, 60.0, speed=60.0 / 7.0, clock="data-driven"):
        if now > 4 * 7.0:
            rates.append(tracker.bars_per_second(now))
    assert rates == pytest.approx([SYMBOLS / 7.0] * len(rates), rel=0.02)


def test_rate_meter_counts_from_the_steps_and_falls_while_the_counter_stands():
    meter = RateMeter(window=5.0, steps=2)
    meter.add(0.0, 0.0)  # where it stood: not a step
    meter.add(2.5, 60.0)
    meter.add(8.5, 120.0)
    assert meter.rate(8.5) is None  # one interval between steps only
    meter.add(14.5, 180.0)
    assert meter.rate(16.0) == pytest.approx(10.0)  # 120 in 12 s, whenever polled
    assert meter.rate(26.5) == pytest.approx(10.0)  # two intervals without a step
    assert meter.rate(38.5) == pytest.approx(120.0 / 24.0)  # 12 s more: they count
    meter.add(33.0, 10.0)  # a new run after a seek
    assert meter.rate(33.0) is None and meter.growth == 0.0


# -- defect: the essential fields on a narrow terminal ------------------------------------


class BarApp(App[None]):
    def __init__(self, line: StatusLine) -> None:
        super().__init__()
        self.line = line

    def compose(self) -> ComposeResult:
        yield StatusBar()

    def on_mount(self) -> None:
        self.query_one(StatusBar).line = self.line


LONG = StatusLine(
    state="session-ended",
    date="2024-11-26",
    sessions="session 12/25 early close",
    time="09:47:00 EST",
    pause="lunch break until 12:30 JST",
    speed="3600x clock",
    rate="12.3k bars/s",
    fraction=0.4567,
    eta="ETA 12h 20m",
)


@pytest.mark.parametrize("width", [52, 60, 70, 80, 100, 120, 200])
async def test_a_narrow_status_bar_keeps_state_time_speed_progress_and_eta(width):
    app = BarApp(LONG)
    async with app.run_test(size=(width, 5)) as pilot:
        await pilot.pause()
        text = app.query_one(StatusBar).render().plain
    assert len(text) <= width
    for essential in ("■ session ended", "09:47:00 EST", "3600x", "% ETA 12h 20m"):
        assert essential in text, (width, text)
    assert "46%" in text or "45.7%" in text
    if width >= 200:
        assert "12.3k bars/s" in text and "(session 12/25 early close)" in text
        assert "lunch break until 12:30 JST" in text and "█" in text
    if width <= 60:
        assert "bars/s" not in text and "BACKTEST" not in text and "12/25" not in text


async def test_a_status_bar_with_room_keeps_the_bar_and_drops_nothing():
    app = BarApp(
        StatusLine(
            state="streaming",
            time="09:47:00 EST",
            speed="60x clock",
            rate="6.0 bars/s",
            fraction=0.5,
            eta="ETA 1h 05m",
        )
    )
    async with app.run_test(size=(120, 5)) as pilot:
        await pilot.pause()
        text = app.query_one(StatusBar).render().plain
    assert text.startswith(" BACKTEST  ▶ running │ - │ 09:47:00 EST │ 60x clock │ 6.0 bars/s │ █")
    assert text.endswith(" 50.0% ETA 1h 05m")


COMPLETED = StatusLine(
    state="completed",
    date="2024-11-26",
    sessions="session 1/1",
    time="16:00:00 EST",
    speed="max data-driven",
    rate="- bars/s",
    fraction=1.0,
)
"""QA's line at 99 columns after completion: ``│ - bars/s │  100.0%``, no bar."""


@pytest.mark.parametrize("width", range(80, 121))
async def test_a_shown_percentage_keeps_a_bar_where_there_is_room(width):
    app = BarApp(COMPLETED)
    async with app.run_test(size=(width, 5)) as pilot:
        await pilot.pause()
        text = app.query_one(StatusBar).render().plain
    assert len(text) <= width
    assert "100%" in text or "100.0%" in text
    assert "█" * BAR_MIN in text, (width, text)
    assert "✔ completed" in text and "16:00:00 EST" in text and "max" in text


@pytest.mark.parametrize("line", [LONG, COMPLETED], ids=["long", "completed"])
async def test_a_wider_status_bar_never_loses_its_bar(line):
    app = BarApp(line)
    async with app.run_test(size=(140, 5)) as pilot:
        status = app.query_one(StatusBar)
        barred = False
        for width in range(60, 141):
            status.styles.width = width
            await pilot.pause()
            assert status.size.width == width
            text = status.render().plain
            has_bar = "█" in text or "░" in text
            assert has_bar or not barred, (width, text)
            barred = has_bar
        assert barred


# -- defect: the monitor's bars/s counted derived bars too --------------------------------


def test_bars_per_second_counts_base_bars_as_the_engine_does():
    """At 3600x the monitor said 455 bars/s where `sessionkit run --json` said 360: it
    counted the derived 5m and 15m bars (``bars_processed``); it counts the streamed base
    bars (``bars_streamed``), as the engine's own bars/s does."""
    tracker = ProgressTracker()
    for k in range(101):  # data-driven, 6 base bars a poll and 2 derived ones
        minute = k
        snapshot = snap(minute, clock="data-driven", speed=None)
        metrics = replace(snapshot.metrics, bars_processed=8 * minute)
        tracker.update(replace(snapshot, metrics=metrics), 0.1 * k)
    assert tracker.bars_per_second(10.0) == pytest.approx(SYMBOLS * 10.0)


def test_a_sessions_snapshot_counts_its_streamed_base_bars():
    from sessionkit.engine import Session, load_config

    config = load_config("demo", options={"start": "2024-12-09", "end": "2024-12-09"})
    session = Session(config, start_paused=True).start()
    try:
        session.step(30)
        assert session.wait_idle(30)
        metrics = session.snapshot().metrics
        base = sum(n for (_s, iv), n in session.processor.totals.items() if iv == "1m")
        assert metrics.bars_streamed == base > 0
        assert metrics.bars_processed > metrics.bars_streamed  # 5m and 15m bars too
    finally:
        assert session.stop()
