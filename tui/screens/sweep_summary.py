"""The summary of one finished run of a sweep: what ``sessionkit run`` prints for it.

Used on the UI's event loop only; pushed by the sweep monitor's ``enter`` on a finished
run and dismissed with ``escape`` or ``enter`` (``q`` quits the monitor, as on the runs table).
The text comes from :meth:`SweepOutcome.summary() <sessionkit.engine.runs.sweep.SweepOutcome.summary>`,
so it is the command line's summary, rendered by the same code.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class RunSummaryScreen(ModalScreen[None]):
    """The summary of one run of a sweep."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter", "dismiss", "Back"),
        # A modal screen hides the app's bindings: quitting must work here too.
        Binding("q", "app.quit", "Quit"),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | escape, enter | Back to the runs table. |
    | q | Cancel the pending runs and quit (as on the runs table). |
    """

    DEFAULT_CSS = """
    RunSummaryScreen {
        align: center middle;
        background: $background 60%;
        & > VerticalScroll {
            width: 90;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: thick $primary;
            background: $surface;
            padding: 0 1;
        }
        & #summary-title { text-style: bold; color: $accent; }
    }
    """

    def __init__(self, title: str, renderables: list[Any]) -> None:
        """``title``: which run; ``renderables``: its summary (Rich renderables)."""
        super().__init__()
        self._heading = title
        self._body = renderables

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text(self._heading), id="summary-title")
            yield Static(Group(*self._body), id="summary-body")
            yield Static(Text("escape: back to the runs", style="italic"), id="summary-hint")
