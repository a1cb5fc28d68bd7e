"""AnalysisEngine: runs the user's analysis (strategy) code once per step.

Runs on the ``analysis_engine`` thread, woken by the data processor through its queue, or
in data-driven mode on the coordinator's thread, right after the processor (see
:class:`~sessionkit.engine.pipeline.runtime.Stage`). User code gets a read-only
:class:`AnalysisContext` (views exact to the step's instant) and ``emit`` to publish
signals. An exception in user code is caught, counted, logged and
shown in the snapshot; with ``on_error = "stop"`` it ends the session with state ``error``.

The analysis class is named by ``analysis.entry`` (``package.module:ClassName``), built
with ``analysis.options`` as keyword arguments, and may define ``on_session_start(ctx)``,
``on_step(ctx)``, ``on_session_end(ctx)`` and ``metrics() -> dict[str, float]``. The
metrics are read on this thread after every session and once more when the thread ends,
and published as an immutable mapping (:attr:`AnalysisEngine.metrics`) for any thread.
"""

from __future__ import annotations

import importlib
import math
import numbers
import operator
import sys
import threading
import traceback
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..core.bar import Bar
from ..core.session_data import BarSeries
from ..core.subscription import StreamSubscription
from ..errors import ConfigError
from .runtime import (
    Runtime,
    SessionEnded,
    SessionPlan,
    SessionStarted,
    Stage,
    StepReady,
    engine_code,
)
from .snapshot import AnalysisErrorKind, AnalysisSignal, ThreadStats


def load_analysis_class(
    entry: str, *, source: str = "<config>", folder: Path | None = None
) -> type:
    """Import ``package.module:ClassName``.

    Parameters
    ----------
    entry
        The module (any importable one) and the class.
    source
        The file or option the entry came from, for messages.
    folder
        The configuration file's folder: when it holds the module's top-level package
        (``mystrat.py`` or ``mystrat/`` for ``mystrat:Strat``), it is put first on
        ``sys.path``, as Python does with a script's folder, so an analysis written next to
        its configuration (and the modules it imports from there) is found from any
        working folder.

    Raises
    ------
    ConfigError
        If the module cannot be imported or has no such class.
    """
    module_name, _, class_name = entry.partition(":")
    top = module_name.partition(".")[0]
    if (
        folder is not None
        and top
        and top not in sys.modules
        and ((folder / f"{top}.py").is_file() or (folder / top).is_dir())
        and str(folder) not in sys.path
    ):
        sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code is a config mistake
        raise ConfigError(
            source,
            "analysis.entry",
            f"cannot import module {module_name!r}: {exc.__class__.__name__}: {exc}",
        ) from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ConfigError(
            source, "analysis.entry", f"module {module_name!r} has no class {class_name!r}"
        )
    return cls


ERROR_KINDS_KEPT = 10
"""How many kinds of analysis errors a run keeps (each with its count); every error is
counted in the total and logged all the same."""

ERROR_TEXT_KEPT = 300
"""The longest error message kept for a kind (cut with an ellipsis)."""


def _user_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of ``exc``'s traceback in the user's code (not in the engine, so
    a wrong call of a view names the user's line), else the innermost one."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if not engine_code(frame.filename):
            return frame
    return frames[-1] if frames else None


def metric_values(returned: Any) -> dict[str, float]:
    """What an analysis's ``metrics()`` returned, as ``{name: float}``.

    Raises
    ------
    TypeError
        Naming the key whose value is not a number, or saying what was returned instead
        of a dict.
    """
    if not isinstance(returned, Mapping):
        what = "None" if returned is None else f"a {type(returned).__name__}, {_short(returned)}"
        raise TypeError(f"metrics() returned {what}: it returns a dict of numbers {{name: value}}")
    values = {}
    for name, value in returned.items():
        try:
            values[str(name)] = float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"metrics() returned {name!r}: {_short(value)}, a {type(value).__name__}, "
                "not a number"
            ) from None
    return values


def _count(n: Any) -> int:
    """A view's ``n``: an int (or an integer type such as NumPy's), not a bool.

    Raises
    ------
    TypeError
        Naming ``n`` and what it was.
    """
    if n.__class__ is int:  # the hot path
        return n
    if not isinstance(n, bool):
        try:
            return operator.index(n)
        except TypeError:
            pass
    raise TypeError(f"n must be an int, not {_short(n)} ({type(n).__name__})")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _defined_at(method: Any) -> traceback.FrameSummary | None:
    """Where ``method`` (the user's) is defined, as a frame for :meth:`AnalysisEngine._user_error`."""
    code = getattr(getattr(method, "__func__", method), "__code__", None)
    if code is None:
        return None
    return traceback.FrameSummary(code.co_filename, code.co_firstlineno, code.co_name)


class AnalysisContext:
    """What user code may see and do at one step: views exact to :attr:`time`.

    Every view shows what was known at :attr:`time`, whatever the clock mode and however
    far the other threads are ahead: the last bars (of any streamed interval) known then,
    and the indicator values computed on them (see
    :class:`~sessionkit.engine.core.session_data.BarSeries`). Views are copies (lists of
    immutable bars, floats); nothing returned changes afterwards. The context itself is
    read-only. A view's ``n`` is an int (NumPy's integers too); anything else, a bool
    included, raises ``TypeError`` naming it.
    """

    __slots__ = ("_engine", "_series", "_by_name", "_time", "_epoch", "_plan", "_items")

    def __init__(self, engine: AnalysisEngine) -> None:
        self._engine = engine
        # {symbol: {interval or None: series}} and {symbol: {indicator output: series}}:
        # one dict lookup per call instead of a search (filled by :meth:`bind`).
        self._series: dict[str, dict[str | None, BarSeries]] = {}
        self._by_name: dict[str, dict[str, BarSeries]] = {}
        # Set by the engine at each step; user code reads them through the properties
        # below (read-only: a view bounded by a time user code could move would look ahead).
        self._time: datetime | None = None
        self._epoch: float | None = None
        self._plan: SessionPlan | None = None
        self._items: tuple[tuple[str, Bar], ...] = ()

    @property
    def time(self) -> datetime | None:
        """The simulated instant of this step (aware, UTC)."""
        return self._time

    @property
    def epoch(self) -> float | None:
        """:attr:`time` in epoch seconds."""
        return self._epoch

    @property
    def plan(self) -> SessionPlan | None:
        """The session being streamed."""
        return self._plan

    @property
    def items(self) -> tuple[tuple[str, Bar], ...]:
        """The (symbol, bar) pairs of the base interval that became visible at this step."""
        return self._items

    def bind(self) -> None:
        """Look the streamed series up once (they exist once the processor was built)."""
        data = self._engine.runtime.data
        config = self._engine.runtime.config
        base = config.streams.interval
        for symbol in config.streams.symbols:
            per_interval: dict[str | None, BarSeries] = {}
            per_name: dict[str, BarSeries] = {}
            for interval in config.intervals:
                series = data.series(symbol, interval)
                per_interval[interval] = series
                per_name.update(dict.fromkeys(series.names, series))
            per_interval[None] = per_interval[base]
            self._series[symbol] = per_interval
            self._by_name[symbol] = per_name

    @property
    def symbols(self) -> tuple[str, ...]:
        """The streamed symbols."""
        return self._engine.symbols

    @property
    def session_date(self):
        """The trading day being streamed."""
        return self._plan.date if self._plan else None

    def _lookup(self, symbol: str, interval: str | None) -> BarSeries:
        try:
            return self._series[symbol][interval]
        except KeyError:
            if symbol not in self._series:
                raise KeyError(f"{symbol!r} is not streamed ({', '.join(self._series)})") from None
            known = ", ".join(i for i in self._series[symbol] if i is not None)
            raise KeyError(f"interval {interval!r} is not streamed ({known})") from None

    def _indicator_series(self, symbol: str, name: str) -> BarSeries:
        try:
            return self._by_name[symbol][name]
        except KeyError:
            if symbol not in self._by_name:
                raise KeyError(f"{symbol!r} is not streamed ({', '.join(self._series)})") from None
            known = ", ".join(self._by_name[symbol]) or "none configured"
            raise KeyError(f"no indicator {name!r} (indicators: {known})") from None

    def bars(self, symbol: str, interval: str | None = None, n: int = 100) -> list[Bar]:
        """A copy of the last ``n`` bars of ``symbol`` known at :attr:`time`, oldest first.

        ``interval`` is the base interval when None; trailing history is included.
        """
        return self._lookup(symbol, interval).bars(_count(n), self._epoch)

    def last_bar(self, symbol: str, interval: str | None = None) -> Bar | None:
        """The latest bar known at :attr:`time`, or None."""
        return self._lookup(symbol, interval).last(self._epoch)

    def closes(self, symbol: str, n: int = 100, interval: str | None = None) -> list[float]:
        """The closes of the last ``n`` bars known at :attr:`time`, oldest first."""
        try:
            series = self._series[symbol][interval]
        except KeyError:
            series = self._lookup(symbol, interval)
        return series.closes(_count(n), self._epoch)

    def indicator(self, symbol: str, name: str) -> Any:
        """Indicator output ``name`` of ``symbol`` as known at :attr:`time` (None while it
        warms up), on whichever interval it is configured.

        Raises
        ------
        KeyError
            If ``name`` is not a configured indicator output.
        """
        return self._indicator_series(symbol, name).value(name, self._epoch)

    def indicators(self, symbol: str, name: str, n: int) -> list[Any]:
        """The last ``n`` values of indicator output ``name`` known at :attr:`time`, oldest
        first, one per bar of its interval (trailing history included).

        Raises
        ------
        KeyError
            If ``name`` is not a configured indicator output.
        """
        return self._indicator_series(symbol, name).values(name, _count(n), self._epoch)

    def emit(self, symbol: str, kind: str, price: float | None = None, message: str = "") -> None:
        """Publish a signal (shown in the UI and the event log).

        Raises
        ------
        TypeError
            If ``symbol`` or ``kind`` is not a non-empty string, ``price`` not a number or
            None, or ``message`` not a string (nothing is published).
        ValueError
            If ``price`` is not finite.
        """
        for name, value in (("symbol", symbol), ("kind", kind)):
            if not isinstance(value, str) or not value:
                raise TypeError(f"ctx.emit: {name} must be a non-empty string, not {value!r}")
        if price is not None:
            if isinstance(price, bool) or not isinstance(price, numbers.Real):
                raise TypeError(f"ctx.emit: price must be a number or None, not {price!r}")
            try:  # (NumPy's numbers too: a signal holds a plain float)
                price = float(price)
            except OverflowError:
                raise ValueError(f"ctx.emit: price must be finite, not {price!r}") from None
            if not math.isfinite(price):
                raise ValueError(f"ctx.emit: price must be finite, not {price!r}")
        if not isinstance(message, str):
            raise TypeError(f"ctx.emit: message must be a string, not {message!r}")
        bar = None
        for name, candidate in self._items:  # the symbol's bar of this step, else its last
            if name == symbol:
                bar = candidate
                break
        if bar is None:
            bar = self.last_bar(symbol)
        start = bar.start if bar is not None else None
        self._engine.emit(AnalysisSignal(self._time, symbol, kind, price, message, start))


class AnalysisEngine(Stage):
    """The ``analysis_engine`` thread: calls the user's hooks with an :class:`AnalysisContext`.

    An exception from user code (``KeyboardInterrupt`` and ``SystemExit`` included) is
    counted, logged and, with ``on_error = "stop"``, ends the session with state ``error``.
    """

    def __init__(self, runtime: Runtime, analysis: Any, ready: StreamSubscription) -> None:
        super().__init__(runtime, "analysis_engine", ready)
        self.analysis = analysis
        self.symbols = tuple(runtime.config.streams.symbols)
        self.on_error = runtime.config.analysis.on_error
        self.errors = 0
        self._error_kinds: dict[tuple[str, str, str], AnalysisErrorKind] = {}
        """The kinds of errors by (hook, exception type, where) (under :attr:`_lock`)."""
        self.signal_count = 0
        self._signals: deque[AnalysisSignal] = deque(maxlen=200)
        self._all_signals: list[AnalysisSignal] = []
        self.metrics: Mapping[str, float] = MappingProxyType({})
        """The analysis's latest metrics (replaced whole, never mutated). Any thread."""
        self._lock = threading.Lock()
        self._ctx = AnalysisContext(self)
        self._on_step = getattr(analysis, "on_step", None)
        self._on_session_start = getattr(analysis, "on_session_start", None)
        self._on_session_end = getattr(analysis, "on_session_end", None)

    def emit(self, signal: AnalysisSignal) -> None:
        with self._lock:
            self._signals.append(signal)
            self._all_signals.append(signal)
            self.signal_count += 1
        self.runtime.log(
            f"signal {signal.kind} {signal.symbol}"
            + (f" @ {signal.price:.2f}" if signal.price is not None else "")
            + (f": {signal.message}" if signal.message else ""),
            sim_time=signal.sim_time,
        )

    def signals(self) -> tuple[AnalysisSignal, ...]:
        """A copy of the recent signals, oldest first. Any thread."""
        with self._lock:
            return tuple(self._signals)

    def all_signals(self) -> tuple[AnalysisSignal, ...]:
        """Every signal of the run, oldest first. Any thread."""
        with self._lock:
            return tuple(self._all_signals)

    def _publish_metrics(self) -> None:
        """Read the analysis's ``metrics()`` (its own thread, or the coordinator's when
        inline) and publish a frozen copy."""
        report = getattr(self.analysis, "metrics", None)
        if report is None:
            return
        try:
            returned = report()
        except BaseException as exc:  # noqa: BLE001 - user code's, whatever it is
            self._user_error("metrics", exc)
            return
        try:
            values = metric_values(returned)
        except TypeError as exc:  # what it returned: blamed on the method, not the engine
            self._user_error("metrics", exc, at=_defined_at(report))
            return
        self.metrics = MappingProxyType(values)

    def at_exit(self) -> None:
        self._publish_metrics()

    def stats(self) -> ThreadStats:
        """Busy and waiting seconds, and the exceptions user code raised, for the snapshot."""
        return replace(super().stats(), errors=self.errors)

    # -- messages ---------------------------------------------------------------------------

    def on_step(self, message: StepReady) -> None:
        ctx = self._ctx
        ctx._time, ctx._epoch, ctx._items = message.time, message.epoch, message.items
        hook = self._on_step
        if hook is not None:
            try:  # :meth:`_call`, inlined: once per instant
                hook(ctx)
            except BaseException as exc:  # noqa: BLE001 - user code's, whatever it is
                self._user_error("step", exc)

    def on_session_start(self, message: SessionStarted) -> None:
        ctx = self._ctx
        if not ctx._series:
            ctx.bind()
        plan = message.plan
        ctx._plan, ctx._time, ctx._epoch, ctx._items = plan, plan.open, plan.open.timestamp(), ()
        if self._on_session_start is not None:
            self._call(self._on_session_start, "session_start")

    def on_session_end(self, message: SessionEnded) -> None:
        ctx = self._ctx
        ctx._time, ctx._epoch, ctx._items = message.close, message.close.timestamp(), ()
        if self._on_session_end is not None:
            self._call(self._on_session_end, "session_end")
        self._publish_metrics()

    def _call(self, hook: Any, what: str) -> None:
        try:
            hook(self._ctx)
        except BaseException as exc:  # noqa: BLE001 - user code's, whatever it is
            self._user_error(what, exc)

    def error_kinds(self) -> tuple[AnalysisErrorKind, ...]:
        """The kinds of errors user code raised, first raised first. Any thread."""
        with self._lock:
            return tuple(self._error_kinds.values())

    def _user_error(
        self, what: str, exc: BaseException, *, at: traceback.FrameSummary | None = None
    ) -> None:
        """Count and report an error of user code; ``at``: where it is (default: the
        innermost frame of the user's code in ``exc``'s traceback)."""
        self.errors += 1
        frame = at or _user_frame(exc)
        place = f"{Path(frame.filename).name}:{frame.lineno}" if frame else ""
        where = f" ({frame.filename}:{frame.lineno})" if frame else ""
        name = type(self.analysis).__name__
        key = (what, exc.__class__.__name__, place)
        with self._lock:
            kinds = self._error_kinds
            kind = kinds.get(key)
            if kind is not None:
                kinds[key] = replace(kind, count=kind.count + 1)
            elif len(kinds) < ERROR_KINDS_KEPT:
                error = f"{exc.__class__.__name__}: {exc}"
                if len(error) > ERROR_TEXT_KEPT:
                    error = error[: ERROR_TEXT_KEPT - 1] + "\u2026"
                kinds[key] = AnalysisErrorKind(what, error, place, 1, self._ctx._time)
        if self.on_error == "stop":
            self.runtime.fail(f"analysis {name}", exc)
        else:
            self.runtime.log(
                f"analysis {name} raised in {what}: {exc.__class__.__name__}: {exc}{where}",
                "error",
                sim_time=self._ctx._time,
            )
