"""``sessionkit run``: one headless run with a progress bar, a summary, JSON and export.

Runs on the main thread. The run itself is :class:`~sessionkit.engine.runs.backtest.BacktestRun`
(what :func:`~sessionkit.engine.runs.backtest.run_backtest` does, step by step), so the
summary and ``--json`` are both built from its :class:`~sessionkit.engine.runs.result.RunResult`.
Ctrl-C (SIGINT) and SIGTERM stop the run; what ran is still summarized and exported.
"""

from __future__ import annotations

import json
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL or SQLite file (overrides the config).", metavar="URL"),
]
StartOption = Annotated[
    str | None, typer.Option("--start", help="First date, YYYY-MM-DD.", metavar="DATE")
]
EndOption = Annotated[
    str | None, typer.Option("--end", help="Last date, YYYY-MM-DD.", metavar="DATE")
]
SpeedOption = Annotated[
    str | None,
    typer.Option(
        "--speed",
        help="'max' (data-driven, the default of a headless run) or simulated seconds per "
        "wall second (60 or 60x).",
        metavar="X|max",
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override any configuration key, e.g. --set analysis.options.fast=5 "
        "(repeatable; the value is TOML, a bare word is a string).",
        metavar="KEY=VALUE",
    ),
]
ConfigArgument = Annotated[
    str | None, typer.Argument(help="A TOML file, or a bundled config name (demo, spy-2011).")
]


class Terminated(Exception):
    """SIGTERM arrived: stop the run like Ctrl-C does (exit status 143)."""


@contextmanager
def sigterm_stops() -> Any:
    """Turn SIGTERM into :class:`Terminated` on the main thread while the block runs."""

    def handler(_signum: int, _frame: Any) -> None:
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def print_summary(data: dict[str, Any]) -> None:
    """The human summary of a ``RunResult.to_dict()`` (see
    :func:`~sessionkit.engine.runs.summary.summary_renderables`)."""
    from ..runs.summary import summary_renderables
    from . import plain_console

    console = plain_console()
    for renderable in summary_renderables(data):
        console.print(renderable)


def _follow(run: Any, show_progress: bool) -> None:
    if not show_progress:
        run.follow()
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("bars"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=run.expected_bars)
        tz = run.session.runtime.tz

        def update(snap: Any) -> None:
            t = snap.sim_time.astimezone(tz) if snap.sim_time else None
            clock = f"{t:%H:%M}" if t else snap.state
            progress.update(
                task,
                completed=run.streamed_bars(),
                description=f"{snap.session_date or ''} {clock}  "
                f"{snap.metrics.bars_per_second:,.0f} bars/s",
            )

        run.follow(update)


def run_command(
    config: ConfigArgument = None,
    db: DbOption = None,
    start: StartOption = None,
    end: EndOption = None,
    speed: SpeedOption = None,
    settings: SetOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the RunResult as one JSON object.")
    ] = False,
    export: Annotated[
        str | None,  # as typed: a Path makes "" the working folder
        typer.Option(
            help="Write DIR/<symbol>/<interval>.csv (bars, indicators, quality) and "
            "DIR/signals.csv.",
            metavar="DIR",
        ),
    ] = None,
) -> None:
    """Run a backtest (or live replay) headless and print a summary.

    A headless run is data-driven (as fast as the data allows) unless --speed says
    otherwise; the config's clock is the monitor's (sessionkit-tui).
    """
    from ..config import option_overrides
    from ..errors import UsageError
    from ..runs.backtest import BacktestRun, resolve_config

    if export is not None and not export.strip():
        raise UsageError("--export: the value is empty: give the folder to write the files to")
    folder = None if export is None else Path(export)
    overrides, origins = option_overrides(
        db=db, start=start, end=end, speed=speed, settings=settings or ()
    )
    status = 0
    with sigterm_stops():
        cfg = resolve_config(config, overrides, origins)
        run = BacktestRun(cfg, export=folder)
        try:
            run.start()
            _follow(run, show_progress=not as_json and sys.stderr.isatty())
        except KeyboardInterrupt:
            status = 130
        except Terminated:
            status = 143
        finally:
            run.stop()
        result = run.result()
    data = result.to_dict()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        print_summary(data)
        if result.export:
            typer.echo(f"exported {len(result.export)} files to {folder}")
    if status:
        raise typer.Exit(status)
    if result.state == "error":
        raise typer.Exit(1)
