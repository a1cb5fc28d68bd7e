"""Sweeps: many independent runs (a grid of overrides and/or date shards) in parallel.

Runs on the caller's thread. Every run is planned and validated here first (a mistake in
any parameter is reported before anything starts); each run then happens in a worker
process, through :class:`concurrent.futures.ProcessPoolExecutor` (the default) or a Dask
cluster (``dask.distributed``, the ``sessionkit[dask]`` extra). A worker receives the run's
validated :class:`~sessionkit.engine.config.SessionConfig`, whose database is a URL (the
workers share the database; use PostgreSQL across machines), and sends back a
:class:`~sessionkit.engine.runs.result.RunResult`. Threads stay inside a run: the
parallelism across runs is processes.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from ..config import SessionConfig, parse_setting
from ..errors import ConfigError, SessionkitError, UsageError
from .backtest import ConfigLike, resolve_config, run_backtest
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: index, parameters, window, state, error and the whole result."""
        window = self.run.window
        return {
            "index": self.run.index,
            "parameters": {
                k: v.isoformat() if isinstance(v, date) else v
                for k, v in self.run.parameters.items()
            },
            "window": None if window is None else [window[0].isoformat(), window[1].isoformat()],
            "state": self.state,
            "error": self.error if self.result is None else self.result.error,
            "result": None if self.result is None else self.result.to_dict(),
        }


def parse_param(text: str) -> tuple[str, list[Any]]:
    """Parse ``--param KEY=V1,V2,...``: a dotted key and its values (each a TOML value).

    Raises
    ------
    ConfigError
        If there is no ``=``, no value, or a value repeats.
    """
    key, _, raw = text.partition("=")
    values = []
    for piece in raw.split(","):
        _key, value = parse_setting(f"{key}={piece}")
        values.append(value)
    if not raw.strip() or any(v == "" for v in values):
        raise ConfigError(f"--param {text}", None, "expected KEY=V1,V2,... with no empty value")
    if len({repr(v) for v in values}) != len(values):
        raise ConfigError(f"--param {text}", None, "a value repeats")
    return key.strip(), values


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
        warms up from its own trailing history.
    overrides, origins
        Overrides common to every run (``--set``), and the options that set them.

    Raises
    ------
    ConfigError
        If any run's configuration is invalid (naming the parameter that made it so).
    """
    base = resolve_config(config, overrides, origins)
    grid = dict(grid or {})
    keys = list(grid)
    combos = list(itertools.product(*(grid[k] for k in keys))) if keys else [()]
    windows: list[tuple[date, date] | None] = [None]
    if shard_by is not None:
        windows = list(_shards(base, shard_by))
    runs = []
    for values, window in itertools.product(combos, windows):
        parameters = dict(zip(keys, values, strict=True))
        extra: dict[str, Any] = dict(parameters)
        labels = {k: f"--param {k}={_text(v)}" for k, v in parameters.items()}
        if window is not None:
            extra["backtest.start_date"], extra["backtest.end_date"] = window
            labels["backtest.start_date"] = labels["backtest.end_date"] = f"--shard-by {shard_by}"
        configured = resolve_config(base, extra, labels) if extra else base
        runs.append(SweepRun(len(runs), parameters, window, configured))
    return runs


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _shards(config: SessionConfig, shard_by: ShardBy) -> Iterator[tuple[date, date]]:
    if config.mode != "backtest" or config.backtest is None:
        raise ConfigError("--shard-by", None, "only a backtest can be split into date shards")
    from ..core.time_manager import TimeManager
    from ..store.db import open_db

    engine = open_db(config.resolved_database_url())
    try:
        days = TimeManager(engine, config.exchange_group).sessions_between(
            config.backtest.start_date, config.backtest.end_date
        )
    finally:
        engine.dispose()
    if not days:
        raise ConfigError(
            config.origin_of("backtest"),
            "backtest",
            f"no {config.exchange_group} trading day from {config.backtest.start_date} to "
            f"{config.backtest.end_date}",
        )

    def group(day: date) -> tuple[int, ...]:
        if shard_by == "session":
            return (day.toordinal(),)
        if shard_by == "week":
            return tuple(day.isocalendar()[:2])
        return (day.year, day.month)

    for _key, members in itertools.groupby(days, key=group):
        chunk = list(members)
        yield chunk[0], chunk[-1]


def run_one(config: SessionConfig) -> RunResult:
    """Run one planned configuration to its end (in a worker process)."""
    return run_backtest(config)


def _quiet_worker() -> None:
    """Worker initializer: Ctrl-C is the parent's to handle (it cancels the sweep)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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

    Returns
    -------
    list of SweepOutcome
        In plan order. On KeyboardInterrupt the pending runs are cancelled, the running
        ones stopped, and the interrupt is raised again once the workers are gone.
    """
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    outcomes: dict[int, SweepOutcome] = {}

    def finish(run: SweepRun, result: RunResult | None, error: BaseException | None) -> None:
        outcome = SweepOutcome(run, result, None if error is None else _describe(error))
        outcomes[run.index] = outcome
        if on_done is not None:
            on_done(outcome, len(outcomes), len(runs))

    if dask is not None:
        _run_on_dask(runs, dask, workers, finish)
    else:
        _run_on_processes(runs, workers, finish)
    return [outcomes[run.index] for run in runs]


def _run_on_processes(runs: Sequence[SweepRun], workers: int, finish: Callable) -> None:
    context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(
        max_workers=min(workers, len(runs)) or 1, mp_context=context, initializer=_quiet_worker
    )
    pending: dict[Future, SweepRun] = {}
    try:
        for run in runs:
            pending[executor.submit(run_one, run.config)] = run
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                run = pending.pop(future)
                error = future.exception()
                finish(run, None if error else future.result(), error)
    except KeyboardInterrupt:
        for future in pending:
            future.cancel()
        # Running runs cannot be cancelled through the executor: end their processes.
        for process in list(getattr(executor, "_processes", {}).values()):
            process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def _run_on_dask(runs: Sequence[SweepRun], address: str, workers: int, finish: Callable) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise UsageError("--dask needs dask.distributed: pip install 'sessionkit[dask]'") from None
    cluster = None
    try:
        if address == "local" or address.startswith("local:"):
            count = int(address.partition(":")[2] or workers)
            cluster = LocalCluster(
                n_workers=count, threads_per_worker=1, processes=True, dashboard_address=":0"
            )
            client = Client(cluster)
        else:
            client = Client(address, timeout=10)
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            cluster.close()
        raise UsageError(f"--dask {address}: cannot reach the cluster: {exc}") from None
    futures = []
    try:
        futures = client.map(run_one, [run.config for run in runs], pure=False)
        by_key = {future.key: run for future, run in zip(futures, runs, strict=True)}
        for future in as_completed(futures):
            run = by_key[future.key]
            try:
                result = future.result()
            except Exception as exc:
                finish(run, None, exc)
            else:
                finish(run, result, None)
    except KeyboardInterrupt:
        client.cancel(futures)
        raise
    finally:
        client.close()
        if cluster is not None:
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


def metric_of(outcome: SweepOutcome, metric: str) -> float | None:
    """The value of ``metric`` in one outcome (None when the run has none)."""
    result = outcome.result
    if result is None or result.state == "error":
        return None
    if metric in result.metrics:
        return result.metrics[metric]
    value = getattr(result, metric, None)
    return float(value) if isinstance(value, int | float) else None


def default_metric(outcomes: Sequence[SweepOutcome]) -> str | None:
    """The first metric the analysis reports (``total_return_pct`` for SmaCross)."""
    for outcome in outcomes:
        if outcome.result is not None and outcome.result.metrics:
            return next(iter(outcome.result.metrics))
    return None
