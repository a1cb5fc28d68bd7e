"""The analysis signals pane: what the user's analysis code emitted, newest at the bottom.

Used on the UI's event loop only. The app hands it each snapshot's bounded signal tuple
through :meth:`SignalsLog.show`; only new signals are appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar
from zoneinfo import ZoneInfo

from rich.style import Style
from rich.text import Text
from sessionkit.engine.snapshot import AnalysisSignal
from textual.widgets import RichLog

from .. import format as fmt
from .event_log import unseen


class SignalsLog(RichLog, can_focus=False):
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
        max_lines: int = 200,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(
            max_lines=max_lines, wrap=False, markup=False, name=name, id=id, classes=classes
        )
        self._last: AnalysisSignal | None = None
        self.count = 0
        """How many signal lines were written (again after a theme change)."""

    def restyle(self) -> None:
        """Forget what was written: the next :meth:`show` writes the window again in the
        current theme's colours (lines are coloured when written)."""
        self.clear()
        self._last = None

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"signals-log--{name}", partial=True)

    def show(self, signals: Sequence[AnalysisSignal], timezone: str) -> None:
        """Append the signals not written yet."""
        new = unseen(signals, self._last)
        if not new:
            return
        zone = ZoneInfo(timezone)
        for signal in new:
            kind = signal.kind.lower()
            suffix = kind if kind in ("buy", "sell") else "other"
            line = Text(no_wrap=True)
            line.append(
                fmt.sim_minute(signal.sim_time, zone),
                self.get_component_rich_style("signals-log--time"),
            )
            line.append(f" {signal.symbol:<6} ")
            line.append(
                f"{signal.kind:<4}", self.get_component_rich_style(f"signals-log--{suffix}")
            )
            line.append(f" {fmt.price(signal.price):>8}")
            if signal.message:
                line.append(f"  {signal.message}")
            self.write(line)
        self.count += len(new)
        self._last = new[-1]
