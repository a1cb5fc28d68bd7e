"""The symbol detail screen (``enter`` on a symbol): its gaps, quality and indicators.

Used on the UI's event loop only. A :class:`~.panel.LivePanel`: it reads the app's session
(``snapshot`` and ``gaps``) when shown and twice a second after, so it follows a running
engine. Times are in the exchange's zone. Dismissed with ``escape`` or ``enter``; ``q``
quits the monitor, as everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from rich.console import Group
from rich.table import Table
from rich.text import Text
from sessionkit.engine.pipeline.snapshot import GapSpan, Snapshot
from textual.binding import Binding, BindingType

from .. import format as fmt
from .panel import LivePanel


def detail_renderable(symbol: str, snapshot: Snapshot, gaps: tuple[GapSpan, ...]) -> Group:
    """The screen's content for ``symbol`` (pure: tested without Pilot)."""
    zone = ZoneInfo(snapshot.timezone)
    quality = Table(title="Quality", title_justify="left", expand=False, box=None, padding=(0, 2))
    for title in ("Interval", "Bars", "History", "Q% session", "Q% history", "Last close"):
        quality.add_column(title, justify="left" if title == "Interval" else "right")
    for interval in snapshot.intervals:
        stats = snapshot.series.get((symbol, interval))
        if stats is None:
            continue
        quality.add_row(
            interval,
            str(stats.bar_count),
            str(stats.history_count),
            fmt.percent(stats.quality),
            fmt.percent(stats.history_quality),
            fmt.price(stats.last_bar.close if stats.last_bar else None),
        )
    gap_table = Table(
        title=f"Gaps on {snapshot.session_date or fmt.DASH} ({snapshot.timezone})",
        title_justify="left",
        box=None,
        padding=(0, 2),
    )
    for title in ("Start", "End", "Minutes", "Bars"):
        gap_table.add_column(title, justify="left" if title in ("Start", "End") else "right")
    for gap in gaps:
        start, end = gap.start.astimezone(zone), gap.end.astimezone(zone)
        # The end's date too when it is another day (a gap over midnight, 24-hour markets).
        until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
        gap_table.add_row(
            f"{start:%Y-%m-%d %H:%M}",
            until + (" (open)" if gap.open else ""),
            f"{gap.minutes:g}",
            str(gap.bars),
        )
    parts: list[Any] = [quality, Text("")]
    if gaps:
        parts.append(gap_table)
        total = sum(g.bars for g in gaps)
        parts.append(Text(f"{len(gaps)} gap(s), {total} bar(s) missing so far", style="dim"))
    else:
        parts.append(Text(f"No gap on {snapshot.session_date or fmt.DASH} so far.", style="dim"))
    indicators = Table(
        title="Latest indicator values", title_justify="left", box=None, padding=(0, 2)
    )
    indicators.add_column("Indicator")
    indicators.add_column("Value", justify="right")
    for name, value in (snapshot.indicators.get(symbol) or {}).items():
        indicators.add_row(name, fmt.DASH if value is None else f"{value:,.4f}")
    parts += [Text(""), indicators]
    return Group(*parts)


class DetailScreen(LivePanel):
    """Gaps, quality per interval and latest indicator values of one symbol."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter", "dismiss", "Close"),
        # A modal screen hides the app's bindings: q must quit from here too.
        Binding("q", "app.quit", "Quit"),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | escape, enter | Close the detail screen. |
    | q | Stop the engine and quit. |
    """

    BODY_ID = "detail-body"

    def __init__(
        self, symbol: str, read: Callable[[], tuple[Snapshot, tuple[GapSpan, ...]]]
    ) -> None:
        """``read()`` returns the session's snapshot and ``symbol``'s gaps now."""
        super().__init__(symbol, self.content)
        self.symbol = symbol
        self._read = read

    def content(self) -> Group | None:
        try:
            snapshot, gaps = self._read()
        except KeyError:
            return None
        return detail_renderable(self.symbol, snapshot, gaps)
