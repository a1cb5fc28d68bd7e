"""The bar record and interval helpers, shared by every thread.

A :class:`Bar` is immutable, so any thread may hold and read one without locks. Bars are
stamped with their *start* time (timezone-aware, UTC in the engine) and become visible at
their end time, ``bar.start + interval`` unless the session's close or break cuts them
(:func:`sessionkit.engine.core.windows.bar_end`, the one statement of that rule).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, NamedTuple, get_args

Interval = Literal["1m", "5m", "15m", "30m", "1h"]
"""The bar intervals sessionkit knows."""

INTERVALS: tuple[str, ...] = get_args(Interval)

INTERVAL_SECONDS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600}
"""Length of each interval in seconds."""


def interval_delta(interval: str) -> timedelta:
    """Return the length of ``interval`` as a timedelta.

    Raises
    ------
    ValueError
        If ``interval`` is not one of :data:`INTERVALS`.
    """
    try:
        return timedelta(seconds=INTERVAL_SECONDS[interval])
    except KeyError:
        raise ValueError(f"unknown interval {interval!r} (known: {', '.join(INTERVALS)})") from None


class Bar(NamedTuple):
    """One OHLCV bar, stamped with its start time.

    A NamedTuple: immutable, compact (about 290 bytes with its objects) and fast to build.
    """

    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int


Step = tuple[datetime, tuple[tuple[str, Bar], ...]]
"""One simulated instant: its time and the ``(symbol, bar)`` pairs that become visible then."""
