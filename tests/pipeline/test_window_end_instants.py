"""A derived bar becomes visible at its window's end, whatever else the run streams.

When a window's last base bars are missing, no base bar ends at the window's end; the
coordinator makes that end an instant of its own (an empty step), so the derived bar is
known from its end, as when another symbol's bar ends then. Without it the bar waited
for the next step: a symbol's 5m bars, their quality in the export and what the analysis
saw depended on which other symbols were in the run (QA).

The sample database's BOLT misses 2024-11-25 09:44 (the last minute of 09:40-09:45).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from running import run_to_end
from sessionkit.engine.config import config_from_dict
from sessionkit.engine.pipeline.session import Session

NY = ZoneInfo("America/New_York")


def run(symbols: list[str], export: Path) -> Session:
    config = {
        "backtest": {"start_date": "2024-11-25", "end_date": "2024-11-26", "clock": "data-driven"},
        "streams": {"symbols": symbols, "derived": ["5m", "15m"]},
        "historical": [{"trailing_days": 1}],
        "indicators": [
            {"name": "sma_20", "kind": "sma", "period": 20},
            {"name": "sma_5m", "kind": "sma", "period": 3, "interval": "5m"},
        ],
    }
    session = run_to_end(Session(config_from_dict(config), record="drain"))
    session.export_csv(export)
    return session


def test_a_symbols_results_do_not_depend_on_the_other_symbols(tmp_path) -> None:
    alone = run(["BOLT"], tmp_path / "alone")
    run(["BOLT", "ACME", "CRUX"], tmp_path / "with-others")
    for interval in ("1m", "5m", "15m"):
        mine = (tmp_path / "alone" / "BOLT" / f"{interval}.csv").read_text()
        theirs = (tmp_path / "with-others" / "BOLT" / f"{interval}.csv").read_text()
        assert mine == theirs, interval
    # The 09:40 bar (09:44 missing) is known from 09:45, its end, not from 09:46.
    series = alone.data.series("BOLT", "5m")
    end = datetime(2024, 11, 25, 9, 45, tzinfo=NY).timestamp()
    bar = series.last(end)
    assert bar is not None and bar.start == datetime(2024, 11, 25, 9, 40, tzinfo=NY)
    assert series.last(end - 1).start == datetime(2024, 11, 25, 9, 35, tzinfo=NY)
    line = next(
        row
        for row in (tmp_path / "alone" / "BOLT" / "5m.csv").read_text().splitlines()
        if row.startswith("2024-11-25T09:40")
    )
    assert line.split(",")[7] == f"{100 * 14 / 15:.10f}".rstrip("0")  # quality at 09:45


def test_the_live_replay_makes_window_ends_instants_too() -> None:
    config = {
        "mode": "live",
        "streams": {"symbols": ["BOLT"], "derived": ["5m"]},
        "live": {"replay_date": "2024-11-25", "replay_start": "09:30", "speed": 1e6},
    }
    session = Session(config_from_dict(config))
    session.coordinator.fill_wait = 60.0  # never the limit, however busy the machine
    run_to_end(session)
    series = session.data.series("BOLT", "5m")
    end = datetime(2024, 11, 25, 9, 45, tzinfo=NY).timestamp()
    assert series.last(end).start == datetime(2024, 11, 25, 9, 40, tzinfo=NY)
    assert series.last(end - 1).start == datetime(2024, 11, 25, 9, 35, tzinfo=NY)


def test_window_end_instants_by_the_rules() -> None:
    """Only where a window's last present bar ends before the window does: a bar off the
    grid that ends after its window's end adds none (QA: 09:31/09:36/09:41 5m bars lost a
    third of their 15m aggregates to an instant at 09:45 that came before the 09:41 bar)."""
    from datetime import UTC, timedelta

    from sessionkit.engine.core.windows import window_end_instants

    class Day:
        open = datetime(2024, 12, 2, 14, 30, tzinfo=UTC)
        close = datetime(2024, 12, 2, 21, 0, tzinfo=UTC)
        break_start = datetime(2024, 12, 2, 16, 0, tzinfo=UTC)
        break_end = datetime(2024, 12, 2, 17, 0, tzinfo=UTC)

    minute, m15 = timedelta(minutes=1), timedelta(minutes=15)
    at = lambda m: Day.open + m * minute  # noqa: E731
    # 5m bars off the grid: each window's last bar ends after the window's end.
    off_grid = [at(m) for m in range(1, 90, 5)]
    assert window_end_instants(Day, 5 * minute, [m15], off_grid) == []
    # 1m bars with 09:44 and the morning's last minute (10:59, before the break) missing.
    starts = [at(m) for m in range(0, 150) if m not in (14, 89)]
    assert window_end_instants(Day, minute, [m15], starts) == [at(15)]
    # A live feed has no instant of its own at the break's start.
    assert window_end_instants(Day, minute, [m15], starts, break_start=True) == [at(15), at(90)]
