"""The event log: the engine's recent events, stamped with simulated (not wall) time; an
event logged before the run's first instant (a control restored after a seek), which has
no simulated time, with the wall time it was logged at, in italics.

Used on the UI's event loop only. The app hands it each snapshot's bounded event tuple
through :meth:`EventLog.show`; only the events it has not written yet are appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo

from rich.style import Style
from rich.text import Text
from sessionkit.engine.pipeline.snapshot import EngineEvent
from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import RichLog

from .. import format as fmt
from ..styling import component_foreground

T = TypeVar("T")

WALL_STYLE = Style(italic=True)
"""How the stamp of an event logged before the run's first instant (no simulated time
yet: a control restored after a seek) differs: its wall time (this machine's zone), in
italics."""

SIGNAL_PREFIX = "signal "
"""How the engine's log line of an analysis signal begins."""

NOTE_LABEL = "monitor: "
"""How a line from the monitor itself (not the engine, so without a simulated time)
begins."""


def unseen(items: Sequence[T], last: T | None) -> Sequence[T]:
    """The items after ``last`` (compared by identity) in a bounded, append-only tuple.

    The engine hands out the same event objects on every snapshot, so the last one
    written is found by identity; if it has been dropped from the window, all are new.
    """
    if last is None:
        return items
    for index in range(len(items) - 1, -1, -1):
        if items[index] is last:
            return items[index + 1 :]
    return items


class TailLog(RichLog, can_focus=True):
    """A log that appends only the entries of a bounded, append-only window it has not
    written yet, capped per call (shared by the event and signals logs)."""

    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)
    """The lines' extent. A longer log changes only its scrollbar, not the screen's layout
    (each write would otherwise lay out and redraw the whole screen); a scrollbar that
    appears or goes still lays the screen out (see :meth:`watch_virtual_size`)."""

    def watch_virtual_size(self, size: Size) -> None:
        self._scroll_update(size)  # a scrollbar shown or hidden asks for the layout

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._last: object | None = None
        self._skipped = False
        self._shown: tuple[Sequence[Any], str, dict[str, Any]] | None = None
        self._width = 0

    def remember(self, items: Sequence[Any], timezone: str, **options: Any) -> None:
        """Keep the last window shown, to write it again at a new width (wrapped lines)."""
        self._shown = (items, timezone, options)

    def write_wrapped(self, text: Text) -> None:
        """Write ``text``, wrapped at the pane's width (once it is known)."""
        width = self.scrollable_content_region.width if self.wrap else 0
        self.write(text, width=width or None)

    def rewrite_at(self, old: int, new: int) -> bool:
        """True if a pane resized from ``old`` to ``new`` cells must write its lines again
        (wrapped lines: at any new width)."""
        return self.wrap

    def on_resize(self) -> None:
        width = self.scrollable_content_region.width
        if width == self._width:
            return
        old, self._width = self._width, width
        if self._shown is not None and self.rewrite_at(old, width):
            items, timezone, options = self._shown
            self.restyle()
            self.show(items, timezone, **{**options, "limit": None})  # type: ignore[attr-defined]

    def restyle(self) -> None:
        """Forget what was written: the next ``show`` writes the window again in the
        current theme's colours (lines are coloured when written)."""
        self.clear()
        self._last = None

    def take_new(self, items: Sequence[T], limit: int | None) -> tuple[Sequence[T], int]:
        """The entries to write now, and how many were new.

        ``limit`` caps the lines written now (at max speed nobody reads hundreds of lines a
        second); the skipped ones are written back by the next call without a limit, which
        rewrites the whole window the engine keeps.
        """
        if limit is None and self._skipped:
            self._skipped = False
            self.restyle()
        new = unseen(items, self._last)
        if not new:
            return (), 0
        self._last = new[-1]
        count = len(new)
        cap = min(x for x in (limit, self.max_lines) if x) if (limit or self.max_lines) else None
        if cap and len(new) > cap:
            self._skipped = self._skipped or limit is not None
            new = new[-cap:]
        return new, count


class EventLog(TailLog):
    """Scrolling log of engine events (newest at the bottom)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "event-log--time",
        "event-log--warning",
        "event-log--error",
        "event-log--ui",
    }
    """
    | Class | Description |
    | :- | :- |
    | `event-log--time` | The simulated time of an event (wall time, in italics, before the run's first instant). |
    | `event-log--warning` | A warning. |
    | `event-log--error` | An error. |
    | `event-log--ui` | A line from the monitor itself (not the engine). |
    """

    DEFAULT_CSS = """
    EventLog {
        background: $surface;
        scrollbar-size-vertical: 1;
        & > .event-log--time { color: $foreground-muted; }
        & > .event-log--warning { color: $warning; }
        & > .event-log--error { color: $error; text-style: bold; }
        & > .event-log--ui { color: $accent; }
    }
    """

    def __init__(
        self,
        *,
        figures: fmt.Figures | None = None,
        max_lines: int = 200,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(
            max_lines=max_lines, wrap=True, markup=False, name=name, id=id, classes=classes
        )
        self.figures = figures or fmt.Figures()
        self._notes: list[tuple[str, str]] = []
        self.lines_written = 0
        """How many lines were written (for tests)."""
        self.hide_signals = True
        """Leave out the analysis's signal lines (the signals pane lists them)."""

    def _style(self, name: str) -> Style:
        return component_foreground(self, f"event-log--{name}")

    def restyle(self) -> None:
        """Forget what was written (the monitor's own notes are written again at once)."""
        super().restyle()
        for message, level in self._notes:
            self._write_note(message, level)

    def show(
        self,
        events: Sequence[EngineEvent],
        timezone: str,
        *,
        limit: int | None = None,
        dated: bool = False,
    ) -> None:
        """Append the events not written yet (as one write: one layout pass, not one a line),
        at most ``limit`` now (see :meth:`TailLog.take_new`). With :attr:`hide_signals`,
        the analysis's signals are left to the signals pane (each is listed once)."""
        self.remember(events, timezone, dated=dated)
        if self.hide_signals:  # before the cap: at max speed most events are signals
            events = [event for event in events if not event.message.startswith(SIGNAL_PREFIX)]
        new, count = self.take_new(events, limit)
        if not new:
            return
        self.lines_written += count
        zone = ZoneInfo(timezone)
        time_style = self._style("time")
        level_style = {"warning": self._style("warning"), "error": self._style("error")}
        message = self.figures.message
        lines = []
        for event in new:
            line = Text()
            if event.sim_time is None:  # before the run's first instant: when, in wall time
                stamp = self.figures.wall_minute(event.wall_time, dated=dated)
                line.append(stamp, time_style + WALL_STYLE)
            else:
                line.append(fmt.sim_minute(event.sim_time, zone, dated=dated), time_style)
            line.append(" ")
            line.append(message(event.message), level_style.get(event.level, ""))
            lines.append(line)
        self.write_wrapped(Text("\n").join(lines))

    def note(self, message: str, level: str = "ui") -> None:
        """Write a line from the monitor itself (a skipped theme file, an error)."""
        self._notes.append((message, level))
        self._write_note(message, level)

    def _write_note(self, message: str, level: str) -> None:
        line = Text()
        line.append(NOTE_LABEL, self._style("time"))
        line.append(message, self._style(level))
        self.write_wrapped(line)
        self.lines_written += 1
