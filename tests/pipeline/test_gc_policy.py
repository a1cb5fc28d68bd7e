"""The collector's young-generation threshold is raised while runs stream, loads are frozen,
and both are undone when the last run ends."""

from __future__ import annotations

import gc

from sessionkit.engine.config import config_from_dict
from sessionkit.engine.pipeline.coordinator import GC_YOUNG_THRESHOLD
from sessionkit.engine.pipeline.session import Session


def _session() -> Session:
    return Session(
        config_from_dict(
            {
                "backtest": {
                    "start_date": "2024-12-02",
                    "end_date": "2024-12-03",
                    "clock": "data-driven",
                },
                "streams": {"symbols": ["ACME"], "derived": []},
            }
        ),
        start_paused=True,
    )


def test_threshold_raised_while_streaming_and_restored_after_the_last_run() -> None:
    before = gc.get_threshold()
    gc.unfreeze()
    first, second = _session(), _session()
    try:
        first.start()
        assert first.wait_idle(10)
        raised = (max(before[0], GC_YOUNG_THRESHOLD), *before[1:])
        assert gc.get_threshold() == raised
        assert gc.get_freeze_count() > 0  # the first session's load
        assert gc.isenabled()
        second.start()
        assert second.wait_idle(10)
        assert first.stop()
        assert gc.get_threshold() == raised  # the second run still streams
    finally:
        first.stop()
        assert second.stop()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_disabled_threshold_is_left_alone() -> None:
    before = gc.get_threshold()
    gc.set_threshold(0, before[1], before[2])
    try:
        session = _session()
        session.start()
        assert session.wait_idle(10)
        assert gc.get_threshold()[0] == 0
        assert session.stop()
    finally:
        gc.set_threshold(*before)
