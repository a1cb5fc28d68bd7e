"""``sessionkit run``: a headless session with a progress bar, a summary, JSON and export.

Runs on the main thread; the engine runs in its own threads, which this command polls
through :meth:`~sessionkit.engine.pipeline.session.Session.snapshot` (10 times a second).
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ConfigError


def parse_speed(value: str | None) -> dict[str, Any]:
    """Turn ``--speed`` (``max`` or a positive number) into backtest overrides.

    Raises
    ------
    ConfigError
        If it is neither.
    """
    if value is None:
        return {}
    if value.strip().lower() == "max":
        return {"clock": "data-driven"}
    try:
        speed = float(value)
    except ValueError:
        speed = float("nan")
    if not speed > 0:
        raise ConfigError(f"--speed must be 'max' or a number > 0, not {value!r}")
    return {"clock": "clock-driven", "speed": speed}


def build_overrides(
    db: str | None, start: date | None, end: date | None, speed: str | None
) -> dict[str, Any]:
    """Command-line options as nested configuration overrides."""

    backtest: dict[str, Any] = {"start_date": start, "end_date": end, **parse_speed(speed)}
    backtest = {k: v for k, v in backtest.items() if v is not None}
    return {"database_url": db or None, "backtest": backtest or None}


def summary(session: Any) -> dict[str, Any]:
    """The run's results as plain JSON-ready data."""
    snap = session.snapshot()
    processor = session.processor
    quality = session.quality
    sessions = list(snap.sessions[: snap.session_index])
    bars: dict[str, dict[str, int]] = {}
    qual: dict[str, dict[str, float | None]] = {}
    for (symbol, interval), count in processor.totals.items():
        bars.setdefault(symbol, {})[interval] = count
        overall = quality.overall_quality(symbol)
        qual.setdefault(symbol, {})[interval] = None if overall is None else round(overall, 4)
    metrics = snap.metrics
    loads = session.coordinator.metrics
    return {
        "state": snap.state,
        "error": snap.error,
        "mode": snap.mode,
        "clock": snap.clock,
        "speed": snap.speed,
        "sessions": [d.isoformat() for d in sessions],
        "bars": bars,
        "quality": qual,
        "gaps": {s: len(quality.all_gaps[s]) for s in snap.symbols},
        "overruns": {s.stream: s.overruns for s in snap.subscriptions},
        "bars_per_second": round(metrics.bars_per_second, 1),
        "steps": metrics.steps,
        "load_seconds": round((loads.initial_load or 0.0) + sum(loads.subsequent_loads), 4),
        "load": {
            "initial_seconds": metrics.initial_load_seconds,
            "subsequent_mean_seconds": metrics.subsequent_load_seconds,
        },
        "step_latency_ms": metrics.step_latency_ms,
        "signals": session.analysis.signal_count if session.analysis else 0,
        "analysis_errors": metrics.analysis_errors,
    }


def _print_summary(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()  # user text (symbols, messages) is escaped: printed, never markup
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
        console.print(f"[red]error:[/] {escape(str(data['error']))}")
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
            escape(symbol),
            *(f"{per.get(i, 0):,}" for i in intervals),
            "-" if quality is None else f"{quality:.2f}",
            str(data["gaps"].get(symbol, 0)),
        )
    console.print(table)
    overruns = ", ".join(f"{k}: {v}" for k, v in data["overruns"].items())
    console.print(escape(f"overruns: {overruns or 'none'}; signals: {data['signals']}"))


def _seconds(interval: str) -> int:
    from ..core.bar import INTERVAL_SECONDS

    return INTERVAL_SECONDS.get(interval, 0)


def _follow(session: Any, show_progress: bool) -> None:
    if not show_progress:
        while not session.wait(0.2):
            pass
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} sessions"),
        TimeElapsedColumn(),
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=len(session.sessions) or 1)
        while not session.wait(0.1):
            snap = session.snapshot()
            t = snap.sim_time.astimezone(session.runtime.tz) if snap.sim_time else None
            clock = f"{t:%H:%M}" if t else snap.state
            progress.update(
                task,
                completed=max(0, snap.session_index - 1),
                description=f"{snap.session_date or ''} {clock}  "
                f"{snap.metrics.bars_per_second:,.0f} bars/s",
            )


def run_command(
    config: Annotated[
        str | None, typer.Argument(help="A TOML file, or a bundled config name (demo, spy-2011).")
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Database URL (overrides the config).")
    ] = None,
    start: Annotated[str | None, typer.Option(help="First date, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option(help="Last date, YYYY-MM-DD.")] = None,
    speed: Annotated[
        str | None, typer.Option(help="'max' (data-driven) or simulated seconds per second.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    export: Annotated[
        Path | None, typer.Option(help="Write DIR/<symbol>/<interval>.csv files.")
    ] = None,
) -> None:
    """Run a backtest (or live replay) headless and print a summary."""
    from ..config import load_config
    from ..pipeline.session import Session

    overrides = build_overrides(db, _date("--start", start), _date("--end", end), speed)
    cfg = load_config(config, overrides)
    session = Session(cfg, source=str(config or "demo"), record=export is not None)
    session.start()
    interrupted = False
    try:
        _follow(session, show_progress=not as_json and sys.stderr.isatty())
    except KeyboardInterrupt:
        interrupted = True
    finally:
        session.stop()
    data = summary(session)
    if export is not None and data["state"] in ("completed", "stopped"):
        paths = session.export_csv(export)
        data["export"] = [str(p) for p in paths]
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        _print_summary(data)
        if export is not None and "export" in data:
            typer.echo(f"exported {len(data['export'])} files to {export}")
    if data["state"] == "error":
        raise typer.Exit(1)
    if interrupted:
        raise typer.Exit(130)


def _date(option: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option}: {value!r} is not a date like 2024-11-25") from None
