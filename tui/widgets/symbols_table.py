"""The symbols table: bars per interval, last price, change %, quality % and gaps.

Used on the UI's event loop only. The app hands it each new snapshot through
:meth:`SymbolsTable.show`; only the cells whose text changed are updated. Moving the cursor
(keys or mouse) posts :class:`~sessionkit.tui.messages.SymbolSelected`.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from sessionkit.engine.pipeline.snapshot import SeriesStats, Snapshot
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.widgets import DataTable

from .. import format as fmt
from ..messages import SymbolSelected
from ..styling import component_foreground

Row = tuple[tuple[str, str], ...]
"""The cells of one row as (text, style class suffix) pairs."""


class SymbolsTable(DataTable):
    """One row per streamed symbol; the cursor row is the charted symbol."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Previous symbol", show=False),
        Binding("down", "cursor_down", "Next symbol", show=False),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | up | Select the previous symbol. |
    | down | Select the next symbol. |
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

    symbol: reactive[str | None] = reactive(None, init=False)
    """The symbol under the cursor."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, name=name, id=id, classes=classes)
        self._rows: dict[str, Row] = {}
        self._intervals: tuple[str, ...] = ()
        self._wanted: str | None = None

    def select(self, symbol: str) -> None:
        """Move the cursor to ``symbol`` (now, or when its row appears)."""
        self._wanted = symbol
        if symbol in self._rows:
            self.move_cursor(row=self.get_row_index(symbol), animate=False)

    def restyle(self) -> None:
        """Re-render every cell at the next :meth:`show` (after a theme change)."""
        self._rows = {key: () for key in self._rows}

    def show(self, snapshot: Snapshot) -> None:
        """Show a new snapshot: builds the rows once, then updates changed cells."""
        if snapshot.intervals != self._intervals or set(snapshot.symbols) != set(self._rows):
            self._build(snapshot)
        for symbol in snapshot.symbols:
            row = self._row(snapshot, symbol)
            old = self._rows.get(symbol)
            if row == old:
                continue
            for index, (cell, old_cell) in enumerate(
                zip(row, old or ((None, None),) * len(row), strict=False)
            ):
                if cell != old_cell:
                    self.update_cell(symbol, self._keys[index], self._cell_text(index, cell))
            self._rows[symbol] = row

    def _build(self, snapshot: Snapshot) -> None:
        self.clear(columns=True)
        self._intervals = snapshot.intervals
        self._keys = ["symbol", *snapshot.intervals, "last", "change", "quality", "gaps"]
        self.add_column("Symbol", width=6, key="symbol")
        for interval in snapshot.intervals:
            self.add_column(Text(interval, justify="right"), width=3, key=interval)
        self.add_column(Text("Last", justify="right"), width=8, key="last")
        self.add_column(Text("Chg%", justify="right"), width=6, key="change")
        self.add_column(Text("Q%", justify="right"), width=5, key="quality")
        self.add_column(Text("Gap", justify="right"), width=3, key="gaps")
        self._rows = {}
        for symbol in snapshot.symbols:
            self.add_row(*([""] * len(self._keys)), key=symbol)
            self._rows[symbol] = ()
        wanted = self._wanted if self._wanted in self._rows else None
        if wanted:
            self.move_cursor(row=self.get_row_index(wanted), animate=False)

    def _row(self, snapshot: Snapshot, symbol: str) -> Row:
        cells: list[tuple[str, str]] = [(symbol, "")]
        base: SeriesStats | None = None
        for interval in snapshot.intervals:
            stats = snapshot.series.get((symbol, interval))
            if base is None:
                base = stats
            cells.append((str(stats.bar_count) if stats else fmt.DASH, ""))
        last = base.last_bar.close if base and base.last_bar else None
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

    def _cell_text(self, index: int, cell: tuple[str, str]) -> Text:
        text, suffix = cell
        style = component_foreground(self, f"symbols-table--{suffix}") if suffix else ""
        return Text(text, style=style, justify="left" if index == 0 else "right")

    def watch_symbol(self, symbol: str | None) -> None:
        if symbol is not None:
            self.post_message(SymbolSelected(symbol))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        key = event.row_key.value
        if key is not None:
            self._wanted = key
            self.symbol = key
