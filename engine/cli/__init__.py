"""The ``sessionkit`` command line: ``run``, ``sweep`` and ``db`` (init, import, calendar, info).

Runs on the main thread. A :class:`~sessionkit.engine.errors.SessionkitError` from any
command is printed as one line on stderr, with exit status 2 and no traceback.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
from contextlib import suppress
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


class Terminated(Exception):
    """SIGTERM arrived: stop the run like Ctrl-C does (exit status 143; 129 for SIGHUP,
    the terminal closed: ``signum``). Raised by the commands' signal handlers
    (:func:`~.run.sigterm_stops`, ``sessionkit run``'s)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def status(self) -> int:
        """The exit status: 128 + the signal's number, as a shell reports it."""
        return 128 + self.signum


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
    """Entry point of the ``sessionkit`` console script.

    Ctrl-C (SIGINT) before a command took it over (Python loading the sub-commands) ends
    it quietly with status 130. As the console script (``argv`` None), once the command is
    done, threads that would keep the process alive (an analysis's own non-daemon thread
    that never ends) are given a second, then named on stderr and left behind:
    :func:`end_with_threads_left`.
    """
    status: Any = 0
    try:
        _main(argv)
    except SystemExit as exc:
        status = exc.code
        raise
    except BaseException:
        status = 1
        raise
    finally:
        if argv is None:
            # The console script ends: what the run left alive (a 300-symbol run: about
            # a gigabyte of objects) is the system's to free. The interpreter's last
            # collection examined every one of them: 4.3 s between the output and the
            # exit; frozen, it passes them by.
            gc.freeze()
            end_with_threads_left(status, "sessionkit")


def _main(argv: list[str] | None) -> None:
    try:
        # Inside the try: Ctrl-C while Python loads the sub-commands (the first second
        # of every command) is an interrupt like any other, not a traceback.
        _register()
        app(args=argv, prog_name="sessionkit", standalone_mode=True)
    except SessionkitError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        _say("interrupted")
        sys.exit(130)
    except Terminated as exc:
        _say("hung up" if exc.status == 129 else "terminated")
        sys.exit(exc.status)


def _say(line: str) -> None:
    """``line`` on stderr, which may be a terminal already gone (SIGHUP)."""
    with suppress(OSError, ValueError):
        typer.echo(line, err=True)


THREADS_GRACE = 1.0
"""Seconds :func:`end_with_threads_left` gives other threads to end."""


def lingering_threads() -> list[threading.Thread]:
    """The threads that would keep the process alive as the interpreter exits: alive, not
    daemons, not the main thread. The standard library's process pools
    (``concurrent.futures``, ``multiprocessing``) are left out: their own exit handlers end
    them, and ending their workers is what those handlers are for."""
    out = []
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon or not thread.is_alive():
            continue
        target = getattr(thread, "_target", None)
        home = getattr(target, "__module__", None) or type(thread).__module__ or ""
        if home.startswith(("concurrent.futures", "multiprocessing")):
            continue
        out.append(thread)
    return out


def end_with_threads_left(status: Any, prog: str, grace: float = THREADS_GRACE) -> None:
    """Once a command is done: when other threads would keep the process alive (an
    analysis that started a non-daemon thread and never ended it), give them ``grace``
    seconds in all, then name those still running on stderr, with where they are, and
    end the process with the command's ``status`` (``os._exit``, after flushing stdout and
    stderr): the interpreter would wait for them forever. Returns when there are none.

    ``status`` is a ``SystemExit`` code: None is 0, a string is printed and is 1.
    """
    threads = lingering_threads()
    if not threads:
        return
    deadline = time.monotonic() + grace
    try:
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:  # Ctrl-C while waiting: stop waiting
        pass
    threads = [thread for thread in threads if thread.is_alive()]
    if not threads:
        return
    if status is None:
        status = 0
    elif not isinstance(status, int):
        _say(str(status))
        status = 1
    frames = sys._current_frames()
    try:
        from ..pipeline.session import code_location
    except Exception:  # pragma: no cover - the engine's report is optional here
        code_location = None  # noqa: N806
    for thread in threads:
        frame = frames.get(thread.ident)  # type: ignore[arg-type]
        where = code_location(frame) if code_location is not None else "an unknown place"
        _say(
            f"{prog}: warning: thread {thread.name!r} still running {grace:g}s after the "
            f"command ended, in {where}: code that does not end (a non-daemon thread the "
            "analysis started?); the process exits without waiting for it"
        )
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    os._exit(status & 0xFF if status >= 0 else 1)
