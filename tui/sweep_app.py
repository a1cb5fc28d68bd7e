"""The sweep monitor: a Textual app that shows every run of a sweep, live.

Threads: the app runs on Textual's event loop (the main thread). The sweep runs in a
thread worker (``_drive``) through a :class:`SweepSource`; the production source,
:class:`LiveSweep`, calls :func:`~sessionkit.engine.runs.sweep.run_sweep`, whose worker
processes (or Dask workers) post :class:`~sessionkit.engine.runs.sweep.RunProgress` records
on a queue that a reader thread gets from (never a busy loop). Both threads
only post typed messages (:class:`~sessionkit.tui.messages.RunProgressed`,
:class:`~sessionkit.tui.messages.RunFinished`); the handlers update the
:class:`~sessionkit.tui.sweep_board.SweepBoard` and the table on the event loop. ``q`` sets
the source's cancel event (pending runs are cancelled, running ones ended) and the app
leaves when the worker says the sweep is over (or after :data:`QUIT_PATIENCE` seconds).

Build the app with :func:`create_sweep_app`, which the command line and the tests both use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

from rich.table import Table
from rich.text import Text
from sessionkit.engine.runs.sweep import (
    RunProgress,
    SweepOutcome,
    SweepRun,
    run_sweep,
    shown_setting,
)
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from . import format as fmt
from .messages import RunFinished, RunProgressed, SweepWarned
from .progress import duration
from .screens.sweep_summary import RunSummaryScreen
from .sweep_board import RunEntry, SweepBoard
from .themes import ThemeSet, load_themes
from .widgets.sweep_table import SweepTable

QUIT_PATIENCE = 1.5
"""Seconds ``q`` waits for the sweep to end its workers before the app leaves anyway."""


class SweepSource(Protocol):
    """What the monitor needs of a sweep: its planned runs, and a way to run them."""

    runs: Sequence[SweepRun]
    executor: str
    """Where the runs happen, for the status line (``2 worker processes``)."""
    # Optionally ``parallel: int | None``: how many runs run at once (for the ETA; without
    # it, the most runs seen running at once).

    def run(
        self,
        *,
        on_progress: Callable[[RunProgress], None],
        on_done: Callable[[SweepOutcome], None],
        cancel: threading.Event,
        on_warning: Callable[[str], None],
    ) -> None:
        """Run every run (blocking; called on a worker thread) until done or ``cancel``;
        what the sweep warns of as it goes to ``on_warning``."""


class LiveSweep:
    """The real source: :func:`~sessionkit.engine.runs.sweep.run_sweep` on worker processes
    or a Dask cluster."""

    def __init__(
        self,
        runs: Sequence[SweepRun],
        *,
        workers: int | None = None,
        dask: str | None = None,
        worker_output: str | None = None,
    ) -> None:
        self.runs = runs
        self.workers = workers
        self.dask = dask
        self.worker_output = worker_output
        """Where the worker processes' stdout and stderr go (the screen is the app's)."""
        # multiprocessing starts its resource tracker on first use, handing it the fd of
        # sys.stderr: inside the app, stderr is Textual's (no real fd). Start it now.
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
        self.parallel = parallel_runs(len(runs), workers, dask)
        """How many runs run at once (None: a remote Dask cluster's, unknown here)."""
        if dask is None:
            count = self.parallel
            self.executor = f"{count} worker process{'es' if count != 1 else ''}"
        else:
            self.executor = f"Dask {dask}"

    def run(
        self,
        *,
        on_progress: Callable[[RunProgress], None],
        on_done: Callable[[SweepOutcome], None],
        cancel: threading.Event,
        on_warning: Callable[[str], None],
    ) -> None:
        run_sweep(
            self.runs,
            workers=self.workers,
            dask=self.dask,
            on_done=lambda outcome, _done, _total: on_done(outcome),
            on_progress=on_progress,
            cancel=cancel,
            worker_output=self.worker_output,
            on_warning=on_warning,
        )


def parallel_runs(runs: int, workers: int | None, dask: str | None) -> int | None:
    """How many of ``runs`` run at once: ``workers`` (default: the CPU count) worker
    processes, or a local Dask cluster's (``local:N``: N) workers; None on a remote Dask
    cluster (its workers are its own)."""
    import os

    if dask is None or dask == "local":
        count = workers or os.cpu_count() or 1
    elif dask.startswith("local:") and dask.partition(":")[2].isdigit():
        count = int(dask.partition(":")[2])
    else:
        return None
    return max(1, min(count, runs))


def known_progress(entry: RunEntry) -> Text | None:
    """What the monitor knows of a run that did not complete beyond its summary: its
    result has no quality before a session ended (an error in the first session), and a
    run that failed has no result at all; its last progress record has the bars streamed
    and the quality of the session so far. None when there is nothing to add."""
    outcome, record = entry.outcome, entry.record
    if outcome is None or record is None or outcome.state == "completed":
        return None
    quality = "" if record.quality is None else f"{fmt.percent(record.quality)} %"
    result = outcome.result
    if result is not None:
        if not quality or any(v is not None for q in result.quality.values() for v in q.values()):
            return None
        return Text(
            f"quality: {quality} (of the session so far when the run ended, the mean over "
            "the symbols; per symbol it comes with a session's end)"
        )
    if not record.bars:
        return None
    text = f"before it failed: {record.bars:,} bars streamed"
    return Text(text + (f", quality {quality} (of the session so far)" if quality else ""))


STATUS_SEPARATOR = " · "
"""Between two items of the status line."""


def fit_items(items: Sequence[str], width: int | None) -> str:
    """``items`` joined by :data:`STATUS_SEPARATOR`, lines broken between two items (not
    inside one) where the next would not fit in ``width`` cells (None: one line). An item
    longer than a line is wrapped where it must be."""
    if not items:
        return ""
    lines = [items[0]]
    for item in items[1:]:
        joined = f"{lines[-1]}{STATUS_SEPARATOR}{item}"
        if width is None or len(joined) <= width:
            lines[-1] = joined
        else:
            lines.append(item)
    return "\n".join(lines)


class SweepMonitorApp(App[None]):
    """Live monitor of the runs of one sweep."""

    TITLE = "sessionkit sweep"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", tooltip="Cancel the pending runs, end the running ones, quit"),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | q | Cancel the pending runs, end the running ones and quit. |
    | s | Sort by the next column (the table's key; a header click too). |
    | enter | The summary of the run under the cursor (escape goes back). |
    """

    CSS = """
    #sweep-status { height: auto; padding: 0 1; background: $panel; }
    #runs { border: round $primary; }
    """

    def __init__(
        self,
        source: SweepSource,
        *,
        themes: ThemeSet,
        theme: str = "dark",
        figures: fmt.Figures | None = None,
        title: str = "",
        warnings: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.source = source
        self.warnings = tuple(warnings)
        self.late_warnings: list[str] = []
        """What the sweep warned of as it went (printed once the screen is gone)."""
        """What the sweep warns of (shown as notifications when the monitor opens)."""
        self.theme_set = themes
        self.figures = figures or fmt.Figures()
        self.board = SweepBoard(source.runs)
        self.cancel = threading.Event()
        """Set to cancel the sweep (``q`` does)."""
        self.ended = threading.Event()
        """Set once the source's ``run`` returned (its workers are gone)."""
        self.started = False
        """True once the sweep was started (on mount)."""
        self.failure: str | None = None
        """Why the sweep itself failed (not a run: e.g. an unreachable Dask cluster)."""
        self.sweep_title = title
        self._initial_theme = theme
        self._began = time.monotonic()
        self._ended_at: float | None = None
        self._quitting = False
        for entry in themes.themes:
            self.register_theme(entry)

    def compose(self) -> ComposeResult:
        yield Static(id="sweep-status")
        yield SweepTable(id="runs", figures=self.figures)
        yield Footer()

    def on_mount(self) -> None:
        self.theme = self._initial_theme
        table = self.query_one(SweepTable)
        table.border_title = "Runs"
        table.show(self.board)
        table.focus()
        self._show_status()
        for warning in self.warnings:
            self.notify(warning, title="warning", severity="warning", timeout=30)
        self.set_interval(1.0, self._show_status)  # the elapsed time and ETA move on
        self.started = True
        self._drive()

    def on_unmount(self) -> None:
        """However the app ends, the sweep ends with it (its thread is joined at exit)."""
        self.cancel.set()

    # -- the sweep ------------------------------------------------------------------------

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="sweep",
        description="run the sweep",
    )
    def _drive(self) -> None:
        try:
            self.source.run(
                on_progress=lambda record: self.post_message(RunProgressed(record)),
                on_done=lambda outcome: self.post_message(RunFinished(outcome)),
                cancel=self.cancel,
                on_warning=lambda text: self.post_message(SweepWarned(text)),
            )
        finally:
            self.ended.set()

    def on_run_progressed(self, message: RunProgressed) -> None:
        if self.board.progress(message.record, time.monotonic()):
            self.query_one(SweepTable).show(self.board, changed=(message.record.index,))
            self._show_status()

    def on_sweep_warned(self, message: SweepWarned) -> None:
        """Shown as the sweep's warnings before it are, and printed once the screen is gone."""
        self.late_warnings.append(message.text)
        self.notify(message.text, title="warning", severity="warning", timeout=30)

    def on_run_finished(self, message: RunFinished) -> None:
        self.board.finish(message.outcome, time.monotonic())
        self.query_one(SweepTable).show(self.board, changed=(message.outcome.run.index,))
        self._show_status()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "_drive" or event.state not in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
        ):
            return
        self._ended_at = time.monotonic()
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.failure = str(error) if error is not None else "the sweep failed"
            self.notify(self.failure, title="sweep failed", severity="error", timeout=30)
        if self._quitting or self.failure is not None:
            self.board.cancel_unfinished()
            self.query_one(SweepTable).show(self.board)
        self._show_status()
        if self._quitting:
            self.exit()

    # -- status ---------------------------------------------------------------------------

    def status_text(self, width: int | None = None) -> str:
        """The status line: where the runs happen, how many are done, bars, time, ETA;
        broken between those items (never inside one) to lines of ``width`` cells."""
        return fit_items(self.status_items(), width)

    def status_items(self) -> list[str]:
        """The status line's items."""
        board = self.board
        counts = board.counts()
        total = len(board.entries)
        done, expected = board.bars()
        bars = f"{done:,} bars" if expected is None else f"{done:,} of {expected:,} bars"
        failed = f" ({counts['failed']} failed)" if counts["failed"] else ""
        head = f"{self.sweep_title}: " if self.sweep_title else ""
        parts = [
            f"{head}{total} runs, {self.source.executor}",
            f"{counts['done']} done{failed}, {counts['running']} running, "
            f"{counts['pending']} pending",
            bars,
        ]
        end = self._ended_at if self._ended_at is not None else time.monotonic()
        elapsed = end - self._began
        if self._quitting and self._ended_at is None:
            parts.append("cancelling ...")
        elif self.failure is not None:
            parts.append(f"failed: {self.failure}")
        elif self._ended_at is not None:
            ended = "cancelled" if self.cancel.is_set() else "finished"
            parts.append(ended if self.figures.frozen else f"{ended} in {duration(elapsed)}")
        else:
            # The runs left at the runs' own pace, the pending ones queued behind the
            # running ones on the workers (starting the workers or a cluster is not part
            # of it: a run's time starts with its first record).
            workers = getattr(self.source, "parallel", None)
            parts.append(self.figures.eta(board.eta(time.monotonic(), workers)))
        return parts

    def _show_status(self) -> None:
        status = self.query_one("#sweep-status", Static)
        status.update(self.status_text(status.content_region.width or None))

    def on_resize(self) -> None:
        self.call_after_refresh(self._show_status)  # its line breaks follow the width

    # -- keys -----------------------------------------------------------------------------

    def on_sweep_table_chosen(self, message: SweepTable.Chosen) -> None:
        entry = self.board.entries[message.index]
        number = f"run {message.index + 1} of {len(self.board.entries)}"
        if entry.outcome is None:
            self.notify(
                f"{number} is {entry.state}: its summary comes when it has ended",
                severity="warning",
            )
            return
        settings = [f"{k}={shown_setting(v)}" for k, v in entry.run.parameters.items()]
        if entry.run.window is not None:
            settings.append(f"{entry.run.window[0]}..{entry.run.window[1]}")
        title = f"{number}" + (f": {', '.join(settings)}" if settings else "")
        body = list(entry.outcome.summary())
        known = known_progress(entry)
        if known is not None:  # under the bars table, or at the end
            tables = [i for i, part in enumerate(body) if isinstance(part, Table)]
            body.insert(tables[0] + 1 if tables else len(body), known)
        self.push_screen(RunSummaryScreen(title, body))

    async def action_quit(self) -> None:
        """Cancel the pending runs and end the running ones (off the event loop), then exit."""
        if self._quitting:
            return
        self._quitting = True
        if self.ended.is_set():
            self.exit()
            return
        self.cancel.set()
        self._show_status()
        # Belt and braces: leave even if the sweep cannot report back in time (the command
        # line still waits for its workers to be gone).
        self.set_timer(QUIT_PATIENCE, self.exit)


def create_sweep_app(
    source: SweepSource,
    *,
    theme: str = "dark",
    theme_dirs: Sequence[str] = (),
    themes: ThemeSet | None = None,
    frozen_metrics: bool = False,
    title: str = "",
    warnings: Sequence[str] = (),
) -> SweepMonitorApp:
    """Build the sweep monitor for ``source`` (the command line and the tests both use this).

    Parameters
    ----------
    source
        The sweep: :class:`LiveSweep`, or any object with the :class:`SweepSource` API.
    theme, theme_dirs, themes
        As for :func:`~sessionkit.tui.app.create_app`.
    frozen_metrics
        Render wall-clock figures (bars/s, ETA) as fixed placeholders (snapshot tests).
    title
        What the sweep is of (the configuration), for the status line.
    warnings
        What the sweep warns of (:func:`~sessionkit.engine.runs.sweep.shard_warnings`),
        shown as notifications when the monitor opens.

    Raises
    ------
    ValueError
        If ``theme`` is neither loaded nor a Textual built-in theme.
    """
    theme_set = themes if themes is not None else load_themes(theme_dirs)
    app = SweepMonitorApp(
        source,
        themes=theme_set,
        theme=theme,
        figures=fmt.FrozenFigures() if frozen_metrics else fmt.Figures(),
        title=title,
        warnings=warnings,
    )
    if theme not in app.available_themes:
        raise ValueError(theme_set.refusal(theme, sorted(app.available_themes)))
    return app
