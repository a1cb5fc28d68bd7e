"""The help screen: every key of the monitor and what the panes show.

Used on the UI's event loop only; pushed by the app's ``?`` key and dismissed with
``escape`` or ``?`` (``q`` quits the monitor, as everywhere). The key table is built from
the app's own bindings, so it can never disagree with the footer. The box has the focus,
so that the arrows, page up / down, home and end scroll it (a small terminal shows a part).
"""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

PANES = (
    (
        "Status bar",
        "mode, state, session date (session i/n), simulated time in the exchange's zone, "
        "speed, bars/s over the last seconds (0 while paused); the bar is the share of the "
        "run's trading time replayed, with the ETA at the pace measured now",
    ),
    (
        "Symbols",
        "bars so far per interval, last price, Chg% from the previous session's close, "
        "Q% = bars present of the bars the calendar expects so far in this session, "
        "Gap = runs of missing bars in this session; s sorts, / filters, enter for detail",
    ),
    (
        "Subscriptions",
        "engine hand-offs per consumer thread: Sigs = ready signals sent, Ovr = overruns "
        "(a consumer still busy when the next instant was due), Wait / Max = the last and "
        "longest wait for it, in ms",
    ),
    (
        "Charts",
        "price (close line or candles, c) with overlays (1-9 toggle, bands dotted), buy ▲ and "
        "sell ▼ at their bars, × under missing bars; an oscillator (or volume) below; the "
        "vertical lines are the session's open and close; [ ] zoom",
    ),
    ("Signals", "what the analysis emitted, in simulated time (each once; not in Events)"),
    ("Events", "the engine's log in simulated time: sessions, gaps, speed changes, errors"),
    (
        "Detail (enter)",
        "the symbol's gaps (start, end, minutes), quality per interval and history, indicators",
    ),
)
"""(pane, what it shows) for the help screen."""


class HelpScreen(ModalScreen[None]):
    """Keys and panes of the monitor."""

    AUTO_FOCUS = "#help-box"
    """The scrolling box (the app's own ``#symbols`` is not on this screen)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark", "dismiss", "Close help"),
        # A modal screen hides the app's bindings: q must quit from here too.
        Binding("q", "app.quit", "Quit"),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | escape, ? | Close the help screen. |
    | q | Stop the engine and quit. |
    | up, down, pageup, pagedown, home, end | Scroll (the box's own keys). |
    """

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        background: $background 60%;
        & > VerticalScroll {
            width: 76;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: thick $primary;
            background: $surface;
            padding: 0 1;
        }
        & #help-title { text-style: bold; color: $accent; padding-bottom: 1; }
    }
    """

    def __init__(
        self, bindings: list[tuple[str, str, str]], *, title: str = "sessionkit-tui"
    ) -> None:
        """``bindings``: (keys as shown, short description, longer help) of the app."""
        super().__init__()
        self._key_rows = bindings
        self._heading = title

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold", no_wrap=True)
        keys.add_column(no_wrap=True)
        keys.add_column(style="dim")
        for key, description, help_text in self._key_rows:
            keys.add_row(key, description, help_text)
        panes = Table.grid(padding=(0, 2))
        panes.add_column(style="bold", no_wrap=True)
        panes.add_column()
        for pane, text in PANES:
            panes.add_row(pane, text)
        with VerticalScroll(id="help-box"):
            yield Static(Text(f"{self._heading}: keys"), id="help-title")
            yield Static(keys, id="help-keys")
            yield Static(Text("\nPanes", style="bold"), id="help-panes-title")
            yield Static(panes, id="help-panes")
            yield Static(
                Text(
                    "\nAlso: ctrl+p opens the command palette. The arrows, page up / down, "
                    "home and end scroll this; escape closes it, q quits.",
                    style="italic",
                )
            )
