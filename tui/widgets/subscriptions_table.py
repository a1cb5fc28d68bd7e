"""The subscriptions table: stream, mode, signals, overruns, last and max wait (ms).

Used on the UI's event loop only. The app hands it each new snapshot through
:meth:`SubscriptionsTable.show`; only changed cells are updated. Waits are wall-clock
figures, so they go through the app's :class:`~sessionkit.tui.format.Figures`.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from sessionkit.engine.pipeline.snapshot import Snapshot, SubscriptionStats
from textual.widgets import DataTable

from .. import format as fmt
from ..styling import component_foreground

COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("stream", "Stream", 15),
    ("mode", "Mode", 5),
    ("signals", "Sigs", 6),
    ("overruns", "Ovr", 4),
    ("last", "Wait", 6),
    ("max", "Max", 6),
)
"""(key, header, width) of each column; waits are in milliseconds. A column whose figure
outgrows its width (a long run's signal count, a slow analysis's overruns) widens for good:
a figure is never cut."""

MODES = {"data-driven": "data", "clock-driven": "clock", "live": "live"}
"""Short names of the subscription modes."""


class SubscriptionsTable(DataTable, can_focus=False):
    """One row per engine subscription (processor, analysis)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"subscriptions-table--overrun"}
    """
    | Class | Description |
    | :- | :- |
    | `subscriptions-table--overrun` | A non-zero overrun count. |
    """

    DEFAULT_CSS = """
    SubscriptionsTable {
        height: auto;
        max-height: 6;
        background: $surface;
        & > .subscriptions-table--overrun { color: $warning; text-style: bold; }
    }
    """

    def __init__(
        self,
        *,
        figures: fmt.Figures | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(cursor_type="none", show_cursor=False, name=name, id=id, classes=classes)
        self.figures = figures or fmt.Figures()
        self._rows: dict[str, tuple[str, ...]] = {}
        self._widths: dict[str, int] = {key: width for key, _, width in COLUMNS}
        """Width of each column now."""

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for key, label, _ in COLUMNS:
            justify = "left" if key in ("stream", "mode") else "right"
            self.add_column(Text(label, justify=justify), width=self._widths[key], key=key)

    def restyle(self) -> None:
        """Re-render every cell at the next :meth:`show` (after a theme change)."""
        self._rows = {key: () for key in self._rows}

    def show(self, snapshot: Snapshot) -> None:
        """Show a new snapshot: adds rows for new streams, updates changed cells."""
        widths = self._widths
        wider = {
            key: len(text)
            for stats in snapshot.subscriptions
            for (key, _, _), text in zip(COLUMNS, self._row(stats), strict=True)
            if len(text) > widths[key]
        }
        if wider:  # a figure would be cut: widen its column, add the rows again
            for key, width in wider.items():
                widths[key] = max(widths[key], width)
            self.clear(columns=True)
            self._add_columns()
            self._rows = {}
        for stats in snapshot.subscriptions:
            row = self._row(stats)
            old = self._rows.get(stats.stream)
            if old is None:
                self.add_row(*self._cells(row), key=stats.stream)
            elif row != old:
                for (key, _, _), cell, before in zip(
                    COLUMNS, self._cells(row), old or (None,) * len(row), strict=False
                ):
                    if before is None or cell.plain != before:
                        self.update_cell(stats.stream, key, cell)
            self._rows[stats.stream] = row

    def _row(self, stats: SubscriptionStats) -> tuple[str, ...]:
        waited = stats.waits > 0
        return (
            stats.stream,
            MODES.get(stats.mode, stats.mode),
            str(stats.signals),
            str(stats.overruns),
            self.figures.wait_ms(stats.last_wait if waited else None),
            self.figures.wait_ms(stats.max_wait if waited else None),
        )

    def _cells(self, row: tuple[str, ...]) -> list[Text]:
        out = []
        for (key, _, _), text in zip(COLUMNS, row, strict=True):
            style = ""
            if key == "overruns" and text != "0":
                style = component_foreground(self, "subscriptions-table--overrun")
            out.append(
                Text(text, style=style, justify="left" if key in ("stream", "mode") else "right")
            )
        return out
