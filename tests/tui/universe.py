"""A large synthetic universe for the TUI tests and benchmarks: N symbols, a few sessions.

Built in about a second: the schema comes from :func:`sessionkit.engine.store.db.init_db`,
the NYSE calendar rows are copied from the bundled sample database, and the bars go in
with one ``executemany`` per symbol (``start`` is stored as UTC epoch seconds, like the
importers do). Every symbol misses a few bars, at a time that depends on its number, so
the gap and quality columns differ between symbols.
"""

from __future__ import annotations

import math
import sqlite3
from datetime import date
from pathlib import Path

from sessionkit.engine.store.db import init_db
from sessionkit.sample_db import __file__ as _sample_init

SAMPLE = Path(_sample_init).with_name("sample.sqlite")
DAYS = (date(2024, 11, 25), date(2024, 11, 26))
"""The sessions with bars: the first is the others' trailing history."""

LONG_DAYS = (*DAYS, date(2024, 11, 27), date(2024, 11, 29), date(2024, 12, 2))
"""More sessions, for benchmarks that need a longer run (Thanksgiving is not one)."""


def symbol_names(count: int) -> list[str]:
    """``S000``, ``S001`` ... (sortable, and no two share a prefix longer than needed)."""
    return [f"S{n:03d}" for n in range(count)]


def make_universe(path: Path, count: int = 500, days: tuple[date, ...] = DAYS) -> str:
    """Create a SQLite database of ``count`` symbols over ``days``; returns its URL."""
    url = f"sqlite:///{path}"
    init_db(url).dispose()
    with sqlite3.connect(path) as target, sqlite3.connect(SAMPLE) as sample:
        target.executemany(
            "INSERT INTO exchanges (name, timezone) VALUES (?, ?)",
            sample.execute("SELECT name, timezone FROM exchanges").fetchall(),
        )
        calendar = sample.execute(
            "SELECT exchange, session_date, open, close, early_close FROM trading_calendar"
        ).fetchall()
        target.executemany(
            "INSERT INTO trading_calendar (exchange, session_date, open, close, early_close)"
            " VALUES (?, ?, ?, ?, ?)",
            calendar,
        )
        opens = {
            row[0]: row[1]
            for row in sample.execute(
                "SELECT session_date, open FROM trading_calendar WHERE exchange = 'NYSE'"
            )
        }
        for number, symbol in enumerate(symbol_names(count)):
            rows = []
            base = 20.0 + (number % 97) * 3.0
            hole = 60 + (number * 7) % 300  # a missing run of 1 + number % 3 bars
            for day_index, day in enumerate(days):
                open_epoch = int(opens[day.isoformat()])
                for minute in range(390):
                    if day_index == 1 and hole <= minute < hole + 1 + number % 3:
                        continue
                    t = day_index * 390 + minute
                    price = base + 2.0 * math.sin(t / (23.0 + number % 11) + number)
                    rows.append(
                        (
                            symbol,
                            "1m",
                            open_epoch + 60 * minute,
                            price,
                            price + 0.05,
                            price - 0.05,
                            price + 0.01,
                            1000 + (t * 37 + number) % 500,
                        )
                    )
            target.executemany(
                "INSERT INTO bars (symbol, interval, start, open, high, low, close, volume) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
    return url


def universe_config(url: str, count: int = 500, days: tuple[date, ...] = DAYS) -> dict:
    """A configuration replaying ``days`` after the first (the first is the history)."""
    return {
        "mode": "backtest",
        "exchange_group": "NYSE",
        "database_url": url,
        "backtest": {
            "start_date": days[1],
            "end_date": days[-1],
            "clock": "clock-driven",
            "speed": 60,
        },
        "streams": {"symbols": symbol_names(count), "interval": "1m", "derived": ["5m"]},
        "historical": [{"apply_to": "all", "intervals": ["1m"], "trailing_days": 1}],
        "indicators": [{"name": "sma_20", "kind": "sma", "period": 20, "interval": "1m"}],
    }
