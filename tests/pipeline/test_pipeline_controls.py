"""Controls of a running session: pause, resume, step, speed and clock, stop, faults, live.

Every test drives a real :class:`~sessionkit.engine.pipeline.session.Session` on the bundled sample
database. Timing assertions leave generous margins (these run on busy CI machines) but
are tight enough to tell a catch-up burst or a hung thread from normal behaviour.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pipeline_analyses import line_of
from sessionkit.engine.config import config_from_dict, load_config
from sessionkit.engine.pipeline.coordinator import SessionCoordinator
from sessionkit.engine.pipeline.processor import DataProcessor
from sessionkit.engine.pipeline.quality import DataQualityManager
from sessionkit.engine.pipeline.session import Session
from sessionkit.engine.pipeline.snapshot import Snapshot
from sessionkit.engine.store.data_manager import DataManager

NY = ZoneInfo("America/New_York")
DEMO = ["ACME", "BOLT", "CRUX", "DYNA", "EMBR", "FLUX"]
MINUTE = timedelta(minutes=1)
PAUSED = ("paused", "session-ended")
"""A free-running session paused (or stepped) wherever it was: "session-ended" when that
was a session's last instant (CI once stepped onto a close)."""
JAN3_OPEN = datetime(2011, 1, 3, 14, 30, tzinfo=UTC)
JAN4_OPEN = datetime(2011, 1, 4, 14, 30, tzinfo=UTC)


def spy(clock: str = "clock-driven", speed: float = 600.0, days: int = 2, **extra) -> dict:
    """SPY from 2011-01-03 (no history in the database before it): ``days`` sessions."""
    end = date(2011, 1, 3) + timedelta(days=days - 1)
    return {
        "backtest": {"start_date": "2011-01-03", "end_date": end, "clock": clock, "speed": speed},
        "streams": {"symbols": ["SPY"], "derived": ["5m"]},
        "indicators": [{"name": "sma", "kind": "sma", "period": 5}],
        **extra,
    }


def make(config: dict, **kwargs) -> Session:
    return Session(config_from_dict(config), **kwargs)


def alive(session: Session) -> list[str]:
    return [t.name for t in session._threads if t.is_alive()]


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def race(*targets: Callable[[], None]) -> None:
    """Run ``targets`` in threads of their own at once, switching between them as often as
    the interpreter can (between nearly any two bytecodes), and wait for them."""
    callers = [threading.Thread(target=target) for target in targets]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(30)
    finally:
        sys.setswitchinterval(interval)


def assert_stops_in_time(session: Session) -> None:
    """``stop()`` returns True within 1 s and no engine thread is left."""
    started = time.perf_counter()
    ok = session.stop()
    elapsed = time.perf_counter() - started
    assert ok, f"stop() returned False; alive: {alive(session)}"
    assert elapsed < 1.0, f"stop() took {elapsed:.3f}s"
    assert alive(session) == []
    assert session.snapshot().state in ("stopped", "completed", "error")


@pytest.fixture
def sessions():
    """Sessions made by a test; each is stopped (and its threads awaited) afterwards."""
    made: list[Session] = []
    yield made
    for session in made:
        session.stop()
        for thread in session._threads:
            if thread.ident is not None:  # started
                thread.join(10)


# -- pause, resume, step ------------------------------------------------------------------------


def test_step_advances_exactly_one_instant(sessions) -> None:
    session = make(spy(speed=1), start_paused=True)
    sessions.append(session)
    session.start()
    assert session.wait_idle(10)
    snap = session.snapshot()
    assert snap.state == "paused"
    assert snap.sim_time == JAN3_OPEN and snap.metrics.steps == 0
    assert snap.series["SPY", "1m"].bar_count == 0
    for k in range(1, 4):
        session.step()
        assert session.wait_idle(5)
        snap = session.snapshot()
        assert snap.state == "paused"
        assert snap.metrics.steps == k
        assert snap.sim_time == JAN3_OPEN + k * MINUTE
        assert snap.series["SPY", "1m"].bar_count == k
        assert snap.series["SPY", "1m"].last_bar.start == JAN3_OPEN + (k - 1) * MINUTE
    session.step(5)
    assert session.wait_idle(5)
    snap = session.snapshot()
    assert snap.metrics.steps == 8 and snap.sim_time == JAN3_OPEN + 8 * MINUTE
    assert snap.series["SPY", "5m"].bar_count == 1
    # Paused: nothing moves on its own.
    time.sleep(0.2)
    assert session.snapshot().metrics.steps == 8
    for bad in (0, -2, 1.5, "2", True, None):
        with pytest.raises(ValueError, match="whole number"):
            session.step(bad)  # type: ignore[arg-type]
    assert session.wait_idle(5) and session.snapshot().metrics.steps == 8


def test_step_across_a_session_boundary(sessions) -> None:
    session = make(spy(speed=1), start_paused=True)
    sessions.append(session)
    session.start()
    assert session.wait_idle(10)
    session.step(390)
    assert session.wait_idle(10)
    snap = session.snapshot()
    assert snap.metrics.steps == 390
    assert snap.session_date == date(2011, 1, 3)
    assert snap.sim_time == datetime(2011, 1, 3, 21, 0, tzinfo=UTC)  # the close
    assert snap.state == "session-ended"
    assert snap.series["SPY", "1m"].bar_count == 390
    session.step()
    assert session.wait_idle(10)
    snap = session.snapshot()
    assert snap.session_date == date(2011, 1, 4) and snap.session_index == 2
    assert snap.sim_time == JAN4_OPEN + MINUTE
    assert snap.metrics.steps == 391
    assert snap.series["SPY", "1m"].bar_count == 1
    assert snap.state == "paused"


@pytest.mark.parametrize("request_", ["step", "pause", "toggle_pause", "resume"])
def test_controls_after_the_end_leave_the_session_idle(request_: str, sessions) -> None:
    """A finished session is idle ("paused or finished", ``wait_idle``) whatever is asked of
    it afterwards: a step asked for after the last instant (a key pressed late) must not
    make ``wait_idle`` wait for an instant that never comes."""
    session = make(spy(clock="data-driven", days=1))
    sessions.append(session)
    session.start()
    assert session.wait(30) and session.snapshot().state == "completed"
    getattr(session, request_)()
    assert session.wait_idle(2)
    assert session.snapshot().state == "completed"


def test_a_multi_step_crosses_the_boundary_in_one_call(sessions) -> None:
    session = make(spy(speed=1), start_paused=True)
    sessions.append(session)
    session.start()
    assert session.wait_idle(10)
    session.step(392)
    assert session.wait_idle(10)
    snap = session.snapshot()
    assert snap.session_index == 2 and snap.sim_time == JAN4_OPEN + 2 * MINUTE
    assert snap.metrics.steps == 392


@pytest.mark.parametrize("clock", ["data-driven", "clock-driven"])
def test_step_requests_from_several_threads_each_run_one_instant(clock: str, sessions) -> None:
    """Step requests made while the coordinator takes earlier ones (keys pressed quickly,
    several callers) are never lost or counted twice: n calls, n instants."""
    session = make(spy(clock, speed=1), start_paused=True)
    sessions.append(session)
    session.start()
    assert session.wait_idle(10)

    def press() -> None:
        for _ in range(150):
            session.step()

    race(press, press)
    assert session.wait_idle(30)
    snap = session.snapshot()
    assert snap.metrics.steps == 300 and snap.sim_time == JAN3_OPEN + 300 * MINUTE
    assert snap.state == "paused"


def test_clock_changes_from_several_threads_never_undo_each_other(sessions) -> None:
    """``set_clock`` keeps the last speed and ``set_speed`` sets one, from any threads at
    once: no call writes back a speed another has replaced, and the subscriptions' modes
    and the quality manager's throttle always end as the clock the controls say."""
    session = make(spy(speed=1), start_paused=True)
    sessions.append(session)
    session.start()
    assert session.wait_idle(10)
    speeds = range(1, 301)
    controls = session.runtime.controls
    change = controls.change
    written: list[float] = []

    def recorded(**values: object) -> None:
        with controls.cond:
            change(**values)
            written.append(controls.speed)

    controls.change = recorded  # type: ignore[method-assign]

    def switch() -> None:
        for _ in range(150):
            session.set_clock("data-driven")
            session.set_clock("clock-driven")

    def speed() -> None:
        for value in speeds:
            session.set_speed(value)

    race(switch, speed)
    assert written == sorted(written)  # each speed given stays until a later one
    assert controls.speed == speeds[-1]
    clock = controls.clock
    assert session.processor_ready.mode == clock
    assert session.analysis_ready is None or session.analysis_ready.mode == clock
    assert session.quality.throttle == (0.01 if clock == "data-driven" else 0.0)


def test_pause_and_resume(sessions) -> None:
    # An analysis of 1 ms a step keeps the run going for many seconds (more than the test
    # consumes however fast the machine), so a slow poll never finds it completed.
    paced = {"entry": "pipeline_analyses:Sleeper", "options": {"seconds": 0.001}}
    session = make(spy(clock="data-driven", days=88, analysis=paced))
    sessions.append(session)
    session.start()
    assert wait_for(lambda: session.snapshot().metrics.steps > 50)
    session.pause()
    assert session.wait_idle(5)
    snap = session.snapshot()
    assert snap.state in PAUSED
    steps = snap.metrics.steps
    time.sleep(0.2)
    assert session.snapshot().metrics.steps == steps
    session.resume()
    assert wait_for(lambda: session.snapshot().metrics.steps > steps + 50)
    assert session.snapshot().state in ("streaming", "initializing", "session-ended")
    session.toggle_pause()
    assert session.wait_idle(5)
    assert session.snapshot().state in PAUSED


@pytest.mark.parametrize("speed", [1.0, 60.0])
def test_step_while_waiting_for_the_clock_runs_one_instant_at_once(speed: float, sessions) -> None:
    """Regression: ``_wait_until`` ignored a step requested while it waited for the clock,
    so the step took effect only when the instant was due, and ran two instants."""
    session = make(spy(speed=speed))  # running; bars due every 60 s (1x) or 1 s (60x)
    sessions.append(session)
    session.start()
    assert wait_for(lambda: session.snapshot().state == "streaming")
    time.sleep(0.2)
    before = session.snapshot().metrics.steps
    started = time.perf_counter()
    session.step()  # pause, then exactly one instant, at once
    finished = session.wait_idle(3)
    elapsed = time.perf_counter() - started
    snap = session.snapshot()
    assert finished and snap.state == "paused"
    assert snap.metrics.steps == before + 1
    assert elapsed < 0.5


def test_step_while_streaming_data_driven_pauses(sessions) -> None:
    session = make(spy(clock="data-driven", days=88))
    sessions.append(session)
    session.start()
    assert wait_for(lambda: session.snapshot().metrics.steps > 20)
    session.step(2)
    assert session.wait_idle(5)
    snap = session.snapshot()
    assert snap.state in PAUSED
    time.sleep(0.1)
    assert session.snapshot().metrics.steps == snap.metrics.steps


def test_resume_after_stepping_in_clock_driven_mode_does_not_burst(sessions) -> None:
    session = make(spy(speed=60), start_paused=True)  # one bar per wall second
    sessions.append(session)
    session.start()
    assert session.wait_idle(10)
    session.step(3)
    assert session.wait_idle(5)
    time.sleep(0.5)
    session.resume()
    time.sleep(0.6)
    snap = session.snapshot()
    assert snap.state == "streaming"
    assert snap.metrics.steps == 3  # the next bar is due a full second after resume
    assert wait_for(lambda: session.snapshot().metrics.steps == 4, timeout=2.0)


def test_resume_never_bursts_after_a_pause(sessions) -> None:
    speed = 600.0  # 10 one-minute bars per wall second
    session = make(spy(speed=speed))
    sessions.append(session)
    session.start()
    assert wait_for(lambda: session.snapshot().metrics.steps >= 3)
    session.pause()
    assert session.wait_idle(5)
    paused_at = session.snapshot().sim_time
    time.sleep(1.0)  # at 600x a burst would replay 600 simulated seconds (10 bars)
    assert session.snapshot().sim_time == paused_at
    resumed = time.perf_counter()
    session.resume()
    time.sleep(0.5)
    snap = session.snapshot()
    wall = time.perf_counter() - resumed
    advanced = (snap.sim_time - paused_at).total_seconds()
    assert advanced <= wall * speed + 120, f"{advanced}s simulated in {wall:.2f}s wall"
    assert advanced >= 120  # it did resume


# -- speed and clock ----------------------------------------------------------------------------


def _paced(session: Session, speed: float, seconds: float) -> None:
    """Clock-driven at ``speed`` (just set): over the next ``seconds``, the engine runs no
    more one-minute instants than the wall clock since the switch allows (x ``speed``,
    plus a few: the instant in flight at the switch, and each session start re-anchors
    the clock), and it does run. Bounded from above only by the engine's own pacing, so
    a slow or busy machine (which may fall behind the clock) cannot fail it."""
    switched = time.perf_counter()
    before = session.snapshot().metrics.steps
    assert wait_for(lambda: session.snapshot().metrics.steps >= before + 2, timeout=30)
    time.sleep(max(0.0, seconds - (time.perf_counter() - switched)))
    steps = session.snapshot().metrics.steps - before
    wall = time.perf_counter() - switched
    allowed = wall * speed / 60 + 3
    assert steps <= allowed, f"{steps} instants in {wall:.2f}s wall at {speed}x"


def _sprints(session: Session, steps: int) -> bool:
    """Data-driven: the engine runs ``steps`` more instants (as fast as it can)."""
    before = session.snapshot().metrics.steps
    return wait_for(lambda: session.snapshot().metrics.steps >= before + steps)


def test_set_speed_and_set_clock_at_runtime(sessions) -> None:
    """Regression (flaky): the data-driven sprints were measured in wall time (> 200 steps
    in 0.2 s), so a fast machine ran out of data and a slow one missed the rate; later the
    clock-driven rates had lower bounds (40 steps in 0.5 s at 6000x), which a busy machine
    missed. Now nothing depends on the machine's speed: the data-driven sprints are a
    number of steps, the clock-driven pacing is bounded from above by the clock, and the
    run has far more data than the test consumes."""
    session = make(spy(speed=600, days=88))  # to 2011-03-31
    sessions.append(session)
    session.start()
    assert wait_for(lambda: session.snapshot().state == "streaming")
    snap = session.snapshot()
    assert snap.clock == "clock-driven" and snap.speed == 600
    _paced(session, 600, 0.6)  # 10 bars/s
    session.set_speed(None)
    snap = session.snapshot()
    assert snap.clock == "data-driven" and snap.speed is None
    assert _sprints(session, 200)
    session.set_clock("clock-driven")  # keeps the last speed
    snap = session.snapshot()
    assert snap.clock == "clock-driven" and snap.speed == 600
    _paced(session, 600, 0.6)
    session.set_speed(6000)
    assert session.snapshot().speed == 6000
    _paced(session, 6000, 0.5)  # 100 bars/s
    session.set_clock("data-driven")
    assert session.snapshot().clock == "data-driven"
    assert _sprints(session, 200)
    session.pause()  # before the data runs out, whatever the machine's speed
    assert session.wait_idle(5)
    assert session.snapshot().state in ("paused", "session-ended")
    messages = [e.message for e in session.snapshot().events]
    assert "speed set to max (data-driven)" in messages and "speed set to 6000x" in messages
    for bad in (0, -1.0, float("nan"), float("inf"), "fast", "60", True):
        with pytest.raises(ValueError):
            session.set_speed(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        session.set_clock("fastest")  # type: ignore[arg-type]


def test_switching_to_clock_driven_does_not_burst(sessions) -> None:
    session = make(spy(clock="data-driven", speed=60, days=88))
    sessions.append(session)
    session.start()
    assert wait_for(lambda: session.snapshot().metrics.steps > 100)
    session.set_clock("clock-driven")  # 60x: one bar per second from now on
    before = session.snapshot().metrics.steps
    time.sleep(0.5)
    assert session.snapshot().metrics.steps - before <= 1


# -- stop, in every mode and state --------------------------------------------------------------


def _slow_loader(monkeypatch) -> None:
    original = SessionCoordinator._read_steps

    def slow(self, *args, **kwargs):
        time.sleep(0.4)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SessionCoordinator, "_read_steps", slow)


def _fail_processor(monkeypatch, after: int = 5) -> None:
    original = DataProcessor.process_step
    calls = [0]

    def failing(self, t, items):
        calls[0] += 1
        if calls[0] >= after:
            raise RuntimeError("processor boom")
        return original(self, t, items)

    monkeypatch.setattr(DataProcessor, "process_step", failing)


def _state_before_start(monkeypatch) -> Session:
    return make(spy())


def _state_initializing(monkeypatch) -> Session:
    _slow_loader(monkeypatch)
    session = make({**spy(), "streams": {"symbols": DEMO, "derived": ["5m", "15m"]}})
    session.start()
    time.sleep(0.1)
    assert session.snapshot().state == "initializing"
    return session


def _state_paused(monkeypatch) -> Session:
    session = make(spy(), start_paused=True)
    session.start()
    assert session.wait_idle(10)
    assert session.snapshot().state == "paused"
    return session


def _state_paused_at_session_end(monkeypatch) -> Session:
    session = make(spy(), start_paused=True)
    session.start()
    assert session.wait_idle(10)
    session.step(390)
    assert session.wait_idle(10)
    assert session.snapshot().state == "session-ended"
    return session


def _streaming(config: dict) -> Callable:
    def setup(monkeypatch) -> Session:
        session = make(config)
        session.start()
        # Data-driven, a session streams in milliseconds and the next one loads: wait for
        # a moment when it streams (the state the test is about).
        assert wait_for(
            lambda: (snap := session.snapshot()).metrics.steps >= 2 and snap.state == "streaming"
        )
        return session

    return setup


def _state_waiting_for_the_clock(monkeypatch) -> Session:
    session = make(spy(speed=1))  # the next bar is due in a minute
    session.start()
    assert wait_for(lambda: session.snapshot().state == "streaming")
    time.sleep(0.1)
    return session


def _state_in_slow_analysis(monkeypatch) -> Session:
    session = make(
        spy(
            clock="data-driven",
            analysis={"entry": "pipeline_analyses:Sleeper", "options": {"seconds": 0.3}},
        )
    )
    session.start()
    assert wait_for(lambda: session.snapshot().state == "streaming")
    time.sleep(0.1)
    return session


def _state_live(speed: float, drop_rate: float = 0.0) -> Callable:
    def setup(monkeypatch) -> Session:
        session = make(live_config(speed=speed, drop_rate=drop_rate, replay_start="10:00"))
        session.start()
        assert wait_for(lambda: session.snapshot().state == "streaming")
        time.sleep(0.2)
        return session

    return setup


def _state_completed(monkeypatch) -> Session:
    session = make(spy(clock="data-driven", days=1))
    session.start()
    assert session.wait_idle(10)
    assert session.snapshot().state == "completed"
    return session


def _state_error(monkeypatch) -> Session:
    _fail_processor(monkeypatch)
    session = make(spy(clock="data-driven"))
    session.start()
    assert wait_for(lambda: session.snapshot().state == "error")
    return session


STATES = {
    "before-start": _state_before_start,
    "initializing": _state_initializing,
    "paused": _state_paused,
    "paused-at-session-end": _state_paused_at_session_end,
    "data-driven-streaming": _streaming(spy(clock="data-driven", days=88)),
    "clock-driven-streaming": _streaming(spy(speed=6000, days=10)),
    "clock-driven-waiting": _state_waiting_for_the_clock,
    "slow-analysis": _state_in_slow_analysis,
    "live-real-time": _state_live(1.0),
    "live-fast-with-drops": _state_live(600.0, 0.1),
    "completed": _state_completed,
    "error": _state_error,
}


@pytest.mark.parametrize("state", list(STATES))
def test_stop_ends_every_thread_within_a_second(state: str, monkeypatch, sessions) -> None:
    session = STATES[state](monkeypatch)
    sessions.append(session)
    assert_stops_in_time(session)
    if state not in ("completed", "error"):
        assert session.snapshot().state == "stopped"
    assert session.stop()  # stopping twice is harmless
    assert threading.active_count() >= 1


def test_stop_while_a_long_history_loads(monkeypatch, sessions) -> None:
    """Regression: the history loads never checked for a stop (8.7 s on after stop())."""
    original = DataManager.get_bars_between

    def slow(self, *args, **kwargs):
        time.sleep(0.3)  # one symbol's long history
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DataManager, "get_bars_between", slow)
    config = {
        "backtest": {"start_date": "2024-12-02", "end_date": "2024-12-03"},
        "streams": {"symbols": DEMO},
        "historical": [{"trailing_days": 5}],
    }
    session = make(config)  # 6 symbols x 0.3 s of loading
    sessions.append(session)
    session.start()
    time.sleep(0.4)
    assert session.snapshot().state == "initializing"
    assert_stops_in_time(session)
    assert session.snapshot().state == "stopped"


def test_a_hung_analysis_is_reported_and_never_keeps_the_process_alive(sessions) -> None:
    analysis = {"entry": "pipeline_analyses:Sleeper", "options": {"seconds": 2.5, "limit": 1}}
    session = make(spy(clock="data-driven", analysis=analysis))
    sessions.append(session)
    session.start()
    assert wait_for(lambda: session.analysis.analysis.steps == 1)
    started = time.perf_counter()
    assert session.stop() is False  # the analysis is still inside its on_step
    assert time.perf_counter() - started < 1.5
    assert all(thread.daemon for thread in session._threads)
    stuck = [e.message for e in session.snapshot().events if e.level == "error"]
    (line,) = session.left_running
    assert line.startswith("session_coordinator still running 1s after stop, in ")
    assert "pipeline_analyses.py:" in line and "(Sleeper.on_step)" in line
    assert stuck == [f"stop: {line}"]
    assert session.snapshot().state == "stopped"
    # Stopped again (the programs do, on their way out): no second wait, the same report.
    started = time.perf_counter()
    assert session.stop() is False
    assert time.perf_counter() - started < 0.5
    assert session.left_running == (line,)
    assert len([e for e in session.snapshot().events if e.level == "error"]) == 1


def test_a_hung_analysis_is_reported_after_ctrl_c_interrupted_a_wait(sessions) -> None:
    """Ctrl-C while the program waits for the run (``KeyboardInterrupt`` inside
    ``Session.wait``, in a thread join) must not make a stuck thread look ended: CPython
    3.11's ``Thread.join`` then marks the thread it waited for as stopped while it runs on.
    ``stop()`` still finds the analysis stuck and says where."""
    analysis = {"entry": "pipeline_analyses:Sleeper", "options": {"seconds": 2.5, "limit": 1}}
    session = make(spy(clock="data-driven", analysis=analysis))
    sessions.append(session)
    session.start()
    assert wait_for(lambda: session.analysis.analysis.steps == 1)
    # Ctrl-C: SIGINT to the main thread, which interrupts the wait's lock acquire. The
    # timer starts inside the block, so the interrupt can never escape the test (it would
    # end the whole pytest run); the analysis sleeps 2.5 s, so the wait is still going.
    main = threading.main_thread().ident
    with pytest.raises(KeyboardInterrupt):
        threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT)).start()
        session.wait(10)
    assert session.stop() is False
    (line,) = session.left_running
    assert line.startswith("session_coordinator still running") and "Sleeper.on_step" in line


@pytest.mark.parametrize("consumer", ["processor", "analysis"])
def test_stop_ends_a_consumer_behind_the_clock_within_a_second(
    consumer: str, monkeypatch, sessions
) -> None:
    """A consumer slower than the clock falls behind (a queue backlog grows); stop() must
    still end it within a second. Regression: the processor and the analysis engine used
    to work through every queued step before reaching the STOP message."""
    if consumer == "processor":
        original = DataProcessor.process_step

        def slow(self, t, items):
            time.sleep(0.02)
            return original(self, t, items)

        monkeypatch.setattr(DataProcessor, "process_step", slow)
        session = make(spy(speed=6000))  # a step every 10 ms, processed in 20 ms
    else:
        analysis = {"entry": "pipeline_analyses:Sleeper", "options": {"seconds": 0.02}}
        session = make(spy(speed=6000, analysis=analysis))
    sessions.append(session)
    session.start()
    time.sleep(1.5)
    assert_stops_in_time(session)


# -- faults in each thread ----------------------------------------------------------------------


def _raise_in(cls, name: str, message: str, after: int = 3):
    original = getattr(cls, name)
    calls = [0]

    def failing(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] >= after:
            raise RuntimeError(message)
        return original(self, *args, **kwargs)

    return failing


FAULTS = {
    "data_processor": (DataProcessor, "process_step"),
    "data_quality_manager": (DataQualityManager, "on_step"),
    "session_coordinator": (SessionCoordinator, "_publish"),
}


@pytest.mark.parametrize("clock", ["data-driven", "clock-driven"])
@pytest.mark.parametrize("thread", [*FAULTS, "analysis"])
def test_a_failing_thread_ends_the_session_with_an_error(
    thread: str, clock: str, monkeypatch, sessions
) -> None:
    if thread == "analysis":
        analysis = {
            "entry": "pipeline_analyses:Raiser",
            "on_error": "stop",
            "options": {"after": 3, "message": "analysis boom"},
        }
        session = make(spy(clock=clock, speed=6000, analysis=analysis))
        expected = "analysis Raiser: RuntimeError: analysis boom at step 3"
    else:
        cls, name = FAULTS[thread]
        monkeypatch.setattr(cls, name, _raise_in(cls, name, f"{thread} boom"))
        session = make(spy(clock=clock, speed=6000))
        expected = f"{thread}: RuntimeError: {thread} boom"
    sessions.append(session)
    session.start()
    assert wait_for(lambda: session.snapshot().state == "error")
    # Every thread ends by itself: none is left blocked on a peer that died.
    assert wait_for(lambda: not alive(session), timeout=3.0), alive(session)
    snap = session.snapshot()
    assert snap.state == "error"
    assert snap.error == expected
    assert any(e.level == "error" and expected in e.message for e in snap.events)
    assert session.wait(1.0)
    assert_stops_in_time(session)
    assert session.snapshot().error == expected  # stop() does not overwrite the error


def _run_one_day(analysis: dict, sessions: list) -> tuple[Session, Snapshot]:
    """A data-driven SPY day with ``analysis``, run to its end: the session, its snapshot."""
    session = make(spy(clock="data-driven", days=1, analysis=analysis))
    sessions.append(session)
    session.start()
    assert session.wait(20)
    snap = session.snapshot()
    assert snap.state == "completed", snap.error
    return session, snap


def test_analysis_errors_are_counted_when_continuing(sessions) -> None:
    analysis = {
        "entry": "pipeline_analyses:Raiser",
        "on_error": "continue",
        "options": {"every": 10, "after": 1},
    }
    session, snap = _run_one_day(analysis, sessions)
    assert snap.error is None
    assert snap.metrics.analysis_errors == 39  # steps 1, 11, ..., 381 of 390
    assert session.analysis.analysis.steps == 390
    errors = [e for e in snap.events if e.level == "error"]
    assert errors and "analysis Raiser raised in step: RuntimeError" in errors[0].message
    assert session.processor.totals["SPY", "1m"] == 390


def test_analysis_errors_are_grouped_by_kind_with_the_users_line(sessions) -> None:
    """Every error is counted, and each kind (hook, exception, line of the user's code,
    not the engine's line where a wrong call failed) is kept with its count and first
    message; a signal with a bad price or kind is refused, never published."""
    analysis = {"entry": "pipeline_analyses:Misuser", "on_error": "continue"}
    session, snap = _run_one_day(analysis, sessions)
    assert snap.metrics.analysis_errors == 390 + 2  # every step; metrics() twice
    assert snap.signals == () and session.analysis.signal_count == 0
    kinds = [
        (kind.hook, kind.error, kind.where, kind.count)
        for kind in snap.metrics.analysis_error_kinds
    ]
    assert kinds == [
        (
            "step",
            "KeyError: \"no indicator 'no_such_indicator' (indicators: sma)\"",
            line_of("# Misuser: indicator"),
            130,
        ),
        (
            "step",
            "TypeError: ctx.emit: price must be a number or None, not '12.5'",
            line_of("# Misuser: price"),
            130,
        ),
        (
            "step",
            "TypeError: ctx.emit: kind must be a non-empty string, not ''",
            line_of("# Misuser: kind"),
            130,
        ),
        (
            "metrics",
            "TypeError: metrics() returned 'steps': 'many', a str, not a number",
            line_of("def metrics(self) -> dict:"),  # the user's method, not the engine's line
            2,
        ),
    ]
    first = snap.metrics.analysis_error_kinds[0].first_time
    assert first == snap.market_open + timedelta(minutes=1)  # the first step


@pytest.mark.parametrize(
    "kind", ["KeyboardInterrupt", "SystemExit", "CancelledError", "GeneratorExit"]
)
@pytest.mark.parametrize("clock", ["data-driven", "clock-driven"])
def test_interrupts_from_the_analysis_are_counted_like_any_error(kind, clock, sessions) -> None:
    """Regression: KeyboardInterrupt or SystemExit from user code ended the run as
    "stopped" with nothing recorded; so did any other ``BaseException`` (asyncio's
    ``CancelledError``, ``GeneratorExit``), killing the thread that ran the hook (QA)."""
    analysis = {
        "entry": "pipeline_analyses:Raiser",
        "on_error": "continue",
        "options": {"every": 100, "after": 1, "kind": kind, "in_metrics": True},
    }
    session = make(spy(clock=clock, speed=60_000, days=1, analysis=analysis))
    sessions.append(session)
    session.start()
    assert session.wait(30)
    snap = session.snapshot()
    assert snap.state == "completed", snap.error
    assert snap.metrics.steps == 390
    # steps 1, 101, 201, 301; metrics() after the session and at the end
    assert snap.metrics.analysis_errors == 6
    assert any(f"raised in step: {kind}" in e.message for e in snap.events)
    assert any(f"raised in metrics: {kind}" in e.message for e in snap.events)


@pytest.mark.parametrize("clock", ["data-driven", "clock-driven"])
def test_an_interrupt_with_on_error_stop_ends_the_run_in_error(clock, sessions) -> None:
    analysis = {
        "entry": "pipeline_analyses:Raiser",
        "on_error": "stop",
        "options": {"every": 100, "after": 5, "kind": "CancelledError"},
    }
    session = make(spy(clock=clock, speed=60_000, days=1, analysis=analysis))
    sessions.append(session)
    session.start()
    assert session.wait(30)
    snap = session.snapshot()
    assert snap.state == "error"
    assert "CancelledError" in (snap.error or "") and "analysis Raiser" in (snap.error or "")


@pytest.mark.parametrize("clock", ["data-driven", "clock-driven"])
def test_a_component_raising_a_base_exception_fails_the_run_naming_it(
    clock, monkeypatch, sessions
) -> None:
    """An engine component that raises something other than an ``Exception`` ends the run
    with state ``error`` naming it (its thread died unreported, the run "stopped")."""
    original = DataProcessor.process_step
    calls = [0]

    def failing(self, t, items):
        calls[0] += 1
        if calls[0] == 10:
            raise GeneratorExit("processor broke")
        return original(self, t, items)

    monkeypatch.setattr(DataProcessor, "process_step", failing)
    session = make(spy(clock=clock, speed=60_000, days=1))
    sessions.append(session)
    session.start()
    assert session.wait(30)
    snap = session.snapshot()
    assert snap.state == "error"
    assert "data_processor" in (snap.error or "") and "processor broke" in (snap.error or "")


def test_bad_analysis_options_fail_before_threads_start() -> None:
    from sessionkit.engine.errors import SessionkitError

    config = spy(analysis={"entry": "sessionkit.engine.examples:SmaCross", "options": {"fast": 50}})
    with pytest.raises(SessionkitError, match="analysis.options"):
        make(config)
    with pytest.raises(SessionkitError, match="analysis.entry"):
        make(spy(analysis={"entry": "no_such_module_xyz:Thing"}))


# -- overruns -----------------------------------------------------------------------------------


def _slow_processor(monkeypatch, seconds: float, limit: int) -> None:
    original = DataProcessor.process_step
    calls = [0]

    def slow(self, t, items):
        calls[0] += 1
        if calls[0] <= limit:
            time.sleep(seconds)
        return original(self, t, items)

    monkeypatch.setattr(DataProcessor, "process_step", slow)


def _overruns(session: Session) -> dict[str, int]:
    return {s.stream: s.overruns for s in session.snapshot().subscriptions}


def test_a_slow_processor_overruns_in_clock_driven_mode(monkeypatch, sessions) -> None:
    _slow_processor(monkeypatch, 0.03, limit=15)  # 30 ms per step; steps due every 10 ms
    session = make(spy(speed=6000))
    sessions.append(session)
    session.start()
    assert wait_for(lambda: _overruns(session)["data_processor"] > 0, timeout=3.0)
    assert session.snapshot().state == "streaming"  # an overrun never blocks
    assert wait_for(lambda: session.snapshot().metrics.steps > 40)


def test_a_slow_processor_never_overruns_in_data_driven_mode(monkeypatch, sessions) -> None:
    _slow_processor(monkeypatch, 0.01, limit=40)
    session = make(spy(clock="data-driven"))
    sessions.append(session)
    session.start()
    assert wait_for(lambda: session.snapshot().metrics.steps > 60, timeout=5.0)
    assert _overruns(session) == {"data_processor": 0}


def test_a_slow_analysis_overruns_in_clock_driven_mode_only(sessions) -> None:
    analysis = {"entry": "pipeline_analyses:Sleeper", "options": {"seconds": 0.03, "limit": 15}}
    clocked = make(spy(speed=6000, analysis=analysis))
    sessions.append(clocked)
    clocked.start()
    assert wait_for(lambda: _overruns(clocked)["analysis_engine"] > 0, timeout=3.0)
    driven = make(spy(clock="data-driven", analysis=analysis))
    sessions.append(driven)
    driven.start()
    assert wait_for(lambda: driven.analysis.analysis.steps > 30, timeout=5.0)
    assert _overruns(driven) == {"data_processor": 0, "analysis_engine": 0}


def test_a_consumer_is_counted_late_for_every_instant_it_was_behind(sessions) -> None:
    """DESIGN.md: a consumer that has not finished an instant when the next is due is an
    overrun. Counted on colliding signals, an analysis stuck in its 30th step showed none
    (it never signalled again) while the clock published 360 more instants; one working
    through a backlog showed a small share of the instants it was late for."""
    from pipeline_analyses import Hang

    Hang.release.clear()
    session = make(spy(speed=60000, days=1, analysis={"entry": "pipeline_analyses:Hang",
                                                      "options": {"after": 30}}))  # fmt: skip
    sessions.append(session)
    try:
        session.start()
        # A fixed point: every instant published (the coordinator then waits for the
        # analysis at the session's end), the analysis still in its 30th step.
        assert wait_for(lambda: session.snapshot().metrics.steps == 390, timeout=60.0)
        late = _overruns(session)["analysis_engine"]
        # Late for each instant after its 30th at least: 31 to 390 became due while it
        # was in the 30th (it may have been late before, on a busy machine).
        assert 360 <= late <= 389, late
        assert session.analysis.analysis.steps == 30
        # The diagnostics count what is in progress (they showed the analysis idle and
        # the coordinator, waiting for it, busy): between two snapshots, the stuck
        # analysis was busy and the coordinator waited all the time between them.
        assert wait_for(lambda: session.coordinator.metrics.waiting_since is not None)
        first = {t.name: t for t in session.snapshot().metrics.threads}
        after_first = time.monotonic()
        time.sleep(0.3)
        before_second = time.monotonic()
        second = {t.name: t for t in session.snapshot().metrics.threads}
        between = before_second - after_first
        busy = second["analysis_engine"].busy_seconds - first["analysis_engine"].busy_seconds
        assert busy >= between, (busy, between)
        coordinator = "session_coordinator"
        waited = second[coordinator].waiting_seconds - first[coordinator].waiting_seconds
        assert waited >= between, (waited, between)
    finally:
        Hang.release.set()
    assert session.wait(60)
    snap = session.snapshot()
    assert snap.state == "completed", snap.error
    assert _overruns(session)["analysis_engine"] == late  # catching up is not late again
    assert _overruns(session)["data_processor"] <= late


@pytest.mark.parametrize("end", ["stop", "error"])
def test_a_data_driven_run_that_ends_early_reports_its_last_quality(sessions, end) -> None:
    """Data-driven, the quality manager accounts the instants in batches of 64: a run
    stopped or failed at its 30th instant reported no quality at all (the export's
    quality column empty), a later one the quality of up to 63 instants before."""
    from pipeline_analyses import WaitAt

    WaitAt.reached.clear()
    WaitAt.proceed.clear()
    analysis = (
        {"entry": "pipeline_analyses:WaitAt", "options": {"at": 30}}
        if end == "stop"
        else {"entry": "pipeline_analyses:Raiser", "options": {"after": 30}, "on_error": "stop"}
    )
    session = make(spy(clock="data-driven", days=1, analysis=analysis))
    sessions.append(session)
    session.start()
    if end == "stop":
        assert WaitAt.reached.wait(30)
        stopper = threading.Thread(target=session.stop)
        stopper.start()
        assert wait_for(lambda: session.runtime.stopping, timeout=30.0)
        WaitAt.proceed.set()
        stopper.join(30)
    assert session.wait(30)
    snap = session.snapshot()
    assert snap.state == ("stopped" if end == "stop" else "error")
    assert snap.series["SPY", "1m"].bar_count == 30
    # What the run reports (``sessionkit run --json``, the summary): the quality over the
    # run so far, here of its 30 instants (SPY has every minute of 2011-01-03).
    assert session.quality.overall_quality("SPY") == 100.0
    assert session.quality.run_gap_count("SPY") == 0


# -- wait() ---------------------------------------------------------------------------------------


def test_wait_returns_once_every_thread_ended_with_final_quality(sessions) -> None:
    """Regression: wait() returned True (state completed) while the quality manager was
    still working through its queue, joining it with a 1 s timeout it then ignored."""
    config = {
        "backtest": {"start_date": "2024-11-25", "end_date": "2024-11-25", "clock": "data-driven"},
        "streams": {"symbols": DEMO},
    }
    session = make(config, record=True)
    sessions.append(session)
    session.start()
    assert session.wait(30)
    assert alive(session) == []
    assert session.snapshot().series["BOLT", "1m"].quality == pytest.approx(100 * 386 / 390)


# -- live replay ----------------------------------------------------------------------------------


def live_config(**live) -> dict:
    options = {
        "replay_date": "2024-12-02",
        "replay_start": "15:50",
        "speed": 600,
        "drop_rate": 0.1,
        **live,
    }
    return {
        "mode": "live",
        "live": options,
        "streams": {"symbols": DEMO, "derived": ["5m"]},
        "indicators": [{"name": "sma", "kind": "sma", "period": 5}],
    }


@pytest.fixture(scope="module")
def live_run():
    session = make(live_config())
    session.start()
    try:
        assert session.wait_idle(20)
    finally:
        assert session.stop()
    return session


def test_live_replay_completes_and_fills_gaps(live_run: Session) -> None:
    snap = live_run.snapshot()
    assert snap.state == "completed", snap.error
    assert snap.mode == "live" and snap.clock == "live"
    assert snap.session_date == date(2024, 12, 2) and snap.sessions == (date(2024, 12, 2),)
    assert snap.sim_time == datetime(2024, 12, 2, 16, 0, tzinfo=NY)
    assert live_run.quality.filled > 0
    filled = [e.message for e in snap.events if e.message.startswith("filled ")]
    assert filled and all("from the feed's backfill" in m for m in filled)
    for symbol in DEMO:
        totals = live_run.processor.totals[symbol, "1m"]
        assert 300 < totals <= 390  # about 10% dropped, some filled back
        starts = [b.start for b in live_run.data.series(symbol, "1m").bars(10**6)]
        assert len(starts) == len(set(starts))  # no bar twice
    with pytest.raises(ValueError):
        live_run.set_speed(60)
    with pytest.raises(ValueError):
        live_run.set_clock("data-driven")


def test_live_replay_counts_the_bars_it_drops(live_run: Session) -> None:
    """``ReplayFeed.dropped`` counts the bars lost in transit; every bar not streamed
    live was dropped, and the filled ones come back from those."""
    feed = live_run.coordinator.feed
    streamed = sum(live_run.processor.totals[s, "1m"] for s in DEMO)
    assert feed.dropped > 0
    assert live_run.quality.filled <= feed.dropped
    assert streamed == 6 * 390 - feed.dropped + live_run.quality.filled


def test_live_backfill_keeps_bars_in_time_order(live_run: Session) -> None:
    """Regression: backfilled bars were appended after newer bars when the quality manager
    lagged (the coordinator put pending fills in front of whatever step came next)."""
    for symbol in DEMO:
        starts = [b.start for b in live_run.data.series(symbol, "1m").bars(10**6)]
        assert starts == sorted(starts), symbol


def test_live_quality_counts_only_the_bars_that_arrived(live_run: Session) -> None:
    snap = live_run.snapshot()
    for symbol in DEMO:
        bars = live_run.data.series(symbol, "1m").bars(10**6)
        present = sum(1 for bar in bars if bar.start >= snap.market_open)
        assert present == live_run.processor.totals[symbol, "1m"]
        quality = snap.series[symbol, "1m"].quality
        assert quality == pytest.approx(100.0 * present / 390), symbol


def test_live_replay_without_drops_fills_nothing(sessions) -> None:
    session = make(live_config(drop_rate=0.0, replay_start="15:55"))
    sessions.append(session)
    session.start()
    assert session.wait_idle(20)
    snap = session.snapshot()
    assert snap.state == "completed", snap.error
    assert session.quality.filled == 0
    for symbol in DEMO:
        assert session.processor.totals[symbol, "1m"] == 390
        assert snap.series[symbol, "1m"].quality == 100.0


# -- observation from another thread ------------------------------------------------------------


def test_snapshot_and_series_are_safe_while_streaming(sessions) -> None:
    """A poller (like the UI) reads snapshots and series at full speed: no error, and every
    copy is consistent (indicator columns aligned with the bars, versions never go back).

    Every 50 steps the run waits for the poller to finish a read (``Rendezvous``), so that
    reads overlap the run on any machine (on a fast one the two days streamed in fewer
    than 10 of the poller's reads)."""
    from pipeline_analyses import Rendezvous

    Rendezvous.polled.clear()
    config = {
        "backtest": {"start_date": "2024-12-02", "end_date": "2024-12-03", "clock": "data-driven"},
        "streams": {"symbols": DEMO, "derived": ["5m", "15m"]},
        "historical": [{"trailing_days": 1}],
        "indicators": [
            {"name": "sma", "kind": "sma", "period": 20},
            {"name": "bb", "kind": "bollinger", "period": 20},
            {"name": "sma_5m", "kind": "sma", "period": 5, "interval": "5m"},
        ],
        "analysis": {"entry": "pipeline_analyses:Rendezvous", "options": {"every": 50}},
    }
    session = make(config)
    sessions.append(session)
    errors: list[BaseException] = []
    polls = [0]

    def poll() -> None:
        version = -1
        try:
            while not session.finished:
                snap = session.snapshot()
                assert snap.version >= version
                version = snap.version
                for symbol in DEMO:
                    for interval in ("1m", "5m", "15m"):
                        series = session.series(symbol, interval, n=300)
                        assert list(series.starts) == sorted(series.starts)
                        for values in series.indicators.values():
                            assert len(values) == len(series.starts)
                polls[0] += 1
                Rendezvous.polled.set()
                time.sleep(0.001)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    poller = threading.Thread(target=poll, name="test-poller")
    session.start()
    poller.start()
    assert session.wait(60)
    poller.join(10)
    assert errors == []
    met = session.analysis.analysis.met  # reads finished while the run waited mid-way
    assert met == 780 // 50 and polls[0] >= met, (met, polls)
    assert session.snapshot().state == "completed"


@pytest.mark.parametrize(
    ("live", "message"),
    [
        ({"replay_date": "2024-12-25"}, "not a NYSE trading day"),
        ({"replay_date": "2024-12-02", "replay_start": "25:99"}, "replay_start"),
        ({"replay_date": "2023-06-01"}, "no 1m bars"),
    ],
)
def test_bad_live_replay_settings_fail_before_threads_start(live: dict, message: str) -> None:
    from sessionkit.engine.errors import SessionkitError

    before = threading.active_count()
    with pytest.raises(SessionkitError, match=message):
        make(live_config(**live))
    assert threading.active_count() == before


def test_sessions_without_data_jump_to_the_close_at_once() -> None:
    """February 2011 has no SPY bars: at 60x each empty session would otherwise take 6.5
    wall minutes; time advances to each close at once, quality is 0%, nothing overruns."""
    config = load_config(
        "spy-2011",
        {"backtest": {"start_date": "2011-02-01", "end_date": "2011-02-03", "speed": 60}},
    )
    session = Session(config)
    started = time.monotonic()
    session.start()
    try:
        assert session.wait(10)
        assert time.monotonic() - started < 5
    finally:
        assert session.stop()
    snap = session.snapshot()
    assert snap.state == "completed"
    assert snap.sessions == (date(2011, 2, 1), date(2011, 2, 2), date(2011, 2, 3))
    assert snap.sim_time == datetime(2011, 2, 3, 16, 0, tzinfo=NY)
    assert snap.metrics.steps == 3  # one instant per session: its close
    assert snap.series["SPY", "1m"].quality == 0.0
    assert all(s.overruns == 0 for s in snap.subscriptions)


def test_summary_of_a_run_stopped_mid_session_has_quality() -> None:
    from sessionkit.engine.runs.backtest import result_of

    config = config_from_dict(
        {
            "backtest": {"start_date": "2024-12-10", "end_date": "2024-12-10"},
            "streams": {"symbols": ["ACME", "DYNA"]},
        }
    )
    session = Session(config, start_paused=True)
    session.start()
    try:
        assert session.wait_idle(10)
        session.step(200)  # to 12:50: DYNA's bars stop at 12:00
        assert session.wait_idle(10)
    finally:
        assert session.stop()
    data = result_of(session).to_dict()
    assert data["state"] == "stopped"
    assert data["bars"] == {"ACME": {"1m": 200}, "DYNA": {"1m": 150}}
    assert data["quality"]["ACME"]["1m"] == 100.0
    assert data["quality"]["DYNA"]["1m"] == pytest.approx(100.0 * 150 / 200, abs=0.01)


def test_a_backfilled_bar_too_late_is_reported_in_the_exchanges_time() -> None:
    """A fill older than the symbol's last streamed bar is dropped with a warning that
    gives its time in the exchange's zone, like every other event (it said "20:44 UTC"
    beside events stamped 15:46)."""
    from types import SimpleNamespace

    from sessionkit.engine.core.bar import Bar
    from sessionkit.engine.pipeline.coordinator import PendingFills, SessionCoordinator

    logged: list[tuple[str, str]] = []
    fills = PendingFills()
    late = Bar(datetime(2024, 12, 10, 20, 44, tzinfo=UTC), 1.0, 1.0, 1.0, 1.0, 1)
    fresh = Bar(datetime(2024, 12, 10, 20, 47, tzinfo=UTC), 1.0, 1.0, 1.0, 1.0, 1)
    fills.put("CRUX", [late, fresh])
    now = Bar(datetime(2024, 12, 10, 20, 48, tzinfo=UTC), 1.0, 1.0, 1.0, 1.0, 1)
    coordinator = SimpleNamespace(
        _fills=fills,
        _last_start={"CRUX": datetime(2024, 12, 10, 20, 46, tzinfo=UTC)},
        runtime=SimpleNamespace(
            tz=ZoneInfo("America/New_York"),
            log=lambda message, level="info": logged.append((level, message)),
        ),
    )
    merged = SessionCoordinator._merge_fills(coordinator, (("CRUX", now),))
    assert merged == (("CRUX", fresh), ("CRUX", now))
    assert logged == [
        ("warning", "backfilled CRUX bar 15:44 EST arrived after newer bars: dropped")
    ]
