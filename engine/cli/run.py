"""``sessionkit run``: one headless run with a progress bar, a summary, JSON and export.

Runs on the main thread. The run itself is :class:`~sessionkit.engine.runs.backtest.BacktestRun`
(what :func:`~sessionkit.engine.runs.backtest.run_backtest` does, step by step), so the
summary and ``--json`` are both built from its :class:`~sessionkit.engine.runs.result.RunResult`.
Ctrl-C (SIGINT), SIGTERM and SIGHUP stop the run; what ran is still summarized and
exported (:class:`_Signals`). Another of them while the export is written abandons it.
"""

from __future__ import annotations

import json
import signal
import sys
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

import typer

from . import Terminated

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


SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""What stops ``sessionkit run``: Ctrl-C, ``kill``, and the terminal closed."""


def _exception(signum: int) -> BaseException:
    """What a stopping signal raises: KeyboardInterrupt (SIGINT) or :class:`Terminated`."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


class _Stop(Exception):
    """Raised by :meth:`_Signals.check` in the run's loop: a signal stopped the run."""


class _Signals:
    """SIGINT, SIGTERM and SIGHUP while ``sessionkit run`` runs, by phase.

    - ``"start"``: building the run (nothing is written yet): raise at once, as Python's
      own SIGINT handler does (the command ends: 130, 143, 129);
    - ``"run"``: streaming: with an export, the signal is noted and :meth:`check`, called
      by the run's loop between its polls, stops the run there (never in the middle of
      writing the export's rows); without one, it is raised at once (the loop then needs
      no snapshot per poll: a few milliseconds each with hundreds of symbols);
    - ``"stop"``: stopping the engine, finishing the export: the first signal (when none
      stopped the run: it had ended) only sets the exit status; a further one abandons
      the export: noted (:attr:`abandon`), and raised while the export is being written
      (``"export"``), whose temporary files are then removed;
    - ``"after"``: the export is written (or abandoned): signals only set the status.

    The exit status is the first signal's (130, 143, 129).
    """

    def __init__(self, exporting: bool) -> None:
        self.exporting = exporting
        self.phase = "start"
        self.received: list[int] = []
        self.abandon = False
        self._previous: dict[int, Any] = {}

    @property
    def status(self) -> int:
        return 128 + self.received[0] if self.received else 0

    def install(self) -> None:
        for signum in SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                return

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            with suppress(ValueError, TypeError):
                signal.signal(signum, previous)
        self._previous = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        first = not self.received
        self.received.append(signum)
        if self.phase == "start":
            raise _exception(signum)
        if self.phase == "run":
            if not self.exporting:
                raise _exception(signum)
            return  # check() stops the run at its next poll
        if self.phase == "after":
            return
        if first:  # the run had ended: the export of what ran is still written
            if self.exporting and self.phase == "export":
                _note(
                    "sessionkit: finishing the export of what ran (interrupt again to abandon it)"
                )
            return
        if not self.exporting or self.abandon:
            return
        self.abandon = True
        if self.phase == "export":
            raise _exception(signum)

    def stopped(self) -> None:
        """The run was stopped by a signal (or ended): from now on, the ``"stop"`` phase."""
        self.phase = "stop"
        if self.received and self.exporting:
            _note(
                "sessionkit: stopping; writing the export of what ran (interrupt again to abandon it)"
            )

    def check(self, _snapshot: Any = None) -> None:
        """In the run's loop: stop the run if a signal arrived."""
        if self.received:
            raise _Stop


def _note(line: str) -> None:
    """``line`` on stderr, which may be a terminal already gone (SIGHUP)."""
    # (RuntimeError: the handler interrupted a write to stderr, which is not reentrant)
    with suppress(OSError, ValueError, RuntimeError):
        print(line, file=sys.stderr, flush=True)


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


def _follow(run: Any, show_progress: bool, check: Any = None) -> None:
    """Follow the run to its end, with a progress bar when ``show_progress``; ``check``
    (a snapshot -> None), if any, is called between polls, and may raise to stop."""
    if not show_progress:
        run.follow(check)
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
            if check is not None:
                check(snap)
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
    signals = _Signals(exporting=folder is not None)
    signals.install()
    try:
        cfg = resolve_config(config, overrides, origins)
        run = BacktestRun(cfg, export=folder)
        hung_up = False
        try:
            signals.phase = "run"
            run.start()
            check = signals.check if folder is not None else None
            _follow(run, not as_json and sys.stderr.isatty(), check)
        except (_Stop, KeyboardInterrupt, Terminated) as exc:
            if not signals.received:  # not through the handler (not the main thread)
                signum = getattr(exc, "signum", signal.SIGINT)
                signals.received.append(signum)
        except OSError:  # the progress bar's terminal is gone: it was closed (SIGHUP)
            if not signals.received:
                raise
            hung_up = True
        finally:
            signals.stopped()
            run.stop()
        result = _result(run, signals)
        data = result.to_dict()
        try:
            if as_json:
                typer.echo(json.dumps(data, indent=2))
            else:
                print_summary(data)
                if result.export:
                    typer.echo(f"exported {len(result.export)} files to {folder}")
            if signals.abandon:
                typer.echo(
                    "sessionkit: export abandoned (interrupted again while it was written): "
                    f"its unfinished files in {folder} were removed",
                    err=True,
                )
        except OSError:  # the terminal is gone (SIGHUP): nobody to tell
            if not (hung_up or signal.SIGHUP in signals.received):
                raise
    finally:
        signals.restore()
    if signals.status:
        raise typer.Exit(signals.status)
    if result.state == "error":
        raise typer.Exit(1)


def _result(run: Any, signals: _Signals) -> Any:
    """The run's result, its export written unless a signal abandoned it (then its
    temporary files are removed and the result has no export)."""
    try:
        if not signals.abandon:
            signals.phase = "export"
            try:
                return run.result()
            except (KeyboardInterrupt, Terminated):
                pass  # the export removed its temporary files
            finally:
                signals.phase = "stop"
        run.abandon_export()
        return run.result()
    finally:
        signals.phase = "after"
