"""The diagnostics screen (``d``): where each engine thread spends its time.

Used on the UI's event loop only. A :class:`~.panel.LivePanel`: it reads the app's
session's snapshot (``metrics.threads``: busy and waiting wall seconds per component) when
shown and twice a second after. Every figure here is measured in wall-clock time, so it
goes through the app's :class:`~sessionkit.tui.format.Figures` (frozen placeholders in
snapshot tests). Dismissed with ``escape`` or ``d``; ``q`` quits the monitor, as everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar
from zoneinfo import ZoneInfo

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from sessionkit.engine.pipeline.snapshot import Snapshot, ThreadStats
from textual.binding import Binding, BindingType

from .. import format as fmt
from .panel import LivePanel

BAR_WIDTH = 16
"""Cells of each thread's busy / waiting bar."""

COORDINATOR = "session_coordinator"
"""The coordinator's thread (it runs the stages' handlers inline when data-driven)."""


@dataclass(frozen=True, slots=True)
class ThreadTime:
    """One engine thread's time, split so that every row reads the same way.

    The engine's :class:`ThreadStats` give a stage's ``inline_seconds`` as the part of its
    ``busy_seconds`` run on the coordinator's thread, but the coordinator's as the stages'
    handlers it ran, which are *not* in its ``busy_seconds`` (its own publishing): shown
    as they come, the coordinator's inline exceeded its busy time.
    """

    work: float
    """Seconds of work: a stage's handlers wherever they ran; the coordinator's publishing
    and the stages' handlers it ran."""
    inline: float
    """Of ``work``, the part run inline (on the coordinator's thread, for the stages)."""
    own: float
    """Seconds this thread was busy with its own component's work."""
    hosted: float
    """Seconds this thread was busy running the stages' handlers (the coordinator)."""
    waiting: float
    """Seconds this thread waited."""

    @property
    def busy_share(self) -> float | None:
        """Percent of this thread's measured time it was busy (None before any)."""
        busy = self.own + self.hosted
        total = busy + self.waiting
        return 100.0 * busy / total if total > 0 else None


def thread_time(stats: ThreadStats) -> ThreadTime:
    """``stats`` read consistently (see :class:`ThreadTime`)."""
    if stats.name == COORDINATOR:
        work = stats.busy_seconds + stats.inline_seconds
        return ThreadTime(
            work,
            stats.inline_seconds,
            stats.busy_seconds,
            stats.inline_seconds,
            stats.waiting_seconds,
        )
    inline = min(stats.inline_seconds, stats.busy_seconds)
    return ThreadTime(
        stats.busy_seconds, inline, stats.busy_seconds - inline, 0.0, stats.waiting_seconds
    )


def time_bar(time: ThreadTime, figures: fmt.Figures, width: int = BAR_WIDTH) -> Text:
    """Over the thread's measured time, in ``width`` cells: ``█`` busy with its own work,
    ``▓`` running the stages' handlers inline, ``░`` waiting."""
    if figures.frozen:
        return Text("·" * width, style="dim")
    total = time.own + time.hosted + time.waiting
    if total <= 0:
        return Text(" " * width)
    busy = round(width * (time.own + time.hosted) / total)
    hosted = min(busy, round(width * time.hosted / total))
    text = Text()
    text.append("█" * (busy - hosted), style="bold")
    text.append("▓" * hosted)
    text.append("░" * (width - busy), style="dim")
    return text


class TimeBar:
    """:func:`time_bar` as wide as its column allows, at most :data:`BAR_WIDTH` cells: in a
    narrow panel the bar shrinks, not the thread names."""

    def __init__(self, time: ThreadTime, figures: fmt.Figures) -> None:
        self.time = time
        self.figures = figures

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, BAR_WIDTH).clamp(max_width=options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(1, min(BAR_WIDTH, options.max_width))
        yield time_bar(self.time, self.figures, width)


def diagnostics_renderable(snapshot: Snapshot, figures: fmt.Figures) -> Group:
    """The screen's content (pure: tested without Pilot)."""
    metrics = snapshot.metrics
    threads = Table(
        title=f"Engine threads (stages: {metrics.stages})",
        title_justify="left",
        box=None,
        padding=(0, 1),
    )
    # Only the bar's column gives way when the panel is narrow (the others never wrap).
    for title in ("Thread", "Work", "inline", "Waiting", "Busy %", "Messages"):
        threads.add_column(title, justify="left" if title == "Thread" else "right", no_wrap=True)
    threads.add_column("", justify="left")
    for stats in metrics.threads:
        time = thread_time(stats)
        threads.add_row(
            stats.name,
            figures.seconds(time.work),
            figures.seconds(time.inline),
            figures.seconds(time.waiting),
            figures.share(time.busy_share),
            str(stats.messages),
            TimeBar(time, figures),
        )
    parts: list[object] = [threads]
    if not metrics.threads:
        parts.append(Text("The engine reports no thread times.", style="dim"))
    parts.append(
        Text(
            "Work: a stage's handlers, wherever they ran; the coordinator's publishing plus "
            "the stages' handlers it ran inline (data-driven); the reader process's reads "
            "of the coming sessions. Busy %: of the thread's own time.\n"
            "█ busy  ▓ running the stages inline  ░ waiting: consumers on their queue; "
            "the coordinator on consumers, the clock and pauses; the reader for a request",
            style="dim",
        )
    )
    engine = Table(title="Engine", title_justify="left", box=None, padding=(0, 1))
    engine.add_column("Figure")
    engine.add_column("Value", justify="right")
    engine.add_row("steps", f"{metrics.steps:,}")
    engine.add_row("bars processed", f"{metrics.bars_processed:,}")
    engine.add_row("step latency mean", figures.milliseconds(metrics.step_latency_ms))
    engine.add_row("step latency max", figures.milliseconds(metrics.max_step_latency_ms))
    engine.add_row("first load", figures.seconds(metrics.initial_load_seconds))
    engine.add_row("later loads (mean)", figures.seconds(metrics.subsequent_load_seconds))
    engine.add_row("calendar cache hits", fmt.percent(metrics.cache_hit_rate) + " %")
    engine.add_row("analysis errors", f"{metrics.analysis_errors:,}")
    parts += [Text(""), engine]
    if metrics.analysis_error_kinds:
        zone = ZoneInfo(snapshot.timezone)
        kinds = Table(title="Analysis errors", title_justify="left", box=None, padding=(0, 1))
        for title in ("Count", "Hook", "Error (the first)", "Where", "First at"):
            kinds.add_column(title, justify="right" if title == "Count" else "left")
        for kind in metrics.analysis_error_kinds:
            first = kind.first_time
            kinds.add_row(
                f"{kind.count:,}",
                f"on_{kind.hook}",
                Text(kind.error),  # user text: never markup
                Text(kind.where),
                f"{first.astimezone(zone):%m-%d %H:%M}" if first else fmt.DASH,
            )
        parts += [Text(""), kinds]
    return Group(*parts)  # type: ignore[arg-type]


class DiagnosticsScreen(LivePanel):
    """Busy and waiting time per engine thread, and the engine's timings."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,d", "dismiss", "Close"),
        # A modal screen hides the app's bindings: q must quit from here too.
        Binding("q", "app.quit", "Quit"),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | escape, d | Close the diagnostics. |
    | q | Stop the engine and quit. |
    """

    DEFAULT_CSS = """
    DiagnosticsScreen > VerticalScroll {
        width: 96;
    }
    """

    BODY_ID = "diagnostics-body"

    def __init__(self, read: Callable[[], Snapshot], figures: fmt.Figures) -> None:
        """``read()`` returns the session's snapshot now."""
        super().__init__("Diagnostics", self.content)
        self._read = read
        self.figures = figures

    def content(self) -> Group:
        return diagnostics_renderable(self._read(), self.figures)
