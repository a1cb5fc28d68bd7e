"""Progress of a sweep's runs while they run: records posted by real worker processes
(and Dask workers), read on the caller's side; cancelling a sweep ends its workers."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from concurrent.futures.process import _ExecutorManagerThread

import pytest
from sessionkit.engine.runs.sweep import RunProgress, _Sender, plan_sweep, run_sweep

DAY = {"backtest.start_date": "2024-12-09", "backtest.end_date": "2024-12-09"}


def test_records_arrive_from_worker_processes_while_the_runs_are_in_progress() -> None:
    # Clock-driven at 600x a day lasts long enough to be seen half done on any machine;
    # the sweep is cancelled once both runs have been seen streaming.
    runs = plan_sweep(
        "demo",
        grid={"analysis.options.fast": [5, 10]},
        overrides={**DAY, "backtest.speed": 600},
    )
    records: list[RunProgress] = []
    seen: set[int] = set()
    cancel = threading.Event()

    def on_progress(record: RunProgress) -> None:
        records.append(record)
        if record.state == "streaming" and 0 < record.bars < (record.expected_bars or 0):
            seen.add(record.index)
            if seen == {0, 1}:
                cancel.set()

    outcomes = run_sweep(runs, workers=2, on_progress=on_progress, cancel=cancel)
    assert seen == {0, 1}
    assert outcomes == []  # cancelled: nothing finished
    assert multiprocessing.active_children() == []  # workers and the manager are gone
    # The pool's own thread too: CPython 3.11's exit hook wakes it through a pipe that it
    # closes as it ends, with no lock between them ("Bad file descriptor" at exit, once).
    assert [t for t in threading.enumerate() if isinstance(t, _ExecutorManagerThread)] == []
    for index in (0, 1):
        mine = [r for r in records if r.index == index]
        assert [r.bars for r in mine] == sorted(r.bars for r in mine)
        assert all(r.expected_bars == 2336 for r in mine)  # 6 symbols x 390 minutes, 4 missing
        streaming = [r for r in mine if r.state == "streaming"]
        assert streaming[-1].session_index == 1 and streaming[-1].session_count == 1
        assert streaming[-1].quality is not None and 0 < streaming[-1].quality <= 100


def test_the_last_record_of_a_run_is_its_end() -> None:
    runs = plan_sweep("demo", grid={"analysis.options.fast": [5, 10]}, overrides=DAY)
    records: list[RunProgress] = []
    outcomes = run_sweep(runs, workers=2, on_progress=records.append)
    assert [o.state for o in outcomes] == ["completed", "completed"]
    for outcome in outcomes:
        mine = [r for r in records if r.index == outcome.run.index]
        last = mine[-1]
        result = outcome.result
        assert last.state == "completed" and last.fraction == 1.0
        assert last.bars == last.expected_bars == sum(per["1m"] for per in result.bars.values())
        assert last.metrics == dict(result.metrics) and last.metrics
        mean = sum(per["1m"] for per in result.quality.values()) / len(result.quality)
        assert last.quality == round(mean, 2)
        assert last.overruns == sum(result.overruns.values())


def test_a_sweep_on_dask_reports_progress_through_the_scheduler() -> None:
    from dask.distributed import LocalCluster

    runs = plan_sweep("demo", grid={"analysis.options.fast": [5, 10]}, overrides=DAY)
    records: list[RunProgress] = []
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        outcomes = run_sweep(runs, dask=cluster.scheduler_address, on_progress=records.append)
    assert [o.state for o in outcomes] == ["completed", "completed"]
    for index in (0, 1):
        mine = [r for r in records if r.index == index]
        assert mine[-1].state == "completed"
        assert mine[-1].bars == mine[-1].expected_bars == 2336


class _SlowChannel:
    """A channel whose ``put`` blocks until released (or raises once broken)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.got: list[RunProgress] = []
        self.broken = False

    def put(self, record: RunProgress) -> None:
        self.entered.set()
        if self.broken:
            raise BrokenPipeError("reader gone")
        assert self.release.wait(10)
        self.got.append(record)


def test_a_slow_channel_never_holds_up_the_run() -> None:
    channel = _SlowChannel()
    sender = _Sender(channel)
    sender.offer(RunProgress(0, "streaming", bars=1))
    assert channel.entered.wait(10)  # the sender thread is stuck in put
    for bars in range(2, 1000):  # the run goes on offering: never blocked
        sender.offer(RunProgress(0, "streaming", bars=bars))
    channel.release.set()
    sender.close(RunProgress(0, "completed", bars=1000))
    assert channel.got[0].bars == 1  # the one in flight, then only the newest
    assert channel.got[-1] == RunProgress(0, "completed", bars=1000)
    assert len(channel.got) <= 3


def test_a_broken_channel_ends_the_reporting_not_the_run() -> None:
    channel = _SlowChannel()
    channel.broken = True
    sender = _Sender(channel)
    sender.offer(RunProgress(0, "streaming", bars=1))
    assert channel.entered.wait(10)
    sender.offer(RunProgress(0, "streaming", bars=2))  # no error reaches the run
    sender.close(RunProgress(0, "completed", bars=3), timeout=2.0)
    assert not sender._thread.is_alive()


@pytest.mark.parametrize("expected", [None, 0])
def test_fraction_is_unknown_without_a_total(expected) -> None:
    assert RunProgress(0, "streaming", bars=5, expected_bars=expected).fraction is None


def _engine_threads() -> int:
    """On a Dask worker: the engine threads alive there (a coordinator per running run)."""
    return sum(t.name == "session_coordinator" for t in threading.enumerate())


def test_cancelling_a_dask_sweep_ends_the_runs_on_the_workers() -> None:
    # Dask cannot end a running task: the runs see the sweep's stop event and end
    # themselves. At 60x a day would last 6.5 minutes; the workers must be free long before.
    from dask.distributed import Client, LocalCluster

    runs = plan_sweep(
        "demo", grid={"analysis.options.fast": [5, 10, 20]}, overrides={**DAY, "backtest.speed": 60}
    )
    seen: set[int] = set()
    cancel = threading.Event()

    def on_progress(record: RunProgress) -> None:
        if record.state == "streaming":
            seen.add(record.index)
            if len(seen) == 2:
                cancel.set()

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        outcomes = run_sweep(
            runs, dask=cluster.scheduler_address, on_progress=on_progress, cancel=cancel
        )
        assert outcomes == [] and len(seen) == 2
        deadline = time.monotonic() + 60  # bounds a hang only: the runs end within a second
        while any(client.run(_engine_threads).values()):
            assert time.monotonic() < deadline, "a cancelled run still runs on a Dask worker"
            time.sleep(0.1)
        assert all(not tasks for tasks in client.processing().values())  # none left


@pytest.mark.parametrize("dask", [None, "local"], ids=["processes", "dask-local"])
def test_worker_output_goes_to_the_given_file_not_the_terminal(tmp_path, capfd, dask) -> None:
    """The workers' prints go to the monitor's file, not its terminal (a local Dask
    cluster's worker processes printed on it: only their logs were silenced)."""
    runs = plan_sweep(
        "demo",
        grid={"analysis.options.fast": [5, 10]},
        overrides={**DAY, "analysis.entry": "sweep_analyses:Noisy"},
    )
    output = tmp_path / "workers.log"
    outcomes = run_sweep(
        runs, workers=2, dask=dask, on_progress=lambda _r: None, worker_output=str(output)
    )
    assert [o.state for o in outcomes] == ["completed", "completed"]
    text = output.read_text()
    for fast in (5, 10):
        assert f"noisy stdout fast={fast}" in text and f"noisy stderr fast={fast}" in text
    captured = capfd.readouterr()
    assert "noisy" not in captured.out and "noisy" not in captured.err


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_dask_sweep_reads_its_progress_without_errors_in_the_scheduler() -> None:
    """The caller read the progress with ``distributed.Queue.get(timeout=0.25)``: each get
    that timed out (no record for a quarter second: runs starting, ending) made the
    scheduler log "Exception while handling op queue_get" with a traceback, on the
    terminal of ``sessionkit sweep --dask local``. The queue is now polled for what it
    holds, without a timeout."""
    from dask.distributed import LocalCluster

    errors = _Errors()
    core = logging.getLogger("distributed.core")
    runs = plan_sweep("demo", grid={"analysis.options.fast": [5, 10]}, overrides=DAY)
    records: list[RunProgress] = []
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        core.addHandler(errors)
        try:
            time.sleep(1.0)  # (an idle second: a get with a timeout would time out)
            outcomes = run_sweep(runs, dask=cluster.scheduler_address, on_progress=records.append)
        finally:
            core.removeHandler(errors)
    assert [o.state for o in outcomes] == ["completed", "completed"]
    assert {r.index for r in records if r.state == "completed"} == {0, 1}
    assert [m for m in errors.messages if "queue_get" in m] == []


def test_cancelling_a_sweep_on_a_local_dask_cluster_ends_within_a_second(capfd) -> None:
    """Quitting ``sessionkit-tui sweep --dask local`` took 2.1-3.3 s: the caller noticed
    the cancel within 0.25 s, waited 0.25 s for its progress reader's last get to time
    out, then ``LocalCluster.close()`` waited 0.9-1.5 s for the worker processes to tear
    their Python down after their workers had closed. Now the cluster's workers close,
    their output is flushed, and a process still tearing down after a moment is killed:
    no worker process is left, and what the analysis printed was written."""
    runs = plan_sweep(
        "demo",
        grid={"analysis.options.fast": [5, 10, 20]},
        overrides={**DAY, "backtest.speed": 600, "analysis.entry": "sweep_analyses:Chatty"},
    )
    seen: set[int] = set()
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def on_progress(record: RunProgress) -> None:
        if record.state == "streaming" and record.bars > 0:
            seen.add(record.index)
            if len(seen) == 2 and not cancel.is_set():
                cancelled_at.append(time.monotonic())
                cancel.set()

    outcomes = run_sweep(runs, dask="local", workers=2, on_progress=on_progress, cancel=cancel)
    # (How long it took is a figure for the benchmarks, not a unit test's assertion: the
    # machine's speed must not decide a test. Measured: 0.46-0.60 s, was 1.32-2.13 s.)
    assert cancelled_at and outcomes == []
    assert multiprocessing.active_children() == []  # the worker processes are gone
    out = capfd.readouterr().out  # (the workers write to this process's stdout)
    assert "chatty fast=5" in out and "chatty fast=10" in out
