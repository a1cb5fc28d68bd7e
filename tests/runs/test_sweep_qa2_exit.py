"""QA (2): a worker process is killed, with a warning, only when it really has not
exited: ordinary sweeps warned falsely ("did not exit 10s after its runs were done")
about once in six."""

from __future__ import annotations

import multiprocessing
import os
import time

from sessionkit.engine.runs.sweep import _close_pool, _Ran, plan_sweep, run_sweep

DAY = {"backtest.start_date": "2024-12-02", "backtest.end_date": "2024-12-02"}


class _Pool:
    """What :func:`_close_pool` uses of a ``ProcessPoolExecutor``."""

    def __init__(self, *processes: multiprocessing.process.BaseProcess) -> None:
        self._processes = {p.pid: p for p in processes}
        self._executor_manager_thread = None

    def shutdown(self, wait: bool = True) -> None:
        pass


def _close_files_then_linger(seconds: float, marker: str) -> None:
    """Close every file but the standard ones (the sentinel's pipe among them), then take
    ``seconds`` to exit: a process still exiting once its sentinel is closed. ``marker``
    is created first (the test waits for it: a loaded machine may take seconds to start
    the process)."""
    open(marker, "w").close()  # noqa: SIM115 - closed at once
    os.closerange(3, 4096)
    time.sleep(seconds)


def _started(target, *args) -> multiprocessing.process.BaseProcess:
    process = multiprocessing.get_context("spawn").Process(target=target, args=args)
    process.start()
    return process


def test_a_worker_reaped_by_the_pools_thread_is_not_killed_nor_warned_of() -> None:
    """The pool's thread reaps its processes as they exit: ``join`` then returned at once
    and ``is_alive`` said True of a process already gone (its ``waitpid`` failed)."""
    process = _started(time.sleep, 0)
    os.waitpid(process.pid, 0)  # (reaped behind multiprocessing's back, as the pool does)
    warnings: list[str] = []
    _close_pool(_Pool(process), _Ran(warnings.append), grace=0.2)  # type: ignore[arg-type]
    multiprocessing.process._children.discard(process)  # type: ignore[attr-defined]
    assert warnings == []


def test_a_worker_still_exiting_once_its_sentinel_closed_is_not_killed(tmp_path) -> None:
    marker = tmp_path / "closing"
    process = _started(_close_files_then_linger, 0.5, str(marker))
    while not marker.exists():  # (started: now closing its files, then lingering)
        assert process.exitcode is None
        time.sleep(0.01)
    warnings: list[str] = []
    # A grace far longer than the linger, on any machine: killed, it was killed for being
    # taken as still running when its sentinel closed (the defect), not for being slow.
    _close_pool(_Pool(process), _Ran(warnings.append), grace=2.0)  # type: ignore[arg-type]
    process.join(10)
    assert warnings == []
    assert process.exitcode == 0  # it exited on its own, not killed


def test_a_worker_that_really_does_not_exit_is_still_killed_and_warned_of() -> None:
    process = _started(time.sleep, 3600)
    runs = plan_sweep("demo", grid={"analysis.options.fast": [5]}, overrides=DAY)
    warnings: list[str] = []
    ran = _Ran(warnings.append)
    ran.add(process.pid, runs[0], ["leaky"])
    _close_pool(_Pool(process), ran, grace=0.2)  # type: ignore[arg-type]
    process.join(10)
    assert process.exitcode == -9
    assert len(warnings) == 1
    assert "did not exit 0.2s after its runs were done" in warnings[0]
    assert "'leaky'" in warnings[0] and f"pid {process.pid}" in warnings[0]


def test_many_short_sweeps_warn_of_no_worker() -> None:
    """The QA's sweep (eight one-day runs on two workers), many times: no warning."""
    runs = plan_sweep(
        "demo",
        grid={"analysis.options.fast": [2, 3, 4, 5, 6, 7, 8, 9]},
        overrides={**DAY, "streams.symbols": ["ACME"]},
    )
    warnings: list[str] = []
    for _ in range(8):
        outcomes = run_sweep(runs, workers=2, on_warning=warnings.append)
        assert [o.state for o in outcomes] == ["completed"] * len(runs)
    assert warnings == []
    assert multiprocessing.active_children() == []
