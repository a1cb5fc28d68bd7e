"""AnalysisEngine: runs the user's analysis (strategy) code once per step.

Runs on the ``analysis_engine`` thread, woken by the data processor through its queue.
User code gets a read-only :class:`AnalysisContext` (copies of bars, indicator values) and
``emit`` to publish signals. An exception in user code is caught, counted, logged and
shown in the snapshot; with ``on_error = "stop"`` it ends the session with state ``error``.

The analysis class is named by ``analysis.entry`` (``package.module:ClassName``), built
with ``analysis.options`` as keyword arguments, and may define ``on_session_start(ctx)``,
``on_step(ctx)`` and ``on_session_end(ctx)``.
"""

from __future__ import annotations

import importlib
import queue
import threading
import traceback
from collections import deque
from datetime import datetime
from typing import Any

from ..core.bar import Bar, interval_delta
from ..core.subscription import StreamSubscription
from ..errors import ConfigError
from .runtime import SESSION_END, SESSION_START, STEP, STOP, Runtime, SessionPlan, next_message
from .snapshot import AnalysisSignal


def load_analysis_class(entry: str, *, source: str = "<config>") -> type:
    """Import ``package.module:ClassName``.

    Raises
    ------
    ConfigError
        If the module cannot be imported or has no such class.
    """
    module_name, _, class_name = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code is a config mistake
        raise ConfigError(
            f"invalid configuration in {source}:\n  analysis.entry: cannot import module "
            f"{module_name!r}: {exc.__class__.__name__}: {exc}"
        ) from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ConfigError(
            f"invalid configuration in {source}:\n  analysis.entry: module {module_name!r} "
            f"has no class {class_name!r}"
        )
    return cls


class AnalysisContext:
    """What user code may see and do at one step (read-only views, copies only)."""

    def __init__(self, engine: AnalysisEngine) -> None:
        self._engine = engine
        self.time: datetime | None = None
        """The simulated instant of this step (aware, UTC)."""
        self.plan: SessionPlan | None = None
        self.items: tuple[tuple[str, Bar], ...] = ()
        """The (symbol, bar) pairs that became visible at this step."""

    @property
    def symbols(self) -> tuple[str, ...]:
        """The streamed symbols."""
        return self._engine.symbols

    @property
    def session_date(self):
        """The trading day being streamed."""
        return self.plan.date if self.plan else None

    def bars(self, symbol: str, interval: str | None = None, n: int = 100) -> list[Bar]:
        """A copy of the last ``n`` bars of ``symbol`` visible at :attr:`time`."""
        interval = interval or self._engine.base
        bars = self._engine.runtime.data.tail(symbol, interval, n + 2)
        if self.time is not None:
            delta = interval_delta(interval)
            close = self.plan.close if self.plan is not None else None
            # The coordinator may already be ahead in clock-driven mode: hide what is not
            # visible yet (a bar ends at start + interval, or at the close that cuts it).
            while bars:
                end = bars[-1].start + delta
                if close is not None and bars[-1].start < close < end:
                    end = close
                if end <= self.time:
                    break
                bars.pop()
        return bars[-n:]

    def last_bar(self, symbol: str, interval: str | None = None) -> Bar | None:
        """The latest bar visible at :attr:`time`, or None."""
        bars = self.bars(symbol, interval, 1)
        return bars[-1] if bars else None

    def indicator(self, symbol: str, name: str) -> Any:
        """The latest value of real-time indicator ``name`` for ``symbol`` (or None)."""
        return self._engine.runtime.data.get_realtime_indicator(symbol, name)

    def emit(self, symbol: str, kind: str, price: float | None = None, message: str = "") -> None:
        """Publish a signal (shown in the UI and the event log)."""
        bar = next((b for s, b in self.items if s == symbol), None) or self.last_bar(symbol)
        start = bar.start if bar is not None else None
        self._engine.emit(AnalysisSignal(self.time, symbol, kind, price, message, start))


class AnalysisEngine(threading.Thread):
    """The ``analysis_engine`` thread."""

    def __init__(self, runtime: Runtime, analysis: Any, ready: StreamSubscription) -> None:
        super().__init__(name="analysis_engine", daemon=True)
        self.runtime = runtime
        self.analysis = analysis
        self.ready = ready
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.symbols = tuple(runtime.config.streams.symbols)
        self.base = runtime.config.streams.interval
        self.on_error = runtime.config.analysis.on_error
        self.done_seq = 0
        self.errors = 0
        self.signal_count = 0
        self._signals: deque[AnalysisSignal] = deque(maxlen=200)
        self._lock = threading.Lock()
        self._ctx = AnalysisContext(self)

    def emit(self, signal: AnalysisSignal) -> None:
        with self._lock:
            self._signals.append(signal)
            self.signal_count += 1
        self.runtime.log(
            f"signal {signal.kind} {signal.symbol}"
            + (f" @ {signal.price:.2f}" if signal.price is not None else "")
            + (f": {signal.message}" if signal.message else "")
        )

    def signals(self) -> tuple[AnalysisSignal, ...]:
        """A copy of the recent signals, oldest first. Any thread."""
        with self._lock:
            return tuple(self._signals)

    def run(self) -> None:
        runtime = self.runtime
        ctx = self._ctx
        hooks = {
            STEP: getattr(self.analysis, "on_step", None),
            SESSION_START: getattr(self.analysis, "on_session_start", None),
            SESSION_END: getattr(self.analysis, "on_session_end", None),
        }
        try:
            while (message := next_message(self.queue, runtime)) is not None:
                tag = message[0]
                if tag is STOP:
                    return
                if tag is STEP:
                    ctx.time, ctx.items = message[2], message[3]
                elif tag is SESSION_START:
                    ctx.plan, ctx.time, ctx.items = message[2], message[2].open, ()
                elif tag is SESSION_END:
                    ctx.time, ctx.items = message[2], ()
                hook = hooks.get(tag)
                if hook is not None:
                    try:
                        hook(ctx)
                    except Exception as exc:
                        self._user_error(tag, exc)
                self.done_seq = message[1]
                self.ready.signal_ready()
        except Exception as exc:
            runtime.fail("analysis_engine", exc)
        finally:
            self.ready.cancel()

    def _user_error(self, tag: str, exc: Exception) -> None:
        self.errors += 1
        frame = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" ({frame[0].filename}:{frame[0].lineno})" if frame else ""
        name = type(self.analysis).__name__
        if self.on_error == "stop":
            self.runtime.fail(f"analysis {name}", exc)
        else:
            self.runtime.log(
                f"analysis {name} raised in {tag}: {exc.__class__.__name__}: {exc}{where}",
                "error",
            )
