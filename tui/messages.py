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
