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
    """The human summary of a ``RunResult.to_dict()``."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    sessions = data["sessions"]
    span = f"{sessions[0]} .. {sessions[-1]}" if sessions else "none"
    console.print(
        f"[bold]{data['state']}[/]: {len(sessions)} session(s) {span}, "
        f"{data['clock']}"
        + (f" at {data['speed']:g}x" if data["speed"] else "")
        + f", {data['steps']} steps, {data['bars_per_second']:,.0f} bars/s, "
        f"load {data['load_seconds']:.3f}s"
    )
    if data["error"]:
        console.print(f"[red]error:[/] {data['error']}")
    for warning in data["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}")
    table = Table(title="bars and quality")
    intervals = sorted({i for per in data["bars"].values() for i in per}, key=_seconds)
    table.add_column("symbol")
    for interval in intervals:
        table.add_column(f"{interval} bars", justify="right")
    table.add_column("quality %", justify="right")
    table.add_column("gaps", justify="right")
    for symbol, per in data["bars"].items():
        quality = next(iter(data["quality"][symbol].values()), None)
        table.add_row(
            symbol,
            *(f"{per.get(i, 0):,}" for i in intervals),
            "-" if quality is None else f"{quality:.2f}",
            str(data["gaps"].get(symbol, 0)),
        )
    console.print(table)
    overruns = ", ".join(f"{k}: {v}" for k, v in data["overruns"].items())
    console.print(
        f"overruns: {overruns or 'none'}; signals: {data['signal_count']}; "
        f"analysis errors: {data['analysis_errors']}"
    )
    if data["metrics"]:
        console.print(
            "metrics: " + ", ".join(f"{k} {_number(v)}" for k, v in data["metrics"].items())
        )


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


def _seconds(interval: str) -> int:
    from ..core.bar import INTERVAL_SECONDS

    return INTERVAL_SECONDS.get(interval, 0)


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
        Path | None,
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
    from ..runs.backtest import BacktestRun, resolve_config

    overrides, origins = option_overrides(
        db=db, start=start, end=end, speed=speed, settings=settings or ()
    )
    status = 0
    with sigterm_stops():
        cfg = resolve_config(config, overrides, origins)
        run = BacktestRun(cfg, export=export)
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
            typer.echo(f"exported {len(result.export)} files to {export}")
    if status:
        raise typer.Exit(status)
    if result.state == "error":
        raise typer.Exit(1)
