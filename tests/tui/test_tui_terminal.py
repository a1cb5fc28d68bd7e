"""The real ``sessionkit-tui`` command in a real terminal (tmux): keys in, screen out.

Runs the installed entry point in a detached tmux server of its own (``-L``), sends keys
with ``tmux send-keys`` and reads the screen with ``tmux capture-pane -p``. Checks that the
screen opens paused, that keys reach the engine, that ``q`` stops everything and gives
the terminal back (the shell prints the exit status on the normal screen), and that Ctrl-C
while the command starts ends it cleanly.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TMUX = shutil.which("tmux")
COMMAND = Path(sys.executable).parent / "sessionkit-tui"
EXIT = re.compile(r"EXIT-STATUS=\d")

pytestmark = pytest.mark.skipif(
    TMUX is None or not COMMAND.exists(), reason="needs tmux and the installed command"
)


class Terminal:
    """One tmux session on a private server, 120x40."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def tmux(self, *args: str) -> str:
        result = subprocess.run(
            [TMUX, "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        return result.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "tui")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "tui", *keys)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        """The screen once ``predicate`` holds; ``timeout`` only bounds a hang (a loaded
        machine may take seconds to start Python), it is not a speed requirement."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.05)
        raise AssertionError(f"screen never matched within {timeout}s:\n{screen}")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    # A server of its own per test: a reused socket may still belong to the previous
    # test's server while it shuts down.
    socket = f"sessionkit-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    term = Terminal(socket)
    env_unset = "unset NO_COLOR SESSIONKIT_THEME_DIR; "
    started = subprocess.run(
        [TMUX, "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "tui",
         "-x", "120", "-y", "40", "env -u NO_COLOR bash --norc --noprofile"],
        capture_output=True, text=True, timeout=30,
        # A shell's background job (a CI run) inherits SIGINT ignored, and so would the
        # server's shells: Ctrl-C must reach the command as it does in a terminal.
        preexec_fn=_default_sigint,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    term.keys(f"{env_unset}export PS1='$ '; cd {tmp_path}; echo READY", "Enter")
    term.wait_for(lambda s: "READY" in s.replace("echo READY", ""))
    try:
        yield term
    finally:
        term.tmux("kill-server")


def test_command_runs_steps_and_quits_in_a_terminal(terminal: Terminal) -> None:
    terminal.keys(f"{COMMAND} --paused; echo EXIT-STATUS=$?", "Enter")
    screen = terminal.wait_for(lambda s: "paused" in s and "Symbols" in s and "ACME" in s)
    assert "2024-11-25" in screen
    assert "09:30:00 EST" in screen
    terminal.keys("n", "n", "n")
    screen = terminal.wait_for(lambda s: "09:33:00 EST" in s)
    assert "paused" in screen
    terminal.keys("+")
    terminal.wait_for(lambda s: "300x clock" in s)
    terminal.keys("m")
    terminal.wait_for(lambda s: "max data-driven" in s)
    terminal.keys("i")
    terminal.wait_for(lambda s: "ACME 5m" in s)
    terminal.keys("Down")
    terminal.wait_for(lambda s: "BOLT 5m" in s)
    terminal.keys("?")
    terminal.wait_for(lambda s: "sessionkit-tui: keys" in s)
    terminal.keys("Escape")
    terminal.wait_for(lambda s: "sessionkit-tui: keys" not in s)
    terminal.keys("space")
    terminal.wait_for(lambda s: "running" in s)
    terminal.keys("q")
    # How fast quitting is, is measured by tests/benchmarks/test_bench_tui.py (not asserted
    # here: a deadline would depend on the machine's load).
    screen = terminal.wait_for(lambda s: EXIT.search(s) is not None)
    assert "EXIT-STATUS=0" in screen
    assert "Symbols" not in screen  # back on the normal screen


def test_bad_arguments_print_one_line_and_exit_2(terminal: Terminal) -> None:
    terminal.keys(f"{COMMAND} --speed fast; echo EXIT-STATUS=$?", "Enter")
    screen = terminal.wait_for(lambda s: EXIT.search(s) is not None)
    assert "sessionkit-tui: error: --speed: 'fast': a speed is a finite number" in screen
    assert "EXIT-STATUS=2" in screen
    assert "Traceback" not in screen


def test_ctrl_c_while_starting_ends_cleanly(terminal: Terminal, tmp_path: Path) -> None:
    """Ctrl-C before the screen opens, the session started and loading: status 130, no
    traceback (that the engine is stopped is checked in test_tui_units.py).

    The start-up is held at a known point: the extra theme folder holds a FIFO, which the
    command reads after it started the session and before it opens the screen.
    """
    themes = tmp_path / "themes"
    themes.mkdir()
    fifo = themes / "held.toml"
    os.mkfifo(fifo)
    terminal.keys(f"SESSIONKIT_THEME_DIR={themes} {COMMAND} --paused; echo EXIT-STATUS=$?", "Enter")
    deadline = time.monotonic() + 30  # a hang bound: Python may start slowly when loaded
    writer = None
    while writer is None:
        try:  # succeeds once the command opened the FIFO to read it
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            assert time.monotonic() < deadline, terminal.screen()
            time.sleep(0.02)
    try:
        terminal.keys("C-c")
        screen = terminal.wait_for(lambda s: EXIT.search(s) is not None)
    finally:
        os.close(writer)
    assert "EXIT-STATUS=130" in screen, screen
    assert "Traceback" not in screen and "KeyboardInterrupt" not in screen, screen
    assert "BACKTEST" not in screen  # it never opened
