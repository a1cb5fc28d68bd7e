"""Analysis classes for the TUI tests (run by the engine on its ``analysis_engine`` thread)."""

from __future__ import annotations

import time
from typing import Any


class FailAt:
    """Raises ``RuntimeError`` at the ``at``-th step (1-based)."""

    def __init__(self, at: int = 3) -> None:
        self.at = at
        self.steps = 0

    def on_step(self, ctx: Any) -> None:
        self.steps += 1
        if self.steps >= self.at:
            raise RuntimeError(f"deliberate failure at step {self.steps}")


class Pace:
    """Sleeps ``seconds`` per step: keeps a data-driven run going for a while, whatever
    the machine's speed (the engine itself replays the sample in well under a second)."""

    def __init__(self, seconds: float = 0.001) -> None:
        self.seconds = seconds

    def on_step(self, ctx: Any) -> None:
        time.sleep(self.seconds)
