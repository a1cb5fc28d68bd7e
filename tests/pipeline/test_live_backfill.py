"""Live gap filling: the bars a replay feed loses in transit come back from its backfill.

A lost bar is asked for after the quality manager has handled the instant at which it was
due; the live coordinator waits for that before it publishes the next instant, so the fill
goes in with that next instant, in time order, before any newer bar of its symbol, however
fast the feed hands instants on (the catch-up before ``replay_start`` hands on a morning at
once). The event log says "filled" only for fills that arrived; a fill that came after newer
bars is dropped, and the log and the quality say so.

The runs do not depend on the machine's speed: the coordinator's wait for the quality
manager is given far more time than it needs (``fill_wait``), and the one test of a late
fill holds the backfill until a newer bar has passed (an event, not a sleep).
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sessionkit.engine.config import config_from_dict
from sessionkit.engine.core.bar import Bar
from sessionkit.engine.pipeline.runtime import SessionPlan
from sessionkit.engine.pipeline.session import Session

NY = ZoneInfo("America/New_York")
DAY = date(2011, 3, 15)
OPEN = datetime(2011, 3, 15, 9, 30, tzinfo=NY)
CLOSE = datetime(2011, 3, 15, 16, 0, tzinfo=NY)
MINUTE = timedelta(minutes=1)
FILLED = re.compile(r"filled (\d+) missing SPY 1m bar\(s\) from the feed's backfill")


def live(replay_start: str = "15:50", speed: float = 6000.0, drop_rate: float = 0.2) -> Session:
    """The QA's configuration (SPY on 2011-03-15, 20% lost), faster than real time."""
    session = Session(live_config(replay_start, speed, drop_rate))
    session.coordinator.fill_wait = 60.0  # never the limit, however busy the machine
    return session


def live_config(replay_start: str = "15:50", speed: float = 6000.0, drop_rate: float = 0.2):
    return config_from_dict(
        {
            "mode": "live",
            "exchange_group": "NYSE",
            "streams": {"symbols": ["SPY"], "interval": "1m", "derived": ["5m"]},
            "live": {
                "replay_date": DAY,
                "replay_start": replay_start,
                "speed": speed,
                "drop_rate": drop_rate,
            },
            "indicators": [{"name": "sma_5", "kind": "sma", "period": 5, "interval": "1m"}],
        }
    )


def run(session: Session) -> Session:
    session.start()
    try:
        assert session.wait_idle(120)
    finally:
        assert session.stop()
    snap = session.snapshot()
    assert snap.state == "completed", snap.error
    return session


def today(session: Session, interval: str) -> tuple[list[Bar], list[tuple]]:
    """The streamed session's bars and indicator rows of ``interval`` (history left out)."""
    bars, rows, history = session.data.series("SPY", interval).window()
    return bars[history:], rows[history:]


def every(minutes: int):
    """The session's instants ``minutes`` apart, from the open."""
    t = OPEN
    while t < CLOSE:
        yield t
        t += minutes * MINUTE


def filled_in_log(session: Session) -> int:
    return sum(
        int(m.group(1)) for e in session.snapshot().events if (m := FILLED.fullmatch(e.message))
    )


@pytest.fixture(scope="module")
def lossless() -> Session:
    return run(live(drop_rate=0.0))


@pytest.mark.parametrize(
    ("replay_start", "speed"),
    [("15:50", 6000.0), ("09:30", 20000.0)],
    ids=["catch-up-then-live", "from-the-open"],
)
def test_every_lost_bar_is_filled_in_order(lossless, replay_start, speed) -> None:
    """QA: 65 of 390 bars stayed missing (87 "filled", 75 "dropped" in the log) when the
    replay started at 15:50; 13 from the open."""
    session = run(live(replay_start, speed))
    feed = session.coordinator.feed
    quality = session.quality
    snap = session.snapshot()
    assert feed.dropped == len(feed.lost) > 50  # about 20% of 390
    assert all(bar.start + MINUTE < CLOSE for _symbol, bar in feed.lost)

    bars, rows = today(session, "1m")
    expected = session.data_manager.get_bars_between("SPY", "1m", OPEN, CLOSE)
    assert len(expected) == 390
    assert bars == expected  # every bar, each once, in time order
    assert session.processor.totals["SPY", "1m"] == 390
    assert snap.series["SPY", "1m"].quality == 100.0
    assert snap.series["SPY", "5m"].quality == 100.0
    assert quality.all_gaps["SPY"] == [] and quality.gap_count("SPY") == 0
    assert quality.filled == feed.dropped and quality.fills_lost == 0
    assert filled_in_log(session) == feed.dropped
    messages = [e.message for e in snap.events]
    assert not [m for m in messages if m.startswith(("gap in ", "backfilled "))]

    # The 1m indicator values are those of the run that lost nothing.
    lossless_bars, lossless_rows = today(lossless, "1m")
    assert lossless_bars == bars and lossless_rows == rows


def test_the_sessions_last_bar_lost_is_filled_at_the_close() -> None:
    """The last bar is due at the close, after which no instant of the feed follows: its
    fill comes with one more instant at the close (it stayed missing, a gap)."""
    session = live(drop_rate=0.0)
    feed = session.coordinator.feed
    t, items = feed._steps[-1]
    assert t == CLOSE and [bar.start for _symbol, bar in items] == [CLOSE - MINUTE]
    feed._steps[-1] = (t, ())
    run(session)
    bars, _rows = today(session, "1m")
    assert bars == session.data_manager.get_bars_between("SPY", "1m", OPEN, CLOSE)
    assert session.processor.totals["SPY", "5m"] == 78
    assert session.snapshot().series["SPY", "1m"].quality == 100.0
    assert session.quality.all_gaps["SPY"] == [] and session.quality.filled == 1
    assert filled_in_log(session) == 1
    assert session.data.series("SPY", "1m").last().start == CLOSE - MINUTE


def test_a_filled_bar_is_known_from_the_instant_after_it_went_missing() -> None:
    """No look-ahead: a lost bar is not known at its end (it did not come); it is known
    from the next instant, when the fill arrived, and the derived bars hold exactly the
    base bars known when their window ended (an emitted window is never rewritten)."""
    session = run(live("15:50", 6000.0))
    series = session.data.series("SPY", "1m")
    lost = [bar for _symbol, bar in session.coordinator.feed.lost]
    assert lost
    for bar in lost:
        end = bar.start + MINUTE
        assert bar not in series.bars(10**6, at=end.timestamp()), bar
        assert bar in series.bars(10**6, at=(end + MINUTE).timestamp()), bar

    derived, _rows = today(session, "5m")
    windows = 0
    for window in every(5):
        end = window + 5 * MINUTE
        known = [b for b in series.bars(10**6, at=end.timestamp()) if window <= b.start < end]
        five = [b for b in derived if b.start == window]
        assert len(five) == 1
        (bar,) = five
        assert bar == Bar(
            window,
            known[0].open,
            max(b.high for b in known),
            min(b.low for b in known),
            known[-1].close,
            sum(b.volume for b in known),
        )
        windows += 1
    assert windows == len(derived) == 78
    # Some windows lost their last bar: their fill came after the window was emitted.
    assert any((b.start - OPEN) // MINUTE % 5 == 4 for b in lost)


def test_a_fill_that_comes_after_newer_bars_is_dropped_not_filled() -> None:
    """A backfill slower than the coordinator's wait: its bar comes after newer bars, so
    the coordinator drops it; the log never says "filled" for it, the quality manager does
    not count it, and the bar stays a gap."""
    session = live("15:50", 6000.0)
    coordinator = session.coordinator
    coordinator.fill_wait = 0.05  # the first backfill is held until a newer bar passed
    quality = session.quality
    backfill = quality._backfill
    publish = coordinator._publish
    passed = threading.Event()
    held: list[datetime] = []

    def watching_publish(t, items) -> None:
        publish(t, items)
        if held and coordinator._last_start.get("SPY", held[0]) > held[0]:
            passed.set()

    def slow_backfill(symbol: str, start: datetime, end: datetime) -> list[Bar]:
        if not held:
            held.append(start)
            assert passed.wait(30)
        return backfill(symbol, start, end)

    coordinator._publish = watching_publish
    quality._backfill = slow_backfill
    run(session)

    snap = session.snapshot()
    feed = coordinator.feed
    bars, _rows = today(session, "1m")
    starts = {bar.start for bar in bars}
    first = held[0]
    assert first not in starts  # dropped, not merged out of order
    assert [b.start for b in bars] == sorted(starts)
    local = first.astimezone(NY)
    warnings = [e.message for e in snap.events if e.level == "warning"]
    assert f"backfilled SPY bar {local:%H:%M} EDT arrived after newer bars: dropped" in warnings
    # The log and the counts agree with what arrived.
    assert filled_in_log(session) == quality.filled
    assert quality.fills_lost >= 1
    assert len(bars) == 390 - feed.dropped + quality.filled
    assert snap.series["SPY", "1m"].quality == pytest.approx(100.0 * len(bars) / 390)
    gaps = [e.message for e in snap.events if e.message.startswith("gap in SPY 1m")]
    assert any(m.endswith(f"from {local:%Y-%m-%d %H:%M}") for m in gaps), gaps


def test_stop_while_waiting_for_a_backfill() -> None:
    """The coordinator's wait for the quality manager ends at a stop, within a second."""
    session = live("15:50", 6000.0)
    quality = session.quality
    entered = threading.Event()

    def stuck_backfill(symbol: str, start: datetime, end: datetime) -> list[Bar]:
        entered.set()
        session.runtime.stop_event.wait(30)  # a feed that never answers (until the stop)
        return []

    quality._backfill = stuck_backfill
    coordinator = session.coordinator
    await_fills = coordinator._await_fills
    waiting = threading.Event()

    def watched_await() -> None:
        if quality.done_seq < coordinator._quality_queued:
            waiting.set()  # about to wait for the stuck quality manager (60 s allowed)
        await_fills()

    coordinator._await_fills = watched_await
    session.start()
    try:
        assert entered.wait(30) and waiting.wait(30)
        started = time.monotonic()
        assert session.stop()
        assert time.monotonic() - started < 1.5
        assert session.snapshot().state == "stopped"
        assert session.coordinator.fill_waits >= 1
    finally:
        session.stop()


# -- the quality manager, driven step by step (no thread) ----------------------------------------

UTC_OPEN = datetime(2024, 12, 2, 14, 30, tzinfo=UTC)


def _bar(minute: int) -> Bar:
    return Bar(UTC_OPEN + minute * MINUTE, 1.0 + minute, 2.0, 0.5, 1.5, 10)


def _manager():
    session = Session(
        config_from_dict(
            {
                "mode": "live",
                "live": {"replay_date": "2024-12-02", "drop_rate": 0.0},
                "streams": {"symbols": ["ACME"]},
            }
        )
    )
    quality = session.quality  # driven here: its thread is never started
    handed: list[list[Bar]] = []
    store = {UTC_OPEN + m * MINUTE: _bar(m) for m in range(390)}
    quality._backfill = lambda symbol, start, end: [b for t, b in store.items() if start <= t < end]
    quality._fill = lambda symbol, bars: handed.append(bars)
    plan = SessionPlan(1, date(2024, 12, 2), UTC_OPEN, UTC_OPEN + 390 * MINUTE, False, ())
    quality.start_session(plan)
    return session, quality, handed


def _at(minute: int) -> datetime:
    return UTC_OPEN + minute * MINUTE


def _filled_events(session: Session) -> list[tuple[datetime, str]]:
    return [
        (e.sim_time, e.message) for e in session.runtime.events() if e.message.startswith("filled")
    ]


def test_filled_is_logged_when_the_fill_arrives_not_when_it_is_asked_for() -> None:
    session, quality, handed = _manager()
    quality.refresh(_at(1), (("ACME", _bar(0)),))
    quality.refresh(_at(2), ())  # bar 1 lost: asked for, not yet filled
    assert handed == [[_bar(1)]]
    assert quality.filled == 0 and _filled_events(session) == []
    # The coordinator merged the fill into the next instant; bar 2 was lost as well.
    fill = handed[0][0]
    quality.refresh(_at(3), (("ACME", fill),))
    assert quality.filled == 1
    assert [m for _t, m in _filled_events(session)] == [
        "filled 1 missing ACME 1m bar(s) from the feed's backfill"
    ]
    # A fill of an older bar at this instant does not hide that bar 2 is missing.
    assert handed[1:] == [[_bar(2)]]
    quality.refresh(_at(4), (("ACME", handed[1][0]), ("ACME", _bar(3))))
    assert quality.filled == 2 and quality.fills_lost == 0
    assert quality.tracks["ACME"].present == 4 and quality.gap_count("ACME") == 0


def test_a_fill_passed_by_a_newer_bar_is_lost_and_a_gap() -> None:
    session, quality, handed = _manager()
    quality.refresh(_at(1), (("ACME", _bar(0)),))
    quality.refresh(_at(2), ())  # bar 1 lost: asked for
    assert handed == [[_bar(1)]]
    # Bar 2 came first: the coordinator dropped the fill of bar 1.
    quality.refresh(_at(3), (("ACME", _bar(2)),))
    assert quality.filled == 0 and quality.fills_lost == 1
    assert _filled_events(session) == []
    assert quality.gaps("ACME") == [(_at(1), _at(2))]
    # A bar the feed delivers itself, late, is not a fill (only the very bars handed on are).
    quality.refresh(_at(4), ())  # bar 3 lost: asked for
    assert handed[-1] == [_bar(3)]
    quality.refresh(_at(5), (("ACME", _bar(3)), ("ACME", _bar(4))))  # a copy from the feed
    assert quality.filled == 0 and quality.tracks["ACME"].present == 4
    # The same missing bar is never handed on twice.
    quality.refresh(_at(6), ())
    quality.refresh(_at(7), ())  # bar 5 (asked at 6) is still on its way; bar 6 is new
    assert handed[-2:] == [[_bar(5)], [_bar(6)]]
    quality.end_session(_at(390))
    assert quality.fills_lost == 3  # bars 1, 5 and 6 never arrived


def test_the_session_log_does_not_count_bars_read_ahead_in_live_mode(lossless) -> None:
    """A live session reads no steps ahead: its load line said "0 bars in 0 steps"."""
    loads = [e.message for e in lossless.snapshot().events if " history " in e.message]
    assert len(loads) == 1, loads
    assert ": bars from the live feed, " in loads[0] and "0 steps" not in loads[0], loads


def test_a_bar_filled_at_the_close_is_exported_with_its_quality_when_missing(tmp_path) -> None:
    """QA: the export's quality is the stream's when the bar became visible; a bar filled
    later keeps the value from when it was missing. Filled at the close (one more instant
    at the same time), it said 100.0, as did the 5m bar ending then (built without it)."""
    import csv

    from sessionkit.engine.runs.backtest import BacktestRun

    run = BacktestRun(live_config(drop_rate=0.0), export=tmp_path)
    run.session.coordinator.fill_wait = 60.0
    feed = run.session.coordinator.feed
    t, _items = feed._steps[-1]
    feed._steps[-1] = (t, ())  # the session's last bar is lost: filled at the close
    try:
        run.start()
        run.follow(None)
    finally:
        run.stop()
    assert run.result().state == "completed"  # (writes the export)
    assert run.session.quality.filled == 1

    def last_row(interval: str) -> dict[str, str]:
        with open(tmp_path / "SPY" / f"{interval}.csv", newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))[-1]

    when_missing = pytest.approx(100 * 389 / 390)
    one, five = last_row("1m"), last_row("5m")
    assert one["start"].startswith("2011-03-15T15:59"), one
    assert float(one["quality"]) == when_missing
    assert five["start"].startswith("2011-03-15T15:55"), five
    assert float(five["quality"]) == when_missing
