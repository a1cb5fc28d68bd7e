"""Whole runs as library calls: ``run_backtest`` and ``RunResult``, and sweeps of many runs.

Imports ``pipeline`` and below; the command line (``cli``) imports it.
"""
