"""The runs table of the sweep monitor: one row per run of a sweep.

Used on the UI's event loop only. The app hands it the :class:`~sessionkit.tui.sweep_board.SweepBoard`
through :meth:`SweepTable.show` whenever a run reported progress or ended; only the cells
whose text changed are updated, and the rows are laid out again only when the order changed.
``s`` cycles the sort column (numbers and metrics best first: highest first, lowest first
for overruns and costs such as a drawdown, a loss or seconds), a header click sorts by that
column and a second click reverses it; the cursor follows the *run*, not the row. ``enter``
posts :class:`SweepTable.Chosen` for the run under the cursor.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable

from .. import format as fmt
from ..styling import component_foreground
from ..sweep_board import Column, SweepBoard

STYLES = ("done", "failed", "pending", "warning")


class SweepTable(DataTable):
    """One row per run of a sweep, sortable by any column."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "cycle_sort", "Sort", tooltip="Sort by the next column (click a header too)"),
        Binding("enter", "choose", "Summary", tooltip="The summary of the run under the cursor"),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | left, right | Scroll the columns by one column (when they do not fit). |
    | s | Sort by the next column (numbers best first: highest, or lowest for overruns and costs such as a drawdown; a header click sorts by it, again: reversed). |
    | enter | Show the summary of the run under the cursor (once it finished). |
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "sweep-table--done",
        "sweep-table--failed",
        "sweep-table--pending",
        "sweep-table--warning",
    }
    """
    | Class | Description |
    | :- | :- |
    | `sweep-table--done` | A completed run's state. |
    | `sweep-table--failed` | A run that failed or ended in error. |
    | `sweep-table--pending` | A run that has not started (or was cancelled). |
    | `sweep-table--warning` | Quality below 100 % or overruns. |
    """

    DEFAULT_CSS = """
    SweepTable {
        height: 1fr;
        background: $surface;
        & > .sweep-table--done { color: $success; }
        & > .sweep-table--failed { color: $error; }
        & > .sweep-table--pending { color: $foreground-muted; }
        & > .sweep-table--warning { color: $warning; }
    }
    """

    class Chosen(Message):
        """The user asked for a run's summary (``enter``)."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index
            """The run's plan index."""

    sort_key: reactive[str] = reactive("index", init=False)
    """The column the rows are sorted by."""

    sort_descending: reactive[bool] = reactive(False, init=False)
    """Sort from the highest value down."""

    def __init__(
        self,
        *,
        figures: fmt.Figures | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, name=name, id=id, classes=classes)
        self.figures = figures or fmt.Figures()
        self._board: SweepBoard | None = None
        self._columns: list[Column] = []
        self._rows: dict[int, tuple[tuple[str, str], ...]] = {}
        self._order: list[int] = []

    # -- public -------------------------------------------------------------------------

    @property
    def order(self) -> list[int]:
        """Run indexes top to bottom."""
        return list(self._order)

    @property
    def run_index(self) -> int | None:
        """The run under the cursor."""
        if 0 <= self.cursor_row < len(self._order):
            return self._order[self.cursor_row]
        return None

    def show(self, board: SweepBoard, changed: Collection[int] | None = None) -> None:
        """Bring the table up to ``board``; ``changed``: the only runs that changed since
        the last call (None: any)."""
        self._board = board
        columns = board.columns()
        if [c.key for c in columns] != [c.key for c in self._columns]:
            self._build_columns(columns)
            changed = None
        order = board.order(self.sort_key, self.sort_descending)
        if order != self._order:
            self._lay_out(order)
            changed = None
        self._fill(changed)

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._restyle())

    def _restyle(self) -> None:
        if not self.is_running or self._board is None:
            return
        self._rows = dict.fromkeys(self._rows, ())
        self._fill()

    # -- cells ----------------------------------------------------------------------------

    def _fill(self, only: Collection[int] | None = None) -> None:
        board = self._board
        if board is None:
            return
        styles = {s: component_foreground(self, f"sweep-table--{s}") for s in STYLES}
        for index in self._order if only is None else [i for i in only if i in self._rows]:
            row = board.cells(index, self.figures)
            old = self._rows.get(index) or ((None, None),) * len(row)
            for position, (cell, old_cell) in enumerate(zip(row, old, strict=False)):
                if cell != old_cell:
                    self.update_cell(
                        str(index), self._columns[position].key, self._text(position, cell, styles)
                    )
            self._rows[index] = row

    def _text(self, position: int, cell: tuple[str, str], styles: dict[str, Style]) -> Text:
        text, style = cell
        column = self._columns[position]
        return Text(
            text,
            style=styles[style] if style else "",
            justify="right" if column.numeric else "left",
            no_wrap=True,
            overflow="ellipsis",
        )

    # -- layout ---------------------------------------------------------------------------

    def _build_columns(self, columns: list[Column]) -> None:
        self.clear(columns=True)
        self._columns = columns
        for column in columns:
            self.add_column(
                Text(column.title, justify="right" if column.numeric else "left"),
                width=column.width,
                key=column.key,
            )
        self._rows = {}
        self._order = []
        self._label()

    def _lay_out(self, order: list[int]) -> None:
        """Put the rows on screen in ``order``; the cursor stays on its run."""
        keep = self.run_index
        self.clear()
        blank = [""] * len(self._columns)
        for index in order:
            self.add_row(*blank, key=str(index))
        self._rows = dict.fromkeys(order, ())
        self._order = order
        if keep in order:
            self.move_cursor(row=order.index(keep), animate=False)

    def _label(self) -> None:
        """The sort order in the border's subtitle."""
        title = next((c.title for c in self._columns if c.key == self.sort_key), "#")
        self.border_subtitle = f"sorted by {title} {'▼' if self.sort_descending else '▲'}"

    # -- sorting --------------------------------------------------------------------------

    def _resort(self) -> None:
        self._label()
        if self._board is not None:
            self.show(self._board)

    def watch_sort_key(self) -> None:
        self._resort()

    def watch_sort_descending(self) -> None:
        self._resort()

    def sort_by(self, key: str) -> None:
        """Sort by column ``key`` (numbers best first: see
        :attr:`~sessionkit.tui.sweep_board.Column.lower_is_better`); if it already is,
        reverse."""
        if key == self.sort_key:
            self.sort_descending = not self.sort_descending
            return
        column = next((c for c in self._columns if c.key == key), None)
        descending = column is not None and column.best_first_descending
        self.set_reactive(SweepTable.sort_descending, descending)
        self.sort_key = key

    def action_cycle_sort(self) -> None:
        """Sort by the next column."""
        if not self._columns:
            return
        keys = [c.key for c in self._columns]
        index = keys.index(self.sort_key) if self.sort_key in keys else -1
        self.sort_by(keys[(index + 1) % len(keys)])

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        if event.column_key.value is not None:
            self.sort_by(event.column_key.value)

    # -- scrolling ------------------------------------------------------------------------

    def column_starts(self) -> list[int]:
        """Where each column begins (x in the table's virtual width, padding included)."""
        starts, x = [], 0
        for column in self.ordered_columns:
            starts.append(x)
            x += column.get_render_width(self)
        return starts

    def action_cursor_right(self) -> None:
        """Scroll right by a column: the next column's start at the left edge."""
        self._set_hover_cursor(False)
        after = [x for x in self.column_starts() if x > round(self.scroll_x)]
        if after and self.max_scroll_x > self.scroll_x:
            self.scroll_to(x=min(after[0], self.max_scroll_x), animate=False)

    def action_cursor_left(self) -> None:
        """Scroll left by a column: the previous column's start at the left edge."""
        self._set_hover_cursor(False)
        before = [x for x in self.column_starts() if x < round(self.scroll_x)]
        if before:
            self.scroll_to(x=before[-1], animate=False)

    # -- choosing -------------------------------------------------------------------------

    def action_choose(self) -> None:
        index = self.run_index
        if index is not None:
            self.post_message(self.Chosen(index))
