"""sessionkit.engine: the threaded session engine (imports no Textual, ever).

The public API is what ``__all__`` lists, nothing else is promised:

- :class:`Session`, the facade that builds the engine's threads and controls them; its
  ``snapshot()`` returns an immutable :class:`~sessionkit.engine.pipeline.snapshot.Snapshot`
  and ``series()`` a :class:`~sessionkit.engine.pipeline.snapshot.Series` (the snapshot types
  live in :mod:`sessionkit.engine.pipeline.snapshot`, the one module a client reads types from);
- :func:`run_backtest`, one whole run as a call, returning a :class:`RunResult` (frozen,
  picklable, JSON-able with ``to_dict()``); :func:`window_coverage`, the check of a
  backtest's window against its database that a run makes before it starts;
- :class:`SessionConfig` and :func:`load_config` (a TOML path or a bundled name, with
  overrides validated like the file);
- :class:`Bar`, the immutable bar record;
- the error types: :class:`SessionkitError` (a user's mistake) and its subclasses.

Layout (each folder's ``__init__`` says more): ``core`` (the spec's components 1-3),
``pipeline`` (the threads), ``store`` (the database, import and export), ``feeds`` (live bar
sources), ``runs`` (whole runs and sweeps), ``cli`` (the ``sessionkit`` command). Imports point
one way: ``cli -> runs -> pipeline -> {core, feeds, store}``, ``feeds -> {core, store}``,
``core -> store``; any module may use ``config``, ``errors`` and ``core.bar``.
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import SessionConfig, load_config
    from .core.bar import Bar
    from .errors import (
        CalendarCoverageError,
        ConfigError,
        DatabaseError,
        DataImportError,
        FeedError,
        InvalidSymbolError,
        SessionControlError,
        SessionkitError,
        UsageError,
    )
    from .pipeline.session import Session
    from .runs.backtest import run_backtest, window_coverage
    from .runs.result import RunResult

# Where each public name lives. Loaded on first use, so ``import sessionkit.engine`` (and the
# command line's start-up) does not pay for pydantic, SQLAlchemy and the pipeline up front.
_HOMES = {
    "Bar": ".core.bar",
    "CalendarCoverageError": ".errors",
    "ConfigError": ".errors",
    "DataImportError": ".errors",
    "DatabaseError": ".errors",
    "FeedError": ".errors",
    "InvalidSymbolError": ".errors",
    "RunResult": ".runs.result",
    "Session": ".pipeline.session",
    "SessionConfig": ".config",
    "SessionControlError": ".errors",
    "SessionkitError": ".errors",
    "UsageError": ".errors",
    "load_config": ".config",
    "run_backtest": ".runs.backtest",
    "window_coverage": ".runs.backtest",
    # Not promised (not in __all__): for the console scripts' exit, ``sessionkit-tui``'s
    # too, which sees the engine only through this package.
    "end_with_threads_left": ".cli",
    # Not promised either: the one format of a metric, for the monitor's panes to agree
    # with the run summary and the sweep table.
    "metric_number": ".runs.summary",
}

__all__ = [
    "Bar",
    "CalendarCoverageError",
    "ConfigError",
    "DataImportError",
    "DatabaseError",
    "FeedError",
    "InvalidSymbolError",
    "RunResult",
    "Session",
    "SessionConfig",
    "SessionControlError",
    "SessionkitError",
    "UsageError",
    "load_config",
    "run_backtest",
    "window_coverage",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# A library leaves logging to its application: without a configured handler, warnings
# (such as overruns, which the snapshot also counts) are not printed over a progress bar.
logging.getLogger(__name__).addHandler(logging.NullHandler())
