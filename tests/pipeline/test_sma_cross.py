"""The demo's analysis, :class:`~sessionkit.engine.examples.SmaCross`, keeps its own closes
(seeded from ``ctx.closes`` at each session's start, then each step's bars): its signals
equal those of the same rule reading ``ctx.closes`` at every bar, with trailing history and
without (then its closes restart each session as the views do), data- and clock-driven."""

from __future__ import annotations

import re

import pytest
from running import run_to_end
from sessionkit.engine.config import config_from_dict, load_config
from sessionkit.engine.examples import SmaCross
from sessionkit.engine.pipeline.session import Session


def _signals(entry: str, clock: str, trailing_days: int) -> list[tuple]:
    backtest = {"start_date": "2024-11-27", "end_date": "2024-12-03", "clock": clock}
    if clock == "clock-driven":
        backtest["speed"] = 1_000_000.0
    config = config_from_dict(
        {
            "backtest": backtest,
            "streams": {"symbols": ["ACME", "BOLT", "EMBR"]},
            "historical": [{"trailing_days": trailing_days}],
            "analysis": {"entry": entry, "options": {"fast": 5, "slow": 12}},
        }
    )
    session = run_to_end(Session(config), 120)
    analysis = session.analysis.analysis
    if entry.endswith("ViewSmaCross"):
        return analysis.signals
    return [(s.sim_time, s.symbol, s.kind, s.price) for s in session.analysis.all_signals()]


@pytest.mark.parametrize(
    ("clock", "trailing_days"), [("data-driven", 2), ("data-driven", 0), ("clock-driven", 1)]
)
def test_own_closes_give_the_signals_of_the_views(clock: str, trailing_days: int) -> None:
    own = _signals("sessionkit.engine.examples:SmaCross", clock, trailing_days)
    views = _signals("pipeline_analyses:ViewSmaCross", clock, trailing_days)
    assert len(own) > 20
    assert own == views


def test_the_signals_are_the_crosses_of_the_continuous_series() -> None:
    """Regression (QA): the cross state was forgotten at every open, so a cross on a
    session's first bar (the last bar before it in the trailing history or the session
    before) was never signalled (9 of the demo's crosses). Reference: the closes of the
    database's regular-hours bars read with sqlite3, the rule applied bar after bar."""
    import sqlite3
    from datetime import UTC, datetime
    from importlib.resources import as_file, files

    config = load_config(
        "demo",
        {
            "backtest": {
                "start_date": "2024-11-27",
                "end_date": "2024-12-06",
                "clock": "data-driven",
            },
            "historical": [{"trailing_days": 2}],
        },
    )
    assert config.analysis.entry == "sessionkit.engine.examples:SmaCross"
    assert config.analysis.options in ({}, {"fast": 10, "slow": 30})
    session = run_to_end(Session(config), 120)
    got = sorted((s.symbol, s.sim_time, s.kind) for s in session.analysis.all_signals())
    expected = []
    with as_file(files("sessionkit.sample_db") / "sample.sqlite") as path:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        days = db.execute(
            "SELECT session_date, open, close FROM trading_calendar WHERE exchange = 'NYSE' "
            "AND session_date BETWEEN '2024-11-22' AND '2024-12-06' ORDER BY session_date"
        ).fetchall()
        assert [d for d, _o, _c in days][:3] == ["2024-11-22", "2024-11-25", "2024-11-26"]
        for symbol in config.streams.symbols:
            rows = [
                (day, start, close)
                for day, open_, close_ in days
                for start, close in db.execute(
                    "SELECT start, close FROM bars WHERE symbol = ? AND interval = '1m' "
                    "AND start >= ? AND start < ? ORDER BY start",
                    (symbol, open_, close_),
                )
            ]
            closes = [close for _d, _s, close in rows]
            before = None
            for i, (day, start, _close) in enumerate(rows):
                if i + 1 < 30:
                    continue
                above = sum(closes[i - 9 : i + 1]) / 10 > sum(closes[i - 29 : i + 1]) / 30
                if day >= "2024-11-27" and before is not None and above != before:
                    known = datetime.fromtimestamp(start + 60, UTC)
                    expected.append((symbol, known, "buy" if above else "sell"))
                before = above
        db.close()
    assert len(expected) > 300
    opens = {datetime.fromtimestamp(o + 60, UTC) for _d, o, _c in days}
    assert any(t in opens for _s, t, _k in expected)  # crosses on a session's first bar
    assert got == sorted(expected)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fast": 2.5}, "a whole number of bars for fast, got 2.5"),
        ({"fast": True}, "a whole number of bars for fast, got True"),
        ({"slow": "30"}, "a whole number of bars for slow, got '30'"),
        ({"fee_bps": "1"}, "a number for fee_bps, got '1'"),
        ({"fee_bps": False}, "a number for fee_bps, got False"),
        ({"fee_bps": float("nan")}, "0 <= fee_bps < 10000, got nan"),
        ({"fast": 30, "slow": 30}, "0 < fast < slow, got fast=30, slow=30"),
    ],
)
def test_options_that_are_not_whole_periods_or_a_fee_are_refused(options, message) -> None:
    # 2.5 used to run with every step failing; True ran as fast=1.
    with pytest.raises(ValueError, match=re.escape(f"SmaCross needs {message}")):
        SmaCross(**options)
    assert SmaCross(fast=3, slow=7, fee_bps=2).fast == 3


def test_a_run_without_trades_returns_exactly_nothing() -> None:
    """Regression (QA): six sixths of the capital make 0.9999999999999999, so a run of the
    six demo symbols without a trade reported a return of -1.1e-14 % and a drawdown."""
    config = load_config(
        "demo",
        {
            "backtest": {
                "start_date": "2024-11-25",
                "end_date": "2024-11-26",
                "clock": "data-driven",
            },
            "analysis": {"options": {"fast": 10, "slow": 5000}},
        },
    )
    session = run_to_end(Session(config), 120)
    assert session.analysis.signal_count == 0
    assert session.snapshot().analysis_metrics == {
        "total_return_pct": 0.0,
        "max_drawdown_pct": 0.0,
        "trades": 0.0,
    }
