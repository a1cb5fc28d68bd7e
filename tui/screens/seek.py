"""The go-to-date prompt (``g``): a date, checked against the run's calendar as it is typed.

Used on the UI's event loop only. Dismissed with the session date to go to (``enter`` on a
valid or adjusted date), or None (``escape``). A non-trading day offers the next session:
the input is filled with it, and ``enter`` goes there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ..seek import resolve


class SeekScreen(ModalScreen[date | None]):
    """Ask for a date of the run to restart the engine at."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | enter | Go to the date (or the next trading day offered). |
    | escape | Close without going anywhere. |
    """

    DEFAULT_CSS = """
    SeekScreen {
        align: center middle;
        background: $background 60%;
        & > Vertical {
            width: 64;
            max-width: 100%;
            height: auto;
            border: thick $primary;
            background: $surface;
            padding: 0 1;
        }
        & #seek-title { text-style: bold; color: $accent; }
        & #seek-message { color: $foreground-muted; height: auto; }
        & #seek-message.-error { color: $error; }
    }
    """

    def __init__(self, sessions: Sequence[date], current: date | None) -> None:
        super().__init__()
        self.sessions = tuple(sessions)
        self.current = current
        self._offered: str | None = None

    def compose(self) -> ComposeResult:
        first, last = (self.sessions[0], self.sessions[-1]) if self.sessions else ("-", "-")
        with Vertical():
            yield Static(f"Go to a session ({first} to {last})", id="seek-title")
            yield Input(
                value=str(self.current) if self.current else "",
                placeholder="YYYY-MM-DD",
                id="seek-date",
            )
            yield Static(
                "The engine restarts at that session with its warm-up, at the same speed.",
                id="seek-message",
            )

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if len(event.value.strip()) == 10 and event.value != self._offered:
            self._say(resolve(event.value, self.sessions).message, error=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        answer = resolve(event.value, self.sessions)
        if answer.day is None:
            self._say(answer.message, error=True)
        elif answer.exact:
            self.dismiss(answer.day)
        else:
            # Offer the next trading day: filled in, enter again to go.
            self._offered = str(answer.day)
            self.query_one(Input).value = self._offered
            self._say(answer.message, error=False)

    def _say(self, message: str, *, error: bool) -> None:
        widget = self.query_one("#seek-message", Static)
        widget.update(message)
        widget.set_class(error, "-error")

    def action_cancel(self) -> None:
        self.dismiss(None)
