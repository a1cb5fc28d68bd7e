"""Custom Textual messages of the sessionkit monitor, in one place.

Posted on the UI's event loop by widgets, or from a worker thread (``post_message`` is
thread-safe); handled on the event loop by the app.
"""

from __future__ import annotations

from textual.message import Message


class EngineStopped(Message):
    """The engine's threads were asked to stop and joined (posted by the quit worker)."""

    def __init__(self, joined: bool) -> None:
        super().__init__()
        self.joined = joined
        """True if every engine thread ended within the deadline."""
