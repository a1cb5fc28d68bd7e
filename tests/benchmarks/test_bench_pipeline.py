"""Benchmarks of the whole session pipeline on the bundled demo universe.

Run: ``.venv/bin/python -m pytest tests/benchmarks/test_bench_pipeline.py --benchmark-only``
(add ``-s`` to see the figures printed; they are also in each benchmark's ``extra_info``,
see ``--benchmark-json``). Each benchmark takes a few seconds.

- end-to-end data-driven throughput: six symbols, 1m streamed, 5m and 15m derived, SMA, EMA
  and RSI on every interval, 5 trailing days; streamed base bars per wall second including
  the loads, and the snapshot's own ``bars_per_second`` (streaming time only);
- clock-driven accuracy at 60x and 600x: when each instant is published against when it
  is due (the simulated clock must stay within 1% of speed x wall time), and no overrun at
  600x on the demo configuration (with its analysis);
- the historical load of 5 trailing days of the demo universe (``initial_load_seconds``).
"""

from __future__ import annotations

import time

import pytest
from sessionkit.engine.config import config_from_dict, load_config
from sessionkit.engine.pipeline.session import Session

DEMO = ["ACME", "BOLT", "CRUX", "DYNA", "EMBR", "FLUX"]

THROUGHPUT_TARGET = 3_000
"""Streamed base bars per wall second (loads included) the pipeline must beat."""
LOAD_TARGET = 1.0
"""Seconds for the first session's load of 5 trailing days of the demo universe."""


def _throughput_config() -> dict:
    indicators = [
        {"name": f"{kind}_{interval}", "kind": kind, "period": 14, "interval": interval}
        for interval in ("1m", "5m", "15m")
        for kind in ("sma", "ema", "rsi")
    ]
    return {
        "backtest": {"start_date": "2024-12-02", "end_date": "2024-12-06", "clock": "data-driven"},
        "streams": {"symbols": DEMO, "interval": "1m", "derived": ["5m", "15m"]},
        "historical": [{"apply_to": "all", "intervals": ["1m"], "trailing_days": 5}],
        "indicators": indicators,
    }


def test_bench_data_driven_throughput(benchmark) -> None:
    config = config_from_dict(_throughput_config())
    results = []

    def run() -> None:
        started = time.perf_counter()
        session = Session(config)
        session.start()
        assert session.wait_idle(60)
        wall = time.perf_counter() - started
        assert session.stop()
        snap = session.snapshot()
        assert snap.state == "completed", snap.error
        streamed = sum(session.processor.totals[s, "1m"] for s in DEMO)
        results.append((streamed, wall, snap.metrics))

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0)
    streamed, _wall, metrics = results[-1]
    assert streamed == 5 * 390 * 6 - 2 - 8  # gaps: BOLT 2, EMBR 8 (sample_db/README.md)
    best = min(wall for _s, wall, _m in results)
    rate = streamed / best
    engine_rate = max(m.bars_per_second for _s, _w, m in results)
    benchmark.extra_info.update(
        {
            "streamed_bars": streamed,
            "bars_per_second_with_loads": round(rate),
            "snapshot_bars_per_second": round(engine_rate),
            "bars_processed": metrics.bars_processed,
            "step_latency_ms": metrics.step_latency_ms,
            "initial_load_seconds": metrics.initial_load_seconds,
        }
    )
    print(
        f"\nthroughput: {streamed} bars in {best:.3f}s = {rate:,.0f} bars/s with loads; "
        f"snapshot bars_per_second {engine_rate:,.0f}; mean step {metrics.step_latency_ms:.3f} ms"
    )
    assert rate > THROUGHPUT_TARGET


def _clock_trace(speed: float, seconds: float) -> tuple[list[tuple[float, float]], dict, object]:
    """Run the demo clock-driven at ``speed`` for ``seconds``; (wall, sim) of each instant."""
    config = load_config("demo", {"backtest": {"clock": "clock-driven", "speed": speed}})
    session = Session(config)
    runtime = session.runtime
    points: list[tuple[float, float]] = []
    session.start()
    try:
        deadline = None
        last = None
        while True:
            now = time.perf_counter()
            sim = runtime.sim_time
            if session.snapshot().state == "streaming" and deadline is None:
                deadline = now + seconds
            if deadline is not None and sim != last and sim is not None:
                points.append((now, sim.timestamp()))
                last = sim
            if deadline is not None and now >= deadline:
                break
            time.sleep(0.0005)
        snap = session.snapshot()
        overruns = {s.stream: s.overruns for s in snap.subscriptions}
    finally:
        assert session.stop()
    return points[1:], overruns, snap  # the first point is the open, before any step


@pytest.mark.parametrize(("speed", "seconds"), [(60.0, 4.5), (600.0, 3.0)])
def test_bench_clock_driven_accuracy(benchmark, speed: float, seconds: float) -> None:
    results = []
    benchmark.pedantic(lambda: results.append(_clock_trace(speed, seconds)), rounds=1, iterations=1)
    points, overruns, snap = results[0]
    assert snap.state == "streaming", snap.error
    assert len(points) >= 3
    (w0, s0), (w1, s1) = points[0], points[-1]
    rate = (s1 - s0) / (w1 - w0)
    error = abs(rate / speed - 1.0)
    lateness = [(w - w0) - (s - s0) / speed for w, s in points]
    worst = max(abs(x) for x in lateness)
    benchmark.extra_info.update(
        {
            "speed": speed,
            "instants": len(points),
            "measured_speed": round(rate, 3),
            "rate_error_pct": round(error * 100, 4),
            "max_deviation_ms": round(worst * 1000, 3),
            "overruns": overruns,
        }
    )
    print(
        f"\n{speed:g}x: {len(points)} instants over {w1 - w0:.2f}s, measured {rate:.3f}x "
        f"({error * 100:.3f}% off), worst deviation {worst * 1000:.2f} ms, overruns {overruns}"
    )
    assert error < 0.01
    # Each instant is within 1% of the elapsed wall time (plus a few ms of scheduling).
    for (w, s), late in zip(points, lateness, strict=True):
        assert abs(late) <= 0.01 * (w - w0) + 0.01, (s, late)
    if speed == 600.0:
        assert overruns == {"data_processor": 0, "analysis_engine": 0}


def test_bench_historical_load(benchmark) -> None:
    config = load_config("demo")  # 2024-11-25 with 5 trailing days (11-18..11-22)
    loads = []

    def load() -> None:
        session = Session(config, start_paused=True)
        session.start()
        assert session.wait_idle(30)
        snap = session.snapshot()
        assert session.stop()
        assert snap.state == "paused"
        assert sum(snap.series[s, "1m"].history_count for s in DEMO) > 5 * 390 * 6 - 50
        loads.append(snap.metrics.initial_load_seconds)

    benchmark.pedantic(load, rounds=5, iterations=1, warmup_rounds=1)
    best = min(loads)
    benchmark.extra_info.update(
        {"initial_load_seconds_min": round(best, 4), "initial_load_seconds_all": loads}
    )
    print(f"\nhistorical load (5 trailing days, 6 symbols): min {best * 1000:.1f} ms, {loads}")
    assert best < LOAD_TARGET


@pytest.mark.parametrize("clock", ["data-driven", "clock-driven"])
def test_bench_paused_step_latency(benchmark, clock: str) -> None:
    """Wall time of one ``step(); wait_idle()`` while paused (the UI's ``n`` key)."""
    config = load_config("demo", {"backtest": {"clock": clock, "speed": 60}})
    session = Session(config, start_paused=True)
    session.start()
    try:
        assert session.wait_idle(30)

        def step() -> None:
            session.step()
            assert session.wait_idle(5)

        benchmark.pedantic(step, rounds=100, iterations=1, warmup_rounds=5)
        assert session.snapshot().metrics.steps == 105
    finally:
        assert session.stop()
    mean = benchmark.stats.stats.mean
    benchmark.extra_info["mean_ms"] = round(mean * 1000, 3)
    print(f"\npaused step latency ({clock}): mean {mean * 1000:.2f} ms")
    assert mean < 0.05
