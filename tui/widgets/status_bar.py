"""The status bar: mode, state, session date, simulated time (and the session's break, when
it is in one), speed, session i of n, the run's progress with its ETA, and the recent bars/s.

Used on the UI's event loop only: the app hands it each new snapshot and the run's
:class:`~sessionkit.tui.progress.ProgressTracker` through :meth:`StatusBar.show`; it
re-renders only when one of its texts changed. The progress bar takes the width the other
fields leave. A narrow terminal gets a shorter line (:data:`FIT`): narrower separators
first, then bars/s, to keep room for at least a short bar; then the bar and the less needed
fields go, so that the state, simulated time, speed, progress percentage and ETA stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar
from zoneinfo import ZoneInfo

from rich.style import Style
from rich.text import Text
from sessionkit.engine.pipeline.snapshot import Snapshot
from textual.app import RenderResult
from textual.reactive import reactive
from textual.widget import Widget

from .. import format as fmt
from ..progress import ProgressTracker, bar

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

_DROPS = ("rate", "sessions", "clock", "mode", "pause", "date")
FIT: tuple[frozenset[str], ...] = (
    frozenset(),
    *(frozenset(("compact", *_DROPS[:n])) for n in range(len(_DROPS) + 1)),
)
"""How the line fits a narrow terminal: the first of these that fits is shown (the first
:data:`WITH_BAR` with a progress bar, when there is a progress; the others without). Each
drops more
(``compact``: narrow separators and short words; then, least needed first: bars/s,
``session i/n``, the clock's name after the speed, the mode, the break, the date), so the
state, simulated time, speed, progress percentage and ETA stay."""

WITH_BAR = 3
"""The first levels of :data:`FIT` (nothing dropped, narrow separators, then bars/s gone)
that are shown only with a progress bar: the bar goes after bars/s, before the others (and
a wider terminal never shows less of it)."""

BAR_MIN = 4
"""The shortest progress bar drawn (cells); a longer one takes the room left, up to 30."""


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
    fraction: float | None = None
    """Share of the run's trading time replayed (None: unknown)."""
    done: str = ""
    """Sessions done of total, e.g. ``2/25``."""
    eta: str = ""
    pause: str = ""
    """``lunch break until 12:30 JST`` while the session is in its break, else empty."""


def status_line(
    snapshot: Snapshot,
    figures: fmt.Figures,
    tracker: ProgressTracker | None = None,
    wall: float = 0.0,
) -> StatusLine:
    """The status texts of a snapshot (with the run's progress if ``tracker`` is given)."""
    zone = ZoneInfo(snapshot.timezone)
    clock = {"data-driven": "data-driven", "clock-driven": "clock", "live": "wall clock"}.get(
        snapshot.clock, snapshot.clock
    )
    progress = tracker.progress if tracker else None
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
        time=fmt.sim_clock(snapshot.clock_time or snapshot.sim_time, zone, snapshot.session_date),
        speed=f"{fmt.speed(snapshot.clock, snapshot.speed)} {clock}",
        rate=figures.rate(
            tracker.bars_per_second(wall) if tracker else snapshot.metrics.bars_per_second
        ),
        fraction=progress.fraction if progress else None,
        done=f"{progress.sessions_done}/{progress.sessions_total}" if progress else "",
        eta="" if progress is None or snapshot.finished else figures.eta(tracker.eta(wall)),
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
        "status-bar--progress",
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
    | `status-bar--progress` | The run's progress bar. |
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
        & > .status-bar--progress { color: $primary; }
    }
    """

    line: reactive[StatusLine] = reactive(StatusLine, layout=False)
    """The texts shown; assigning an equal value does not re-render."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._styles: dict[str, Style] = {}

    def notify_style_update(self) -> None:
        self._styles.clear()  # a theme or CSS change: the component styles are read again
        super().notify_style_update()

    def _style(self, name: str) -> Style:
        """The rich style of a component class, kept until the styles change (Textual's own
        cache is emptied by every refresh, and this bar refreshes with every poll)."""
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = self.get_component_rich_style(name)
        return style

    def show(
        self,
        snapshot: Snapshot,
        figures: fmt.Figures,
        tracker: ProgressTracker | None = None,
        wall: float = 0.0,
    ) -> None:
        """Show a new snapshot (re-renders only if a text changed)."""
        self.line = status_line(snapshot, figures, tracker, wall)

    def render(self) -> RenderResult:
        width = self.size.width
        if width <= 0:
            return self._text(FIT[0])[0]
        # With a bar if narrower separators or no bars/s make room for one; else the first
        # that fits without one.
        wanted = self.line.fraction is not None
        for drop in FIT[:WITH_BAR]:
            text, has_bar = self._text(drop)
            if text.cell_len <= width and (has_bar or not wanted):
                return text
        for drop in FIT[1:]:
            text, _ = self._text(drop, bar_ok=False)
            if text.cell_len <= width:
                break
        return text

    def _text(self, drop: frozenset[str], *, bar_ok: bool = True) -> tuple[Text, bool]:
        """The line without the parts in ``drop`` (see :data:`FIT`), and whether it has a
        progress bar (if ``bar_ok`` and there is room); ``compact`` also narrows the
        separators and shortens the words a narrow terminal cannot afford."""
        line = self.line
        style = self._style
        compact = "compact" in drop
        label, suffix = STATE_LABELS.get(line.state, (line.state, "busy"))
        separator = ("│" if compact else " │ ", style("status-bar--separator"))
        parts: list[tuple[str, object] | str] = []
        if "mode" not in drop:
            parts += [(f" {line.mode} ", style("status-bar--mode"))]
        parts += [" ", (label, style(f"status-bar--{suffix}"))]
        if "date" not in drop:
            parts += [separator, line.date]
        if line.sessions and "sessions" not in drop:
            sessions = line.sessions
            if compact:
                sessions = sessions.removeprefix("session ").replace(" early close", " early")
                parts += [" ", (sessions, style("status-bar--label"))]
            else:
                parts += [" ", (f"({sessions})", style("status-bar--label"))]
        parts += [separator, line.time]
        if line.pause and "pause" not in drop:
            pause = line.pause.removeprefix("lunch ") if compact else line.pause
            parts += [" ", (pause, style("status-bar--paused"))]
        speed = line.speed.partition(" ")[0] if "clock" in drop else line.speed
        parts += [separator, speed]
        if line.rate and "rate" not in drop:
            parts += [separator, (line.rate, style("status-bar--label"))]
        text = Text(no_wrap=True, overflow="ellipsis")
        for part in parts:
            if isinstance(part, str):
                text.append(part)
            else:
                text.append(part[0], part[1])  # type: ignore[arg-type]
        has_bar = False
        if line.fraction is not None:
            has_bar = self._append_progress(text, separator, compact=compact, bar_ok=bar_ok)
        return text, has_bar

    def _append_progress(
        self, text: Text, separator: tuple[str, object], *, compact: bool, bar_ok: bool
    ) -> bool:
        """The run's progress: a bar in the width left (if ``bar_ok`` and at least
        :data:`BAR_MIN`), percent, ETA. True if it drew the bar."""
        line = self.line
        style = self._style
        assert line.fraction is not None
        percent = f"{line.fraction * 100:.0f}%" if compact else f"{line.fraction * 100:.1f}%"
        tail = f" {percent}"
        if line.eta:
            tail += f" {line.eta}"
        room = self.size.width - text.cell_len - len(separator[0]) - len(tail) - 1
        text.append(*separator)  # type: ignore[arg-type]
        drawn = bar_ok and room >= BAR_MIN
        if drawn:
            text.append(bar(line.fraction, min(room, 30)), style("status-bar--progress"))
        text.append(tail, style("status-bar--label"))
        return drawn
