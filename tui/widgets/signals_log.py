"""The analysis signals pane: what the user's analysis code emitted, newest at the bottom.

Used on the UI's event loop only. The app hands it each snapshot's bounded signal tuple
through :meth:`SignalsLog.show`; only new signals are appended. In a narrow layout (the
app sets :attr:`SignalsLog.narrow` under 100 columns), or where the pane is narrower than
a full row, it writes compact rows: the time without the date, the symbol, ``▲`` for buy
and ``▼`` for sell (the chart's marks), the price, then what room is left of the message
(none, when that is less than a few cells).
The symbols are padded to the run's longest (a longer one than :data:`SYMBOL_MAX` is cut
to it with ``…``), the prices (right-aligned) and compact marks to the window's longest, so
that the columns and the messages line up. A row longer than the pane ends with ``…``; the
window is written again whenever the pane's width changes. :attr:`SignalsLog.row_cells`
says what a compact row needs before its message: the app hides the pane where it would
have less (only the message is ever cut, never the time, symbol, mark or price).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar
from zoneinfo import ZoneInfo

from rich.style import Style
from rich.text import Text
from sessionkit.engine.pipeline.snapshot import AnalysisSignal
from textual.reactive import reactive

from .. import format as fmt
from ..styling import component_foreground
from .event_log import TailLog
from .symbols_table import fit_symbol

FULL_ROW = 14
"""Cells of a full row after its time and symbol column (a space and the padded symbol): a
space, the kind (4 cells), a space and the price (8 cells)."""

SYMBOL_MIN = (5, 6)
"""Cells the symbol column takes at least (compact rows, full rows)."""

SYMBOL_MAX = 10
"""Cells the symbol column takes at most: a longer symbol is cut to it, ending with ``…``
(as in the symbols table), so that the columns still line up."""

TIME_CELLS = 5
"""Cells of a compact row's time (``10:31``: compact rows leave the date out)."""

PRICE_ROOM = 6
"""Cells a compact row keeps for its price at least (``100.00``, ``0.1234``) when the pane
decides whether it fits: a price column a cell wider later does not hide it again."""

MESSAGE_MIN = 4
"""Cells a row needs left for its message: two spaces, a character and ``…`` (with less, the
message is left out rather than the price cut)."""

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
        /* The rows end with an ellipsis at the pane's width: a scrollbar that comes must
           not cover it. */
        scrollbar-gutter: stable;
    }
    """

    narrow: reactive[bool] = reactive(False, init=False)
    """The layout is narrow (the app's, under 100 columns): compact rows at any width."""

    row_cells: reactive[int] = reactive(
        TIME_CELLS + 1 + SYMBOL_MIN[0] + 1 + 1 + 1 + PRICE_ROOM, init=False
    )
    """Cells a compact row takes before its message: the time, the padded symbol, the mark
    and the price (at least :data:`PRICE_ROOM`) with their spaces. The app watches it: the
    pane is shown only where it has this room (see :meth:`fits`)."""

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
        self._symbol_width = 0
        """The run's longest symbol's length, at most :data:`SYMBOL_MAX`."""
        self._columns = (0, 1)
        """Cells of the price and the compact mark columns: the window's longest, so that
        the prices are right-aligned and the messages start in one column."""

    def _style(self, name: str) -> Style:
        return component_foreground(self, f"signals-log--{name}")

    def compact(self, width: int, *, dated: bool) -> bool:
        """True if the pane writes compact rows: in a narrow layout, or ``width`` cells
        (0: not known yet) are fewer than a full row's."""
        return self.narrow or 0 < width < (11 if dated else 5) + 1 + self._pad(False) + FULL_ROW

    def _pad(self, compact: bool) -> int:
        """Cells of the symbol column (without its leading space)."""
        return max(SYMBOL_MIN[not compact], self._symbol_width)

    def fits(self, width: int) -> bool:
        """True if a pane ``width`` cells wide (its borders and scrollbar included) shows a
        compact row's time, symbol, mark and whole price (:attr:`row_cells`)."""
        frame = self.styles.gutter.width + self.styles.scrollbar_size_vertical
        return width - frame >= self.row_cells

    def rewrite_at(self, old: int, new: int) -> bool:
        """Write the window again at any new width (the rows are cut to it)."""
        return old != new

    def watch_narrow(self) -> None:
        """Write the window again in the rows the layout calls for."""
        self.rewrite()

    def rewrite(self) -> None:
        """Write the last window shown again (at the pane's width now)."""
        if self._shown is not None:
            items, timezone, options = self._shown
            self.restyle()
            self.show(items, timezone, **{**options, "limit": None})

    def show(
        self,
        signals: Sequence[AnalysisSignal],
        timezone: str,
        *,
        limit: int | None = None,
        dated: bool = False,
        symbols: Sequence[str] = (),
    ) -> None:
        """Append the signals not written yet (as one write), at most what the log holds
        and ``limit`` now (see :meth:`TailLog.take_new`). ``symbols``: the run's, whose
        longest sets the symbol column's width (a new width writes the window again)."""
        self.remember(signals, timezone, dated=dated, symbols=symbols)
        longest = min(max((len(symbol) for symbol in symbols), default=0), SYMBOL_MAX)
        columns = (
            max((len(fmt.price(signal.price)) for signal in signals), default=0),
            max(
                (len(MARKS.get(signal.kind.lower(), signal.kind)) for signal in signals), default=1
            ),
        )
        if (symbols and longest != self._symbol_width) or columns != self._columns:
            self._symbol_width = longest if symbols else self._symbol_width
            self._columns = columns
            prices, marks = columns
            self.row_cells = (
                TIME_CELLS + 1 + self._pad(True) + 1 + marks + 1 + max(prices, PRICE_ROOM)
            )
            if self._last is not None:
                self.restyle()  # the rows written so far have the old columns
                limit = None
        new, count = self.take_new(signals, limit)
        if not new:
            return
        self.count += count
        zone = ZoneInfo(timezone)
        time_style = self._style("time")
        kind_style = {name: self._style(name) for name in ("buy", "sell", "other")}
        width = self.scrollable_content_region.width
        compact = self.compact(width, dated=dated)
        pad = self._pad(compact)
        prices, marks = self._columns
        lines = []
        for signal in new:
            kind = signal.kind.lower()
            style = kind_style.get(kind, kind_style["other"])
            line = Text(no_wrap=True, overflow="ellipsis")
            symbol = fit_symbol(signal.symbol, SYMBOL_MAX)
            if compact:
                line.append(fmt.sim_minute(signal.sim_time, zone), time_style)
                line.append(f" {symbol:<{pad}} ")
                line.append(f"{MARKS.get(kind, signal.kind):<{marks}}", style)
                line.append(f" {fmt.price(signal.price):>{prices}}")
            else:
                line.append(fmt.sim_minute(signal.sim_time, zone, dated=dated), time_style)
                line.append(f" {symbol:<{pad}} ")
                line.append(f"{signal.kind:<4}", style)
                line.append(f" {fmt.price(signal.price):>{max(8, prices)}}")
            if signal.message and (not width or width - line.cell_len >= MESSAGE_MIN):
                line.append(f"  {signal.message}")
            if width:
                line.truncate(width, overflow="ellipsis")
            lines.append(line)
        self.write(Text("\n", no_wrap=True).join(lines))
