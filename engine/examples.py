"""Example analyses for sessionkit (run on the ``analysis_engine`` thread).

:class:`SmaCross` is the bundled demo's analysis: it emits ``buy`` when a fast SMA of
closes crosses above a slow one and ``sell`` when it crosses below, and reports what
following its own signals would have given (:meth:`SmaCross.metrics`).
"""

from __future__ import annotations

from collections import deque
from operator import add, mul
from typing import Any


class SmaCross:
    """Emit ``buy``/``sell`` when a fast SMA crosses a slow SMA (per symbol, base interval).

    Its metrics follow the signals long/flat: each symbol gets an equal share of the
    capital; a signal is filled at the open of that symbol's next bar (the next session's
    first bar if the signal came at the close), paying ``fee_bps`` on the traded value;
    a ``buy`` while long or a ``sell`` while flat changes nothing. The portfolio is valued
    at every step at each symbol's last close.

    Parameters
    ----------
    fast, slow
        Periods of the two simple moving averages, in bars.
    fee_bps
        Fee per fill, in basis points of the traded value (0 by default).
    """

    def __init__(self, fast: int = 10, slow: int = 30, fee_bps: float = 0.0) -> None:
        for name, value in (("fast", fast), ("slow", slow)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"SmaCross needs a whole number of bars for {name}, got {value!r}")
        if isinstance(fee_bps, bool) or not isinstance(fee_bps, int | float):
            raise ValueError(f"SmaCross needs a number for fee_bps, got {fee_bps!r}")
        if not 0 < fast < slow:
            raise ValueError(f"SmaCross needs 0 < fast < slow, got fast={fast}, slow={slow}")
        if not 0 <= fee_bps < 10_000:
            raise ValueError(f"SmaCross needs 0 <= fee_bps < 10000, got {fee_bps}")
        self.fast = fast
        self.slow = slow
        self.fee = fee_bps / 10_000
        self._above: dict[str, bool | None] = {}
        self._closes: dict[str, tuple[deque[float], deque[float]]] = {}
        """Per symbol, its last ``fast`` and its last ``slow`` closes."""
        self._book: _Book | None = None

    def on_session_start(self, ctx: Any) -> None:
        if self._book is None:
            self._book = _Book(ctx.symbols, self.fee)
        # The last closes known now (the trailing window's; without one, the carried-on
        # previous session's last), then each step's own bars: at every step these are exactly
        # ``ctx.closes(symbol, slow)`` and its last ``fast``, without a view per bar. Which
        # average is above is what those closes say: a cross on the session's first bar
        # is one (it was forgotten at every open).
        self._closes = {}
        self._above = {}
        for symbol in ctx.symbols:
            closes = list(ctx.closes(symbol, self.slow))
            fast = deque(closes[-self.fast :], maxlen=self.fast)
            slow = deque(closes, maxlen=self.slow)
            self._closes[symbol] = (fast, slow)
            self._above[symbol] = (
                sum(fast) / self.fast > sum(slow) / self.slow if len(slow) == self.slow else None
            )

    def on_step(self, ctx: Any) -> None:
        book = self._book
        if book is None:  # no session started yet
            return
        fast_n, slow_n = self.fast, self.slow
        state = self._above
        windows = self._closes
        last = book.last
        pending = book.pending  # the orders waiting for their symbol's next bar
        for symbol, bar in ctx.items:
            close = bar[4]
            if pending:
                book.on_bar(symbol, bar[1], close)  # open, close
            else:  # the common case: no order waits for this bar
                last[symbol] = close
            fast, slow = windows[symbol]
            fast.append(close)
            slow.append(close)
            if len(slow) < slow_n:
                continue
            # fast SMA above the slow one? (each summed exactly, oldest first)
            above = sum(fast) / fast_n > sum(slow) / slow_n
            before = state[symbol]
            if above is before:  # no cross (the common case)
                continue
            state[symbol] = above
            if before is not None:
                book.order(symbol, long=above)
                ctx.emit(
                    symbol,
                    "buy" if above else "sell",
                    close,
                    f"SMA{fast_n} {'above' if above else 'below'} SMA{slow_n}",
                )
        book.mark()

    def metrics(self) -> dict[str, float]:
        """``total_return_pct``, ``max_drawdown_pct``, ``trades`` and ``win_rate_pct``.

        A position still open is valued at its symbol's last close and counted as a trade.
        ``win_rate_pct`` is absent while there is no trade.
        """
        if self._book is None:
            return {}
        return self._book.metrics()


class _Book:
    """Long/flat sleeves, one per symbol, each starting with ``1 / len(symbols)``."""

    def __init__(self, symbols: tuple[str, ...], fee: float) -> None:
        share = 1.0 / len(symbols)
        self.fee = fee
        self.cash = dict.fromkeys(symbols, share)
        self.units = dict.fromkeys(symbols, 0.0)
        self.cost = dict.fromkeys(symbols, 0.0)
        """What the open position cost (cash before the buy), per symbol."""
        self.last = dict.fromkeys(symbols, 0.0)
        self.pending: dict[str, bool] = {}
        self.start = self.peak = self.equity = sum(self.cash.values())
        """The capital at the start: 1.0 up to rounding (six sixths make 0.9999999999999999),
        valued as :meth:`mark` values it, so a run without trades returns exactly 0."""
        self.max_drawdown = 0.0
        self.trades = 0
        self.wins = 0

    def order(self, symbol: str, *, long: bool) -> None:
        self.pending[symbol] = long

    def on_bar(self, symbol: str, open_: float, close: float) -> None:
        if not self.pending:  # the common case: no order waits for this bar
            self.last[symbol] = close
            return
        long = self.pending.pop(symbol, None)
        if long is True and self.units[symbol] == 0.0:
            self.cost[symbol] = self.cash[symbol]
            self.units[symbol] = self.cash[symbol] * (1.0 - self.fee) / open_
            self.cash[symbol] = 0.0
        elif long is False and self.units[symbol] > 0.0:
            self._close(symbol, self.units[symbol] * open_ * (1.0 - self.fee))
        self.last[symbol] = close

    def _close(self, symbol: str, proceeds: float) -> None:
        self.trades += 1
        self.wins += proceeds > self.cost[symbol]
        self.cash[symbol] = proceeds
        self.units[symbol] = 0.0

    def mark(self) -> None:
        # sum(cash + units * last) over the symbols, in C (called at every step); the
        # three dicts have the same keys in the same order (dict.fromkeys(symbols)).
        equity = sum(
            map(add, self.cash.values(), map(mul, self.units.values(), self.last.values()))
        )
        self.equity = equity
        if equity > self.peak:
            self.peak = equity
        drawdown = 1.0 - equity / self.peak
        if drawdown > self.max_drawdown:
            self.max_drawdown = drawdown

    def metrics(self) -> dict[str, float]:
        trades, wins = self.trades, self.wins
        for symbol, units in self.units.items():
            if units > 0.0:
                trades += 1
                wins += units * self.last[symbol] > self.cost[symbol]
        out = {
            "total_return_pct": (self.equity / self.start - 1.0) * 100.0,
            "max_drawdown_pct": self.max_drawdown * 100.0,
            "trades": float(trades),
        }
        if trades:
            out["win_rate_pct"] = wins / trades * 100.0
        return out
