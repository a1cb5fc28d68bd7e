"""The slowest clock speeds: any finite speed > 0 is accepted, so the next instant may be
due billions of seconds away; waiting for it must neither fail nor outlive a stop."""

from __future__ import annotations

import threading

from sessionkit.engine.core.subscription import LONGEST_WAIT, StreamSubscription
from test_pipeline_controls import assert_stops_in_time, make, spy, wait_for


def test_a_wait_longer_than_the_platform_allows_is_waited_in_parts() -> None:
    """``cond.wait(6e10)`` raised OverflowError ("timestamp out of range for platform
    time_t"): a clock speed of 1e-9 ended the run in an error."""
    subscription = StreamSubscription("clock-driven", "consumer")
    waiting = threading.Event()
    result: list[bool] = []

    def waiter() -> None:
        waiting.set()
        result.append(subscription.wait_until_ready(timeout=6e10))

    thread = threading.Thread(target=waiter)
    thread.start()
    assert waiting.wait(5)
    subscription.signal_ready()
    thread.join(5)
    assert result == [True] and LONGEST_WAIT < 1e9


def test_a_clock_of_1e_minus_9_waits_for_its_next_instant_and_stops() -> None:
    session = make(spy(speed=1e-9, days=1))
    session.start()
    try:
        assert wait_for(lambda: session.snapshot().state == "streaming", 30)
        # The first instant is due 6e10 s from the open: the coordinator waits for it.
        assert not session.wait(0.3)
        snapshot = session.snapshot()
        assert (snapshot.state, snapshot.error) == ("streaming", None)
    finally:
        assert_stops_in_time(session)
