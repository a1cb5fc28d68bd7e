"""``sessionkit sweep`` and the sweep functions: grids and date shards on worker processes
and on a real Dask ``LocalCluster``; failures and Ctrl-C."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sessionkit.engine import run_backtest
from sessionkit.engine.runs.sweep import plan_sweep, rank, run_sweep

COMMAND = [sys.executable, "-m", "sessionkit.engine.cli", "sweep"]
DAY = ["--start", "2024-12-09", "--end", "2024-12-09"]


def sweep(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_a_grid_gives_ranked_runs_with_different_metrics(tmp_path) -> None:
    out = tmp_path / "runs.csv"
    result = sweep(
        "demo", *DAY, "--param", "analysis.options.fast=5,10,20", "--json", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["executor"] == "processes" and data["rank_by"] == "total_return_pct"
    runs = data["runs"]
    assert sorted(r["parameters"]["analysis.options.fast"] for r in runs) == [5, 10, 20]
    assert all(r["state"] == "completed" and r["error"] is None for r in runs)
    returns = [r["result"]["metrics"]["total_return_pct"] for r in runs]
    assert returns == sorted(returns, reverse=True)
    assert len({json.dumps(r["result"]["metrics"]) for r in runs}) == 3
    assert all(r["result"]["sessions"] == ["2024-12-09"] for r in runs)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("rank,analysis.options.fast,state,sessions,bars,signals,")
    assert len(lines) == 4


def test_the_human_table_and_a_failing_run_that_does_not_stop_the_others() -> None:
    # SPY is in the database (2011) but has no bar in the window: found once the run
    # starts (the window's data is each run's own check), so that run fails alone.
    result = sweep("demo", *DAY, "--param", 'streams.symbols=["ACME"],["SPY"]', "--workers", "2")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "2 of 2 runs" in result.stdout and "ranked by total_return_pct" in result.stdout
    assert "completed" in result.stdout and "failed" in result.stdout
    assert "no 1m bar of SPY in the window 2024-12-09 to 2024-12-09" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["--param", "analysis.options.fast=5,abc"],
            [
                "invalid configuration from --param analysis.options.fast=abc:",
                "SmaCross needs a whole number of bars for fast, got 'abc'",
            ],
        ),
        (
            ["--param", "analysis.options.fast=5,40"],
            ["from --param analysis.options.fast=40:", "SmaCross needs 0 < fast < slow"],
        ),
        (
            ["--param", 'streams.symbols=["ACME"],["ZZZ"]'],
            ['from --param streams.symbols=["ZZZ"]:', "'ZZZ' not in the database"],
        ),
        (
            ["--param", "analysis.entry=nosuch:X,sessionkit.engine.examples:SmaCross"],
            ["from --param analysis.entry=nosuch:X:", "cannot import module 'nosuch'"],
        ),
        (
            [
                "--param",
                "analysis.entry=sessionkit.engine.examples:SmaCross,"
                "sessionkit.engine.examples:Nope",
            ],
            ["module 'sessionkit.engine.examples' has no class 'Nope'"],
        ),
        (
            ["--param", "exchange_group=NYSE,XXX"],
            ["from --param exchange_group=XXX:", "unknown exchange group 'XXX'"],
        ),
        (
            [
                "--start",
                "2024-12-13",
                "--end",
                "2024-12-15",
                "--param",
                "backtest.start_date=2024-12-13,2024-12-14",
            ],
            [  # the window of the two options: both named
                "from --param backtest.start_date=2024-12-14 and --end 2024-12-15:",
                "no NYSE trading day",
            ],
        ),
        (
            ["--param", "backtest.end_date=2024-12-09,2035-01-05"],
            ["from --param backtest.end_date=2035-01-05:", "outside the NYSE calendar"],
        ),
        (
            ["--param", "analysis.options.fast=5", "--db", "nowhere.sqlite"],
            ["from --db nowhere.sqlite:", "database_url: database file", "does not exist"],
        ),
        (
            ["--param", "database_url=sample.sqlite,nowhere.sqlite"],
            ["from --param database_url=nowhere.sqlite:", "nowhere.sqlite does not exist"],
        ),
    ],
)
def test_every_run_is_validated_before_any_starts(tmp_path, args, fragments) -> None:
    """A mistake in one run of the grid (one its session would refuse) was found only
    when that run started in its worker, after the others had run: exit 1 and a table.
    Now every run is checked first: exit 2, one message naming the --param value."""
    sample = Path(__file__).parents[2] / "sample_db" / "sample.sqlite"
    (tmp_path / "sample.sqlite").symlink_to(sample)
    result = subprocess.run(
        [*COMMAND, "demo", *([] if "--start" in args else DAY), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert "finished" not in result.stderr  # no run started
    assert result.stderr.startswith("sessionkit: error: ")
    for fragment in fragments:
        assert fragment in result.stderr


def test_the_checks_open_each_database_once_and_check_each_thing_once(monkeypatch) -> None:
    """A grid checks its runs cheaply: one database opened per URL, the symbols checked
    once per distinct list, the analysis built once per distinct options."""
    import sessionkit.engine.examples as examples
    import sessionkit.engine.store.data_manager as data_manager
    import sessionkit.engine.store.db as db

    calls: Counter = Counter()

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    import sessionkit.engine.pipeline.session as session

    # (the sweep opens each database as a session does: session.open_database -> open_db)
    monkeypatch.setattr(session, "open_db", counted("open_db", db.open_db))
    monkeypatch.setattr(
        data_manager,
        "check_against_database",
        counted("check_against_database", data_manager.check_against_database),
    )
    built = []
    original = examples.SmaCross.__init__

    def init(self, **options):
        built.append(options)
        original(self, **options)

    monkeypatch.setattr(examples.SmaCross, "__init__", init)
    runs = plan_sweep(
        "demo",
        grid={
            "analysis.options.fast": [2, 3, 4, 5, 6],
            "streams.symbols": [["ACME"], ["BOLT"]],
            "backtest.clock": ["data-driven", "clock-driven"],
        },
        overrides={"backtest.start_date": "2024-12-09", "backtest.end_date": "2024-12-09"},
    )
    assert len(runs) == 20
    assert calls == {"open_db": 1, "check_against_database": 2}
    assert sorted(options["fast"] for options in built) == [2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--param", "analysis.optons.fast=5,10"], "--param analysis.optons.fast=5"),
        (["--param", "analysis.options.fast=5,5"], "a value repeats"),
        ([], "needs at least one --param"),
        (["--shard-by", "year"], "--shard-by must be session, week or month"),
    ],
)
def test_bad_sweep_arguments_are_exit_2_before_any_run(args, fragment) -> None:
    result = sweep("demo", *DAY, *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert fragment in result.stderr


def test_rank_by_a_name_no_run_has_is_exit_2_listing_what_they_have(tmp_path) -> None:
    """``--rank-by nosuch`` printed a table "ranked by nosuch" in plan order, exit 0.
    Metrics are known once the runs report them: a name no run has is refused then. It
    was refused with nothing to show for the runs (no table, no ``--out``); now the table
    (unranked, saying why) and ``--out`` come first, then the error, exit 2."""
    out = tmp_path / "runs.csv"
    result = sweep(
        "demo", *DAY, "--param", "analysis.options.fast=5,10", "--rank-by", "total_retrun_pct",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "2 of 2 runs in " in result.stdout
    assert "not ranked (no run has total_retrun_pct)" in result.stdout
    assert "ranked by" not in result.stdout.replace("not ranked", "")
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0][:2] == ["rank", "analysis.options.fast"]
    assert [row[1] for row in rows[1:]] == ["5", "10"]  # plan order
    message = result.stderr.splitlines()[-1]
    assert message.startswith(
        "sessionkit: error: --rank-by total_retrun_pct: no run has that metric or field; "
        "rank by one of: total_return_pct, max_drawdown_pct, trades, win_rate_pct, "
    )
    assert "bars_per_second" in message and "signal_count" in message
    data = json.loads(
        sweep(
            "demo", *DAY, "--param", "analysis.options.fast=5,10", "--rank-by", "nosuch",
            "--json",
        ).stdout
    )  # fmt: skip
    assert data["rank_by"] is None and len(data["runs"]) == 2


def test_rank_by_an_analysis_without_metrics_is_refused_before_any_run(tmp_path) -> None:
    """An analysis class without a ``metrics`` method never reports one: a --rank-by that
    is no numeric field of the result was refused only after the whole sweep had run."""
    import os

    out = tmp_path / "runs.csv"
    # (its clock-driven run at 60x would last minutes: refused first, it never starts)
    result = subprocess.run(
        [*COMMAND, "demo", *DAY, "--set", "analysis.entry=sweep_analyses:Mute",
         "--param", "backtest.clock=data-driven,clock-driven", "--rank-by", "nosuch",
         "--out", str(out)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "runs")},
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "" and "finished" not in result.stderr and not out.exists()
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(
        "sessionkit: error: --rank-by nosuch: the analysis (sweep_analyses:Mute) reports no "
        "metric (it has no metrics() method); rank by one of: "
    )
    assert "bars_per_second" in result.stderr and "signal_count" in result.stderr


def test_rank_by_a_result_field_or_a_metric_some_run_lacks() -> None:
    result = sweep("demo", *DAY, "--param", "analysis.options.fast=5,10", "--rank-by", "steps")
    assert result.returncode == 0, result.stderr
    assert "ranked by steps" in result.stdout
    # A metric only some runs report (SmaCross has no win_rate_pct without trades) is one
    # to rank by all the same: the runs without it come last.
    from dataclasses import replace

    from sessionkit.engine.runs.sweep import SweepOutcome, rank_keys

    window = {"backtest.start_date": "2024-12-09", "backtest.end_date": "2024-12-09"}
    runs = plan_sweep("demo", grid={"analysis.options.fast": [5, 10]}, overrides=window)
    result = run_backtest(runs[0].config)
    lacking, having = {"trades": 0.0}, {"trades": 3.0, "win_rate_pct": 50.0}
    outcomes = [
        SweepOutcome(run, replace(result, metrics=metrics))
        for run, metrics in zip(runs, (lacking, having), strict=True)
    ]
    assert rank_keys(outcomes)[:2] == ["trades", "win_rate_pct"]
    assert "bars_per_second" in rank_keys(outcomes)
    assert [o.run.index for o in rank(outcomes, "win_rate_pct")] == [1, 0]


def test_rank_by_without_an_analysis_is_checked_before_any_run() -> None:
    result = sweep(
        "demo", *DAY, "--set", "analysis={}", "--param", "backtest.clock=data-driven,clock-driven",
        "--rank-by", "total_return_pct",
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "" and "finished" not in result.stderr
    assert "--rank-by total_return_pct: the runs have no analysis, hence no metric" in (
        result.stderr
    )
    assert "bars_per_second" in result.stderr


def _signals(result) -> list[tuple]:
    return [(s.sim_time, s.symbol, s.kind, s.price, s.message) for s in result.signals]


def test_date_shards_together_equal_one_unsharded_run() -> None:
    window = {"backtest.start_date": "2024-11-27", "backtest.end_date": "2024-12-10"}
    whole = run_backtest("demo", overrides=window)
    runs = plan_sweep("demo", shard_by="week", overrides=window)
    assert [(r.window[0].isoformat(), r.window[1].isoformat()) for r in runs] == [
        ("2024-11-27", "2024-11-29"),
        ("2024-12-02", "2024-12-06"),
        ("2024-12-09", "2024-12-10"),
    ]
    outcomes = run_sweep(runs, workers=2)
    assert [o.state for o in outcomes] == ["completed"] * 3
    parts = [o.result for o in outcomes]
    assert [d for p in parts for d in p.sessions] == list(whole.sessions)
    totals: Counter = Counter()
    for part in parts:
        for symbol, per in part.bars.items():
            for interval, count in per.items():
                totals[symbol, interval] += count
    assert totals == Counter({(s, i): n for s, per in whole.bars.items() for i, n in per.items()})
    assert [s for p in parts for s in _signals(p)] == _signals(whole)
    assert len(_signals(whole)) > 100


@pytest.fixture(scope="module")
def dask_cluster():
    from dask.distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    yield cluster
    cluster.close()


def test_a_sweep_on_a_dask_local_cluster_equals_the_one_on_processes(dask_cluster) -> None:
    runs = plan_sweep(
        "demo",
        grid={"analysis.options.fast": [5, 10]},
        overrides={"backtest.start_date": "2024-12-09", "backtest.end_date": "2024-12-09"},
    )
    on_dask = run_sweep(runs, dask=dask_cluster.scheduler_address)
    on_processes = run_sweep(runs, workers=2)
    assert [o.state for o in on_dask] == ["completed", "completed"]
    for a, b in zip(on_dask, on_processes, strict=True):
        assert a.result.metrics == b.result.metrics
        assert a.result.signals == b.result.signals
        assert a.result.bars == b.result.bars
    ranked = rank(on_dask, "total_return_pct")
    assert (
        ranked[0].result.metrics["total_return_pct"] >= ranked[1].result.metrics["total_return_pct"]
    )


def test_the_sweep_command_on_dask(dask_cluster) -> None:
    result = sweep(
        "demo",
        *DAY,
        "--param",
        "analysis.options.fast=5,10,20",
        "--dask",
        dask_cluster.scheduler_address,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["executor"] == "dask"
    assert [r["state"] for r in data["runs"]] == ["completed"] * 3
    assert len({r["result"]["metrics"]["total_return_pct"] for r in data["runs"]}) == 3


def test_an_unreachable_dask_scheduler_is_exit_2() -> None:
    result = sweep(
        "demo", *DAY, "--param", "analysis.options.fast=5,10", "--dask", "tcp://127.0.0.1:9"
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "--dask tcp://127.0.0.1:9: cannot reach the cluster" in result.stderr


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _children(pid: int) -> list[int]:
    """The child processes of ``pid``, whichever of its threads started them (a local
    Dask cluster's worker processes are started by its event loop's thread)."""
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


def _workers_started(pid: int, count: int, bound: float = 120.0) -> bool:
    """True once ``pid`` has ``count`` worker processes that have loaded the engine (each
    maps the bundled sample database once its run has opened it)."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        running = 0
        for child in _children(pid):
            try:
                maps = Path(f"/proc/{child}/maps").read_text()
            except OSError:
                continue
            if "_sqlite3" in maps:
                running += 1
        if running >= count:
            time.sleep(0.5)
            return True
        time.sleep(0.1)
    return False


def test_ctrl_c_cancels_the_sweep_and_exits_cleanly() -> None:
    process = subprocess.Popen(
        [
            *COMMAND,
            "demo",
            "--speed",
            "60",
            "--param",
            "analysis.options.fast=5,10,20",
            "--workers",
            "2",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job inherits SIGINT ignored (then Python never raises
        # KeyboardInterrupt): the command gets Ctrl-C as a terminal would deliver it.
        preexec_fn=_default_sigint,
    )
    # Runs at 60x last hours. Wait until both worker processes have started their runs
    # (however long the machine takes to start Python), then interrupt.
    assert _workers_started(process.pid, 2), "the sweep never started its workers"
    began = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert time.monotonic() - began < 30
    assert "Traceback" not in err
    data = json.loads(out)
    assert data["interrupted"] is True and data["runs"] == []


def test_ctrl_c_on_a_local_dask_cluster_prints_no_worker_tracebacks() -> None:
    """A terminal sends Ctrl-C to every process of its foreground group: the local
    cluster's worker processes each printed a ``KeyboardInterrupt`` traceback (about 70
    lines for two) and two "Async instruction ... cancelled" warnings while the sweep
    cancelled them. The sweep alone handles it now."""
    process = subprocess.Popen(
        [*COMMAND, "demo", "--speed", "60", "--param", "analysis.options.fast=5,10",
         "--dask", "local", "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )  # fmt: skip
    try:
        assert _workers_started(process.pid, 2), "the sweep never started its runs"
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 130, err
    assert "no run finished" in out
    assert err.strip() == "interrupted: the pending runs were cancelled", err


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead and not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def test_worker_processes_end_when_the_sweep_is_killed() -> None:
    """A sweep killed outright (SIGKILL: no handler runs) left its pool's workers running
    their runs, then waiting for more, forever. They end once their parent is gone."""
    process = subprocess.Popen(
        [*COMMAND, "demo", "--speed", "60", "--param", "analysis.options.fast=5,10",
         "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert _workers_started(process.pid, 2), "the sweep never started its workers"
        workers = _children(process.pid)
        process.kill()
        process.wait()
        deadline = time.monotonic() + 60  # a bound for a loaded machine, not a target
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)], "workers outlived the sweep"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_sigterm_cancels_the_sweep_and_reports_what_finished() -> None:
    # Run 1 is data-driven (a second or so), run 2 clock-driven at 60x (hours): SIGTERM
    # once run 1 is reported finished, while run 2 still runs.
    process = subprocess.Popen(
        [
            *COMMAND,
            "demo",
            *DAY,
            "--set",
            "backtest.speed=60",
            "--param",
            "backtest.clock=data-driven,clock-driven",
            "--workers",
            "2",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_signals,
    )
    first = process.stderr.readline()  # one line per finished run when stderr is a pipe
    assert first.startswith("sweep: 1 of 2 finished: run 1 completed"), first
    workers = [pid for pid in _children(process.pid) if "spawn_main" in _cmdline(pid)]
    assert len(workers) == 2, "the sweep has no worker processes"
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "Traceback" not in err
    assert "terminated: the pending runs were cancelled" not in err  # --json: no table
    data = json.loads(out)
    assert data["interrupted"] is True
    assert [(r["index"], r["state"]) for r in data["runs"]] == [(0, "completed")]
    assert data["runs"][0]["parameters"] == {"backtest.clock": "data-driven"}
    # No worker outlives the sweep (multiprocessing's resource tracker, not a worker,
    # ends by itself once its parent is gone).
    assert [pid for pid in workers if Path(f"/proc/{pid}").exists()] == []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


@pytest.mark.parametrize("rank_by", [[], ["--rank-by", "total_retrun_pct"]])
def test_sigterm_without_json_prints_the_table_of_what_finished(rank_by) -> None:
    process = subprocess.Popen(
        [
            *COMMAND,
            "demo",
            *DAY,
            "--set",
            "backtest.speed=60",
            "--param",
            "backtest.clock=data-driven,clock-driven",
            "--workers",
            "2",
            *rank_by,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_signals,
    )
    first = process.stderr.readline()
    assert "run 1 completed" in first, first
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "Traceback" not in err
    assert "1 of 2 runs" in out and "data-driven" in out
    assert "terminated: the pending runs were cancelled" in err
    # An unknown --rank-by does not hide what finished: the table, and a word about it.
    unknown = "--rank-by total_retrun_pct: no run has that metric or field; rank by one of: "
    assert (unknown in err) == bool(rank_by)


def test_param_values_may_be_tables_and_lists_with_commas_of_their_own() -> None:
    """``--param analysis.options={fast=5,slow=20},{fast=10,slow=30}`` split at every
    comma ("Input should be a valid dictionary (got '{fast=5')"); now each value is a TOML
    value as ``--set`` takes it (a table replaces the whole table), bare words still
    split at commas."""
    from sessionkit.engine.config import WholeTable
    from sessionkit.engine.errors import ConfigError
    from sessionkit.engine.runs.sweep import parse_param

    key, values = parse_param("analysis.options={fast=5,slow=20},{fast=10,slow=30}")
    assert key == "analysis.options"
    assert values == [{"fast": 5, "slow": 20}, {"fast": 10, "slow": 30}]
    assert all(isinstance(value, WholeTable) for value in values)
    assert parse_param('streams.symbols=["ACME","BOLT"],["CRUX"]')[1] == [
        ["ACME", "BOLT"],
        ["CRUX"],
    ]
    assert parse_param("analysis.options.fast=5,10,20")[1] == [5, 10, 20]
    assert parse_param("streams.interval=1m,5m")[1] == ["1m", "5m"]  # bare words
    assert parse_param("x.y=abc,5")[1] == ["abc", 5]
    for bad in ("analysis.options.fast=5,10,", "analysis.options.fast=5,,10", "k="):
        with pytest.raises(ConfigError, match="no empty value"):
            parse_param(bad)
    with pytest.raises(ConfigError, match="a value repeats"):
        parse_param("analysis.options={fast=5},{fast=5}")


def test_table_and_list_parameters_are_shown_as_they_are_written(tmp_path) -> None:
    """The table, the progress lines and ``--out`` showed a table parameter as a Python
    dict (``{'fast': 5, 'slow': 20}``); they show it as ``--param`` takes it, which reads
    back to the same value."""
    from datetime import date

    from sessionkit.engine.config import parse_setting, setting_text

    for value in (
        {"fast": 5, "slow": 20},
        {"entry": "mod:Cls", "weird key": [1, 2.5, True], "when": date(2024, 12, 6)},
        ["ACME", "BOLT"],
        False,
        "1m",
        2.5,
    ):
        assert parse_setting(f"k={setting_text(value)}")[1] == value
    assert setting_text({"fast": 5, "slow": 20}) == "{fast = 5, slow = 20}"
    out = tmp_path / "runs.csv"
    result = sweep(
        "demo", *DAY, "--param", "analysis.options={fast=5,slow=20},{fast=10,slow=30}",
        "--param", "streams.symbols=[\"ACME\"]", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "{fast = 5, slow = 20}" in result.stdout and "{fast = 10, slow = 30}" in result.stdout
    assert '["ACME"]' in result.stdout and "'fast'" not in result.stdout + result.stderr
    assert '(analysis.options={fast = 5, slow = 20}, streams.symbols=["ACME"])' in result.stderr
    rows = list(csv.reader(out.read_text().splitlines()))
    assert sorted(row[1] for row in rows[1:]) == ["{fast = 10, slow = 30}", "{fast = 5, slow = 20}"]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_before_any_run_finished_says_so_without_a_table(signum, status) -> None:
    """Ctrl-C (or SIGTERM) before any run had finished, without --json, crashed in the
    table's width ("'int' object is not iterable", exit 1): no rows, no column widths.
    Now it says that no run finished, with the exit status of the signal."""
    process = subprocess.Popen(
        [*COMMAND, "demo", "--speed", "60", "--param", "analysis.options.fast=5,10",
         "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_signals,
    )  # fmt: skip
    assert _workers_started(process.pid, 2), "the sweep never started its workers"
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == status, err
    assert "Traceback" not in err
    assert "0 of 2 runs in " in out and "no run finished" in out
    stopped = "interrupted" if status == 130 else "terminated"
    assert f"{stopped}: the pending runs were cancelled" in err


def test_the_help_names_the_dask_extra() -> None:
    """Rich took ``[dask]`` in the help for markup and dropped it: the hint read
    "pip install 'sessionkit'" (and the PyPI package of that name is another project)."""
    result = subprocess.run(
        [*COMMAND, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert result.returncode == 0, result.stderr
    assert "pip install -e '.[dask]' in the sessionkit checkout" in result.stdout


PG_SECRET = "WrongPW"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://qa:{PG_SECRET}@127.0.0.1:1/qadb",
        f"postgresql+psycopg://qa@127.0.0.1:1/qadb?password={PG_SECRET}",
    ],
)
@pytest.mark.parametrize("form", ["--db", "--set", "--param"])
def test_a_database_password_is_never_printed(url: str, form: str) -> None:
    """As ``sessionkit run``: the option was named as typed, password and all."""
    args = {
        "--db": ["--db", url],
        "--set": ["--set", f'database_url="{url}"'],
        "--param": ["--param", f'database_url="{url}"'],
    }[form]
    result = subprocess.run(
        [*COMMAND, "spy-2011", "--param", "analysis.options.fast=5,6", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert PG_SECRET not in result.stdout + result.stderr
    assert f"invalid configuration from {form} " in result.stderr and "***" in result.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--db", ""], "--db: the value is empty"),
        (["--out", ""], "--out: the value is empty"),
        (["--out", "."], "--out .: a folder"),
    ],
)
def test_empty_option_values_are_refused_before_any_run(tmp_path, args, fragment) -> None:
    """``--out ""`` ran every run, then failed writing '.'; ``--db ""`` was ignored."""
    result = subprocess.run(
        [*COMMAND, "demo", *DAY, "--param", "analysis.options.fast=5", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == f"sessionkit: error: {fragment}" + result.stderr.split(fragment)[1]
    assert "finished" not in result.stderr and list(tmp_path.iterdir()) == []
