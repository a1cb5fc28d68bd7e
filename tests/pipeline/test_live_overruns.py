"""Live mode counts overruns as the clock-driven mode does (README: a consumer that is late
for an instant counts an overrun; QA: an analysis sleeping 2.5 s an instant while the feed
brought one a second counted none)."""

from __future__ import annotations

import time
from datetime import date

from pipeline_analyses import WaitAt
from sessionkit.engine.config import config_from_dict
from sessionkit.engine.pipeline.session import Session


def test_a_consumer_still_on_an_instant_when_the_feed_brings_the_next_is_late() -> None:
    WaitAt.reached.clear()
    WaitAt.proceed.clear()
    config = config_from_dict(
        {
            "mode": "live",
            "exchange_group": "NYSE",
            "streams": {"symbols": ["SPY"], "interval": "1m"},
            "live": {
                "replay_date": date(2011, 3, 15),
                "replay_start": "15:50",
                "speed": 6000.0,
                "drop_rate": 0.0,
            },
            "analysis": {"entry": "pipeline_analyses:WaitAt", "options": {"at": 1}},
        }
    )
    session = Session(config)
    session.start()
    try:
        assert WaitAt.reached.wait(60)  # the analysis stands on its first instant
        give_up = time.monotonic() + 60  # (only so that a broken engine ends the test)
        while session.snapshot().metrics.steps < 4 and time.monotonic() < give_up:
            time.sleep(0.05)
        published = session.snapshot().metrics.steps
        WaitAt.proceed.set()
        assert session.wait_idle(120)
    finally:
        WaitAt.proceed.set()
        assert session.stop()
    snapshot = session.snapshot()
    assert snapshot.state == "completed", snapshot.error
    overruns = {s.stream: s.overruns for s in snapshot.subscriptions}
    # Each instant published while it stood on its first was one it was late for.
    assert published >= 4
    assert overruns["analysis_engine"] >= published - 1
