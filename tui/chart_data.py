"""Assembling what the charts draw: one :class:`ChartData` from a snapshot and the session.

Used on the UI's event loop only (by the app when the charted stream changed). It calls
the session's ``series`` and ``gaps``, which copy a bounded amount of data and never wait
for an engine thread. Nothing here touches a widget, so it is tested without Pilot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

from sessionkit.engine.pipeline.snapshot import GapSpan, Series, Snapshot

from .charting import SessionAxis, classify
from .widgets.chart_base import ChartData


class ChartSource(Protocol):
    """What the charts need of a session."""

    def series(self, symbol: str, interval: str, n: int = 500) -> Series: ...
    def gaps(self, symbol: str) -> tuple[GapSpan, ...]: ...


def chart_key(snapshot: Snapshot, symbol: str | None, interval: str | None) -> tuple[Any, ...]:
    """Changes whenever the chart of (symbol, interval) would change."""
    stats = snapshot.series.get((symbol, interval)) if symbol and interval else None
    signals = [s for s in snapshot.signals[-50:] if s.symbol == symbol]
    return (
        symbol,
        interval,
        snapshot.session_date,
        snapshot.market_close,
        stats.bar_count if stats else None,
        stats.history_count if stats else None,
        stats.last_bar if stats else None,
        stats.gaps if stats else None,
        signals[-1] if signals else None,
        len(snapshot.signals),
    )


def missing_positions(gaps: tuple[GapSpan, ...], axis: SessionAxis | None) -> tuple[float, ...]:
    """X of each slot of the charted interval holding a missing base bar (a gap over a
    session's break marks the bars missing before and after it, none in it)."""
    if axis is None:
        return ()
    out: list[float] = []
    for gap in gaps:
        for t in gap.bar_starts():
            x = float(math.floor(axis.x(t)))  # the break left out
            if not out or out[-1] != x:
                out.append(x)
    return tuple(out)


def build_chart_data(
    source: ChartSource,
    snapshot: Snapshot,
    symbol: str,
    interval: str,
    kinds: Mapping[str, str],
    key: tuple[Any, ...] = (),
) -> ChartData | None:
    """The chart of (symbol, interval) now, or None if the session cannot give it yet."""
    stats = snapshot.series.get((symbol, interval))
    axis = SessionAxis.of(snapshot, interval)
    context = max(10, (axis.slots if axis else 390) // 5)
    count = (stats.bar_count if stats else 0) + context
    try:
        series = source.series(symbol, interval, count)
    except (KeyError, ValueError):
        return None
    try:
        gaps = source.gaps(symbol)
    except (KeyError, ValueError, AttributeError):
        gaps = ()
    lows = [v for v in series.low if v is not None]
    highs = [v for v in series.high if v is not None]
    overlays, oscillators = classify(
        series.indicators, kinds, min(lows, default=None), max(highs, default=None)
    )
    return ChartData(
        series=series,
        axis=axis,
        timezone=snapshot.timezone,
        overlays=tuple(overlays),
        oscillators=tuple(oscillators),
        kinds=dict(kinds),
        key=key,
        signals=tuple(s for s in snapshot.signals if s.symbol == symbol),
        missing=missing_positions(gaps, axis),
    )
