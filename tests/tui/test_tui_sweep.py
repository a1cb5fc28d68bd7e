"""The sweep monitor (``sessionkit-tui sweep``): snapshots at a fixed point, every key, and
quitting a real sweep of worker processes.

The snapshot and key tests feed the monitor a fake source: runs configured as a plan's (not
checked: the fake decides what becomes of them), and a fixed script of progress records and outcomes (the outcomes' results come from real runs
of the demo, their wall-clock figures fixed), delivered from the monitor's own worker
thread as the real sweep delivers them. Accept changed snapshots with
``pytest tests/tui/test_tui_sweep.py --snapshot-update`` only after looking at them.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
import time
from collections.abc import Callable

import pytest
from rich.console import Console
from sessionkit.engine import run_backtest
from sessionkit.engine.runs.backtest import resolve_config
from sessionkit.engine.runs.sweep import RunProgress, SweepOutcome, SweepRun, plan_sweep
from sessionkit.tui.screens.sweep_summary import RunSummaryScreen
from sessionkit.tui.sweep_app import LiveSweep, SweepMonitorApp, create_sweep_app
from sessionkit.tui.sweep_cli import main as sweep_main
from sessionkit.tui.widgets.sweep_table import SweepTable
from textual.pilot import Pilot
from textual.widgets import Static
from tui_helpers import SNAPSHOT_SIZES

DAY = {"backtest.start_date": "2024-12-09", "backtest.end_date": "2024-12-09"}
FAST = [5, 10, 20, 30, 40]


class FakeSweep:
    """A sweep source that delivers a fixed script, then holds (like runs still going)
    until cancelled."""

    executor = "2 worker processes"

    def __init__(self, runs, script, *, hold: bool = True) -> None:
        self.runs = runs
        self.script = script
        self.hold = hold
        self.delivered = threading.Event()
        self.cancelled = threading.Event()

    def run(self, *, on_progress, on_done, cancel, on_warning) -> None:
        for item in self.script:
            (on_done if isinstance(item, SweepOutcome) else on_progress)(item)
        self.delivered.set()
        if self.hold and cancel.wait(30):
            self.cancelled.set()


def _fixed(result):
    """A real result with its wall-clock figures fixed (the summary shows them)."""
    return dataclasses.replace(
        result,
        bars_per_second=25000.0,
        load_seconds=0.25,
        wall_seconds=0.5,
        step_latency_ms=0.1,
        load={"initial_seconds": 0.2, "subsequent_mean_seconds": None},
    )


def _unchecked_runs() -> list[SweepRun]:
    """The runs of ``--param analysis.options.fast=5,10,20,30,40``, configured as
    :func:`plan_sweep` configures them but not checked: it refuses fast 30 and 40 (the
    demo's slow is 30), and here no run starts (the fake source tells their story)."""
    base = resolve_config("demo", DAY)
    return [
        SweepRun(
            index,
            {"analysis.options.fast": fast},
            None,
            resolve_config(base, {"analysis.options.fast": fast}),
        )
        for index, fast in enumerate(FAST)
    ]


@pytest.fixture(scope="module")
def script_parts():
    runs = _unchecked_runs()
    done = _fixed(run_backtest(runs[0].config))
    third = _fixed(run_backtest(runs[2].config))
    return runs, done, third


def _script(runs, done, third) -> list:
    """Run 1 completed, run 2 failed, run 3 completed, run 4 streaming at 40 %, run 5
    pending."""
    bars = sum(per["1m"] for per in done.bars.values())
    quality = round(sum(q["1m"] for q in done.quality.values()) / len(done.quality), 2)

    def record(index: int, state: str, done_bars: int, metrics: dict) -> RunProgress:
        return RunProgress(
            index=index,
            state=state,
            bars=done_bars,
            expected_bars=bars,
            bars_per_second=25000.0,
            quality=quality,
            overruns=0,
            session_index=1,
            session_count=1,
            metrics=metrics,
        )

    return [
        record(0, "streaming", bars // 2, {}),
        record(0, "completed", bars, dict(done.metrics)),
        SweepOutcome(runs[0], done),
        SweepOutcome(runs[1], None, "ConfigError: analysis.options.fast: not today"),
        record(2, "completed", bars, dict(third.metrics)),
        SweepOutcome(runs[2], third),
        record(3, "streaming", bars * 2 // 5, {"total_return_pct": 0.125, "trades": 3.0}),
    ]


def _source(script_parts, *, hold: bool = True) -> FakeSweep:
    runs, done, third = script_parts
    return FakeSweep(runs, _script(runs, done, third), hold=hold)


def _app(source) -> SweepMonitorApp:
    return create_sweep_app(source, frozen_metrics=True, title="demo.toml")


async def _until(predicate: Callable[[], bool], pilot: Pilot, bound: float = 20.0) -> None:
    """Let the app run until ``predicate`` holds (``bound`` only stops a hang)."""
    deadline = time.monotonic() + bound
    while not predicate():
        assert time.monotonic() < deadline, "the monitor never reached the expected state"
        await pilot.pause(0.02)


async def _delivered(pilot: Pilot) -> None:
    """``run_before``: the whole script delivered and shown."""
    app = pilot.app
    assert isinstance(app, SweepMonitorApp)
    await _until(lambda: app.source.delivered.is_set(), pilot)
    await pilot.pause()
    await _until(lambda: app.board.entries[3].record is not None, pilot)
    app.query_one(SweepTable).show(app.board)
    await pilot.pause()


# -- snapshots ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SNAPSHOT_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_runs_table(snap_compare, script_parts, size):
    """Two runs completed, one failed, one streaming at 40 %, one pending."""
    source = _source(script_parts)
    try:
        assert snap_compare(_app(source), terminal_size=size, run_before=_delivered)
    finally:
        source.hold = False


@pytest.mark.parametrize("size", SNAPSHOT_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_summary_of_a_finished_run(snap_compare, script_parts, size):
    source = _source(script_parts)

    async def open_summary(pilot: Pilot) -> None:
        await _delivered(pilot)
        await pilot.press("enter")  # the cursor starts on run 1, completed
        await _until(lambda: isinstance(pilot.app.screen, RunSummaryScreen), pilot)
        await pilot.pause()

    assert snap_compare(_app(source), terminal_size=size, run_before=open_summary)


# -- keys -----------------------------------------------------------------------------------


async def test_the_table_shows_every_state(script_parts) -> None:
    source = _source(script_parts)
    app = _app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await _delivered(pilot)
        states = [app.board.entries[i].state for i in range(5)]
        assert states == ["completed", "failed", "completed", "streaming", "pending"]
        table = app.query_one(SweepTable)
        assert table.order == [0, 1, 2, 3, 4]
        assert table.get_cell("3", "progress").plain.endswith(" 40%")
        assert table.get_cell("0", "metric:total_return_pct").plain != "-"
        status = str(app.query_one("#sweep-status", Static).render())
        assert "5 runs, 2 worker processes" in status
        assert "3 done (1 failed), 1 running, 1 pending" in status
        await pilot.press("q")
    assert source.cancelled.is_set()


def _returns(app: SweepMonitorApp) -> dict[int, float | None]:
    return {i: e.metric("total_return_pct") for i, e in app.board.entries.items()}


async def test_s_cycles_the_sort_column_and_metrics_sort_best_first(script_parts) -> None:
    source = _source(script_parts)
    app = _app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await _delivered(pilot)
        table = app.query_one(SweepTable)
        keys = [c.key for c in app.board.columns()]
        assert keys[:8] == [
            "index",
            "param:analysis.options.fast",
            "state",
            "progress",
            "rate",
            "quality",
            "overruns",
            "metric:total_return_pct",
        ]
        await pilot.press("s")
        assert (table.sort_key, table.sort_descending) == ("param:analysis.options.fast", False)
        assert table.order == [0, 1, 2, 3, 4]
        await pilot.press("s")
        assert table.sort_key == "state"  # trouble first, done last
        assert table.order == [1, 4, 3, 0, 2]
        for _ in range(5):
            await pilot.press("s")
        assert (table.sort_key, table.sort_descending) == ("metric:total_return_pct", True)
        returns = _returns(app)
        known = sorted((i for i in returns if returns[i] is not None), key=lambda i: -returns[i])
        assert table.order == [*known, 1, 4]  # runs without the metric last
        assert len(known) == 3
        assert "sorted by total_return% ▼" in str(table.border_subtitle)
        for _ in range(len(keys) - 7):
            await pilot.press("s")
        assert table.sort_key == "index"  # round again
        await pilot.press("q")


async def test_best_first_is_lowest_first_for_overruns_and_costs(script_parts) -> None:
    """QA: ``s`` sorted every numeric column highest first, the most overruns and the
    deepest drawdown on top."""
    source = _source(script_parts)
    app = _app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await _delivered(pilot)
        table = app.query_one(SweepTable)
        directions = {}
        for _ in range(len(app.board.columns()) - 1):
            await pilot.press("s")
            directions[table.sort_key] = table.sort_descending
            if table.sort_key == "metric:max_drawdown_pct":
                drawdowns = {i: e.metric("max_drawdown_pct") for i, e in app.board.entries.items()}
                known = [i for i in table.order if drawdowns[i] is not None]
                assert [drawdowns[i] for i in known] == sorted(drawdowns[i] for i in known)
                assert "sorted by max_drawdown% ▲" in str(table.border_subtitle)
        assert directions["overruns"] is False
        assert directions["metric:max_drawdown_pct"] is False
        assert directions["metric:total_return_pct"] is True
        assert directions["metric:win_rate_pct"] is True
        assert directions["quality"] is True and directions["rate"] is True
        await pilot.press("q")


def test_which_metrics_are_best_at_their_lowest() -> None:
    from sessionkit.tui.sweep_board import lower_is_better

    lowest = ["max_drawdown_pct", "maxDrawdown", "avg_loss", "errors", "wall_seconds", "fees"]
    highest = ["total_return_pct", "trades", "win_rate_pct", "sharpe", "profit_factor"]
    assert [name for name in lowest if not lower_is_better(name)] == []
    assert [name for name in highest if lower_is_better(name)] == []


async def test_at_80_columns_right_and_left_scroll_by_a_column(script_parts) -> None:
    """QA: ``right`` scrolled one character a press."""
    source = _source(script_parts)
    app = _app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await _delivered(pilot)
        table = app.query_one(SweepTable)
        starts, x = [], 0
        for column in table.ordered_columns:
            starts.append(x)
            x += column.get_render_width(table)
        assert table.max_scroll_x > 0 and table.scroll_x == 0
        seen = [0]
        while table.scroll_x < table.max_scroll_x:
            await pilot.press("right")
            await pilot.pause()
            assert table.scroll_x > seen[-1]
            seen.append(int(table.scroll_x))
        assert seen[1] == starts[1]  # the second column at the left edge
        assert all(x in starts for x in seen[:-1])
        assert seen[-1] == table.max_scroll_x  # the last press shows the table's end
        await pilot.press("left")
        await pilot.pause()
        assert table.scroll_x == max(x for x in starts if x < seen[-1])
        await pilot.press("q")


async def test_at_80_columns_the_status_line_breaks_between_its_items(script_parts) -> None:
    """QA: the status line wrapped inside an item (``· 3,864`` / `` bars · ETA ...``)."""
    separator = " · "
    source = _source(script_parts)
    app = _app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await _delivered(pilot)
        await pilot.pause()
        status = app.query_one("#sweep-status", Static)
        items = app.status_text().split(separator)  # as one line
        lines = status.render_lines(status.content_region.reset_offset)
        shown = ["".join(seg.text for seg in line).strip() for line in lines]
        shown = [line for line in shown if line]
        assert len(shown) > 1  # it does not fit in one line at 80 columns
        for line in shown:
            assert line.split(separator) == [i for i in items if i in line]
        assert separator.join(shown) == separator.join(items)
        await pilot.press("q")


async def test_clicking_a_header_sorts_by_it_and_again_reverses(script_parts) -> None:
    source = _source(script_parts)
    app = _app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await _delivered(pilot)
        table = app.query_one(SweepTable)
        columns = app.board.columns()
        position = next(i for i, c in enumerate(columns) if c.key == "metric:total_return_pct")
        # The border, then each column with one cell of padding either side.
        x = 1 + sum(c.width + 2 for c in columns[:position]) + 2
        await pilot.click(SweepTable, offset=(x, 1))
        assert (table.sort_key, table.sort_descending) == ("metric:total_return_pct", True)
        best_first = list(table.order)
        await pilot.click(SweepTable, offset=(x, 1))
        assert table.sort_descending is False
        assert table.order[:3] == best_first[:3][::-1]
        await pilot.press("q")


async def test_the_cursor_follows_the_run_when_the_order_changes(script_parts) -> None:
    source = _source(script_parts)
    app = _app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await _delivered(pilot)
        table = app.query_one(SweepTable)
        await pilot.press("down", "down")
        assert table.run_index == 2
        await pilot.press("s", "s")  # by state: run 3 moves to the bottom
        assert table.run_index == 2 and table.order[-1] == 2
        await pilot.press("q")


async def test_enter_shows_a_finished_runs_summary_and_escape_goes_back(script_parts) -> None:
    source = _source(script_parts)
    app = _app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await _delivered(pilot)
        await pilot.press("enter")
        await _until(lambda: isinstance(app.screen, RunSummaryScreen), pilot)
        body = app.screen.query_one("#summary-body", Static)
        text = _plain(body)
        _runs, done, _third = script_parts
        assert "completed: 1 session(s) 2024-12-09 .. 2024-12-09" in text
        assert f"signals: {done.signal_count}" in text
        assert "run 1 of 5: analysis.options.fast=5" in _plain(
            app.screen.query_one("#summary-title", Static)
        )
        await pilot.press("escape")
        await _until(lambda: not isinstance(app.screen, RunSummaryScreen), pilot)
        # A failed run: its error.
        await pilot.press("down", "enter")
        await _until(lambda: isinstance(app.screen, RunSummaryScreen), pilot)
        assert "failed: ConfigError: analysis.options.fast: not today" in _plain(
            app.screen.query_one("#summary-body", Static)
        )
        await pilot.press("escape")
        await _until(lambda: not isinstance(app.screen, RunSummaryScreen), pilot)
        # A run still streaming, and one pending: no summary yet, the monitor says so.
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert not isinstance(app.screen, RunSummaryScreen)
        assert any("run 4 of 5 is streaming" in n.message for n in app._notifications)
        await pilot.press("down", "enter")
        await pilot.pause()
        assert any("run 5 of 5 is pending" in n.message for n in app._notifications)
        await pilot.press("q")


def _plain(widget: Static) -> str:
    from rich.console import Console

    console = Console(width=100, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(widget.content if hasattr(widget, "content") else widget.renderable)
    return console.export_text()


async def test_q_cancels_the_pending_runs_and_quits(script_parts) -> None:
    source = _source(script_parts)
    app = _app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await _delivered(pilot)
        await pilot.press("q")
        await _until(lambda: app.ended.is_set(), pilot)
    assert source.cancelled.is_set()
    assert [app.board.entries[i].state for i in range(5)] == [
        "completed",
        "failed",
        "completed",
        "cancelled",
        "cancelled",
    ]


async def test_q_on_the_summary_screen_quits_too(script_parts) -> None:
    source = _source(script_parts)
    app = _app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await _delivered(pilot)
        await pilot.press("enter")
        await _until(lambda: isinstance(app.screen, RunSummaryScreen), pilot)
        await pilot.press("q")
        await _until(lambda: app.ended.is_set(), pilot)
    assert source.cancelled.is_set()


async def test_a_finished_sweep_says_so_and_q_leaves_at_once(script_parts) -> None:
    runs, done, third = script_parts
    outcomes = [SweepOutcome(runs[0], done), SweepOutcome(runs[2], third)]
    source = FakeSweep([runs[0], runs[2]], outcomes, hold=False)
    app = _app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(lambda: app.ended.is_set(), pilot)
        await _until(lambda: "finished" in app.status_text(), pilot)
        assert "2 done, 0 running, 0 pending" in app.status_text()
        await pilot.press("q")
    assert not source.cancelled.is_set()


# -- a real sweep -----------------------------------------------------------------------------


async def test_q_ends_a_real_sweeps_worker_processes() -> None:
    # Clock-driven at 600x, a day lasts long enough to be seen streaming on any machine.
    runs = plan_sweep(
        "demo",
        grid={"analysis.options.fast": [5, 10, 20]},
        overrides={**DAY, "backtest.speed": 600},
    )
    app = create_sweep_app(LiveSweep(runs, workers=2))
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(
            lambda: (
                sum(
                    e.state == "streaming" and (e.record.bars or 0) > 0
                    for e in app.board.entries.values()
                )
                == 2
            ),
            pilot,
            bound=120,
        )
        assert app.board.entries[2].state == "pending"
        began = time.monotonic()
        await pilot.press("q")
        await _until(lambda: app.ended.is_set(), pilot)
    quit_seconds = time.monotonic() - began
    print(f"q -> sweep ended and app left in {quit_seconds:.2f}s")
    assert multiprocessing.active_children() == []  # no worker (nor the manager) lingers
    assert [e.state for e in app.board.entries.values()] == ["cancelled"] * 3


def _error_script(script_parts):
    """Run 1 ended in an error in its first session after 50 bars (its result has no
    quality: no session ended), run 2 failed without a result after 40 bars, run 3
    completed."""
    runs, done, _third = script_parts
    symbols = list(done.quality)
    errored = dataclasses.replace(
        done,
        state="error",
        error="analysis Boom: ValueError: boom at step 50",
        bars={s: {"1m": 50, "5m": 10, "15m": 3} for s in symbols},
        quality={s: dict.fromkeys(done.quality[s]) for s in symbols},
    )

    def record(index: int, bars: int) -> RunProgress:
        return RunProgress(
            index=index, state="streaming", bars=bars, expected_bars=2340, quality=100.0
        )

    return [
        record(0, 50 * len(symbols)),
        SweepOutcome(runs[0], errored),
        record(1, 40 * len(symbols)),
        SweepOutcome(runs[1], None, "RuntimeError: the worker died"),
        SweepOutcome(runs[2], done),
    ]


def _summary_text(screen) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(*screen._body)
    return console.export_text()


async def test_a_run_ended_in_error_shows_what_is_known_of_its_quality(script_parts) -> None:
    """QA: ``enter`` on a run that ended in an error showed quality ``-`` for every symbol
    (and its row ``Q%`` ``-``) although 50 bars were streamed."""
    runs = script_parts[0][:3]
    source = FakeSweep(runs, _error_script(script_parts))
    app = _app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(lambda: source.delivered.is_set(), pilot)
        await pilot.pause()
        table = app.query_one(SweepTable)
        assert table.get_cell("0", "quality").plain == "100.0"
        await pilot.press("enter")
        await _until(lambda: isinstance(app.screen, RunSummaryScreen), pilot)
        body = _summary_text(app.screen)
        assert "quality: 100.0 % (of the session so far when the run ended" in body
        await pilot.press("escape", "down", "enter")
        await _until(lambda: isinstance(app.screen, RunSummaryScreen), pilot)
        body = _summary_text(app.screen)
        assert "RuntimeError: the worker died" in body
        assert f"before it failed: {40 * 6:,} bars streamed, quality 100.0 %" in body
        await pilot.press("escape", "q")


def _finished(outcomes):
    """``SweepMonitorApp.run`` without a screen: the sweep's outcomes arrive, the app
    ends (as when the user quits after the runs ended)."""

    def run(app, *args, **kwargs) -> None:
        for outcome in outcomes:
            app.board.finish(outcome)

    return run


@pytest.mark.parametrize(
    ("states", "status"),
    [(("completed", "completed"), 0), (("completed", "error"), 1), (("failed",), 1)],
)
def test_the_sweep_monitor_exits_1_if_a_run_failed_or_errored(
    script_parts, monkeypatch, states, status
) -> None:
    runs, done, _third = script_parts
    outcomes = []
    for run, state in zip(runs, states, strict=False):
        if state == "failed":
            outcomes.append(SweepOutcome(run, None, "RuntimeError: the worker died"))
        else:
            outcomes.append(SweepOutcome(run, dataclasses.replace(done, state=state)))
    monkeypatch.setattr(SweepMonitorApp, "run", _finished(outcomes))
    args = ["demo", "--param", f"analysis.options.fast={','.join(['5', '10'][: len(states)])}"]
    assert sweep_main([*args, "--set", "backtest.end_date=2024-11-25"]) == status


def test_runs_cancelled_because_the_user_quit_do_not_fail_the_sweep_monitor(
    script_parts, monkeypatch
) -> None:
    runs, done, _third = script_parts

    def quit_early(app, *args, **kwargs) -> None:
        app.board.finish(SweepOutcome(runs[0], done))
        app.board.cancel_unfinished()  # q: the others were cancelled

    monkeypatch.setattr(SweepMonitorApp, "run", quit_early)
    assert sweep_main(["demo", "--param", "analysis.options.fast=5,10"]) == 0


# -- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["demo"], "needs at least one --param KEY=V1,V2 or --shard-by"),
        (["demo", "--param", "analysis.optons.fast=5,10"], "--param analysis.optons.fast=5"),
        (["demo", "--param", "analysis.options.fast=5", "--workers", "0"], "--workers must be"),
        (["demo", "--param", "analysis.options.fast=5", "--theme", "nope"], "unknown theme"),
        (["demo", "--shard-by", "year"], "invalid choice: 'year'"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(capsys, args, fragment) -> None:
    assert sweep_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("sessionkit-tui sweep: error: ") and fragment in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["--param", "analysis.options.fast=5,abc"],
            "from --param analysis.options.fast=abc:\n  analysis.options: "
            "sessionkit.engine.examples:SmaCross refused them",
        ),
        (
            ["--param", 'streams.symbols=["ACME"],["ZZZ"]'],
            "from --param streams.symbols=[\"ZZZ\"]:\n  streams.symbols: 'ZZZ' not in the database",
        ),
        (
            ["--param", "analysis.entry=nosuch:X,sessionkit.engine.examples:SmaCross"],
            "from --param analysis.entry=nosuch:X:\n  analysis.entry: cannot import module",
        ),
        (["--param", "analysis.options.fast=5", "--db", "nowhere.sqlite"], "does not exist"),
    ],
)
def test_a_mistake_in_any_run_is_reported_before_the_screen_opens(
    capsys, monkeypatch, tmp_path, args, fragment
) -> None:
    """The monitor opened and showed the bad run as failed once its worker tried it; every
    run is now checked as its session will check it, before the screen opens."""
    import sessionkit.tui.sweep_app as sweep_app

    def screen(*_args, **_kwargs):
        raise AssertionError("the screen opened")

    monkeypatch.setattr(sweep_app, "create_sweep_app", screen)
    monkeypatch.chdir(tmp_path)  # --db nowhere.sqlite is relative to the working folder
    assert sweep_main(["demo", "--start", "2024-12-09", "--end", "2024-12-09", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sessionkit-tui sweep: error: invalid configuration")
    assert fragment in err and "Traceback" not in err


def test_the_main_command_hands_sweep_to_the_monitor(capsys) -> None:
    from sessionkit.tui.cli import main

    assert main(["sweep", "demo"]) == 2
    assert "sessionkit-tui sweep: error:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--param", "--set", "--shard-by", "--workers", "--dask", "enter", "q "):
        assert option in help_text


# -- the board, without Pilot -------------------------------------------------------------------


def test_the_board_of_a_sharded_sweep_has_a_window_column() -> None:
    from sessionkit.tui.sweep_board import SweepBoard

    runs = plan_sweep(
        "demo",
        shard_by="week",
        overrides={"backtest.start_date": "2024-11-27", "backtest.end_date": "2024-12-10"},
    )
    board = SweepBoard(runs)
    keys = [c.key for c in board.columns()]
    assert keys[:3] == ["index", "window", "state"]
    from sessionkit.tui.format import Figures

    windows = [board.cells(i, Figures())[1][0] for i in range(3)]
    assert windows == ["2024-11-27..11-29", "2024-12-02..12-06", "2024-12-09..12-10"]


def test_a_record_after_the_outcome_changes_nothing(script_parts) -> None:
    from sessionkit.tui.sweep_board import SweepBoard

    runs, done, _third = script_parts
    board = SweepBoard(runs)
    assert board.progress(RunProgress(0, "streaming", bars=10, expected_bars=100))
    assert board.bars() == (10, None)  # the other runs have not said how many bars yet
    board.finish(SweepOutcome(runs[0], done))
    assert not board.progress(RunProgress(0, "streaming", bars=20, expected_bars=100))
    # The outcome came before the worker's last record: its bars are the result's.
    streamed = sum(per["1m"] for per in done.bars.values())
    assert streamed > 20
    assert board.entries[0].state == "completed" and board.entries[0].record.bars == streamed
    # And the whole run's quality, rate and overruns (QA on Dask: '-' or the last
    # session's quality, as the worker's last record came after the outcome).
    record = board.entries[0].record
    base = [q["1m"] for q in done.quality.values()]
    assert record.quality == round(sum(base) / len(base), 2)
    assert record.bars_per_second == round(done.bars_per_second, 1) > 0
    assert record.overruns == sum(done.overruns.values())
    # A run whose outcome came before any record at all.
    board.finish(SweepOutcome(runs[2], done))
    assert board.entries[2].record.bars == board.entries[2].record.expected_bars == streamed
    assert board.entries[2].record.quality == record.quality
    assert board.work_done() == 2.0
    board.cancel_unfinished()
    states = [e.state for e in board.entries.values()]
    assert states == ["completed", "cancelled", "completed", "cancelled", "cancelled"]
    assert board.counts() == {"done": 5, "running": 0, "pending": 0, "failed": 0}


@pytest.mark.parametrize(
    ("fraction", "text"),
    [(None, ""), (0.0, "           0%"), (0.5, "████      50%"), (0.99, "███████▉  99%")],
)
def test_the_progress_bar(fraction, text) -> None:
    from sessionkit.tui.sweep_board import progress_bar

    assert progress_bar(fraction) == text


def test_table_and_list_parameters_show_as_written_and_sort() -> None:
    """Sorting by a table parameter (``--param analysis.options={fast=5,slow=20},...``)
    raised TypeError (tables have no order), so ``s`` or a header click ended the monitor;
    and the cells showed Python dicts. Tables and lists now sort item by item and show as
    ``--param`` takes them."""
    from sessionkit.engine.runs.sweep import parse_param
    from sessionkit.tui.format import Figures
    from sessionkit.tui.sweep_board import SweepBoard

    grid = dict(
        [
            parse_param(
                "analysis.options={fast=10,slow=30,fee_bps=0},{fast=5,slow=20,fee_bps=10},"
                "{fast=5,slow=20,fee_bps=7.5}"
            ),
            parse_param('streams.symbols=["BOLT"],["ACME","CRUX"]'),
        ]
    )
    board = SweepBoard(plan_sweep("demo", grid=grid))
    options = {i: board.cells(i, Figures())[1][0] for i in board.entries}
    assert set(options.values()) == {
        "{fast = 10, slow = 30, fee_bps = 0}",
        "{fast = 5, slow = 20, fee_bps = 10}",
        "{fast = 5, slow = 20, fee_bps = 7.5}",
    }
    order = board.order("param:analysis.options", False)
    assert [options[i] for i in order][::2] == [
        "{fast = 5, slow = 20, fee_bps = 7.5}",
        "{fast = 5, slow = 20, fee_bps = 10}",
        "{fast = 10, slow = 30, fee_bps = 0}",
    ]
    descending = board.order("param:analysis.options", True)
    assert [options[i] for i in descending] == [options[i] for i in order][::-1]
    symbols = {i: board.cells(i, Figures())[2][0] for i in board.entries}
    assert [symbols[i] for i in board.order("param:streams.symbols", False)][::3] == [
        '["ACME", "CRUX"]',
        '["BOLT"]',
    ]


def test_runs_that_ended_in_error_sort_last_by_a_metric(script_parts) -> None:
    """QA: the command line ranks a run in state ``error`` last (its metrics are those of
    a run cut short); the monitor sorted it among the completed ones by its metric."""
    from sessionkit.tui.sweep_board import SweepBoard

    runs, done, third = script_parts
    board = SweepBoard(runs[:3])
    metrics = [{"total_return_pct": 1.0}, {"total_return_pct": 5.0}, {"total_return_pct": 3.0}]
    states = ["completed", "error", "completed"]
    for run, values, state in zip(runs[:3], metrics, states, strict=True):
        result = dataclasses.replace(done, metrics=values, state=state)
        board.finish(SweepOutcome(run, result), time.monotonic())
    assert [board.entries[i].state for i in range(3)] == states
    assert board.order("metric:total_return_pct", True) == [2, 0, 1]
    assert board.order("metric:total_return_pct", False) == [0, 2, 1]
