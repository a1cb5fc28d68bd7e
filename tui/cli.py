"""``sessionkit-tui``: parse the command line, build the Session, run the monitor.

Runs on the main thread. Everything a user can get wrong (arguments, configuration,
database, theme) is checked here, before the screen opens: the message goes to stderr as
``sessionkit-tui: error: <message>`` and the exit status is 2, without a traceback. The
engine starts loading as soon as its session is built, while the UI's modules load. After
the app returns (whatever ended it) the engine is stopped and its threads joined. Ctrl-C
before the screen takes the keyboard (while Python loads the engine and the UI) ends the
command quietly with status 130, the engine stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

PROG = "sessionkit-tui"
THEME_DIR_ENV = "SESSIONKIT_THEME_DIR"
"""Environment variable naming an extra folder of theme files."""

INTERRUPTED = 128 + signal.SIGINT
"""Exit status after Ctrl-C (as a shell reports a command ended by SIGINT)."""

STOPPING_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""Signals that end the monitor as ``q`` does (``kill``, the terminal closed): exit status
128 + the signal's number (143, 129)."""

ENGINE_FAILED = 1
"""Exit status when the engine's run ended in an error (as ``sessionkit run``), or, for
the sweep monitor, when a run failed or ended in an error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        from sessionkit.engine import UsageError

        raise UsageError(message)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sessionkit")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Watch and control a sessionkit backtest in the terminal.",
        epilog="Keys: space pause/resume, n step, +/- speed, m clock mode, g go to a date, "
        "up/down symbol, enter its detail, / filter, s sort, i interval, c candles, [ ] zoom, "
        "1-9 overlays, d diagnostics, t theme, ? help, q quit. With no arguments: the "
        "bundled demo. 'sessionkit-tui sweep --help': the monitor of a sweep's runs.",
    )
    parser.add_argument(
        "config",
        nargs="?",
        default=None,
        metavar="CONFIG|NAME",
        help="a TOML configuration file, or a bundled one: demo (default), spy-2011",
    )
    add_run_options(
        parser,
        speed_help="simulated seconds per wall second (60 or 60x = a minute a second), or max",
        set_help="override any configuration key, e.g. --set analysis.options.fast=5 (repeatable)",
    )
    parser.add_argument("--paused", action="store_true", help="start paused (n steps)")
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="show the version"
    )
    add_theme_option(parser)
    return parser


def add_run_options(parser: argparse.ArgumentParser, *, speed_help: str, set_help: str) -> None:
    """``--db``, ``--start``, ``--end``, ``--speed`` and ``--set`` (read by :func:`options_of`),
    shared by the monitor and the sweep monitor."""
    parser.add_argument(
        "--db", metavar="URL", help="SQLAlchemy database URL, or a SQLite file's path"
    )
    parser.add_argument("--start", metavar="DATE", help="first date (YYYY-MM-DD)")
    parser.add_argument("--end", metavar="DATE", help="last date (YYYY-MM-DD)")
    parser.add_argument("--speed", metavar="X|max", help=speed_help)
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=set_help,
    )


def add_theme_option(parser: argparse.ArgumentParser) -> None:
    """``--theme NAME``."""
    parser.add_argument(
        "--theme",
        metavar="NAME",
        default="dark",
        help="dark (default), light, high-contrast, a theme file (.toml) or a Textual theme name",
    )


def options_of(args: argparse.Namespace) -> dict[str, Any]:
    """The options :func:`~sessionkit.engine.load_config` applies over the file
    (``--db``, ``--start``, ``--end``, ``--speed``, ``--set``), as typed."""
    return {
        "db": args.db,
        "start": args.start,
        "end": args.end,
        "speed": args.speed,
        "settings": args.settings,
    }


def _theme_sources(theme: str) -> tuple[list[str], str]:
    """Extra theme folders and the theme's name (a file's own folder is added)."""
    folders = []
    extra = os.environ.get(THEME_DIR_ENV)
    if extra:
        folders.append(extra)
    if theme.endswith(".toml"):
        from .themes import ThemeError, load_theme_file

        try:
            loaded = load_theme_file(theme)
        except ThemeError as exc:
            from sessionkit.engine import UsageError

            raise UsageError(str(exc)) from None
        folders.append(str(Path(theme).parent))
        return folders, loaded.name
    return folders, theme


def check_theme(theme: str, themes: Any) -> None:
    """Refuse a theme that is not among ``themes`` (a :class:`~.themes.ThemeSet`) nor
    Textual's: a theme file of that name that failed to load is named with its error.

    Raises
    ------
    UsageError
        Saying why the theme cannot be used, or which themes there are.
    """
    from sessionkit.engine import UsageError
    from textual.theme import BUILTIN_THEMES

    if theme in themes.names or theme in BUILTIN_THEMES:
        return
    raise UsageError(themes.refusal(theme, themes.names + sorted(BUILTIN_THEMES)))


class _Signalled(Exception):
    """SIGTERM or SIGHUP before the screen opened (``status``: 143, 129)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Signals:
    """SIGTERM and SIGHUP while the monitor runs (Python's default: the process dies on
    the spot, leaving the terminal on the alternate screen with the mouse tracked and the
    cursor hidden).

    Before the screen opens they raise :class:`_Signalled` (the engine is stopped as for
    Ctrl-C). While the app runs, they ask it to exit (``app.exit`` on its event loop, as
    ``q`` ends it) so that Textual gives the terminal back; the engine is then stopped.
    After, they only set the exit status (:attr:`status`, the first signal's).

    Textual may never finish exiting: when the terminal was closed (a real hang-up), its
    last writes fail and its shutdown waits for them forever. So the process ends
    (``os._exit``) if the app has not returned :data:`EXIT_GRACE` seconds after the
    signal, or at once on a second signal while it exits (the engine's threads are
    daemons and its reader process ends with it).
    """

    EXIT_GRACE = 5.0
    GONE_GRACE = 0.5
    """When the terminal is gone already (closed: there is nothing to give back)."""

    def __init__(self) -> None:
        self.app: Any = None
        self.status = 0
        self._done = False
        self._watchdog: threading.Timer | None = None
        self._previous: dict[int, Any] = {}

    @property
    def done(self) -> bool:
        """Whether the screen is gone (from then on a signal only sets the status)."""
        return self._done

    @done.setter
    def done(self, value: bool) -> None:
        self._done = value
        if value and self._watchdog is not None:
            self._watchdog.cancel()

    def install(self) -> None:
        for signum in STOPPING_SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                return

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signum, previous)
        self._previous = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        status = 128 + signum
        first = not self.status
        if first:
            self.status = status
        if self.done:
            return
        if self.app is None:
            raise _Signalled(status)
        if not first:  # the app is exiting already, and is asked to again: end now
            os._exit(self.status)
        import asyncio

        try:
            loop = asyncio.get_running_loop()  # the app's, on this (the main) thread
        except RuntimeError:  # the app's loop is not running yet, or any more
            loop = None
        if loop is None:
            raise _Signalled(status)
        loop.call_soon_threadsafe(self._exit, status)
        grace = self.GONE_GRACE if _terminal_gone() else self.EXIT_GRACE
        self._watchdog = threading.Timer(grace, self._give_up)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _exit(self, status: int) -> None:
        self.app.exit(return_code=status)

    def _give_up(self) -> None:
        """The app did not exit in time (see the class): end the process."""
        if not self._done:
            os._exit(self.status)


def _terminal_gone() -> bool:
    """Whether the terminal was hung up (closed): its attributes cannot be read (EIO)."""
    try:
        import termios

        termios.tcgetattr(sys.__stdout__.fileno())  # type: ignore[union-attr]
    except ImportError:  # pragma: no cover - not a POSIX system
        return False
    except termios.error as exc:
        return bool(exc.args) and exc.args[0] == errno.EIO
    except (OSError, ValueError, AttributeError):
        return False
    return False


def _interrupted(session: Any) -> int:
    """Ctrl-C before the screen opened: stop the engine (a second Ctrl-C cannot cut that
    short and leave its threads running), no traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if session is not None:
        session.stop(1.0)
    print(file=sys.stderr)  # the shell's prompt after the terminal's ^C, not on its line
    return INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the monitor; returns the exit status (1 if the engine's run ended in an error,
    as ``sessionkit run``; 2 for a user's mistake, 130 after Ctrl-C before the screen
    opened).

    ``sessionkit-tui sweep ...`` runs the sweep monitor instead (:mod:`.sweep_cli`).
    """
    script = argv is None  # the console script (a test passes its arguments)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sweep"]:
        from .sweep_cli import main as sweep_main

        return sweep_main(argv[1:])
    status = None
    try:
        status = _monitor(argv)
        return status
    finally:
        if script:
            # The engine's objects are still alive here (a run of 300 symbols: about a
            # gigabyte of them), and the interpreter's last collection, as it exits,
            # examined every one: quitting took 5 s after such a run. Frozen, that
            # collection passes them by; the process ends and the system frees it all.
            gc.freeze()
            if status is not None:
                # A thread the analysis started and never ended would keep the process
                # alive (the screen gone): named on stderr, then the process ends.
                from sessionkit.engine import end_with_threads_left

                end_with_threads_left(status, PROG)


def _monitor(argv: list[str]) -> int:
    signals = _Signals()
    signals.install()
    try:
        return _monitor_with(argv, signals)
    finally:
        signals.restore()


def _monitor_with(argv: list[str], signals: _Signals) -> int:
    session = None
    try:
        from sessionkit.engine import SessionkitError

        args = build_parser().parse_args(argv)
        from sessionkit.engine import Session, load_config, window_coverage

        # The options first: a mistake is reported before the UI's modules load.
        config = load_config(args.config, options=options_of(args))
        session = Session(config, start_paused=args.paused)
        session.start()  # it loads while the window is checked and the UI's modules load
        # A window without a bar of a symbol is refused, as `sessionkit run` refuses it.
        for warning in window_coverage(session, count=False)[1]:
            session.log(warning, "warning")
        folders, theme = _theme_sources(args.theme)
        from .themes import load_themes

        themes = load_themes(folders)
        check_theme(theme, themes)
        from .app import create_app

        app = create_app(session, theme=theme, themes=themes, start_engine=False)
    except KeyboardInterrupt:  # first: SessionkitError may not be imported yet
        return _interrupted(session)
    except _Signalled as exc:
        return _terminated(session, signals, exc.status)
    except (SessionkitError, ValueError) as exc:
        if session is not None:
            session.stop(0.5)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    ended_in_error = False
    try:
        signals.app = app
        app.run()
        signals.done = True  # the screen is gone: a signal now only sets the status
        # The run the monitor showed last (a go-to replaces it) ended in an error.
        ended_in_error = app.session.snapshot().state == "error"
    except KeyboardInterrupt:  # before the app's driver took the keyboard
        return _interrupted(None)  # the app's session is stopped below
    except _Signalled as exc:  # before the app's loop ran, or after it ended
        signals.done = True
        return _terminated(None, signals, exc.status)
    finally:
        signals.done = True
        app.session.stop(1.0)  # the app's session: a seek replaces the first one
        for line in app.session.left_running:  # said after the screen is gone
            _say(f"{PROG}: warning: {line}")
    if signals.status:
        return signals.status
    if app.return_code not in (None, 0):
        return app.return_code
    return ENGINE_FAILED if ended_in_error else 0


def _terminated(session: Any, signals: _Signals, status: int) -> int:
    """SIGTERM or SIGHUP before the screen opened (or once it is gone): stop the engine
    (a further signal cannot cut that short), no traceback; 143 or 129."""
    signals.done = True
    if session is not None:
        session.stop(1.0)
    return signals.status or status


def _say(line: str) -> None:
    """``line`` on stderr, which may be a terminal already gone (SIGHUP)."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
