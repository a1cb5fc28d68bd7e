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

    def run(self, *, on_progress, on_done, cancel) -> None:
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
