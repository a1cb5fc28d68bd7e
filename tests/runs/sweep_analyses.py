"""Analyses of the sweep tests (loaded by worker processes through ``analysis.entry``)."""

from __future__ import annotations

import sys

from sessionkit.engine.examples import SmaCross


class Noisy(SmaCross):
    """SmaCross that prints at each session start, to stdout and to stderr."""

    def on_session_start(self, ctx) -> None:
        print(f"noisy stdout fast={self.fast}", flush=True)
        print(f"noisy stderr fast={self.fast}", file=sys.stderr, flush=True)
        super().on_session_start(ctx)


class Mute:
    """An analysis without metrics (no ``metrics`` method): it only emits."""

    def on_step(self, ctx) -> None:
        for symbol, bar in ctx.items:
            if bar[4] > bar[1] * 1.01:
                ctx.emit(symbol, "jump", bar[4], "up 1% in a bar")


class RsiZones:
    """Emits ``low`` / ``high`` when the ``rsi_14`` indicator enters the zone below 30 /
    above 70: signals that depend on the indicators' state (RSI is recursive)."""

    def __init__(self) -> None:
        self.zone: dict[str, str] = {}

    def on_step(self, ctx) -> None:
        for symbol, bar in ctx.items:
            value = ctx.indicator(symbol, "rsi_14")
            if value is None:
                continue
            zone = "low" if value < 30 else "high" if value > 70 else "mid"
            if zone != self.zone.get(symbol) and zone != "mid":
                ctx.emit(symbol, zone, bar[4], f"RSI {value:.2f}")
            self.zone[symbol] = zone


class Chatty(SmaCross):
    """SmaCross that prints at each session start without flushing (a worker's stdout to
    a file is block-buffered: the print is in the buffer until the process flushes)."""

    def on_session_start(self, ctx) -> None:
        print(f"chatty fast={self.fast}")
        super().on_session_start(ctx)
