"""Helpers of the TUI tests: drive a session to a fixed point, build and settle the app.

Used from the tests' thread and from Pilot coroutines on the app's event loop (never
blocking it: engine waits go through ``asyncio.to_thread`` or short sleeps).
Apps are built with :func:`sessionkit.tui.app.create_app`, like the command line does,
with ``frozen_metrics=True`` so that wall-clock figures never reach a snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from typing import Any

from sessionkit.engine.pipeline.session import Session
from sessionkit.tui.app import SessionkitApp, create_app
from textual.pilot import Pilot
from textual.widgets import Input

SNAPSHOT_SIZES = [(120, 40), (80, 24)]
"""Terminal sizes every snapshot is taken at."""

EARLY_CLOSE = date(2024, 11, 29)
"""The day after Thanksgiving 2024: NYSE closes at 13:00 (in the demo's calendar)."""


def drive(session: Session, steps: int = 0, *, timeout: float = 20.0) -> None:
    """Start a paused session, step it ``steps`` instants and wait until it is idle again."""
    session.start()
    assert session.wait_idle(timeout), "the session did not load"
    if steps:
        session.step(steps)
        assert session.wait_idle(timeout), "the session did not finish stepping"


def run_to_end(session: Session, *, timeout: float = 60.0) -> None:
    """Start a (data-driven) session and wait until it reaches a final state."""
    session.start()
    assert session.wait(timeout), "the session did not end"


def snapshot_app(session: Any, **options: Any) -> SessionkitApp:
    """The app as production builds it, with wall-clock figures frozen."""
    options.setdefault("frozen_metrics", True)
    return create_app(session, **options)


async def settle(pilot: Pilot) -> None:
    """``run_before`` of every snapshot: no blinking cursor, the engine's state shown."""
    app = pilot.app
    for widget in app.query(Input):
        widget.cursor_blink = False
    assert isinstance(app, SessionkitApp)
    app.sync()
    await pilot.pause()
    app.sync()
    await pilot.pause()


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` off the engine's threads, without blocking the event loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()
