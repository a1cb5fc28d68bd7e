"""QA (2): a worker process kept the native memory each run left behind (about 5 MB a
run, 86 MB to 940 MB over 200 runs on one worker): the pool now replaces each worker
after :data:`TASKS_PER_WORKER` runs; a replaced worker that cannot exit (a thread its run
left running) no longer holds up the sweep, and is warned of."""

from __future__ import annotations

import math
import multiprocessing
import os
import subprocess
import sys
from collections import Counter

from pipeline_analyses import write_leaky
from sessionkit.engine.runs import sweep
from sessionkit.engine.runs.sweep import TASKS_PER_WORKER, plan_sweep, run_sweep

DAY = {"backtest.start_date": "2024-12-02", "backtest.end_date": "2024-12-02"}


class Pid:
    """Reports the worker process it ran in."""

    def __init__(self, fast: int = 0) -> None:
        self.fast = fast

    def on_step(self, ctx) -> None:
        pass

    def metrics(self) -> dict[str, float]:
        return {"pid": float(os.getpid())}


def test_workers_are_replaced_after_their_share_of_runs() -> None:
    assert 5 <= TASKS_PER_WORKER <= 50
    count = TASKS_PER_WORKER + 2
    runs = plan_sweep(
        "demo",
        grid={"analysis.options.fast": list(range(count))},
        overrides={
            **DAY,
            "streams.symbols": ["ACME"],
            "analysis.entry": "test_sweep_qa2_memory:Pid",
        },
    )
    warnings: list[str] = []
    outcomes = run_sweep(runs, workers=1, on_warning=warnings.append)
    assert [o.state for o in outcomes] == ["completed"] * count
    per_pid = Counter(o.result.metrics["pid"] for o in outcomes)
    assert len(per_pid) == math.ceil(count / TASKS_PER_WORKER)
    assert max(per_pid.values()) == TASKS_PER_WORKER
    assert warnings == []
    assert multiprocessing.active_children() == []


def test_the_pool_is_made_to_replace_its_workers(monkeypatch) -> None:
    made: list[dict] = []

    class Spy(sweep._Pool):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(sweep, "_Pool", Spy)
    runs = plan_sweep("demo", grid={"analysis.options.fast": [5, 10]}, overrides=DAY)
    assert [o.state for o in run_sweep(runs, workers=2)] == ["completed"] * 2
    assert [kwargs.get("max_tasks_per_child") for kwargs in made] == [TASKS_PER_WORKER]


def test_a_replaced_worker_that_cannot_exit_does_not_hold_up_the_sweep(tmp_path) -> None:
    """The pool waits for a replaced worker to exit before it goes on: one whose run left
    a thread running held up the sweep for good. It ends itself after the grace, and the
    sweep warns of it as of a worker it killed at its end."""
    write_leaky(tmp_path)
    count = TASKS_PER_WORKER + 1
    result = subprocess.run(
        [sys.executable, "-m", "sessionkit.engine.cli", "sweep", "demo", "--speed", "max",
         "--start", "2024-12-02", "--end", "2024-12-02", "--set", 'streams.symbols=["ACME"]',
         "--param", "analysis.options.fast=" + ",".join(str(n) for n in range(2, 2 + count)),
         "--workers", "1", "--set", "analysis.entry=leaky:Leaky"],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"{count} of {count} runs" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "did not exit" in line]
    assert len(warnings) == 2, result.stderr  # the replaced worker, and the last one
    assert all("'leaky'" in line and "it was killed" in line for line in warnings)
    first, last = sorted(warnings, key=len, reverse=True)  # (ten runs, one)
    assert "run 1 (analysis.options.fast=2); run 2" in first and f"run {count}" not in first
    assert f"worker process of run {count} (analysis.options.fast={count + 1}) did" in last
    assert "Traceback" not in result.stderr
