"""Analysis classes used by the pipeline tests (loaded by the engine through ``analysis.entry``).

They run on the engine's ``analysis_engine`` thread. The tests read what they recorded
through ``session.analysis.analysis`` after the session ended (or while it is paused).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

INTERVAL = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600}


def visible_end(start: datetime, interval: str, close: datetime | None) -> datetime:
    """When a bar becomes visible: its end, or the close when the close cuts its window."""
    end = start + timedelta(seconds=INTERVAL[interval])
    return min(end, close) if close is not None else end


class Recorder:
    """Records every step: its time, its bars, and what ``ctx.bars`` showed.

    ``violations`` lists every bar ``ctx.bars`` returned although it ends after ``ctx.time``
    (look-ahead). ``derived_lag`` lists derived windows that were complete at a step but not
    visible to the analysis yet (the processor must build them before notifying it).
    """

    def __init__(self, intervals: list[str] | None = None, n: int = 3) -> None:
        self.intervals = intervals or ["1m"]
        self.n = n
        self.times: list[datetime] = []
        self.items: list[tuple[str, tuple]] = []
        self.violations: list[tuple] = []
        self.derived_lag: list[tuple] = []
        self.session_starts: list[tuple] = []
        self.session_ends: list[tuple] = []
        self._plan = None

    def on_session_start(self, ctx) -> None:
        self._plan = ctx.plan
        self.session_starts.append((ctx.session_date, ctx.time))

    def on_step(self, ctx) -> None:
        t = ctx.time
        self.times.append(t)
        self.items.extend((symbol, tuple(bar)) for symbol, bar in ctx.items)
        plan = self._plan
        for symbol in ctx.symbols:
            for interval in self.intervals:
                for bar in ctx.bars(symbol, interval, self.n):
                    if visible_end(bar.start, interval, plan.close) > t:
                        self.violations.append((t, symbol, interval, bar.start))
                if interval == self.intervals[0]:
                    continue
                # A derived window that ends exactly now must already be visible if any
                # base bar of the symbol fell in it.
                seconds = INTERVAL[interval]
                offset = (t - plan.open).total_seconds()
                if offset <= 0 or offset % seconds:
                    continue
                wanted = t - timedelta(seconds=seconds)
                base = ctx.bars(symbol, self.intervals[0], seconds // INTERVAL["1m"] + 1)
                if any(bar.start >= wanted for bar in base):
                    last = ctx.last_bar(symbol, interval)
                    if last is None or last.start != wanted:
                        self.derived_lag.append((t, symbol, interval))

    def on_session_end(self, ctx) -> None:
        last = {
            (symbol, interval): ctx.last_bar(symbol, interval)
            for symbol in ctx.symbols
            for interval in self.intervals
        }
        self.session_ends.append((ctx.session_date, ctx.time, last))


class Raiser:
    """Raises ``kind`` (``RuntimeError`` ...) in ``on_step`` every ``every`` steps (from step
    ``after``); with ``in_metrics``, in ``metrics()`` too."""

    def __init__(
        self,
        every: int = 1,
        after: int = 1,
        message: str = "analysis boom",
        kind: str = "RuntimeError",
        in_metrics: bool = False,
    ) -> None:
        self.in_metrics = in_metrics
        self.every = every
        self.after = after
        self.message = message
        import asyncio

        self.kind = {
            "RuntimeError": RuntimeError,
            "KeyboardInterrupt": KeyboardInterrupt,
            "SystemExit": SystemExit,
            "CancelledError": asyncio.CancelledError,
            "GeneratorExit": GeneratorExit,
        }[kind]
        self.steps = 0

    def on_step(self, ctx) -> None:
        self.steps += 1
        if self.steps >= self.after and (self.steps - self.after) % self.every == 0:
            raise self.kind(f"{self.message} at step {self.steps}")

    def metrics(self) -> dict[str, float]:
        if self.in_metrics:
            raise self.kind(f"{self.message} in metrics")
        return {"steps": self.steps}


def line_of(marker: str) -> str:
    """``pipeline_analyses.py:N``: the line of this file holding ``marker`` (where an
    analysis here raises, as the engine reports it)."""
    lines = Path(__file__).read_text(encoding="utf-8").splitlines()
    return f"pipeline_analyses.py:{next(i for i, t in enumerate(lines, 1) if marker in t)}"


class Misuser:
    """Misuses the context, one way per step in turn: an unknown indicator, a price that is
    not a number, an empty kind; and its ``metrics`` returns a value that is not a number."""

    def __init__(self) -> None:
        self.steps = 0

    def on_step(self, ctx) -> None:
        self.steps += 1
        symbol = ctx.items[0][0]
        turn = self.steps % 3
        if turn == 1:
            ctx.indicator(symbol, "no_such_indicator")  # Misuser: indicator
        elif turn == 2:
            ctx.emit(symbol, "buy", "12.5")  # Misuser: price
        else:
            ctx.emit(symbol, "", 1.0)  # Misuser: kind

    def metrics(self) -> dict:
        return {"steps": "many"}


class Sleeper:
    """Sleeps ``seconds`` in ``on_step`` (the first ``limit`` steps, or every step when
    ``limit`` is None): an analysis too slow for the clock."""

    def __init__(self, seconds: float = 0.01, limit: int | None = None) -> None:
        self.seconds = seconds
        self.limit = limit
        self.steps = 0

    def on_step(self, ctx) -> None:
        self.steps += 1
        if self.limit is None or self.steps <= self.limit:
            time.sleep(self.seconds)


class Hang:
    """Never returns from ``on_step`` once ``after`` steps ran (until :attr:`release` is
    set, for a test in this process to end the thread); first creates the file ``marker``
    (if given), so a test in another process knows the run is stuck."""

    release = threading.Event()

    def __init__(self, after: int = 1, marker: str = "") -> None:
        self.after = after
        self.marker = marker
        self.steps = 0

    def on_step(self, ctx) -> None:
        self.steps += 1
        if self.steps >= self.after:
            if self.marker:
                Path(self.marker).touch()
            while not Hang.release.wait(0.05):
                pass


class Rendezvous:
    """Every ``every`` steps, waits (at most 10 s) until a poller in this process has
    finished a read of the engine (it sets :attr:`polled`), so that the poller's reads
    interleave with the run's writes however fast the machine streams."""

    polled = threading.Event()

    def __init__(self, every: int = 50) -> None:
        self.every = every
        self.steps = 0
        self.met = 0

    def on_step(self, ctx) -> None:
        self.steps += 1
        if self.steps % self.every == 0:
            Rendezvous.polled.clear()
            if Rendezvous.polled.wait(10):
                self.met += 1


class ViewRecorder:
    """Records, at every step and for every symbol, what the views show: the last bar of
    each interval and the value of each named indicator; sleeps ``seconds`` per step
    (an analysis slower than the clock falls behind and overruns)."""

    def __init__(
        self,
        intervals: list[str] | None = None,
        indicators: list[str] | None = None,
        seconds: float = 0.0,
        n: int = 3,
    ) -> None:
        self.intervals = intervals or ["1m"]
        self.indicators = indicators or []
        self.seconds = seconds
        self.n = n
        self.seen: list[tuple] = []
        """(time, symbol, interval or indicator, what the view showed)."""
        self.violations: list[tuple] = []
        """Bars shown although they end after the step's instant (look-ahead)."""
        self._plan = None

    def on_session_start(self, ctx) -> None:
        self._plan = ctx.plan

    def on_step(self, ctx) -> None:
        if self.seconds:
            time.sleep(self.seconds)
        t = ctx.time
        for symbol in ctx.symbols:
            for interval in self.intervals:
                last = ctx.last_bar(symbol, interval)
                self.seen.append((t, symbol, interval, last))
                for bar in ctx.bars(symbol, interval, self.n):
                    if visible_end(bar.start, interval, self._plan.close) > t:
                        self.violations.append((t, symbol, interval, bar.start))
            for name in self.indicators:
                self.seen.append((t, symbol, name, ctx.indicator(symbol, name)))


class ViewSmaCross:
    """The demo's crossing rule read from ``ctx.closes`` at every bar (the reference for
    :class:`~sessionkit.engine.examples.SmaCross`, which keeps its own closes)."""

    def __init__(self, fast: int = 10, slow: int = 30) -> None:
        self.fast, self.slow = fast, slow
        self.signals: list[tuple] = []
        self._above: dict = {}

    def on_session_start(self, ctx) -> None:
        self._above = {}
        for symbol in ctx.symbols:  # what the closes known at the open say
            closes = ctx.closes(symbol, self.slow)
            if len(closes) == self.slow:
                self._above[symbol] = (
                    sum(closes[-self.fast :]) / self.fast > sum(closes) / self.slow
                )

    def on_step(self, ctx) -> None:
        for symbol, _bar in ctx.items:
            closes = ctx.closes(symbol, self.slow)
            if len(closes) < self.slow:
                continue
            above = sum(closes[-self.fast :]) / self.fast > sum(closes) / self.slow
            before = self._above.get(symbol)
            self._above[symbol] = above
            if before is not None and above != before:
                self.signals.append((ctx.time, symbol, "buy" if above else "sell", closes[-1]))


class SlowAt:
    """Sleeps ``seconds`` in the step at ``utc`` (``HH:MM``, UTC): busy when the next
    instant comes."""

    def __init__(self, utc: str, seconds: float) -> None:
        self.utc, self.seconds = utc, seconds

    def on_step(self, ctx) -> None:
        if f"{ctx.time:%H:%M}" == self.utc:
            time.sleep(self.seconds)


class WaitAt:
    """At its ``at``-th step, sets :attr:`reached` and waits (at most 10 s) for
    :attr:`proceed`: a test in this process does something while the run stands there."""

    reached = threading.Event()
    proceed = threading.Event()

    def __init__(self, at: int = 1) -> None:
        self.at = at
        self.steps = 0

    def on_step(self, ctx) -> None:
        self.steps += 1
        if self.steps == self.at:
            WaitAt.reached.set()
            WaitAt.proceed.wait(10)


LEAKY = """
import multiprocessing
import threading
import time

from sessionkit.engine.examples import SmaCross


class Leaky(SmaCross):
    def __init__(self, **options):
        super().__init__(**options)
        if multiprocessing.parent_process() is not None:  # (in a worker, not as planned)
            threading.Thread(target=time.sleep, args=(3600,), name="leaky").start()
"""


def write_leaky(folder: Path) -> None:
    """Write ``folder/leaky.py``: ``Leaky``, SmaCross leaving a non-daemon thread running
    in a sweep's worker process (``analysis.entry = "leaky:Leaky"``, run from ``folder``:
    a module of its own, so that a sweep run as a command imports it too)."""
    (folder / "leaky.py").write_text(LEAKY.lstrip(), encoding="utf-8")
