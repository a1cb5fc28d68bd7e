"""The go-to-date prompt (``g``): a date, checked against the run's calendar as it is typed.

Used on the UI's event loop only. Dismissed with the session date to go to (``enter`` on a
valid or adjusted date), or None (``escape``). The hint under the input follows every
change of it (:func:`~sessionkit.tui.seek.resolve` is a parse and a bisection). A
non-trading day offers the next session: the input is filled with it, and ``enter`` goes
there. Keys typed before the input has the focus (in the same burst as ``g``) go into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import ClassVar

from textual import events
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

    HINT = "The engine restarts at that session with its warm-up, at the same speed."
    """The hint while the input is empty."""

    def __init__(self, sessions: Sequence[date], current: date | None) -> None:
        super().__init__()
        self.sessions = tuple(sessions)
        self.current = current
        self._offered: tuple[str, str] | None = None
        """(the session offered, the day typed) after ``enter`` on a non-trading day."""
        self._early: str | None = None
        """What was typed before the input had the focus (None: nothing)."""

    def compose(self) -> ComposeResult:
        first, last = (self.sessions[0], self.sessions[-1]) if self.sessions else ("-", "-")
        with Vertical():
            yield Static(f"Go to a session ({first} to {last})", id="seek-title")
            yield Input(
                value=str(self.current) if self.current else "",
                placeholder="YYYY-MM-DD",
                id="seek-date",
            )
            yield Static(self.HINT, id="seek-message")

    def on_mount(self) -> None:
        field = self.query_one(Input)
        if self._early is not None:
            self._show_early(field)
        field.focus()

    def on_key(self, event: events.Key) -> None:
        """A printable key the input did not get (it has no focus yet): type it there."""
        if event.is_printable and event.character is not None:
            event.stop()
            self.type_early(event.character)

    def type_early(self, character: str) -> None:
        """Type ``character`` into the input before it has the focus (a key sent in the
        same burst as ``g``: the app hands over those that reached the monitor's screen)."""
        self._early = (self._early or "") + character
        for field in self.query(Input):
            self._show_early(field)

    def _show_early(self, field: Input) -> None:
        """What was typed early replaces the date shown, as typing over the selection the
        focus brings would; the focus then keeps it (no selection to type over)."""
        field.select_on_focus = False
        field.value = self._early or ""
        field.cursor_position = len(field.value)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            self._say(self.HINT, error=False)
            return
        answer = resolve(text, self.sessions)
        message = answer.message
        if self._offered is not None and text == self._offered[0] and answer.exact:
            message += f", the next trading day after {self._offered[1]}: enter to go there"
        self._say(message, error=answer.day is None and not answer.partial)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        typed = event.value.strip()
        answer = resolve(typed, self.sessions)
        if answer.day is None:
            self._say(answer.message, error=True)
        elif answer.exact:
            self.dismiss(answer.day)
        else:
            # Offer the next trading day: filled in (the hint follows), enter again to go.
            self._offered = (str(answer.day), typed)
            self.query_one(Input).value = self._offered[0]

    def _say(self, message: str, *, error: bool) -> None:
        widget = self.query_one("#seek-message", Static)
        widget.update(message)
        widget.set_class(error, "-error")

    def action_cancel(self) -> None:
        self.dismiss(None)
