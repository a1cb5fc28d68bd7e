"""Incremental technical indicators, updated one bar at a time.

Used by the data processor thread only: each instance belongs to one (symbol, interval,
indicator) and is updated by that thread; nothing here is shared or locked. Every
indicator is O(1) per bar and reports ``None`` until it has seen enough bars.

Each indicator is written once, as Python source for a *kernel* (:class:`Indicator`), and
the indicators of one (symbol, interval) are compiled together into one generator
(:func:`compile_kernel`): their state lives in the generator's local variables, and one
``send(bar)`` per bar updates them all and returns the row of their outputs. Measured on
the demo's five indicators, that is about 1.5x faster than one method call per indicator
on an object holding its state in attributes, with the same floating-point operations in
the same order (so the same values, bit for bit).

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from operator import mul, sub
from types import CodeType

from ..config import IndicatorConfig
from ..core.bar import Bar


@dataclass(frozen=True, slots=True)
class Source:
    """An indicator's kernel source: Python statements, with ``$`` standing for the
    indicator's own prefix of local names (see :func:`compile_kernel`).

    ``step`` reads the bar (``bar``, and its close ``close``) and assigns each output to
    one of ``outputs`` (expressions, usually ``$o``); ``session`` runs before the first bar
    of each session.
    """

    state: str
    step: str
    outputs: tuple[str, ...]
    session: str = ""


class Indicator(ABC):
    """Base class: an indicator's parameters, its output names and its kernel source."""

    suffixes: tuple[str, ...] = ("",)
    """Output name suffixes; the first output is the indicator's own name."""

    @abstractmethod
    def source(self) -> Source:
        """The indicator's kernel source (see :func:`compile_kernel`)."""


def _ema_push(p: str, x: str, period: int) -> str:
    """Kernel source feeding ``x`` to an EMA whose state is ``{p}v`` and ``{p}seed``:
    seeded with the mean of the first ``period`` values, then ``v += alpha * (x - v)``."""
    alpha = 2.0 / (period + 1)
    return f"""
if {p}v is not None:
    {p}v = {p}v + {alpha!r} * ({x} - {p}v)
else:
    {p}seed.append({x})
    if len({p}seed) == {period}:
        {p}v = sum({p}seed) / {period}
        {p}seed.clear()
"""


class SMA(Indicator):
    """Simple moving average of closes (a running sum, refreshed exactly every 1000 bars
    so it never drifts)."""

    def __init__(self, period: int) -> None:
        self.period = period

    def source(self) -> Source:
        n = self.period
        return Source(
            state="$w = deque(); $push = $w.append; $pop = $w.popleft; $s = 0.0; $n = 0; $full = False",
            step=f"""
$push(close)
$s += close
if $full:  # {n} closes before this one (the common case first): one in, one out
    $s -= $pop()
    $n += 1
    if $n >= 1000:
        $n = 0
        $s = fsum($w)
    $o = $s / {n}
elif len($w) == {n}:
    $full = True
    $o = $s / {n}
else:
    $o = None
""",
            outputs=("$o",),
        )


class EMA(Indicator):
    """Exponential moving average of closes, seeded with an SMA."""

    def __init__(self, period: int) -> None:
        self.period = period

    def source(self) -> Source:
        return Source(
            state="$v = None; $seed = []",
            step=_ema_push("$", "close", self.period),
            outputs=("$v",),
        )


class RSI(Indicator):
    """Wilder's relative strength index."""

    def __init__(self, period: int) -> None:
        self.period = period

    def source(self) -> Source:
        n = self.period
        return Source(
            state="$prev = None; $gain = 0.0; $loss = 0.0; $count = 0",
            step=f"""
if $count >= {n}:  # warmed up (the common case first)
    $change = close - $prev
    # ``x * {n - 1} + 0.0`` is ``x * {n - 1}`` exactly (averages are never -0.0): the
    # side without a change skips its addition, with the same result.
    if $change > 0:
        $gain = ($gain * {n - 1} + $change) / {n}
        $loss = $loss * {n - 1} / {n}
    elif $change < 0:
        $gain = $gain * {n - 1} / {n}
        $loss = ($loss * {n - 1} - $change) / {n}
    else:
        $gain = $gain * {n - 1} / {n}
        $loss = $loss * {n - 1} / {n}
    if $loss == 0.0:
        $o = 100.0 if $gain > 0 else 50.0
    else:
        $o = 100.0 - 100.0 / (1.0 + $gain / $loss)
elif $prev is None:
    $o = None
else:  # the first {n} changes: their means seed the averages
    $change = close - $prev
    $gain += $change if $change > 0 else 0.0
    $loss += -$change if $change < 0 else 0.0
    $count += 1
    if $count < {n}:
        $o = None
    else:
        $gain /= {n}
        $loss /= {n}
        if $loss == 0.0:
            $o = 100.0 if $gain > 0 else 50.0
        else:
            $o = 100.0 - 100.0 / (1.0 + $gain / $loss)
$prev = close
""",
            outputs=("$o",),
        )


class VWAP(Indicator):
    """Session volume-weighted average of the typical price."""

    def source(self) -> Source:
        return Source(
            state="$pv = 0.0; $v = 0.0",
            step="""
$volume = bar[5]
$pv += (bar[2] + bar[3] + close) / 3.0 * $volume
$v += $volume
$o = $pv / $v if $v > 0 else None
""",
            outputs=("$o",),
            session="$pv = 0.0; $v = 0.0",
        )


def _centred_sums(window: deque[float], period: int) -> tuple[float, float, float]:
    """The window's mean and the exact sums of its deviations from it and of their squares
    (:class:`Bollinger`'s periodic re-centring)."""
    ref = math.fsum(window) / period
    deviations = list(map(sub, window, repeat(ref)))  # C loops: no Python step per value
    return ref, math.fsum(deviations), math.fsum(map(mul, deviations, deviations))


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

    def source(self) -> Source:
        n = self.period
        bands = f"""    $since += 1
    if $since >= {n}:  # re-centre on the mean and recompute exactly
        $since = 0
        $ref, $s1, $s2 = centred_sums($w, {n})
    $mean = $ref + $s1 / {n}
    $variance = ($s2 - $s1 * $s1 / {n}) / {n}
    $width = {self.k!r} * sqrt($variance) if $variance > 0.0 else 0.0
    $upper = $mean + $width
    $lower = $mean - $width"""
        return Source(
            state=(
                "$w = deque(); $push = $w.append; $pop = $w.popleft; $full = False; "
                f"$ref = 0.0; $s1 = 0.0; $s2 = 0.0; $since = {n - 1}"
            ),
            step=f"""
if $full:  # a full window (the common case first): one in, one out
    $push(close)
    $d = close - $ref
    $e = $pop() - $ref
    $s1 = $s1 + $d - $e
    $s2 = $s2 + $d * $d - $e * $e
{bands}
else:
    if not $w:
        $ref = close
    $push(close)
    $d = close - $ref
    $s1 = $s1 + $d
    $s2 = $s2 + $d * $d
    if len($w) < {n}:
        $mean = $upper = $lower = None
    else:
        $full = True
{_indent(bands)}
""",
            outputs=("$mean", "$upper", "$lower"),
        )


class ATR(Indicator):
    """Wilder's average true range."""

    def __init__(self, period: int) -> None:
        self.period = period

    def source(self) -> Source:
        n = self.period
        return Source(
            state="$prev = None; $atr = 0.0; $count = 0",
            step=f"""
if $prev is None:
    $tr = bar[2] - bar[3]
else:
    $tr = max(bar[2] - bar[3], abs(bar[2] - $prev), abs(bar[3] - $prev))
$prev = close
if $count < {n}:
    $atr += $tr
    $count += 1
    if $count < {n}:
        $o = None
    else:
        $atr /= {n}
        $o = $atr
else:
    $atr = ($atr * {n - 1} + $tr) / {n}
    $o = $atr
""",
            outputs=("$o",),
        )


class MACD(Indicator):
    """MACD line, signal line and histogram."""

    suffixes = ("", ".signal", ".hist")

    def __init__(self, fast: int, slow: int, signal: int) -> None:
        self.fast = fast
        self.slow = slow
        self.signal = signal

    def source(self) -> Source:
        return Source(
            state="$fv = None; $fseed = []; $sv = None; $sseed = []; $gv = None; $gseed = []",
            step=_ema_push("$f", "close", self.fast)
            + _ema_push("$s", "close", self.slow)
            + """
if $fv is None or $sv is None:
    $line = $sig = $hist = None
else:
    $line = $fv - $sv
"""
            + _indent(_ema_push("$g", "$line", self.signal))
            + """
    $sig = $gv
    $hist = None if $gv is None else $line - $gv
""",
            outputs=("$line", "$sig", "$hist"),
        )


def _indent(code: str) -> str:
    return "".join(f"    {line}\n" if line else "\n" for line in code.split("\n"))


class Kernel:
    """The compiled indicators of one (symbol, interval).

    :attr:`update` feeds one bar to every indicator and returns the row of all their
    outputs, in order; :meth:`new_session` tells the session-anchored ones (VWAP) that a
    session starts.
    """

    __slots__ = ("update", "_send")

    def __init__(self, update: Callable[[Bar], tuple], send: Callable | None) -> None:
        self.update = update
        self._send = send

    def new_session(self) -> None:
        if self._send is not None:
            self._send(None)


_GLOBALS = {"deque": deque, "fsum": math.fsum, "sqrt": math.sqrt, "centred_sums": _centred_sums}


@lru_cache(maxsize=256)
def _compiled(code: str) -> CodeType:
    """Compile a kernel's source once per process (streams of the same indicators share
    it; a warm-up after a seek compiles nothing)."""
    return compile(code, "<sessionkit indicator kernel>", "exec")


def compile_kernel(indicators: Sequence[Indicator]) -> Kernel:
    """Compile ``indicators`` into one generator: their state in its local variables, one
    ``send(bar)`` per bar returning the row of all their outputs in order (``None`` sent
    instead of a bar starts a session). Each indicator's local names get their own prefix,
    ``i0_``, ``i1_`` ..., substituted for ``$`` in its :class:`Source`."""
    if not indicators:
        return Kernel(lambda bar: (), None)
    state, step, session, outputs = [], [], [], []
    for index, indicator in enumerate(indicators):
        source = indicator.source()
        prefix = f"i{index}_"
        state.append(source.state.replace("$", prefix))
        step.append(source.step.replace("$", prefix))
        if source.session:
            session.append(source.session.replace("$", prefix))
        outputs.extend(out.replace("$", prefix) for out in source.outputs)

    def block(parts: list[str], depth: int) -> str:
        pad = "    " * depth
        lines = [line for part in parts for line in part.split("\n") if line.strip()]
        return "\n".join(pad + line for line in lines) or pad + "pass"

    code = f"""
def kernel():
{block(state, 1)}
    row = None
    while True:
        bar = yield row
        if bar is None:
{block(session, 3)}
            row = None
            continue
        close = bar[4]
{block(step, 2)}
        row = ({", ".join(outputs)},)
"""
    namespace = dict(_GLOBALS)
    exec(_compiled(code), namespace)  # noqa: S102 - our own source, see Source
    generator = namespace["kernel"]()
    next(generator)
    send = generator.send
    return Kernel(send, send)


def make_indicator(config: IndicatorConfig) -> Indicator:
    """Build an indicator from its configuration."""
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
    return config.outputs  # the configuration's: it checks that no two outputs share a name
