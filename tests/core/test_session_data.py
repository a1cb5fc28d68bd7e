"""Tests of SessionData (component 1): series read by time, memory and concurrency."""

from __future__ import annotations

import sys
import threading
from bisect import bisect_right
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sessionkit.engine.core.bar import Bar
from sessionkit.engine.core.session_data import BarSeries, SessionData
from sessionkit.engine.core.time_manager import TradingSession
from sessionkit.engine.core.windows import bar_end

BASE = datetime(2011, 1, 3, 14, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
T0 = BASE.timestamp()


def make_bar(i: int) -> Bar:
    """Bar number ``i``: every field derives from ``i``, so a reader can check it whole."""
    price = 100.0 + i * 0.01
    return Bar(BASE + i * MINUTE, price, price + 0.75, price - 0.25, price + 0.5, i)


def is_intact(bar: Bar) -> bool:
    i = bar.volume
    price = 100.0 + i * 0.01
    return (
        bar.start - BASE == i * MINUTE
        and bar.open == price
        and bar.high == price + 0.75
        and bar.low == price - 0.25
        and bar.close == price + 0.5
    )


def filled(count: int, names=("sma",)) -> BarSeries:
    """A series of ``count`` minute bars, bar i known from its end, row (i,)."""
    series = BarSeries("SPY", "1m", names)
    for i in range(count):
        series.append(make_bar(i), (float(i),) * len(names), T0 + 60 * (i + 1))
    return series


def test_bar_end_is_start_plus_interval_or_the_close_that_cuts_it():
    close = BASE + 30 * MINUTE
    session = TradingSession(BASE.date(), BASE, close, False)
    assert bar_end(session, 5 * MINUTE, BASE) == BASE + 5 * MINUTE
    assert bar_end(session, 5 * MINUTE, BASE + 28 * MINUTE) == close
    assert bar_end(session, 5 * MINUTE, BASE + 25 * MINUTE) == close  # ends exactly at it
    longer = TradingSession(BASE.date(), BASE, BASE + 60 * MINUTE, False)
    assert bar_end(longer, 5 * MINUTE, BASE + 28 * MINUTE) == BASE + 33 * MINUTE


def test_views_are_bounded_by_time():
    series = filled(10)
    assert len(series) == 10 and series.count() == 10
    # Known at the end of bar 4 (T0 + 5 min): bars 0..4.
    at = T0 + 5 * 60
    assert series.count(at) == 5
    assert series.last(at) == make_bar(4)
    assert series.bars(3, at) == [make_bar(2), make_bar(3), make_bar(4)]
    assert series.closes(2, at) == [make_bar(3).close, make_bar(4).close]
    assert series.value("sma", at) == 4.0
    assert series.values("sma", 3, at) == [2.0, 3.0, 4.0]
    assert series.row(at) == {"sma": 4.0}
    # A moment before bar 4 ends: bar 3 is the last known.
    assert series.last(at - 1) == make_bar(3)
    # Before the first bar ends: nothing, never a later bar.
    assert series.last(T0) is None and series.bars(5, T0) == [] and series.value("sma", T0) is None
    assert series.row(T0) == {"sma": None}
    # After everything, or "latest": all.
    assert series.last(T0 + 10**6) == series.last() == make_bar(9)
    assert series.bars(100) == [make_bar(i) for i in range(10)]
    assert series.bars(0) == [] and series.closes(0) == [] and series.values("sma", 0) == []
    with pytest.raises(KeyError):
        series.value("ema", at)


def test_views_are_copies():
    series = filled(5)
    bars = series.bars(5)
    bars.clear()
    assert series.count() == 5
    values = series.values("sma", 5)
    values.append(99.0)
    assert series.values("sma", 5) == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_history_and_dropping_old_bars():
    series = filled(10)
    series.mark_history()
    assert series.history == 10
    series.append(make_bar(10), (10.0,), T0 + 11 * 60)
    assert series.summary() == (11, 10, make_bar(10), (10.0,), make_bar(9).close)
    assert series.drop_before(make_bar(4).start) == 4
    assert series.history == 6 and len(series) == 7
    assert series.bars(100)[0] == make_bar(4)
    bars, rows, history = series.window(3)
    assert bars == [make_bar(8), make_bar(9), make_bar(10)]
    assert rows == [(8.0,), (9.0,), (10.0,)]
    assert history == 2
    assert series.drop_before(BASE) == 0
    series.reset()
    assert len(series) == 0 and series.summary() == (0, 0, None, None, None)


def test_a_reader_keeps_a_consistent_copy_across_a_drop():
    series = filled(10)
    before = series.window()
    series.drop_before(make_bar(5).start)
    assert before[0] == [make_bar(i) for i in range(10)]
    assert series.window()[0] == [make_bar(i) for i in range(5, 10)]


@settings(max_examples=200, deadline=None)
@given(
    known=st.lists(st.integers(0, 50), min_size=0, max_size=60),
    probes=st.lists(st.integers(-5, 3000), min_size=1, max_size=20),
    n=st.integers(1, 10),
)
def test_views_match_a_linear_scan(known, probes, n):
    """Whatever the instants (several bars may share one), a view shows exactly the bars
    known at the probe, never one known later."""
    series = BarSeries("SPY", "1m", ("x",))
    epoch = 0
    for i, step in enumerate(known):
        epoch += step
        series.append(make_bar(i), (float(i),), float(epoch))
    knowns = []
    epoch = 0
    for step in known:
        epoch += step
        knowns.append(epoch)
    for at in probes:
        visible = [make_bar(i) for i, k in enumerate(knowns) if k <= at]
        assert series.bars(n, at) == visible[-n:]
        assert series.last(at) == (visible[-1] if visible else None)
        assert series.count(at) == bisect_right(knowns, at)
        assert series.value("x", at) == (float(len(visible) - 1) if visible else None)


def test_session_data_series_registry():
    data = SessionData()
    spy = data.add_series("SPY", "1m", ("sma",))
    assert data.add_series("SPY", "1m", ("sma",)) is spy
    assert data.series("SPY", "1m") is spy
    data.add_series("SPY", "5m")
    data.add_series("QQQ", "1m")
    assert data.symbols() == ["QQQ", "SPY"]
    assert data.intervals("SPY") == ["1m", "5m"]
    assert data.intervals("IWM") == []
    with pytest.raises(KeyError, match="no series SPY 15m .*SPY 1m"):
        data.series("SPY", "15m")
    with pytest.raises(ValueError, match="other|exists"):
        data.add_series("SPY", "1m", ("ema",))
    with pytest.raises(ValueError, match="interval"):
        data.add_series("SPY", "2m")
    with pytest.raises(ValueError, match="symbol"):
        data.add_series("", "1m")


def test_quality_metrics():
    data = SessionData()
    assert data.get_quality_metric("SPY", "1m") is None
    data.set_quality_metric("SPY", "1m", 98.5)
    data.set_quality_metric("SPY", "5m", 100)
    assert data.get_quality_metric("SPY", "1m") == 98.5
    assert data.quality_metrics("SPY") == {"1m": 98.5, "5m": 100.0}
    assert data.quality_metrics("QQQ") == {}
    for bad in (-0.1, 100.01, float("nan")):
        with pytest.raises(ValueError, match="0-100"):
            data.set_quality_metric("SPY", "1m", bad)
    assert data.get_quality_metric("SPY", "1m") == 98.5


# -- concurrency ------------------------------------------------------------------------------


def test_one_writer_many_readers_million_bars():
    """A writer appends 1,000,000 bars (dropping old ones now and then) while readers ask
    for views at their own, lagging instants and for the latest state.

    No reader may see an error, a torn bar, a hole in a copied sequence, a bar known after
    its instant, or a row that does not belong to its bar.
    """
    total = 1_000_000
    series = BarSeries("SPY", "1m", ("i",))
    done = threading.Event()
    failures: list[str] = []
    seen = {"lagging": 0, "latest": 0}

    def writer() -> None:
        append = series.append
        new_bar = tuple.__new__
        try:
            for i in range(total):
                price = 100.0 + i * 0.01
                fields = (BASE + i * MINUTE, price, price + 0.75, price - 0.25, price + 0.5, i)
                append(new_bar(Bar, fields), (i,), T0 + 60.0 * (i + 1))
                if i % 100_000 == 99_999:
                    series.drop_before(BASE + (i - 50_000) * MINUTE)
        finally:
            done.set()

    def lagging_reader() -> None:
        try:
            while not done.wait(0.0002):
                count = len(series)
                if not count:
                    continue
                newest = series.last()
                if newest is None or not is_intact(newest):
                    failures.append(f"bad latest {newest}")
                    continue
                at = T0 + 60.0 * (newest.volume + 1) - 600.0  # ten minutes behind
                bars = series.bars(32, at)
                values = series.values("i", 32, at)
                if bars and (bars[-1].volume + 1) * 60.0 + T0 > at:
                    failures.append(f"bar {bars[-1].volume} known after {at}")
                if [b.volume for b in bars] != [v for v in values]:
                    failures.append("rows out of line with their bars")
                for a, b in zip(bars, bars[1:], strict=False):
                    if b.volume != a.volume + 1:
                        failures.append(f"hole {a.volume} -> {b.volume}")
                if not all(map(is_intact, bars)):
                    failures.append("torn bar")
                seen["lagging"] += 1
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(repr(exc))

    def latest_reader() -> None:
        try:
            while not done.wait(0.005):
                bars, rows, _history = series.window()
                if bars:
                    if bars[-1].volume - bars[0].volume != len(bars) - 1:
                        failures.append(f"inconsistent window of {len(bars)} bars")
                    if [r[0] for r in rows[-5:]] != [b.volume for b in bars[-5:]]:
                        failures.append("window rows out of line")
                seen["latest"] += 1
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(repr(exc))

    threads = [
        threading.Thread(target=writer),
        threading.Thread(target=lagging_reader),
        threading.Thread(target=lagging_reader),
        threading.Thread(target=latest_reader),
    ]
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # switch threads 50 times as often: more interleavings
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        sys.setswitchinterval(switch_interval)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert seen["lagging"] > 10 and seen["latest"] > 0
    assert series.last() == make_bar(total - 1)
    assert all(map(is_intact, series.bars(10**7)))


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(1, 30)),
            st.tuples(st.just("drop"), st.integers(0, 400)),
            st.tuples(st.just("mark"), st.just(0)),
        ),
        max_size=40,
    ),
    probes=st.lists(st.integers(-5, 30_000), min_size=1, max_size=5),
    n=st.integers(1, 50),
)
def test_dropping_keeps_every_view_equal_to_a_plain_list(ops, probes, n):
    """However drops and appends interleave (drops only move the view until the dropped
    bars are as many as the kept ones), every view equals the one of a plain list model."""
    series = BarSeries("SPY", "1m", ("x",))
    model: list[int] = []  # bar numbers in view
    history = 0
    i = 0
    for op, value in ops:
        if op == "append":
            for _ in range(value):
                series.append(make_bar(i), (float(i),), T0 + 60 * (i + 1))
                model.append(i)
                i += 1
        elif op == "drop":
            kept = [k for k in model if k >= value]
            assert series.drop_before(BASE + value * MINUTE) == len(model) - len(kept)
            history = max(0, history - (len(model) - len(kept)))
            model = kept
        else:
            series.mark_history()
            history = len(model)
    assert len(series) == len(model) and series.history == history
    for probe in probes:
        at = T0 + probe
        known = [k for k in model if T0 + 60 * (k + 1) <= at]
        assert series.count(at) == len(known)
        assert series.bars(n, at) == [make_bar(k) for k in known[-n:]]
        assert series.closes(n, at) == [make_bar(k).close for k in known[-n:]]
        assert series.values("x", n, at) == [float(k) for k in known[-n:]]
        assert series.last(at) == (make_bar(known[-1]) if known else None)
        assert series.value("x", at) == (float(known[-1]) if known else None)
    bars, rows, hist = series.window(n)
    assert bars == [make_bar(k) for k in model[-n:]] and rows == [(float(k),) for k in model[-n:]]
    assert hist == max(0, history - max(0, len(model) - n))
    count, hist, last, row, prev = series.summary()
    assert (count, hist) == (len(model), min(history, len(model)))
    assert last == (make_bar(model[-1]) if model else None)
    assert prev == (make_bar(model[history - 1]).close if model and history else None)
