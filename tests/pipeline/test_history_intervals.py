"""``[[historical]]``: which intervals keep their trailing history, and for which symbols.

``intervals`` chooses the streamed intervals whose bars from before the session are kept
(default: all); an interval left out keeps none (only, when the session carries on from
the one before, that session's last bar: what is known at the open), but its indicators are
warmed up all the same. Each symbol's window is the longest of the entries that apply to it, and its history
quality is measured over its own window.
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest
from running import run_to_end
from sessionkit.engine.config import config_from_dict
from sessionkit.engine.errors import ConfigError
from sessionkit.engine.pipeline.session import Session

SYMBOLS = ["ACME", "BOLT"]
NY = ZoneInfo("America/New_York")


def config(historical: list[dict]) -> dict:
    return {
        "backtest": {"start_date": "2024-12-02", "end_date": "2024-12-03", "clock": "data-driven"},
        "streams": {"symbols": SYMBOLS, "derived": ["5m", "15m"]},
        "historical": historical,
        "indicators": [
            {"name": "sma_20", "kind": "sma", "period": 20, "interval": "1m"},
            {"name": "sma_5m", "kind": "sma", "period": 10, "interval": "5m"},
            {"name": "ema_15m", "kind": "ema", "period": 5, "interval": "15m"},
        ],
    }


def run(historical: list[dict]) -> Session:
    return run_to_end(Session(config_from_dict(config(historical)), record=True))


def history(session: Session, symbol: str, interval: str) -> int:
    """Bars from before the last session held in the series."""
    return session.data.series(symbol, interval).history


def history_quality(session: Session, symbol: str) -> float | None:
    return session.snapshot().series[symbol, "1m"].history_quality


@pytest.fixture(scope="module")
def runs() -> dict[str, Session]:
    return {
        "all": run([{"trailing_days": 2}]),
        "base only": run([{"trailing_days": 2, "intervals": ["1m"]}]),
        "one day": run([{"trailing_days": 1}]),
        "mixed": run(
            [
                {"trailing_days": 1, "intervals": ["1m"]},
                {"apply_to": ["ACME"], "trailing_days": 2, "intervals": ["1m", "5m"]},
            ]
        ),
    }


def test_left_out_intervals_keep_no_history(runs) -> None:
    everything, base_only = runs["all"], runs["base only"]
    for symbol in SYMBOLS:
        assert history(everything, symbol, "1m") > 0
        assert history(base_only, symbol, "1m") == history(everything, symbol, "1m")
        # 5m and 15m: every window of the base history, or nothing.
        series = everything.data.series(symbol, "1m")
        starts = [bar.start for bar in series.bars(len(series))[: series.history]]
        for interval, minutes in (("5m", 5), ("15m", 15)):
            windows = {s.replace(minute=s.minute - s.minute % minutes) for s in starts}
            assert history(everything, symbol, interval) == len(windows)
            assert history(base_only, symbol, interval) == 1  # the carried-on last one


def test_left_out_intervals_still_warm_their_indicators_up(runs) -> None:
    everything, base_only = runs["all"], runs["base only"]
    assert everything.processor.record == base_only.processor.record
    # The derived indicators have values from the session's first bars (warmed up).
    rows = base_only.processor.record["ACME", "5m"]
    assert rows[0][1][0] is not None


def test_each_symbol_keeps_the_longest_window_that_applies(runs) -> None:
    mixed, everything, one_day = runs["mixed"], runs["all"], runs["one day"]
    assert history(mixed, "ACME", "1m") == history(everything, "ACME", "1m")
    assert history(mixed, "ACME", "5m") == history(everything, "ACME", "5m")
    assert history(mixed, "ACME", "15m") == 1  # the previous session's last
    assert history(mixed, "BOLT", "1m") == history(one_day, "BOLT", "1m")
    assert history(mixed, "BOLT", "1m") < history(everything, "BOLT", "1m")
    assert history(mixed, "BOLT", "5m") == 1
    # History quality over each symbol's own window (not the longest one).
    assert history_quality(mixed, "ACME") == history_quality(everything, "ACME")
    assert history_quality(mixed, "BOLT") == history_quality(one_day, "BOLT")
    assert history_quality(mixed, "BOLT") == 100.0


@pytest.mark.parametrize(
    ("intervals", "problem"),
    [
        (["1m", "1h"], r"historical\[0\]\.intervals: \['1h'\] are not streamed intervals"),
        (["5m"], r"historical\[0\]\.intervals: must include the base interval '1m'"),
    ],
)
def test_intervals_must_be_streamed_and_include_the_base(intervals, problem) -> None:
    with pytest.raises(ConfigError, match=problem):
        config_from_dict(config([{"trailing_days": 1, "intervals": intervals}]))


def test_the_kept_last_bar_is_the_session_befores_whether_carried_or_warmed_up() -> None:
    """An interval left out of ``intervals`` keeps the previous session's last bar at the
    open, also when the session is a run's first (built from the history): it said
    nothing there and showed that bar when carried on, so a run's views depended on where
    it started (QA)."""
    cfg = config([{"trailing_days": 1, "intervals": ["1m"]}])
    cfg["backtest"]["start_date"] = "2024-12-03"
    session = run_to_end(Session(config_from_dict(cfg)))
    for interval in ("5m", "15m"):
        series = session.data.series("ACME", interval)
        assert series.history == 1
        kept = series.bars(len(series))[0]
        assert kept.start.astimezone(NY).date() == date(2024, 12, 2), interval


def test_without_history_no_bar_of_an_older_session_is_kept() -> None:
    """trailing_days = 0 over a month without data (spy-2011: February): at 2011-03-01's
    open the last bar was 2011-01-31's, a month old, while a longer window showed none."""
    from sessionkit.engine.config import load_config

    for days in (0, 5):
        config = load_config(
            "spy-2011",
            {
                "backtest.start_date": "2011-01-31",
                "backtest.end_date": "2011-03-01",
                "backtest.clock": "data-driven",
                "historical[0].trailing_days": days,
            },
        )
        session = run_to_end(Session(config))
        series = session.data.series("SPY", "1m")
        # The history held at 2011-03-01's open: none of it from before February.
        history = series.bars(len(series))[: series.history]
        assert all(bar.start.astimezone(NY).date() >= date(2011, 2, 28) for bar in history)
        assert series.history == 0, days
