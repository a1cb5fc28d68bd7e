"""The data processor's own work per step, without threads (the pipeline's floor).

Run: ``python -m pytest tests/benchmarks/test_bench_processor.py --benchmark-only -s``.
The workload is the throughput benchmark's: six demo symbols, 1m streamed, 5m and 15m
derived, SMA, EMA and RSI on each interval; one step is one minute (six bars).
"""

from __future__ import annotations

from sessionkit.engine.config import config_from_dict
from sessionkit.engine.pipeline.runtime import SessionPlan, StepReady
from sessionkit.engine.pipeline.session import Session

DEMO = ["ACME", "BOLT", "CRUX", "DYNA", "EMBR", "FLUX"]


def _config():
    indicators = [
        {"name": f"{kind}_{interval}", "kind": kind, "period": 14, "interval": interval}
        for interval in ("1m", "5m", "15m")
        for kind in ("sma", "ema", "rsi")
    ]
    return config_from_dict(
        {
            "backtest": {
                "start_date": "2024-11-25",
                "end_date": "2024-11-29",
                "clock": "data-driven",
            },
            "streams": {"symbols": DEMO, "derived": ["5m", "15m"]},
            "indicators": indicators,
        }
    )


def test_bench_process_step(benchmark) -> None:
    session = Session(_config())  # threads are never started: the processor is driven here
    coordinator, processor = session.coordinator, session.processor
    days = []
    for index, day in enumerate(session.sessions, start=1):
        ts = session.time_manager.get_trading_session(day)
        plan = SessionPlan(
            index,
            day,
            ts.open,
            ts.close,
            ts.early_close,
            (),
            break_start=ts.break_start,
            break_end=ts.break_end,
        )
        steps = [
            StepReady(0, t, t.timestamp(), items) for t, items in coordinator._take_steps(index, ts)
        ]
        days.append((plan, steps))

    def replay() -> int:
        count = 0
        for plan, day_steps in days:
            processor.start_session(plan, {})
            for message in day_steps:
                processor.on_step(message)
                count += 1
            processor.flush()
        return count

    steps = benchmark.pedantic(replay, rounds=5, iterations=1)
    per_step = benchmark.stats.stats.min / steps
    bars = sum(len(m.items) for _plan, day_steps in days for m in day_steps)
    benchmark.extra_info.update(
        {
            "us_per_step": round(per_step * 1e6, 2),
            "bars_per_second": round(bars / benchmark.stats.stats.min),
        }
    )
    print(
        f"\nprocessor alone: {per_step * 1e6:.1f} us per 6-bar step, "
        f"{bars / benchmark.stats.stats.min:,.0f} bars/s ({steps} steps, {bars} bars)"
    )
    assert steps == 4 * 390 - 180  # 2024-11-25..27 and the 13:00 early close of 11-29
