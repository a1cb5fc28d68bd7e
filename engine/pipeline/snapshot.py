"""The immutable snapshot of a running session, and chart series.

Built by :meth:`sessionkit.engine.pipeline.session.Session.snapshot` on the caller's thread (the UI's
event loop or a script) from values the engine threads publish; nothing in it is shared
with an engine thread afterwards, so it may be read from anywhere without locks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from ..config import RunClock
from ..core.bar import Bar, interval_delta
from ..core.windows import next_bar_start, trading_time

State = Literal[
    "initializing", "streaming", "paused", "session-ended", "completed", "stopped", "error"
]
"""Life-cycle state of a session. ``completed``, ``stopped`` and ``error`` are final."""

FINAL_STATES: frozenset[str] = frozenset({"completed", "stopped", "error"})

Stages = Literal["threads", "inline"]
"""How the processor and the analysis run: on their own threads, one hand-off per instant
(clock-driven and live), or in order on the coordinator's thread (data-driven)."""


@dataclass(frozen=True, slots=True)
class SeriesStats:
    """What is known of one (symbol, interval) stream."""

    symbol: str
    interval: str
    bar_count: int
    """Bars of the current session that are visible (history excluded)."""
    history_count: int
    """Trailing historical bars loaded for this session."""
    last_bar: Bar | None
    quality: float | None
    """Percent of the bars the calendar expects so far that are present."""
    gaps: int
    """Number of runs of missing bars in the current session."""
    change_pct: float | None
    """Last close versus the previous session's last close, in percent."""
    history_quality: float | None = None
    """Quality of the trailing history loaded for this session (of the base interval, which
    derived intervals carry), in percent."""


@dataclass(frozen=True, slots=True)
class SubscriptionStats:
    """Counters of one :class:`~sessionkit.engine.core.subscription.StreamSubscription`."""

    stream: str
    mode: str
    signals: int
    overruns: int
    waits: int
    last_wait: float
    """Seconds the last wait took."""
    max_wait: float
    """Longest wait so far, in seconds."""


@dataclass(frozen=True, slots=True)
class ThreadStats:
    """Where one engine component spends its time, in wall seconds since it started."""

    name: str
    """The component (its thread's name)."""
    busy_seconds: float
    """Doing its own work (handling messages; for the coordinator: publishing instants)."""
    inline_seconds: float
    """Data-driven mode: for a component, the part of ``busy_seconds`` run on the
    coordinator's thread; for the coordinator, the components' handlers it ran (not in its
    own ``busy_seconds``)."""
    waiting_seconds: float
    """Blocked: on its queue (consumers), or on consumers, the clock and pauses
    (coordinator)."""
    messages: int = 0
    """Messages handled (steps, session starts and ends); instants for the coordinator."""
    load_seconds: float = 0.0
    """Loading sessions from the database (the coordinator; the reader process)."""
    errors: int = 0
    """Exceptions raised by user code (the analysis engine only)."""

    def to_dict(self) -> dict[str, float | int | str]:
        """Plain JSON-ready data, seconds rounded to 0.1 ms."""
        return {
            "name": self.name,
            "busy_seconds": round(self.busy_seconds, 4),
            "inline_seconds": round(self.inline_seconds, 4),
            "waiting_seconds": round(self.waiting_seconds, 4),
            "load_seconds": round(self.load_seconds, 4),
            "messages": self.messages,
            "errors": self.errors,
        }


@dataclass(frozen=True, slots=True)
class CoordinatorStats:
    """The session coordinator's own counters, frozen (what the snapshot shows of it)."""

    thread: ThreadStats
    reader: ThreadStats | None = None
    """The reader process (``session_reader``: busy reading, waiting for a request),
    when the run has one."""
    steps: int = 0
    """Instants streamed."""
    bars: int = 0
    """Base bars streamed."""
    streaming_seconds: float = 0.0
    """Wall seconds spent streaming (pauses and session loads excluded)."""
    initial_load_seconds: float | None = None
    subsequent_load_seconds: tuple[float, ...] = ()
    """Load time of each session after the first."""
    read_seconds: float = 0.0
    """Of the loads, the time spent reading bars (history and sessions: queries, waits for
    the reader process, building bars and steps); the rest is the components' session
    starts (indicator warm-up, trimming the history)."""
    step_latency_total: float = 0.0
    """Wall seconds of the instants, in all, each from its publication until its last
    handler finished (data-driven: the handlers run inline; otherwise the chain's last
    stage, on its thread)."""
    step_latency_count: int = 0
    step_latency_max: float = 0.0


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """One line of the bounded event log."""

    wall_time: datetime
    sim_time: datetime | None
    level: Literal["info", "warning", "error"]
    message: str


@dataclass(frozen=True, slots=True)
class AnalysisSignal:
    """A signal emitted by the user's analysis code."""

    sim_time: datetime
    symbol: str
    kind: str
    """What the signal says, e.g. ``buy`` or ``sell``."""
    price: float | None
    message: str
    bar_start: datetime | None = None
    """Start of the base bar the signal was emitted on (None if the symbol had none)."""


@dataclass(frozen=True, slots=True)
class AnalysisErrorKind:
    """One kind of exception the user's analysis raised: the same hook, exception type and
    line of code, however many times (the first message is kept)."""

    hook: str
    """The hook that raised: ``step``, ``session_start``, ``session_end`` or ``metrics``."""
    error: str
    """The first one's type and message, e.g. ``KeyError: 'nope'``."""
    where: str
    """The file and line that raised it (``mystrat.py:12``), or empty if unknown."""
    count: int
    first_time: datetime | None
    """The simulated instant of the first one."""

    def to_dict(self, zone: tzinfo) -> dict[str, Any]:
        """Plain JSON-ready data, the time in ``zone`` (ISO 8601)."""
        first = self.first_time.astimezone(zone).isoformat() if self.first_time else None
        return {
            "hook": self.hook,
            "error": self.error,
            "where": self.where,
            "count": self.count,
            "first_time": first,
        }


@dataclass(frozen=True, slots=True)
class GapSpan:
    """A run of missing base bars of one symbol in the current session."""

    start: datetime
    """Start of the first missing bar (aware, UTC)."""
    end: datetime
    """End of the last missing bar (aware, UTC)."""
    bars: int
    """How many base bars are missing."""
    open: bool = False
    """True while the run is still open (no bar has arrived since it began)."""
    interval: timedelta | None = None
    """The base interval (None: the span's trading time divided by its bars)."""
    break_start: datetime | None = None
    """Start of the session's break (aware, UTC); None when the session has none. A span
    may run over it (from the morning into the afternoon): its minutes are not missing."""
    break_end: datetime | None = None
    """End of the session's break (aware, UTC); None when the session has none."""

    @property
    def minutes(self) -> float:
        """Minutes of missing data: the span's trading time, the break left out."""
        return trading_time(self._times(), self.start, self.end).total_seconds() / 60.0

    def bar_starts(self) -> tuple[datetime, ...]:
        """The start of each missing bar, in order (none in the break): where a chart
        marks them."""
        if self.bars <= 0:
            return ()
        times = self._times()
        step = self.interval or trading_time(times, self.start, self.end) / self.bars
        if step <= timedelta(0):
            return ()
        starts: list[datetime] = []
        t = self.start
        while t < self.end and len(starts) < self.bars:
            starts.append(t)
            t = next_bar_start(times, step, t)
        return tuple(starts)

    def _times(self) -> _SpanTimes:
        return _SpanTimes(self.start, self.end, self.break_start, self.break_end)


class _SpanTimes(NamedTuple):
    """A span's times as the functions of :mod:`~sessionkit.engine.core.windows` read a
    session (only its break matters to them here)."""

    open: datetime
    close: datetime
    break_start: datetime | None
    break_end: datetime | None


@dataclass(frozen=True, slots=True)
class EngineMetrics:
    """Engine counters and timings."""

    steps: int = 0
    bars_processed: int = 0
    """Base bars streamed plus derived bars built, in the streamed sessions."""
    bars_streamed: int = 0
    """Base bars streamed, in the streamed sessions (what :attr:`bars_per_second` counts)."""
    bars_per_second: float = 0.0
    """Streamed base bars per wall second of streaming (pauses excluded)."""
    initial_load_seconds: float | None = None
    subsequent_load_seconds: float | None = None
    """Mean load time of the sessions after the first."""
    step_latency_ms: float | None = None
    """Mean wall time of one step, from its publication until its last handler finished
    (in every clock mode), in milliseconds."""
    max_step_latency_ms: float | None = None
    cache_hit_rate: float | None = None
    """TimeManager cache hit rate in percent."""
    analysis_errors: int = 0
    analysis_error_kinds: tuple[AnalysisErrorKind, ...] = ()
    """The kinds of those errors, first raised first (at most
    :data:`~sessionkit.engine.pipeline.analysis.ERROR_KINDS_KEPT`)."""
    threads: tuple[ThreadStats, ...] = ()
    """Busy and waiting time of each engine component (coordinator first; the reader
    process, ``session_reader``, last when the run has one)."""
    stages: Stages = "threads"
    """How the processor and the analysis run now."""


def _frozen(mapping: Mapping | None = None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the UI shows, frozen at one instant."""

    state: State = "initializing"
    error: str | None = None
    mode: Literal["backtest", "live"] = "backtest"
    clock: RunClock = "data-driven"
    speed: float | None = None
    """Simulated seconds per wall second; None when data-driven."""
    exchange: str = "NYSE"
    timezone: str = "America/New_York"
    """The exchange's zone, for display."""
    session_date: date | None = None
    session_index: int = 0
    """1-based index of the current session; 0 before the first."""
    session_count: int = 0
    sessions: tuple[date, ...] = ()
    session_bounds: tuple[tuple[datetime, datetime], ...] = ()
    """(open, close) of each planned session, aligned with ``sessions`` (run progress)."""
    session_breaks: tuple[tuple[datetime, datetime] | None, ...] = ()
    """(start, end) of each planned session's break (None: it has none), aligned with
    ``session_bounds``: time does not run through a break, so progress leaves it out."""
    sim_time: datetime | None = None
    """Simulated time (aware, UTC): the last instant published."""
    clock_time: datetime | None = None
    """The running clock's simulated time between two instants (clock-driven, running:
    at 1x the instants are a minute apart), never past the next instant; None when the
    clock does not run towards one (``sim_time`` is then the time)."""
    market_open: datetime | None = None
    market_close: datetime | None = None
    early_close: bool = False
    break_start: datetime | None = None
    """Start of the current session's break (aware, UTC); None when it has none."""
    break_end: datetime | None = None
    """End of the current session's break (aware, UTC); None when it has none."""
    symbols: tuple[str, ...] = ()
    intervals: tuple[str, ...] = ()
    """The base interval first, then the derived ones."""
    series: Mapping[tuple[str, str], SeriesStats] = field(default_factory=_frozen)
    subscriptions: tuple[SubscriptionStats, ...] = ()
    indicators: Mapping[str, Mapping[str, float | None]] = field(default_factory=_frozen)
    """Latest indicator values per symbol: {symbol: {indicator name: value}}."""
    indicator_names: tuple[str, ...] = ()
    metrics: EngineMetrics = field(default_factory=EngineMetrics)
    events: tuple[EngineEvent, ...] = ()
    signals: tuple[AnalysisSignal, ...] = ()
    analysis_metrics: Mapping[str, float] = field(default_factory=_frozen)
    """The analysis's metrics as of its last finished session (or the run's end)."""
    version: int = 0
    """Grows whenever the engine published something new (cheap change detection)."""

    @property
    def in_break(self) -> bool:
        """True while the simulated time is in the session's break (from its start, until
        time moves on to its end)."""
        start, end, now = self.break_start, self.break_end, self.sim_time
        return start is not None and end is not None and now is not None and start <= now < end

    @property
    def finished(self) -> bool:
        """True once the session reached a final state."""
        return self.state in FINAL_STATES

    @staticmethod
    def interval_length(interval: str) -> timedelta:
        """The length of one bar of ``interval`` (``"5m"`` -> 5 minutes)."""
        return interval_delta(interval)


@dataclass(frozen=True, slots=True)
class Series:
    """Copies of the last N bars of one stream, with indicator values aligned to them."""

    symbol: str
    interval: str
    starts: tuple[datetime, ...]
    open: tuple[float, ...]
    high: tuple[float, ...]
    low: tuple[float, ...]
    close: tuple[float, ...]
    volume: tuple[float, ...]
    indicators: Mapping[str, tuple[float | None, ...]]
    """Indicator values on this interval, aligned with ``starts`` (None while warming up)."""
    history: int
    """How many of the points (from the left) are trailing history, not this session."""
    version: int = 0
