"""Incremental technical indicators, updated one bar at a time.

Used by the data processor thread only: each instance belongs to one (symbol, interval,
indicator) and is updated by that thread; nothing here is shared or locked. Every
indicator is O(1) per bar and reports ``None`` until it has seen enough bars.

Definitions (the tests check them against an independent pandas computation):

- ``sma``: mean of the last ``period`` closes.
- ``ema``: exponential mean with ``alpha = 2 / (period + 1)``, seeded with the SMA of the
  first ``period`` closes.
- ``rsi``: Wilder's RSI: the first average gain/loss is the mean over ``period`` changes,
  then ``avg = (avg * (period - 1) + x) / period``.
- ``vwap``: session VWAP of the typical price ``(high + low + close) / 3``; it restarts at
  each session's first bar.
- ``bollinger``: middle band = SMA, upper/lower = middle +/- ``std`` population standard
  deviations of the last ``period`` closes; outputs ``name``, ``name.upper``, ``name.lower``.
- ``atr``: Wilder's average true range (the first bar's true range is high - low).
- ``macd``: EMA(fast) - EMA(slow) of closes, its EMA(signal), and their difference;
  outputs ``name``, ``name.signal``, ``name.hist``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable

from ..config import IndicatorConfig
from ..core.bar import Bar


class Indicator(ABC):
    """Base class: ``update(bar)`` returns one value per entry of ``suffixes``."""

    suffixes: tuple[str, ...] = ("",)
    """Output name suffixes; the first output is the indicator's own name."""

    @abstractmethod
    def update(self, bar: Bar) -> tuple[float | None, ...]:
        """Feed one bar; return the outputs after it."""

    def new_session(self) -> None:  # noqa: B027 - optional hook
        """Called before the first bar of each session (session-anchored indicators reset)."""


class SingleIndicator(Indicator):
    """An indicator with one output: :meth:`feed` returns it bare (no 1-tuple to build
    on the hot path, see :func:`row_builder`)."""

    @abstractmethod
    def feed(self, bar: Bar) -> float | None:
        """Feed one bar; return the output after it."""

    def update(self, bar: Bar) -> tuple[float | None]:
        return (self.feed(bar),)


class SMA(SingleIndicator):
    """Simple moving average of closes."""

    def __init__(self, period: int) -> None:
        self.period = period
        self._window: deque[float] = deque()
        self._sum = 0.0
        self._n = 0

    def feed(self, bar: Bar) -> float | None:
        close = bar[4]
        window = self._window
        window.append(close)
        self._sum += close
        if len(window) > self.period:
            self._sum -= window.popleft()
            self._n += 1
            if self._n >= 1000:  # refresh the running sum now and then: no drift
                self._n = 0
                self._sum = math.fsum(window)
            return self._sum / self.period
        if len(window) == self.period:
            return self._sum / self.period
        return None


class EMA(SingleIndicator):
    """Exponential moving average of closes, seeded with an SMA."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.alpha = 2.0 / (period + 1)
        self.value: float | None = None
        self._seed: list[float] = []

    def push(self, x: float) -> float | None:
        """Feed one value (not a bar): used by MACD."""
        value = self.value
        if value is not None:
            value = self.value = value + self.alpha * (x - value)
            return value
        seed = self._seed
        seed.append(x)
        if len(seed) == self.period:
            self.value = sum(seed) / self.period
            seed.clear()
        return self.value

    def feed(self, bar: Bar) -> float | None:
        return self.push(bar[4])


class RSI(SingleIndicator):
    """Wilder's relative strength index."""

    def __init__(self, period: int) -> None:
        self.period = period
        self._prev: float | None = None
        self._gain = 0.0
        self._loss = 0.0
        self._count = 0

    def feed(self, bar: Bar) -> float | None:
        close = bar[4]
        prev = self._prev
        self._prev = close
        if prev is None:
            return None
        change = close - prev
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        period = self.period
        if self._count < period:
            self._gain += gain
            self._loss += loss
            self._count += 1
            if self._count < period:
                return None
            self._gain /= period
            self._loss /= period
        else:
            self._gain = (self._gain * (period - 1) + gain) / period
            self._loss = (self._loss * (period - 1) + loss) / period
        if self._loss == 0.0:
            return 100.0 if self._gain > 0 else 50.0
        return 100.0 - 100.0 / (1.0 + self._gain / self._loss)


class VWAP(SingleIndicator):
    """Session volume-weighted average of the typical price."""

    def __init__(self) -> None:
        self._pv = 0.0
        self._v = 0.0

    def new_session(self) -> None:
        self._pv = 0.0
        self._v = 0.0

    def feed(self, bar: Bar) -> float | None:
        volume = bar[5]
        self._pv += (bar[2] + bar[3] + bar[4]) / 3.0 * volume
        self._v += volume
        if self._v <= 0:
            return None
        return self._pv / self._v


class Bollinger(Indicator):
    """Bollinger bands: SMA and +/- ``std`` population standard deviations.

    Constant time per bar: running sums of the closes' deviations from a reference near
    the mean (so the variance suffers no cancellation), re-centred and recomputed exactly
    (``math.fsum``) once every ``period`` bars, so rounding never accumulates. Equal to
    the direct two-pass formula within 1e-12 (tested).
    """

    suffixes = ("", ".upper", ".lower")

    def __init__(self, period: int, std: float) -> None:
        self.period = period
        self.k = std
        self._window: deque[float] = deque()
        self._ref = 0.0
        self._s1 = 0.0
        self._s2 = 0.0
        self._since = period - 1

    def update(self, bar: Bar) -> tuple[float | None, float | None, float | None]:
        x = bar.close
        window = self._window
        if not window:
            self._ref = x
        window.append(x)
        ref = self._ref
        d = x - ref
        s1 = self._s1 + d
        s2 = self._s2 + d * d
        period = self.period
        count = len(window)
        if count > period:
            e = window.popleft() - ref
            s1 -= e
            s2 -= e * e
        elif count < period:
            self._s1, self._s2 = s1, s2
            return (None, None, None)
        self._since += 1
        if self._since >= period:  # re-centre on the mean and recompute exactly
            self._since = 0
            ref = self._ref = math.fsum(window) / period
            s1 = math.fsum(v - ref for v in window)
            s2 = math.fsum((v - ref) ** 2 for v in window)
        self._s1, self._s2 = s1, s2
        mean = ref + s1 / period
        variance = (s2 - s1 * s1 / period) / period
        width = self.k * math.sqrt(variance) if variance > 0.0 else 0.0
        return (mean, mean + width, mean - width)


class ATR(SingleIndicator):
    """Wilder's average true range."""

    def __init__(self, period: int) -> None:
        self.period = period
        self._prev_close: float | None = None
        self._atr = 0.0
        self._count = 0

    def feed(self, bar: Bar) -> float | None:
        prev = self._prev_close
        if prev is None:
            tr = bar.high - bar.low
        else:
            tr = max(bar.high - bar.low, abs(bar.high - prev), abs(bar.low - prev))
        self._prev_close = bar.close
        period = self.period
        if self._count < period:
            self._atr += tr
            self._count += 1
            if self._count < period:
                return None
            self._atr /= period
        else:
            self._atr = (self._atr * (period - 1) + tr) / period
        return self._atr


class MACD(Indicator):
    """MACD line, signal line and histogram."""

    suffixes = ("", ".signal", ".hist")

    def __init__(self, fast: int, slow: int, signal: int) -> None:
        self._fast = EMA(fast)
        self._slow = EMA(slow)
        self._signal = EMA(signal)

    def update(self, bar: Bar) -> tuple[float | None, float | None, float | None]:
        fast = self._fast.push(bar.close)
        slow = self._slow.push(bar.close)
        if fast is None or slow is None:
            return (None, None, None)
        line = fast - slow
        signal = self._signal.push(line)
        if signal is None:
            return (line, None, None)
        return (line, signal, line - signal)


def row_builder(indicators: list[Indicator]) -> Callable[[Bar], tuple[float | None, ...]]:
    """One function feeding a bar to every indicator and returning the row of all their
    outputs, in order: ``(v0(bar), v1(bar), *u2(bar))``, compiled once per stream so the
    hot path makes one call per indicator and builds one tuple (no loop, no tuple
    concatenation per indicator)."""
    if not indicators:
        return lambda bar: ()
    env: dict[str, object] = {}
    parts = []
    for i, indicator in enumerate(indicators):
        if isinstance(indicator, SingleIndicator):
            env[f"f{i}"] = indicator.feed
            parts.append(f"f{i}(bar)")
        else:
            env[f"f{i}"] = indicator.update
            parts.append(f"*f{i}(bar)")
    return eval(f"lambda bar: ({', '.join(parts)},)", env)  # noqa: S307 - our own names


def make_indicator(config: IndicatorConfig) -> Indicator:
    """Build a fresh indicator from its configuration."""
    kind = config.kind
    if kind == "sma":
        return SMA(config.period)
    if kind == "ema":
        return EMA(config.period)
    if kind == "rsi":
        return RSI(config.period)
    if kind == "vwap":
        return VWAP()
    if kind == "bollinger":
        return Bollinger(config.period, config.std)
    if kind == "atr":
        return ATR(config.period)
    if kind == "macd":
        return MACD(config.fast, config.slow, config.signal)
    raise ValueError(f"unknown indicator kind {kind!r}")  # pragma: no cover - config refuses


def output_names(config: IndicatorConfig) -> tuple[str, ...]:
    """Names of an indicator's outputs (``bb_20``, ``bb_20.upper``, ``bb_20.lower``)."""
    suffixes = {"bollinger": Bollinger.suffixes, "macd": MACD.suffixes}.get(config.kind, ("",))
    return tuple(config.name + suffix for suffix in suffixes)
