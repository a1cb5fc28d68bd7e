"""Tests of SessionData (component 1): structures, zero copy, memory and concurrency."""

from __future__ import annotations

import sys
import threading
import tracemalloc
from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sessionkit.engine.core.bar import Bar
from sessionkit.engine.core.session_data import HistoricalIndicator, SessionData

BASE = datetime(2011, 1, 3, 14, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
NEW_YORK = ZoneInfo("America/New_York")


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


# -- bars -------------------------------------------------------------------------------------


def test_issue_example_zero_copy():
    bar = Bar(
        start=datetime(2011, 1, 3, 14, 30, tzinfo=UTC),
        open=126.71,
        high=126.74,
        low=126.66,
        close=126.72,
        volume=2259046,
    )
    data = SessionData()
    data.append_bar("SPY", "1m", bar)
    assert data.get_bars("SPY", "1m") is data.get_bars("SPY", "1m")
    assert data.get_bars("SPY", "1m")[-1] is bar


def test_get_bars_returns_the_live_deque_even_before_the_first_bar():
    data = SessionData()
    bars = data.get_bars("SPY", "1m")
    assert len(bars) == 0
    data.append_bar("SPY", "1m", make_bar(0))
    data.append_bar("SPY", "1m", make_bar(1))
    assert data.get_bars("SPY", "1m") is bars
    assert [b.volume for b in bars] == [0, 1]


def test_last_bar_and_count():
    data = SessionData()
    assert data.get_last_bar("SPY", "1m") is None
    assert data.bar_count("SPY", "1m") == 0
    data.get_bars("SPY", "1m")  # an existing but empty series
    assert data.get_last_bar("SPY", "1m") is None
    for i in range(3):
        data.append_bar("SPY", "1m", make_bar(i))
    assert data.get_last_bar("SPY", "1m") == make_bar(2)
    assert data.bar_count("SPY", "1m") == 3
    assert data.bar_count("SPY", "5m") == 0


def test_series_are_separate_per_symbol_and_interval():
    data = SessionData()
    data.append_bar("SPY", "1m", make_bar(0))
    data.append_bar("SPY", "5m", make_bar(1))
    data.append_bar("QQQ", "1m", make_bar(2))
    assert data.symbols() == ["QQQ", "SPY"]
    assert data.intervals("SPY") == ["1m", "5m"]
    assert data.intervals("IWM") == []
    assert data.get_last_bar("QQQ", "1m").volume == 2
    assert data.get_bars("SPY", "1m") is not data.get_bars("SPY", "5m")


def test_append_refuses_what_is_not_a_bar_or_a_known_interval():
    data = SessionData()
    with pytest.raises(TypeError, match="needs a Bar, not tuple"):
        data.append_bar("SPY", "1m", tuple(make_bar(0)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown interval '2m'"):
        data.append_bar("SPY", "2m", make_bar(0))
    with pytest.raises(ValueError, match="symbol"):
        data.append_bar("", "1m", make_bar(0))
    with pytest.raises(TypeError, match="needs Bars"):
        data.append_bars("SPY", "1m", [make_bar(0), {"open": 1.0}])  # type: ignore[list-item]
    assert data.bar_count("SPY", "1m") == 0  # nothing half appended


def test_append_bars_bulk():
    data = SessionData()
    assert data.append_bars("SPY", "1m", (make_bar(i) for i in range(10))) == 10
    assert data.append_bars("SPY", "1m", [make_bar(10)]) == 1
    assert [b.volume for b in data.get_bars("SPY", "1m")] == list(range(11))


def test_retention_keeps_the_latest_bars_per_interval():
    data = SessionData(retention={"1m": 5})
    data.append_bars("SPY", "1m", [make_bar(i) for i in range(12)])
    data.append_bars("SPY", "5m", [make_bar(i) for i in range(12)])
    assert [b.volume for b in data.get_bars("SPY", "1m")] == [7, 8, 9, 10, 11]
    assert data.bar_count("SPY", "5m") == 12  # no limit for 5m
    assert data.retention == {"1m": 5}


@pytest.mark.parametrize("retention", [{"1m": 0}, {"1m": -1}, {"1m": 2.5}, {"1m": True}])
def test_retention_must_be_positive_bars(retention):
    with pytest.raises(ValueError, match="positive number of bars"):
        SessionData(retention=retention)


def test_retention_interval_must_be_known():
    with pytest.raises(ValueError, match="unknown interval"):
        SessionData(retention={"1d": 10})


def test_snapshot_and_tail_are_copies():
    data = SessionData()
    data.append_bars("SPY", "1m", [make_bar(i) for i in range(100)])
    everything = data.snapshot_bars("SPY", "1m")
    assert isinstance(everything, list) and len(everything) == 100
    assert everything[0].volume == 0 and everything[-1].volume == 99
    last = data.tail("SPY", "1m", 3)
    assert [b.volume for b in last] == [97, 98, 99]
    assert [b.volume for b in data.snapshot_bars("SPY", "1m", 2)] == [98, 99]
    assert data.tail("SPY", "1m", 0) == []
    assert len(data.tail("SPY", "1m", 1000)) == 100
    assert data.tail("QQQ", "1m", 5) == []
    assert data.snapshot_bars("QQQ", "1m") == []
    data.append_bar("SPY", "1m", make_bar(100))
    assert len(everything) == 100 and last[-1].volume == 99  # copies do not move
    with pytest.raises(ValueError, match="n must be"):
        data.tail("SPY", "1m", -1)


# -- memory -----------------------------------------------------------------------------------


def _traced_bytes_per_bar(count: int) -> float:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        data = SessionData()
        for i in range(count):
            data.append_bar("SPY", "1m", make_bar(i))
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert data.bar_count("SPY", "1m") == count
    return (after - before) / count


def test_memory_per_stored_bar_at_100k_bars():
    """Bars and their objects (datetime, floats, int) plus the deque slot: <= 300 bytes."""
    assert _traced_bytes_per_bar(100_000) <= 300


def test_clear_releases_the_memory():
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        data = SessionData()
        held = data.get_bars("SPY", "1m")  # a reader still holding the deque
        for i in range(100_000):
            data.append_bar("SPY", "1m", make_bar(i))
        times = [make_bar(i).start for i in range(2_000)]
        data.set_historical_indicator("sma", "SPY", "1m", times, [float(i) for i in range(2_000)])
        del times  # the test's own list: not the store's to free
        data.set_realtime_indicator("SPY", "rsi", 55.0)
        data.set_quality_metric("SPY", "1m", 99.5)
        full = tracemalloc.get_traced_memory()[0]
        data.clear()
        cleared = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert full - before > 20_000_000
    assert cleared - before < 50_000, f"{cleared - before} bytes left after clear()"
    assert len(held) == 0  # the held deque was emptied, so its bars were freed
    assert data.get_bars("SPY", "1m") is not held
    assert data.bar_count("SPY", "1m") == 0
    assert data.historical_indicator("sma", "SPY", "1m") is None
    assert data.get_realtime_indicator("SPY", "rsi") is None
    assert data.get_quality_metric("SPY", "1m") is None


# -- concurrency ------------------------------------------------------------------------------


def test_one_writer_many_readers_million_bars():
    """A writer appends 1,000,000 bars while readers copy tails, snapshots and last bars.

    Retention (100,000) makes every append also drop the oldest bar, the harder case for
    readers. No reader may see an error, a torn bar or a hole in a copied sequence.
    """
    total, kept = 1_000_000, 100_000
    data = SessionData(retention={"1m": kept})
    live = data.get_bars("SPY", "1m")
    done = threading.Event()
    failures: list[str] = []
    seen = {"tails": 0, "snapshots": 0, "last": 0}

    def writer() -> None:
        append = data.append_bar
        new_bar = tuple.__new__  # Bar(...) without NamedTuple's Python-level __new__: 2x faster
        try:
            for i in range(total):
                price = 100.0 + i * 0.01
                fields = (BASE + i * MINUTE, price, price + 0.75, price - 0.25, price + 0.5, i)
                append("SPY", "1m", new_bar(Bar, fields))
        finally:
            done.set()

    def tail_reader() -> None:
        previous_last = -1
        try:
            while not done.wait(0.0002):  # leave the writer most of the GIL
                last = data.get_last_bar("SPY", "1m")
                if last is not None:
                    if not is_intact(last) or last.volume < previous_last:
                        failures.append(f"bad last bar {last}")
                    previous_last = last.volume
                    seen["last"] += 1
                if len(live):
                    newest = live[-1]  # allowed on the live deque: one atomic read
                    if not is_intact(newest):
                        failures.append(f"torn live[-1] {newest}")
                bars = data.tail("SPY", "1m", 32)
                for a, b in zip(bars, bars[1:], strict=False):
                    if b.volume != a.volume + 1:
                        failures.append(f"hole in tail {a.volume} -> {b.volume}")
                if not all(map(is_intact, bars)):
                    failures.append("torn bar in tail")
                seen["tails"] += 1
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(repr(exc))

    def snapshot_reader() -> None:
        try:
            while not done.wait(0.005):
                bars = data.snapshot_bars("SPY", "1m")
                if bars:
                    if bars[-1].volume - bars[0].volume != len(bars) - 1 or len(bars) > kept:
                        failures.append(f"inconsistent snapshot of {len(bars)} bars")
                    if not (is_intact(bars[0]) and is_intact(bars[len(bars) // 2])):
                        failures.append("torn bar in snapshot")
                seen["snapshots"] += 1
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(repr(exc))

    threads = [
        threading.Thread(target=writer),
        threading.Thread(target=tail_reader),
        threading.Thread(target=tail_reader),
        threading.Thread(target=snapshot_reader),
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
    assert seen["tails"] > 10 and seen["snapshots"] > 0 and seen["last"] > 10
    assert len(live) == kept
    assert live[-1] == make_bar(total - 1)
    assert live[0] == make_bar(total - kept)
    assert all(map(is_intact, data.snapshot_bars("SPY", "1m")))


# -- historical indicators --------------------------------------------------------------------


def _session_minutes(day: datetime, count: int) -> list[datetime]:
    return [day + i * MINUTE for i in range(count)]


def test_historical_indicator_exact_between_before_and_after():
    times = _session_minutes(BASE, 390)
    data = SessionData()
    indicator = data.set_historical_indicator(
        "sma_20", "SPY", "1m", times, [float(i) for i in range(390)]
    )
    assert len(indicator) == 390
    get = data.get_historical_indicator
    assert get("sma_20", "SPY", "1m", BASE) == 0.0
    assert get("sma_20", "SPY", "1m", BASE + 5 * MINUTE) == 5.0
    assert get("sma_20", "SPY", "1m", BASE + 5 * MINUTE + timedelta(seconds=59)) == 5.0
    assert get("sma_20", "SPY", "1m", BASE - timedelta(seconds=1)) is None
    assert get("sma_20", "SPY", "1m", BASE + timedelta(days=1)) == 389.0  # overnight: last
    # The same instant in another zone is the same instant.
    assert get("sma_20", "SPY", "1m", (BASE + 7 * MINUTE).astimezone(NEW_YORK)) == 7.0


def test_historical_indicator_gaps_fall_back_to_the_value_before():
    times = [BASE + i * MINUTE for i in range(10) if i not in (4, 5, 6)]
    indicator = HistoricalIndicator("x", "SPY", "1m", times, [t.minute for t in times])
    assert indicator.at(BASE + 5 * MINUTE) == (BASE + 3 * MINUTE).minute
    assert indicator.at(BASE + 7 * MINUTE) == (BASE + 7 * MINUTE).minute


def test_hourly_indicator_anchored_at_the_open_across_dst():
    """1h windows start at 09:30 New York: 14:30 UTC in winter, 13:30 UTC in summer."""
    days = [
        datetime(2011, 3, 11, 9, 30, tzinfo=NEW_YORK),
        datetime(2011, 3, 14, 9, 30, tzinfo=NEW_YORK),
    ]
    times = [day + timedelta(hours=h) for day in days for h in range(7)]
    values = list(range(len(times)))
    indicator = HistoricalIndicator("h", "SPY", "1h", times, values)
    assert indicator._index is not None  # a regular grid: dict lookups
    monday_1045 = datetime(2011, 3, 14, 10, 45, tzinfo=NEW_YORK)
    assert indicator.at(monday_1045) == 8  # the 10:30 window of the second day
    assert indicator.at(datetime(2011, 3, 12, 12, 0, tzinfo=NEW_YORK)) == 6  # Saturday


@settings(max_examples=200, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 5_000), min_size=1, max_size=60, unique=True),
    probes=st.lists(st.integers(-10, 5_100 * 60), min_size=1, max_size=20),
    irregular=st.booleans(),
)
def test_historical_lookup_matches_a_linear_scan(offsets, probes, irregular):
    offsets.sort()
    seconds = [o * 60 + (o % 7 if irregular else 0) for o in offsets]
    seconds = sorted(set(seconds))
    times = [BASE + timedelta(seconds=s) for s in seconds]
    indicator = HistoricalIndicator("x", "SPY", "1m", times, seconds)
    for probe in probes:
        i = bisect_right(seconds, probe) - 1
        expected = seconds[i] if i >= 0 else None
        assert indicator.at(BASE + timedelta(seconds=probe)) == expected


def test_historical_indicator_validation_and_unknown_name():
    data = SessionData()
    with pytest.raises(ValueError, match="2 times but 1 values"):
        data.set_historical_indicator("x", "SPY", "1m", [BASE, BASE + MINUTE], [1])
    with pytest.raises(ValueError, match="strictly increasing"):
        data.set_historical_indicator("x", "SPY", "1m", [BASE, BASE], [1, 2])
    with pytest.raises(ValueError, match="naive"):
        data.set_historical_indicator("x", "SPY", "1m", [datetime(2011, 1, 3)], [1])
    data.set_historical_indicator("ema", "SPY", "5m", [BASE], [1.5])
    with pytest.raises(KeyError, match="stored: ema SPY 5m"):
        data.get_historical_indicator("sma", "SPY", "5m", BASE)
    empty = data.set_historical_indicator("none", "SPY", "1m", [], [])
    assert empty.at(BASE) is None


def test_set_historical_indicator_replaces_the_whole_index():
    data = SessionData()
    first = data.set_historical_indicator("x", "SPY", "1m", [BASE], [1])
    second = data.set_historical_indicator("x", "SPY", "1m", [BASE], [2])
    assert data.historical_indicator("x", "SPY", "1m") is second is not first
    assert data.get_historical_indicator("x", "SPY", "1m", BASE) == 2
    assert first.at(BASE) == 1 and first.values == [1]


# -- real-time indicators and quality ---------------------------------------------------------


def test_realtime_indicators():
    data = SessionData()
    assert data.get_realtime_indicator("SPY", "rsi_14") is None
    assert data.get_realtime_indicator("SPY", "rsi_14", default=50.0) == 50.0
    data.set_realtime_indicator("SPY", "rsi_14", 61.2)
    data.set_realtime_indicator("SPY", "vwap", 401.5)
    data.set_realtime_indicator("QQQ", "vwap", 300.0)
    assert data.get_realtime_indicator("SPY", "rsi_14") == 61.2
    copy = data.realtime_indicators("SPY")
    assert copy == {"rsi_14": 61.2, "vwap": 401.5}
    copy["rsi_14"] = 0.0
    assert data.get_realtime_indicator("SPY", "rsi_14") == 61.2
    assert data.realtime_indicators("IWM") == {}


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
