"""``sessionkit-tui sweep``: parse the command line, plan the sweep, run its monitor.

Runs on the main thread. Every mistake a user can make in the arguments or any run's
configuration is reported before the screen opens (``sessionkit-tui sweep: error:
<message>``, exit status 2, no traceback): each run is planned and validated first. What
the sweep warns of (date shards whose indicators start cold) is shown in the monitor and
printed once its screen is gone. After
the app returns (whatever ended it) the sweep is cancelled and its worker processes are
gone before the command returns. SIGTERM and SIGHUP quit the monitor as ``q`` does (the
terminal given back, the sweep cancelled), exit status 143 and 129.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cli import (
    ENGINE_FAILED,
    PROG,
    _Parser,
    _Signalled,
    _Signals,
    _theme_sources,
    add_run_options,
    add_theme_option,
    check_theme,
    options_of,
)

SWEEP_PROG = f"{PROG} sweep"

WORKERS_GONE = 10.0
"""Seconds the command waits, after the app left, for the sweep to end its workers."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=SWEEP_PROG,
        description="Run a sweep (a grid of overrides and/or date shards) and watch every "
        "run live: state, progress, bars/s, quality, overruns and the analysis's metrics.",
        epilog="Keys: s sort by the next column (or click a header; again: reversed), enter "
        "the summary of the run under the cursor (escape: back), q cancel the pending runs "
        "and quit.",
    )
    parser.add_argument(
        "config",
        nargs="?",
        default=None,
        metavar="CONFIG|NAME",
        help="a TOML configuration file, or a bundled one: demo (default), spy-2011",
    )
    parser.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a grid axis (repeatable; the runs are the cartesian product)",
    )
    parser.add_argument(
        "--shard-by",
        choices=("session", "week", "month"),
        metavar="session|week|month",
        help="split the window into one run per session, week or month",
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="worker processes (default: the CPU count)"
    )
    parser.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run on a Dask cluster: its scheduler address, or 'local' for a local cluster",
    )
    add_run_options(
        parser,
        speed_help="max (data-driven, the default) or simulated seconds per wall second",
        set_help="override any configuration key in every run (repeatable)",
    )
    add_theme_option(parser)
    return parser


def plan(args: argparse.Namespace) -> Any:
    """The planned runs (each validated) of the parsed arguments.

    Raises
    ------
    SessionkitError
        For any mistake in the arguments or in a run's configuration.
    """
    from sessionkit.engine import UsageError, load_config
    from sessionkit.engine.runs.sweep import parse_grid, plan_sweep

    if not args.params and args.shard_by is None:
        raise UsageError(f"{SWEEP_PROG} needs at least one --param KEY=V1,V2 or --shard-by")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {args.workers}")
    config = load_config(args.config, options=options_of(args))
    grid = parse_grid(args.params)  # a key given by two --param is refused
    return plan_sweep(config, grid=grid, shard_by=args.shard_by)


def _worker_output() -> str:
    """A new, empty file for the worker processes' output (the screen is the monitor's)."""
    import tempfile

    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept after the sweep if written
        prefix="sessionkit-sweep-", suffix=".log", delete=False
    )
    handle.close()
    return handle.name


def _report_output(path: str) -> None:
    """Say where the workers' output is, or remove the file when they wrote nothing."""
    file = Path(path)
    try:
        if file.stat().st_size == 0:
            file.unlink()
            return
    except OSError:
        return
    print(f"{SWEEP_PROG}: the worker processes wrote to {file}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sweep monitor; returns the exit status (1 if a run failed or ended in an
    error, 2 for a user's mistake)."""
    from sessionkit.engine import SessionkitError

    try:
        args = build_parser().parse_args(argv)
        runs = plan(args)
        folders, theme = _theme_sources(args.theme)
        from .sweep_app import LiveSweep, create_sweep_app
        from .themes import load_themes

        themes = load_themes(folders)
        check_theme(theme, themes)
        from sessionkit.engine.runs.sweep import shard_warnings

        warnings = shard_warnings(runs, f"--shard-by {args.shard_by}")
        source = LiveSweep(runs, workers=args.workers, dask=args.dask)
        app = create_sweep_app(
            source,
            theme=theme,
            themes=themes,
            title=Path(runs[0].config.source).name,
            warnings=warnings,
        )
    except (SessionkitError, ValueError) as exc:
        print(f"{SWEEP_PROG}: error: {exc}", file=sys.stderr)
        return 2
    output = source.worker_output = _worker_output()
    signals = _Signals()
    signals.install()
    try:
        signals.app = app
        app.run()
    except _Signalled:  # before the app's loop ran: its status is the signal's
        pass
    finally:
        signals.done = True  # the screen is gone: a signal now only sets the status
        app.cancel.set()
        if app.started:
            app.ended.wait(WORKERS_GONE)
        signals.restore()
    _report_output(output)
    for warning in (*warnings, *getattr(app, "late_warnings", ())):  # (shown in it too)
        print(f"{SWEEP_PROG}: warning: {warning}", file=sys.stderr)
    if signals.status:
        return signals.status
    if app.failure is not None:
        print(f"{SWEEP_PROG}: error: {app.failure}", file=sys.stderr)
        return 2
    if app.return_code:
        return app.return_code
    # A run that failed or ended in an error (not one cancelled because the user quit).
    board = getattr(app, "board", None)  # (an app without runs: a test's stand-in)
    return ENGINE_FAILED if board is not None and board.counts()["failed"] else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
