"""``sessionkit``'s signals and exits (QA): the real command in a subprocess.

Ctrl-C while the command loads, a signal while the export is finished or a second one
while the run stops, SIGHUP (``kill -HUP`` and a terminal really closed), and a thread an
analysis leaves running. The command is held at a known point where timing matters (an
import, the export's last write, a marker file an analysis writes): no test depends on
how fast the machine is; the timeouts only guard against hangs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

COMMAND = [sys.executable, "-m", "sessionkit.engine.cli"]
STREAMS = 6 * 3  # the demo's six symbols, 1m, 5m and 15m
HANG_BOUND = 60.0  # seconds: only a hang takes this long

ANALYSES = '''
import threading
import time
from pathlib import Path


class Marker:
    """Creates the file ``marker`` after ``after`` steps, and runs on."""

    def __init__(self, marker: str = "", after: int = 1) -> None:
        self.marker, self.after, self.n = marker, after, 0

    def on_step(self, ctx) -> None:
        self.n += 1
        if self.n == self.after:
            Path(self.marker).touch()


class LeakThread:
    """Starts a thread that is not a daemon and never ends."""

    def __init__(self) -> None:
        threading.Thread(target=self.forever, name="leaky").start()

    def forever(self) -> None:
        while True:
            time.sleep(3600)  # leaky-line

    def on_step(self, ctx) -> None:
        pass
'''

HOLD_IMPORT = """
import os, sys, time
from pathlib import Path

class Hold:
    def find_spec(self, name, path=None, target=None):
        if name == "sessionkit.engine.cli.sweep":
            Path(os.environ["QA_HELD"]).touch()
            time.sleep(300)  # interrupted by the test's SIGINT
        return None

sys.meta_path.insert(0, Hold())
sys.argv[0] = "sessionkit"
from sessionkit.engine.cli import main
main()
"""

HOLD_EXPORT = """
import os, sys, time
from pathlib import Path

held, release = Path(os.environ["QA_HELD"]), Path(os.environ["QA_RELEASE"])
from sessionkit.engine.store import export

drain = export.ExportWriter.drain

def held_drain(self, *, final=False):
    if final and not held.exists():  # the export's last write, once the run ended
        held.touch()
        while not release.exists():  # the test signals the command here
            time.sleep(0.01)
    return drain(self, final=final)

export.ExportWriter.drain = held_drain
sys.argv[0] = "sessionkit"
from sessionkit.engine.cli import main
main()
"""


@pytest.fixture
def analyses(tmp_path: Path) -> Path:
    """A folder holding ``qa_signal_analyses.py`` (run the command in it)."""
    (tmp_path / "qa_signal_analyses.py").write_text(ANALYSES)
    return tmp_path


def wait_until(predicate: Callable[[], bool], process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + HANG_BOUND
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"the command ended before {what}: {process.returncode}")
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.02)


def start(args: list[str], folder: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The command with its output in ``folder``/out.txt and err.txt; ``env`` added to the
    environment (a ``PYTHONPATH`` in front of the one there)."""
    env = dict(env or {})
    if "PYTHONPATH" in env and os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] += os.pathsep + os.environ["PYTHONPATH"]
    return subprocess.Popen(
        args,
        stdout=(folder / "out.txt").open("w"),
        stderr=(folder / "err.txt").open("w"),
        cwd=folder,
        env={**os.environ, **env},
        start_new_session=True,  # a signal the test sends reaches the command only
    )


def ended(process: subprocess.Popen, folder: Path) -> tuple[int, str, str]:
    try:
        status = process.wait(HANG_BOUND)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"the command hung:\n{(folder / 'err.txt').read_text()}") from None
    return status, (folder / "out.txt").read_text(), (folder / "err.txt").read_text()


def files_in(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_ctrl_c_while_the_commands_load_is_exit_130_without_a_traceback(tmp_path: Path) -> None:
    """Held while it imports the sub-commands (its first second): Ctrl-C there printed
    a traceback (the import was outside the handler of KeyboardInterrupt)."""
    held = tmp_path / "held"
    process = start(
        [sys.executable, "-c", HOLD_IMPORT, "run", "demo"], tmp_path, {"QA_HELD": str(held)}
    )
    wait_until(held.exists, process, "importing the sub-commands")
    process.send_signal(signal.SIGINT)
    status, out, err = ended(process, tmp_path)
    assert status == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip() == "interrupted"
    assert out == ""


def _held_export(tmp_path: Path) -> tuple[subprocess.Popen, Path, Path, Path]:
    """A short data-driven run with --export --json, held at its export's last write."""
    held, release, out = tmp_path / "held", tmp_path / "release", tmp_path / "export"
    args = [sys.executable, "-c", HOLD_EXPORT, "run", "demo", "--start", "2024-12-02"]
    args += ["--end", "2024-12-02", "--speed", "max", "--json", "--export", str(out)]
    process = start(args, tmp_path, {"QA_HELD": str(held), "QA_RELEASE": str(release)})
    wait_until(held.exists, process, "finishing the export")
    return process, release, out, tmp_path / "err.txt"


def test_a_signal_while_the_export_is_finished_still_writes_it(tmp_path: Path) -> None:
    """The run has ended; Ctrl-C while its export is finished: the export of what ran is
    still written, with the summary (it used to end with neither, and .tmp files left)."""
    process, release, out, err_file = _held_export(tmp_path)
    process.send_signal(signal.SIGINT)
    wait_until(lambda: "finishing the export" in err_file.read_text(), process, "saying so")
    release.touch()
    status, stdout, err = ended(process, tmp_path)
    assert status == 130, err
    assert "Traceback" not in err
    data = json.loads(stdout)
    assert data["state"] == "completed"
    assert len(data["export"]) == STREAMS + 1
    assert not [name for name in files_in(out) if name.endswith(".tmp")]
    assert len(files_in(out)) == STREAMS + 1


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_a_second_signal_while_the_export_is_finished_abandons_it(
    tmp_path: Path, second: int
) -> None:
    """Ctrl-C, then another signal while the export is finished: the export is abandoned
    (its temporary files removed, one line says so), the summary still printed; the exit
    status is the first signal's."""
    process, release, out, err_file = _held_export(tmp_path)
    process.send_signal(signal.SIGINT)
    wait_until(lambda: "finishing the export" in err_file.read_text(), process, "saying so")
    process.send_signal(second)
    status, stdout, err = ended(process, tmp_path)
    assert status == 130, err
    assert "Traceback" not in err
    assert "export abandoned" in err
    data = json.loads(stdout)
    assert data["state"] == "completed" and data["export"] == []
    assert files_in(out) == []  # no .tmp file, no partial export


def test_a_second_ctrl_c_while_the_run_stops_abandons_the_export(
    tmp_path: Path, analyses: Path
) -> None:
    """An analysis that never returns, so that stopping the run takes its second; a second
    Ctrl-C then used to end the command with no summary and the export's .tmp files left."""
    marker, out = tmp_path / "stuck", tmp_path / "export"
    tests = str(Path(__file__).parents[1])  # tests/pipeline_analyses.py
    args = [*COMMAND, "run", "demo", "--start", "2024-12-02", "--end", "2024-12-02", "--json"]
    args += ["--export", str(out), "--set", "analysis.entry=pipeline_analyses:Hang"]
    args += ["--set", "analysis.options.after=15", "--set", f"analysis.options.marker={marker}"]
    process = start(args, tmp_path, {"PYTHONPATH": tests})
    wait_until(marker.exists, process, "reaching the hanging step")
    process.send_signal(signal.SIGINT)
    err_file = tmp_path / "err.txt"
    wait_until(lambda: "stopping" in err_file.read_text(), process, "stopping")
    process.send_signal(signal.SIGINT)  # while it waits for the stuck thread
    status, stdout, err = ended(process, tmp_path)
    assert status == 130, err
    assert "Traceback" not in err
    assert "export abandoned" in err
    data = json.loads(stdout)
    assert data["state"] == "stopped" and data["export"] == []
    assert files_in(out) == []


def test_sighup_stops_the_run_like_sigterm(tmp_path: Path, analyses: Path) -> None:
    """SIGHUP (the terminal closed) killed the run outright: no summary, .tmp files left.
    Now: the summary (state stopped) and the export of what ran, exit status 129."""
    marker, out = tmp_path / "streaming", tmp_path / "export"
    args = [*COMMAND, "run", "demo", "--speed", "60", "--json", "--export", str(out)]
    args += ["--set", "analysis.entry=qa_signal_analyses:Marker"]
    args += ["--set", f"analysis.options.marker={marker}"]
    process = start(args, analyses)
    wait_until(marker.exists, process, "streaming")
    process.send_signal(signal.SIGHUP)
    status, stdout, err = ended(process, analyses)
    assert status == 129, err
    assert "Traceback" not in err
    data = json.loads(stdout)
    assert data["state"] == "stopped"
    assert len(data["export"]) == STREAMS + 1
    assert len(files_in(out)) == STREAMS + 1  # and no .tmp


def test_a_closed_terminal_stops_the_run_and_writes_the_export(
    tmp_path: Path, analyses: Path
) -> None:
    """The command on a terminal (a pseudo-terminal it controls, progress bar shown) that
    is then closed: the kernel's SIGHUP stops it, the export is complete, exit 129 (the
    summary has nowhere to go)."""
    import fcntl
    import pty
    import select
    import termios

    marker, out = tmp_path / "streaming", tmp_path / "export"
    args = [*COMMAND, "run", "demo", "--speed", "60", "--export", str(out)]
    args += ["--set", "analysis.entry=qa_signal_analyses:Marker"]
    args += ["--set", f"analysis.options.marker={marker}"]
    master, slave = pty.openpty()

    def controlling_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        args, stdin=slave, stdout=slave, stderr=slave, cwd=analyses,
        preexec_fn=controlling_terminal,
    )  # fmt: skip
    os.close(slave)
    try:
        deadline = time.monotonic() + HANG_BOUND
        while not marker.exists():  # reading what it writes, as a terminal does
            assert process.poll() is None and time.monotonic() < deadline
            if select.select([master], [], [], 0.05)[0]:
                os.read(master, 65536)
    finally:
        os.close(master)  # the terminal closes
    try:
        status = process.wait(HANG_BOUND)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert status == 129
    assert len(files_in(out)) == STREAMS + 1  # and no .tmp


def test_a_thread_the_analysis_leaves_running_does_not_keep_the_command_alive(
    analyses: Path,
) -> None:
    """A non-daemon thread that never ends kept the interpreter from exiting after the
    summary (forever). Now it is given a second, named with its line, and left behind."""
    args = [*COMMAND, "run", "demo", "--start", "2024-12-02", "--end", "2024-12-02", "--json"]
    args += ["--set", "analysis.entry=qa_signal_analyses:LeakThread"]
    process = start(args, analyses)
    status, stdout, err = ended(process, analyses)
    assert status == 0, err
    assert json.loads(stdout)["state"] == "completed"
    (line,) = [line for line in err.splitlines() if "leaky" in line]
    assert line.startswith("sessionkit: warning: thread 'leaky' still running")
    number = ANALYSES.splitlines().index(
        next(t for t in ANALYSES.splitlines() if "leaky-line" in t)
    )
    assert f"qa_signal_analyses.py:{number + 1} (LeakThread.forever)" in line


def test_the_command_status_survives_a_thread_left_running(analyses: Path) -> None:
    """The exit status is the command's when threads are left behind (SIGTERM: 143)."""
    marker = analyses / "streaming"
    (analyses / "qa_both.py").write_text(
        "from qa_signal_analyses import LeakThread, Marker\n\n\n"
        "class Both(Marker):\n"
        "    def __init__(self, marker: str = '') -> None:\n"
        "        super().__init__(marker)\n"
        "        LeakThread()\n"
    )
    args = [*COMMAND, "run", "demo", "--speed", "60", "--json"]
    args += ["--set", "analysis.entry=qa_both:Both", "--set", f"analysis.options.marker={marker}"]
    process = start(args, analyses, {"PYTHONPATH": str(analyses)})
    wait_until(marker.exists, process, "streaming")
    process.send_signal(signal.SIGTERM)
    status, stdout, err = ended(process, analyses)
    assert status == 143, err
    assert json.loads(stdout)["state"] == "stopped"
    assert "thread 'leaky' still running" in err
