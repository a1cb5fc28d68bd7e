"""The symbols filter: a one-line input above the symbols table, shown by ``/``.

Used on the UI's event loop only. Typing filters the table at once (the app forwards
``Input.Changed``); ``enter`` keeps the filter and returns to the table; ``escape`` clears
it and hides the input (:class:`SymbolFilter.Cleared`).
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input


class SymbolFilter(Input):
    """Text that the shown symbols must contain (case-insensitive)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | escape | Clear the filter and hide the input. |
    """

    DEFAULT_CSS = """
    SymbolFilter {
        display: none;
        height: 1;
        border: none;
        padding: 0 1;
        background: $panel;
        &.-active { display: block; }
        &:focus { border: none; background-tint: $primary 20%; }
    }
    """

    class Cleared(Message):
        """The filter was cleared with ``escape``."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(
            placeholder="filter symbols (escape clears)", name=name, id=id, classes=classes
        )

    def open(self) -> None:
        """Show the input and focus it."""
        self.add_class("-active")
        self.focus()

    def action_clear_filter(self) -> None:
        """Clear the text, hide the input and say so."""
        self.value = ""
        self.remove_class("-active")
        self.post_message(self.Cleared())
