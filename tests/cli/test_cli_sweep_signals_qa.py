"""``sessionkit sweep`` and signals (QA): Ctrl-C to the whole process group while the
worker processes start, SIGHUP, SIGTERM to the group on a local Dask cluster, a worker
process that cannot exit once its runs are done, and ``--out`` checked before any run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_analyses import write_leaky

COMMAND = [sys.executable, "-m", "sessionkit.engine.cli", "sweep"]
SLOW = ["demo", "--speed", "3600", "--end", "2024-12-03"]


def _default_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def _children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(child) for child in (task / "children").read_text().split()]
    return children


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _group_alive(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            alive.append(int(stat.parent.name))
    return alive


def _start(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [*COMMAND, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_signals,
        start_new_session=True,  # its own group, as a terminal's foreground job
        **kwargs,
    )


def _finish(process: subprocess.Popen, timeout: float = 90) -> tuple[str, str]:
    try:
        return process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


def _when_a_worker_starts(pid: int, marker: str, bound: float = 120.0) -> bool:
    """True as soon as ``pid`` has a child whose command line holds ``marker`` (a worker
    process just spawned, still starting its Python)."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if any(marker in _cmdline(child) for child in _children(pid)):
            return True
        time.sleep(0.002)
    return False


@pytest.mark.parametrize("executor", [[], ["--dask", "local"]], ids=["pool", "dask"])
def test_ctrl_c_to_the_group_as_the_workers_start_prints_one_line(executor) -> None:
    """Ctrl-C reaching the worker processes while they started their Python printed their
    tracebacks (KeyboardInterrupt in spawn_main, or EOFError), and a local Dask cluster
    interrupted while it started was closed by atexit with an AssertionError traceback.
    Now only the sweep sees it: one line, exit 130."""
    marker = "spawn_main"
    process = _start([*SLOW, "--param", "analysis.options.fast=5,10,20", "--workers", "2",
                      *executor])  # fmt: skip
    try:
        assert _when_a_worker_starts(process.pid, marker), "no worker process started"
        # Ctrl-C as it reaches a worker still starting its Python (each gets it, for a
        # moment, as it appears), then the sweep.
        hit: set[int] = set()
        until = time.monotonic() + 0.5
        while time.monotonic() < until:
            for child in _children(process.pid):
                if child not in hit and marker in _cmdline(child):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGINT)
                    hit.add(child)
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGINT)
        out, err = _finish(process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert err.strip() == "interrupted: the pending runs were cancelled", err
    assert "no run finished" in out
    deadline = time.monotonic() + 30  # (a bound for a loaded machine)
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_alive(process.pid)


def _workers_running(pid: int, count: int, bound: float = 120.0) -> bool:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        running = 0
        for child in _children(pid):
            with contextlib.suppress(OSError):
                if "_sqlite3" in Path(f"/proc/{child}/maps").read_text():
                    running += 1
        if running >= count:
            time.sleep(0.5)
            return True
        time.sleep(0.1)
    return False


def test_sighup_stops_the_sweep_like_sigterm() -> None:
    """SIGHUP (the terminal closed) killed the sweep: no output, and the resource tracker
    reported leaked semaphores. Now it stops as SIGTERM does, exit status 129."""
    process = _start([*SLOW, "--param", "analysis.options.fast=5,10,20", "--workers", "2"])
    try:
        assert _workers_running(process.pid, 2), "the sweep never started its workers"
        os.killpg(process.pid, signal.SIGHUP)  # a terminal's hang-up reaches the group
        out, err = _finish(process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 129, err
    assert err.strip() == "hung up: the pending runs were cancelled", err
    assert "no run finished" in out
    deadline = time.monotonic() + 30
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_alive(process.pid)


def test_sigterm_to_the_group_on_a_local_dask_cluster_restarts_no_worker() -> None:
    """SIGTERM to the whole group killed the Dask workers, whose nannies restarted them
    ("Restarting worker" warnings) and the sweep's close waited for the new processes."""
    process = _start([*SLOW, "--param", "analysis.options.fast=5,10", "--workers", "2",
                      "--dask", "local"])  # fmt: skip
    try:
        assert _workers_running(process.pid, 2), "the sweep never started its runs"
        os.killpg(process.pid, signal.SIGTERM)
        out, err = _finish(process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 143, err
    assert err.strip() == "terminated: the pending runs were cancelled", err


def test_a_worker_that_cannot_exit_is_killed_with_a_warning(tmp_path) -> None:
    """A run that left a non-daemon thread running kept its worker process from exiting:
    the pool's shutdown waited forever (no table). Now the sweep kills it after a second
    and names the run; the table and the exit status are as usual."""
    write_leaky(tmp_path)
    process = _start(
        ["demo", "--speed", "max", "--start", "2024-12-09", "--end", "2024-12-09",
         "--param", "analysis.options.fast=5,10", "--workers", "2",
         "--set", "analysis.entry=leaky:Leaky"],
        cwd=tmp_path,
    )  # fmt: skip
    out, err = _finish(process, timeout=120)
    assert process.returncode == 0, err
    assert "2 of 2 runs" in out
    warnings = [line for line in err.splitlines() if "did not exit" in line]
    assert warnings, err
    assert all("'leaky'" in line and "it was killed" in line for line in warnings)
    named = " ".join(warnings)
    assert "run 1 (analysis.options.fast=5)" in named or "run 2" in named
    assert "Traceback" not in err
    deadline = time.monotonic() + 30
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_alive(process.pid), "a worker process outlived the sweep"


@pytest.mark.parametrize("where", ["afile/table.csv", "afile/sub/table.csv"])
def test_an_unwritable_out_is_refused_before_any_run(tmp_path, where) -> None:
    """``--out`` under a file (or on a read-only file system) was found unwritable only
    once every run had run."""
    (tmp_path / "afile").write_text("")
    out = tmp_path / where
    result = subprocess.run(
        [*COMMAND, "demo", "--speed", "max", "--start", "2024-12-09", "--end", "2024-12-09",
         "--param", "analysis.options.fast=5,10", "--workers", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"--out {out}: cannot write it:" in result.stderr
    assert "finished" not in result.stderr  # (no run ran: none reported)
    assert result.stdout == ""


def test_a_writable_out_leaves_nothing_behind_until_written(tmp_path) -> None:
    out = tmp_path / "new" / "table.csv"
    result = subprocess.run(
        [*COMMAND, "demo", "--speed", "max", "--start", "2024-12-09", "--end", "2024-12-09",
         "--param", "analysis.options.fast=5,10", "--workers", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith("rank,")
    assert [p.name for p in out.parent.iterdir()] == ["table.csv"]
    assert not list(tmp_path.glob(".sessionkit-check-*"))
