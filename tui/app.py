"""The sessionkit monitor: a Textual app that watches and controls a running Session.

Threads: the app runs on Textual's event loop (the main thread). The engine runs in the
Session's own threads, started by :meth:`SessionkitApp.on_mount` (``session.start()``
returns at once). The app polls ``session.snapshot()`` on a timer (about 10 Hz; the panes
follow at the cadence of :mod:`sessionkit.tui.refresh`, reading only the symbols they
show) and never waits for an engine thread on its event loop: controls (pause, step, speed ...) only
set flags; stopping the engine on quit, which joins its threads, and a seek, which builds
the new session, run in thread workers (the app leaves when the stop worker's state says it
ended; the seek worker posts :class:`~sessionkit.tui.messages.SessionReplaced`).

Build the app with :func:`create_app`, which the command line and the tests both use.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Protocol

from rich.cells import cell_len
from sessionkit.engine.pipeline.snapshot import GapSpan, Series, Snapshot
from textual import events, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

from . import format as fmt
from .chart_data import build_chart_data, chart_key
from .charting import indicator_kinds
from .messages import SeekFailed, SessionReplaced
from .progress import ProgressTracker
from .refresh import PANES, RESTING_STATES, PaneSchedule, is_busy
from .screens.detail import DetailScreen
from .screens.diagnostics import DiagnosticsScreen
from .screens.help import HelpScreen
from .screens.seek import SeekScreen
from .themes import ThemeSet, load_themes, with_chart_colours
from .widgets.event_log import EventLog
from .widgets.metrics_pane import MetricsPane, metrics_caption
from .widgets.oscillator_chart import OscillatorChart
from .widgets.price_chart import PriceChart
from .widgets.signals_log import SignalsLog
from .widgets.status_bar import StatusBar
from .widgets.subscriptions_table import SubscriptionsTable
from .widgets.symbol_filter import SymbolFilter
from .widgets.symbols_table import SymbolsTable, last_price

SPEED_PRESETS: tuple[float | None, ...] = (1.0, 10.0, 60.0, 300.0, 600.0, 3600.0, None)
"""Speeds ``+`` and ``-`` step through; ``None`` is max (data-driven)."""

DEFAULT_THEME = "dark"

REQUEST_PATIENCE = 2.0
"""Seconds a control request overrides the snapshot's view before it is given up."""

POLL_INTERVAL = 0.08
"""Seconds between snapshot polls: about 10 Hz, a little faster so that the screen still
refreshes at least 10 times a second when a busy engine delays the event loop's timers."""

BUSY_LOG_LINES = 40
"""Lines a log writes per update at max speed (the rest are written when it slows down)."""

NARROW_WIDTH = 100
"""Below this many columns the layout stacks its panes and hides the secondary ones."""

TINY_WIDTH = 70
"""Below this many columns the signals pane is hidden too (the events list them then)."""

SIGNALS_MIN_WIDTH = 20
"""Columns the signals pane needs (borders included) at least: in a narrow layout that
leaves it less, or less than its compact rows' time, symbol, mark and price need
(:meth:`SignalsLog.fits`), beside a wide symbols table, it is hidden as in a tiny one."""

FOOTER_DROP_ORDER = (
    "next_theme",
    "filter",
    "next_interval",
    "toggle_clock",
    "seek",
    "slower",
    "faster",
    "step",
)
"""The footer's keys that give way on a terminal too narrow for all of them, least needed
first: the footer leaves out the fewest it can, from the start of this list, so that the
others fit (``space``, ``? Help`` and ``q Quit`` always stay). Their keys still work (see
``SessionkitApp.BINDINGS``); the help screen and the palette list them."""

NOT_LIVE = ("faster", "slower", "toggle_clock", "seek")
"""Actions a live session cannot do (it follows the wall clock): the footer and the palette
leave them out in live mode; their keys only say why."""

FINISHED_HIDDEN = ("toggle_pause", "step", "faster", "slower", "toggle_clock")
"""The engine's controls, which a finished run (completed, stopped, error) has nothing for:
the footer leaves them out then; their keys only say why."""

PALETTE_KEY_CELLS = 12
"""Cells of the footer's ``^p palette`` key (docked right, in a wide footer only): its
border, ``^p palette`` and a cell of padding."""


def footer_cells(keys: Iterable[tuple[str, str]], *, compact: bool) -> int:
    """Cells the footer's keys take, given as (key as shown, description), as Textual's
    footer lays them out: `` key description `` each, or ``key description`` one cell apart
    when ``compact``."""
    widths = [cell_len(key) + cell_len(description) for key, description in keys]
    if compact:
        return sum(width + 2 for width in widths) - 1 if widths else 0
    return sum(width + 3 for width in widths)


FINISHED_STATES = {
    "completed": "The run is complete",
    "stopped": "The run was stopped",
    "error": "The run ended with an error",
}
"""How a control on a finished run words its final state."""


def replayed(snapshot: Snapshot, started_at: date | None) -> str:
    """What a completed run replayed: every session, or those from where a go-to
    restarted the engine (``started_at``) to the end."""
    count = snapshot.session_count
    first = 1
    if started_at is not None and started_at in snapshot.sessions:
        first = snapshot.sessions.index(started_at) + 1
    if first == 1:
        return f"{count} session(s) replayed"
    which = f"session {count}" if first == count else f"sessions {first}-{count}"
    return f"{count - first + 1} session(s) replayed: {which}, from {started_at}"


class SessionLike(Protocol):
    """What the app needs of :class:`sessionkit.engine.pipeline.session.Session`."""

    def start(self) -> Any: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def step(self, n: int = 1) -> None: ...
    def set_speed(self, speed: float | None) -> None: ...
    def set_clock(self, clock: str) -> None: ...
    def stop(self, timeout: float = 1.0) -> bool: ...
    def snapshot(self, *, symbols: Collection[str] | None = None) -> Snapshot: ...
    def series(self, symbol: str, interval: str, n: int = 500) -> Series: ...
    def gaps(self, symbol: str) -> tuple[GapSpan, ...]: ...


def next_speed(clock: str, speed: float | None, direction: int) -> float | None:
    """The preset after (``direction`` 1) or before (-1) the current speed.

    Data-driven counts as the fastest preset (``None``). Returns the current speed when
    there is nothing faster or slower.
    """
    if clock == "data-driven" or speed is None:
        return None if direction > 0 else SPEED_PRESETS[-2]
    if direction > 0:
        return next((p for p in SPEED_PRESETS[:-1] if p > speed + 1e-9), None)
    slower = [p for p in SPEED_PRESETS[:-1] if p < speed - 1e-9]
    return slower[-1] if slower else speed


@dataclass(frozen=True, slots=True)
class ControlsView:
    """The engine's controls as the app believes them to be."""

    paused: bool
    clock: str
    speed: float | None
    """None when data-driven."""


ENGINE_SWITCH_INTERVAL = 0.0005
"""GIL switch interval (seconds) while the monitor runs: see ``SessionkitApp.on_mount``."""


class SessionkitApp(App[None]):
    """Live monitor of one sessionkit session."""

    TITLE = "sessionkit"
    CSS_PATH = "app.tcss"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [
        (0, "-tiny"),
        (TINY_WIDTH, "-narrow"),
        (NARROW_WIDTH, "-wide"),
    ]
    ENABLE_COMMAND_PALETTE = True
    AUTO_FOCUS = "#symbols"
    """The symbols table has the focus from the start (one focus change, one footer)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_pause('pause')", "Pause", tooltip="Pause or resume the engine"),
        Binding("space", "toggle_pause('resume')", "Resume", tooltip="Resume the paused engine"),
        Binding("n", "step", "Step", tooltip="Advance exactly one simulated instant (pauses)"),
        Binding(
            "plus,equals_sign",
            "faster",
            "Faster",
            key_display="+",
            tooltip="Next speed preset: 1x 10x 60x 300x 600x 3600x max",
        ),
        Binding(
            "minus,underscore", "slower", "Slower", key_display="-", tooltip="Previous speed preset"
        ),
        Binding("m", "toggle_clock", "Clock", tooltip="Switch data-driven / clock-driven"),
        Binding("i", "next_interval", "Interval", tooltip="Chart the next bar interval"),
        Binding(
            "c", "toggle_candles", "Candles", show=False, tooltip="Price as a close line or candles"
        ),
        *(
            Binding(
                str(n),
                f"toggle_overlay({n})",
                "Overlay",
                show=False,
                key_display="1-9",
                tooltip="Hide or show the n-th overlay of the price chart (its legend numbers them)",
            )
            for n in range(1, 10)
        ),
        Binding(
            "right_square_bracket",
            "zoom(1)",
            "Zoom in",
            show=False,
            key_display="]",
            tooltip="Zoom the charts in: session, then a half, quarter, eighth of it",
        ),
        Binding(
            "left_square_bracket",
            "zoom(-1)",
            "Zoom out",
            show=False,
            key_display="[",
            tooltip="Zoom the charts out (to the session with its history)",
        ),
        Binding("slash", "filter", "Filter", key_display="/", tooltip="Filter the symbols by text"),
        Binding(
            "escape", "clear_filter", "Clear filter", show=False, tooltip="Clear the symbols filter"
        ),
        Binding(
            "s",
            "sort",
            "Sort",
            show=False,
            tooltip="Sort the symbols by the next column (or click a header; again: reversed)",
        ),
        Binding(
            "enter",
            "detail",
            "Detail",
            show=False,
            tooltip="The charted symbol's gaps, quality per interval and indicator values",
        ),
        Binding(
            "d",
            "diagnostics",
            "Diagnostics",
            show=False,
            tooltip="Where each engine thread spends its time (busy / waiting)",
        ),
        Binding(
            "g",
            "seek",
            "Go to",
            tooltip="Go to a date: the engine restarts at that session (same speed and pause)",
        ),
        Binding("t", "next_theme", "Theme", tooltip="Switch to the next theme"),
        Binding("question_mark", "help", "Help", key_display="?", tooltip="Show this help"),
        Binding("q", "quit", "Quit", tooltip="Stop the engine and quit"),
        Binding(
            "up",
            "previous_symbol",
            "Previous symbol",
            show=False,
            key_display="↑",
            tooltip="Chart the previous symbol (or click a row)",
        ),
        Binding(
            "down",
            "next_symbol",
            "Next symbol",
            show=False,
            key_display="↓",
            tooltip="Chart the next symbol (or click a row)",
        ),
    ]
    """
    | Key(s) | Description |
    | :- | :- |
    | space | Pause or resume the engine. |
    | n | Step one simulated instant (pauses first if running). |
    | + | Next faster speed preset (1x, 10x, 60x, 300x, 600x, 3600x, max). |
    | - | Next slower speed preset. |
    | m | Switch between data-driven and clock-driven. |
    | i | Chart the next interval (1m, 5m, 15m ...). |
    | t | Switch to the next theme. |
    | ? | Show the help screen. |
    | q | Stop the engine and quit. |
    | up, down | Chart the previous / next symbol. |
    """
    # The droppable actions' keys once more, never in the footer: where the footer leaves
    # one out (a narrow terminal, live mode), check_action turns its listed binding off and
    # this one on.
    BINDINGS += [
        replace(binding, action=f"unlisted('{binding.action}')", show=False)
        for binding in BINDINGS
        if isinstance(binding, Binding) and binding.action in FOOTER_DROP_ORDER
    ] + [Binding("space", "unlisted('toggle_pause')", "Pause", show=False)]

    symbol: reactive[str | None] = reactive(None, init=False)
    """The charted symbol (the symbols table's cursor row)."""

    interval: reactive[str | None] = reactive(None, init=False)
    """The charted bar interval."""

    def __init__(
        self,
        session: SessionLike,
        *,
        themes: ThemeSet,
        theme: str = DEFAULT_THEME,
        figures: fmt.Figures | None = None,
        poll_interval: float = POLL_INTERVAL,
        stop_timeout: float = 1.0,
        symbol: str | None = None,
        interval: str | None = None,
        start_engine: bool = True,
    ) -> None:
        super().__init__()
        self.session = session
        """The engine facade (any object with the :class:`SessionLike` API)."""
        self.theme_set = themes
        self.figures = figures or fmt.Figures()
        self.poll_interval = poll_interval
        self.poll_timer: Timer | None = None
        """The timer that polls the engine's snapshot, once mounted (tests pause it to hold
        a frame)."""
        self.schedule = PaneSchedule()
        """Which pane groups are behind and when they are due (see :mod:`.refresh`)."""
        self.stop_timeout = stop_timeout
        self.start_engine = start_engine
        self.latest: Snapshot | None = None
        """The last snapshot shown."""
        self.polls = 0
        """How many polls applied a new snapshot (for tests and benchmarks)."""
        self.tracker = ProgressTracker()
        """The run's progress, ETA and recent rates."""
        self._initial_symbol = symbol
        self._initial_interval = interval
        self._initial_theme = theme
        self._version = -1
        self._chart_key: tuple[Any, ...] | None = None
        self._reported_error = False
        self._reported_final: str | None = None
        self._snapshot_failed = False
        self._quitting = False
        self._seeking = False
        self._started_at: date | None = None
        """The session a go-to restarted the engine at (None: the run's first)."""
        self._shown_paused = False
        """The pause state the footer shows (it starts with ``space Pause``)."""
        self._narrow = False
        """The terminal is narrower than :data:`NARROW_WIDTH` (compact signals)."""
        self._live = False
        """The session is live (its snapshot says so): the :data:`NOT_LIVE` keys go."""
        self._run_finished = False
        """The run has ended (completed, stopped, error): the :data:`FINISHED_HIDDEN` keys go."""
        self._footer_hidden: frozenset[str] = frozenset()
        """Actions whose keys the footer leaves out now (see :meth:`_fit_footer`)."""
        self._requested: ControlsView | None = None
        self._requested_at = 0.0
        self._clock_speed: float | None = None
        self._kinds = indicator_kinds(getattr(session, "config", None))
        for entry in themes.themes:
            self.register_theme(entry)
        # Textual's built-in themes have no chart colours: theirs follow their own colours.
        for entry in list(self.available_themes.values()):
            self.register_theme(with_chart_colours(entry))

    # -- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Horizontal(id="main"):
            with Vertical(id="side"):
                yield SymbolFilter(id="filter")
                yield SymbolsTable(id="symbols")
                yield SubscriptionsTable(id="subscriptions", figures=self.figures)
                yield MetricsPane(id="metrics")
                yield SignalsLog(id="signals")
            with Vertical(id="charts"):
                yield PriceChart(id="price")
                yield OscillatorChart(id="oscillator")
        yield EventLog(id="log", figures=self.figures)
        yield Footer()

    def on_mount(self) -> None:
        self.theme = self._initial_theme
        self.query_one("#symbols").border_title = "Symbols"
        self.query_one("#subscriptions").border_title = "Subscriptions"
        self.query_one("#subscriptions").border_subtitle = "waits in ms"
        self.query_one("#signals").border_title = "Signals"
        self.query_one("#metrics").border_title = "Metrics"
        self.query_one("#metrics").border_subtitle = metrics_caption("initializing")
        self.query_one("#log").border_title = "Events"
        log = self.query_one(EventLog)
        for failure in self.theme_set.failures:
            log.note(str(failure), "warning")
            self.notify(str(failure), title="Theme skipped", severity="warning", timeout=8)
        # The engine's threads hand a step over many times a second; while this thread
        # renders, each hand-off would wait up to the GIL switch interval (5 ms). A shorter
        # interval lets the engine keep its pace under the UI (restored on unmount).
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(ENGINE_SWITCH_INTERVAL)
        # Whether the signals fit beside the symbols table is decided on the layout done
        # (the table's width, whatever sizes the terminal had before), and again when the
        # signals' rows need other room (a longer symbol or price).
        self.screen.screen_layout_refresh_signal.subscribe(
            self, lambda _screen: self._fit_signals()
        )
        self.watch(
            self.query_one(SignalsLog), "row_cells", lambda _cells: self._fit_signals(), init=False
        )
        if self.start_engine:
            # Once the first frame is drawn: the engine's load and the app's start-up
            # would otherwise share the GIL, delaying both (the command line starts the
            # engine earlier still, before the UI's modules load).
            self.call_after_refresh(self._start_engine)
        self.poll()
        self.poll_timer = self.set_interval(self.poll_interval, self.poll, name="poll-snapshot")

    def _start_engine(self) -> None:
        if not self._quitting:
            self.session.start()

    def on_unmount(self) -> None:
        sys.setswitchinterval(self._switch_interval)

    def on_resize(self, event: events.Resize) -> None:
        """The footer keeps the keys that fit (:meth:`_fit_footer`); under
        :data:`NARROW_WIDTH` columns the signals are in compact rows; where the signals
        pane is hidden, the events list the signals."""
        self._narrow = event.size.width < NARROW_WIDTH
        self.query_one(SignalsLog).narrow = self._narrow
        self._fit_footer(event.size.width)
        self._fit_signals()  # again once laid out at the new size (the layout's signal)

    def _fit_footer(self, width: int | None = None) -> None:
        """Leave out of the footer the keys a live session cannot use, and as few of
        :data:`FOOTER_DROP_ORDER` as it takes for the rest to fit ``width`` columns: in the
        wide footer with the palette's key if they fit, else in the compact one."""
        width = self.size.width if width is None else width
        hidden = set(NOT_LIVE) if self._live else set()
        if self._run_finished:
            hidden.update(FINISHED_HIDDEN)
        keys: dict[str, tuple[str, str]] = {}
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            if not binding.show or binding.action in hidden:
                continue
            key = (self.get_key_display(binding), binding.description)
            action = binding.action.partition("(")[0]  # Pause / Resume: the wider
            if action not in keys or cell_len("".join(key)) > cell_len("".join(keys[action])):
                keys[action] = key
        compact = True  # if nothing fits: the least that does not
        for action in (*FOOTER_DROP_ORDER, None):
            if footer_cells(keys.values(), compact=False) + PALETTE_KEY_CELLS <= width:
                compact = False
                break
            if footer_cells(keys.values(), compact=True) <= width:
                break
            if action is not None and keys.pop(action, None) is not None:
                hidden.add(action)
        footer = self.query_one(Footer)
        if hidden != self._footer_hidden or compact != footer.compact:
            footer.compact = compact
            footer.show_command_palette = not compact
            self._footer_hidden = frozenset(hidden)
            self.refresh_bindings()  # the footer composes its keys again

    def _fit_signals(self) -> None:
        """Hide the signals pane where it would get fewer than :data:`SIGNALS_MIN_WIDTH`
        columns, or too few for its compact rows' time, symbol, mark and whole price (a
        narrow layout beside a wide symbols table, or the filter), as in a tiny terminal;
        the events list the signals wherever the pane is hidden.

        Called on a resize and after every layout of the screen: the room is what the
        panes beside the signals take as laid out now (a table laid out in a smaller
        terminal is narrower until the layout at the new size)."""
        if not self.is_running:
            return
        width = self.size.width
        signals = self.query_one(SignalsLog)
        cramped = False
        if TINY_WIDTH <= width < NARROW_WIDTH:
            side = self.query_one("#side")
            beside = sum(
                pane.outer_size.width
                for pane in side.children
                if pane is not signals and pane.display
            )
            room = width - beside
            cramped = room < SIGNALS_MIN_WIDTH or not signals.fits(room)
        signals.set_class(cramped, "-cramped")
        log = self.query_one(EventLog)
        listed = width < TINY_WIDTH or cramped
        if log.hide_signals == listed:
            log.hide_signals = not listed
            log.restyle()
            self.schedule.expedite("logs")

    # -- polling ------------------------------------------------------------------------

    def poll(self, *, force: bool = False) -> None:
        """Take a snapshot; update the panes whose data changed. Never blocks.

        The status bar follows every new snapshot. Tables, logs and charts follow at their
        own cadence (:class:`~sessionkit.tui.refresh.PaneSchedule`): while the engine
        streams at max speed they would otherwise take the CPU (and the GIL) the engine
        needs. The snapshot reads only the symbols the panes about to be shown need (the
        charted one, and the table's rows in view). A pause, the end of the session or an
        error shows everything at once; ``force`` too.
        """
        if not self.is_running:
            return
        now = time.monotonic()
        scope = None if force else self._scope(now)
        try:
            snapshot = self._snapshot(scope)
        except Exception as exc:  # the engine's problem must not take the UI down
            if not self._snapshot_failed:
                self._snapshot_failed = True
                message = f"cannot read the engine's state: {exc.__class__.__name__}: {exc}"
                self.query_one(EventLog).note(message, "error")
                self.notify(message, title="Engine", severity="error", timeout=10)
            return
        tables = scope is None or scope[1]
        changed = snapshot.version != self._version
        self.tracker.update(snapshot, now)
        if changed or force:
            previous = self.latest
            if snapshot.state in RESTING_STATES and (
                previous is None or previous.state != snapshot.state
            ):
                force = True  # the engine came to rest: show all of it at once
                if scope is not None:
                    snapshot, tables = self._snapshot(None), True
            self._version = snapshot.version
            self.latest = snapshot
            self.polls += 1
            self.schedule.mark_stale(PANES if tables else PANES[1:])
            self._show_status(snapshot)
        self.query_one(StatusBar).show(snapshot, self.figures, self.tracker, now)
        if self.schedule.stale:
            busy = is_busy(snapshot) and not force
            with self.batch_update():
                for pane in self.schedule.due(now, busy=busy, force=force):
                    if pane == "tables" and not tables:
                        continue  # this snapshot does not hold the table's rows
                    if self._show_pane(pane, snapshot, force=force):
                        self.schedule.shown(pane, now)
                        if busy:
                            break  # one group a poll at max speed

    def _scope(self, now: float) -> tuple[frozenset[str], bool] | None:
        """The symbols the next snapshot reads, and whether they cover the symbols table;
        None reads every symbol."""
        if self.latest is None:
            return None
        symbols = {self.symbol} if self.symbol is not None else set()
        if "tables" not in self.schedule.next_due(now, busy=is_busy(self.latest)):
            return frozenset(symbols), False
        needed = self.query_one(SymbolsTable).symbols_needed()
        if needed is None:
            return None
        return frozenset(symbols.union(needed)), True

    def _snapshot(self, scope: tuple[frozenset[str], bool] | None) -> Snapshot:
        """The session's snapshot: of the ``scope``'s symbols only, if one is given."""
        if scope is not None:
            return self.session.snapshot(symbols=scope[0])
        return self.session.snapshot()

    def sync(self) -> None:
        """Poll now and show everything, whatever the cadence.

        For tests that have driven the engine to a fixed point (then ``await pilot.pause()``).
        """
        self.poll(force=True)

    def _show_status(self, snapshot: Snapshot) -> None:
        if self.symbol is None and snapshot.symbols:
            wanted = self._initial_symbol
            self.symbol = wanted if wanted in snapshot.symbols else snapshot.symbols[0]
            self.query_one(SymbolsTable).select(self.symbol)
        if self.interval is None and snapshot.intervals:
            wanted = self._initial_interval
            self.interval = wanted if wanted in snapshot.intervals else snapshot.intervals[0]
        self._settle_requests(snapshot)
        self._follow_pause()
        if (snapshot.mode == "live") != self._live or snapshot.finished != self._run_finished:
            self._live = snapshot.mode == "live"
            self._run_finished = snapshot.finished
            self._fit_footer()
        if snapshot.clock == "clock-driven" and snapshot.speed is not None:
            self._clock_speed = snapshot.speed
        self._report_state(snapshot, self.query_one(EventLog))

    def _show_pane(self, pane: str, snapshot: Snapshot, *, force: bool) -> bool:
        """Bring one group of panes up to ``snapshot``; False if it must be tried again."""
        if pane == "tables":
            self.query_one(SymbolsTable).show(snapshot)
            # The chart's title says the table's last price, from this same snapshot (the
            # chart itself is drawn at its own cadence, from another).
            self.query_one(PriceChart).show_last(self.symbol, last_price(snapshot, self.symbol))
            self.query_one(SubscriptionsTable).show(snapshot)
            self.query_one(MetricsPane).show(snapshot)
        elif pane == "logs":
            limit = None if force or not is_busy(snapshot) else BUSY_LOG_LINES
            dated = snapshot.session_count > 1
            self.query_one(SignalsLog).show(
                snapshot.signals,
                snapshot.timezone,
                limit=limit,
                dated=dated,
                symbols=snapshot.symbols,
            )
            self.query_one(EventLog).show(
                snapshot.events, snapshot.timezone, limit=limit, dated=dated
            )
        elif pane == "charts":
            key = chart_key(snapshot, self.symbol, self.interval)
            if key == self._chart_key and not force:
                return True
            if not self.symbol or not self.interval:
                return False
            data = build_chart_data(
                self.session, snapshot, self.symbol, self.interval, self._kinds, key
            )
            if data is None:
                return False
            self._chart_key = key
            self.query_one(PriceChart).show(data)
            self.query_one(OscillatorChart).show(data)
        return True

    def _report_state(self, snapshot: Snapshot, log: EventLog) -> None:
        if snapshot.state == "error" and not self._reported_error:
            self._reported_error = True
            message = snapshot.error or "the engine stopped with an error"
            if not any(message in event.message for event in snapshot.events):
                log.note(f"engine error: {message}", "error")
            self.notify(message, title="Engine error", severity="error", timeout=30)
        elif snapshot.state == "completed" and self._reported_final != "completed":
            self._reported_final = "completed"
            self.notify(replayed(snapshot, self._started_at), title="Backtest complete", timeout=10)

    # -- reactions ----------------------------------------------------------------------

    def watch_symbol(self, symbol: str | None) -> None:
        self._refresh_chart()

    def watch_interval(self, interval: str | None) -> None:
        self._refresh_chart()

    def watch_theme(self, theme: str) -> None:
        self.call_after_refresh(self._restyle)

    def _restyle(self) -> None:
        if not self.is_running:
            return
        self.query_one(SubscriptionsTable).restyle()
        self.query_one(SignalsLog).restyle()
        self.query_one(EventLog).restyle()
        self.poll(force=True)

    def _refresh_chart(self) -> None:
        """Re-plot now (the user picked another symbol or interval)."""
        if self.latest is None or not self.is_running:
            return
        self.schedule.mark_stale(("charts",))
        with self.batch_update():
            if self._show_pane("charts", self.latest, force=False):
                self.schedule.shown("charts", time.monotonic())

    def on_symbols_table_selected(self, message: SymbolsTable.Selected) -> None:
        self.symbol = message.symbol

    def on_symbols_table_needs_data(self, _message: SymbolsTable.NeedsData) -> None:
        """Rows without figures came into view: read them now."""
        self.schedule.expedite("tables")
        self.poll()

    # -- controls -----------------------------------------------------------------------

    def _control(self, call: Callable[..., Any], *args: Any) -> bool:
        """Call a session control; a refused one becomes a warning, never a crash."""
        try:
            call(*args)
        except (ValueError, RuntimeError) as exc:
            self.notify(str(exc), title="Not possible", severity="warning", timeout=4)
            return False
        self.set_timer(0.02, self.poll)
        return True

    def controls_view(self) -> ControlsView:
        """Paused, clock and speed as the user last asked, or as the last snapshot says.

        A control takes effect in the engine a moment later; keys pressed in between must
        build on what was asked (two quick ``+`` go two presets up), not on a stale frame.
        """
        snapshot = self.latest or self.session.snapshot()
        current = ControlsView(
            paused=snapshot.state == "paused",
            clock=snapshot.clock,
            speed=None if snapshot.clock == "data-driven" else snapshot.speed,
        )
        return self._requested or current

    def _settle_requests(self, snapshot: Snapshot) -> None:
        """Forget the pending request once the engine shows it (or has ended)."""
        wanted = self._requested
        if wanted is None:
            return
        speed = None if snapshot.clock == "data-driven" else snapshot.speed
        speed_known = wanted.speed is not None or wanted.clock == "data-driven"
        if (
            snapshot.finished
            or time.monotonic() - self._requested_at > REQUEST_PATIENCE
            or (
                (snapshot.state == "paused") == wanted.paused
                and snapshot.clock == wanted.clock
                and (speed == wanted.speed or not speed_known)
            )
        ):
            self._requested = None

    def _request(self, **changes: Any) -> None:
        self._requested = replace(self.controls_view(), **changes)
        self._requested_at = time.monotonic()
        self._follow_pause()

    def _follow_pause(self) -> None:
        """Refresh the footer's pause/resume key when the paused state changed."""
        paused = self.controls_view().paused
        if paused != self._shown_paused:
            self._shown_paused = paused
            self.refresh_bindings()

    def _finished(self) -> bool:
        snapshot = self.latest
        if snapshot is not None and snapshot.finished:
            self.notify(
                f"{FINISHED_STATES.get(snapshot.state, f'The run ended ({snapshot.state})')}: "
                "nothing to control (g goes to a date).",
                title="Not possible",
                severity="warning",
                timeout=3,
            )
            return True
        return False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer shows ``space Pause`` while running and ``space Resume`` while paused;
        it leaves out the keys :meth:`_fit_footer` chose (their unlisted twins take the
        keys)."""
        if action == "toggle_pause" and parameters:
            if action in self._footer_hidden:
                return False
            paused = self.controls_view().paused if self.latest is not None else False
            return (parameters[0] == "resume") == paused
        if action in FOOTER_DROP_ORDER:
            return action not in self._footer_hidden
        if action == "unlisted":
            return parameters[0] in self._footer_hidden
        return True

    def action_unlisted(self, action: str) -> None:
        """Run a :data:`FOOTER_DROP_ORDER` action whose key the footer does not show."""
        if action in FOOTER_DROP_ORDER or action in FINISHED_HIDDEN:
            getattr(self, f"action_{action}")()

    def action_toggle_pause(self, _label: str = "") -> None:
        """Pause a running engine, resume a paused one."""
        if self._finished():
            return
        if self.controls_view().paused:
            if self._control(self.session.resume):
                self._request(paused=False)
        elif self._control(self.session.pause):
            self._request(paused=True)

    def action_step(self) -> None:
        """Advance exactly one simulated instant (the engine pauses first if running)."""
        if not self._finished() and self._control(self.session.step):
            self._request(paused=True)

    def _live_refused(self) -> bool:
        """In live mode: say that the speed and the clock cannot change (True)."""
        if not self._live:
            return False
        self.notify(
            "A live session follows the wall clock: its speed and clock cannot change.",
            title="Not possible",
            severity="warning",
            timeout=3,
        )
        return True

    def _set_speed(self, direction: int) -> None:
        if self._finished() or self._live_refused():
            return
        view = self.controls_view()
        target = next_speed(view.clock, view.speed, direction)
        if target == view.speed:
            self.bell()
            self.notify(f"Already at {fmt.speed(view.clock, view.speed)}.", timeout=2)
            return
        self.action_set_speed(target)

    def action_faster(self) -> None:
        """Next faster speed preset (max is data-driven)."""
        self._set_speed(+1)

    def action_slower(self) -> None:
        """Next slower speed preset (from max: 3600x)."""
        self._set_speed(-1)

    def action_set_speed(self, speed: float | None) -> None:
        """Set a speed directly: a number is clock-driven, ``None`` is max (data-driven)."""
        if self._finished() or self._live_refused():
            return
        if self._control(self.session.set_speed, speed):
            clock = "data-driven" if speed is None else "clock-driven"
            self._request(clock=clock, speed=speed)
            self.notify(f"Speed {fmt.speed(clock, speed)}", timeout=2)

    def action_toggle_clock(self) -> None:
        """Switch between data-driven and clock-driven (keeping the last speed)."""
        if self._finished() or self._live_refused():
            return
        view = self.controls_view()
        target = "clock-driven" if view.clock == "data-driven" else "data-driven"
        if self._control(self.session.set_clock, target):
            speed = None
            if target == "clock-driven":
                speed = self._last_clock_speed(view)
            self._request(clock=target, speed=speed)
            self.notify(f"Clock: {target}", timeout=2)

    def _last_clock_speed(self, view: ControlsView) -> float | None:
        """The clock-driven speed the engine returns to (its last one)."""
        if view.speed is not None:
            return view.speed
        return self._clock_speed

    def action_next_interval(self) -> None:
        """Chart the next bar interval."""
        intervals = self.latest.intervals if self.latest else ()
        if not intervals:
            return
        index = intervals.index(self.interval) if self.interval in intervals else -1
        self.interval = intervals[(index + 1) % len(intervals)]

    def _move_symbol(self, delta: int) -> None:
        table = self.query_one(SymbolsTable)
        if table.row_count:
            table.move_cursor(row=(table.cursor_row + delta) % table.row_count)

    def action_previous_symbol(self) -> None:
        """Chart the previous symbol."""
        self._move_symbol(-1)

    def action_next_symbol(self) -> None:
        """Chart the next symbol."""
        self._move_symbol(+1)

    def action_toggle_candles(self) -> None:
        """Draw the price as candles or as a close line."""
        self.query_one(PriceChart).action_toggle_candles()

    def action_detail(self) -> None:
        """Open the charted symbol's detail screen."""
        symbol = self.symbol
        if symbol is None or isinstance(self.screen, DetailScreen):
            return

        def read() -> tuple[Snapshot, tuple[GapSpan, ...]]:
            return self.session.snapshot(), self.session.gaps(symbol)

        self.push_screen(DetailScreen(symbol, read))

    def action_diagnostics(self) -> None:
        """Open the engine's diagnostics (time per thread)."""
        if not isinstance(self.screen, DiagnosticsScreen):
            self.push_screen(DiagnosticsScreen(lambda: self.session.snapshot(), self.figures))

    def on_data_table_row_selected(self, event: SymbolsTable.RowSelected) -> None:
        """``enter`` (or a click on the selected row) in the symbols table: its detail."""
        if isinstance(event.data_table, SymbolsTable):
            event.stop()
            self.action_detail()

    def action_seek(self) -> None:
        """Ask for a date, then restart the engine at that session."""
        snapshot = self.latest
        if snapshot is None or not snapshot.sessions or self._seeking:
            return
        if snapshot.mode == "live" or not hasattr(self.session, "restarted_at"):
            self.notify("A live session cannot go to another date.", title="Not possible")
            return

        def chosen(day: date | None) -> None:
            if day is not None:
                self.seek(day)

        self.push_screen(SeekScreen(snapshot.sessions, snapshot.session_date), chosen)

    def on_key(self, event: events.Key) -> None:
        """Printable keys typed in the same burst as ``g`` go through the monitor's screen
        (its focused widget had them before the prompt was up) and would be lost: they go
        into the prompt. Once its input has the focus, no printable key gets here."""
        if isinstance(self.screen, SeekScreen) and event.is_printable and event.character:
            event.prevent_default()
            event.stop()
            self.screen.type_early(event.character)

    def seek(self, day: date) -> None:
        """Restart the engine at session ``day`` (off the event loop), keeping the config,
        the speed and the pause state."""
        if self._seeking or self._quitting:
            return
        self._seeking = True
        self.query_one(EventLog).note(f"going to {day} ...")
        self._restart_at(day)

    @work(thread=True, exclusive=True, exit_on_error=False, group="engine", description="seek")
    def _restart_at(self, day: date) -> None:
        old = self.session
        try:
            new = old.restarted_at(day)  # type: ignore[attr-defined]
        except Exception as exc:  # a database that went away, a bad day
            self.post_message(SeekFailed(f"{exc.__class__.__name__}: {exc}"))
            return
        old.stop(self.stop_timeout)
        if self._quitting:
            new.stop(self.stop_timeout)
            return
        self.post_message(SessionReplaced(new, day))

    def on_seek_failed(self, message: SeekFailed) -> None:
        self._seeking = False
        self.query_one(EventLog).note(f"cannot go there: {message.error}", "error")
        self.notify(message.error, title="Go to date", severity="error", timeout=8)

    def on_session_replaced(self, message: SessionReplaced) -> None:
        """Show the new session from scratch (the old one is stopped)."""
        self._seeking = False
        if not self.is_running or self._quitting:
            message.session.stop(self.stop_timeout)
            return
        self.session = message.session
        self._started_at = message.day
        self._version = -1
        self._chart_key = None
        self._reported_error = False
        self._reported_final = None
        self._requested = None
        self.tracker.reset()
        for log in (self.query_one(SignalsLog), self.query_one(EventLog)):
            log.restyle()
        self.session.start()
        self.notify(f"Restarted at {message.day}", title="Go to date", timeout=3)
        self.poll(force=True)

    def action_filter(self) -> None:
        """Show the symbols filter and type into it."""
        self.query_one(SymbolFilter).open()

    def action_clear_filter(self) -> None:
        """Clear the symbols filter (escape)."""
        self.query_one(SymbolFilter).action_clear_filter()

    def action_sort(self) -> None:
        """Sort the symbols by the next column."""
        self.query_one(SymbolsTable).action_cycle_sort()

    def on_input_changed(self, event: SymbolFilter.Changed) -> None:
        if isinstance(event.input, SymbolFilter):
            self.query_one(SymbolsTable).filter_text = event.value

    def on_input_submitted(self, event: SymbolFilter.Submitted) -> None:
        if isinstance(event.input, SymbolFilter):
            self.query_one(SymbolsTable).focus()

    def on_symbol_filter_cleared(self, _event: SymbolFilter.Cleared) -> None:
        table = self.query_one(SymbolsTable)
        table.filter_text = ""
        table.focus()

    def action_zoom(self, direction: int) -> None:
        """Zoom both charts in (1) or out (-1), together."""
        charts = [self.query_one(PriceChart), self.query_one(OscillatorChart)]
        zoom = max(0, min(PriceChart.ZOOM_LEVELS - 1, charts[0].zoom + direction))
        if zoom == charts[0].zoom:
            self.bell()
            return
        for chart in charts:
            chart.zoom = zoom

    def action_toggle_overlay(self, number: int) -> None:
        """Hide or show the ``number``-th overlay of the price chart."""
        self.query_one(PriceChart).action_toggle_overlay(number)

    def action_next_theme(self) -> None:
        """Switch to the next of the loaded themes."""
        names = self.theme_set.names
        if not names:
            return
        index = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(index + 1) % len(names)]
        self.notify(f"Theme {self.theme}", timeout=2)

    def action_use_theme(self, name: str) -> None:
        """Switch to a theme by name (command palette)."""
        self.theme = name

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """Save an SVG of the screen: in ~/Downloads if it exists, else the current folder;
        the notification says where."""
        if path is None:
            downloads = Path.home() / "Downloads"
            path = str(downloads if downloads.is_dir() else Path.cwd())
        try:
            saved = self.save_screenshot(filename, path)
        except OSError as exc:
            self.notify(f"cannot save the screenshot in {path}: {exc}", severity="error")
            return
        self.notify(saved, title="Screenshot saved", timeout=6)

    def action_help(self) -> None:
        """Show the help screen."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.key_help()))

    def key_help(self) -> list[tuple[str, str, str]]:
        """(keys, description, help) of every binding, for the help screen."""
        rows: list[tuple[str, str, str]] = []
        shown: set[str] = set()
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            keys = binding.key_display or binding.key
            if keys in shown:
                continue  # one row for 1-9
            shown.add(keys)
            rows.append((keys, binding.description, binding.tooltip))
        rows.append(("tab", "Focus", "Move the focus: symbols, signals, events (to scroll)"))
        rows.append(("ctrl+p", "Commands", "Open the command palette"))
        return rows

    async def action_quit(self) -> None:
        """Stop the engine (joining its threads off the event loop), then exit."""
        if self._quitting:
            return
        self._quitting = True
        self.query_one(EventLog).note("stopping the engine ...")
        self._stop_engine()
        # Belt and braces: exit even if the worker cannot report back.
        self.set_timer(self.stop_timeout + 0.5, self.exit)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="engine",
        description="stop the engine",
    )
    def _stop_engine(self) -> bool:
        joined = self.session.stop(self.stop_timeout)
        return joined

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The engine was stopped (or stopping it failed): leave."""
        if event.worker.name == "_stop_engine" and event.state in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
        ):
            self.exit()

    # -- command palette ----------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's own commands, then every monitor control (see :meth:`palette_commands`).

        Textual's Screenshot saves in the user's downloads folder and fails without one:
        it is replaced by :meth:`action_screenshot` (``~/Downloads``, else the current
        folder; says where), run a moment later so that the palette is gone from the picture.
        """
        for command in super().get_system_commands(screen):
            if command.title == "Screenshot":
                command = command._replace(
                    help="Save an SVG of the screen (in ~/Downloads, else the current folder)",
                    callback=lambda: self.set_timer(0.1, self.action_screenshot),
                )
            yield command
        for title, help_text, callback in self.palette_commands():
            yield SystemCommand(title, help_text, callback)

    def palette_commands(self) -> Iterable[tuple[str, str, Callable[[], Any]]]:
        """(title, help, callback) of every command the palette offers (in live mode, not
        the :data:`NOT_LIVE` ones).

        The palette lists its commands sorted by title before anything is typed: the speed
        presets' numbers are right-aligned (``Speed    1x`` ... ``Speed 3600x``, then
        ``Speed max``), so that they sort as numbers."""
        yield ("Pause / resume", "Pause or resume the engine (space)", self.action_toggle_pause)
        yield ("Step one instant", "Advance one simulated instant (n)", self.action_step)
        if not self._live:
            yield ("Faster", "Next speed preset (+)", self.action_faster)
            yield ("Slower", "Previous speed preset (-)", self.action_slower)
            yield ("Toggle clock mode", "Data-driven / clock-driven (m)", self.action_toggle_clock)
        yield ("Next interval", "Chart the next bar interval (i)", self.action_next_interval)
        yield ("Next theme", "Switch to the next theme (t)", self.action_next_theme)
        yield ("Help", "Keys and panes (?)", self.action_help)
        yield (
            "Diagnostics",
            "Where each engine thread spends its time (d)",
            self.action_diagnostics,
        )
        if not self._live:
            yield ("Go to date", "Restart the engine at a session of the run (g)", self.action_seek)
            yield from self._speed_commands()
        for name in self.theme_set.names:
            yield (f"Theme {name}", "Switch theme", lambda name=name: self.action_use_theme(name))

    def _speed_commands(self) -> Iterable[tuple[str, str, Callable[[], Any]]]:
        """A palette command per speed preset, the numbers right-aligned (they sort as
        numbers), then max."""
        width = max(len(fmt.speed("clock-driven", p)) for p in SPEED_PRESETS if p is not None)
        for preset in SPEED_PRESETS:
            if preset is None:
                title, help_text = "Speed max", "Run as fast as the data allows"
            else:
                title = f"Speed {fmt.speed('clock-driven', preset):>{width}}"
                help_text = f"{fmt.plural(preset, 'simulated second')} per wall second"
            yield (title, help_text, lambda preset=preset: self.action_set_speed(preset))
        for symbol in self.latest.symbols if self.latest else ():
            yield (
                f"Chart {symbol}",
                "Select the symbol",
                lambda symbol=symbol: self.query_one(SymbolsTable).select(symbol),
            )


def create_app(
    session: SessionLike,
    *,
    theme: str = DEFAULT_THEME,
    theme_dirs: Sequence[str] = (),
    themes: ThemeSet | None = None,
    frozen_metrics: bool = False,
    poll_interval: float = POLL_INTERVAL,
    stop_timeout: float = 1.0,
    symbol: str | None = None,
    interval: str | None = None,
    start_engine: bool = True,
) -> SessionkitApp:
    """Build the monitor for ``session`` (the command line and the tests both use this).

    Parameters
    ----------
    session
        A :class:`~sessionkit.engine.pipeline.session.Session` (or an object with its API).
    theme
        Name of the starting theme (a bundled one, one from ``theme_dirs`` or a Textual
        built-in theme).
    theme_dirs, themes
        Extra folders of theme files, or an already loaded :class:`ThemeSet`.
    frozen_metrics
        Render wall-clock figures (bars/s, waits, durations in log lines) as fixed
        placeholders, so that frames are reproducible (snapshot tests).
    poll_interval
        Seconds between snapshot polls (:data:`POLL_INTERVAL`).
    stop_timeout
        Seconds the engine's threads get to end on quit.
    symbol, interval
        What to chart first (default: the first symbol, the base interval).
    start_engine
        Call ``session.start()`` when the app is mounted.

    Raises
    ------
    ValueError
        If ``theme`` is neither loaded nor a Textual built-in theme.
    """
    theme_set = themes if themes is not None else load_themes(theme_dirs)
    app = SessionkitApp(
        session,
        themes=theme_set,
        theme=theme,
        figures=fmt.FrozenFigures() if frozen_metrics else fmt.Figures(),
        poll_interval=poll_interval,
        stop_timeout=stop_timeout,
        symbol=symbol,
        interval=interval,
        start_engine=start_engine,
    )
    if theme not in app.available_themes:
        known = theme_set.names + sorted(set(app.available_themes) - set(theme_set.names))
        raise ValueError(theme_set.refusal(theme, known))
    return app
