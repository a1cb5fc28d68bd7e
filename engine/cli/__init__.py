"""The ``sessionkit`` command line: ``run``, ``sweep`` and ``db`` (init, import, calendar, info).

Runs on the main thread. A :class:`~sessionkit.engine.errors.SessionkitError` from any
command is printed as one line on stderr, with exit status 2 and no traceback.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

import typer

from ..errors import SessionkitError

app = typer.Typer(
    name="sessionkit",
    help="Replay trading sessions through a threaded engine, headless, and manage its database.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


UNWRAPPED_WIDTH = 10_000
"""The width of a console that does not print to a terminal: lines and table cells are not
wrapped (a pipe or a file has no width; ``grep`` and ``awk`` want one record a line)."""


def plain_console(**options: Any) -> Any:
    """A ``rich`` console that prints what it is given as it is: no highlighting, and no
    ``:name:`` emoji codes (``:`` may be in a symbol, a file name or a parameter: the
    symbol ``:fire:`` printed as an emoji). Markup is escaped or off where user text is
    printed. Printing to something other than a terminal (``file``, default stdout), it
    wraps neither lines nor table cells (:data:`UNWRAPPED_WIDTH`)."""
    from rich.console import Console

    console = Console(highlight=False, emoji=False, **options)
    if not console.is_terminal:
        console.width = max(options.get("width") or 0, UNWRAPPED_WIDTH)
    return console


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"sessionkit {version('sessionkit')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Replay trading sessions through a threaded engine, headless, and manage its database."""


def _register() -> None:
    from .db import db_app
    from .run import run_command
    from .sweep import sweep_command

    app.add_typer(db_app, name="db")
    app.command("run")(run_command)
    app.command("sweep")(sweep_command)


def fail(message: str) -> None:
    """Print ``message`` as an error on stderr and exit with status 2."""
    typer.echo(f"sessionkit: error: {message}", err=True)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``sessionkit`` console script."""
    from .run import Terminated

    _register()
    try:
        app(args=argv, prog_name="sessionkit", standalone_mode=True)
    except SessionkitError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Terminated:
        typer.echo("terminated", err=True)
        sys.exit(143)
    finally:
        if argv is None:
            # The console script ends: what the run left alive (a 300-symbol run: about
            # a gigabyte of objects) is the system's to free. The interpreter's last
            # collection examined every one of them: 4.3 s between the output and the
            # exit; frozen, it passes them by.
            gc.freeze()
