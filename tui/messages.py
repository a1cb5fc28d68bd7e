"""Custom Textual messages of the sessionkit monitor, in one place.

Posted on the UI's event loop by widgets, or from a worker thread (``post_message`` is
thread-safe); handled on the event loop by the app.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message


class SessionReplaced(Message):
    """A seek built the run's new session (posted by the restart worker)."""

    def __init__(self, session: Any, day: Any) -> None:
        super().__init__()
        self.session = session
        """The new session (not started yet)."""
        self.day = day
        """The session date it starts at."""


class SeekFailed(Message):
    """A seek could not build the new session (posted by the restart worker)."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class RunProgressed(Message):
    """A sweep's worker reported a run's progress (posted from the sweep's reader thread).

    A newer report of the same run replaces one not yet handled.
    """

    def __init__(self, record: Any) -> None:
        super().__init__()
        self.record = record
        """The :class:`~sessionkit.engine.runs.sweep.RunProgress`."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunProgressed) and message.record.index == self.record.index


class RunFinished(Message):
    """A run of a sweep ended (posted from the sweep's worker thread)."""

    def __init__(self, outcome: Any) -> None:
        super().__init__()
        self.outcome = outcome
        """The :class:`~sessionkit.engine.runs.sweep.SweepOutcome`."""


class SweepWarned(Message):
    """The sweep warns of something it did (a worker process killed because it could not
    exit), posted from the sweep's thread."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
