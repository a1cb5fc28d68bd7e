"""StreamSubscription: a one-shot ready hand-off between two engine threads.

A producer thread calls :meth:`StreamSubscription.signal_ready`; a consumer thread waits
with :meth:`StreamSubscription.wait_until_ready` and re-arms with
:meth:`StreamSubscription.reset` (or does both at once with
:meth:`StreamSubscription.wait_and_reset`). In sessionkit the data processor signals the
session coordinator (and the analysis engine) that a step is done. Any thread may read the
counters or call :meth:`StreamSubscription.cancel`, which wakes every waiter at once.

Modes (the spec's, with one change: nothing waits forever):

* ``data-driven``: the waiter ignores any timeout and waits until the signal comes, or
  until the subscription is cancelled. A stop therefore always ends the wait.
* ``clock-driven``: the waiter honours its timeout. A signal that arrives while the
  previous one has not yet been consumed (reset) is an **overrun**: the consumer did not
  keep up with the clock. It is counted and logged, never blocks. (With
  ``overruns="by-producer"`` signals are never counted so; the producer, which knows when
  each item was due, counts them with :meth:`StreamSubscription.count_overrun`.)
* ``live``: as clock-driven: the feed's instants, in wall-clock time, are due when they
  arrive, and a consumer still on the one before is late (in live trading, the analysis
  not keeping up with the market is the overrun that matters most).

The mode may be changed at any time (the session switches between data- and clock-driven);
a waiter re-reads the mode when it changes.

All state sits behind one :class:`threading.Condition`; waits block on it (no polling).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Literal, get_args

from ..config import RunClock

__all__ = [
    "MODES",
    "OverrunCounting",
    "StreamSubscription",
    "SubscriptionMode",
    "SubscriptionStats",
]

_log = logging.getLogger(__name__)

SubscriptionMode = RunClock
"""How a subscription waits and whether it counts overruns: the session's clock mode."""

MODES: tuple[str, ...] = get_args(RunClock)

LONGEST_WAIT = 3600.0
"""The longest single wait on a condition, in seconds; a longer one waits again. A clock
speed of 1e-9 puts the next instant 60 billion seconds away: one wait that long overflows
the platform's timeout (``OverflowError``, the run ended in an error)."""

_OVERRUN_LOG_EVERY = 100
"""Overruns after the first are logged at WARNING only every this many (others at DEBUG)."""


@dataclass(frozen=True, slots=True)
class SubscriptionStats:
    """A consistent, immutable copy of a subscription's counters."""

    stream_id: str
    """Name of the stream."""
    mode: str
    """Mode at the time of the copy."""
    signals: int
    """Calls to ``signal_ready`` (while not cancelled)."""
    overruns: int
    """Signals that found the previous one unconsumed, in clock-driven and live modes."""
    waits: int
    """Calls to ``wait_until_ready`` / ``wait_and_reset``."""
    timeouts: int
    """Waits that ended without a signal because their timeout expired."""
    last_wait: float
    """Duration of the latest wait, in seconds."""
    max_wait: float
    """Longest wait so far, in seconds."""
    ready: bool
    """Whether a signal is pending (not yet reset)."""
    cancelled: bool
    """Whether the subscription was cancelled."""


OverrunCounting = Literal["on-signal", "by-producer"]
"""Who counts overruns: ``"on-signal"`` (the spec's rule) a signal that finds the previous
one pending; ``"by-producer"`` the producer, with :meth:`StreamSubscription.count_overrun`.

The engine's coordinator counts by producer, as DESIGN.md defines an overrun: a consumer
that has not finished an instant when the next is due. Counted on signals, a consumer
working through a backlog was late for every instant of it but collided only while the
coordinator left its signals pending (at a session's close the coordinator consumes each
as it waits): a consumer 18 times slower than the clock showed 20 overruns in 390 late
instants, one that hung showed none (it never signals)."""


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown subscription mode {mode!r} (known: {', '.join(MODES)})")
    return mode


class StreamSubscription:
    """Event-based one-shot synchronisation between a producer and a consumer thread.

    Parameters
    ----------
    mode
        ``"data-driven"``, ``"clock-driven"`` or ``"live"`` (see the module docstring).
    stream_id
        A name for logs and statistics, e.g. ``"processor->coordinator"``.
    overruns
        Who counts overruns (:data:`OverrunCounting`): ``"on-signal"`` (the default) or
        ``"by-producer"``.

    Raises
    ------
    ValueError
        If ``mode`` is unknown.
    """

    def __init__(
        self, mode: SubscriptionMode, stream_id: str, *, overruns: OverrunCounting = "on-signal"
    ) -> None:
        if overruns not in get_args(OverrunCounting):
            raise ValueError(
                f"unknown overrun counting {overruns!r} "
                f"(known: {', '.join(get_args(OverrunCounting))})"
            )
        self._on_signal = overruns == "on-signal"
        self._mode: str = _check_mode(mode)
        self._stream_id = stream_id
        self._cond = threading.Condition(threading.Lock())
        self._ready = False
        self._cancelled = False
        self._signals = 0
        self._overruns = 0
        self._waits = 0
        self._timeouts = 0
        self._last_wait = 0.0
        self._max_wait = 0.0

    def __repr__(self) -> str:
        return (
            f"StreamSubscription({self._mode!r}, {self._stream_id!r}, signals={self._signals}, "
            f"overruns={self._overruns})"
        )

    # -- producer ---------------------------------------------------------------------------

    def signal_ready(self) -> None:
        """Signal the consumer that the item is ready. Never blocks.

        In clock-driven and live modes, a signal while the previous one is still pending
        counts one overrun. After :meth:`cancel` this does nothing.
        """
        with self._cond:
            if self._cancelled:
                return
            self._signals += 1
            if self._ready and self._on_signal and self._mode != "data-driven":
                self._overrun()
            self._ready = True
            self._cond.notify_all()

    def count_overrun(self) -> None:
        """Count one overrun: the consumer had not finished an item when the next was due
        (the producer's call, with ``overruns="by-producer"``). Clock-driven and live
        modes only; never blocks for long."""
        with self._cond:
            if self._mode != "data-driven" and not self._cancelled:
                self._overrun()

    def _overrun(self) -> None:
        """Count and log an overrun (the lock held)."""
        self._overruns += 1
        overruns = self._overruns
        level = (
            logging.WARNING
            if overruns == 1 or overruns % _OVERRUN_LOG_EVERY == 0
            else logging.DEBUG
        )
        _log.log(level, "overrun on %s: %d", self._stream_id, overruns)

    def count_signal(self) -> None:
        """Count a hand-off that needed no signal: the consumer ran on the producer's own
        thread (data-driven mode). Nothing becomes pending, so no overrun can follow."""
        if not self._cancelled:
            # No lock: the producer is the only writer of the count (in data-driven mode
            # the consumer's thread is idle), and readers take a consistent copy in stats().
            self._signals += 1

    # -- consumer ---------------------------------------------------------------------------

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Wait for a signal (does not consume it; see :meth:`reset`).

        Parameters
        ----------
        timeout
            Seconds to wait at most; None waits until signalled or cancelled. Ignored in
            data-driven mode, which waits for the signal or :meth:`cancel`.

        Returns
        -------
        bool
            True if a signal is pending; False on timeout or if cancelled.
        """
        return self._wait(timeout, consume=False)

    def wait_and_reset(self, timeout: float | None = None) -> bool:
        """Wait like :meth:`wait_until_ready`, then consume the signal in the same step.

        Unlike ``wait_until_ready(); reset()``, no signal can arrive between the two and
        be lost.
        """
        return self._wait(timeout, consume=True)

    def _wait(self, timeout: float | None, consume: bool) -> bool:
        started = time.perf_counter()
        deadline = None if timeout is None else time.monotonic() + timeout
        cond = self._cond
        with cond:
            self._waits += 1
            timed_out = False
            while not (self._ready or self._cancelled):
                if deadline is None or self._mode == "data-driven":
                    cond.wait()  # woken by signal_ready, cancel or set_mode
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                cond.wait(min(remaining, LONGEST_WAIT))
            ok = self._ready and not self._cancelled
            if ok and consume:
                self._ready = False
            if timed_out:
                self._timeouts += 1
            waited = time.perf_counter() - started
            self._last_wait = waited
            if waited > self._max_wait:
                self._max_wait = waited
        return ok

    def reset(self) -> None:
        """Consume the pending signal, if any, ready for the next cycle."""
        with self._cond:
            self._ready = False

    # -- control ----------------------------------------------------------------------------

    def cancel(self) -> None:
        """Cancel for good: wake every waiter now; later waits return False at once.

        Safe from any thread, idempotent. Signals after this are ignored.
        """
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    def is_ready(self) -> bool:
        """Whether a signal is pending (not yet reset)."""
        return self._ready

    @property
    def mode(self) -> str:
        """The current mode; set it with :meth:`set_mode`."""
        return self._mode

    def set_mode(self, mode: SubscriptionMode) -> None:
        """Change the mode; a waiter re-reads it (and its timeout) at once.

        Raises
        ------
        ValueError
            If ``mode`` is unknown.
        """
        _check_mode(mode)
        with self._cond:
            self._mode = mode
            self._cond.notify_all()

    @property
    def stream_id(self) -> str:
        """The stream's name."""
        return self._stream_id

    # -- counters (any thread; each a single atomic read) ------------------------------------

    @property
    def signals(self) -> int:
        """Signals received (while not cancelled)."""
        return self._signals

    @property
    def overruns(self) -> int:
        """Overruns counted in clock-driven and live modes."""
        return self._overruns

    @property
    def waits(self) -> int:
        """Waits started."""
        return self._waits

    @property
    def timeouts(self) -> int:
        """Waits that timed out."""
        return self._timeouts

    @property
    def last_wait(self) -> float:
        """Duration of the latest wait, in seconds."""
        return self._last_wait

    @property
    def max_wait(self) -> float:
        """Longest wait so far, in seconds."""
        return self._max_wait

    def stats(self) -> SubscriptionStats:
        """Return a consistent copy of all counters, taken under the lock."""
        with self._cond:
            return SubscriptionStats(
                stream_id=self._stream_id,
                mode=self._mode,
                signals=self._signals,
                overruns=self._overruns,
                waits=self._waits,
                timeouts=self._timeouts,
                last_wait=self._last_wait,
                max_wait=self._max_wait,
                ready=self._ready,
                cancelled=self._cancelled,
            )
