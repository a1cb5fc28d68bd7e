"""A small, deterministic stand-in for :class:`sessionkit.engine.pipeline.session.Session`.

Used by the TUI tests that need states the bundled sample data cannot produce on demand
(or that must not depend on the engine's timing). It has the same public API as the real
session: ``start``, ``pause``, ``resume``, ``step``, ``set_speed``, ``set_clock``, ``stop``,
``snapshot``, ``series``, ``gaps``, ``wait_idle`` and ``wait``.

One background thread (``fake_engine``) advances simulated time; every other method is
called from the test's or the UI's thread and only touches state under ``_cond``.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

from sessionkit.engine.core.bar import Bar
from sessionkit.engine.pipeline.snapshot import (
    AnalysisSignal,
    EngineEvent,
    EngineMetrics,
    GapSpan,
    Series,
    SeriesStats,
    Snapshot,
    SubscriptionStats,
)

NEW_YORK = ZoneInfo("America/New_York")
FIXED_WALL = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FakeDay:
    """One trading day of the fake calendar (exchange-local open and close)."""

    day: date
    close_hour: int = 16

    @property
    def open(self) -> datetime:
        return datetime(self.day.year, self.day.month, self.day.day, 9, 30, tzinfo=NEW_YORK)

    @property
    def close(self) -> datetime:
        return datetime(
            self.day.year, self.day.month, self.day.day, self.close_hour, tzinfo=NEW_YORK
        )


DEFAULT_DAYS = (FakeDay(date(2024, 11, 27)), FakeDay(date(2024, 11, 29), close_hour=13))


class FakeConfig:
    """The few configuration attributes the UI reads (``streams``, ``indicators``)."""

    class _Streams:
        def __init__(self, symbols, interval, derived):
            self.symbols = list(symbols)
            self.interval = interval
            self.derived = list(derived)

    class _Indicator:
        def __init__(self, name, kind, interval):
            self.name, self.kind, self.interval = name, kind, interval

    def __init__(self, symbols, intervals, mode="backtest"):
        self.mode = mode
        self.streams = self._Streams(symbols, intervals[0], intervals[1:])
        self.indicators = [
            self._Indicator("sma_10", "sma", intervals[0]),
            self._Indicator("rsi_14", "rsi", intervals[0]),
        ]


def _price(symbol_index: int, minute: int) -> float:
    base = 50.0 + 25.0 * symbol_index
    return round(base + 3.0 * math.sin(minute / 17.0 + symbol_index) + minute * 0.004, 2)


class FakeSession:
    """Deterministic fake engine: one bar per minute per symbol, two indicators.

    Parameters
    ----------
    start_paused
        Wait for ``resume`` or ``step`` before the first instant.
    clock, speed
        Initial clock mode and clock-driven speed (simulated seconds per wall second).
    fail_at_step
        Enter state ``error`` when this (1-based) step is reached.
    mode
        ``live``: the clock is the wall clock (``live``); the speed and the clock cannot
        change (``set_speed`` and ``set_clock`` raise ``ValueError``, as the real session's).
    """

    def __init__(
        self,
        *,
        symbols: tuple[str, ...] = ("AAA", "BBB", "CCC"),
        intervals: tuple[str, ...] = ("1m", "5m"),
        days: tuple[FakeDay, ...] = DEFAULT_DAYS,
        start_paused: bool = False,
        clock: str = "clock-driven",
        speed: float = 60.0,
        fail_at_step: int | None = None,
        history: int = 30,
        mode: str = "backtest",
    ) -> None:
        self.config = FakeConfig(symbols, intervals, mode)
        self.mode = mode
        if mode == "live":
            clock = "live"
        self.symbols = symbols
        self.intervals = intervals
        self.days = days
        self.fail_at_step = fail_at_step
        self.history = history
        self.calls: list[str] = []
        """Every control call, in order (for tests)."""
        self._cond = threading.Condition()
        self._paused = start_paused
        self._budget = 0
        self._stopping = False
        self._clock = clock
        self._speed = speed
        self._state = "paused" if start_paused else "initializing"
        self._error: str | None = None
        self._version = 1
        self._day_index = -1
        self._minute = 0
        self._sim_time: datetime | None = None
        self._steps = 0
        self._bars: dict[tuple[str, str], list[Bar]] = {}
        self._events: deque[EngineEvent] = deque(maxlen=200)
        self._signals: deque[AnalysisSignal] = deque(maxlen=50)
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake_engine", daemon=True)
        self._load_day(0)

    # -- controls -----------------------------------------------------------------------

    def start(self) -> FakeSession:
        self.calls.append("start")
        if not self._thread.is_alive() and not self._thread.ident:
            self._thread.start()
        return self

    def pause(self) -> None:
        self.calls.append("pause")
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        self.calls.append("resume")
        with self._cond:
            self._paused = False
            self._budget = 0
            self._idle.clear()
            self._cond.notify_all()

    def step(self, n: int = 1) -> None:
        self.calls.append("step")
        with self._cond:
            self._budget = (self._budget if self._paused else 0) + n
            self._paused = True
            self._idle.clear()
            self._cond.notify_all()

    def set_speed(self, speed: float | None) -> None:
        self.calls.append(f"set_speed {speed}")
        if self.mode == "live":
            raise ValueError("a live session runs in wall-clock time: its speed is fixed")
        with self._cond:
            if speed is None:
                self._clock = "data-driven"
            else:
                self._clock, self._speed = "clock-driven", float(speed)
            self._bump()
            self._cond.notify_all()

    def set_clock(self, clock: str) -> None:
        self.calls.append(f"set_clock {clock}")
        if self.mode == "live":
            raise ValueError("a live session runs in wall-clock time")
        with self._cond:
            self._clock = clock
            self._bump()
            self._cond.notify_all()

    def stop(self, timeout: float = 1.0) -> bool:
        self.calls.append("stop")
        with self._cond:
            self._stopping = True
            if self._state not in ("completed", "error", "stopped"):
                self._state = "stopped"
            self._bump()
            self._cond.notify_all()
        if self._thread.ident:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return self._idle.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def finished(self) -> bool:
        return self._state in ("completed", "error", "stopped")

    # -- engine thread ------------------------------------------------------------------

    def _bump(self) -> None:
        self._version += 1

    def _log(self, message: str, level: str = "info") -> None:
        self._events.append(EngineEvent(FIXED_WALL, self._sim_time, level, message))  # type: ignore[arg-type]
        self._bump()

    def _load_day(self, index: int) -> None:
        self._day_index = index
        self._minute = 0
        day = self.days[index]
        self._sim_time = day.open.astimezone(UTC)
        for s, symbol in enumerate(self.symbols):
            for interval in self.intervals:
                self._bars[symbol, interval] = []
            hist = []
            for k in range(self.history):
                start = day.open.astimezone(UTC) - timedelta(minutes=self.history - k + 60)
                p = _price(s, -self.history + k)
                hist.append(Bar(start, p, p + 0.1, p - 0.1, p, 1000))
            self._bars[symbol, self.intervals[0]] = hist
        self._log(
            f"session {index + 1}/{len(self.days)} {day.day} "
            f"{day.open:%H:%M}-{day.close:%H:%M}"
            + (" (early close)" if day.close_hour != 16 else "")
            + ": loaded in 0.012s"
        )

    def _run(self) -> None:
        with self._cond:
            if self._state == "initializing":
                self._state = "paused" if self._paused else "streaming"
                self._bump()
            while True:
                while not self._stopping and self._paused and self._budget == 0:
                    if self._state == "streaming":
                        self._state = "paused"
                        self._bump()
                    self._idle.set()
                    self._cond.wait()
                if self._stopping:
                    self._idle.set()
                    return
                if self._budget:
                    self._budget -= 1
                elif self._clock == "clock-driven":
                    self._state = "streaming"
                    self._bump()
                    self._cond.wait(60.0 / self._speed)
                    if self._stopping or self._paused:
                        continue
                if not self._paused:
                    self._state = "streaming"
                if not self._advance():
                    self._idle.set()
                    return

    def _advance(self) -> bool:
        """One instant; False when the backtest is over (state final)."""
        day = self.days[self._day_index]
        self._minute += 1
        self._steps += 1
        now = day.open.astimezone(UTC) + timedelta(minutes=self._minute)
        self._sim_time = now
        for s, symbol in enumerate(self.symbols):
            p = _price(s, self._minute)
            start = now - timedelta(minutes=1)
            bars = self._bars[symbol, self.intervals[0]]
            bars.append(Bar(start, bars[-1].close if bars else p, p + 0.2, p - 0.2, p, 1000 + s))
            if self._minute % 5 == 0 and len(self.intervals) > 1:
                chunk = bars[-5:]
                self._bars[symbol, self.intervals[1]].append(
                    Bar(
                        chunk[0].start,
                        chunk[0].open,
                        max(b.high for b in chunk),
                        min(b.low for b in chunk),
                        chunk[-1].close,
                        sum(b.volume for b in chunk),
                    )
                )
            if self._minute == 17 and s == 0:
                self._signals.append(AnalysisSignal(now, symbol, "buy", p, "fake cross", start))
                self._log(f"signal buy {symbol} @ {p:.2f}: fake cross")
        self._bump()
        if self.fail_at_step is not None and self._steps >= self.fail_at_step:
            self._error = f"analysis_engine: RuntimeError: boom at step {self._steps}"
            self._log(self._error, "error")
            self._state = "error"
            return False
        if now >= day.close.astimezone(UTC):
            self._log(f"session {day.day} ended")
            if self._day_index + 1 >= len(self.days):
                self._state = "completed"
                self._log("backtest complete")
                return False
            self._state = "session-ended"
            self._load_day(self._day_index + 1)
        return True

    # -- observation --------------------------------------------------------------------

    def _indicators(self, closes: list[float]) -> dict[str, float | None]:
        sma = sum(closes[-10:]) / 10 if len(closes) >= 10 else None
        rsi = None
        if len(closes) >= 15:
            ups = sum(max(0.0, b - a) for a, b in zip(closes[-15:], closes[-14:], strict=False))
            downs = sum(max(0.0, a - b) for a, b in zip(closes[-15:], closes[-14:], strict=False))
            rsi = 100.0 if downs == 0 else 100.0 - 100.0 / (1.0 + ups / downs)
        return {"sma_10": sma, "rsi_14": rsi}

    def snapshot(self, *, symbols=None) -> Snapshot:
        with self._cond:
            day = self.days[self._day_index]
            series = {}
            indicators = {}
            for symbol in (
                self.symbols if symbols is None else [s for s in self.symbols if s in symbols]
            ):
                for interval in self.intervals:
                    bars = self._bars[symbol, interval]
                    history = self.history if interval == self.intervals[0] else 0
                    in_session = len(bars) - history
                    last = bars[-1] if bars else None
                    change = None
                    if in_session and last is not None:
                        change = (
                            (last.close / bars[history - 1].close - 1) * 100 if history else 0.0
                        )
                    series[symbol, interval] = SeriesStats(
                        symbol,
                        interval,
                        in_session,
                        history,
                        last,
                        100.0 if in_session else None,
                        0,
                        change,
                    )
                closes = [b.close for b in self._bars[symbol, self.intervals[0]]]
                indicators[symbol] = MappingProxyType(self._indicators(closes))
            waits = 0.0042
            return Snapshot(
                state=self._state,  # type: ignore[arg-type]
                error=self._error,
                mode=self.mode,  # type: ignore[arg-type]
                clock=self._clock,  # type: ignore[arg-type]
                speed=None if self._clock in ("data-driven", "live") else self._speed,
                session_date=day.day,
                session_index=self._day_index + 1,
                session_count=len(self.days),
                sessions=tuple(d.day for d in self.days),
                session_bounds=tuple(
                    (d.open.astimezone(UTC), d.close.astimezone(UTC)) for d in self.days
                ),
                sim_time=self._sim_time,
                market_open=day.open.astimezone(UTC),
                market_close=day.close.astimezone(UTC),
                early_close=day.close_hour != 16,
                symbols=self.symbols,
                intervals=self.intervals,
                series=MappingProxyType(series),
                subscriptions=(
                    SubscriptionStats(
                        "data_processor", self._clock, self._steps, 0, self._steps, waits, waits * 2
                    ),
                ),
                indicators=MappingProxyType(indicators),
                indicator_names=("sma_10", "rsi_14"),
                metrics=EngineMetrics(
                    steps=self._steps,
                    bars_processed=self._steps * 4,
                    bars_streamed=self._steps * 3,
                    bars_per_second=1234.5,
                ),
                events=tuple(self._events),
                signals=tuple(self._signals),
                version=self._version,
            )

    def gaps(self, symbol: str) -> tuple[GapSpan, ...]:
        if symbol not in self.symbols:
            raise KeyError(symbol)
        return ()

    def series(self, symbol: str, interval: str, n: int = 500) -> Series:
        with self._cond:
            bars = list(self._bars[symbol, interval])
        total = len(bars)
        history = self.history if interval == self.intervals[0] else 0
        names: dict[str, tuple[float | None, ...]] = {}
        if interval == self.intervals[0]:
            closes = [b.close for b in bars]
            values = [self._indicators(closes[: k + 1]) for k in range(total)]
            names = {name: tuple(v[name] for v in values) for name in ("sma_10", "rsi_14")}
        skip = max(0, total - n)
        bars = bars[skip:]
        return Series(
            symbol=symbol,
            interval=interval,
            starts=tuple(b.start for b in bars),
            open=tuple(b.open for b in bars),
            high=tuple(b.high for b in bars),
            low=tuple(b.low for b in bars),
            close=tuple(b.close for b in bars),
            volume=tuple(b.volume for b in bars),
            indicators=MappingProxyType({k: v[skip:] for k, v in names.items()}),
            history=max(0, history - skip),
            version=total,
        )
