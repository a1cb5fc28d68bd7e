"""The databento live feed, with the real ``databento.Live`` client against a mock gateway.

Sessions run the whole engine in live mode: every bar the gateway sends streams with 100%
quality; bars the gateway skips are gaps; a connection lost mid-session is reported in the
event log (and so the snapshot) and the session ends cleanly, never hangs.
"""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from mock_gateway import MockGateway
from sessionkit.engine.config import config_from_dict
from sessionkit.engine.core.time_manager import TimeManager
from sessionkit.engine.errors import ConfigError, FeedError
from sessionkit.engine.feeds.replay import make_feed
from sessionkit.engine.pipeline.session import Session
from sessionkit.engine.store.data_manager import DataManager
from sessionkit.engine.store.db import init_db, open_db
from sessionkit.engine.store.import_dbn import import_dbn
from test_import_dbn import write_dbn

KEY = "db-mocktestkey0000000000000ABCDE"
DAY = date(2024, 1, 2)
OPEN = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
SYMBOLS = ["AAPL", "BRK.B"]
NS = 1_000_000_000


def session_file(
    path: Path,
    minutes: int = 390,
    skip: frozenset[tuple[str, int]] = frozenset(),
    extra: tuple[tuple[int, ...], ...] = (),
    after_close: bool = True,
) -> Path:
    """A DBN file of the session's first ``minutes`` minutes (AAPL is instrument 1, BRK.B
    2), plus a pre-market and (if ``after_close``) a post-market bar, which are not part of
    the session, and the ``extra`` records ((instrument, ts_event, open, high, low, close,
    volume))."""
    bars = []
    for m in range(minutes):
        ts = int((OPEN + timedelta(minutes=m)).timestamp()) * NS
        for iid, symbol in enumerate(SYMBOLS, start=1):
            if (symbol, m) not in skip:
                base = (100 + (iid - 1) * 50 + m / 100) * NS
                bars.append(
                    (
                        iid,
                        ts,
                        int(base),
                        int(base + NS // 4),
                        int(base - NS // 4),
                        int(base),
                        10 + m,
                    )
                )
    early = int((OPEN - timedelta(minutes=5)).timestamp()) * NS
    late = int((OPEN + timedelta(minutes=400)).timestamp()) * NS
    bars = [(1, early, NS, NS, NS, NS, 1), *bars]
    if after_close:
        bars.append((1, late, NS, NS, NS, NS, 1))
    bars = sorted([*bars, *extra], key=lambda bar: bar[1])
    return write_dbn(
        path, bars, symbols={"AAPL": 1, "BRK.B": 2}, first=DAY, last=DAY + timedelta(days=1)
    )


@pytest.fixture
def db_url(tmp_path: Path, calendar_db_url: str) -> str:
    """The NYSE calendar and the previous session's bars, imported from a DBN file (the
    engine only streams symbols the database knows)."""
    path = tmp_path / "live.sqlite"
    shutil.copy(calendar_db_url.removeprefix("sqlite:///"), path)
    url = f"sqlite:///{path}"
    before = datetime(2023, 12, 29, 14, 30, tzinfo=UTC)
    bars = [
        (iid, int((before + timedelta(minutes=m)).timestamp()) * NS, 100.0, 101.0, 99.0, 100.0, 5)
        for m in range(390)
        for iid in (1, 2)
    ]
    history = write_dbn(
        tmp_path / "history.dbn",
        bars,
        symbols={"AAPL": 1, "BRK.B": 2},
        first=date(2023, 12, 29),
        last=date(2023, 12, 30),
    )
    engine = init_db(url)
    assert [r.imported for r in import_dbn(engine, history)] == [390, 390]
    engine.dispose()
    return url


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SK_TEST_DATABENTO_KEY", KEY)
    return KEY


def config(db_url: str, port: int, **live) -> dict:
    return {
        "mode": "live",
        "database_url": db_url,
        "streams": {"symbols": SYMBOLS, "derived": ["5m"]},
        "live": {
            "feed": "databento",
            "dataset": "XNAS.ITCH",
            "key_env": "SK_TEST_DATABENTO_KEY",
            "gateway": "127.0.0.1",
            "port": port,
            "session_date": DAY.isoformat(),
            **live,
        },
    }


@pytest.fixture
def gateways():
    made: list[MockGateway] = []
    yield made
    for gateway in made:
        gateway.close()


def run_session(cfg: dict) -> Session:
    session = Session(config_from_dict(cfg))
    session.start()
    try:
        assert session.wait(60), "the live session did not end"
    finally:
        assert session.stop()
    assert [t.name for t in session._threads if t.is_alive()] == []
    return session


def test_a_live_session_streams_every_bar_with_full_quality(
    tmp_path, db_url, key, gateways
) -> None:
    gateway = MockGateway(key, session_file(tmp_path / "s.dbn"))
    gateways.append(gateway)
    session = run_session(config(db_url, gateway.port))
    snap = session.snapshot()
    assert snap.state == "completed", snap.error
    assert snap.session_date == DAY and snap.clock == "live"
    for symbol in SYMBOLS:
        assert session.processor.totals[symbol, "1m"] == 390
        assert session.processor.totals[symbol, "5m"] == 78
        assert snap.series[symbol, "1m"].quality == 100.0
    bars, _rows, history = session.data.series("BRK.B", "1m").window()
    bars = bars[history:]  # this session's bars
    assert bars[0].start == OPEN and bars[0].open == 150.0 and bars[0].high == 150.25
    assert bars[-1].start == OPEN + timedelta(minutes=389) and bars[-1].volume == 399
    # What the client asked for: the key never travels, only the CRAM response.
    assert gateway.auth["dataset"] == "XNAS.ITCH"
    assert KEY not in str(gateway.auth)
    (subscription,) = gateway.subscriptions
    assert subscription["schema"] == "ohlcv-1m"
    assert subscription["stype_in"] == "raw_symbol"
    assert subscription["symbols"] == "AAPL,BRK.B"
    assert int(subscription["start"]) == int(OPEN.timestamp()) * NS  # replay from the open
    assert gateway.closed_by_client.wait(5)  # the feed closed the connection at the end
    assert not any(e.level != "info" for e in snap.events), snap.events


def test_bars_the_gateway_skips_are_gaps(tmp_path, db_url, key, gateways) -> None:
    skip = {("AAPL", m) for m in range(30, 35)} | {("BRK.B", 100)}
    gateway = MockGateway(key, session_file(tmp_path / "s.dbn", skip=frozenset(skip)))
    gateways.append(gateway)
    session = run_session(config(db_url, gateway.port))
    snap = session.snapshot()
    assert snap.state == "completed", snap.error
    assert session.processor.totals["AAPL", "1m"] == 385
    assert session.processor.totals["BRK.B", "1m"] == 389
    assert snap.series["AAPL", "1m"].quality == pytest.approx(100 * 385 / 390)
    assert snap.series["BRK.B", "1m"].quality == pytest.approx(100 * 389 / 390)
    gaps = [e.message for e in snap.events if e.message.startswith("gap in ")]
    assert any("AAPL" in m and "5 bar(s)" in m for m in gaps), gaps
    assert any("BRK.B" in m and "1 bar(s)" in m for m in gaps), gaps


def test_minutes_no_symbol_sent_are_filled_from_the_database(
    tmp_path, db_url, key, gateways
) -> None:
    """A gateway sends no bar of a minute without trades; when no symbol has one (always,
    with one symbol), the minute is still an instant that passed without its bars, so the
    gap filler restores them from the database: the first minute, a run in the middle and
    the last minute (each symbol alone, then both)."""
    silent = (0, 50, 51, 52, 389)
    engine = open_db(db_url)
    full = session_file(tmp_path / "full.dbn")  # the session as the database holds it
    assert [r.imported for r in import_dbn(engine, full)] == [392, 390]  # AAPL: pre, post
    engine.dispose()
    skip = frozenset((symbol, m) for symbol in SYMBOLS for m in silent)
    played = session_file(tmp_path / "s.dbn", skip=skip)
    for symbols in (["AAPL"], SYMBOLS):
        gateway = MockGateway(key, played)
        gateways.append(gateway)
        cfg = config(db_url, gateway.port)
        cfg["streams"]["symbols"] = symbols
        session = run_session(cfg)
        snap = session.snapshot()
        assert snap.state == "completed", snap.error
        for symbol in symbols:
            assert session.processor.totals[symbol, "1m"] == 390, symbol
            assert session.processor.totals[symbol, "5m"] == 78, symbol
            assert snap.series[symbol, "1m"].quality == 100.0
            bars, _rows, history = session.data.series(symbol, "1m").window()
            starts = [bar.start for bar in bars[history:]]
            assert starts == [OPEN + timedelta(minutes=m) for m in range(390)]
        filled = [e for e in snap.events if e.message.startswith("filled ")]
        assert len(filled) == len(silent) * len(symbols), filled
        assert not [e for e in snap.events if e.message.startswith("gap in ")]
        # The gateway's first record after the close ended the session (no bar of its last
        # minute came to end it), not the gateway's timeout.
        assert not [e for e in snap.events if "lost after" in e.message], snap.events


def test_a_past_session_ends_when_the_gateways_replay_is_complete(
    tmp_path, db_url, key, gateways
) -> None:
    """No record after the close, and nobody traded in the last minute: the gateway's
    "replay completed" message ends a past session (it waited for the connection's end)."""
    skip = frozenset((symbol, 389) for symbol in SYMBOLS)
    played = session_file(tmp_path / "s.dbn", skip=skip, after_close=False)
    gateway = MockGateway(key, played, replay_completed=True)
    gateways.append(gateway)
    session = run_session(config(db_url, gateway.port))
    snap = session.snapshot()
    assert snap.state == "completed", snap.error
    assert snap.sim_time == OPEN + timedelta(minutes=390)
    assert not [e for e in snap.events if e.level != "info"], snap.events
    for symbol in SYMBOLS:
        assert session.processor.totals[symbol, "1m"] == 389  # not in the database: a gap
    assert gateway.closed_by_client.wait(5)


def test_dropped_records_are_reported_in_the_exchanges_time(
    tmp_path, db_url, key, gateways
) -> None:
    """A record off the minute and one of an instrument not subscribed are dropped with a
    warning that gives the time as the rest of the UI does (it said "14:31 UTC" beside
    events stamped 09:31)."""
    off_minute = int((OPEN + timedelta(minutes=1, seconds=30)).timestamp()) * NS
    unmapped = int((OPEN + timedelta(minutes=2)).timestamp()) * NS
    extra = (
        (1, off_minute, 100 * NS, 100 * NS, 100 * NS, 100 * NS, 5),
        (7, unmapped, NS, NS, NS, NS, 1),
    )
    gateway = MockGateway(key, session_file(tmp_path / "s.dbn", extra=extra))
    gateways.append(gateway)
    session = run_session(config(db_url, gateway.port))
    warnings = [e.message for e in session.snapshot().events if e.level == "warning"]
    assert "databento: dropped an invalid AAPL bar at 09:31 EST" in warnings, warnings
    assert any(
        m.startswith("databento: dropped a record of instrument 7 (unmapped) at 09:32 EST:")
        for m in warnings
    ), warnings
    assert not any("UTC" in m for m in warnings), warnings


def test_a_lost_connection_is_reported_and_the_session_ends(
    tmp_path, db_url, key, gateways
) -> None:
    # The pre-market bar and the first 60 minutes, then the connection drops.
    gateway = MockGateway(key, session_file(tmp_path / "s.dbn"), drop_after=1 + 2 * 60)
    gateways.append(gateway)
    session = run_session(config(db_url, gateway.port))
    snap = session.snapshot()
    assert snap.state == "completed", snap.error
    lost = [e for e in snap.events if "connection to 127.0.0.1" in e.message]
    assert len(lost) == 1 and lost[0].level == "warning"
    assert "lost after 120 bar(s)" in lost[0].message
    for symbol in SYMBOLS:
        assert session.processor.totals[symbol, "1m"] == 60
        assert snap.series[symbol, "1m"].quality == pytest.approx(100 * 60 / 390)
    assert snap.sim_time == datetime(2024, 1, 2, 21, 0, tzinfo=UTC)


def test_stop_ends_a_session_waiting_for_bars(tmp_path, db_url, key, gateways) -> None:
    gateway = MockGateway(key, session_file(tmp_path / "s.dbn", minutes=10))  # then silence
    gateways.append(gateway)
    session = Session(config_from_dict(config(db_url, gateway.port)))
    session.start()
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while session.processor.totals.get(("AAPL", "1m"), 0) < 10 and datetime.now(UTC) < deadline:
        threading.Event().wait(0.05)
    assert session.processor.totals["AAPL", "1m"] == 10
    assert session.stop(timeout=1.0)
    assert [t.name for t in session._threads if t.is_alive()] == []
    assert gateway.closed_by_client.wait(5)


def test_a_wrong_key_is_a_clear_error(tmp_path, db_url, gateways, monkeypatch) -> None:
    gateway = MockGateway(KEY, session_file(tmp_path / "s.dbn", minutes=1))
    gateways.append(gateway)
    monkeypatch.setenv("SK_TEST_DATABENTO_KEY", "db-wrongkey00000000000000XXXXX")
    with pytest.raises(FeedError) as info:
        Session(config_from_dict(config(db_url, gateway.port)))
    message = str(info.value)
    assert "127.0.0.1" in message and "Authentication failed" in message
    assert "wrongkey" not in message


def test_databento_settings_are_checked(db_url, key, monkeypatch) -> None:
    with pytest.raises(ConfigError, match="needs live.dataset"):
        config_from_dict(config(db_url, 1, dataset=None))
    monkeypatch.delenv("SK_TEST_DATABENTO_KEY")
    with pytest.raises(ConfigError, match="SK_TEST_DATABENTO_KEY .* is not set"):
        Session(config_from_dict(config(db_url, 1)))
    monkeypatch.setenv("SK_TEST_DATABENTO_KEY", KEY)
    with pytest.raises(ConfigError, match="2024-01-01 is not a NYSE trading day"):
        Session(config_from_dict(config(db_url, 1, session_date="2024-01-01")))
    cfg = config(db_url, 1)
    cfg["streams"]["interval"] = "5m"
    cfg["streams"]["derived"] = []
    engine = open_db(db_url)
    try:
        with pytest.raises(ConfigError, match="'5m' has no Databento OHLCV schema"):
            make_feed(config_from_dict(cfg), DataManager(engine), TimeManager(engine))
    finally:
        engine.dispose()
