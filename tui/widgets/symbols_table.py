"""The symbols table: bars per interval, last price, change %, quality % and gaps.

Used on the UI's event loop only. The app hands it each new snapshot through
:meth:`SymbolsTable.show`; only the cells whose text changed are updated, and the rows are
laid out again only when the order or the filter changed them. The table sorts by any
column (``s`` cycles, a header click picks one, a second click reverses) and shows only the
symbols matching :attr:`SymbolsTable.filter_text`. The cursor follows the *symbol*, not the
row: re-sorting or filtering keeps it on the charted symbol while that one is shown.
Moving the cursor (keys or mouse) posts :class:`SymbolsTable.Selected`.

A snapshot need not hold every symbol: :meth:`SymbolsTable.symbols_needed` names the ones
the next update needs (the rows in view, unless the order depends on the figures), so that
with hundreds of symbols the app reads only those. Rows missing from a snapshot keep their
last figures; when rows without figures come into view (a scroll, a filter, a sort by a
figure) the table posts :class:`SymbolsTable.NeedsData`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from sessionkit.engine.pipeline.snapshot import SeriesStats, Snapshot
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable

from .. import format as fmt
from ..styling import component_foreground

MAX_ROWS_SHOWN = 40
"""Rows filled before the table's height is known."""

Row = tuple[tuple[str, str], ...]
"""The cells of one row as (text, style class suffix) pairs."""

HEADERS: dict[str, tuple[str, int]] = {
    "symbol": ("Symbol", 6),
    "last": ("Last", 8),
    "change": ("Chg%", 6),
    "quality": ("Q%", 5),
    "gaps": ("Gap", 3),
}
"""Column key -> (title, width); the interval columns sit between symbol and last.

These are the narrowest each column gets: the symbol column is as wide as the longest
symbol (up to :data:`SYMBOL_WIDTH_MAX`), and a column whose figure outgrows it (a 24-hour
session's 1,440 bars) widens for good, so a figure is never cut."""

SYMBOL_WIDTH_MAX = 12
"""The widest the symbol column gets; a longer symbol is cut with an ellipsis (the chart's
title names it in full)."""

ELLIPSIS = "\u2026"


def fit_symbol(symbol: str, width: int) -> str:
    """``symbol``, cut to ``width`` characters with an ellipsis if it is longer."""
    return symbol if len(symbol) <= width else symbol[: width - 1] + ELLIPSIS


def last_price(snapshot: Snapshot, symbol: str | None) -> float | None:
    """The symbol's ``Last`` in ``snapshot``: the close of its latest bar of the base (the
    first) interval it has."""
    if symbol is None:
        return None
    stats = (snapshot.series.get((symbol, interval)) for interval in snapshot.intervals)
    base = next((s for s in stats if s is not None), None)
    return base.last_bar.close if base and base.last_bar else None


class SymbolsTable(DataTable):
    """One row per streamed symbol (those matching the filter); the cursor row is charted."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Previous symbol", show=False),
        Binding("down", "cursor_down", "Next symbol", show=False),
        Binding("s", "cycle_sort", "Sort", show=False),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | up | Select the previous symbol. |
    | down | Select the next symbol. |
    | s | Sort by the next column (a header click sorts by it; again: reversed). |
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "symbols-table--up",
        "symbols-table--down",
        "symbols-table--warning",
    }
    """
    | Class | Description |
    | :- | :- |
    | `symbols-table--up` | A positive change. |
    | `symbols-table--down` | A negative change. |
    | `symbols-table--warning` | Quality below 100 % or gaps. |
    """

    DEFAULT_CSS = """
    SymbolsTable {
        height: auto;
        max-height: 12;
        background: $surface;
        & > .symbols-table--up { color: $success; }
        & > .symbols-table--down { color: $error; }
        & > .symbols-table--warning { color: $warning; }
    }
    """

    class Selected(Message):
        """The user picked a symbol (keys or mouse)."""

        def __init__(self, symbol: str) -> None:
            super().__init__()
            self.symbol = symbol
            """The symbol now selected."""

    class NeedsData(Message):
        """Rows came into view (or the order needs figures) that the last snapshot did not
        hold: the table wants a snapshot of :meth:`SymbolsTable.symbols_needed` soon."""

    symbol: reactive[str | None] = reactive(None, init=False)
    """The symbol under the cursor."""

    sort_key: reactive[str] = reactive("symbol", init=False)
    """The column the rows are sorted by."""

    sort_reverse: reactive[bool] = reactive(False, init=False)
    """Sort descending."""

    filter_text: reactive[str] = reactive("", init=False)
    """Show only the symbols containing this text (case-insensitive); empty shows all."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, name=name, id=id, classes=classes)
        self._rows: dict[str, Row] = {}
        """Cells of the rows on screen."""
        self._filled: dict[str, int] = {}
        """The snapshot version each row's figures come from."""
        self._values: dict[str, tuple[Any, ...]] = {}
        """Sort values of every symbol of the last snapshot."""
        self._order: list[str] = []
        """The symbols on screen, top to bottom."""
        self._symbols: tuple[str, ...] = ()
        self._intervals: tuple[str, ...] = ()
        self._keys: list[str] = []
        self._widths: dict[str, int] = {}
        """Width of each column now (see :data:`HEADERS`)."""
        self._grown: dict[str, int] = {}
        """Columns widened for a figure, and their width (kept when the columns are rebuilt)."""
        self._wanted: str | None = None
        self._snapshot: Snapshot | None = None
        self._asked = False
        """A :class:`NeedsData` is on its way (one until the next :meth:`show`)."""

    # -- public -------------------------------------------------------------------------

    @property
    def shown(self) -> list[str]:
        """The symbols on screen, top to bottom."""
        return list(self._order)

    def symbols_needed(self) -> list[str] | None:
        """The symbols whose figures the next :meth:`show` needs: the rows in view and the
        cursor's, or None for every symbol (sorted by a figure, or not laid out yet)."""
        if self.sort_key != "symbol" or not self._keys:
            return None
        return self._on_screen()

    def select(self, symbol: str) -> None:
        """Move the cursor to ``symbol`` (now, or when its row appears)."""
        self._wanted = symbol
        if symbol in self._rows:
            self.move_cursor(row=self._order.index(symbol), animate=False)

    def restyle(self) -> None:
        """Re-render every cell at the next :meth:`show` (after a theme change)."""
        self._rows = {key: () for key in self._rows}

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._theme_changed())

    def _theme_changed(self) -> None:
        if not self.is_running:
            return
        self.restyle()
        if self._snapshot is not None:
            self.show(self._snapshot)

    def show(self, snapshot: Snapshot) -> None:
        """Show a new snapshot: lays the rows out when their order changed, then updates
        the cells whose text changed in the rows on screen (the others when they scroll
        into view: with hundreds of symbols, updating every cell would take the UI's time)."""
        self._snapshot = snapshot
        self._asked = False
        if snapshot.intervals != self._intervals or snapshot.symbols != self._symbols:
            self._build_columns(snapshot)
        held = self._held(snapshot)
        for symbol in snapshot.symbols if held is None else held:
            self._values[symbol] = self._sort_values(snapshot, symbol)
        if self.sort_key != "symbol" and len(self._values) < len(self._symbols):
            self._ask()  # the order needs every symbol's figures
        order = self._sorted(self._visible(snapshot.symbols))
        if order != self._order:
            self._lay_out(order)
            self._label_headers()
        self._fill_on_screen()

    @staticmethod
    def _held(snapshot: Snapshot) -> set[str] | None:
        """The symbols ``snapshot`` has figures of (None: all of them)."""
        if not snapshot.intervals:
            return None
        base = snapshot.intervals[0]
        held = {symbol for symbol, interval in snapshot.series if interval == base}
        return None if len(held) == len(snapshot.symbols) else held

    def _ask(self) -> None:
        if not self._asked:
            self._asked = True
            self.post_message(self.NeedsData())

    def _on_screen(self) -> list[str]:
        """The symbols of the rows in view (and the cursor's)."""
        order = self._order
        if not order:
            return []
        first = max(0, int(self.scroll_y))
        # Before the first layout the height is unknown: the rows that can fit at most.
        height = self.scrollable_content_region.height or MAX_ROWS_SHOWN
        shown = order[first : first + height + 1]
        if 0 <= self.cursor_row < len(order) and order[self.cursor_row] not in shown:
            shown.append(order[self.cursor_row])
        return shown

    def _fill_on_screen(self) -> None:
        """Bring the rows in view up to the last snapshot (only the cells that changed)."""
        snapshot = self._snapshot
        if snapshot is None:
            return
        styles = {
            suffix: component_foreground(self, f"symbols-table--{suffix}")
            for suffix in ("up", "down", "warning")
        }
        held = self._held(snapshot)
        widths = self._widths
        version = snapshot.version
        for symbol in self._on_screen():
            if held is not None and symbol not in held:
                if self._filled.get(symbol) != version:
                    # A blank row in view, or one with older figures (scrolled into view
                    # while paused, no later snapshot would come): read it.
                    self._ask()
                continue  # its last figures stay until a snapshot holds it
            self._filled[symbol] = version
            row = self._row(snapshot, symbol)
            old = self._rows.get(symbol)
            if row == old:
                continue
            wider = {
                key: len(text)
                for key, (text, _suffix) in zip(self._keys, row, strict=True)
                if len(text) > widths[key]
            }
            if wider:  # a figure would be cut: widen its column, lay the rows out again
                self._grown.update(wider)
                self._build_columns(snapshot)
                self.show(snapshot)
                return
            for index, (cell, old_cell) in enumerate(
                zip(row, old or ((None, None),) * len(row), strict=False)
            ):
                if cell != old_cell:
                    self.update_cell(
                        symbol, self._keys[index], self._cell_text(index, cell, styles)
                    )
            self._rows[symbol] = row

    def on_resize(self) -> None:
        self._fill_on_screen()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if int(old_value) != int(new_value):
            self._fill_on_screen()

    # -- sorting and filtering ------------------------------------------------------------

    def _visible(self, symbols: tuple[str, ...]) -> list[str]:
        wanted = self.filter_text.strip().upper()
        return [s for s in symbols if wanted in s.upper()] if wanted else list(symbols)

    def _sorted(self, symbols: list[str]) -> list[str]:
        if self.sort_key not in self._keys:
            return symbols
        column = self._keys.index(self.sort_key)

        def key(symbol: str) -> tuple[Any, ...]:
            values = self._values.get(symbol)
            value = values[column] if values else None
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            # Missing values last in either direction; ties by symbol.
            return (missing != self.sort_reverse, 0 if missing else value, symbol)

        return sorted(symbols, key=key, reverse=self.sort_reverse)

    def _sort_values(self, snapshot: Snapshot, symbol: str) -> tuple[Any, ...]:
        values: list[Any] = [symbol]
        base: SeriesStats | None = None
        for interval in snapshot.intervals:
            stats = snapshot.series.get((symbol, interval))
            base = base or stats
            values.append(stats.bar_count if stats else None)
        values.append(base.last_bar.close if base and base.last_bar else None)
        values.append(base.change_pct if base else None)
        values.append(base.quality if base else None)
        values.append(base.gaps if base else None)
        return tuple(values)

    def _resort(self) -> None:
        self._label_headers()
        if self._snapshot is not None:
            self.show(self._snapshot)

    def watch_sort_key(self) -> None:
        self._resort()

    def watch_sort_reverse(self) -> None:
        self._resort()

    def watch_filter_text(self) -> None:
        self._resort()

    def action_cycle_sort(self) -> None:
        """Sort by the next column (ascending)."""
        if not self._keys:
            return
        index = self._keys.index(self.sort_key) if self.sort_key in self._keys else -1
        self.sort_reverse = False
        self.sort_key = self._keys[(index + 1) % len(self._keys)]

    def sort_by(self, key: str) -> None:
        """Sort by column ``key``; if it already is, reverse the order."""
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_reverse = False
            self.sort_key = key

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        if event.column_key.value is not None:
            self.sort_by(event.column_key.value)

    # -- layout ---------------------------------------------------------------------------

    def _build_columns(self, snapshot: Snapshot) -> None:
        self.clear(columns=True)
        self._symbols = snapshot.symbols
        self._intervals = snapshot.intervals
        self._keys = ["symbol", *snapshot.intervals, "last", "change", "quality", "gaps"]
        longest = max(map(len, snapshot.symbols), default=0)
        self._widths = {}
        for key in self._keys:
            title, width = HEADERS.get(key, (key, 3))
            if key == "symbol":
                width = max(width, min(longest, SYMBOL_WIDTH_MAX))
            width = self._widths[key] = max(width, len(title), self._grown.get(key, 0))
            justify = "left" if key == "symbol" else "right"
            self.add_column(Text(title, justify=justify), width=width, key=key)
        self._label_headers()
        self._rows = {}
        self._order = []
        self._values = {}

    def _label_headers(self) -> None:
        """The sort order and the filter, in the border's subtitle (the columns are narrow)."""
        parts = []
        if self.filter_text:
            parts.append(f"/{self.filter_text} {len(self._order)} of {len(self._symbols)}")
        if self.sort_key != "symbol" or self.sort_reverse:
            title = HEADERS.get(self.sort_key, (self.sort_key, 0))[0]
            parts.append(f"by {title} {'▼' if self.sort_reverse else '▲'}")
        self.border_subtitle = "  ".join(parts) or "Q% of this session so far"

    def _lay_out(self, order: list[str]) -> None:
        """Put the rows on screen in ``order`` (blank until filled); the cursor stays on
        its symbol."""
        keep = self._wanted
        # (clear() scrolls to the top, and a scroll fills the rows in view: of none now;
        # with the old order it updated rows clear() had removed: CellDoesNotExist)
        self._order = []
        self._rows = {}
        self.clear()
        blank = [""] * len(self._keys)
        for symbol in order:
            self.add_row(*blank, key=symbol)
        self._rows = dict.fromkeys(order, ())
        self._filled = {}
        self._order = order
        if keep in self._rows:
            self.move_cursor(row=order.index(keep), animate=False)
        elif order:
            self.move_cursor(row=0, animate=False)

    def _row(self, snapshot: Snapshot, symbol: str) -> Row:
        cells: list[tuple[str, str]] = [(fit_symbol(symbol, self._widths["symbol"]), "")]
        base: SeriesStats | None = None
        for interval in snapshot.intervals:
            stats = snapshot.series.get((symbol, interval))
            if base is None:
                base = stats
            cells.append((str(stats.bar_count) if stats else fmt.DASH, ""))
        last = last_price(snapshot, symbol)
        change = base.change_pct if base else None
        quality = base.quality if base else None
        gaps = base.gaps if base else 0
        cells.append((fmt.price(last), ""))
        trend = "" if not change else ("up" if change > 0 else "down")
        cells.append((fmt.percent(change, signed=True, digits=2), trend))
        low_quality = quality is not None and quality < 100.0
        cells.append((fmt.percent(quality), "warning" if low_quality else ""))
        cells.append((str(gaps), "warning" if gaps else ""))
        return tuple(cells)

    @staticmethod
    def _cell_text(index: int, cell: tuple[str, str], styles: dict[str, Style]) -> Text:
        text, suffix = cell
        return Text(
            text, style=styles[suffix] if suffix else "", justify="left" if index == 0 else "right"
        )

    # -- selection ------------------------------------------------------------------------

    def watch_symbol(self, symbol: str | None) -> None:
        if symbol is not None:
            self.post_message(self.Selected(symbol))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.cursor_row != self.cursor_row:
            return  # a stale event from before the rows were laid out again
        key = event.row_key.value
        if key is not None:
            self._wanted = key
            self.symbol = key
