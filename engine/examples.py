"""Example analyses for sessionkit (run on the ``analysis_engine`` thread).

:class:`SmaCross` is the bundled demo's analysis: it emits ``buy`` when a fast SMA of
closes crosses above a slow one and ``sell`` when it crosses below.
"""

from __future__ import annotations

from typing import Any


class SmaCross:
    """Emit ``buy``/``sell`` when a fast SMA crosses a slow SMA (per symbol, base interval).

    Parameters
    ----------
    fast, slow
        Periods of the two simple moving averages, in bars.
    """

    def __init__(self, fast: int = 10, slow: int = 30) -> None:
        if not 0 < fast < slow:
            raise ValueError(f"SmaCross needs 0 < fast < slow, got fast={fast}, slow={slow}")
        self.fast = fast
        self.slow = slow
        self._above: dict[str, bool | None] = {}

    def on_session_start(self, ctx: Any) -> None:
        self._above = dict.fromkeys(ctx.symbols)

    def on_step(self, ctx: Any) -> None:
        for symbol, _bar in ctx.items:
            closes = ctx.closes(symbol, self.slow)  # the last closes known at ctx.time
            if len(closes) < self.slow:
                continue
            fast = sum(closes[-self.fast :]) / self.fast
            slow = sum(closes) / self.slow
            above = fast > slow
            before = self._above.get(symbol)
            self._above[symbol] = above
            if before is not None and above != before:
                ctx.emit(
                    symbol,
                    "buy" if above else "sell",
                    closes[-1],
                    f"SMA{self.fast} {'above' if above else 'below'} SMA{self.slow}",
                )
