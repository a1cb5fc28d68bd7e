"""``sessionkit run``: the headless command, run as a subprocess like a user or a script.

Uses the bundled ``demo`` configuration on the bundled sample database, over short date
windows so each run takes about a second.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_analyses import line_of

DEMO = ["ACME", "BOLT", "CRUX", "DYNA", "EMBR", "FLUX"]
COMMAND = [sys.executable, "-m", "sessionkit.engine.cli", "run"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_usage_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit status 2, one ``sessionkit: error:`` line on stderr, no traceback, no output."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sessionkit: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def json_export_run(tmp_path_factory) -> tuple[dict, Path]:
    """2024-12-09..10 data-driven with --json and --export: EMBR and DYNA have gaps."""
    directory = tmp_path_factory.mktemp("export")
    result = run(
        "demo",
        "--start",
        "2024-12-09",
        "--end",
        "2024-12-10",
        "--speed",
        "max",
        "--json",
        "--export",
        str(directory),
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout), directory


def test_json_summary(json_export_run) -> None:
    data, _directory = json_export_run
    for key in ("state", "sessions", "bars", "quality", "overruns", "bars_per_second"):
        assert key in data
    assert "load_seconds" in data
    assert data["state"] == "completed" and data["error"] is None
    assert data["mode"] == "backtest" and data["clock"] == "data-driven"
    assert data["speed"] is None
    assert data["sessions"] == ["2024-12-09", "2024-12-10"]
    # Two full sessions; DYNA misses 240 bars on the 10th, EMBR 4 + 1 (sample_db/README.md).
    expected = {s: 780 for s in DEMO} | {"DYNA": 540, "EMBR": 775}
    for symbol in DEMO:
        assert data["bars"][symbol]["1m"] == expected[symbol], symbol
        assert data["bars"][symbol]["5m"] == (108 if symbol == "DYNA" else 156)
        assert data["bars"][symbol]["15m"] == (36 if symbol == "DYNA" else 52)
        quality = 100.0 * expected[symbol] / 780
        for interval in ("1m", "5m", "15m"):
            assert data["quality"][symbol][interval] == pytest.approx(quality, abs=1e-3)
    assert data["gaps"] == {s: 0 for s in DEMO} | {"DYNA": 1, "EMBR": 5}
    # Data-driven: consumers are always waited for, so nothing overruns.
    assert data["overruns"] == {"data_processor": 0, "analysis_engine": 0}
    assert data["bars_per_second"] > 0
    assert data["load_seconds"] > 0
    assert data["steps"] == 780
    assert data["analysis_errors"] == 0


def test_export_files(json_export_run) -> None:
    data, directory = json_export_run
    files = sorted(Path(p).relative_to(directory).as_posix() for p in data["export"])
    expected = [f"{s}/{i}.csv" for s in DEMO for i in ("1m", "5m", "15m")]
    assert files == sorted([*expected, "signals.csv"])
    assert not list(directory.rglob("*.tmp")) and not list(directory.rglob(".sessionkit-*"))
    with (directory / "DYNA" / "1m.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    assert header[:8] == ["start", "end", "open", "high", "low", "close", "volume", "quality"]
    assert header[8:] == [
        "sma_20",
        "ema_20",
        "rsi_14",
        "vwap",
        "bb_20",
        "bb_20.upper",
        "bb_20.lower",
    ]
    assert len(rows) - 1 == 540
    assert rows[1][0] == "2024-12-09T09:30:00-05:00"
    assert rows[1][1] == "2024-12-09T09:31:00-05:00"
    assert rows[-1][0] == "2024-12-10T11:59:00-05:00"  # the afternoon is missing
    with (directory / "ACME" / "5m.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][8:] == ["sma_5m"]
    assert len(rows) - 1 == 156
    assert rows[-1][:2] == ["2024-12-10T15:55:00-05:00", "2024-12-10T16:00:00-05:00"]
    for symbol in DEMO:
        for interval in ("1m", "5m", "15m"):
            with (directory / symbol / f"{interval}.csv").open(newline="") as handle:
                count = sum(1 for _ in handle) - 1
            assert count == data["bars"][symbol][interval], (symbol, interval)


def test_human_summary_and_clock_driven_speed() -> None:
    result = run("demo", "--start", "2024-11-29", "--end", "2024-11-29", "--speed", "60000")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "completed" in result.stdout
    assert "60000x" in result.stdout
    assert "bars and quality" in result.stdout
    for symbol in DEMO:
        assert symbol in result.stdout


def test_json_of_a_clock_driven_run() -> None:
    result = run(
        "spy-2011", "--start", "2011-01-03", "--end", "2011-01-03", "--speed", "30000", "--json"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["state"] == "completed"
    assert data["clock"] == "clock-driven" and data["speed"] == 30000
    assert data["sessions"] == ["2011-01-03"]
    assert data["bars"]["SPY"] == {"1m": 390, "5m": 78, "15m": 26}
    assert data["quality"]["SPY"]["1m"] == 100.0
    assert set(data["overruns"]) == {"data_processor", "analysis_engine"}


def test_missing_config_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert_usage_error(run(str(missing), "--json"), str(missing), "does not exist")


def test_a_missing_database_names_the_configuration_and_key(tmp_path: Path) -> None:
    """A configuration's database that does not exist is named with the file and key that
    gave it, like every other configuration mistake; a folder given as the database is
    said to be one (it was "does not exist", and `db init` on it cannot work)."""
    from sessionkit.sample_db import __file__ as sample

    config = tmp_path / "mine.toml"
    demo = (Path(sample).parent / "demo.toml").read_text()
    config.write_text(demo.replace("[backtest]", 'database_url = "nope.sqlite"\n\n[backtest]', 1))
    result = run(str(config))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"sessionkit: error: invalid configuration in {config}:",
        f"  database_url: database file {tmp_path / 'nope.sqlite'} does not exist (create one "
        f"with: sessionkit db init --db sqlite:///{tmp_path / 'nope.sqlite'})",
    ]
    result = run("demo", "--db", str(tmp_path))
    assert result.returncode == 2 and result.stderr.splitlines()[1:] == [
        f"  database_url: {tmp_path} is a folder, not a database file (give the .sqlite file)"
    ]


@pytest.mark.parametrize("speed", ["fast", "0", "-5"])
def test_bad_speed_is_exit_2(speed: str) -> None:
    assert_usage_error(run("demo", f"--speed={speed}"), "--speed", repr(speed))


def test_bad_date_is_exit_2() -> None:
    assert_usage_error(run("demo", "--start", "2024-13-01"), "--start", "2024-13-01")


def test_invalid_config_is_exit_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        'mode = "backtest"\n[backtest]\nstart_date = 2024-12-02\nend_date = 2024-12-02\n'
        'speed = -1\n[streams]\nsymbols = ["ACME"]\n',
        encoding="utf-8",
    )
    result = run(str(path), "--json")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("sessionkit: error: invalid configuration in ")
    assert str(path) in result.stderr and "backtest.speed" in result.stderr


def test_a_window_without_trading_days_is_exit_2() -> None:
    result = run("demo", "--start", "2024-12-25", "--end", "2024-12-25", "--json")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "no NYSE trading day" in result.stderr


def test_an_engine_error_exits_1_with_the_error_in_the_json(tmp_path: Path) -> None:
    path = tmp_path / "raising.toml"
    path.write_text(
        'mode = "backtest"\n[backtest]\nstart_date = 2024-12-02\nend_date = 2024-12-02\n'
        '[streams]\nsymbols = ["ACME"]\n'
        '[analysis]\nentry = "pipeline_analyses:Raiser"\non_error = "stop"\n'
        "options = { after = 5 }\n",
        encoding="utf-8",
    )
    tests = str(Path(__file__).parents[1])  # tests/pipeline_analyses.py
    result = subprocess.run(
        [*COMMAND, str(path), "--speed", "max", "--json", "--export", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": tests},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    data = json.loads(result.stdout)
    assert data["state"] == "error"
    assert data["error"] == "analysis Raiser: RuntimeError: analysis boom at step 5"
    assert data["bars"]["ACME"]["1m"] >= 5
    assert data["export"] == [] and not (tmp_path / "out").exists()


def test_an_unknown_analysis_class_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "unknown.toml"
    path.write_text(
        'mode = "backtest"\n[backtest]\nstart_date = 2024-12-02\nend_date = 2024-12-02\n'
        '[streams]\nsymbols = ["ACME"]\n'
        '[analysis]\nentry = "sessionkit.engine.examples:NoSuchAnalysis"\n',
        encoding="utf-8",
    )
    result = run(str(path), "--json")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert "analysis.entry" in result.stderr and "NoSuchAnalysis" in result.stderr


def test_an_analysis_next_to_its_configuration_is_found_from_any_folder(tmp_path: Path) -> None:
    """``entry = "mystrat:Counter"`` imports ``mystrat.py`` from the configuration's folder
    (and ``mystrat`` imports a sibling module), whatever the working folder: it failed with
    "No module named 'mystrat'" even when run from that folder."""
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "helpers.py").write_text("def weight(bar):\n    return 1\n", encoding="utf-8")
    (folder / "mystrat.py").write_text(
        "from helpers import weight\n\n"
        "class Counter:\n"
        "    def __init__(self, scale=1):\n"
        "        self.scale, self.seen = scale, 0\n"
        "    def on_step(self, ctx):\n"
        "        self.seen += sum(weight(bar) for _, bar in ctx.items)\n"
        "    def metrics(self):\n"
        "        return {'seen': self.seen * self.scale}\n",
        encoding="utf-8",
    )
    path = folder / "mine.toml"
    path.write_text(
        'mode = "backtest"\n[backtest]\nstart_date = 2024-12-02\nend_date = 2024-12-02\n'
        '[streams]\nsymbols = ["ACME", "BOLT"]\n'
        '[analysis]\nentry = "mystrat:Counter"\noptions = { scale = 2 }\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [*COMMAND, str(path), "--speed", "max", "--json", "--set", "analysis.options.scale=3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=elsewhere,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["metrics"] == {"seen": 3 * 2 * 390}
    # A module the folder does not hold is still an error naming the key.
    path.write_text(path.read_text().replace("mystrat:", "notthere:"), encoding="utf-8")
    result = run(str(path), "--json")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "analysis.entry: cannot import module 'notthere'" in result.stderr


def test_an_analysis_set_by_an_option_is_found_where_the_command_runs(tmp_path: Path) -> None:
    """``sessionkit run demo --set analysis.entry=peek:Peek`` from the folder holding
    ``peek.py``: the bundled configuration's folder is the package's, so it failed with
    "No module named 'peek'"."""
    (tmp_path / "peek.py").write_text(
        "class Peek:\n"
        "    seen = 0\n"
        "    def on_step(self, ctx):\n"
        "        self.seen += len(ctx.items)\n"
        "    def metrics(self):\n"
        "        return {'seen': self.seen}\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = Path(sys.executable).with_name("sessionkit")  # as installed (``-m`` adds the cwd)
    assert script.is_file(), script
    command = [str(script), "run", "demo", "--start", "2024-12-02", "--end", "2024-12-02"]
    command.append("--json")
    result = subprocess.run(
        [*command, "--speed", "max", "--set", "analysis.entry=peek:Peek"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["metrics"] == {"seen": 6 * 390}


def test_the_summary_says_what_the_analysis_raised_not_only_how_often(tmp_path: Path) -> None:
    """Before, the summary said "analysis errors: 392" and nothing else: the messages were
    only in the TUI's event log."""
    path = tmp_path / "misuse.toml"
    path.write_text(
        'mode = "backtest"\n[backtest]\nstart_date = 2024-12-02\nend_date = 2024-12-02\n'
        '[streams]\nsymbols = ["ACME"]\n[analysis]\nentry = "pipeline_analyses:Misuser"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    human, as_json = (
        subprocess.run(
            [*COMMAND, str(path), "--speed", "max", *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**env, "COLUMNS": "200"},
        )
        for extra in ([], ["--json"])
    )
    assert human.returncode == 0 and as_json.returncode == 0, human.stderr + as_json.stderr
    lines = human.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "analysis errors: 392" in line)
    assert lines[at + 1 : at + 5] == [
        "  130 x in on_step: KeyError: \"no indicator 'no_such_indicator' (indicators: none configured)\""
        + f" ({line_of('# Misuser: indicator')}), first at 2024-12-02 09:31",
        "  130 x in on_step: TypeError: ctx.emit: price must be a number or None, not '12.5'"
        + f" ({line_of('# Misuser: price')}), first at 2024-12-02 09:32",
        "  130 x in on_step: TypeError: ctx.emit: kind must be a non-empty string, not ''"
        + f" ({line_of('# Misuser: kind')}), first at 2024-12-02 09:33",
        lines[at + 4],
    ]
    # What metrics() returned: the key named, and the user's method blamed (it was
    # "ValueError: could not convert string to float: 'many' (analysis.py:313)").
    assert lines[at + 4] == (
        "  2 x in on_metrics: TypeError: metrics() returned 'steps': 'many', a str, not a "
        f"number ({line_of('def metrics(self) -> dict:')}), first at 2024-12-02 16:00"
    )
    data = json.loads(as_json.stdout)
    assert data["analysis_errors"] == 392 and data["signal_count"] == 0
    kinds = data["analysis_error_kinds"]
    assert [(k["hook"], k["count"]) for k in kinds] == [("step", 130)] * 3 + [("metrics", 2)]
    assert kinds[1] == {
        "hook": "step",
        "error": "TypeError: ctx.emit: price must be a number or None, not '12.5'",
        "where": line_of("# Misuser: price"),
        "count": 130,
        "first_time": "2024-12-02T09:32:00-05:00",
    }


# -- the run as a library result: --set, metrics, signals, honest endings ------------------


def test_set_overrides_any_key_and_json_carries_metrics_and_signals(tmp_path: Path) -> None:
    result = run(
        "demo",
        "--start=2024-12-09",
        "--end=2024-12-09",
        "--set",
        "analysis.options.fast=5",
        "--set",
        "analysis.options.fee_bps=2",
        "--json",
        "--export",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["clock"] == "data-driven"  # headless without --speed
    assert data["parameters"] == {
        "backtest.start_date": "2024-12-09",
        "backtest.end_date": "2024-12-09",
        "analysis.options.fast": 5,
        "analysis.options.fee_bps": 2,
    }
    assert set(data["metrics"]) == {
        "total_return_pct",
        "max_drawdown_pct",
        "trades",
        "win_rate_pct",
    }
    assert data["signal_count"] == len(data["signals"]) > 0
    assert data["signals"][0].keys() == {"time", "symbol", "kind", "price", "message"}
    with (tmp_path / "signals.csv").open(newline="") as handle:
        assert sum(1 for _ in handle) - 1 == data["signal_count"]


def test_the_summary_shows_metrics_and_warnings() -> None:
    result = run("spy-2011", "--start", "2011-03-31", "--end", "2011-04-01")
    assert result.returncode == 0, result.stderr
    assert "metrics: total_return_pct" in result.stdout
    assert "warning: SPY: 1m bars cover only 2011-03-31 to 2011-03-31" in result.stdout
    assert "data-driven" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--set", "analysis.optons.fast=5"], ["--set analysis.optons.fast=5", "unknown key"]),
        (["--set", "nokey"], ["--set nokey", "KEY=VALUE"]),
        (["--speed", "inf"], ["--speed", "finite number > 0"]),
        (["--set", "backtest.speed=inf"], ["--set backtest.speed=inf", "finite number > 0"]),
        (
            ["--set", "analysis.entry=no_such_module_xyz:Thing"],
            ["from --set analysis.entry=no_such_module_xyz:Thing", "analysis.entry: cannot import"],
        ),
        (
            ["--set", "analysis.entry=sessionkit.engine.examples:Nope"],
            ["from --set analysis.entry=sessionkit.engine.examples:Nope", "has no class 'Nope'"],
        ),
    ],
)
def test_bad_set_and_speed_are_exit_2(args: list[str], fragments: list[str]) -> None:
    result = run("demo", *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    for fragment in fragments:
        assert fragment in result.stderr


def test_speed_60x_is_accepted() -> None:
    result = run("demo", "--start", "2024-11-29", "--end", "2024-11-29", "--speed", "60000x")
    assert result.returncode == 0, result.stderr
    assert "60000x" in result.stdout


def test_a_window_without_data_fails_naming_the_symbols_and_the_option() -> None:
    result = run("demo", "--start", "2030-01-01", "--end", "2030-01-04", "--json")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert "invalid configuration from --start 2030-01-01" in result.stderr
    assert "no 1m bar of ACME, BOLT, CRUX, DYNA, EMBR, FLUX" in result.stderr
    assert "demo.toml" not in result.stderr


def test_an_unwritable_export_is_exit_2_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = run("demo", "--export", str(tmp_path / "file" / "out"), "--json")
    assert_usage_error(result, "not writable")


def test_sigterm_stops_the_run_with_a_summary_and_an_export(tmp_path: Path) -> None:
    import signal
    import time

    process = subprocess.Popen(
        [*COMMAND, "demo", "--speed", "60", "--json", "--export", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(8)  # the run at 60x lasts hours; let it build and start streaming
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 143, err
    assert "Traceback" not in err
    data = json.loads(out)
    assert data["state"] == "stopped"
    assert (tmp_path / "signals.csv").is_file()
    assert len(data["export"]) == 6 * 3 + 1


def test_ctrl_c_on_a_hung_analysis_says_where_it_is_stuck(tmp_path: Path) -> None:
    """An analysis that never returns, then Ctrl-C: the run stops (exit 130, the process
    ends although the stuck thread cannot), and the result names the thread and the line
    of user code it is stuck in."""
    import signal
    import time

    marker = tmp_path / "stuck"
    tests = str(Path(__file__).parents[1])  # tests/pipeline_analyses.py
    process = subprocess.Popen(
        [
            *COMMAND,
            "demo",
            "--start",
            "2024-12-02",
            "--end",
            "2024-12-02",
            "--json",
            "--set",
            "analysis.entry=pipeline_analyses:Hang",
            "--set",
            "analysis.options.after=15",
            "--set",
            f"analysis.options.marker={marker}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": tests},
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), process.communicate(timeout=10)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    data = json.loads(out)
    assert data["state"] == "stopped" and data["steps"] == 15
    (warning,) = data["warnings"]
    assert warning.startswith("session_coordinator still running 1s after stop, in ")
    assert "pipeline_analyses.py:" in warning and "(Hang.on_step)" in warning


PG_SECRET = "WrongPW"
PG_URLS = [  # nothing listens on port 1: the connection is refused at once
    f"postgresql+psycopg://qa:{PG_SECRET}@127.0.0.1:1/qadb",
    f"postgresql+psycopg://qa@127.0.0.1:1/qadb?password={PG_SECRET}",
]


@pytest.mark.parametrize("url", PG_URLS)
@pytest.mark.parametrize("form", ["--db", "--set"])
def test_a_database_password_is_never_printed(url: str, form: str) -> None:
    """The error's first line named the option as typed: ``invalid configuration from
    --db postgresql+psycopg://qa:WrongPW@...`` (only the second line masked it)."""
    args = ["--db", url] if form == "--db" else ["--set", f'database_url="{url}"']
    result = run("spy-2011", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert PG_SECRET not in result.stdout + result.stderr
    assert f"invalid configuration from {form} " in result.stderr and "***" in result.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--export", ""], "--export: the value is empty"),
        (["--export", " "], "--export: the value is empty"),
        (["--db", ""], "--db: the value is empty"),
    ],
)
def test_empty_option_values_are_refused(tmp_path: Path, args: list[str], fragment: str) -> None:
    """``--export ""`` wrote into the working folder (exit 0); ``--db ""`` was ignored."""
    result = subprocess.run(
        [*COMMAND, "demo", "--end", "2024-11-25", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert_usage_error(result, fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "origin", "key"),
    [
        (  # the symbols are the file's, the interval they lack is the --set's
            [
                "--set",
                "streams.interval=5m",
                "--set",
                'streams.derived=["15m"]',
                "--set",
                'historical[0].intervals=["5m","15m"]',
                "--set",
                "indicators=[]",
            ],
            "from --set streams.interval=5m",
            "streams.symbols",
        ),
        (  # SPY is in the database, not in the file's window
            ["--set", 'streams.symbols=["SPY"]'],
            'from --set streams.symbols=["SPY"]',
            "backtest",
        ),
        (["--start", "1999-01-02"], "from --start 1999-01-02", "backtest.start_date"),
        (["--end", "2035-01-02"], "from --end 2035-01-02", "backtest.end_date"),
    ],
)
def test_errors_of_the_database_blame_the_option_that_made_them(args, origin, key) -> None:
    """They blamed demo.toml, or named no source and no key (calendar coverage)."""
    result = run("demo", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"sessionkit: error: invalid configuration {origin}:\n")
    assert f"\n  {key}: " in result.stderr and "demo.toml" not in result.stderr


def test_a_date_outside_the_calendar_in_a_file_names_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "old.toml"
    path.write_text(
        '[backtest]\nstart_date = 1990-01-01\nend_date = 2024-12-02\n[streams]\nsymbols = ["ACME"]\n',
        encoding="utf-8",
    )
    result = run(str(path))
    assert result.returncode == 2, result.stderr
    assert f"invalid configuration in {path}:\n  backtest.start_date: 1990-01-01 is outside" in (
        result.stderr
    )


def test_a_date_is_only_yyyy_mm_dd() -> None:
    assert_usage_error(run("demo", "--start", "20241209"), "--start: '20241209' is not a date")


def test_the_console_script_leaves_the_run_to_the_system_at_exit() -> None:
    """A 300-symbol run's process took 4.3 s between its output and its exit: the
    interpreter's last collection examined every object the run left (0.13 s once frozen).
    The console script freezes them as it ends; ``main(argv)`` called by a program does
    not."""
    script = (
        "import gc, sys\n"
        "from sessionkit.engine.cli import main\n"
        "def status(argv):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        return exc.code\n"
        "sys.argv = ['sessionkit', 'run', 'demo', '--end', '2024-11-25']\n"
        "print('FROZEN', status(None), gc.get_freeze_count() > 0)\n"
        "gc.unfreeze()\n"
        "print('FROZEN', status(['run', 'demo', '--end', '2024-11-25']), gc.get_freeze_count() > 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines() if line.startswith("FROZEN")]
    assert lines == [["FROZEN", "0", "True"], ["FROZEN", "0", "False"]], result.stdout
