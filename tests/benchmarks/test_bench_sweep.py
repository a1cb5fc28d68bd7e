"""An 8-run sweep of the demo (the whole window, data-driven): serial, on worker processes
and on a Dask ``LocalCluster``.

Run: ``python -m pytest tests/benchmarks/test_bench_sweep.py --benchmark-only -s``.
Serial is the eight runs one after another in this process; the parallel figures include
starting the worker processes (and the cluster). On a 2-core machine the best possible
speed-up is 2x.
"""

from __future__ import annotations

import pytest
from sessionkit.engine import run_backtest
from sessionkit.engine.runs.sweep import plan_sweep, run_sweep

FAST = [3, 4, 5, 6, 8, 10, 12, 15]
WORKERS = 2


@pytest.fixture(scope="module")
def runs():
    return plan_sweep("demo", grid={"analysis.options.fast": FAST})


def _serial(runs):
    return [run_backtest(run.config) for run in runs]


@pytest.mark.parametrize("executor", ["serial", "processes", "dask"])
def test_bench_sweep_8_runs(benchmark, runs, executor: str) -> None:
    if executor == "serial":
        results = benchmark.pedantic(_serial, args=(runs,), rounds=1, warmup_rounds=0)
    else:
        options = {"workers": WORKERS, "dask": "local" if executor == "dask" else None}
        outcomes = benchmark.pedantic(
            run_sweep, args=(runs,), kwargs=options, rounds=1, warmup_rounds=0
        )
        results = [o.result for o in outcomes]
    assert [r.state for r in results] == ["completed"] * len(FAST)
    if benchmark.enabled:
        seconds = benchmark.stats.stats.min
        benchmark.extra_info.update(executor=executor, runs=len(FAST), seconds=round(seconds, 2))
        print(f"\n{executor}: {len(FAST)} demo runs in {seconds:.1f} s")
