"""The spec's components 1-3: the bar record, SessionData, StreamSubscription, TimeManager.

These are building blocks, not threads: each module's docstring says which threads may
call what. ``core`` reads the trading calendar from ``store`` and imports nothing else of
the engine but ``config`` and ``errors``.
"""
