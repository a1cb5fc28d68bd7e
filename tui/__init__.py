"""sessionkit.tui: the Textual monitor of a running session (``sessionkit-tui``).

The app (:mod:`.app`) runs on Textual's event loop in the main thread and only reads the
engine through ``Session.snapshot()`` and ``Session.series()``; the engine runs in the
session's own threads. Nothing is imported or read here at import time: the command line
lives in :mod:`.cli`, the app factory in :mod:`.app` (``create_app``).
"""
