"""Tests of StreamSubscription (component 2): the spec's checklist plus cancel and counters."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from sessionkit.engine.core.subscription import MODES, StreamSubscription, SubscriptionStats

JOIN = 5.0
"""Seconds a test thread is given to finish; a thread still alive after it is a failure."""


def _start(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _join(thread: threading.Thread) -> None:
    thread.join(JOIN)
    assert not thread.is_alive(), "a thread was left blocked"


def _wait_for_waiter(sub: StreamSubscription, waits: int = 1) -> None:
    """Block until ``waits`` waits have started (the waiter is inside the wait)."""
    deadline = time.monotonic() + JOIN
    while sub.waits < waits:
        assert time.monotonic() < deadline, "the waiter never started"
        time.sleep(0.001)
    time.sleep(0.02)  # let it reach Condition.wait


@pytest.mark.parametrize("mode", MODES)
def test_signal_before_wait_returns_at_once(mode):
    sub = StreamSubscription(mode, "s")
    sub.signal_ready()
    started = time.perf_counter()
    assert sub.wait_until_ready(timeout=5.0) is True
    assert time.perf_counter() - started < 0.5
    assert sub.is_ready()  # wait_until_ready does not consume
    assert sub.wait_until_ready(timeout=0) is True


@pytest.mark.parametrize("mode", MODES)
def test_wait_before_signal_is_woken(mode):
    sub = StreamSubscription(mode, "s")
    results: list[bool] = []
    thread = _start(lambda: results.append(sub.wait_until_ready(timeout=10.0)))
    _wait_for_waiter(sub)
    assert thread.is_alive()
    sub.signal_ready()
    _join(thread)
    assert results == [True]
    assert sub.last_wait >= 0.02
    assert sub.max_wait >= sub.last_wait


@pytest.mark.parametrize("mode", MODES)
def test_reset_consumes_the_signal(mode):
    sub = StreamSubscription(mode, "s")
    sub.signal_ready()
    sub.reset()
    assert not sub.is_ready()
    if mode != "data-driven":
        assert sub.wait_until_ready(timeout=0.05) is False
    sub.signal_ready()
    assert sub.wait_until_ready(timeout=0.05) is True


def test_wait_and_reset_consumes_atomically():
    sub = StreamSubscription("clock-driven", "s")
    sub.signal_ready()
    assert sub.wait_and_reset(timeout=1.0) is True
    assert not sub.is_ready()
    assert sub.wait_and_reset(timeout=0.02) is False


@pytest.mark.parametrize("mode", ["clock-driven", "live"])
def test_overrun_counted_in_clock_driven_and_live_modes(mode, caplog):
    """Live too: a feed's instant is due when it arrives (QA: a live analysis sleeping
    2.5 s an instant, with one a second, counted no overrun; README says it counts)."""
    sub = StreamSubscription(mode, "processor->coordinator")
    with caplog.at_level(logging.WARNING, logger="sessionkit.engine.core.subscription"):
        sub.signal_ready()
        sub.signal_ready()  # the first was never consumed: overrun
        sub.signal_ready()
    assert sub.overruns == 2
    assert sub.signals == 3
    assert "overrun on processor->coordinator: 1" in caplog.text
    sub.reset()
    sub.signal_ready()  # consumed before: not an overrun
    assert sub.overruns == 2


def test_overrun_never_counted_in_data_driven_mode():
    sub = StreamSubscription("data-driven", "s")
    for _ in range(5):
        sub.signal_ready()
    assert sub.overruns == 0
    assert sub.signals == 5


def test_by_producer_signals_never_count_overruns_the_producer_does():
    sub = StreamSubscription("clock-driven", "s", overruns="by-producer")
    sub.signal_ready()
    sub.signal_ready()  # a collision: not counted so
    assert sub.overruns == 0
    sub.count_overrun()
    sub.count_overrun()
    assert sub.overruns == 2 and sub.stats().overruns == 2
    sub.set_mode("data-driven")  # only clock-driven and live instants can be late
    sub.count_overrun()
    assert sub.overruns == 2
    sub.set_mode("live")
    sub.count_overrun()
    assert sub.overruns == 3
    sub.set_mode("clock-driven")
    sub.cancel()
    sub.count_overrun()
    assert sub.overruns == 3


def test_unknown_overrun_counting_is_refused():
    with pytest.raises(ValueError, match="unknown overrun counting 'sometimes'"):
        StreamSubscription("clock-driven", "s", overruns="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["clock-driven", "live"])
def test_timeout_returns_false_and_is_counted(mode):
    sub = StreamSubscription(mode, "s")
    started = time.perf_counter()
    assert sub.wait_until_ready(timeout=0.05) is False
    waited = time.perf_counter() - started
    assert 0.04 <= waited < 2.0
    assert sub.timeouts == 1
    assert sub.waits == 1
    assert sub.last_wait == pytest.approx(waited, abs=0.05)


def test_data_driven_ignores_the_timeout_until_signalled():
    sub = StreamSubscription("data-driven", "s")
    results: list[bool] = []
    thread = _start(lambda: results.append(sub.wait_until_ready(timeout=0.01)))
    _wait_for_waiter(sub)
    time.sleep(0.1)  # ten times the timeout
    assert thread.is_alive() and results == []
    sub.signal_ready()
    _join(thread)
    assert results == [True]
    assert sub.timeouts == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("timeout", [None, 30.0])
def test_cancel_wakes_a_waiter_at_once(mode, timeout):
    sub = StreamSubscription(mode, "s")
    results: list[bool] = []
    thread = _start(lambda: results.append(sub.wait_until_ready(timeout=timeout)))
    _wait_for_waiter(sub)
    cancelled_at = time.perf_counter()
    sub.cancel()
    _join(thread)
    assert time.perf_counter() - cancelled_at < 1.0
    assert results == [False]
    assert sub.cancelled
    assert sub.timeouts == 0


@pytest.mark.parametrize("mode", MODES)
def test_cancel_wakes_many_waiters_and_later_waits_return_at_once(mode):
    sub = StreamSubscription(mode, "s")
    results: list[bool] = []
    threads = [_start(lambda: results.append(sub.wait_and_reset())) for _ in range(4)]
    _wait_for_waiter(sub, waits=4)
    sub.cancel()
    for thread in threads:
        _join(thread)
    assert results == [False] * 4
    assert sub.wait_until_ready() is False  # no timeout, data-driven included: no block
    sub.signal_ready()  # ignored after cancel
    assert sub.signals == 0
    assert sub.wait_until_ready() is False
    sub.cancel()  # idempotent


def test_switching_from_data_driven_lets_the_timeout_apply():
    sub = StreamSubscription("data-driven", "s")
    results: list[bool] = []
    thread = _start(lambda: results.append(sub.wait_until_ready(timeout=0.05)))
    _wait_for_waiter(sub)
    time.sleep(0.1)
    assert thread.is_alive()
    sub.set_mode("clock-driven")  # the waiter re-reads the mode; its deadline has passed
    _join(thread)
    assert results == [False]
    assert sub.mode == "clock-driven"
    assert sub.timeouts == 1


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown subscription mode 'fast'"):
        StreamSubscription("fast", "s")  # type: ignore[arg-type]
    sub = StreamSubscription("live", "s")
    with pytest.raises(ValueError, match="unknown subscription mode"):
        sub.set_mode("turbo")  # type: ignore[arg-type]


def test_stats_is_a_consistent_immutable_copy():
    sub = StreamSubscription("clock-driven", "p->c")
    sub.signal_ready()
    sub.signal_ready()
    sub.wait_and_reset(timeout=1.0)
    stats = sub.stats()
    assert isinstance(stats, SubscriptionStats)
    assert (stats.stream_id, stats.mode, stats.signals, stats.overruns, stats.waits) == (
        "p->c",
        "clock-driven",
        2,
        1,
        1,
    )
    assert stats.ready is False and stats.cancelled is False
    with pytest.raises(AttributeError):
        stats.signals = 0  # type: ignore[misc]
    assert "p->c" in repr(sub)


def test_ping_pong_between_two_threads_counts_every_cycle():
    """A producer and a consumer hand off 2,000 times; counters read from a third thread."""
    to_consumer = StreamSubscription("data-driven", "c->p")
    to_producer = StreamSubscription("data-driven", "p->c")
    cycles = 2_000
    done = threading.Event()
    observed: list[int] = []

    def consumer() -> None:
        while to_consumer.wait_and_reset():
            to_producer.signal_ready()

    def observer() -> None:
        while not done.wait(0.005):
            observed.append(to_consumer.signals)

    threads = [_start(consumer), _start(observer)]
    for _ in range(cycles):
        to_consumer.signal_ready()
        assert to_producer.wait_and_reset()
    to_consumer.cancel()
    to_producer.cancel()
    done.set()
    for thread in threads:
        _join(thread)
    assert to_consumer.signals == cycles and to_producer.signals == cycles
    assert to_consumer.overruns == 0
    assert observed == sorted(observed)
    assert to_producer.max_wait >= to_producer.last_wait > 0
