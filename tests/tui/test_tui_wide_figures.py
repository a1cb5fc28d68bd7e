"""The monitor on a 24-hour calendar with long symbols: no figure is ever cut.

A 24-hour session streams 1,440 one-minute bars (four digits where New York's 390 take
three) and ends at the next day's midnight; crypto symbols are longer than tickers. The
symbols table widens a column whose figure outgrows it, fits the symbol column to the
longest symbol (with an ellipsis past its limit), and the status bar and the event log
date a time that is not on the session's day.
"""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime, timedelta

import pytest
from sessionkit.engine.config import config_from_dict
from sessionkit.engine.pipeline.session import Session
from sessionkit.engine.pipeline.snapshot import Snapshot, SubscriptionStats
from sessionkit.engine.store.calendar_fill import fill_calendar
from sessionkit.engine.store.db import BarRecord, init_db
from sessionkit.tui.format import Figures
from sessionkit.tui.widgets.status_bar import status_line
from sessionkit.tui.widgets.subscriptions_table import SubscriptionsTable
from sessionkit.tui.widgets.symbols_table import SYMBOL_WIDTH_MAX, SymbolsTable, fit_symbol
from sqlalchemy import insert
from textual.app import App, ComposeResult
from tui_helpers import settle, snapshot_app

DAY = date(2024, 3, 4)
SYMBOLS = ["BTC-USD", "ETH-USDT", "DOGE-USD.PERPETUAL"]
"""7 and 8 characters (wider than the column's 6), and one past :data:`SYMBOL_WIDTH_MAX`."""


@pytest.fixture(scope="module")
def crypto_session(tmp_path_factory) -> Session:
    """One 24/7 session (2024-03-04 00:00 to 03-05 00:00 UTC), complete, run to its end."""
    path = tmp_path_factory.mktemp("crypto") / "crypto.sqlite"
    url = f"sqlite:///{path}"
    engine = init_db(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exchange_calendars' own pandas deprecations
        fill_calendar(engine, "24/7", date(2024, 3, 1), date(2024, 3, 6))
    midnight = datetime(2024, 3, 4, tzinfo=UTC)
    rows = []
    for number, symbol in enumerate(SYMBOLS):
        price = 60_000.0 / (number + 1)
        for minute in range(1440):
            close = price + minute * 0.5
            rows.append(
                {
                    "symbol": symbol,
                    "interval": "1m",
                    "start": midnight + timedelta(minutes=minute),
                    "open": close - 0.25,
                    "high": close + 1.0,
                    "low": close - 1.0,
                    "close": close,
                    "volume": 10 + minute % 7,
                }
            )
    with engine.begin() as connection:
        connection.execute(insert(BarRecord), rows)
    engine.dispose()
    config = config_from_dict(
        {
            "exchange_group": "24/7",
            "database_url": url,
            "backtest": {"start_date": DAY, "end_date": DAY, "clock": "data-driven"},
            "streams": {"symbols": SYMBOLS, "interval": "1m", "derived": ["1h"]},
        }
    )
    session = Session(config)
    session.start()
    try:
        assert session.wait(60), "the session did not end"
    finally:
        assert session.stop()
    assert session.snapshot().state == "completed", session.snapshot().error
    return session


def _screen_rows(table: SymbolsTable) -> list[str]:
    """The table's lines as drawn (header first), cut where the columns cut them."""
    return [table.render_line(y).text for y in range(table.size.height)]


async def test_symbols_table_shows_every_figure_and_symbol_whole(crypto_session) -> None:
    snapshot = crypto_session.snapshot()
    assert snapshot.series["BTC-USD", "1m"].bar_count == 1440
    app = snapshot_app(crypto_session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(SymbolsTable)
        lines = _screen_rows(table)
        assert lines[0].split()[:3] == ["Symbol", "1m", "1h"]
        shown = {line.split()[0]: line.split() for line in lines[1:4]}
        cut = fit_symbol(SYMBOLS[2], SYMBOL_WIDTH_MAX)
        assert list(shown) == ["BTC-USD", cut, "ETH-USDT"]
        assert cut == "DOGE-USD.PE\u2026" and len(cut) == SYMBOL_WIDTH_MAX
        for symbol, cells in zip(["BTC-USD", SYMBOLS[2], "ETH-USDT"], shown.values(), strict=True):
            last = snapshot.series[symbol, "1m"].last_bar.close
            assert cells[1:4] == ["1440", "24", f"{last:,.2f}"], cells
        # The widened columns stay wide: the rows are not laid out again at each update.
        widths = {key.value: column.width for key, column in table.columns.items()}
        app.sync()
        await pilot.pause()
        assert {key.value: column.width for key, column in table.columns.items()} == widths
        assert widths["symbol"] == SYMBOL_WIDTH_MAX and widths["1m"] == 4


async def test_status_bar_and_events_date_the_close_of_a_24_hour_session(crypto_session) -> None:
    snapshot = crypto_session.snapshot()
    assert snapshot.session_date == DAY
    assert status_line(snapshot, Figures()).time == "03-05 00:00:00 UTC"
    loaded = [event.message for event in snapshot.events if "session 1/1" in event.message]
    assert loaded and loaded[0].startswith("session 1/1 2024-03-04 00:00-03-05 00:00:"), loaded


def test_status_bar_time_alone_on_the_sessions_day() -> None:
    snapshot = Snapshot(
        timezone="UTC", session_date=DAY, sim_time=datetime(2024, 3, 4, 23, 59, tzinfo=UTC)
    )
    assert status_line(snapshot, Figures()).time == "23:59:00 UTC"


class _Subscriptions(App):
    def compose(self) -> ComposeResult:
        yield SubscriptionsTable()


def _subscriptions(signals: int, overruns: int) -> Snapshot:
    return Snapshot(
        subscriptions=(
            SubscriptionStats("data_processor", "data-driven", signals, 0, 0, 0.0, 0.0),
            SubscriptionStats("analysis_engine", "clock-driven", signals, overruns, 3, 0.002, 0.5),
        )
    )


async def test_subscriptions_table_widens_for_a_long_runs_counters() -> None:
    app = _Subscriptions()
    async with app.run_test(size=(80, 10)) as pilot:
        table = app.query_one(SubscriptionsTable)
        table.show(_subscriptions(4_326, 7))
        await pilot.pause()
        narrow = {key.value: column.width for key, column in table.columns.items()}
        table.show(_subscriptions(1_234_567, 12_345))  # a long run, a slow analysis
        await pilot.pause()
        lines = [table.render_line(y).text.split() for y in range(3)]
        assert lines[1][:4] == ["data_processor", "data", "1234567", "0"], lines
        assert lines[2][:4] == ["analysis_engine", "clock", "1234567", "12345"], lines
        widths = {key.value: column.width for key, column in table.columns.items()}
        assert widths["signals"] == 7 > narrow["signals"]
        assert widths["overruns"] == 5 > narrow["overruns"]
        table.show(_subscriptions(1_234_568, 12_346))  # no narrower again, same rows
        await pilot.pause()
        assert {key.value: column.width for key, column in table.columns.items()} == widths
        assert table.row_count == 2
