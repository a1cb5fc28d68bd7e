"""Every key of SessionData has exactly one writer (DESIGN.md "One step").

Every write to the store (a bar series' append, through the method or the writer's list
appends, reset, trim or history mark; a quality metric) is recorded with the thread that made it and the engine component whose code made
it. Each bar series must be written only by the data processor and each quality key only
by the quality manager, each from one thread at a time: the component's own thread in
clock-driven mode, the coordinator's thread (running the handlers in order) in data-driven
mode, and never both at once when the clock mode is switched mid-run.
"""

from __future__ import annotations

import sys
import threading
from collections import defaultdict

import pytest
from running import run_to_end
from sessionkit.engine.config import config_from_dict
from sessionkit.engine.core.session_data import BarSeries, SessionData
from sessionkit.engine.pipeline.session import Session

DEMO = ["ACME", "BOLT", "CRUX"]


def _config(clock: str) -> dict:
    return {
        "backtest": {
            "start_date": "2024-12-02",
            "end_date": "2024-12-03",
            "clock": clock,
            "speed": 1_000_000,
        },
        "streams": {"symbols": DEMO, "derived": ["5m"]},
        "historical": [{"trailing_days": 1}],
        "indicators": [
            {"name": "sma_20", "kind": "sma", "period": 20, "interval": "1m"},
            {"name": "sma_5m", "kind": "sma", "period": 10, "interval": "5m"},
        ],
    }


def _component() -> str:
    """The engine module whose code is writing (the first one up the stack)."""
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("sessionkit.engine.pipeline."):
            return module.rsplit(".", 1)[1]
        frame = frame.f_back
    return "?"


@pytest.fixture
def writes(monkeypatch):
    """{key: [(thread, component), ...]} of every write to the store, in order."""
    log: dict[tuple[str, ...], list[tuple[str, str]]] = defaultdict(list)
    lock = threading.Lock()

    def record(key: tuple[str, ...]) -> None:
        entry = (threading.current_thread().name, _component())
        with lock:
            log[key].append(entry)

    for name in ("append", "reset", "drop_before", "mark_history"):
        original = getattr(BarSeries, name)

        def wrapper(self, *args, _original=original, **kwargs):
            record(("series", self.symbol, self.interval))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(BarSeries, name, wrapper)
    appenders = BarSeries.appenders

    def recording_appenders(self):
        # The processor's hot path appends through these (no BarSeries.append call).
        key = ("series", self.symbol, self.interval)

        def wrap(append):
            def recorded(value):
                record(key)
                return append(value)

            return recorded

        return tuple(wrap(append) for append in appenders(self))

    monkeypatch.setattr(BarSeries, "appenders", recording_appenders)
    set_quality = SessionData.set_quality_metric

    def quality(self, symbol, interval, pct):
        record(("quality", symbol, interval))
        return set_quality(self, symbol, interval, pct)

    monkeypatch.setattr(SessionData, "set_quality_metric", quality)
    return log


@pytest.mark.parametrize(
    ("clock", "series_thread", "quality_thread"),
    [
        ("clock-driven", "data_processor", "data_quality_manager"),
        ("data-driven", "session_coordinator", "session_coordinator"),
    ],
)
def test_each_key_has_one_writer(
    writes, clock: str, series_thread: str, quality_thread: str
) -> None:
    run_to_end(Session(config_from_dict(_config(clock))))
    series = {key: entries for key, entries in writes.items() if key[0] == "series"}
    quality = {key: entries for key, entries in writes.items() if key[0] == "quality"}
    assert len(series) == len(DEMO) * 2  # 1m and 5m of each symbol
    assert len(quality) == len(DEMO) * 3  # 1m, 5m and the history's 1m
    for key, entries in series.items():
        assert set(entries) == {(series_thread, "processor")}, key
    for key, entries in quality.items():
        assert set(entries) == {(quality_thread, "quality")}, key


def test_switching_the_clock_keeps_one_writer_at_a_time(writes) -> None:
    """Data-driven then clock-driven then data-driven: the processor's writes move between
    the coordinator's thread and its own, and never interleave (each switch drains)."""
    session = Session(config_from_dict(_config("data-driven")), start_paused=True)
    session.start()
    try:
        assert session.wait_idle(10)
        for clock in ("data-driven", "clock-driven", "data-driven", "clock-driven"):
            session.set_clock(clock)
            session.step(150)
            assert session.wait_idle(20)
        session.set_clock("data-driven")
        session.resume()
        assert session.wait(60)
    finally:
        assert session.stop()
    assert session.snapshot().state == "completed", session.snapshot().error
    key = ("series", "ACME", "1m")
    threads = [thread for thread, component in writes[key]]
    assert {component for _thread, component in writes[key]} == {"processor"}
    assert set(threads) == {"session_coordinator", "data_processor"}
    # Runs of one thread, one per clock period at most: never interleaved.
    runs = [t for i, t in enumerate(threads) if i == 0 or threads[i - 1] != t]
    assert len(runs) <= 5, runs
    # The quality manager too: inline when data-driven, on its own thread otherwise.
    quality = [thread for thread, _component in writes["quality", "ACME", "1m"]]
    assert {component for _thread, component in writes["quality", "ACME", "1m"]} == {"quality"}
    assert set(quality) == {"session_coordinator", "data_quality_manager"}
    runs = [t for i, t in enumerate(quality) if i == 0 or quality[i - 1] != t]
    assert len(runs) <= 5, runs
