"""``sessionkit-tui sweep`` (the sweep monitor): its warnings, its ETA and its quitting,
without the screen where it can be (the screen's own tests are in tests/tui)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from sessionkit.engine.runs.sweep import plan_sweep
from sessionkit.tui import sweep_app
from sessionkit.tui.sweep_app import create_sweep_app
from sessionkit.tui.sweep_cli import main as sweep_main

TWO_DAYS = ["--start", "2024-12-09", "--end", "2024-12-10"]


class _Idle:
    """A sweep source whose runs never start (until cancelled)."""

    executor = "2 worker processes"

    def __init__(self, runs) -> None:
        self.runs = runs

    def run(self, *, on_progress, on_done, cancel, on_warning) -> None:
        cancel.wait(30)


async def test_the_monitor_shows_the_sweeps_warnings() -> None:
    runs = plan_sweep(
        "demo",
        shard_by="session",
        overrides={"backtest.start_date": "2024-12-09", "backtest.end_date": "2024-12-10"},
    )
    app = create_sweep_app(_Idle(runs), warnings=["--shard-by session with ...: cold"])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        notes = [(n.title, n.message, n.severity) for n in app._notifications]
        assert ("warning", "--shard-by session with ...: cold", "warning") in notes
        await pilot.press("q")


def test_the_command_passes_the_shard_warning_and_prints_it_once_the_screen_is_gone(
    monkeypatch, capsys
) -> None:
    given = {}

    def fake_app(source, **options):
        given.update(options)
        return SimpleNamespace(
            run=lambda: None,
            cancel=threading.Event(),
            started=False,
            ended=threading.Event(),
            failure=None,
            return_code=0,
        )

    monkeypatch.setattr(sweep_app, "create_sweep_app", fake_app)
    status = sweep_main(
        ["demo", *TWO_DAYS, "--shard-by", "session", "--set", "historical[0].trailing_days=0"]
    )
    assert status == 0
    (warning,) = given["warnings"]
    assert warning.startswith("--shard-by session with historical[0].trailing_days = 0 ")
    err = capsys.readouterr().err
    assert f"sessionkit-tui sweep: warning: {warning}\n" in err
    given.clear()
    assert sweep_main(["demo", *TWO_DAYS, "--shard-by", "session"]) == 0
    assert given["warnings"] == []  # the demo's 5 trailing days


# -- the ETA ------------------------------------------------------------------------------


def test_the_eta_queues_the_pending_runs_behind_the_running_ones() -> None:
    from sessionkit.tui.sweep_board import eta_seconds

    # QA's case: 3 runs of 250 s on 2 workers, 125 s in: the two running need 125 s more,
    # then the third runs alone for 250 s (the pace of the runs done said 125 s more).
    assert eta_seconds([125.0, 125.0], 1, 2, 250.0) == 375.0
    assert eta_seconds([125.0, 125.0], 0, 2, 250.0) == 125.0
    assert eta_seconds([125.0, 25.0], 1, 2, 250.0) == 275.0  # the third starts at 25 s
    assert eta_seconds([10.0, 20.0], 4, 2, 100.0) == 220.0  # 10+100+100, 20+100+100
    assert eta_seconds([], 3, 4, 100.0) == 100.0  # more workers than runs
    assert eta_seconds([], 5, 2, 100.0) == 300.0
    assert eta_seconds([50.0], 0, 0, 100.0) == 50.0  # (no worker count: the running one)


def _three_runs():
    return plan_sweep(
        "demo",
        grid={"analysis.options.fast": [5, 10, 20]},
        overrides={"backtest.start_date": "2024-12-09", "backtest.end_date": "2024-12-09"},
    )


def test_the_boards_eta_comes_from_the_runs_pace_and_the_workers() -> None:
    from sessionkit.engine.runs.sweep import RunProgress
    from sessionkit.tui.sweep_board import SweepBoard

    board = SweepBoard(_three_runs())
    assert board.eta(0.0, 2) is None  # nothing known yet
    for index in (0, 1):
        assert board.progress(RunProgress(index, "initializing", expected_bars=1000), now=10.0)
    assert board.eta(11.0, 2) is None  # no pace yet
    for index in (0, 1):
        board.progress(RunProgress(index, "streaming", bars=500, expected_bars=1000), now=135.0)
    # 125 s for half of each: 125 s left for both, then the third alone for 250 s. (The
    # monitor said about 2 minutes: the work left at the pace of two runs at once.)
    assert board.eta(135.0, 2) == 375.0
    assert board.eta(135.0, 3) == 250.0  # a third worker starts it now
    assert board.eta(135.0) == 375.0  # workers unknown: the most seen running at once


def test_the_workers_the_eta_counts_on() -> None:
    from sessionkit.tui.sweep_app import parallel_runs

    assert parallel_runs(3, 2, None) == 2
    assert parallel_runs(1, 8, None) == 1
    assert parallel_runs(3, 2, "local") == 2
    assert parallel_runs(10, None, "local:4") == 4
    assert parallel_runs(10, 2, "tcp://127.0.0.1:8786") is None


class _Warning(_Idle):
    """A sweep source that warns as it goes (a worker process killed), then idles."""

    def run(self, *, on_progress, on_done, cancel, on_warning) -> None:
        on_warning("run 1: its worker process could not exit: killed")
        cancel.wait(30)


async def test_what_the_sweep_warns_of_as_it_goes_is_shown_and_kept() -> None:
    """The sweep's warnings as it goes (a worker killed because its analysis left a
    thread running) went to a logger under the screen; the monitor shows them and keeps
    them to print once its screen is gone."""
    runs = plan_sweep(
        "demo",
        overrides={"backtest.start_date": "2024-12-09", "backtest.end_date": "2024-12-10"},
    )
    app = create_sweep_app(_Warning(runs))
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(1000):  # (a bound against a hang only)
            if app.late_warnings:
                break
            await pilot.pause(0.02)
        notes = [(n.title, n.message) for n in app._notifications]
        assert ("warning", "run 1: its worker process could not exit: killed") in notes
        await pilot.press("q")
    assert app.late_warnings == ["run 1: its worker process could not exit: killed"]


def test_a_param_key_given_twice_is_refused_before_the_screen_opens(capsys) -> None:
    """As ``sessionkit sweep`` refuses it (the first --param was dropped)."""
    status = sweep_main(
        ["demo", "--param", "analysis.options.fast=5", "--param", "analysis.options.fast=10"]
    )
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("sessionkit-tui sweep: error: --param analysis.options.fast=10: ")
    assert "given by --param analysis.options.fast=5 too" in err
