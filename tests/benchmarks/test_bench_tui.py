"""Benchmarks of the terminal UI attached to a running engine.

Run: ``.venv/bin/python -m pytest tests/benchmarks/test_bench_tui.py -s`` (the figures are
printed, and kept in each benchmark's ``extra_info``; see ``--benchmark-json``).

- throughput: the demo universe replayed data-driven (max speed), headless and with the
  monitor attached (Textual headless at 120x40: it lays out and renders every frame, it
  only skips writing to a terminal), in rounds of one run each, back to back; the engine's
  own ``bars_per_second`` with the UI must be at least 80% of headless. The figure is the
  median of the rounds' ratios: thread scheduling makes single runs noisy, and the
  machine's speed drifts between rounds, which a ratio within a round cancels;
- refresh rate: frames the app composes per second while the engine runs at max speed
  (at least 10);
- refresh with 500 symbols: a synthetic 500-symbol universe (``tests/tui/universe.py``)
  replayed at max speed with the monitor attached; frames per second (at least 10) and
  polls per second;
- first frame: ``sessionkit-tui`` launched in a pseudo-terminal on the sample database;
  seconds until the first frame, and until the loaded session is on screen (at most 1.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import select
import statistics
import struct
import subprocess
import sys
import termios
import time
from datetime import date
from pathlib import Path

import pytest
from sessionkit.engine.config import load_config
from sessionkit.engine.pipeline.session import Session
from sessionkit.tui.app import create_app

ROUNDS = 4
WINDOW = {"clock": "data-driven", "start_date": date(2024, 11, 25), "end_date": date(2024, 12, 31)}
"""The whole demo: 25 sessions, 9,390 instants, about 56,000 base bars (a few seconds)."""
MEASURE_FROM_STEP = 300
"""Frames are counted once the engine is well under way (the first load is excluded)."""

THROUGHPUT_RATIO_TARGET = 0.80
FRAME_RATE_TARGET = 10.0
FIRST_FRAME_TARGET = 1.5

COMMAND = Path(sys.executable).parent / "sessionkit-tui"


def _session() -> Session:
    return Session(load_config("demo", {"backtest": WINDOW}), source="demo")


def _headless() -> float:
    session = _session()
    session.start()
    assert session.wait(120)
    snapshot = session.snapshot()
    assert session.stop()
    assert snapshot.state == "completed", snapshot.error
    return snapshot.metrics.bars_per_second


async def _with_ui() -> tuple[float, float, float]:
    """(engine bars/s, frames/s, UI thread CPU share) with the monitor attached."""
    session = _session()
    app = create_app(session)
    frames = 0
    display = app._display

    def counting_display(screen, renderable):  # one call per composed frame
        nonlocal frames
        if renderable is not None:
            frames += 1
        return display(screen, renderable)

    app._display = counting_display  # type: ignore[method-assign]
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            while session.snapshot().metrics.steps < MEASURE_FROM_STEP:
                await asyncio.sleep(0.01)
            frames_before, wall, cpu = frames, time.perf_counter(), time.thread_time()
            while not session.snapshot().finished:
                await asyncio.sleep(0.02)
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            counted = frames - frames_before
            await pilot.press("q")
    finally:
        session.stop()
    snapshot = session.snapshot()
    assert snapshot.state == "completed", snapshot.error
    return snapshot.metrics.bars_per_second, counted / wall, cpu / wall


def test_bench_tui_throughput_and_refresh_rate(benchmark) -> None:
    headless: list[float] = []
    attached: list[tuple[float, float, float]] = []

    def run() -> None:
        for _ in range(ROUNDS):
            headless.append(_headless())
            attached.append(asyncio.run(_with_ui()))

    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    base = statistics.median(headless)
    with_ui = statistics.median(rate for rate, _, _ in attached)
    fps = statistics.median(f for _, f, _ in attached)
    cpu = statistics.median(c for _, _, c in attached)
    ratios = [ui / alone for alone, (ui, _, _) in zip(headless, attached, strict=True)]
    ratio = statistics.median(ratios)
    benchmark.extra_info.update(
        {
            "headless_bars_per_second": [round(x) for x in headless],
            "ui_bars_per_second": [round(r) for r, _, _ in attached],
            "ui_frames_per_second": [round(f, 1) for _, f, _ in attached],
            "ui_thread_cpu_share": [round(c, 3) for _, _, c in attached],
            "ratios": [round(r, 3) for r in ratios],
            "median_ratio": round(ratio, 3),
        }
    )
    print(
        f"\nthroughput at max speed: headless {base:,.0f} bars/s, with the UI {with_ui:,.0f} "
        f"bars/s; with/without {ratio:.0%} (median of {ROUNDS} rounds: "
        f"{', '.join(f'{r:.0%}' for r in ratios)}); UI refresh {fps:.1f} frames/s; UI "
        f"thread {cpu:.0%} of a CPU\n  headless {[round(x) for x in headless]}\n  with UI "
        f"{[round(r) for r, _, _ in attached]}\n  frames/s {[round(f, 1) for _, f, _ in attached]}"
    )
    assert ratio >= THROUGHPUT_RATIO_TARGET, f"with the UI: {ratio:.0%} of headless"
    assert fps >= FRAME_RATE_TARGET, f"the UI refreshed {fps:.1f} times a second"


def _launch_and_time(timeout: float = 10.0) -> tuple[float, float, float]:
    """Start the command in a 120x40 pseudo-terminal; (first frame, session shown, quit) s."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "SESSIONKIT_THEME_DIR")}
    env["TERM"] = "xterm-256color"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(COMMAND), "--paused"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    os.close(slave)
    output = b""
    first = shown = None
    try:
        while time.perf_counter() - started < timeout and shown is None:
            ready, _, _ = select.select([master], [], [], 0.01)
            if ready:
                try:
                    output += os.read(master, 1 << 16)
                except OSError:
                    break
            now = time.perf_counter() - started
            if first is None and b"BACKTEST" in output:
                first = now
            if first is not None and b"2024-11-25" in output and b"paused" in output:
                shown = now
        assert first is not None and shown is not None, output[-2000:]
        quit_started = time.perf_counter()
        os.write(master, b"q")
        while proc.poll() is None and time.perf_counter() - quit_started < 5:
            ready, _, _ = select.select([master], [], [], 0.01)
            if ready:
                with contextlib.suppress(OSError):
                    os.read(master, 1 << 16)
        quit_time = time.perf_counter() - quit_started
        assert proc.returncode == 0, proc.returncode
        return first, shown, quit_time
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


async def _refresh_with(session: Session) -> tuple[float, float, float]:
    """(frames/s, snapshot polls/s, seconds measured) with the monitor on ``session``."""
    app = create_app(session)
    frames = 0
    display = app._display

    def counting_display(screen, renderable):
        nonlocal frames
        if renderable is not None:
            frames += 1
        return display(screen, renderable)

    app._display = counting_display  # type: ignore[method-assign]
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            # The harness reads cheap properties: a 500-symbol snapshot on this loop 50
            # times a second would take the time being measured.
            while session.coordinator.metrics.steps < 20:  # streaming, the load done
                await asyncio.sleep(0.01)
            frames_before, polls_before, wall = frames, app.polls, time.perf_counter()
            while not session.finished:
                await asyncio.sleep(0.02)
            wall = time.perf_counter() - wall
            counted, polls = frames - frames_before, app.polls - polls_before
            await pilot.press("q")
    finally:
        session.stop()
    assert session.snapshot().state == "completed", session.snapshot().error
    return counted / wall, polls / wall, wall


def test_bench_tui_refresh_with_500_symbols(benchmark, tmp_path) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "tui"))
    from sessionkit.engine.config import config_from_dict
    from universe import LONG_DAYS, make_universe, universe_config

    url = make_universe(tmp_path / "universe.sqlite", 500, LONG_DAYS)
    config = universe_config(url, 500, LONG_DAYS)
    config["backtest"]["clock"] = "data-driven"
    results: list[tuple[float, float, float]] = []

    def run() -> None:
        session = Session(config_from_dict(config), source="universe")
        results.append(asyncio.run(_refresh_with(session)))

    benchmark.pedantic(run, rounds=3, iterations=1)
    fps = statistics.median(r[0] for r in results)
    polls = statistics.median(r[1] for r in results)
    benchmark.extra_info.update(
        {
            "frames_per_second": [round(r[0], 1) for r in results],
            "polls_per_second": [round(r[1], 1) for r in results],
            "seconds_measured": [round(r[2], 2) for r in results],
        }
    )
    print(
        f"\n500 symbols at max speed: UI refresh {fps:.1f} frames/s, {polls:.1f} snapshot "
        f"polls/s (medians of {len(results)} runs of "
        f"{', '.join(f'{r[2]:.1f}' for r in results)} s)"
    )
    assert fps >= FRAME_RATE_TARGET, f"the UI refreshed {fps:.1f} times a second"


@pytest.mark.skipif(not COMMAND.exists(), reason="needs the installed command")
def test_bench_tui_first_frame(benchmark) -> None:
    results: list[tuple[float, float, float]] = []
    benchmark.pedantic(lambda: results.append(_launch_and_time()), rounds=3, iterations=1)
    first = statistics.median(r[0] for r in results)
    shown = statistics.median(r[1] for r in results)
    quit_time = max(r[2] for r in results)
    benchmark.extra_info.update(
        {
            "first_frame_seconds": [round(r[0], 3) for r in results],
            "session_shown_seconds": [round(r[1], 3) for r in results],
            "quit_seconds": [round(r[2], 3) for r in results],
        }
    )
    print(
        f"\nfirst frame {first:.2f}s after launch, loaded session on screen {shown:.2f}s "
        f"(medians of {len(results)}); quit (engine stopped, terminal restored) "
        f"<= {quit_time:.2f}s"
    )
    assert shown <= FIRST_FRAME_TARGET, f"the session showed {shown:.2f}s after launch"
    assert quit_time <= 1.5
