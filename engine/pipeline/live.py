"""Live mode's coordinator: instants come from a bar feed, in wall-clock time.

:class:`LiveCoordinator` is the ``session_coordinator`` thread of a live session. It reads
the feed (a :class:`~sessionkit.engine.feeds.replay.BarFeed`) only from that thread; the
feed's ``backfill`` is called by the ``data_quality_manager`` thread.
"""

from __future__ import annotations

from ..core.bar import Step
from ..core.time_manager import TradingSession
from ..feeds.replay import BarFeed
from .coordinator import SessionCoordinator
from .runtime import StopRequested, monotonic


class LiveCoordinator(SessionCoordinator):
    """The coordinator in live mode: instants come from the feed, in wall-clock time."""

    def __init__(self, runtime, time_manager, data_manager, feed: BarFeed, *stages) -> None:
        super().__init__(runtime, time_manager, data_manager, [feed.session_date], *stages)
        self.feed = feed

    def _take_steps(self, index: int, session: TradingSession) -> list[Step]:
        return []  # the feed delivers them

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
            self._publish(t, items)
            # Waits use timeouts in live mode: never hold the feed up for long.
            self._wait_consumers(self.seq, blocking=False, deadline=monotonic() + 1.0)
        if runtime.sim_time < plan.close:
            self._gate()
            self._publish(plan.close, ())

    def _terminate(self) -> None:
        self.feed.close()
        super()._terminate()
