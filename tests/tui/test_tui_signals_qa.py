"""``sessionkit-tui``'s signals and exits (QA): the real command in a real terminal (tmux,
as in test_tui_terminal.py).

SIGTERM and SIGHUP ended the monitor on the spot, leaving the terminal on the alternate
screen, the mouse tracked and the cursor hidden; a closed terminal must still end it; a
thread an analysis leaves running kept the process alive after the screen was gone.
Timeouts only guard against hangs.
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
HANG_BOUND = 60.0

pytestmark = pytest.mark.skipif(
    TMUX is None or not COMMAND.exists(), reason="needs tmux and the installed command"
)

LEAK = '''
import threading
import time


class LeakThread:
    """Starts a thread that is not a daemon and never ends."""

    def __init__(self) -> None:
        threading.Thread(target=self.forever, name="leaky").start()

    def forever(self) -> None:
        while True:
            time.sleep(3600)

    def on_step(self, ctx) -> None:
        pass
'''


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

    def modes(self) -> str:
        """``alternate_on mouse_any_flag cursor_flag``: ``0 0 1`` on a terminal given back."""
        return self.tmux(
            "display", "-p", "-t", "tui", "#{alternate_on} #{mouse_any_flag} #{cursor_flag}"
        ).strip()

    def shell_pid(self) -> int:
        return int(self.tmux("display", "-p", "-t", "tui", "#{pane_pid}").strip())

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = HANG_BOUND) -> str:
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
    socket = f"sessionkit-qa-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    term = Terminal(socket)
    started = subprocess.run(
        [TMUX, "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "tui",
         "-x", "120", "-y", "40", "env -u NO_COLOR bash --norc --noprofile"],
        capture_output=True, text=True, timeout=30, preexec_fn=_default_sigint,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    term.keys(f"unset NO_COLOR SESSIONKIT_THEME_DIR; export PS1='$ '; cd {tmp_path}", "Enter")
    term.keys("echo READY", "Enter")
    term.wait_for(lambda s: "READY" in s.replace("echo READY", ""))
    try:
        yield term
    finally:
        term.tmux("kill-server")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        ppid = next(
            (line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), ""
        )
        if ppid == str(pid):
            out.append(int(entry.name))
    return out


def monitor_pid(terminal: Terminal) -> int:
    """The command's process (the pane's shell's child)."""
    deadline = time.monotonic() + HANG_BOUND
    while True:
        found = children(terminal.shell_pid())
        if found:
            return found[0]
        assert time.monotonic() < deadline, "the command's process never appeared"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize(("name", "status"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_sigterm_and_sighup_give_the_terminal_back(
    terminal: Terminal, name: str, status: int
) -> None:
    terminal.keys(f"{COMMAND} --paused; echo EXIT-STATUS=$?", "Enter")
    terminal.wait_for(lambda s: "paused" in s and "Symbols" in s and "ACME" in s)
    assert terminal.modes().split()[0] == "1"  # on the alternate screen
    os.kill(monitor_pid(terminal), getattr(signal, name))
    screen = terminal.wait_for(lambda s: EXIT.search(s) is not None)
    assert f"EXIT-STATUS={status}" in screen, screen
    assert "Traceback" not in screen
    assert "Symbols" not in screen  # back on the normal screen
    assert terminal.modes() == "0 0 1"  # normal screen, mouse not tracked, cursor shown


def test_a_closed_terminal_ends_the_monitor(terminal: Terminal) -> None:
    """The terminal goes away (its kernel SIGHUP, nothing left to give back): the
    monitor still ends (Textual's last writes to it must not keep it alive)."""
    terminal.keys(f"{COMMAND} --paused", "Enter")
    terminal.wait_for(lambda s: "paused" in s and "Symbols" in s and "ACME" in s)
    pid = monitor_pid(terminal)
    terminal.tmux("kill-server")
    deadline = time.monotonic() + HANG_BOUND
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError("the monitor outlived its terminal")
        time.sleep(0.05)


def test_a_thread_the_analysis_leaves_running_does_not_keep_the_monitor_alive(
    terminal: Terminal, tmp_path: Path
) -> None:
    (tmp_path / "qa_leak.py").write_text(LEAK)
    terminal.keys(
        f"{COMMAND} --paused --set analysis.entry=qa_leak:LeakThread; echo EXIT-STATUS=$?",
        "Enter",
    )
    terminal.wait_for(lambda s: "paused" in s and "Symbols" in s and "ACME" in s)
    terminal.keys("q")
    screen = terminal.wait_for(lambda s: EXIT.search(s) is not None)
    assert "EXIT-STATUS=0" in screen, screen
    assert "sessionkit-tui: warning: thread 'leaky' still running" in screen
    assert "qa_leak.py:" in screen.replace("\n", "")


@pytest.mark.parametrize(("name", "status"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_the_sweep_monitor_gives_the_terminal_back_too(
    terminal: Terminal, name: str, status: int
) -> None:
    terminal.keys(
        f"{COMMAND} sweep demo --param analysis.options.fast=5,10 --speed 60 "
        "--end 2024-11-26 --workers 1; echo EXIT-STATUS=$?",
        "Enter",
    )
    terminal.wait_for(lambda s: "streaming" in s and "pending" in s)
    assert terminal.modes().split()[0] == "1"
    pid = monitor_pid(terminal)
    workers = children(pid)
    os.kill(pid, getattr(signal, name))
    screen = terminal.wait_for(lambda s: EXIT.search(s) is not None)
    assert f"EXIT-STATUS={status}" in screen, screen
    assert "Traceback" not in screen
    assert terminal.modes() == "0 0 1"
    # The sweep's processes are gone: its workers, and the helpers multiprocessing started
    # beside them (its resource tracker exits once it reads the monitor's end on its pipe,
    # a moment after the shell printed the status: allowed ten seconds, not none).
    give_up = time.monotonic() + 10
    while [w for w in workers if alive(w)] and time.monotonic() < give_up:
        time.sleep(0.05)
    assert [w for w in workers if alive(w)] == []
