"""The demo's analysis, :class:`~sessionkit.engine.examples.SmaCross`, keeps its own closes
(seeded from ``ctx.closes`` at each session's start, then each step's bars): its signals
equal those of the same rule reading ``ctx.closes`` at every bar, with trailing history and
without (then its closes restart each session as the views do), data- and clock-driven."""

from __future__ import annotations

import pytest
from running import run_to_end
from sessionkit.engine.config import config_from_dict
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
