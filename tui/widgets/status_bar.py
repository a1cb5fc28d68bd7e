"""The status bar: mode, state, session date, simulated time (and the session's break, when
it is in one), speed, session i of n, bars/s.

Used on the UI's event loop only: the app hands it each new snapshot through
:meth:`StatusBar.show`; it re-renders only when one of its texts changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar
from zoneinfo import ZoneInfo

from rich.text import Text
from sessionkit.engine.pipeline.snapshot import Snapshot
from textual.app import RenderResult
from textual.reactive import reactive
from textual.widget import Widget

from .. import format as fmt

STATE_LABELS: dict[str, tuple[str, str]] = {
    "initializing": ("… loading", "busy"),
    "streaming": ("▶ running", "running"),
    "paused": ("❚❚ paused", "paused"),
    "session-ended": ("■ session ended", "busy"),
    "completed": ("✔ completed", "done"),
    "stopped": ("■ stopped", "done"),
    "error": ("✖ error", "error"),
}
"""Engine state -> (label, component class suffix)."""


@dataclass(frozen=True, slots=True)
class StatusLine:
    """The texts of the status bar (compared to skip re-rendering)."""

    mode: str = "BACKTEST"
    state: str = "initializing"
    date: str = fmt.DASH
    sessions: str = ""
    time: str = "--:--:--"
    speed: str = fmt.DASH
    rate: str = ""
    pause: str = ""
    """``lunch break until 12:30 JST`` while the session is in its break, else empty."""


def status_line(snapshot: Snapshot, figures: fmt.Figures) -> StatusLine:
    """The status texts of a snapshot."""
    zone = ZoneInfo(snapshot.timezone)
    clock = {"data-driven": "data-driven", "clock-driven": "clock", "live": "wall clock"}.get(
        snapshot.clock, snapshot.clock
    )
    sessions = ""
    if snapshot.session_count:
        sessions = f"session {snapshot.session_index}/{snapshot.session_count}"
        if snapshot.early_close:
            sessions += " early close"
    return StatusLine(
        mode=snapshot.mode.upper(),
        state=snapshot.state,
        date=str(snapshot.session_date) if snapshot.session_date else fmt.DASH,
        sessions=sessions,
        time=fmt.sim_clock(snapshot.sim_time, zone),
        speed=f"{fmt.speed(snapshot.clock, snapshot.speed)} {clock}",
        rate=figures.rate(snapshot.metrics.bars_per_second),
        pause=break_text(snapshot, zone),
    )


def break_text(snapshot: Snapshot, zone: ZoneInfo) -> str:
    """``lunch break until 12:30 JST`` while the snapshot's time is in the session's break.

    A break that starts between 11:00 and 14:00 local time is called a lunch break.
    """
    if not snapshot.in_break or snapshot.break_start is None or snapshot.break_end is None:
        return ""
    start = snapshot.break_start.astimezone(zone)
    end = snapshot.break_end.astimezone(zone)
    kind = "lunch break" if 11 <= start.hour < 14 else "break"
    return f"{kind} until {end:%H:%M} {end.tzname()}"


class StatusBar(Widget):
    """One line at the top of the screen describing the session and its clock."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "status-bar--mode",
        "status-bar--running",
        "status-bar--paused",
        "status-bar--busy",
        "status-bar--done",
        "status-bar--error",
        "status-bar--label",
        "status-bar--separator",
    }
    """
    | Class | Description |
    | :- | :- |
    | `status-bar--mode` | The mode (BACKTEST / LIVE). |
    | `status-bar--running` | The state while streaming. |
    | `status-bar--paused` | The state while paused. |
    | `status-bar--busy` | Loading or between sessions. |
    | `status-bar--done` | Completed or stopped. |
    | `status-bar--error` | The state after an engine error. |
    | `status-bar--label` | Secondary texts (session i of n, bars/s). |
    | `status-bar--separator` | The separators between fields. |
    """

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        width: 1fr;
        background: $panel;
        color: $foreground;
        & > .status-bar--mode { background: $primary; color: $text; text-style: bold; }
        & > .status-bar--running { color: $success; text-style: bold; }
        & > .status-bar--paused { color: $warning; text-style: bold; }
        & > .status-bar--busy { color: $accent; text-style: bold; }
        & > .status-bar--done { color: $foreground; text-style: bold; }
        & > .status-bar--error { background: $error; color: $text; text-style: bold; }
        & > .status-bar--label { color: $foreground-muted; }
        & > .status-bar--separator { color: $foreground-muted; }
    }
    """

    line: reactive[StatusLine] = reactive(StatusLine, layout=False)
    """The texts shown; assigning an equal value does not re-render."""

    def show(self, snapshot: Snapshot, figures: fmt.Figures) -> None:
        """Show a new snapshot (re-renders only if a text changed)."""
        self.line = status_line(snapshot, figures)

    def render(self) -> RenderResult:
        text = self._text(compact=False)
        if text.cell_len > self.size.width > 0:
            text = self._text(compact=True)
        return text

    def _text(self, *, compact: bool) -> Text:
        """The line; ``compact`` drops the words a narrow terminal cannot afford."""
        line = self.line
        style = self.get_component_rich_style
        label, suffix = STATE_LABELS.get(line.state, (line.state, "busy"))
        separator = ("│" if compact else " │ ", style("status-bar--separator"))
        parts: list[tuple[str, object] | str] = [
            (f" {line.mode} ", style("status-bar--mode")),
            " ",
            (label, style(f"status-bar--{suffix}")),
            separator,
            line.date,
        ]
        if line.sessions:
            sessions = line.sessions
            if compact:
                sessions = sessions.removeprefix("session ").replace(" early close", " early")
                parts += [" ", (sessions, style("status-bar--label"))]
            else:
                parts += [" ", (f"({sessions})", style("status-bar--label"))]
        parts += [separator, line.time]
        if line.pause:
            pause = line.pause.removeprefix("lunch ") if compact else line.pause
            parts += [" ", (pause, style("status-bar--paused"))]
        parts += [separator, line.speed]
        if line.rate:
            parts += [separator, (line.rate, style("status-bar--label"))]
        text = Text(no_wrap=True, overflow="ellipsis")
        for part in parts:
            if isinstance(part, str):
                text.append(part)
            else:
                text.append(part[0], part[1])  # type: ignore[arg-type]
        return text
