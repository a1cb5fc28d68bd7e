"""QA (2) of ``sessionkit sweep``: NaN metrics and parameters, repeated or conflicting
keys, where the progress and the warnings go."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from pipeline_analyses import write_leaky

COMMAND = [sys.executable, "-m", "sessionkit.engine.cli", "sweep"]
DAY = ["--start", "2024-12-02", "--end", "2024-12-02", "--set", 'streams.symbols=["ACME"]']

MX = """
class M:
    def __init__(self, score=None, other=1.0):
        self.score = score
        self.other = other

    def on_step(self, ctx):
        pass

    def metrics(self):
        out = {"other": float(self.other)}
        if self.score is not None:
            out["score"] = float(self.score)
        return out
"""


def sweep(*args: str, cwd=None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd
    )


def _mx(tmp_path) -> list[str]:
    (tmp_path / "mx.py").write_text(textwrap.dedent(MX))
    return ["demo", *DAY, "--set", "analysis.entry=mx:M", "--workers", "2"]


def test_a_nan_metric_ranks_last_like_a_missing_one(tmp_path) -> None:
    """A NaN metric broke the order (3, 1, nan, 2): NaN compares false with anything."""
    result = sweep(
        *_mx(tmp_path), "--param", "analysis.options.score=3,1,nan,2", "--rank-by", "score",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    scores = [run["result"]["metrics"]["score"] for run in data["runs"]]
    assert scores == [3.0, 2.0, 1.0, None]
    ascending = sweep(
        *_mx(tmp_path), "--param", "analysis.options.score=3,nan,1,2", "--rank-by", "score",
        "--ascending", "--json", cwd=tmp_path,
    )  # fmt: skip
    scores = [run["result"]["metrics"]["score"] for run in json.loads(ascending.stdout)["runs"]]
    assert scores == [1.0, 2.0, 3.0, None]


def test_the_json_of_a_nan_parameter_is_valid_json_with_null(tmp_path) -> None:
    """``--json`` printed a bare NaN (not JSON) for a NaN parameter."""
    result = sweep(
        *_mx(tmp_path), "--param", "analysis.options.score=nan,3", "--rank-by", "score",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "NaN" not in result.stdout
    data = json.loads(result.stdout, parse_constant=lambda name: 1 / 0)  # (no NaN at all)
    assert [run["parameters"]["analysis.options.score"] for run in data["runs"]] == [3, None]
    assert [run["result"]["metrics"]["score"] for run in data["runs"]] == [3.0, None]


ONE_DAY = ["demo", "--start", "2024-12-02", "--end", "2024-12-02"]


def test_a_param_key_given_twice_is_refused() -> None:
    """The second ``--param`` of a key silently replaced the first."""
    result = sweep(
        *ONE_DAY, "--param", "analysis.options.fast=5", "--param", "analysis.options.fast=10"
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "" and "finished" not in result.stderr
    assert result.stderr.strip() == (
        "sessionkit: error: --param analysis.options.fast=10: analysis.options.fast is given "
        "by --param analysis.options.fast=5 too: give its values in one --param "
        "analysis.options.fast=V1,V2,..."
    )


def test_a_param_key_inside_another_params_table_is_refused() -> None:
    result = sweep(
        *ONE_DAY, "--param", "analysis.options={fast=5},{fast=10}",
        "--param", "analysis.options.slow=30,40",
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "analysis.options.slow is inside analysis.options" in result.stderr


def test_a_param_and_a_set_of_the_same_key_are_refused() -> None:
    """The ``--set`` was silently ignored (the grid's value replaced it in every run)."""
    result = sweep(*ONE_DAY, "--param", "analysis.options.fast=5,10",
                   "--set", "analysis.options.fast=7")  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "" and "finished" not in result.stderr
    assert result.stderr.strip() == (
        "sessionkit: error: --param analysis.options.fast=5,10: analysis.options.fast is set "
        "by --set analysis.options.fast=7 too, which the --param replaces in every run: give "
        "it once (the --param, or the --set)"
    )
    inside = sweep(*ONE_DAY, "--param", "analysis.options={fast=5},{fast=10}",
                   "--set", "analysis.options.slow=40")  # fmt: skip
    assert inside.returncode == 2 and "analysis.options.slow is set by --set" in inside.stderr


def test_progress_and_warnings_go_to_stderr_when_stdout_is_a_file(tmp_path) -> None:
    """The bar was drawn on stdout (so not at all with stdout a file) although drawn only
    when stderr is a terminal, and a worker's warning landed in the file ahead of the
    table."""
    import os
    import pty

    write_leaky(tmp_path)
    out = tmp_path / "table.txt"
    master, slave = pty.openpty()
    try:
        with out.open("w") as handle:
            process = subprocess.Popen(
                [*COMMAND, *ONE_DAY, "--speed", "max", "--param", "analysis.options.fast=5,10",
                 "--workers", "2", "--set", "analysis.entry=leaky:Leaky"],
                stdout=handle, stderr=slave, stdin=subprocess.DEVNULL, cwd=tmp_path,
                env={**os.environ, "COLUMNS": "120", "LINES": "40"},
            )  # fmt: skip
        os.close(slave)
        slave = -1
        err = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # (the terminal's other end closed: the sweep ended)
                break
            if not chunk:
                break
            err += chunk
        assert process.wait(timeout=120) == 0
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    text = err.decode(errors="replace")
    table = out.read_text()
    assert "did not exit" in text and "it was killed" in text  # (on stderr)
    assert "sweep" in text and "runs" in text  # the bar, drawn on the terminal
    assert "warning" not in table and "did not exit" not in table
    assert table.lstrip().startswith("2 of 2 runs")


def test_a_run_that_ends_before_its_first_record_counts_its_bars() -> None:
    """The bar counted the bars of a finished run from its last progress record: one that
    ended before its first record added none (694,485 of 702,000 at the end)."""
    from types import SimpleNamespace

    from sessionkit.engine.cli.sweep import _SweepBar

    bar = _SweepBar(2)

    def outcome(index: int) -> SimpleNamespace:
        result = SimpleNamespace(bars={"ACME": {"1m": 390, "5m": 78}, "BOLT": {"1m": 390}})
        return SimpleNamespace(run=SimpleNamespace(index=index), result=result)

    bar.on_done(outcome(0), 1, 2)  # (no record came)
    assert bar.progress.tasks[0].fields["bars"] == "780 bars, 0 running"
    bar.on_progress(SimpleNamespace(index=1, bars=100, expected_bars=780, fraction=100 / 780))
    assert bar.progress.tasks[0].fields["bars"] == "880 bars, 1 running"
    bar.on_done(outcome(1), 2, 2)
    assert bar.progress.tasks[0].fields["bars"] == "1,560 bars, 0 running"
    assert bar.progress.tasks[0].completed == 2
