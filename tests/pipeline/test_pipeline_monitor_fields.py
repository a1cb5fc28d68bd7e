"""What the monitor reads beyond the basic snapshot: run bounds, signal bars, gaps, restarts.

Each test drives a real :class:`~sessionkit.engine.pipeline.session.Session` on the bundled
sample database to a fixed point (paused and idle, or finished) before asserting.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import date, timedelta

import pytest
from sessionkit.engine.config import load_config
from sessionkit.engine.pipeline.session import Session

MINUTE = timedelta(minutes=1)


def demo(**backtest) -> Session:
    return Session(load_config("demo", {"backtest": backtest}), source="demo", start_paused=True)


def idle(session: Session, steps: int = 0) -> None:
    session.start()
    assert session.wait_idle(20)
    if steps:
        session.step(steps)
        assert session.wait_idle(20)


def test_session_bounds_follow_the_calendar() -> None:
    session = demo(start_date=date(2024, 11, 27), end_date=date(2024, 12, 2))
    try:
        snapshot = session.snapshot()
        assert snapshot.sessions == (date(2024, 11, 27), date(2024, 11, 29), date(2024, 12, 2))
        bounds = snapshot.session_bounds
        assert len(bounds) == 3
        lengths = [close - open_ for open_, close in bounds]
        # 6.5 hours, the early close after Thanksgiving (3.5 hours), 6.5 hours.
        assert lengths == [timedelta(hours=6.5), timedelta(hours=3.5), timedelta(hours=6.5)]
    finally:
        assert session.stop()


def test_signals_carry_the_bar_they_were_emitted_on() -> None:
    session = Session(
        load_config(
            "demo",
            {"backtest": {"start_date": date(2024, 11, 26), "end_date": date(2024, 11, 26)}},
        ),
        source="demo",
        start_paused=True,
    )
    try:
        idle(session, 200)
        signals = session.snapshot().signals
        assert signals, "the demo's SmaCross emits signals within 200 minutes"
        for signal in signals:
            # A 1-minute bar is visible at its end: the signal's instant.
            assert signal.bar_start == signal.sim_time - MINUTE
            bars = session.series(signal.symbol, "1m", 1000)
            index = bars.starts.index(signal.bar_start)
            assert bars.close[index] == pytest.approx(signal.price)
    finally:
        assert session.stop()


def test_gaps_list_the_missing_runs_with_their_bar_counts() -> None:
    session = demo(start_date=date(2024, 11, 26), end_date=date(2024, 11, 26), clock="data-driven")
    try:
        session.start()
        session.resume()
        assert session.wait(60)
        snapshot = session.snapshot()
        assert snapshot.state == "completed"
        logged = {}
        for event in snapshot.events:
            found = re.match(r"gap in (\w+) 1m: (\d+) bar\(s\) missing from (.+)", event.message)
            if found:
                logged.setdefault(found[1], []).append((int(found[2]), found[3]))
        assert logged, "the demo has gaps on 2024-11-26"
        zone = session.runtime.tz
        for symbol in snapshot.symbols:
            spans = session.gaps(symbol)
            assert [(s.bars, f"{s.start.astimezone(zone):%Y-%m-%d %H:%M}") for s in spans] == (
                logged.get(symbol, [])
            )
            assert len(spans) == snapshot.series[symbol, "1m"].gaps
            for span in spans:
                assert not span.open
                assert span.minutes == span.bars
                assert all(
                    not span.start <= t < span.end
                    for t in session.series(symbol, "1m", 1000).starts
                )
        with pytest.raises(KeyError, match="'NOPE' is not streamed"):
            session.gaps("NOPE")
    finally:
        assert session.stop()


def test_an_open_gap_reaches_the_simulated_time() -> None:
    # BOLT has no 13:03 bar on 2024-11-26 in the demo (see the gaps test above): at 13:04,
    # when that bar was due, the run is open; one step later it is closed.
    session = demo(start_date=date(2024, 11, 26), end_date=date(2024, 11, 26))
    try:
        idle(session, 214)  # 09:30 + 214 minutes = 13:04
        now = session.snapshot().sim_time
        assert f"{now.astimezone(session.runtime.tz):%H:%M}" == "13:04"
        (span,) = session.gaps("BOLT")
        assert span.open and span.bars == 1 and span.end == now
        assert session.snapshot().series["BOLT", "1m"].gaps == 1
        session.step()
        assert session.wait_idle(20)
        (closed,) = session.gaps("BOLT")
        assert not closed.open and (closed.start, closed.end) == (span.start, span.end)
    finally:
        assert session.stop()


def test_restarted_at_keeps_config_clock_speed_and_pause_and_numbering() -> None:
    session = demo(start_date=date(2024, 11, 25), end_date=date(2024, 12, 6))
    restarted = None
    try:
        idle(session, 5)
        session.set_speed(300)
        target = date(2024, 12, 3)
        restarted = session.restarted_at(target)
        assert session.stop()
        restarted.start()
        assert restarted.wait_idle(20)
        snapshot = restarted.snapshot()
        assert snapshot.state == "paused"
        assert snapshot.session_date == target
        assert snapshot.sessions == session.snapshot().sessions
        assert snapshot.session_index == snapshot.sessions.index(target) + 1
        assert snapshot.clock == "clock-driven" and snapshot.speed == 300
        assert restarted.config is session.config
        # Warm-up loaded: five trailing sessions of history, indicators valid at the open.
        stats = snapshot.series["ACME", "1m"]
        assert stats.bar_count == 0 and stats.history_count > 4 * 390
        assert snapshot.indicators["ACME"]["sma_20"] is not None
        assert any(
            f"session {snapshot.session_index}/{snapshot.session_count} {target}" in e.message
            for e in snapshot.events
        )
        restarted.step(3)
        assert restarted.wait_idle(20)
        assert restarted.snapshot().series["ACME", "1m"].bar_count == 3
    finally:
        session.stop()
        if restarted is not None:
            assert restarted.stop()


def test_going_back_into_a_finished_run_starts_paused() -> None:
    """QA: after a run at max completed, a go-to kept its (unpaused) state and raced to the
    end again before the day could be looked at."""
    session = Session(
        load_config(
            "demo",
            {
                "backtest": {
                    "start_date": "2024-12-02",
                    "end_date": "2024-12-04",
                    "clock": "data-driven",
                }
            },
        ),
        source="demo",
    )
    restarted = None
    try:
        session.start()
        assert session.wait(60) and session.snapshot().state == "completed"
        restarted = session.restarted_at(date(2024, 12, 3))
        restarted.start()
        assert restarted.wait_idle(20)
        snapshot = restarted.snapshot()
        assert snapshot.state == "paused" and snapshot.session_date == date(2024, 12, 3)
        assert snapshot.clock == "data-driven"
        assert snapshot.series["ACME", "1m"].bar_count == 0
    finally:
        session.stop()
        if restarted is not None:
            assert restarted.stop()


def test_restarted_at_refuses_a_day_outside_the_run() -> None:
    session = demo(start_date=date(2024, 11, 25), end_date=date(2024, 12, 6))
    try:
        with pytest.raises(ValueError, match=r"2024-11-28 is not a session of this run"):
            session.restarted_at(date(2024, 11, 28))  # Thanksgiving
        with pytest.raises(ValueError, match="not a session"):
            session.restarted_at(date(2024, 12, 9))
    finally:
        assert session.stop()


def test_snapshot_of_some_symbols_is_complete_otherwise() -> None:
    session = demo(start_date=date(2024, 11, 26), end_date=date(2024, 11, 26))
    try:
        idle(session, 30)
        full = session.snapshot()
        some = session.snapshot(symbols=("BOLT", "NOPE"))
        assert set(some.series) == {("BOLT", interval) for interval in full.intervals}
        assert set(some.indicators) == {"BOLT"}
        for interval in full.intervals:
            assert some.series["BOLT", interval] == full.series["BOLT", interval]
        assert some.indicators["BOLT"] == full.indicators["BOLT"]
        assert (some.symbols, some.sim_time, some.state, some.version) == (
            full.symbols,
            full.sim_time,
            full.state,
            full.version,
        )
        # (the stages' threads wait for messages meanwhile: their waits in progress grow)
        assert _waits_left_out(some.metrics) == _waits_left_out(full.metrics)
    finally:
        assert session.stop()


def _waits_left_out(metrics):
    threads = tuple(replace(t, waiting_seconds=0.0) for t in metrics.threads)
    return replace(metrics, threads=threads)


@pytest.mark.parametrize("clock", ["clock-driven", "data-driven"])
@pytest.mark.parametrize("analysis", [True, False])
def test_every_instant_is_timed_in_every_clock_mode(clock: str, analysis: bool) -> None:
    """The step latency covers every instant: clock-driven ones are timed by the last stage
    of the chain (the analysis, else the processor) on its thread, from their publication;
    data-driven ones inline by the coordinator."""
    overrides = {"backtest": {"clock": clock, "speed": 100_000, "end_date": "2024-11-25"}}
    if not analysis:
        overrides["analysis"] = {}
    session = Session(load_config("demo", overrides), source="demo")
    session.start()
    try:
        assert session.wait(60)
        snap = session.snapshot()
        assert snap.state == "completed", snap.error
        stats = session.coordinator.stats()
        assert stats.step_latency_count == snap.metrics.steps == 390  # the minutes of the day
        mean = snap.metrics.step_latency_ms
        assert mean is not None and 0 < mean <= snap.metrics.max_step_latency_ms
    finally:
        assert session.stop()


def test_the_clock_runs_between_instants() -> None:
    """QA: at 1x the status bar showed 09:30:00 for a whole minute (the last instant). The
    snapshot's clock_time runs from the last instant towards the next, never past it, and
    is None when the clock does not run (paused, data-driven)."""
    session = demo(start_date=date(2024, 12, 2), end_date=date(2024, 12, 2))
    try:
        idle(session, 1)  # 09:31, paused
        snapshot = session.snapshot()
        assert snapshot.clock_time is None
        session.set_speed(6)  # the next instant, 09:32, is ten wall seconds away
        session.resume()
        seen: list = []  # (the last instant, the clock) between the same two instants
        while len(seen) < 3:
            now = session.snapshot()
            if now.clock_time is not None:
                if seen and seen[0][0] != now.sim_time:
                    seen = []  # an instant passed: start again between the next two
                seen.append((now.sim_time, now.clock_time))
            time.sleep(0.01)
        session.pause()
        paused = session.snapshot()
        last = seen[0][0]
        clocks = [clock for _last, clock in seen]
        assert clocks == sorted(clocks) and clocks[0] < clocks[-1]
        assert all(last <= t <= last + timedelta(minutes=1) for t in clocks)
        # A pause stops the clock where it is (QA: the time went back to the last instant),
        # and a resume goes on from there.
        if paused.sim_time == last:  # (no instant passed in between)
            assert paused.clock_time is not None and paused.clock_time >= clocks[-1]
            session.set_speed(3)
            assert session.snapshot().clock_time == paused.clock_time  # still paused
            session.resume()
            again = session.snapshot()
            assert again.sim_time > last or again.clock_time >= paused.clock_time
        session.set_speed(None)  # data-driven: no clock between instants
        assert session.snapshot().clock_time is None
    finally:
        assert session.stop()


def test_an_instant_that_comes_at_once_counts_no_overrun() -> None:
    """DYNA has no bar after 12:00 on 2024-12-10: the close comes at once after the 12:00
    instant. A consumer still busy with that instant counted an overrun at the close, at
    any speed (QA): an instant without a time of its own is not late. The run is stepped
    to 11:59 (steps wait for the consumers: no overrun), then runs at 600x over its last
    minute, where the analysis takes 0.3 s."""
    config = load_config(
        "demo",
        {
            "backtest": {"start_date": "2024-12-10", "end_date": "2024-12-10", "speed": 600},
            "streams.symbols": ["DYNA"],
            "analysis": {
                "entry": "pipeline_analyses:SlowAt",
                "options": {"utc": "17:00", "seconds": 0.3},
            },
        },
    )
    session = Session(config, source="demo", start_paused=True)
    try:
        idle(session, 149)  # 09:31 .. 11:59
        assert f"{session.snapshot().sim_time:%H:%M}" == "16:59"
        session.resume()
        assert session.wait(60)
        snapshot = session.snapshot()
        assert snapshot.state == "completed"
        assert {s.stream: s.overruns for s in snapshot.subscriptions} == {
            "data_processor": 0,
            "analysis_engine": 0,
        }
    finally:
        assert session.stop()


@pytest.mark.parametrize("clock", ["data-driven", "clock-driven"])
def test_a_pause_counts_as_the_coordinators_waiting_not_as_its_work(clock: str) -> None:
    """The diagnostics' coordinator row: a paused engine waits (README: its waiting is on
    consumers, the clock and pauses); it was left out of every figure (QA: paused 8 s,
    waiting 0.131 s; after a restart, 100% busy while idle)."""
    session = demo(start_date=date(2024, 11, 26), end_date=date(2024, 11, 26), clock=clock)
    try:
        idle(session, 5)  # paused at a fixed point, having streamed five instants
        before = session.coordinator.stats().thread
        time.sleep(0.3)  # (a lower bound on the pause: any machine waits at least this)
        during = session.coordinator.stats().thread
        assert during.waiting_seconds - before.waiting_seconds >= 0.3
        assert during.busy_seconds == pytest.approx(before.busy_seconds, abs=1e-6)
        session.step(1)
        assert session.wait_idle(20)
        after = session.coordinator.stats().thread  # the pause that ended is kept
        assert after.waiting_seconds >= during.waiting_seconds
        assert session.snapshot().metrics.threads[0].waiting_seconds >= after.waiting_seconds
    finally:
        assert session.stop()
