"""The pane refresh cadence: which pane groups a poll brings up to date, and when.

Used on the UI's event loop only, by the app's snapshot poll; it touches no widget, so it
is tested without Pilot. The status bar follows every snapshot; the pane groups
(:data:`PANES`) follow at their own cadence (:data:`CADENCE`). While the engine streams at
max speed ("busy") a poll brings at most one group up to date - the one that has waited
longest - so that the event loop never draws the tables, the logs and both charts in one go:
each tick stays short, the status bar keeps its pace, and the UI takes the engine's time
(and the GIL) in small slices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sessionkit.engine.pipeline.snapshot import Snapshot

PANES = ("tables", "logs", "charts")
"""Pane groups updated at their own cadence (the status bar follows every snapshot)."""

CADENCE: dict[str, dict[str, float]] = {
    "normal": {"tables": 0.0, "logs": 0.0, "charts": 0.25},
    "busy": {"tables": 1.0, "logs": 1.0, "charts": 1.0},
}
"""Minimum seconds between two updates of a pane group; ``busy`` is max speed."""

RESTING_STATES = frozenset({"paused", "completed", "stopped", "error"})
"""States in which the engine does not move: every pane is brought up to date at once."""


def is_busy(snapshot: Snapshot) -> bool:
    """Streaming at max speed: the panes update at the ``busy`` cadence, one at a time."""
    return snapshot.clock == "data-driven" and snapshot.state not in RESTING_STATES


class PaneSchedule:
    """Which pane groups are behind the last snapshot and which of them are due.

    Parameters
    ----------
    cadence
        Minimum seconds between two updates of each group, by mode (see :data:`CADENCE`).
    """

    def __init__(self, cadence: Mapping[str, Mapping[str, float]] = CADENCE) -> None:
        self.cadence = {mode: dict(periods) for mode, periods in cadence.items()}
        """Minimum seconds between updates of each pane group, by mode."""
        self.stale: set[str] = set()
        """Groups not yet showing the last snapshot."""
        self.shown_at: dict[str, float] = {}
        """When each group was last brought up to date (monotonic seconds)."""

    def mark_stale(self, panes: Iterable[str] = PANES) -> None:
        """A new snapshot: ``panes`` are behind it."""
        self.stale.update(panes)

    def expedite(self, pane: str) -> None:
        """Bring ``pane`` up to date at the next poll, whatever its cadence."""
        self.stale.add(pane)
        self.shown_at.pop(pane, None)

    def shown(self, pane: str, now: float) -> None:
        """``pane`` now shows the last snapshot."""
        self.stale.discard(pane)
        self.shown_at[pane] = now

    def due(self, now: float, *, busy: bool, force: bool = False) -> list[str]:
        """The stale groups to bring up to date now, the one waiting longest first.

        ``force`` (the engine came to rest, a forced sync) returns every stale group. While
        ``busy`` the app shows only the first one it can.
        """
        if force:
            return [pane for pane in PANES if pane in self.stale]
        return self._ready(now, busy, self.stale)

    def next_due(self, now: float, *, busy: bool) -> list[str]:
        """The groups a poll taking a new snapshot now would bring up to date (all of
        :meth:`due` when not busy, else the first): it decides what that snapshot reads."""
        ready = self._ready(now, busy, PANES)
        return ready[:1] if busy else ready

    def _ready(self, now: float, busy: bool, behind: Iterable[str]) -> list[str]:
        periods = self.cadence["busy" if busy else "normal"]
        never = float("-inf")
        ready = [
            pane
            for pane in PANES
            if pane in behind and now - self.shown_at.get(pane, never) >= periods[pane]
        ]
        ready.sort(key=lambda pane: self.shown_at.get(pane, never))
        return ready
