"""Shared run-time state of one session: controls, status, event log and messages.

One :class:`Runtime` is created by :class:`~sessionkit.engine.pipeline.session.Session` on the
caller's thread and handed to every engine thread (``session_coordinator``,
``data_processor``, ``data_quality_manager``, ``analysis_engine``). Controls are changed by
the caller under a condition variable and read by the coordinator; the status and the
event log are protected by small locks; everything else is owned by one thread.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Literal

from ..config import RunClock, SessionConfig
from ..core.bar import Bar
from ..core.session_data import SessionData
from ..core.subscription import StreamSubscription
from ..core.time_manager import SimClock, TradingSession
from .snapshot import EngineEvent, ThreadStats

_ENGINE_FOLDER = str(Path(__file__).resolve().parents[1]) + os.sep
"""``.../sessionkit/engine/``, with its separator (a user's ``engine_tools/`` beside it
is not in it)."""


def engine_code(filename: str) -> bool:
    """Whether ``filename`` (a frame's) is the engine's own code: what the reports of
    where user code raised (:class:`~.analysis.AnalysisEngine`) or is stuck
    (:meth:`~.session.Session.stop`) look past."""
    return str(Path(filename).resolve()).startswith(_ENGINE_FOLDER)


class StopRequested(Exception):
    """Raised inside an engine thread when the session is being stopped."""


class StageFailed(Exception):
    """A stage's handler raised while it ran on another thread (data-driven mode).

    Carries the stage's name, so the error is reported under the component that raised.
    """

    def __init__(self, component: str, error: BaseException) -> None:
        super().__init__(component, error)
        self.component = component
        self.error = error


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """What the coordinator loaded for one session; sent to the other threads."""

    index: int
    date: date
    open: datetime
    close: datetime
    early_close: bool
    history: tuple[TradingSession, ...]
    """The trailing historical sessions, oldest first."""
    carry: bool = False
    """True when the previous session was streamed just before this one (the trading day
    before): its bars are kept, only bars older than the trailing window are dropped (the
    spec's "drop old + add new"), and indicators carry on instead of warming up again."""
    cutoffs: Mapping[tuple[str, str], datetime] = field(default_factory=dict)
    """Per (symbol, interval), the start of its trailing window (its first kept history
    session's open, or this session's open without history): older bars are dropped at this
    session's start."""
    break_start: datetime | None = None
    """Start of the session's break (UTC), None without one (see ``core.windows``)."""
    break_end: datetime | None = None
    """End of the session's break (UTC), None without one."""
    previous_open: datetime | None = None
    """The open of the trading session before this one (None: none in the calendar). An
    interval without a trailing window keeps its last bar if it is of that session."""


Recording = bool | Literal["drain"]
"""How the processor and quality manager keep rows for the export: not at all (False),
every row in lists kept to the end (True), or in deques that the export empties from
another thread as the run goes ("drain": a deque's append and popleft are thread-safe, and
each deque still has one appending thread)."""


# -- messages between the threads -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepReady:
    """Bars that became visible at one simulated instant (one step)."""

    seq: int
    time: datetime
    epoch: float
    """``time`` as epoch seconds (what series are bisected by)."""
    items: tuple[tuple[str, Bar], ...]
    """The ``(symbol, bar)`` pairs of base bars visible from ``time``."""
    published: float = 0.0
    """When the coordinator published it (:data:`monotonic`; 0: not timed): the
    last stage of its chain times the instant from here (see :attr:`Stage.step_latency`)."""


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """A session was loaded: its plan and, unless the previous bars carry on, its history."""

    seq: int
    plan: SessionPlan
    history: Mapping[str, list[Bar]] | None
    """Trailing base bars per symbol, oldest first; None when ``plan.carry`` keeps the
    bars already held (only those older than the trailing window are dropped)."""


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The session reached its close."""

    seq: int
    close: datetime


@dataclass(frozen=True, slots=True)
class Stop:
    """End the thread."""

    seq: int = 0


Message = StepReady | SessionStarted | SessionEnded | Stop
"""What the coordinator sends the other threads, in order."""


@dataclass
class Controls:
    """Pause, step, clock and stop requests, guarded by ``cond``.

    Written by any caller thread through :class:`~sessionkit.engine.pipeline.session.Session`;
    read by the coordinator, which waits on ``cond`` (never polling).
    """

    clock: RunClock
    speed: float
    paused: bool = False
    step_budget: int = 0
    stopping: bool = False
    generation: int = 0
    """Grows on every change, so the coordinator knows to re-anchor its clock."""
    clock_at: datetime | None = None
    """Where the running clock stood between two instants when a change stopped or re-timed
    it (pause, speed): it goes on from there, not from the last instant, so the simulated
    time never goes back."""
    cond: threading.Condition = field(default_factory=threading.Condition)

    def change(self, **values: object) -> None:
        """Set fields and wake the coordinator."""
        with self.cond:
            for key, value in values.items():
                setattr(self, key, value)
            self.generation += 1
            self.cond.notify_all()


class Runtime:
    """State shared by the engine threads of one session."""

    def __init__(
        self,
        config: SessionConfig,
        data: SessionData,
        *,
        sim_clock: SimClock | None = None,
        paused: bool = False,
        max_events: int = 500,
    ):
        self.config = config
        self.data = data
        speed = config.live.speed if config.mode == "live" else config.backtest.speed
        self.controls = Controls(clock=config.clock, speed=speed, paused=paused)
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._events: deque[EngineEvent] = deque(maxlen=max_events)
        self.state = "initializing"
        self.error: str | None = None
        self.version = 0
        self.sim_clock = sim_clock if sim_clock is not None else SimClock()
        """The simulated clock: set by the coordinator only, read by any thread (the
        session passes one in the exchange's zone, ``TimeManager.sim_clock()``)."""
        self.idle = threading.Event()
        """Set while the coordinator waits paused with nothing in flight, or has finished."""

    @property
    def sim_time(self) -> datetime | None:
        """The simulated instant (aware, UTC), or None before the first session."""
        sim_clock = self.sim_clock
        return sim_clock.now() if sim_clock.is_set else None

    @sim_time.setter
    def sim_time(self, t: datetime) -> None:
        self.sim_clock.set(t)

    @property
    def tz(self) -> tzinfo:
        """The exchange's zone, for display and messages."""
        return self.sim_clock.tz

    # -- status -------------------------------------------------------------------------

    def set_state(self, state: str) -> None:
        """Set the life-cycle state (never leaves a final state)."""
        with self._lock:
            if self.state in ("completed", "stopped", "error"):
                return
            self.state = state
            self.version += 1

    def log(
        self,
        message: str,
        level: Literal["info", "warning", "error"] = "info",
        *,
        sim_time: datetime | None = None,
    ) -> None:
        """Add a line to the bounded event log. Any thread.

        ``sim_time`` stamps the line with the simulated instant it is about (default: the
        coordinator's current time); a thread that lags behind passes its own.
        """
        stamp = sim_time if sim_time is not None else self.sim_time
        event = EngineEvent(datetime.now(UTC), stamp, level, message)
        with self._lock:
            self._events.append(event)
            self.version += 1

    def events(self) -> tuple[EngineEvent, ...]:
        """A copy of the event log, oldest first."""
        with self._lock:
            return tuple(self._events)

    def fail(self, where: str, exc: BaseException) -> None:
        """End the session with state ``error``: log, record and ask every thread to stop."""
        message = f"{where}: {describe_error(exc)}"
        self.log(message, "error")
        with self._lock:
            if self.state not in ("completed", "stopped", "error"):
                self.state = "error"
                self.error = message
                self.version += 1
        self.request_stop()

    def request_stop(self) -> None:
        """Ask every engine thread to stop and wake all waits."""
        self.stop_event.set()
        self.controls.change(stopping=True)

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of an error that ended a run. A database driver's error is said
    without the SQL statement SQLAlchemy appends (the driver's own words, and what to do
    when another program holds an SQLite database)."""
    orig = getattr(exc, "orig", None)
    if orig is None or not hasattr(exc, "statement"):  # not a SQLAlchemy DBAPIError
        return f"{exc.__class__.__name__}: {exc}"
    reason = str(orig)
    if "database is locked" in reason:
        reason += " (another program was writing to the database, e.g. an import)"
    elif "malformed" in reason:
        reason += " (the file is damaged: sqlite3 FILE 'PRAGMA integrity_check' says where)"
    return f"database error: {orig.__class__.__name__}: {reason}"


def next_message(q: queue.SimpleQueue, runtime: Runtime, timeout: float = 1.0) -> Message | None:
    """Block for an engine thread's next message; None once the session is stopping.

    Queued work is dropped when a stop is requested, so a thread that fell behind (a
    backlog in clock-driven mode) still ends at once. ``stop()`` also queues a
    :class:`Stop` message, which wakes the wait immediately.
    """
    stop = runtime.stop_event
    while not stop.is_set():
        try:
            return q.get(timeout=timeout)
        except queue.Empty:
            continue
    return None


monotonic = time.perf_counter
"""Wall clock for measuring durations (seconds, float)."""


class Stage(threading.Thread):
    """An engine thread that handles the coordinator's messages in order.

    The loop lives here once: take the next message (or every queued one, see
    :meth:`receive`), dispatch it to :meth:`on_step`, :meth:`on_session_start` or
    :meth:`on_session_end`, record it done, signal the coordinator through ``ready`` and
    pass it on to ``downstream``. An exception ends the session with state ``error``
    under the thread's name. In data-driven mode the coordinator calls :meth:`run_inline`
    on its own thread instead (no hand-off); the thread then just waits.

    The time spent handling (``busy``) and waiting for messages (``waiting``) is measured
    for the snapshot (:meth:`stats`).
    """

    def __init__(
        self,
        runtime: Runtime,
        name: str,
        ready: StreamSubscription | None = None,
        downstream: Stage | None = None,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.runtime = runtime
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.ready = ready
        self.downstream = downstream
        self.done_seq = 0
        """Sequence number of the last message fully handled (read by the coordinator)."""
        self.thread_busy = 0.0
        """Seconds spent handling messages on this thread."""
        self.inline_steps = 0.0
        """Seconds spent on instants on the coordinator's thread (data-driven)."""
        self.inline_other = 0.0
        """Seconds spent on session starts and ends on the coordinator's thread."""
        self.waiting = 0.0
        """Seconds this thread waited for a message (the waits that ended)."""
        self._since: tuple[Literal["busy", "waiting"], float] | None = None
        """What this thread is doing now and since when (None: not running), so that
        :meth:`stats` counts a long handling (a hung analysis) or wait in progress."""
        self.handled = 0
        self.backlog = 0
        """Messages still queued behind the one being handled (in the current batch)."""
        self.ended = threading.Event()
        """Set when this thread's :meth:`run` ends: what :class:`Session` waits on, as
        ``is_alive()`` cannot be trusted once a ``join`` of the thread was interrupted
        (CPython 3.11 then marks a running thread as stopped)."""
        self.step_latency: tuple[float, int, float] = (0.0, 0, 0.0)
        """(seconds in all, instants, the longest) from an instant's publication to this
        stage finishing it, for the instants handled on this thread when this stage ends
        the coordinator's chain (it signals ready and hands on to nobody: the analysis,
        else the processor). Written by this thread, swapped whole; any thread reads it."""

    # -- the loop ---------------------------------------------------------------------------

    def receive(self) -> list[Message] | None:
        """The next message(s) to handle, in order; None once stopping."""
        message = next_message(self.queue, self.runtime)
        return None if message is None else [message]

    def run(self) -> None:
        runtime = self.runtime
        ready, downstream = self.ready, self.downstream
        ends_chain = ready is not None and downstream is None
        try:
            while True:
                waited = monotonic()
                self._since = ("waiting", waited)
                batch = self.receive()
                started = monotonic()
                self._since = ("busy", started)
                self.waiting += started - waited
                if batch is None:
                    return
                last = len(batch) - 1
                for position, message in enumerate(batch):
                    if message.__class__ is Stop:
                        return
                    self.backlog = last - position
                    self.handle(message)
                    self.finished(message.seq)
                    if ends_chain and message.__class__ is StepReady and message.published:
                        self._time_step(message.published)
                    if ready is not None:
                        ready.signal_ready()
                    if downstream is not None:
                        downstream.queue.put(message)
                self.handled += len(batch)
                self._since = None
                self.thread_busy += monotonic() - started
                self.after_batch()
        except StopRequested:
            pass
        except BaseException as exc:  # noqa: BLE001 - the thread must not die unreported
            runtime.fail(self.name, exc)
        finally:
            self._since = None
            try:
                if ready is not None:
                    ready.cancel()
                self.at_exit()
            finally:
                self.ended.set()

    def _time_step(self, published: float) -> None:
        """Count an instant this stage ended, published at ``published``."""
        total, count, longest = self.step_latency
        took = monotonic() - published
        self.step_latency = (total + took, count + 1, max(took, longest))

    def run_inline(self, message: Message, started: float) -> float:
        """Handle ``message`` on the calling (coordinator's) thread; data-driven mode.

        ``started`` is the clock reading (:func:`monotonic`) taken just before; the one
        taken after is returned, so stages run in a row read the clock once each.

        Raises
        ------
        StageFailed
            If the handler raised; it names this stage.
        """
        self.backlog = 0
        step = message.__class__ is StepReady
        try:
            if step:  # the hot path: skip the match
                self.on_step(message)
            else:
                self.handle(message)
        except StopRequested:
            raise
        except BaseException as exc:  # noqa: BLE001 - named, whatever it is
            raise StageFailed(self.name, exc) from exc
        self.finished(message.seq)
        if self.ready is not None:
            self.ready.count_signal()
        ended = monotonic()
        if step:
            self.inline_steps += ended - started
        else:
            self.inline_other += ended - started
        self.handled += 1
        return ended

    def run_inline_batch(self, messages: list[StepReady], started: float) -> float:
        """:meth:`run_inline` for several instants in a row, the handler told how many
        follow each (:attr:`backlog`), as a batch on the stage's own thread is."""
        last = len(messages) - 1
        try:
            for position, message in enumerate(messages):
                self.backlog = last - position
                self.on_step(message)
        except StopRequested:
            raise
        except BaseException as exc:  # noqa: BLE001 - named, whatever it is
            raise StageFailed(self.name, exc) from exc
        self.finished(messages[-1].seq)
        ended = monotonic()
        self.inline_steps += ended - started
        self.handled += len(messages)
        return ended

    @property
    def inline_busy(self) -> float:
        """Seconds spent handling messages on the coordinator's thread (data-driven)."""
        return self.inline_steps + self.inline_other

    @property
    def busy(self) -> float:
        """Seconds spent handling messages, on this thread or inline."""
        return self.thread_busy + self.inline_steps + self.inline_other

    def handle(self, message: Message) -> None:
        """Dispatch one message to its handler."""
        match message:
            case StepReady():
                self.on_step(message)
            case SessionStarted():
                self.on_session_start(message)
            case SessionEnded():
                self.on_session_end(message)

    def finished(self, seq: int) -> None:
        """Record message ``seq`` as handled."""
        self.done_seq = seq

    def after_batch(self) -> None:  # noqa: B027 - optional hook
        """Called after each batch of messages handled on this thread."""

    def at_exit(self) -> None:  # noqa: B027 - optional hook
        """Called on this thread as it ends (stopped, failed or finished)."""

    def stats(self) -> ThreadStats:
        """This stage's busy and waiting seconds, for the snapshot. Any thread."""
        busy, waiting = self.busy, self.waiting
        now = self._since
        if now is not None:  # (read once: the thread swaps it whole)
            doing, since = now
            if doing == "busy":
                busy += monotonic() - since
            else:
                waiting += monotonic() - since
        return ThreadStats(
            name=self.name,
            busy_seconds=busy,
            inline_seconds=self.inline_busy,
            waiting_seconds=waiting,
            messages=self.handled,
        )

    # -- handlers ---------------------------------------------------------------------------

    def on_step(self, message: StepReady) -> None:  # noqa: B027 - optional hook
        """Handle the bars of one instant."""

    def on_session_start(self, message: SessionStarted) -> None:  # noqa: B027
        """Prepare a session."""

    def on_session_end(self, message: SessionEnded) -> None:  # noqa: B027
        """Finish a session."""
