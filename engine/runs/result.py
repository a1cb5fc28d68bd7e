"""RunResult: the whole result of one run, frozen, picklable and JSON-able.

Built on the caller's thread from a finished (or stopped)
:class:`~sessionkit.engine.pipeline.session.Session`, after its threads ended; nothing in it
is shared with an engine thread, so it may be kept, pickled (a sweep's worker sends it to
its parent) or printed (``sessionkit run --json`` prints :meth:`RunResult.to_dict`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from ..config import masked
from ..pipeline.snapshot import AnalysisErrorKind, AnalysisSignal, ThreadStats

SIGNAL_FIELDS = ("time", "symbol", "kind", "price", "message")
"""The columns of a signal in ``to_dict()["signals"]`` and ``signals.csv``."""


@dataclass(frozen=True)
class RunResult:
    """What one run gave: its state, bars and quality per stream, signals and metrics.

    Frozen through and through: its mappings are read-only views
    (:class:`types.MappingProxyType`, nested ones too) of copies nothing else holds, and
    its lists are tuples, so ``result.metrics["x"] = 1`` raises ``TypeError``. It pickles
    (the views travel as plain dicts and are read-only again once loaded), compares equal
    field by field, and hashes (on a few of the compared fields: its state, window and
    size). :meth:`to_dict` gives plain dicts and lists.
    """

    source: str
    """The configuration's file (or ``<config>``)."""
    parameters: Mapping[str, Any]
    """The overrides applied to it, by dotted key (``{"analysis.options.fast": 5}``)."""
    state: str
    """``completed``, ``stopped`` or ``error``."""
    error: str | None
    mode: str
    clock: str
    speed: float | None
    """Simulated seconds per wall second; None when data-driven."""
    timezone: str
    """The exchange's zone: signal and bar times are shown in it."""
    sessions: tuple[str, ...]
    """The trading days streamed (ISO dates)."""
    bars: Mapping[str, Mapping[str, int]]
    """Bars of the streamed sessions per symbol and interval."""
    quality: Mapping[str, Mapping[str, float | None]]
    """Quality over the run (percent) per symbol and interval."""
    gaps: Mapping[str, int]
    """Runs of missing bars per symbol."""
    overruns: Mapping[str, int]
    """Overruns per subscription (clock-driven only)."""
    steps: int
    bars_per_second: float
    load_seconds: float
    load: Mapping[str, float | None]
    step_latency_ms: float | None
    analysis_errors: int
    signals: tuple[AnalysisSignal, ...]
    """Every signal of the run, oldest first."""
    metrics: Mapping[str, float]
    """The analysis's metrics at the end of the run (empty without ``metrics()``)."""
    warnings: tuple[str, ...] = ()
    """What the user should know, e.g. symbols whose data covers only part of the window."""
    wall_seconds: float = 0.0
    """Wall time from building the session to the end of the run."""
    export: tuple[str, ...] = ()
    """Files written by ``export``."""
    analysis_error_kinds: tuple[AnalysisErrorKind, ...] = ()
    """What the analysis raised: each kind (hook, exception, line) with its count and first
    message, first raised first."""
    threads: tuple[ThreadStats, ...] = ()
    """Where each engine component spent its time (busy, waiting, loading), measured
    (the snapshot's ``metrics.threads``, coordinator first)."""
    frames: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Every streamed and derived bar with its indicators and quality, per
    ``"SYMBOL/interval"``, as column lists (see :meth:`bars_frame`); empty unless the run
    kept its bars."""

    def __post_init__(self) -> None:
        for name in _MAPPINGS:
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        frames = {
            key: MappingProxyType({name: tuple(values) for name, values in columns.items()})
            for key, columns in self.frames.items()
        }
        object.__setattr__(self, "frames", MappingProxyType(frames))

    def __reduce__(self) -> tuple[Any, ...]:
        # A read-only view does not pickle: the fields travel thawed (plain dicts) and
        # the constructor freezes them again.
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in _MAPPINGS:
            fields[name] = _thawed(fields[name])
        fields["frames"] = {key: dict(columns) for key, columns in self.frames.items()}
        return (_restore, (type(self), fields))

    def __hash__(self) -> int:
        # Equal results have equal fields, so equal values of these few; the mappings
        # (read-only views) do not hash, and hashing every signal would cost.
        return hash(
            (self.source, self.state, self.error, self.sessions, self.steps, self.signal_count)
        )

    @property
    def signal_count(self) -> int:
        return len(self.signals)

    def signal_rows(self) -> list[dict[str, Any]]:
        """The signals as dicts with the time in the exchange's zone (ISO 8601)."""
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(self.timezone)
        return [
            {
                "time": _stamp(s.sim_time, zone),
                "symbol": s.symbol,
                "kind": s.kind,
                "price": s.price,
                "message": s.message,
            }
            for s in self.signals
        ]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what ``sessionkit run --json`` prints).

        Non-finite numbers become None, so the output is strict JSON.
        """
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(self.timezone)
        return {
            "source": self.source,
            "parameters": _plain(masked(dict(self.parameters))),  # (passwords masked)
            "state": self.state,
            "error": self.error,
            "mode": self.mode,
            "clock": self.clock,
            "speed": self.speed,
            "timezone": self.timezone,
            "sessions": list(self.sessions),
            "bars": _plain(self.bars),
            "quality": _plain(self.quality),
            "gaps": dict(self.gaps),
            "overruns": dict(self.overruns),
            "bars_per_second": self.bars_per_second,
            "steps": self.steps,
            "load_seconds": self.load_seconds,
            "load": _plain(self.load),
            "step_latency_ms": _finite(self.step_latency_ms),
            "signal_count": self.signal_count,
            "signals": self.signal_rows(),
            "metrics": _plain(self.metrics),
            "analysis_errors": self.analysis_errors,
            "analysis_error_kinds": [kind.to_dict(zone) for kind in self.analysis_error_kinds],
            "warnings": list(self.warnings),
            "wall_seconds": self.wall_seconds,
            "threads": [thread.to_dict() for thread in self.threads],
            "export": list(self.export),
        }

    def bars_frame(self, symbol: str, interval: str) -> Any:
        """Every bar of (symbol, interval) with its quality and indicators, as a pandas
        DataFrame indexed by the bar's start in the exchange's zone (like the export).

        Raises
        ------
        KeyError
            If the run did not keep its bars (``run_backtest(..., keep_bars=True)``) or
            does not stream that symbol and interval.
        ImportError
            If pandas is not installed (``columns()`` gives the same as plain lists).
        """
        import pandas as pd

        columns = self.columns(symbol, interval)
        frame = pd.DataFrame(columns)
        for name in ("start", "end"):
            frame[name] = pd.to_datetime(frame[name], utc=True).dt.tz_convert(self.timezone)
        return frame.set_index("start")

    def columns(self, symbol: str, interval: str) -> dict[str, list[Any]]:
        """The bars of :meth:`bars_frame` as plain column lists (times as aware datetimes)."""
        key = f"{symbol}/{interval}"
        if key not in self.frames:
            kept = "it kept no bars" if not self.frames else f"it has {sorted(self.frames)}"
            raise KeyError(f"the run has no bars of {key} ({kept})")
        return {name: list(values) for name, values in self.frames[key].items()}


_MAPPINGS = ("parameters", "bars", "quality", "gaps", "overruns", "load", "metrics")
"""The mapping fields frozen as they are (``frames`` has its own, flatter freezing)."""


def _frozen(value: Any) -> Any:
    """``value`` with its mappings as read-only views and its lists as tuples, all the
    way down (copies: the caller's objects are left as they are)."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    """``value`` with its read-only views as plain dicts (picklable), all the way down."""
    if isinstance(value, MappingProxyType):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_thawed(v) for v in value)
    return value


def _restore(cls: type[RunResult], fields: dict[str, Any]) -> RunResult:
    """A pickled :class:`RunResult` back, its mappings frozen again."""
    return cls(**fields)


def _stamp(t: datetime | None, zone: Any) -> str | None:
    return None if t is None else t.astimezone(zone).isoformat()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping | MappingProxyType):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    return _finite(value)
