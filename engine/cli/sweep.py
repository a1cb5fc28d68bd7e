"""``sessionkit sweep``: many independent runs in worker processes or on a Dask cluster.

Runs on the main thread: plans and validates every run
(:func:`~sessionkit.engine.runs.sweep.plan_sweep`), runs them
(:func:`~sessionkit.engine.runs.sweep.run_sweep`) with a progress bar (runs done and the
bars of the running ones, from the workers' progress records, with an ETA), then prints a
table ranked by a metric, or one JSON object. A ``--rank-by`` that no run can have is a
user's mistake (exit status 2, naming what the runs can be ranked by): refused before any
run starts when that can be known (it is no numeric result field, and no run's analysis
reports metrics: :func:`~sessionkit.engine.runs.sweep.check_rank_by`); an analysis's metric
names are known only once the runs report them, so a name none of them reported is refused
after the runs, once their table (unranked) and ``--out`` are written. Ctrl-C (SIGINT)
and SIGTERM cancel the pending runs, end the running ones and still report those that
finished (exit status 130 and 143, like ``sessionkit run``); SIGHUP (the terminal closed)
too, exit status 129.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from .run import (
    ConfigArgument,
    DbOption,
    EndOption,
    SetOption,
    SpeedOption,
    StartOption,
    Terminated,
    sigterm_stops,
)


class _SweepBar:
    """The progress bar of a sweep: runs done plus the done fraction of each running run
    (from the workers' :class:`~sessionkit.engine.runs.sweep.RunProgress` records), the
    bars streamed so far and an ETA. Updated from the caller's thread (finished runs) and
    the sweep's progress reader thread (records)."""

    def __init__(self, total: int) -> None:
        self.progress = _progress(total)
        self.task = self.progress.task_ids[0]
        self._lock = threading.Lock()
        self._done: set[int] = set()
        self._running: dict[int, Any] = {}
        self._bars_done = 0

    def on_progress(self, record: Any) -> None:
        with self._lock:
            if record.index not in self._done:
                self._running[record.index] = record
            self._update()

    def on_done(self, outcome: Any, _done: int, _total: int) -> None:
        with self._lock:
            index = outcome.run.index
            self._done.add(index)
            record = self._running.pop(index, None)
            # (a run can end before its first record: its bars are its result's)
            bars = _result_bars(outcome.result)
            if bars is None and record is not None:
                bars = record.bars
            self._bars_done += bars or 0
            self._update()

    def _update(self) -> None:
        partial = sum(r.fraction or 0.0 for r in self._running.values())
        bars = self._bars_done + sum(r.bars for r in self._running.values())
        self.progress.update(
            self.task,
            completed=len(self._done) + partial,
            bars=f"{bars:,} bars, {len(self._running)} running",
        )


def _result_bars(result: Any) -> int | None:
    """The base bars a finished run streamed (of every symbol), as its table row shows
    them; None without a result."""
    if result is None:
        return None
    base = next(iter(next(iter(result.bars.values()), {}) or {"": 0}))
    return sum(per.get(base, 0) for per in result.bars.values())


def _progress(total: int) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs"),
        TextColumn("{task.fields[bars]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=True,
        console=Console(stderr=True),  # (stdout is the table's: a file, a pipe)
    )
    progress.add_task("sweep", total=total, bars="")
    return progress


def _label(outcome: Any) -> str:
    """``run 2 completed (analysis.options.fast=10, 2024-12-02..2024-12-06)``."""
    from ..config import shown_setting

    parts = [f"{k}={shown_setting(v)}" for k, v in outcome.run.parameters.items()]
    if outcome.run.window is not None:
        parts.append(f"{outcome.run.window[0]}..{outcome.run.window[1]}")
    return f"run {outcome.run.index + 1} {outcome.state}" + (
        f" ({', '.join(parts)})" if parts else ""
    )


def _rows(ranked: list[Any], metric_names: list[str]) -> tuple[list[str], list[list[Any]]]:
    keys: list[str] = []
    for outcome in ranked:
        for key in outcome.run.parameters:
            if key not in keys:
                keys.append(key)
    sharded = any(o.run.window is not None for o in ranked)
    header = ["rank", *keys, *(["window"] if sharded else [])]
    header += ["state", "sessions", "bars", "signals", *metric_names, "seconds", "error"]
    rows = []
    for position, outcome in enumerate(ranked, start=1):
        result = outcome.result
        window = outcome.run.window
        parameters = outcome.run.parameters
        row: list[Any] = [position, *(_parameter(parameters.get(k, "")) for k in keys)]
        if sharded:
            row.append("" if window is None else f"{window[0]}..{window[1]}")
        if result is None:
            row += [outcome.state, "", "", ""] + [""] * len(metric_names) + ["", outcome.error]
        else:
            row += [result.state, len(result.sessions), _result_bars(result)]
            row.append(result.signal_count)
            row += [result.metrics.get(m, "") for m in metric_names]
            row += [result.wall_seconds, result.error or ""]
        rows.append(row)
    return header, rows


def _print_table(
    header: list[str], rows: list[list[Any]], title: str, metrics: frozenset[str] = frozenset()
) -> None:
    """The ranked table; errors (the last column) are listed below it, whole. The
    ``metrics`` columns as the run's summary and the monitor show them."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ..runs.summary import metric_number
    from . import plain_console

    table = Table(title=Text(title))
    for name in header[:-1]:
        table.add_column(
            name, justify="left" if name in ("state", "window") else "right", no_wrap=True
        )
    cells = [
        [
            metric_number(name, v) if name in metrics and v != "" else _cell(v)
            for name, v in zip(header[:-1], row[:-1], strict=True)
        ]
        for row in rows
    ]
    for row in cells:
        table.add_row(*map(Text, row))  # parameters and errors are the user's text
    needed = 1 + sum(
        3 + max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(header[:-1])
    )
    console = plain_console(width=max(Console().width, needed))
    console.print(table)
    for row in rows:
        if row[-1]:
            console.print(f"rank {row[0]}: {row[-1]}", soft_wrap=True, markup=False)


class _HungUp(Exception):
    """SIGHUP arrived (the terminal was closed): the sweep stops as on SIGTERM (exit
    status 129)."""


@contextlib.contextmanager
def _sighup_stops() -> Iterator[None]:
    """Turn SIGHUP into :class:`_HungUp` on the main thread while the block runs (by
    default it killed the sweep at once: no output, and the pool's semaphores reported
    leaked by ``multiprocessing``'s resource tracker)."""

    def handler(_signum: int, _frame: Any) -> None:
        raise _HungUp

    hup = getattr(signal, "SIGHUP", None)
    if hup is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(hup, handler)
    try:
        yield
    finally:
        signal.signal(hup, previous)


def _detach_from_hung_up_terminal() -> None:
    """After SIGHUP: stdout and stderr that are a terminal (now hung up: writing to it
    fails) go to ``os.devnull``, so the report is written where it can be (a file, a
    pipe) and the exit status stays 129."""
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
            if not os.isatty(fd):
                continue
            with contextlib.suppress(OSError):
                stream.flush()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
        except (OSError, ValueError, AttributeError):
            continue


def _check_writable(out: Path) -> None:
    """Prove, before any run, that the table can be written to ``out``: an existing file
    is opened for appending (nothing is written), otherwise a file is created and removed
    at once in its folder, or in the nearest existing parent when the folder does not
    exist yet (nothing is left behind; the folders are made once the runs are done).

    Raises
    ------
    UsageError
        ``--out FILE: cannot write it: ...``, as when the writing itself fails.
    """
    from ..errors import UsageError

    try:
        if out.exists():
            with out.open("a", encoding="utf-8"):
                pass
            return
        probe = out.parent
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(probe))
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".sessionkit-check-"):
            pass
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write it: {exc}") from None


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.4g}"
    return str(value)


def _parameter(value: Any) -> Any:
    """A parameter's cell: a number or a word as it is, a table, list, boolean or date as
    it is written after ``--param KEY=`` (``{fast = 5, slow = 20}``)."""
    from ..config import mask_secrets, shown_setting

    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return shown_setting(value)


def sweep_command(
    config: ConfigArgument = None,
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="A grid axis: KEY=V1,V2,... (repeatable; runs = the cartesian product).",
            metavar="KEY=V1,V2",
        ),
    ] = None,
    shard_by: Annotated[
        str | None,
        typer.Option(
            "--shard-by",
            help="Split the window into one run per session, week or month.",
            metavar="session|week|month",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Worker processes (default: the CPU count).", min=1),
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            help="Run on a Dask cluster: its scheduler address, or 'local' for a local "
            "cluster of --workers processes (the dask extra: pip install -e '.\\[dask]' in the sessionkit checkout).",
            metavar="ADDRESS",
        ),
    ] = None,
    rank_by: Annotated[
        str | None,
        typer.Option(
            "--rank-by",
            help="Metric to rank by, best (highest) first; default: the analysis's first.",
            metavar="METRIC",
        ),
    ] = None,
    ascending: Annotated[
        bool, typer.Option("--ascending", help="Rank the lowest value first.")
    ] = False,
    settings: SetOption = None,
    db: DbOption = None,
    start: StartOption = None,
    end: EndOption = None,
    speed: SpeedOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    out_text: Annotated[
        str | None,  # as typed: a Path makes "" the working folder
        typer.Option("--out", help="Also write the ranked table as CSV.", metavar="FILE.csv"),
    ] = None,
) -> None:
    """Run a grid of overrides and/or date shards as independent sessions in parallel."""
    from ..config import option_overrides
    from ..errors import UsageError
    from ..runs.sweep import (
        check_rank_by,
        default_metric,
        json_ready,
        parse_grid,
        plan_sweep,
        rank,
        rank_keys,
        run_sweep,
        shard_warnings,
    )

    if out_text is not None and not out_text.strip():
        raise UsageError("--out: the value is empty: give the CSV file to write the table to")
    out = None if out_text is None else Path(out_text)
    if out is not None and out.is_dir():
        raise UsageError(f"--out {out}: a folder: give the CSV file to write the table to")
    if out is not None:  # found unwritable after every run ran: now, before any
        _check_writable(out)
    if shard_by is not None and shard_by not in ("session", "week", "month"):
        raise UsageError(f"--shard-by must be session, week or month, not {shard_by!r}")
    if not params and shard_by is None:
        raise UsageError("sessionkit sweep needs at least one --param KEY=V1,V2 or --shard-by")
    overrides, origins = option_overrides(
        db=db, start=start, end=end, speed=speed, settings=settings or ()
    )
    grid = parse_grid(params or (), origins)
    runs = plan_sweep(
        config,
        grid=grid,
        shard_by=shard_by,
        overrides=overrides,
        origins=origins,  # type: ignore[arg-type]
    )
    if rank_by is not None:  # what can be known before any run: refused now
        check_rank_by(runs, rank_by)
    warnings = shard_warnings(runs, f"--shard-by {shard_by}")
    for warning in warnings:
        typer.echo(f"sessionkit: warning: {warning}", err=True)
    bar = _SweepBar(len(runs)) if not as_json and sys.stderr.isatty() else None
    finished: list[Any] = []

    def on_warning(text: str) -> None:  # (a worker process that could not exit)
        warnings.append(text)
        if bar is not None:
            bar.progress.console.print(f"sessionkit: warning: {text}", markup=False)
        else:
            typer.echo(f"sessionkit: warning: {text}", err=True)

    def on_done(outcome: Any, done: int, total: int) -> None:
        finished.append(outcome)
        if bar is not None:
            bar.on_done(outcome, done, total)
        else:  # a log (CI, a pipe): one line per finished run instead of a bar
            typer.echo(f"sweep: {done} of {total} finished: {_label(outcome)}", err=True)

    began = time.perf_counter()
    status = 0
    outcomes: list[Any] = []
    try:
        if bar is not None:
            bar.progress.start()
        with sigterm_stops(), _sighup_stops():
            try:
                outcomes = run_sweep(
                    runs,
                    workers=workers,
                    dask=dask,
                    on_done=on_done,
                    on_progress=None if bar is None else bar.on_progress,
                    on_warning=on_warning,
                )
            except KeyboardInterrupt:
                status = 130
            except Terminated:
                status = 143
            except _HungUp:
                status = 129
    finally:
        if bar is not None:
            with contextlib.suppress(OSError):  # (a terminal that hung up)
                bar.progress.stop()
    interrupted = status != 0
    if status == 129:  # the terminal is gone: what is printed to it goes nowhere
        _detach_from_hung_up_terminal()
    if interrupted:  # what finished before the interrupt, in plan order
        outcomes = sorted(finished, key=lambda o: o.run.index)
    wall = round(time.perf_counter() - began, 3)
    metric = rank_by or default_metric(outcomes)
    unknown = None
    if rank_by is not None and any(o.state == "completed" for o in outcomes):
        # Metrics are known once runs report them (a run may lack one: SmaCross has no
        # win_rate_pct without trades), so a name is wrong only if no run has it. What
        # ran is still shown and written, unranked; then exit status 2.
        keys = rank_keys(outcomes)
        if rank_by not in keys:
            unknown = f"--rank-by {rank_by}: no run has that metric or field; rank by one of: "
            unknown += ", ".join(keys)
            metric = None
    ranked = rank(outcomes, metric, ascending=ascending)
    metric_names: list[str] = []
    for outcome in ranked:
        for name in outcome.result.metrics if outcome.result else ():
            if name not in metric_names:
                metric_names.append(name)
    header, rows = _rows(ranked, metric_names)
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(header)
                writer.writerows(rows)
        except OSError as exc:
            raise UsageError(f"--out {out}: cannot write it: {exc}") from None
    if as_json:
        data = {
            "source": runs[0].config.source if runs else None,
            "executor": "dask" if dask else "processes",
            "workers": None if dask and not dask.startswith("local") else workers or os.cpu_count(),
            "rank_by": metric,
            "ascending": ascending,
            "wall_seconds": wall,
            "interrupted": interrupted,
            "warnings": warnings,
            "runs": [o.to_dict() for o in ranked],
        }
        typer.echo(json.dumps(json_ready(data), indent=2, allow_nan=False))
    else:
        if outcomes:
            title = f"{len(outcomes)} of {len(runs)} runs in {wall:.1f}s" + (
                f", ranked by {metric}" + (" (lowest first)" if ascending else "") if metric else ""
            )
            if unknown is not None:
                title += f", not ranked (no run has {rank_by})"
            _print_table(header, rows, title, frozenset(metric_names))
        else:  # interrupted before any run finished: nothing to rank, nothing to show
            typer.echo(f"0 of {len(runs)} runs in {wall:.1f}s: no run finished")
        if interrupted:
            how = {130: "interrupted", 143: "terminated", 129: "hung up"}[status]
            typer.echo(f"{how}: the pending runs were cancelled", err=True)
    if unknown is not None:  # after the table (or the JSON): what was wrong with it
        typer.echo(f"sessionkit: error: {unknown}", err=True)
    if interrupted:
        raise typer.Exit(status)
    if unknown is not None:
        raise typer.Exit(2)
    if any(o.state != "completed" for o in outcomes):
        raise typer.Exit(1)
