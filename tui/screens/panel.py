"""The base of the monitor's live panels (symbol detail, diagnostics): a modal box over the
monitor showing one renderable, read again from the session twice a second.

Used on the UI's event loop only. A subclass gives its title, its close keys (``BINDINGS``)
and its reader, which builds the content from the session; reading must not
block (the session's ``snapshot`` and ``gaps`` copy a little data and never wait for an
engine thread). The box has the focus, so that the arrows, page up / down, home and end
scroll it (a small terminal shows a part).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.console import RenderableType
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

REFRESH_SECONDS = 0.5
"""Seconds between two reads of the session while a panel is shown."""


class LivePanel(ModalScreen[None]):
    """A modal box of one renderable that follows the running engine until dismissed."""

    AUTO_FOCUS = "#panel-box"
    """The scrolling box (the app's own ``#symbols`` is not on this screen)."""

    DEFAULT_CSS = """
    LivePanel {
        align: center middle;
        background: $background 60%;
        & > VerticalScroll {
            width: 80;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: thick $primary;
            border-title-color: $accent;
            border-title-style: bold;
            background: $surface;
            padding: 0 1;
        }
    }
    """

    BODY_ID: ClassVar[str] = "panel-body"
    """The id of the Static showing the content."""

    def __init__(self, title: str, read: Callable[[], RenderableType | None]) -> None:
        super().__init__()
        self.title_text = title
        """The box's title (the close key is added to it)."""
        self.read = read
        """The content now, from the session; None keeps what is shown."""
        self.shown: RenderableType | None = None
        """What the panel shows now."""

    def compose(self) -> ComposeResult:
        scroll = VerticalScroll(id="panel-box")
        scroll.border_title = f"{self.title_text}  (escape to close)"
        with scroll:
            yield Static(id=self.BODY_ID)

    def on_mount(self) -> None:
        self.refresh_panel()
        self.set_interval(REFRESH_SECONDS, self.refresh_panel)

    def refresh_panel(self) -> None:
        """Read the session again and show it."""
        if not self.app.is_running or not self.is_attached:
            return
        content = self.read()
        if content is not None:
            self.shown = content
            self.query_one(f"#{self.BODY_ID}", Static).update(content)
