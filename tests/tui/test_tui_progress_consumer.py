"""The ETA of a clock-driven run whose analysis does not keep up with the clock.

The engine is simulated: snapshots are built by hand, tick by tick, and the tracker is
given their wall-clock instants, so nothing here depends on the machine's speed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
from sessionkit.engine.pipeline.snapshot import EngineMetrics, Snapshot, ThreadStats
from sessionkit.tui import progress
from sessionkit.tui.progress import ProgressTracker

SESSIONS = 5
STEPS = 390  # 1-minute instants of a 6.5-hour session
SPEED = 600.0  # ten instants a wall second
TICK = 0.1
DAYS = tuple(date(2024, 12, 2) + timedelta(days=i) for i in range(SESSIONS))
OPENS = tuple(datetime(d.year, d.month, d.day, 14, 30, tzinfo=UTC) for d in DAYS)


@dataclass
class Engine:
    """A clock-driven engine: the coordinator publishes an instant each 0.1 s (600x) while
    the analysis handles one each ``cost`` wall seconds, on its thread; at a session's end
    the coordinator waits until the analysis caught up, then starts the next session."""

    cost: float
    stages: str = "threads"
    wall: float = 0.0
    published: int = 0
    in_session: int = 0
    session: int = 0  # 0-based
    handled: int = 0
    busy: float = 0.0
    progress: float = 0.0  # the analysis's work on its current instant, wall seconds
    processor: int = 0
    done: bool = False
    history: list[float] = field(default_factory=list)

    def tick(self) -> None:
        self.wall += TICK
        if self.in_session < STEPS:
            self.published += 1
            self.in_session += 1
            self.processor += 1
        work = TICK
        while work > 1e-12 and self.handled < self.published:
            need = self.cost - self.progress
            if work >= need - 1e-12:
                work -= need
                self.busy += need
                self.progress = 0.0
                self.handled += 1
            else:
                self.progress += work
                self.busy += work
                work = 0.0
        if self.in_session == STEPS and self.handled == self.published:
            if self.session + 1 == SESSIONS:
                self.done = True
            else:
                self.session += 1
                self.in_session = 0

    def snapshot(self) -> Snapshot:
        starts = self.session + 1  # the analysis's session starts and ends are messages too
        threads = (
            ThreadStats("session_coordinator", 0.01 * self.published, 0.0, 0.0, self.published),
            ThreadStats("data_processor", 0.001 * self.processor, 0.0, 0.0, self.processor),
            ThreadStats("analysis_engine", self.busy, 0.0, 0.0, self.handled + 2 * starts - 1),
        )
        return Snapshot(
            state="completed" if self.done else "streaming",
            clock="clock-driven",
            speed=SPEED,
            session_index=self.session + 1,
            session_count=SESSIONS,
            sessions=DAYS,
            session_bounds=tuple((o, o + timedelta(minutes=STEPS)) for o in OPENS),
            sim_time=OPENS[self.session] + timedelta(minutes=self.in_session),
            intervals=("1m", "5m"),
            metrics=EngineMetrics(
                steps=self.published,
                bars_streamed=6 * self.published,
                threads=threads,
                stages=self.stages,  # type: ignore[arg-type]
            ),
        )


def _run(engine: Engine, tracker: ProgressTracker, until: float) -> None:
    while engine.wall < until - 1e-9 and not engine.done:
        engine.tick()
        tracker.update(engine.snapshot(), engine.wall)


def test_the_eta_waits_for_an_analysis_that_does_not_keep_up():
    # 0.2 s an instant: 1,950 instants take 390 s, the clock alone 195 s.
    engine, tracker = Engine(cost=0.2), ProgressTracker()
    for wall in (12.0, 30.0, 39.0, 50.0, 70.0, 78.5, 80.0, 100.0, 200.0, 350.0):
        _run(engine, tracker, wall)
        left = SESSIONS * STEPS * 0.2 - wall  # the analysis is busy all along
        assert tracker.eta(wall) == pytest.approx(left, rel=0.03, abs=2.0), wall
    assert engine.session >= 1  # the sessions' ends (the clock waiting at 16:00) were seen


def test_an_analysis_that_keeps_up_leaves_the_clock_bound_eta():
    engine, tracker = Engine(cost=0.05), ProgressTracker()
    for wall in (12.0, 30.0, 45.0, 100.0):
        _run(engine, tracker, wall)
        assert tracker.progress is not None
        assert tracker.eta(wall) == pytest.approx(tracker.progress.seconds_left / SPEED)


def test_inline_stages_are_in_the_measured_pace_already():
    # Data-driven: the coordinator runs the handlers on its own thread; the counts of a
    # slow handler never make a backlog of their own.
    engine, tracker = Engine(cost=0.2, stages="inline"), ProgressTracker()
    _run(engine, tracker, 12.0)
    assert tracker.consumer_eta(12.0) is None
    assert tracker.eta(12.0) == pytest.approx(tracker.progress.seconds_left / SPEED)


def test_no_eta_while_paused_even_with_a_backlog():
    engine, tracker = Engine(cost=0.2), ProgressTracker()
    _run(engine, tracker, 12.0)
    paused = engine.snapshot()
    tracker.update(Snapshot(**{**_fields(paused), "state": "paused"}), 12.1)
    assert tracker.eta(12.1) is None


def test_a_new_run_forgets_the_backlog_of_the_one_before():
    engine, tracker = Engine(cost=0.2), ProgressTracker()
    _run(engine, tracker, 12.0)
    assert tracker.consumer_eta(12.0) is not None
    fresh = Engine(cost=0.05)  # a seek: a new engine, its counters from 0
    _run(fresh, tracker, 12.0)
    assert tracker.consumer_eta(12.0) is None


def test_load_meter_measures_busy_seconds_per_message():
    meter = progress.LoadMeter(window=10.0, steps=3)
    meter.add(0.0, 0, 0.0)
    meter.add(1.0, 2, 0.4)
    assert meter.cost() is None  # fewer than three messages
    meter.add(2.0, 5, 1.0)
    meter.add(3.0, 5, 1.0)  # waiting: no message, no busy time, no change
    assert meter.cost() == pytest.approx(0.2)
    meter.add(4.0, 1, 0.1)  # a new run
    assert meter.cost() is None


def _fields(snapshot: Snapshot) -> dict:
    return {name: getattr(snapshot, name) for name in Snapshot.__dataclass_fields__}
