"""run_backtest and RunResult: the library call, its frozen result, and SmaCross's metrics.

The metrics are checked against an independent computation in pandas (bar returns and
position transitions), not the analysis's own bookkeeping.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import pickle
from pathlib import Path

import pandas as pd
import pytest
from sessionkit.engine import ConfigError, RunResult, UsageError, load_config, run_backtest

DEMO = ["ACME", "BOLT", "CRUX", "DYNA", "EMBR", "FLUX"]
WINDOW = {"backtest.start_date": "2024-12-09", "backtest.end_date": "2024-12-10"}
OPTIONS = {"analysis.options.fast": 5, "analysis.options.slow": 20, "analysis.options.fee_bps": 5}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[RunResult, Path]:
    directory = tmp_path_factory.mktemp("export")
    result = run_backtest("demo", overrides={**WINDOW, **OPTIONS}, export=directory, keep_bars=True)
    return result, directory


def test_the_result_is_frozen_picklable_and_strict_json(demo_run) -> None:
    result, _directory = demo_run
    assert result.state == "completed" and result.error is None
    assert result.clock == "data-driven"  # headless: data-driven unless a speed is given
    assert result.sessions == ("2024-12-09", "2024-12-10")
    assert result.parameters == {**WINDOW, **OPTIONS}
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.state = "error"  # type: ignore[misc]
    again = pickle.loads(pickle.dumps(result))
    assert again == result
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["signal_count"] == len(data["signals"]) == len(result.signals) > 0
    assert data["metrics"] == result.metrics
    assert data["bars"]["DYNA"] == {"1m": 540, "5m": 108, "15m": 36}
    assert data["warnings"] == []


def test_every_signal_is_in_the_result_and_in_signals_csv(demo_run) -> None:
    result, directory = demo_run
    with (directory / "signals.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == result.signal_count
    expected = result.signal_rows()
    for row, signal in zip(rows, expected, strict=True):
        assert row["time"] == signal["time"] and row["time"].endswith("-05:00")
        assert (row["symbol"], row["kind"], row["message"]) == (
            signal["symbol"],
            signal["kind"],
            signal["message"],
        )
        assert float(row["price"]) == pytest.approx(signal["price"], rel=1e-12)


def test_bars_frames_hold_every_bar_like_the_export(demo_run) -> None:
    result, directory = demo_run
    for symbol in ("ACME", "DYNA"):
        for interval in ("1m", "5m"):
            frame = result.bars_frame(symbol, interval)
            exported = pd.read_csv(directory / symbol / f"{interval}.csv")
            assert len(frame) == result.bars[symbol][interval] == len(exported)
            assert str(frame.index.tz) == "America/New_York"
            assert [t.isoformat() for t in frame.index] == list(exported["start"])
            for column in exported.columns[2:]:
                assert frame[column].to_numpy() == pytest.approx(
                    exported[column].to_numpy(), rel=1e-9, nan_ok=True
                ), (symbol, interval, column)
    with pytest.raises(KeyError, match="kept no bars"):
        run_backtest("demo", overrides=WINDOW | {"backtest.end_date": "2024-12-09"}).columns(
            "ACME", "1m"
        )


def _pandas_metrics(result: RunResult, fee: float) -> dict[str, float]:
    """Long/flat on the signals, fills at the next bar's open: from bar returns."""
    signals = pd.DataFrame(
        [(s.sim_time, s.symbol, s.kind) for s in result.signals],
        columns=["time", "symbol", "kind"],
    )
    share = 1.0 / len(DEMO)
    values, trades, wins = {}, 0, 0
    for symbol in DEMO:
        bars = result.bars_frame(symbol, "1m")[["end", "open", "close"]].reset_index()
        target = pd.Series(float("nan"), index=bars.index)
        for _, signal in signals[signals.symbol == symbol].iterrows():
            later = bars.index[bars["start"] >= signal.time]
            if len(later):
                target[later[0]] = 1.0 if signal.kind == "buy" else 0.0
        pos = target.ffill().fillna(0.0)
        prev = pos.shift(1, fill_value=0.0)
        prev_close = bars["close"].shift(1)
        ret = pd.Series(1.0, index=bars.index)
        held = (prev == 1) & (pos == 1)
        entry = (prev == 0) & (pos == 1)
        exit_ = (prev == 1) & (pos == 0)
        ret[held] = bars["close"][held] / prev_close[held]
        ret[entry] = (1 - fee) * bars["close"][entry] / bars["open"][entry]
        ret[exit_] = (1 - fee) * bars["open"][exit_] / prev_close[exit_]
        values[symbol] = pd.Series((share * ret.cumprod()).to_numpy(), index=bars["end"].to_numpy())
        # round trips: the product of the returns from the entry bar to the exit bar
        number = entry.cumsum()
        in_trip = (pos == 1) | exit_
        for _n, group in ret[in_trip].groupby(number[in_trip]):
            trades += 1
            wins += bool(group.prod() > 1.0)
    equity = pd.concat(values, axis=1).sort_index().ffill().fillna(share).sum(axis=1)
    peak = equity.cummax().clip(lower=1.0)
    out = {
        "total_return_pct": (equity.iloc[-1] - 1.0) * 100.0,
        "max_drawdown_pct": float((1.0 - equity / peak).max() * 100.0),
        "trades": float(trades),
    }
    if trades:
        out["win_rate_pct"] = wins / trades * 100.0
    return out


def test_sma_cross_metrics_match_an_independent_computation(demo_run) -> None:
    result, _directory = demo_run
    expected = _pandas_metrics(result, fee=5 / 10_000)
    assert set(result.metrics) == set(expected)
    assert expected["trades"] > 20
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name


def test_metrics_differ_with_the_parameters_and_the_fee() -> None:
    small = {**WINDOW, "backtest.end_date": "2024-12-09"}
    free = run_backtest("demo", overrides=small)
    costly = run_backtest("demo", overrides={**small, "analysis.options.fee_bps": 10})
    other = run_backtest("demo", overrides={**small, "analysis.options.fast": 3})
    assert free.signals == costly.signals
    assert costly.metrics["total_return_pct"] < free.metrics["total_return_pct"]
    assert other.metrics != free.metrics


def test_overrides_are_validated_like_the_file() -> None:
    with pytest.raises(ConfigError) as info:
        run_backtest("demo", overrides={"analysis.optons.fast": 5})
    assert "in overrides['analysis.optons.fast']:\n  analysis.optons: unknown key" in str(
        info.value
    )
    config = load_config("demo")
    with pytest.raises(ConfigError, match="backtest.speed: a speed is a finite number"):
        run_backtest(config, overrides={"backtest.speed": float("inf")})


def test_a_window_without_data_is_an_error_naming_the_symbols_and_window() -> None:
    with pytest.raises(ConfigError) as info:
        run_backtest(
            "demo",
            overrides={"backtest.start_date": "2030-01-01"} | {"backtest.end_date": "2030-01-04"},
        )
    message = str(info.value)
    assert "backtest: no 1m bar of ACME, BOLT, CRUX, DYNA, EMBR, FLUX" in message
    assert "2030-01-02 to 2030-01-04" in message
    assert "demo.toml" not in message  # the window came from the overrides


def test_partial_coverage_is_a_warning() -> None:
    result = run_backtest(
        "spy-2011",
        overrides={"backtest.start_date": "2011-03-30", "backtest.end_date": "2011-04-01"},
    )
    assert result.state == "completed"
    assert result.warnings == (
        "SPY: 1m bars cover only 2011-03-30 to 2011-03-31 of the window 2011-03-30 to 2011-04-01",
    )


def test_an_unwritable_export_folder_is_refused_before_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="export folder .*file.txt/out is not writable"):
        run_backtest("demo", overrides=WINDOW, export=blocker / "out")


def test_metrics_are_readable_in_the_snapshot_while_running() -> None:
    from sessionkit.engine import Session

    config = load_config("demo", WINDOW)
    session = Session(config, start_paused=True)
    session.start()
    try:
        assert session.wait_idle(10)
        assert dict(session.snapshot().analysis_metrics) == {}  # nothing ended yet
        session.step(391)  # the first session's 390 instants and its end
        assert session.wait_idle(10)
        snap = session.snapshot()
        assert (snap.session_index, snap.state) == (2, "paused")
        assert snap.analysis_metrics["trades"] > 0
        assert set(snap.analysis_metrics) == {
            "total_return_pct",
            "max_drawdown_pct",
            "trades",
            "win_rate_pct",
        }
    finally:
        assert session.stop()


def test_a_run_stopped_inside_a_gap_counts_it() -> None:
    """DYNA has no bar from 12:00 to 14:32 on 2024-12-10. A run stopped at 13:00 said
    ``gaps: 0`` (only closed gaps were counted) while its quality counted the missing
    minutes and the monitor's Gap column showed 1."""
    from sessionkit.engine.runs.backtest import BacktestRun, resolve_config

    config = resolve_config(
        "demo",
        {
            "backtest.start_date": "2024-12-10",
            "backtest.end_date": "2024-12-10",
            "streams.symbols": ["DYNA", "ACME"],
        },
    )
    run = BacktestRun(config)
    session = run.session
    session.pause()
    run.start()
    try:
        assert session.wait_idle(30)
        session.step(210)  # 09:31 .. 13:00
        assert session.wait_idle(30)
        stats = session.snapshot().series[("DYNA", "1m")]
        assert stats.gaps == 1 and stats.quality < 100  # the monitor's Gap and Q%
    finally:
        assert run.stop()
    result = run.result()
    assert result.state == "stopped"
    assert result.gaps == {"DYNA": 1, "ACME": 0}
