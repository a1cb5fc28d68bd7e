"""Date shards of a sweep against one unsharded run: what they give alike, and the warning
when a shard's indicators start cold (no trailing history)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sessionkit.engine import run_backtest
from sessionkit.engine.runs.sweep import plan_sweep, run_sweep, shard_warnings

WINDOW = {"backtest.start_date": "2024-11-27", "backtest.end_date": "2024-12-10"}
TWO_DAYS = {"backtest.start_date": "2024-12-09", "backtest.end_date": "2024-12-10"}


def _signals(result) -> list[tuple]:
    return [(s.sim_time, s.symbol, s.kind, s.price, s.message) for s in result.signals]


@pytest.mark.parametrize(("days", "equal"), [(0, False), (1, True)])
def test_shards_give_the_signals_of_one_run_only_with_trailing_history(days, equal) -> None:
    """What the warning is about: an analysis reading a recursive indicator (RSI) gave
    other signals in the shards than in one run when trailing_days was 0 (each shard's
    first session starts the indicator cold, the unsharded run carries it on); with one
    day of history (390 bars for a 14-bar RSI) they are the same."""
    overrides = {
        **WINDOW,
        "analysis.entry": "sweep_analyses:RsiZones",
        "historical[0].trailing_days": days,
    }
    whole = run_backtest("demo", overrides=overrides)
    runs = plan_sweep("demo", shard_by="week", overrides=overrides)
    parts = [o.result for o in run_sweep(runs, workers=3)]
    assert [d for p in parts for d in p.sessions] == list(whole.sessions)
    assert len(_signals(whole)) > 100
    assert ([s for p in parts for s in _signals(p)] == _signals(whole)) is equal
    assert bool(shard_warnings(runs)) is not equal


def test_a_warning_names_the_key_when_sharded_indicators_start_cold() -> None:
    def warnings(shard_by="session", **overrides) -> list[str]:
        runs = plan_sweep("demo", shard_by=shard_by, overrides={**TWO_DAYS, **overrides})
        return shard_warnings(runs, f"--shard-by {shard_by}")

    assert warnings() == []  # demo: 5 trailing days
    (line,) = warnings(**{"historical[0].trailing_days": 0})
    assert line.startswith("--shard-by session with historical[0].trailing_days = 0: ")
    assert "first session starts its indicators (sma_20, ema_20, rsi_14, ...) cold" in line
    (line,) = warnings(historical=[])
    assert line.startswith("--shard-by session with no [[historical]] entry: ")
    (line,) = warnings(historical=[{"apply_to": ["ACME"], "trailing_days": 5}])
    assert "no [[historical]] entry for BOLT, CRUX, DYNA, EMBR, FLUX: " in line
    # No indicator: nothing to start cold. One shard: it is the unsharded run.
    assert warnings(indicators=[], historical=[]) == []
    assert warnings(shard_by="week", historical=[]) == []
    assert shard_warnings(plan_sweep("demo", grid={"analysis.options.fast": [5, 10]},
                                     overrides={**TWO_DAYS, "historical": []})) == []  # fmt: skip
    # A grid of trailing days: the runs without any, named by the option that made them.
    runs = plan_sweep(
        "demo",
        grid={"historical[0].trailing_days": [0, 3]},
        shard_by="session",
        overrides=TWO_DAYS,
    )
    (line,) = shard_warnings(runs)
    assert "historical[0].trailing_days = 0 (from --param historical[0].trailing_days=0)" in line


def test_the_sweep_command_warns_on_stderr_and_in_its_json() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sessionkit.engine.cli", "sweep", "demo", "--shard-by",
         "session", "--start", "2024-12-09", "--end", "2024-12-10", "--set",
         "historical[0].trailing_days=0", "--json"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warned) == 1
    assert warned[0].startswith(
        "sessionkit: warning: --shard-by session with historical[0].trailing_days = 0 "
        "(from --set historical[0].trailing_days=0): each shard's first session starts its "
        "indicators (sma_20, ema_20, rsi_14, ...) cold"
    )
    data = json.loads(result.stdout)
    assert data["warnings"] == [warned[0].removeprefix("sessionkit: warning: ")]
