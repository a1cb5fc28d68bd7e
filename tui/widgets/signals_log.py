"""The analysis signals pane: what the user's analysis code emitted, newest at the bottom.

Used on the UI's event loop only. The app hands it each snapshot's bounded signal tuple
through :meth:`SignalsLog.show`; only new signals are appended. A pane narrower than a
full row (a narrow terminal) writes compact rows: the time without the date, the symbol,
``▲`` for buy and ``▼`` for sell (the chart's marks), the price, then what room is left of
the message; crossing that width writes the window again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar
from zoneinfo import ZoneInfo

from rich.style import Style
from rich.text import Text
from sessionkit.engine.pipeline.snapshot import AnalysisSignal

from .. import format as fmt
from ..styling import component_foreground
from .event_log import TailLog

FULL_ROW = 21
"""Cells of a full row after its time: `` SYMBOL kind    price``."""

MARKS = {"buy": "▲", "sell": "▼"}
"""How a compact row marks the kinds (as the price chart does); others keep their name."""


class SignalsLog(TailLog):
    """Scrolling list of analysis signals: time, symbol, kind, price, message."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "signals-log--time",
        "signals-log--buy",
        "signals-log--sell",
        "signals-log--other",
    }
    """
    | Class | Description |
    | :- | :- |
    | `signals-log--time` | The simulated time of a signal. |
    | `signals-log--buy` | A ``buy`` signal. |
    | `signals-log--sell` | A ``sell`` signal. |
    | `signals-log--other` | Any other kind. |
    """

    DEFAULT_CSS = """
    SignalsLog {
        background: $surface;
        scrollbar-size-vertical: 1;
        & > .signals-log--time { color: $foreground-muted; }
        & > .signals-log--buy { color: $success; text-style: bold; }
        & > .signals-log--sell { color: $error; text-style: bold; }
        & > .signals-log--other { color: $accent; text-style: bold; }
    }
    """

    def __init__(
        self,
        *,
        max_lines: int = 100,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(
            max_lines=max_lines, wrap=False, markup=False, name=name, id=id, classes=classes
        )
        self.count = 0
        """How many signal lines were written (again after a theme change)."""

    def _style(self, name: str) -> Style:
        return component_foreground(self, f"signals-log--{name}")

    @staticmethod
    def compact(width: int, *, dated: bool) -> bool:
        """True if a pane ``width`` cells wide (0: not known yet) writes compact rows."""
        return 0 < width < (11 if dated else 5) + FULL_ROW

    def rewrite_at(self, old: int, new: int) -> bool:
        """Write the window again when the pane crosses the compact width."""
        dated = bool(self._shown and self._shown[2].get("dated"))
        return self.compact(old, dated=dated) != self.compact(new, dated=dated)

    def show(
        self,
        signals: Sequence[AnalysisSignal],
        timezone: str,
        *,
        limit: int | None = None,
        dated: bool = False,
    ) -> None:
        """Append the signals not written yet (as one write), at most what the log holds
        and ``limit`` now (see :meth:`TailLog.take_new`)."""
        self.remember(signals, timezone, dated=dated)
        new, count = self.take_new(signals, limit)
        if not new:
            return
        self.count += count
        zone = ZoneInfo(timezone)
        time_style = self._style("time")
        kind_style = {name: self._style(name) for name in ("buy", "sell", "other")}
        compact = self.compact(self.scrollable_content_region.width, dated=dated)
        lines = []
        for signal in new:
            kind = signal.kind.lower()
            style = kind_style.get(kind, kind_style["other"])
            line = Text(no_wrap=True)
            if compact:
                line.append(fmt.sim_minute(signal.sim_time, zone), time_style)
                line.append(f" {signal.symbol:<5} ")
                line.append(MARKS.get(kind, signal.kind), style)
                line.append(f" {fmt.price(signal.price)}")
            else:
                line.append(fmt.sim_minute(signal.sim_time, zone, dated=dated), time_style)
                line.append(f" {signal.symbol:<6} ")
                line.append(f"{signal.kind:<4}", style)
                line.append(f" {fmt.price(signal.price):>8}")
            if signal.message:
                line.append(f"  {signal.message}")
            lines.append(line)
        self.write(Text("\n", no_wrap=True).join(lines))
