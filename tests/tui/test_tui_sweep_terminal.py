"""The real ``sessionkit-tui sweep`` command in a real terminal (tmux): a sweep of worker
processes shown live until every run completed, a run's summary, and ``q``.

Uses the tmux server per test of ``test_tui_terminal`` (120x40).
"""

from __future__ import annotations

from pathlib import Path

from test_tui_terminal import COMMAND, EXIT, Terminal, pytestmark, terminal  # noqa: F401

RUNS_TESTS = Path(__file__).resolve().parents[1] / "runs"
"""Where ``sweep_analyses`` lives (the workers import it)."""

ONE_DAY = "--set backtest.start_date=2024-12-09 --set backtest.end_date=2024-12-09"


def test_the_sweep_monitor_shows_every_run_completed(terminal: Terminal) -> None:  # noqa: F811
    # The analysis prints in the workers: that must not land on the monitor's screen.
    terminal.keys(
        f"PYTHONPATH={RUNS_TESTS} {COMMAND} sweep demo --param analysis.options.fast=5,10 "
        f"{ONE_DAY} --set analysis.entry=sweep_analyses:Noisy --workers 2; "
        "echo EXIT-STATUS=$?",
        "Enter",
    )
    # The bound only stops a hang: a loaded machine may take long to start the workers.
    screen = terminal.wait_for(
        lambda s: "2 done" in s and s.count("completed") == 2 and "finished" in s, timeout=180
    )
    assert "demo.toml: 2 runs, 2 worker processes" in screen
    assert "4,672 of 4,672 bars" in screen  # 2 runs x 2,336 one-minute bars
    assert "total_return%" in screen and "failed" not in screen
    assert "noisy" not in screen
    terminal.keys("Enter")
    screen = terminal.wait_for(lambda s: "run 1 of 2: analysis.options.fast=5" in s)
    assert "completed: 1 session(s) 2024-12-09 .. 2024-12-09" in screen
    terminal.keys("Escape")
    terminal.wait_for(lambda s: "run 1 of 2:" not in s)
    terminal.keys("q")
    screen = terminal.wait_for(lambda s: EXIT.search(s) is not None)
    assert "EXIT-STATUS=0" in screen
    assert "Runs" not in screen  # back on the normal screen
    assert "sessionkit-tui sweep: the worker processes wrote to " in screen
    assert "noisy" not in screen


def test_q_while_runs_stream_cancels_them_and_exits(terminal: Terminal) -> None:  # noqa: F811
    terminal.keys(
        f"{COMMAND} sweep demo --param analysis.options.fast=5,10,20 {ONE_DAY} --speed 600 "
        "--workers 2; echo EXIT-STATUS=$?",
        "Enter",
    )
    terminal.wait_for(lambda s: s.count("streaming") == 2 and "1 pending" in s, timeout=180)
    terminal.keys("q")
    screen = terminal.wait_for(lambda s: EXIT.search(s) is not None)
    assert "EXIT-STATUS=0" in screen
    assert "Traceback" not in screen
