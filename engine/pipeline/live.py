"""Live mode's coordinator: instants come from a bar feed, in wall-clock time.

:class:`LiveCoordinator` is the ``session_coordinator`` thread of a live session. It reads
the feed (a :class:`~sessionkit.engine.feeds.replay.BarFeed`) only from that thread; the
feed's ``backfill`` is called by the ``data_quality_manager`` thread.

Backfilled bars are merged into the base series in time order only (a series never takes
a bar older than its latest one: indicators advance bar by bar and derived windows are
never rewritten), so a fill must reach the coordinator before the symbol's next bar is
published. The quality manager asks for fills in the background, after it has handled an
instant at which a bar was due and did not come; the coordinator merges them into its
next instant (from which they are known, never earlier). So before publishing an instant
the coordinator waits (for at most :attr:`LiveCoordinator.fill_wait` seconds) until the
quality manager has handled every instant published so far, when a bar went missing at
the last instant or a bar of this one would pass a gap: the fills it asked for then go
first, and each comes with the instant after the one at which it was found missing,
however fast the feed hands instants on (the catch-up before ``replay_start`` hands on a
morning's instants at once).
"""

from __future__ import annotations

from ..core.bar import Bar
from ..core.time_manager import TradingSession
from ..core.windows import bar_end, next_bar_start
from ..feeds.replay import BarFeed
from .coordinator import SessionCoordinator
from .runtime import StopRequested, monotonic
from .steps import SessionSteps

FILL_WAIT = 1.0
"""Longest wait (seconds) for the quality manager's backfill before an instant."""


class LiveCoordinator(SessionCoordinator):
    """The coordinator in live mode: instants come from the feed, in wall-clock time."""

    fill_wait: float = FILL_WAIT
    """Longest wait (seconds) for the quality manager's backfill before an instant is
    published (see the module's docstring); a fill that comes after newer bars of its
    symbol is dropped, and the event log says so."""

    def __init__(self, runtime, time_manager, data_manager, feed: BarFeed, *stages) -> None:
        super().__init__(runtime, time_manager, data_manager, [feed.session_date], *stages)
        self.feed = feed
        self.fill_waits = 0
        """Instants that waited for the quality manager's backfill before publication."""
        self.fill_waits_expired = 0
        """Of :attr:`fill_waits`, those that ended at :attr:`fill_wait`, not with the quality
        manager done."""

    def _take_steps(self, index: int, session: TradingSession) -> SessionSteps:
        return SessionSteps()  # the feed delivers them

    def _stream_session(self) -> None:
        plan = self.plan
        assert plan is not None
        runtime = self.runtime
        feed = self.feed
        controls = runtime.controls
        while not feed.exhausted:
            # Pause and step work as in a backtest; the feed goes on in wall-clock time, so
            # what arrived while paused follows at once on resume (a live feed cannot wait).
            self._gate()
            step = None
            while step is None and not feed.exhausted:
                if runtime.stopping:
                    raise StopRequested
                if controls.paused and not self._stepping:
                    break  # paused while waiting for the feed: back to the gate
                step = feed.next_step(timeout=0.25)
                for level, message in feed.notices():  # e.g. a lost connection
                    runtime.log(message, level)
            if step is None:
                continue
            t, items = step
            if self._fill_due(items):
                self._await_fills()
            self._count_overruns()  # (each consumer still on the instant before is late)
            self._publish(t, items)
            # Waits use timeouts in live mode: never hold the feed up for long.
            self._wait_consumers(self.seq, blocking=False, deadline=monotonic() + 1.0)
        if runtime.sim_time < plan.close:
            self._gate()
            if self._fill_due(()):
                self._await_fills()
            self._count_overruns()
            self._publish(plan.close, ())
        if self._fill_due(()):
            # The session's last bars went missing at the close: their fills come with one
            # more instant at the close (there is no later one).
            self._await_fills()
            if self._fills:
                self._gate()
                self._publish(plan.close, ())

    def _fill_due(self, items: tuple[tuple[str, Bar], ...]) -> bool:
        """True if the quality manager may have a backfill to hand on before ``items``: a
        symbol's bar due at the last instant published did not come, or a bar of ``items``
        starts after the bar its symbol expects next (bars are missing before it)."""
        plan = self.plan
        assert plan is not None
        last_of = self._last_start
        delta = self.delta
        now = self.runtime.sim_time
        for symbol in self.symbols:
            last = last_of.get(symbol)
            expected = plan.open if last is None else next_bar_start(plan, delta, last)
            if bar_end(plan, delta, expected) == now:
                return True
        for symbol, bar in items:
            last = last_of.get(symbol)
            expected = plan.open if last is None else next_bar_start(plan, delta, last)
            if bar.start > expected:
                return True
        return False

    def _await_fills(self) -> None:
        """Wait until the quality manager has handled every instant published so far (so
        the backfills it asked for are queued), for at most :attr:`fill_wait` seconds.
        Interruptible: a stop ends it within a quarter of a second."""
        seq = self._quality_queued
        quality = self.quality
        if not seq or quality.done_seq >= seq:
            return
        self.fill_waits += 1
        runtime = self.runtime
        deadline = monotonic() + self.fill_wait
        with self.metrics.waiting_now():
            while not quality.wait_done(seq, min(0.25, max(0.0, deadline - monotonic()))):
                if runtime.stopping:
                    raise StopRequested
                if monotonic() >= deadline:
                    self.fill_waits_expired += 1
                    return
            if runtime.stopping:
                raise StopRequested

    def _terminate(self) -> None:
        self.feed.close()
        super()._terminate()
