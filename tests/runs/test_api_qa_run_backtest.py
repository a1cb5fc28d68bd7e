"""run_backtest's arguments and its RunResult, as a QA tester used them (Python API).

Every misuse is refused before the run, naming the argument: a wrong type with a
``TypeError``, an empty or unusable value with a ``UsageError``, a live configuration with
a ``ConfigError``. The result is frozen through and through (its mappings too), pickles,
hashes, and its ``to_dict()`` is what ``sessionkit run --json`` prints.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import subprocess
import sys
from types import MappingProxyType

import pytest
from sessionkit.engine import (
    ConfigError,
    RunResult,
    SessionkitError,
    UsageError,
    load_config,
    run_backtest,
)
from sessionkit.engine.runs import backtest

DAY = {"backtest.start_date": "2024-12-09", "backtest.end_date": "2024-12-09"}
TIMING = {"bars_per_second", "load_seconds", "load", "step_latency_ms", "wall_seconds", "threads"}
"""The fields measured in wall time: they differ between any two runs."""


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a run is built (the refusals must come before any)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a run was built")

    monkeypatch.setattr(backtest, "BacktestRun", refuse)


@pytest.fixture(scope="module")
def day_run() -> RunResult:
    return run_backtest("demo", overrides=DAY, keep_bars=True)


# -- export ------------------------------------------------------------------------------


def test_an_empty_export_is_refused_before_the_run(tmp_path, monkeypatch, no_run) -> None:
    """``export=""`` would write into the current folder (``Path("")`` is ``.``); the
    command line refuses ``--export ""`` too."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"^export: the value is empty") as caught:
        run_backtest("demo", overrides=DAY, export="")
    assert isinstance(caught.value, SessionkitError) and isinstance(caught.value, ValueError)
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_is_a_file_is_refused_before_the_run(tmp_path, no_run) -> None:
    path = tmp_path / "out.csv"
    path.write_text("kept\n")
    with pytest.raises(UsageError, match=r"^export: .*out\.csv is a file"):
        run_backtest("demo", overrides=DAY, export=path)
    assert path.read_text() == "kept\n"


# -- arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        ((None,), {}, "config"),  # (the bundled demo is run_backtest("demo"))
        ((5,), {}, "config"),
        (("demo",), {"overrides": [("backtest.end_date", "2024-12-09")]}, "overrides"),
        (("demo",), {"overrides": "backtest.end_date=2024-12-09"}, "overrides"),
        (("demo",), {"on_progress": 5}, "on_progress"),
        (("demo",), {"keep_bars": "yes"}, "keep_bars"),
        (("demo",), {"export": 5}, "export"),
    ],
)
def test_a_wrong_argument_type_is_a_type_error_naming_it(args, kwargs, named, no_run) -> None:
    with pytest.raises(TypeError, match=rf"run_backtest: {named} must be"):
        run_backtest(*args, **kwargs)


def test_an_empty_config_is_refused_naming_it(no_run) -> None:
    with pytest.raises(UsageError, match=r"^config: the value is empty"):
        run_backtest("")


def test_a_non_string_override_key_stays_a_config_error(no_run) -> None:
    with pytest.raises(ConfigError):
        run_backtest("demo", overrides={1: 2})


# -- live --------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["override", "config"])
def test_a_live_configuration_is_refused(how, no_run) -> None:
    """run_backtest runs backtests; a live configuration would run in wall-clock time."""
    if how == "override":
        call = lambda: run_backtest("demo", overrides={"mode": "live"})  # noqa: E731
    else:
        config = load_config("demo", {"mode": "live"})
        call = lambda: run_backtest(config)  # noqa: E731
    with pytest.raises(ConfigError, match="run_backtest runs backtests") as caught:
        call()
    assert caught.value.key == "mode"
    assert "Session" in str(caught.value)


# -- the result --------------------------------------------------------------------------


def test_the_results_mappings_are_read_only_nested_too(day_run: RunResult) -> None:
    before = day_run.to_dict()
    attempts = [
        lambda: day_run.metrics.__setitem__("x", 1),
        lambda: day_run.bars["ACME"].__setitem__("1m", 0),
        lambda: day_run.bars.__setitem__("ZZZ", {}),
        lambda: day_run.quality["ACME"].__setitem__("1m", 0.0),
        lambda: day_run.parameters.__setitem__("backtest.end_date", "2030-01-01"),
        lambda: day_run.gaps.__setitem__("ACME", 99),
        lambda: day_run.overruns.clear(),
        lambda: day_run.load.__setitem__("read_seconds", 0.0),
        lambda: day_run.frames["ACME/1m"].__setitem__("close", []),
        lambda: day_run.frames["ACME/1m"]["close"].append(1.0),
    ]
    for attempt in attempts:
        with pytest.raises((TypeError, AttributeError)):
            attempt()
    assert day_run.to_dict() == before
    # Copies: what the run's objects were built from is not shared.
    metrics = {"a": 1.0}
    result = dataclasses.replace(day_run, metrics=metrics)
    metrics["a"] = 2.0
    assert result.metrics == {"a": 1.0} and isinstance(result.metrics, MappingProxyType)


def test_the_result_pickles_compares_and_hashes(day_run: RunResult) -> None:
    again = pickle.loads(pickle.dumps(day_run))
    assert again == day_run and hash(again) == hash(day_run)
    assert again.to_dict() == day_run.to_dict()
    assert again.columns("ACME", "5m") == day_run.columns("ACME", "5m")
    with pytest.raises(TypeError):
        again.bars["ACME"]["1m"] = 0  # still read-only once loaded
    assert isinstance(again.frames["ACME/1m"], MappingProxyType)
    assert copy.deepcopy(day_run) == day_run
    assert len({day_run, again}) == 1
    changed = dataclasses.replace(day_run, state="stopped")
    assert changed != day_run and isinstance(changed.bars["ACME"], MappingProxyType)


def test_to_dict_is_plain_data_and_what_the_command_line_prints(day_run: RunResult) -> None:
    data = day_run.to_dict()

    def plain(value: object) -> None:
        assert not isinstance(value, MappingProxyType | tuple), value
        if isinstance(value, dict):
            value = list(value.values())
        for item in value if isinstance(value, list) else ():
            plain(item)

    plain(data)
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    command = [sys.executable, "-m", "sessionkit.engine.cli", "run", "demo", "--json"]
    command += ["--start", "2024-12-09", "--end", "2024-12-09"]
    printed = json.loads(
        subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    )
    assert list(printed) == list(data)
    for key in set(printed) - TIMING:
        assert printed[key] == data[key], key
    assert [t["name"] for t in printed["threads"]] == [t["name"] for t in data["threads"]]
    assert printed["load"].keys() == data["load"].keys()


def test_an_interrupted_run_backtest_leaves_no_temporary_file(tmp_path) -> None:
    """QA: Ctrl-C in the caller's program while the run went (here from ``on_progress``)
    skipped the export's clean-up: its temporary files stayed in the folder."""
    from sessionkit.engine import run_backtest

    calls = []

    def interrupt(snapshot) -> None:
        calls.append(snapshot.sim_time)
        if len(calls) == 2:
            raise KeyboardInterrupt

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_backtest(
            "demo",
            overrides={"backtest.speed": 6000.0, "backtest.end_date": "2024-11-26"},
            export=out,
            on_progress=interrupt,
        )
    assert len(calls) == 2
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert left == []
