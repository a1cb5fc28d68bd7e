"""Shared run-time state of one session: controls, status, event log and messages.

One :class:`Runtime` is created by :class:`~sessionkit.engine.pipeline.session.Session` on the
caller's thread and handed to every engine thread (``session_coordinator``,
``data_processor``, ``data_quality_manager``, ``analysis_engine``). Controls are changed by
the caller under a condition variable and read by the coordinator; the status and the
event log are protected by small locks; everything else is owned by one thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Literal

from ..config import SessionConfig
from ..core.session_data import SessionData
from ..core.time_manager import SimClock, TradingSession
from .snapshot import EngineEvent

# Messages on the engine queues: a tuple whose first item is one of these tags.
STEP = "step"
"""``(STEP, seq, time, ((symbol, bar), ...))``: bars that became visible at ``time``."""
SESSION_START = "session_start"
"""``(SESSION_START, seq, SessionPlan)``: a session was loaded."""
SESSION_END = "session_end"
"""``(SESSION_END, seq, close)``: the session reached its close."""
STOP = "stop"
"""``(STOP,)``: end the thread."""


class StopRequested(Exception):
    """Raised inside an engine thread when the session is being stopped."""


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
    """True when the previous session was the last history day and its bars were kept:
    only bars older than the trailing window were dropped (the spec's "drop old + add
    new"), and indicators carry on instead of warming up again."""
    break_start: datetime | None = None
    """Start of the session's break (UTC), None without one (see ``core.windows``)."""
    break_end: datetime | None = None
    """End of the session's break (UTC), None without one."""


@dataclass
class Controls:
    """Pause, step, clock and stop requests, guarded by ``cond``.

    Written by any caller thread through :class:`~sessionkit.engine.pipeline.session.Session`;
    read by the coordinator, which waits on ``cond`` (never polling).
    """

    clock: Literal["data-driven", "clock-driven", "live"]
    speed: float
    paused: bool = False
    step_budget: int = 0
    stopping: bool = False
    generation: int = 0
    """Grows on every change, so the coordinator knows to re-anchor its clock."""
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

    def __init__(self, config: SessionConfig, data: SessionData, *, max_events: int = 500):
        self.config = config
        self.data = data
        clock = config.clock
        speed = config.live.speed if config.mode == "live" else config.backtest.speed
        self.controls = Controls(clock=clock, speed=speed)  # type: ignore[arg-type]
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._events: deque[EngineEvent] = deque(maxlen=max_events)
        self.state = "initializing"
        self.error: str | None = None
        self.version = 0
        self.clock = SimClock()
        """The simulated clock: set by the coordinator only, read by any thread. The
        session replaces it with one in the exchange's zone (``TimeManager.clock()``)."""
        self.idle = threading.Event()
        """Set while the coordinator waits paused with nothing in flight, or has finished."""

    @property
    def sim_time(self) -> datetime | None:
        """The simulated instant (aware, UTC), or None before the first session."""
        clock = self.clock
        return clock.now() if clock.is_set else None

    @sim_time.setter
    def sim_time(self, t: datetime) -> None:
        self.clock.set(t)

    @property
    def tz(self) -> tzinfo:
        """The exchange's zone, for display and messages."""
        return self.clock.tz

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
        message = f"{where}: {exc.__class__.__name__}: {exc}"
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


def next_message(q: queue.SimpleQueue, runtime: Runtime, timeout: float = 1.0) -> tuple | None:
    """Block for an engine thread's next message; None once the session is stopping.

    Queued work is dropped when a stop is requested, so a thread that fell behind (a
    backlog in clock-driven mode) still ends at once. ``stop()`` also queues a ``STOP``
    message, which wakes the wait immediately.
    """
    stop = runtime.stop_event
    while not stop.is_set():
        try:
            return q.get(timeout=timeout)
        except queue.Empty:
            continue
    return None


def monotonic() -> float:
    """Wall clock for measuring durations."""
    return time.perf_counter()
