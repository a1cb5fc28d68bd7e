"""Live bar sources: the :class:`~.replay.BarFeed` interface and its implementations.

A feed is read by the live coordinator's thread (``session_coordinator``) and backfilled
from the ``data_quality_manager`` thread. Feeds import ``core`` and ``store`` only.
"""
