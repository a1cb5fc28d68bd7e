"""Sweeps: many independent runs (a grid of overrides and/or date shards) in parallel.

Runs on the caller's thread. Every run is planned and validated here first, in the
caller's process (a mistake in any parameter is reported before anything starts): its
configuration, then the checks its session makes as it is built (the database opens, the
exchange's calendar and the symbols are in it, the window has trading days, the analysis
is built with its options), each database opened once and each distinct check made once;
whether each symbol has bars in a run's window is that run's own check, in its worker.
Each run then happens in a worker process, through
:class:`concurrent.futures.ProcessPoolExecutor` (the default) or a Dask cluster
(``dask.distributed``, the ``sessionkit[dask]`` extra). A worker receives the run's
validated :class:`~sessionkit.engine.config.SessionConfig`, whose database is a URL (the
workers share the database; use PostgreSQL across machines), and sends back a
:class:`~sessionkit.engine.runs.result.RunResult`. Threads stay inside a run: the
parallelism across runs is processes.

While they run, workers report progress: each run posts a small frozen :class:`RunProgress`
(state, bars done of expected, bars/s, quality, overruns, metrics so far) about four times
a second on a channel the caller reads. With worker processes the channel is a
``multiprocessing.Manager().Queue()``; on Dask it is a ``distributed.Queue`` (it goes
through the scheduler, so it also works on a remote cluster). In the worker a sender
thread does the putting, so a slow channel never holds up a run; in the caller a reader
thread gets from the channel (a manager's queue with a timeout, a Dask queue polled for
what it holds ten times a second: never a busy loop) and calls ``on_progress``.

A cancelled sweep (``cancel``, Ctrl-C, SIGTERM) ends its worker processes: the pool's are
terminated; a local Dask cluster's workers close, and a process still tearing its Python
down a moment later is killed (:func:`_close_local_cluster`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.util
import os
import queue
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, fields
from datetime import date
from multiprocessing.managers import SyncManager
from typing import Any, Literal

from ..config import (  # (shown_setting: the monitor's too)
    SessionConfig,
    masked,
    parse_setting_values,
    shown_setting,
)
from ..config import mask_secrets as mask_secrets  # (for the monitor: it sees runs.sweep)
from ..errors import (
    CalendarCoverageError,
    ConfigError,
    SessionkitError,
    UsageError,
)
from ..pipeline.snapshot import Snapshot
from .backtest import BacktestRun, ConfigLike, resolve_config, run_backtest
from .result import RunResult

ShardBy = Literal["session", "week", "month"]
"""How a sweep splits the backtest window: one run per session, ISO week or month."""


@dataclass(frozen=True)
class SweepRun:
    """One planned run of a sweep: its grid values, its date window and its config."""

    index: int
    parameters: Mapping[str, Any]
    """The grid's values for this run, by dotted key."""
    window: tuple[date, date] | None
    """The shard's first and last date, or None when the sweep is not sharded."""
    config: SessionConfig = field(repr=False)


@dataclass(frozen=True)
class SweepOutcome:
    """What became of one planned run: its result, or the error that prevented it."""

    run: SweepRun
    result: RunResult | None
    error: str | None = None

    @property
    def state(self) -> str:
        """The run's state, or ``failed`` when it raised before giving a result."""
        return self.result.state if self.result is not None else "failed"

    def summary(self) -> list[Any]:
        """What ``sessionkit run`` prints for this run, as Rich renderables (see
        :func:`~sessionkit.engine.runs.summary.summary_renderables`); for a run that failed
        before it gave a result, its error."""
        from .summary import summary_renderables

        if self.result is not None:
            return summary_renderables(self.result.to_dict())
        from rich.text import Text

        return [Text(f"failed: {self.error}")]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: index, parameters, window, state, error and the whole result."""
        window = self.run.window
        return {
            "index": self.run.index,
            "parameters": {
                k: v.isoformat() if isinstance(v, date) else json_ready(masked(v))
                for k, v in self.run.parameters.items()
            },
            "window": None if window is None else [window[0].isoformat(), window[1].isoformat()],
            "state": self.state,
            "error": self.error if self.result is None else self.result.error,
            "result": None if self.result is None else self.result.to_dict(),
        }


def json_ready(value: Any) -> Any:
    """``value`` with every float that is not finite (NaN, infinities) as None, all the way
    down (lists, tuples, mappings): what ``sessionkit run --json`` prints for them (``json``
    would print a bare ``NaN``, which is not JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def parse_param(text: str) -> tuple[str, list[Any]]:
    """Parse ``--param KEY=V1,V2,...``: a dotted key and its values (each a TOML value, as
    ``--set`` takes it; see :func:`~sessionkit.engine.config.parse_setting_values`).

    Raises
    ------
    ConfigError
        If there is no ``=``, no value, or a value repeats.
    """
    key, values = parse_setting_values(text)
    if any(v == "" for v in values):
        raise ConfigError(f"--param {text}", None, "expected KEY=V1,V2,... with no empty value")
    if len({repr(v) for v in values}) != len(values):
        raise ConfigError(f"--param {text}", None, "a value repeats")
    return key, values


def parse_grid(
    params: Sequence[str], origins: Mapping[str, str] | None = None
) -> dict[str, list[Any]]:
    """The grid of several ``--param KEY=V1,V2,...`` (:func:`parse_param`), by key.

    ``origins`` are the options that set keys for every run (the origins of
    :func:`~sessionkit.engine.config.option_overrides`). A grid's key replaces what they
    set, so a key both in the grid and set by a ``--set`` (or set by one inside a grid's
    key: ``--set analysis.options.fast=7`` under ``--param analysis.options={...}``) is
    refused, as ``sessionkit run`` refuses an option and a ``--set`` of the same key; so
    is a key given by two ``--param`` (the first was dropped). (``--start``, ``--end``,
    ``--db``, ``--speed`` give every run its default: a ``--param`` of their key replaces
    it.)

    Raises
    ------
    ConfigError
        Naming the ``--param`` and the key, and what else gave it.
    """
    from ..config import _normal_key, mask_secrets

    grid: dict[str, list[Any]] = {}
    given: dict[str, tuple[str, str]] = {}  # normal key: (key as given, its --param)
    for text in params:
        label = f"--param {mask_secrets(text)}"
        key, values = parse_param(text)
        normal = _normal_key(key)
        for other, (other_key, other_label) in given.items():
            if other == normal:
                raise ConfigError(
                    label,
                    None,
                    f"{key} is given by {other_label} too: give its values in one --param "
                    f"{key}=V1,V2,...",
                )
            if _inside(other, normal) or _inside(normal, other):
                inner, outer = (other_key, key) if _inside(other, normal) else (key, other_key)
                raise ConfigError(
                    label,
                    None,
                    f"{inner} is inside {outer}, given by {other_label} too: give each "
                    "key in one --param only",
                )
        for taken, option in (origins or {}).items():
            if not option.startswith("--set "):
                continue  # (--start, --end ...: the window a --param of it replaces)
            if taken == normal or _inside(taken, normal):
                raise ConfigError(
                    label,
                    None,
                    f"{taken} is set by {option} too, which the --param replaces in every "
                    f"run: give it once (the --param, or the {option.split()[0]})",
                )
        given[normal] = (key, label)
        grid[key] = values
    return grid


def _inside(key: str, table: str) -> bool:
    """Whether dotted ``key`` is a key inside ``table`` (``a.b.c`` in ``a.b``)."""
    return key.startswith((f"{table}.", f"{table}["))


def plan_sweep(
    config: ConfigLike | None,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    shard_by: ShardBy | None = None,
    overrides: Mapping[str, Any] | None = None,
    origins: Mapping[str, str] | None = None,
) -> list[SweepRun]:
    """Every run of a sweep, each validated: the cartesian product of ``grid`` times the
    date shards.

    Parameters
    ----------
    config
        A configuration, a TOML path or a bundled name.
    grid
        Values to try per dotted key (``{"analysis.options.fast": [5, 10, 20]}``).
    shard_by
        Split the backtest window into one run per session, ISO week or month; each shard
        warms up from its own trailing history (:func:`shard_warnings` says when that
        history cannot stand in for the sessions before the shard).
    overrides, origins
        Overrides common to every run (``--set``), and the options that set them.

    Raises
    ------
    SessionkitError
        If any run's configuration is invalid, or its session would refuse it (see
        :class:`_Checks`): a :class:`ConfigError` naming the parameter that made it so,
        or, for a mistake common to every run (``--db``), the error ``sessionkit run``
        gives.
    """
    base = resolve_config(config, overrides, origins)
    if base.mode != "backtest":  # (each run failed, and the monitor replayed them live)
        raise ConfigError(
            base.origin_of("mode"),
            "mode",
            f"a sweep runs backtests, not mode = {base.mode!r} (a live session runs in "
            "wall-clock time: use sessionkit run or sessionkit-tui)",
        )
    grid = dict(grid or {})
    keys = list(grid)
    combos = list(itertools.product(*(grid[k] for k in keys))) if keys else [()]
    windows: list[tuple[date, date] | None] = [None]
    checks = _Checks()
    try:
        if shard_by is not None:
            windows = list(_shards(base, shard_by, checks))
        runs = []
        for values, window in itertools.product(combos, windows):
            parameters = dict(zip(keys, values, strict=True))
            extra: dict[str, Any] = dict(parameters)
            labels = {k: f"--param {k}={shown_setting(v)}" for k, v in parameters.items()}
            if window is not None:
                extra["backtest.start_date"], extra["backtest.end_date"] = window
                labels["backtest.start_date"] = labels["backtest.end_date"] = (
                    f"--shard-by {shard_by}"
                )
            configured = resolve_config(base, extra, labels) if extra else base
            checks.check(configured, set(labels.values()))
            runs.append(SweepRun(len(runs), parameters, window, configured))
    finally:
        checks.close()
    return runs


class _Checks:
    """The checks a run's :class:`~sessionkit.engine.pipeline.session.Session` makes as it
    is built, made in the caller's process for every planned run before any starts: the
    database opens (:func:`~sessionkit.engine.store.db.open_db`), it holds the exchange's
    calendar and the symbols
    (:func:`~sessionkit.engine.store.data_manager.check_against_database`), the window has
    trading days and the analysis class is built with its options
    (:func:`~sessionkit.engine.pipeline.session.plan_sessions` and
    :func:`~sessionkit.engine.pipeline.session.load_analysis`). The same functions as the
    session's, so the same messages.

    Cheap for a large grid: each database is opened once (and disposed by :meth:`close`),
    each calendar read once, and a check is made once per distinct set of the values it
    depends on (a grid of analysis options builds one analysis per run, nothing else).
    Used on the caller's thread only.
    """

    def __init__(self) -> None:
        self._engines: dict[str, Any] = {}
        self._calendars: dict[tuple[str, str], Any] = {}
        self._passed: set[tuple[Any, ...]] = set()

    def database(self, config: SessionConfig) -> Any:
        """The database of ``config``, opened once per URL (as its session opens it).

        Raises
        ------
        ConfigError
            If it cannot be opened, naming the option or file that set ``database_url``.
        """
        from ..pipeline.session import open_database

        url = config.resolved_database_url()
        engine = self._engines.get(url)
        if engine is None:
            engine = self._engines[url] = open_database(config)
        return engine

    def time_manager(self, config: SessionConfig) -> Any:
        """The trading calendar of ``config``'s exchange group in its database."""
        key = (config.resolved_database_url(), config.exchange_group)
        manager = self._calendars.get(key)
        if manager is None:
            from ..core.time_manager import TimeManager

            manager = self._calendars[key] = TimeManager(
                self.database(config), config.exchange_group
            )
        return manager

    def check(self, config: SessionConfig, labels: set[str]) -> None:
        """Check one run as its session will, before it starts.

        ``labels`` are the options that made this run differ from the others (``--param
        KEY=VALUE``, ``--shard-by``): an error that does not name where its value came from
        is blamed on one of them when it set the key at fault.

        Raises
        ------
        SessionkitError
            What building the run's session would raise.
        """
        from ..pipeline.session import load_analysis, plan_sessions
        from ..store.data_manager import check_against_database

        url = config.resolved_database_url()
        engine = self.database(config)
        streams = config.streams
        key: tuple[Any, ...] = (
            "database",
            url,
            config.exchange_group,
            streams.interval,
            tuple(streams.symbols),
        )
        if key not in self._passed:
            check_against_database(config, engine, source=config.source)
            self._passed.add(key)
        if config.mode == "backtest" and config.backtest is not None:
            window = config.backtest.start_date, config.backtest.end_date
            key = ("window", url, config.exchange_group, *window)
            if key not in self._passed:
                try:
                    plan_sessions(config, self.time_manager(config))
                except CalendarCoverageError as exc:
                    raise _blamed(exc, config, "backtest", labels) from None
                self._passed.add(key)
        analysis = config.analysis
        if analysis.entry is not None:
            key = ("analysis", analysis.entry, config.folder, repr(analysis.options))
            if key not in self._passed:
                load_analysis(config)
                self._passed.add(key)

    def close(self) -> None:
        """Dispose of the databases opened."""
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        self._calendars.clear()


def _blamed(
    exc: SessionkitError, config: SessionConfig, key: str, labels: Collection[str]
) -> SessionkitError:
    """``exc`` as a :class:`ConfigError` from the option in ``labels`` that set ``key`` (or
    a key inside it: ``backtest.end_date`` for ``backtest``), or ``exc`` itself when the
    value came from elsewhere (the file, ``--db``, ``--start``)."""
    for overridden, origin in config.overrides.items():
        inside = overridden.startswith((f"{key}.", f"{key}[")) or key.startswith(f"{overridden}.")
        if origin in labels and (overridden == key or inside):
            return ConfigError(origin, key, str(exc))
    return exc


def _shards(
    config: SessionConfig, shard_by: ShardBy, checks: _Checks
) -> Iterator[tuple[date, date]]:
    if config.mode != "backtest" or config.backtest is None:
        raise ConfigError("--shard-by", None, "only a backtest can be split into date shards")
    from ..pipeline.session import plan_sessions

    days = plan_sessions(config, checks.time_manager(config))

    def group(day: date) -> tuple[int, ...]:
        if shard_by == "session":
            return (day.toordinal(),)
        if shard_by == "week":
            return tuple(day.isocalendar()[:2])
        return (day.year, day.month)

    for _key, members in itertools.groupby(days, key=group):
        chunk = list(members)
        yield chunk[0], chunk[-1]


def shard_warnings(runs: Sequence[SweepRun], shard_by: str = "--shard-by") -> list[str]:
    """What a sharded sweep cannot give as one unsharded run would: one line per cause.

    One unsharded run carries its indicators on from each session to the next; a shard's
    first session warms them up from its trailing history instead. Without trailing history
    (every ``[[historical]]`` entry that applies to a symbol has ``trailing_days = 0``, or
    none applies), that session starts its indicators cold: their values, and the signals
    that use them, differ from the unsharded run's there. (With history, indicators of a
    finite window are the same once it covers their period; recursive ones, EMA, RSI, MACD,
    converge and may differ slightly.) Nothing when the sweep is not split.

    Parameters
    ----------
    runs
        From :func:`plan_sweep`.
    shard_by
        How the command line names the split (``--shard-by week``), for the message.
    """
    if len({run.window for run in runs}) < 2:
        return []
    out: list[str] = []
    for run in runs:
        config = run.config
        if not config.indicators:
            continue
        kept = config.trailing_days()
        cold = [s for s in config.streams.symbols if not any(kept[s, i] for i in config.intervals)]
        if not cold:
            continue
        keys = []
        for index, hist in enumerate(config.historical):
            if hist.apply_to == "all" or set(hist.apply_to) & set(cold):
                key = f"historical[{index}].trailing_days"
                origin = config.origin_of(key)
                keys.append(f"{key} = 0" + (f" (from {origin})" if origin.startswith("-") else ""))
        if not keys:
            every = len(cold) == len(config.streams.symbols)
            keys = ["no [[historical]] entry" + ("" if every else " for " + ", ".join(cold))]
        names = [indicator.name for indicator in config.indicators]
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        line = (
            f"{shard_by} with {' and '.join(keys)}: each shard's first session starts its "
            f"indicators ({shown}) cold, where one unsharded run carries them on, so their "
            "values and the signals that use them can differ from that run's; give each "
            "shard trailing history that covers the indicators' periods"
        )
        if line not in out:
            out.append(line)
    return out


PROGRESS_PERIOD = 0.25
"""Wall seconds between two progress records of one run (at most)."""

CANCEL_POLL = 0.1
"""Wall seconds between two looks at the caller's ``cancel`` event while runs run."""

WORKER_EXIT_PATIENCE = 0.25
"""Wall seconds a cancelled sweep's local Dask cluster gives each worker process to exit
once asked to close (it takes 10-30 ms to close, then about a second to tear its Python
down), before its nanny kills it (see :func:`_close_local_cluster`)."""


WORKER_EXIT_GRACE = 1.0
"""Wall seconds a worker process is given to exit once every run is done (a pool's
processes, a local Dask cluster's). One that has not exited by then cannot (a thread its
run started and never ended, say): the sweep kills it and warns, naming the runs it
ran."""

TASKS_PER_WORKER = 25
"""Runs a worker process runs before the pool replaces it with a fresh one
(``ProcessPoolExecutor(max_tasks_per_child=...)``). A run leaves native memory behind in
its worker that the process never gives back (measured: about 5 MB a run, 86 MB to 940 MB
over 200 one-day runs of two symbols on one worker); a fresh process every 25 runs bounds
it (174 MB at most there; 130 MB every 15 runs, 108 MB every 10), and its start-up (about
0.5 s a replacement) is no worse than the slower runs of a bloated process (that sweep:
18.7 s, 19.2 s before; 22.3 s every 15 runs, 29.6 s every 10)."""

_STUCK_EXIT = 86
"""The exit status of a worker process that ended itself because it could not exit (a
thread its run left running): see :func:`_watch_exit`."""

_left_threads = False
"""In a worker process: whether one of its runs left a non-daemon thread running."""

_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@dataclass(frozen=True, slots=True)
class RunProgress:
    """How far one run of a sweep has got: posted by its worker while it runs.

    Small and frozen; the last one of a run is posted once the run has ended (its state
    is then final). A record says nothing a later one would contradict, so a reader that
    drops records (or gets them late) only shows older progress.
    """

    index: int
    """The run's :attr:`SweepRun.index`."""
    state: str
    """The session's state (``initializing``, ``streaming``, ... ``completed``)."""
    bars: int = 0
    """Base bars streamed so far."""
    expected_bars: int | None = None
    """Base bars the run's window holds (None when unknown)."""
    bars_per_second: float = 0.0
    """Streamed base bars per wall second of streaming."""
    quality: float | None = None
    """Mean quality of the base interval over the symbols, in percent: of the current
    session while running, of the whole run in the last record."""
    overruns: int = 0
    """Overruns of every subscription together (clock-driven runs)."""
    session_index: int = 0
    session_count: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)
    """The analysis's metrics so far (as of its last finished session)."""
    error: str | None = None

    @property
    def fraction(self) -> float | None:
        """Bars done of expected, 0..1 (None when the total is unknown)."""
        if not self.expected_bars:
            return None
        return min(1.0, self.bars / self.expected_bars)


def progress_of(
    index: int, snap: Snapshot, bars: int, expected: int | None, result: RunResult | None = None
) -> RunProgress:
    """The :class:`RunProgress` of run ``index`` from its session's snapshot (and, once it
    ended, its result: quality over the run and the final metrics)."""
    base = snap.intervals[0] if snap.intervals else None
    if result is not None:
        quality = run_quality(result, base) if base else None
        metrics = dict(result.metrics)
    else:
        values = [stats.quality for (_s, i), stats in snap.series.items() if i == base]
        known = [v for v in values if v is not None]
        quality = round(sum(known) / len(known), 2) if known else None
        metrics = dict(snap.analysis_metrics)
    return RunProgress(
        index=index,
        state=snap.state,
        bars=bars,
        expected_bars=expected,
        bars_per_second=round(snap.metrics.bars_per_second, 1),
        quality=quality,
        overruns=sum(s.overruns for s in snap.subscriptions),
        session_index=snap.session_index,
        session_count=snap.session_count,
        metrics=metrics,
        error=snap.error,
    )


def run_quality(result: RunResult, base: str) -> float | None:
    """Mean quality of the ``base`` interval over the symbols, over the whole run, in
    percent (rounded to 0.01), as a sweep shows it; None if no symbol has one."""
    known = [q for per in result.quality.values() if (q := per.get(base)) is not None]
    return round(sum(known) / len(known), 2) if known else None


class _Sender:
    """Puts a worker's progress records on the channel from a thread of its own.

    The run hands over its newest record (:meth:`offer` never blocks: a record not yet
    sent is replaced by the newer one); the sender thread puts it on the channel. A channel
    that fails (the reader is gone) ends the reporting, never the run.
    """

    def __init__(self, channel: Any) -> None:
        self._channel = channel
        self._lock = threading.Lock()
        self._latest: RunProgress | None = None
        self._closing = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._send, name="sweep-progress", daemon=True)
        self._thread.start()

    def offer(self, record: RunProgress) -> None:
        with self._lock:
            self._latest = record
        self._wake.set()

    def close(self, last: RunProgress | None, timeout: float = 2.0) -> None:
        """Send ``last`` (if the channel still works) and end the thread within ``timeout``."""
        if last is not None:
            self.offer(last)
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(timeout)

    def _send(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                record, self._latest = self._latest, None
                closing = self._closing
            if record is not None:
                try:
                    self._channel.put(record)
                except Exception:  # the reader went away: stop reporting, not the run
                    return
            if closing:
                with self._lock:
                    if self._latest is None:
                        return


def _open_channel(channel: Any) -> Any:
    """A channel as the worker uses it: a Dask queue's name becomes the queue (made in the
    task's thread, where the worker's client is known)."""
    if isinstance(channel, _DaskChannel):
        from distributed import Queue

        return Queue(channel.name)
    return channel


@dataclass(frozen=True)
class _DaskChannel:
    name: str


@dataclass(frozen=True)
class _DaskStop:
    """The name of a ``distributed.Event`` the caller sets to end the running runs (Dask
    cannot end a running task; the run ends itself when it sees the event)."""

    name: str

    def open(self) -> Any:
        from distributed import Event

        return Event(self.name)


def run_one(
    config: SessionConfig,
    index: int = 0,
    channel: Any = None,
    stop: _DaskStop | None = None,
    period: float = PROGRESS_PERIOD,
) -> RunResult:
    """Run one planned configuration to its end (in a worker process).

    With a ``channel`` (anything with ``put``), post the run's :class:`RunProgress` every
    ``period`` wall seconds while it runs, and once more when it ended. With ``stop`` (on
    Dask), look at it as often and stop the run once it is set (and return None without
    running when it is set before the run starts).
    """
    if channel is None and stop is None:
        return run_backtest(config)
    stop_event = None if stop is None else stop.open()
    if stop_event is not None and stop_event.is_set():
        return None  # type: ignore[return-value]  # the sweep was cancelled: not started
    sender = None if channel is None else _Sender(_open_channel(channel))
    last = None
    try:
        run = BacktestRun(config)
        expected = run.expected_bars

        def look(snap: Snapshot) -> None:
            if sender is not None:
                sender.offer(progress_of(index, snap, run.streamed_bars(), expected))
            if stop_event is not None and stop_event.is_set():
                run.stop()

        try:
            run.start()
            run.follow(look, poll=period)
        finally:
            run.stop()
        result = run.result()
        last = progress_of(index, run.session.snapshot(), run.streamed_bars(), expected, result)
        return result
    finally:
        if sender is not None:
            sender.close(last)


class _Reader:
    """The caller's side of a progress channel: a thread that gets records and calls
    ``on_progress`` with each, until :meth:`close`.

    ``get(timeout)`` returns one record, or raises :class:`queue.Empty` (or
    :class:`TimeoutError`) when none came within ``timeout`` (a manager's queue). With
    ``batch``, ``get(0)`` returns every record there is now, maybe none, without waiting,
    and the thread looks again every :data:`CANCEL_POLL` seconds (a ``distributed.Queue``:
    its ``get`` with a timeout that expires logs an error with a traceback in the
    scheduler's process, which a local cluster's is: on the caller's terminal).
    """

    def __init__(
        self,
        get: Callable[[float], Any],
        on_progress: Callable[[RunProgress], None],
        *,
        batch: bool = False,
    ):
        self._get = get
        self._on_progress = on_progress
        self._batch = batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="sweep-progress-reader")
        self._thread.daemon = True
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                records = self._get(0.0) if self._batch else [self._get(PROGRESS_PERIOD)]
            except (queue.Empty, TimeoutError):
                records = []
            except Exception:  # the channel is gone (its manager or the cluster ended)
                return
            for record in records:
                if isinstance(record, RunProgress):
                    self._on_progress(record)
            if not records:
                if self._stop.is_set():
                    return
                if self._batch:
                    self._stop.wait(CANCEL_POLL)

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what is still on the channel, then end the thread within ``timeout``."""
        self._stop.set()
        self._thread.join(timeout)

    def abandon(self) -> None:
        """End at the next timeout or failure of the channel, without waiting: the caller
        closes the channel next (which ends a get in progress), then :meth:`close`."""
        self._stop.set()


@contextlib.contextmanager
def _starting_workers() -> Iterator[None]:
    """While the block starts worker processes: they ignore Ctrl-C from their first
    instruction, and a stop signal the caller gets is acted on once they have started.

    A terminal sends Ctrl-C to every process of its foreground group: a worker process
    still starting its Python printed a ``KeyboardInterrupt`` traceback (from its imports,
    or ``EOFError`` when the sweep, interrupted while writing a new worker's preparation
    data, ended it), and a local Dask cluster interrupted while it started was left
    half-built (its ``atexit`` close failed with a traceback). Here SIGINT is blocked in
    the calling thread: the threads started in the block and the processes they start
    inherit that mask through ``fork`` and ``exec`` (a Python handler would not survive
    ``exec``), so a worker never sees Ctrl-C (it ignores it once set up:
    :func:`_quiet_worker`, :func:`_local_worker`); SIGTERM and SIGHUP are blocked as
    well, and wait for the worker's set-up. On the main thread, SIGINT, SIGTERM
    and SIGHUP with a Python handler are held meanwhile and delivered again as the block
    ends, so the caller stops the workers it has, whole.
    """
    held: list[int] = []
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def hold(signum: int, _frame: Any) -> None:
            held.append(signum)

        for signum in _STOP_SIGNALS:
            handler = signal.getsignal(signum)
            if callable(handler):
                previous[signum] = signal.signal(signum, hold)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(_STOP_SIGNALS))
    # multiprocessing's resource tracker, started with the first process, unblocks SIGINT
    # and SIGTERM in the starting thread: started first, then they are blocked again. (It
    # ignores those two itself; SIGHUP, to the group as a terminal hangs up, killed it:
    # started with it blocked, it keeps it blocked.)
    with contextlib.suppress(Exception):
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
    signal.pthread_sigmask(signal.SIG_BLOCK, set(_STOP_SIGNALS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # (a pending SIGINT: held now)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(held):
            signal.raise_signal(signum)  # the caller's handler raises here


def _run_where(*args: Any) -> tuple[int, RunResult, list[str]]:
    """:func:`run_one` in a worker, with the worker's process id and the threads the run
    started and left running (non-daemon ones, that keep the process from exiting: see
    :data:`WORKER_EXIT_GRACE`). An exception the run raises carries the process id."""
    before = set(threading.enumerate())
    try:
        result = run_one(*args)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            exc.sweep_worker_pid = os.getpid()  # type: ignore[attr-defined]
        raise
    finally:
        _flush_output()  # (a worker that cannot exit is killed: its prints are out)
    left = [
        thread.name
        for thread in threading.enumerate()
        if thread not in before and thread.is_alive() and not thread.daemon
    ]
    if left:
        global _left_threads
        _left_threads = True
    return os.getpid(), result, left


def _quiet_worker(output: str | None = None) -> None:
    """Worker initializer: Ctrl-C is the parent's to handle (it cancels the sweep). With
    ``output``, the worker's stdout and stderr go to that file (appended): a monitor owns
    the terminal, and a worker's prints or warnings must not land on its screen."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # (started with the stop signals blocked: _starting_workers; SIGINT is ignored now,
    # what came of it dropped; a SIGTERM or SIGHUP that came ends the worker now, as the
    # sweep's own ends do)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(_STOP_SIGNALS))
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(
            target=_exit_with, args=(parent,), name="sweep-parent-watch", daemon=True
        ).start()
    multiprocessing.util.Finalize(None, _watch_exit, exitpriority=0)
    if output is not None:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


def _watch_exit() -> None:
    """As a pool's worker process starts to exit (replaced after
    :data:`TASKS_PER_WORKER` runs, or the sweep is done): end it if it has not exited
    within :data:`WORKER_EXIT_GRACE` when a run left a thread running (that keeps Python
    from exiting), within ten times that otherwise, with the status :data:`_STUCK_EXIT`
    (the sweep warns of it: :func:`_close_pool`). The pool's thread waits for a replaced
    process to exit before it goes on: a process that could not exit held up the sweep for
    good."""
    grace = WORKER_EXIT_GRACE if _left_threads else 10 * WORKER_EXIT_GRACE

    def watch() -> None:
        time.sleep(grace)
        _flush_output()
        os._exit(_STUCK_EXIT)

    threading.Thread(target=watch, name="sweep-exit-watch", daemon=True).start()


def _exit_with(parent: multiprocessing.process.BaseProcess) -> None:
    """A worker's watch thread: end the worker as soon as the sweep's process is gone.

    A pool worker waits for its next run on a pipe whose write end it holds itself, so a
    sweep killed outright (SIGKILL, the out-of-memory killer) left its workers waiting
    forever, and a running run streaming on. The wait is on the parent's sentinel (a pipe
    that only the parent holds open, until it ends), never a poll. (The pipe closes as the
    parent dies, before its children are given to another parent: ``os.getppid()`` may
    still name it then.)
    """
    parent.join()
    os._exit(1)


def _local_worker(output: str | None = None) -> None:
    """Set up a local Dask cluster's worker (run on each as the cluster starts), as
    :func:`_quiet_worker` does for worker processes: Ctrl-C is the caller's to handle
    (the terminal sends it to the workers too: each printed a ``KeyboardInterrupt``
    traceback, about 70 lines for two, while the sweep was cancelling them), the warnings
    its cancelled runs log are not shown, and with ``output`` its stdout and stderr go to
    that file (the cluster's processes inherit the caller's terminal, where a monitor
    draws)."""
    if threading.current_thread() is threading.main_thread():  # (the worker's event loop)
        # SIGTERM and SIGHUP too (a terminal's hang-up, a kill of the process group):
        # killed by one, its nanny restarted it ("Restarting worker" warnings) and the
        # sweep's close waited for the new process. The nanny ends it (its stop message,
        # then SIGKILL), on the sweep's word.
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(_STOP_SIGNALS))  # (_starting_workers)
    # "Async instruction for <Task cancelled ...> ended with CancelledError": a cancelled run.
    logging.getLogger("distributed.worker.state_machine").setLevel(logging.ERROR)
    if output is not None:
        _output_to(output)


def _output_to(output: str) -> None:
    """This process's stdout and stderr go to ``output`` (appended)."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SessionkitError):
        return str(exc)
    return f"{exc.__class__.__name__}: {exc}"


def run_sweep(
    runs: Sequence[SweepRun],
    *,
    workers: int | None = None,
    dask: str | None = None,
    on_done: Callable[[SweepOutcome, int, int], None] | None = None,
    on_progress: Callable[[RunProgress], None] | None = None,
    cancel: threading.Event | None = None,
    worker_output: str | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> list[SweepOutcome]:
    """Run every planned run in parallel; a failing run does not stop the others.

    Parameters
    ----------
    runs
        From :func:`plan_sweep`.
    workers
        Worker processes (default: the CPU count). With ``dask="local"``, the local
        cluster's worker count.
    dask
        A Dask scheduler's address (``tcp://host:8786``), or ``local`` for a
        ``LocalCluster`` of worker processes started for this sweep; None: local
        processes through ``concurrent.futures``.
    on_done
        Called on the caller's thread after each run with (outcome, done, total).
    on_progress
        Called with each :class:`RunProgress` the workers post (about four a second per
        running run), on a reader thread of the caller's process. Records may arrive
        after the run's ``on_done``: the outcome is the last word.
    cancel
        Set it (from any thread) to cancel the pending runs and end the running ones;
        :func:`run_sweep` then returns the outcomes of the runs that finished.
    worker_output
        A file that the worker processes' stdout and stderr go to (appended), instead of
        the caller's terminal; on a local Dask cluster its logs are silenced below errors.

    on_warning
        Called on the caller's thread with what the sweep warns of: a worker process that
        did not exit once its runs were done (it was killed; see
        :data:`WORKER_EXIT_GRACE`). Default: logged (``logging``, this module's logger).

    Returns
    -------
    list of SweepOutcome
        In plan order (only the finished runs when cancelled). On KeyboardInterrupt (or
        any exception raised on the caller's thread, such as a SIGTERM handler's) the
        pending runs are cancelled, the running ones ended, and the exception is raised
        again once the workers are gone.
    """
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    outcomes: dict[int, SweepOutcome] = {}
    ran = _Ran(on_warning or logging.getLogger(__name__).warning)

    def finish(run: SweepRun, done: Any, error: BaseException | None) -> None:
        """``done`` is what :func:`_run_where` returned (None when ``error``)."""
        result = None
        if error is None:
            pid, result, left = done
            ran.add(pid, run, left)
        else:
            ran.add(getattr(error, "sweep_worker_pid", None), run, [])
        outcome = SweepOutcome(run, result, None if error is None else _describe(error))
        outcomes[run.index] = outcome
        if on_done is not None:
            on_done(outcome, len(outcomes), len(runs))

    if dask is not None:
        _run_on_dask(runs, dask, workers, finish, on_progress, cancel, worker_output, ran)
    else:
        _run_on_processes(runs, workers, finish, on_progress, cancel, worker_output, ran)
    return [outcomes[run.index] for run in runs if run.index in outcomes]


class _Cancelled(Exception):
    """The caller set ``cancel``."""


class _Ran:
    """Which runs each worker process ran (by process id), and which of them left a
    thread running that keeps the process from exiting; warns of a process killed
    because it did not exit."""

    def __init__(self, warn: Callable[[str], None]) -> None:
        self.warn = warn
        self.runs: dict[int, list[SweepRun]] = {}
        self.threads: dict[int, dict[int, list[str]]] = {}  # pid: {run index: names}

    def add(self, pid: int | None, run: SweepRun, left: Sequence[str]) -> None:
        if pid is None:
            return
        self.runs.setdefault(pid, []).append(run)
        if left:
            self.threads.setdefault(pid, {})[run.index] = list(left)

    def lingering(self, pid: int | None) -> bool:
        """Whether a run of process ``pid`` left a thread running (it may not exit)."""
        return pid in self.threads

    def killed(self, pid: int, grace: float) -> None:
        """Warn that process ``pid`` was killed, not having exited within ``grace``."""
        threads = self.threads.get(pid, {})
        runs = [r for r in self.runs.get(pid, []) if r.index in threads] or self.runs.get(pid, [])
        names = [name for r in runs for name in threads.get(r.index, [])]
        which = "; ".join(_run_label(r) for r in runs) or "no run"
        cause = (
            f"its run left the thread{'s' if len(names) > 1 else ''} "
            + ", ".join(repr(n) for n in names)
            + " running (a non-daemon thread the analysis started?)"
            if names
            else "something in it never ended"
        )
        self.warn(
            f"the worker process of {which} did not exit {grace:g}s after its runs were "
            f"done: {cause}; it was killed (pid {pid})"
        )


def _run_label(run: SweepRun) -> str:
    """``run 2 (analysis.options.fast=10, 2024-12-02..2024-12-06)``."""
    parts = [f"{k}={shown_setting(v)}" for k, v in run.parameters.items()]
    if run.window is not None:
        parts.append(f"{run.window[0]}..{run.window[1]}")
    return f"run {run.index + 1}" + (f" ({', '.join(parts)})" if parts else "")


def _run_on_processes(
    runs: Sequence[SweepRun],
    workers: int,
    finish: Callable,
    on_progress: Callable[[RunProgress], None] | None,
    cancel: threading.Event | None,
    worker_output: str | None = None,
    ran: _Ran | None = None,
) -> None:
    ran = ran or _Ran(logging.getLogger(__name__).warning)
    context = multiprocessing.get_context("spawn")
    recording = _Recording(context)  # (every worker process, the replaced ones too)
    manager = reader = executor = None
    channel = None
    pending: dict[Future, SweepRun] = {}
    ending = False  # cancelled or interrupted
    try:
        with _starting_workers():  # (a stop signal meanwhile: raised at its end)
            if on_progress is not None:
                starting = SyncManager(ctx=context)
                # Ctrl-C in a terminal reaches it too: the sweep decides.
                starting.start(_quiet_worker, (worker_output,))
                manager = starting
                channel = manager.Queue()
                reader = _Reader(lambda timeout: channel.get(timeout=timeout), on_progress)
            executor = _Pool(
                max_workers=min(workers, len(runs)) or 1,
                mp_context=recording,  # type: ignore[arg-type]
                initializer=_quiet_worker,
                initargs=(worker_output,),
                max_tasks_per_child=TASKS_PER_WORKER,
            )
            for run in runs:
                args = (run.config,) if channel is None else (run.config, run.index, channel)
                pending[executor.submit(_run_where, *args)] = run
        while pending:
            if cancel is not None and cancel.is_set():
                raise _Cancelled
            timeout = None if cancel is None else CANCEL_POLL
            done, _ = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                run = pending.pop(future)
                error = future.exception()
                finish(run, None if error else future.result(), error)
    except BaseException as exc:
        ending = True
        if reader is not None:
            reader.abandon()  # (the manager's shutdown ends it: no wait for a get)
        if executor is not None:
            _end_workers(executor, pending)
        if not isinstance(exc, _Cancelled):
            raise
    finally:
        if not ending:
            try:
                if executor is not None:
                    _close_pool(executor, ran, every=recording.processes)
            except BaseException:
                ending = True
                if executor is not None:
                    _end_workers(executor, {})
                raise
            finally:
                if reader is not None and not ending:
                    reader.close()  # every record delivered, then the channel goes
        if manager is not None:
            manager.shutdown()
        if reader is not None:
            reader.close()


class _Pool(ProcessPoolExecutor):
    """A process pool that replaces a worker that ended after its share of runs
    (``max_tasks_per_child``) whenever runs are waiting.

    CPython 3.11 decides whether to start a process by its count of idle workers, which
    every finished run raises and nothing lowers: once a worker ended after its share, the
    pool took the stale count for an idle worker, started none, and the sweep waited
    forever with no worker (CPython gh-115634). Here a process is started whenever the pool
    has fewer than its maximum and fewer than the runs not done (the pool starts its
    workers at once, as the sweep submits every run at once)."""

    def _adjust_process_count(self) -> None:
        processes = getattr(self, "_processes", None)
        if processes is None:
            return
        pending = getattr(self, "_pending_work_items", {})
        while len(processes) < min(self._max_workers, len(pending)):
            self._spawn_process()  # type: ignore[attr-defined]


class _Recording:
    """A multiprocessing context that keeps every process it makes (a pool forgets the
    processes it replaced)."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self.processes: list[multiprocessing.process.BaseProcess] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def Process(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 (as the context's)
        process = self._context.Process(*args, **kwargs)
        self.processes.append(process)
        return process


def _close_pool(
    executor: ProcessPoolExecutor,
    ran: _Ran,
    grace: float = WORKER_EXIT_GRACE,
    *,
    every: Sequence[multiprocessing.process.BaseProcess] = (),
) -> None:
    """Shut the pool down once every run is done: its worker processes exit. One whose
    run left a thread running that has not exited within ``grace`` is killed, and so is
    any other still there after ten times that (something else in it never ended), each
    with a warning naming its runs (:meth:`_Ran.killed`).

    Only a process that really has not exited is killed and warned of
    (:func:`_kill_unless_exited`): a process's sentinel (what ``join`` waits on) is closed
    as the process closes its files, a moment before it has exited, and the pool's own
    thread reaps the processes, so ``join`` then ``is_alive`` here said "still running" of
    a worker that was exiting normally (about one sweep in six warned falsely).

    ``every`` is every process the pool started, the ones it replaced too (see
    :data:`TASKS_PER_WORKER`): one that ended itself because it could not exit
    (:func:`_watch_exit`) is warned of as well."""
    current = dict(getattr(executor, "_processes", None) or {})
    pool_thread = getattr(executor, "_executor_manager_thread", None)
    executor.shutdown(wait=False)
    began = time.monotonic()
    settled: set[int] = set()
    killed: set[int] = set()  # (warned of)
    for bound in (grace, 10 * grace):
        for pid, process in current.items():
            if pid in settled or (bound == grace and not ran.lingering(pid)):
                continue
            if _kill_unless_exited(process, began + bound):
                ran.killed(pid, bound)
                killed.add(pid)
            settled.add(pid)
    if pool_thread is not None:
        pool_thread.join(5)  # (its processes are gone: see _end_workers)
    for process in every:  # (every one, the replaced ones too: reaped by the pool)
        if process.pid not in killed and process.exitcode == _STUCK_EXIT:
            ran.killed(process.pid, grace if ran.lingering(process.pid) else 10 * grace)


_EXITED_WAIT = 1.0
"""Wall seconds a process whose sentinel closed is given to become exited (it closes its
files a moment before), where a process cannot be waited on exactly (no ``pidfd``)."""


def _kill_unless_exited(process: multiprocessing.process.BaseProcess, deadline: float) -> bool:
    """Wait until ``process`` (a child of this process) has exited or until ``deadline``
    (``time.monotonic()``), then kill it if it has not exited; say whether it was killed.

    Exact and never reaping it (the pool's thread does): on Linux the wait is on a
    ``pidfd`` of the process (ready once it has exited) and whether it has exited is asked
    with ``waitid(..., WNOWAIT)``, and the kill goes through that ``pidfd`` (never to a
    process id already reaped, that the system may have given to another process).
    Elsewhere the wait is on the process's sentinel, and then on its exit for up to
    :data:`_EXITED_WAIT`.
    """
    pid = process.pid
    popen = getattr(process, "_popen", None)
    if pid is None or popen is None or getattr(popen, "returncode", None) is not None:
        return False
    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
    handle = None
    with contextlib.suppress(AttributeError, OSError):  # (Linux 5.3+; a zombie has one)
        handle = os.pidfd_open(pid)
    if handle is not None and hasattr(os, "P_PIDFD"):
        try:
            with contextlib.suppress(OSError, ValueError):
                multiprocessing.connection.wait([handle], max(0.0, deadline - time.monotonic()))
            try:
                if os.waitid(os.P_PIDFD, handle, flags) is not None:
                    return False  # exited: a zombie the pool's thread reaps
            except ChildProcessError:
                return False  # exited and reaped
            signal.pidfd_send_signal(handle, signal.SIGKILL)
            with contextlib.suppress(OSError, ValueError):
                multiprocessing.connection.wait([handle], 1.0)
            return True
        except OSError:
            return False
        finally:
            os.close(handle)
    if handle is not None:
        os.close(handle)
    with contextlib.suppress(OSError, ValueError):
        multiprocessing.connection.wait([process.sentinel], max(0.0, deadline - time.monotonic()))
    until = time.monotonic() + _EXITED_WAIT
    while True:
        try:
            if os.waitid(os.P_PID, pid, flags) is not None:
                return False
        except ChildProcessError:
            return False  # exited and reaped
        except OSError:
            break
        if time.monotonic() >= until:
            break
        time.sleep(0.01)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ValueError, OSError):
        multiprocessing.connection.wait([process.sentinel], 1.0)
    return True


def _end_workers(executor: ProcessPoolExecutor, pending: Mapping[Future, SweepRun]) -> None:
    """Cancel the pending runs and end the worker processes (bounded: never waits on the
    pool itself)."""
    for future in pending:
        future.cancel()
    # Running runs cannot be cancelled through the executor: end their processes, and
    # never wait on the executor for them (a worker ended while it starts can leave
    # the pool's shutdown waiting); each is joined with a bound, then killed.
    processes = list(getattr(executor, "_processes", {}).values())
    pool_thread = getattr(executor, "_executor_manager_thread", None)  # shutdown drops it
    for process in processes:
        process.terminate()
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join(1)
    if pool_thread is not None:
        # Let the pool's thread end (its processes are gone, so it does at once): at exit,
        # CPython 3.11 wakes it through a pipe that it closes as it ends, with no lock
        # between the two, and a wake-up that loses that race prints a traceback ("Bad
        # file descriptor", seen once after Ctrl-C). Ended, its pipe is left alone.
        pool_thread.join(5)


def _run_on_dask(
    runs: Sequence[SweepRun],
    address: str,
    workers: int,
    finish: Callable,
    on_progress: Callable[[RunProgress], None] | None,
    cancel: threading.Event | None,
    worker_output: str | None = None,
    ran: _Ran | None = None,
) -> None:
    ran = ran or _Ran(logging.getLogger(__name__).warning)
    try:
        from dask.distributed import Client, Event, LocalCluster, Queue
        from dask.distributed import wait as dask_wait
    except ImportError:
        raise UsageError(
            "--dask needs dask.distributed: pip install -e '.[dask]' in the sessionkit checkout"
        ) from None
    cluster = client = None
    try:
        if address == "local" or address.startswith("local:"):
            count = int(address.partition(":")[2] or workers)
            # (a stop signal while it starts: raised once it is up, then closed whole)
            with _starting_workers():
                cluster = LocalCluster(
                    n_workers=count,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=logging.ERROR if worker_output else logging.WARNING,
                )
                client = Client(cluster)
                client.run(_local_worker, worker_output)  # (a remote cluster's are its own)
        else:
            client = Client(address, timeout=10)
    except (OSError, TimeoutError, ValueError) as exc:
        _close_started(client, cluster)
        raise UsageError(f"--dask {address}: cannot reach the cluster: {exc}") from None
    except BaseException:  # interrupted as the cluster started: closed now, not at exit
        _close_started(client, cluster)
        raise
    futures: list[Any] = []
    reader = None
    ending = False  # cancelled or interrupted
    name = f"sessionkit-sweep-{uuid.uuid4().hex}"
    stop = _DaskStop(name)
    try:
        stop_event = Event(name, client=client)
        channel = None
        if on_progress is not None:
            channel = _DaskChannel(name)
            progress_queue = Queue(name, client=client)
            reader = _Reader(
                lambda _timeout: progress_queue.get(batch=True), on_progress, batch=True
            )
        futures = client.map(
            _run_where,
            [run.config for run in runs],
            [run.index for run in runs],
            [channel] * len(runs),
            [stop] * len(runs),
            pure=False,
        )
        by_key = {future.key: run for future, run in zip(futures, runs, strict=True)}
        remaining = list(futures)
        while remaining:
            if cancel is not None and cancel.is_set():
                raise _Cancelled
            try:
                done, not_done = dask_wait(
                    remaining,
                    timeout=None if cancel is None else CANCEL_POLL,
                    return_when="FIRST_COMPLETED",
                )
            except TimeoutError:
                continue
            remaining = list(not_done)
            for future in done:
                run = by_key[future.key]
                try:
                    result = future.result()
                except Exception as exc:
                    finish(run, None, exc)
                else:
                    finish(run, result, None)
    except BaseException as exc:
        # Dask cannot end a running task: the runs end themselves once they see the event
        # (within PROGRESS_PERIOD), and the pending ones return at once when they start;
        # what has not ended within a bound is cancelled.
        ending = True
        with contextlib.suppress(Exception):
            stop_event.set()
        if reader is not None:
            reader.abandon()  # (closing the client ends it: no wait for a get)
        with contextlib.suppress(Exception):
            dask_wait(futures, timeout=2 * PROGRESS_PERIOD + 1)
        with contextlib.suppress(Exception):
            client.cancel(futures)
        if cluster is not None:  # its workers are killed if slow to exit: output first
            with contextlib.suppress(Exception):
                client.run(_flush_output)
        if not isinstance(exc, _Cancelled):
            raise
    finally:
        if reader is not None and not ending:
            reader.close()  # every record delivered, then the channel goes
        try:
            if cluster is not None and not ending:
                # The processes whose runs left a thread running may never exit: their
                # nannies are given WORKER_EXIT_GRACE, the others close as they do.
                stuck = {
                    address: pid
                    for address, pid in _worker_pids(cluster).items()
                    if ran.lingering(pid)
                }
                client.close()
                if stuck:
                    _close_local_cluster(cluster, WORKER_EXIT_GRACE / 0.8, only=set(stuck), ran=ran)
                else:
                    cluster.close()
            else:
                client.close()
                if cluster is not None:
                    _close_local_cluster(cluster)
        finally:
            if reader is not None:
                reader.close()


def _close_started(client: Any, cluster: Any) -> None:
    """Close what started of a local cluster (and its client) when starting it failed or
    was interrupted: closed whole here, before ``atexit`` would try (a half-started
    cluster's close there failed with a traceback)."""
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()
    if cluster is not None:
        _close_local_cluster(cluster)


def _worker_pids(cluster: Any) -> dict[Any, int]:
    """The process id of each worker of a local cluster, by its name in the cluster."""
    pids = {}
    for worker_name, nanny in list(cluster.workers.items()):
        process = getattr(getattr(nanny, "process", None), "process", None)
        pid = getattr(process, "pid", None)
        if pid is not None:
            pids[worker_name] = pid
    return pids


def _flush_output() -> None:
    """Flush a worker's stdout and stderr (run on each worker of a local cluster before
    its processes may be killed: an analysis's prints are in a file's buffer)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _close_local_cluster(
    cluster: Any,
    patience: float = WORKER_EXIT_PATIENCE,
    *,
    only: Collection[Any] | None = None,
    ran: _Ran | None = None,
) -> None:
    """Close a local Dask cluster without waiting for its worker processes' Python to
    tear itself down (a cancelled sweep), or for a worker that cannot exit.

    ``cluster.close()`` has each nanny ask its worker to close and then waits for the
    worker process to exit: the worker closes within milliseconds (its runs have ended),
    then the process spends about a second tearing its interpreter down (measured: 0.55 s
    of module teardown in one worker, 0.9-1.5 s for ``cluster.close()`` with two). Here
    each nanny (of the workers named in ``only``, default all) is closed with ``patience``:
    its worker closes as before, and a process still there after ``0.8 * patience`` is
    killed (the caller has had the workers flush their output: :func:`_flush_output`);
    with ``ran``, each killed process is warned of (:meth:`_Ran.killed`). Then the cluster
    closes (its scheduler and the other workers).
    """
    nanny_log = logging.getLogger("distributed.nanny")
    level = nanny_log.level
    # ("Worker process still alive after 0.4 seconds, killing": meant here)
    nanny_log.setLevel(max(level, logging.ERROR))
    killed: list[int] = []

    async def close_one(worker: Any) -> None:
        process = getattr(getattr(worker, "process", None), "process", None)
        await worker.close(timeout=patience, reason="sweep-cancelled")
        if process is not None and process.exitcode == -signal.SIGKILL:
            killed.append(process.pid)

    async def close_nannies() -> None:
        await asyncio.gather(
            *(
                close_one(worker)
                for worker_name, worker in list(cluster.workers.items())
                if hasattr(worker, "close") and (only is None or worker_name in only)
            ),
            return_exceptions=True,
        )

    try:
        with contextlib.suppress(Exception):
            cluster.sync(close_nannies)
    finally:
        nanny_log.setLevel(level)
    if ran is not None:
        for pid in killed:
            ran.killed(pid, round(0.8 * patience, 2))
    cluster.close()


def rank(
    outcomes: Sequence[SweepOutcome], metric: str | None, *, ascending: bool = False
) -> list[SweepOutcome]:
    """Outcomes ordered by ``metric`` (an analysis metric or a numeric result field such as
    ``bars_per_second``), best first; runs without the metric come last, in plan order."""
    if metric is None:
        return list(outcomes)

    def value(outcome: SweepOutcome) -> float | None:
        return metric_of(outcome, metric)

    known = [o for o in outcomes if value(o) is not None]
    unknown = [o for o in outcomes if value(o) is None]
    known.sort(key=lambda o: value(o), reverse=not ascending)  # type: ignore[arg-type, return-value]
    return known + unknown


def _numeric_fields() -> tuple[str, ...]:
    numbers = {"int", "float", "int | None", "float | None"}
    return (*(f.name for f in fields(RunResult) if f.type in numbers), "signal_count")


NUMERIC_FIELDS = _numeric_fields()
"""The numeric fields of a :class:`RunResult` a sweep can rank by, besides the analysis's
metrics (``bars_per_second``, ``steps``, ``signal_count`` ...)."""


def rank_keys(outcomes: Sequence[SweepOutcome]) -> list[str]:
    """What ``outcomes`` can be ranked by: every metric a run reported (first seen first),
    then :data:`NUMERIC_FIELDS`."""
    names: list[str] = []
    for outcome in outcomes:
        for name in outcome.result.metrics if outcome.result is not None else ():
            if name not in names:
                names.append(name)
    return names + [name for name in NUMERIC_FIELDS if name not in names]


def check_rank_by(runs: Sequence[SweepRun], name: str) -> None:
    """Refuse, before any run starts, a metric ``name`` that no run of ``runs`` can report.

    A name is resolved as :func:`metric_of` does: an analysis metric first, then a numeric
    field of the result (:data:`NUMERIC_FIELDS`, always there). An analysis's metric names
    are known only once a run reports them (``metrics()`` returns what it has: SmaCross has
    no ``win_rate_pct`` without trades), so a name is refused here only when no run's
    analysis can report any metric: no run has an analysis, or no run's analysis class has
    a ``metrics`` method. Otherwise the name is checked against what the runs reported, once
    they ran (:func:`rank_keys`).

    Raises
    ------
    UsageError
        Naming what the runs can be ranked by.
    """
    if name in NUMERIC_FIELDS:
        return
    from ..pipeline.analysis import load_analysis_class

    entries: dict[str, Any] = {}
    for run in runs:
        analysis = run.config.analysis
        if analysis.entry is not None:
            entries.setdefault(analysis.entry, run.config.folder)
    fields_ = ", ".join(NUMERIC_FIELDS)
    if not entries:
        raise UsageError(
            f"--rank-by {name}: the runs have no analysis, hence no metric; rank by one of: "
            f"{fields_}"
        )
    for entry, folder in entries.items():
        # (each was imported when the run was planned: this finds it in sys.modules)
        if callable(getattr(load_analysis_class(entry, folder=folder), "metrics", None)):
            return  # its metrics are known once the runs report them
    which = ", ".join(entries)
    raise UsageError(
        f"--rank-by {name}: the analysis ({which}) reports no metric (it has no metrics() "
        f"method); rank by one of: {fields_}"
    )


def metric_of(outcome: SweepOutcome, metric: str) -> float | None:
    """The value of ``metric`` in one outcome (None when the run has none, or its value is
    not a number: NaN, as a metric that is absent, ranks last)."""
    result = outcome.result
    if result is None or result.state == "error":
        return None
    value = result.metrics[metric] if metric in result.metrics else getattr(result, metric, None)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def default_metric(outcomes: Sequence[SweepOutcome]) -> str | None:
    """The first metric the analysis reports (``total_return_pct`` for SmaCross)."""
    for outcome in outcomes:
        if outcome.result is not None and outcome.result.metrics:
            return next(iter(outcome.result.metrics))
    return None
