"""The demo's analysis, :class:`~sessionkit.engine.examples.SmaCross`, keeps its own closes
(seeded from ``ctx.closes`` at each session's start, then each step's bars): its signals
equal those of the same rule reading ``ctx.closes`` at every bar, with trailing history and
without (then its closes restart each session as the views do), data- and clock-driven."""

from __future__ import annotations

import re

import pytest
from running import run_to_end
from sessionkit.engine.config import config_from_dict
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
