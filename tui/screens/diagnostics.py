"""The diagnostics screen (``d``): where each engine thread spends its time.

Used on the UI's event loop only. It reads the app's session's snapshot (``metrics.threads``:
busy and waiting wall seconds per component) when shown and twice a second after. Every
figure here is measured in wall-clock time, so it goes through the app's
:class:`~sessionkit.tui.format.Figures` (frozen placeholders in snapshot tests).
Dismissed with ``escape``, ``d`` or ``q``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from sessionkit.engine.pipeline.snapshot import Snapshot, ThreadStats
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from .. import format as fmt

REFRESH_SECONDS = 0.5
BAR_WIDTH = 16
"""Cells of each thread's busy / waiting bar."""


def time_bar(stats: ThreadStats, figures: fmt.Figures) -> Text:
    """``█`` for busy (``▓`` the part run inline), ``░`` for waiting, blank for the rest
    (scheduling, the GIL), over the thread's whole time."""
    if figures.frozen:
        return Text("·" * BAR_WIDTH, style="dim")
    total = stats.busy_seconds + stats.waiting_seconds
    if total <= 0:
        return Text(" " * BAR_WIDTH)
    busy = round(BAR_WIDTH * stats.busy_seconds / total)
    inline = min(busy, round(BAR_WIDTH * stats.inline_seconds / total))
    waiting = BAR_WIDTH - busy
    text = Text()
    text.append("█" * (busy - inline), style="bold")
    text.append("▓" * inline)
    text.append("░" * waiting, style="dim")
    return text


def diagnostics_renderable(snapshot: Snapshot, figures: fmt.Figures) -> Group:
    """The screen's content (pure: tested without Pilot)."""
    metrics = snapshot.metrics
    threads = Table(
        title=f"Engine threads (stages: {metrics.stages})",
        title_justify="left",
        box=None,
        padding=(0, 1),
    )
    for title in ("Thread", "Busy", "inline", "Waiting", "Busy %", "Messages", ""):
        threads.add_column(title, justify="left" if title in ("Thread", "") else "right")
    for stats in metrics.threads:
        total = stats.busy_seconds + stats.waiting_seconds
        share = 100.0 * stats.busy_seconds / total if total > 0 else None
        threads.add_row(
            stats.name,
            figures.seconds(stats.busy_seconds),
            figures.seconds(stats.inline_seconds),
            figures.seconds(stats.waiting_seconds),
            figures.share(share),
            str(stats.messages),
            time_bar(stats, figures),
        )
    parts: list[object] = [threads]
    if not metrics.threads:
        parts.append(Text("The engine reports no thread times.", style="dim"))
    parts.append(
        Text(
            "█ busy  ▓ busy on the coordinator's thread (inline)  ░ waiting: consumers on "
            "their queue; the coordinator on consumers, the clock and pauses",
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
    engine.add_row("analysis errors", str(metrics.analysis_errors))
    parts += [Text(""), engine]
    return Group(*parts)  # type: ignore[arg-type]


class DiagnosticsScreen(ModalScreen[None]):
    """Busy and waiting time per engine thread, and the engine's timings."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,d,q", "dismiss", "Close"),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | escape, d, q | Close the diagnostics. |
    """

    DEFAULT_CSS = """
    DiagnosticsScreen {
        align: center middle;
        background: $background 60%;
        & > VerticalScroll {
            width: 96;
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

    def __init__(self, read: Callable[[], Snapshot], figures: fmt.Figures) -> None:
        """``read()`` returns the session's snapshot now."""
        super().__init__()
        self._read = read
        self.figures = figures
        self.shown: Group | None = None
        """What the screen shows now."""

    def compose(self) -> ComposeResult:
        scroll = VerticalScroll()
        scroll.border_title = "Diagnostics  (escape to close)"
        with scroll:
            yield Static(id="diagnostics-body")

    def on_mount(self) -> None:
        self.refresh_diagnostics()
        self.set_interval(REFRESH_SECONDS, self.refresh_diagnostics)

    def refresh_diagnostics(self) -> None:
        """Read the session again and show it."""
        if not self.app.is_running or not self.is_attached:
            return
        self.shown = diagnostics_renderable(self._read(), self.figures)
        self.query_one("#diagnostics-body", Static).update(self.shown)
