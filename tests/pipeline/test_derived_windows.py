"""Derived bars follow the window rules bar by bar, whatever order the base bars come in.

The data processor does not touch the derived windows per bar: it takes a window's bars
from the base series when a window may be due (``DataProcessor._settle``), usually as one
slice. This property test drives it with random steps (missing bars, bars held back and
delivered together, late and repeated bars, bars off the base grid, empty steps, a
session with a break and one with an odd close) and compares what every derived series
holds after every step with a plain bar-by-bar statement of the rules (below), which
knows nothing of slices. A second property test does the same for the warm-up on trailing
history, which holds each window's bars as slices too (``DataProcessor._settle_history``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from sessionkit.engine.config import config_from_dict
from sessionkit.engine.core.bar import Bar, interval_delta
from sessionkit.engine.core.session_data import SessionData
from sessionkit.engine.core.subscription import StreamSubscription
from sessionkit.engine.core.windows import bar_end, in_break, window_bounds
from sessionkit.engine.pipeline.processor import DataProcessor
from sessionkit.engine.pipeline.runtime import Runtime, SessionEnded, SessionPlan, StepReady

SYMBOLS = ("A", "B", "C")
DERIVED = ("5m", "15m")
MINUTE = timedelta(minutes=1)


def _plan(index: int, day: date, close: str, with_break: bool) -> SessionPlan:
    at = lambda hhmm: datetime.combine(day, datetime.strptime(hhmm, "%H:%M").time(), UTC)  # noqa: E731
    return SessionPlan(
        index,
        day,
        at("14:30"),
        at(close),
        False,
        (),
        carry=index > 1,
        break_start=at("15:10") if with_break else None,
        break_end=at("15:32") if with_break else None,
        # (the first session, 2024-11-25, opened at 14:30)
        previous_open=datetime(2024, 11, 25, 14, 30, tzinfo=UTC) if index > 1 else None,
    )


def _bar(symbol: str, start: datetime, variant: int) -> Bar:
    base = 100.0 + SYMBOLS.index(symbol) * 10 + start.minute * 0.25 + start.second / 240
    jitter = variant * 0.5
    return Bar(start, base + jitter, base + 1 + jitter, base - 1 - jitter, base + 0.3, 10 + variant)


@dataclass
class _Window:
    """One (symbol, interval) by the rules, one bar at a time."""

    delta: timedelta
    bounds: tuple[datetime, datetime] | None = None
    held: list[Bar] = field(default_factory=list)
    emitted: datetime | None = None
    out: list[tuple[Bar, float]] = field(default_factory=list)

    def emit(self, known: float) -> None:
        assert self.bounds is not None
        held = self.held
        bar = Bar(
            self.bounds[0],
            held[0].open,
            max(b.high for b in held),
            min(b.low for b in held),
            held[-1].close,
            sum(b.volume for b in held),
        )
        self.out.append((bar, known))
        self.emitted = self.bounds[1]
        self.held = []

    def feed(self, plan: SessionPlan, bar: Bar, known: float) -> None:
        bounds = window_bounds(plan, self.delta, bar.start)
        closing = bar.start + MINUTE >= bounds[1]
        if self.held:
            assert self.bounds is not None
            if bounds == self.bounds:
                self.held.append(bar)
                if closing:
                    self.emit(known)
                return
            if bar.start < self.bounds[0]:
                return  # late: older than the open window
            self.emit(known)  # a bar past the window: its last bars are missing
        if self.emitted is not None and bar.start < self.emitted:
            return  # late: its window was emitted already
        self.bounds = bounds
        self.held.append(bar)
        if closing:
            self.emit(known)


def _steps(
    plan: SessionPlan, rng: random.Random
) -> list[tuple[datetime, tuple[tuple[str, Bar], ...]]]:
    """Random steps of one session, in time order."""
    minutes = []
    t = plan.open
    while t < plan.close:
        if not in_break(plan, t):
            minutes.append(t)
        t += MINUTE
    steps: list[tuple[datetime, tuple[tuple[str, Bar], ...]]] = []
    waiting: list[tuple[str, Bar]] = []  # held back, or off the grid: for a later step
    for i, start in enumerate(minutes):
        items = list(waiting)
        waiting = []
        if rng.random() < 0.05:  # a minute without any bar, and no step
            waiting = items
            continue
        for symbol in SYMBOLS:
            if rng.random() < 0.8:  # most bars are there
                items.append((symbol, _bar(symbol, start, 0)))
        extra = rng.choice(["none"] * 8 + ["late", "repeat", "off-grid"])
        symbol = rng.choice(SYMBOLS)
        if extra == "late" and i:
            items.append((symbol, _bar(symbol, minutes[rng.randrange(i)], 1)))
        elif extra == "repeat":
            items.append((symbol, _bar(symbol, start, 2)))
        elif extra == "off-grid":
            waiting.append((symbol, _bar(symbol, start + timedelta(seconds=30), 3)))
        if rng.random() < 0.1 and i + 1 < len(minutes):
            waiting.extend(items)  # held back: delivered with the next step's bars
            continue
        if items or rng.random() < 0.5:
            ends = [bar_end(plan, MINUTE, bar.start) for _symbol, bar in items]
            t = max([bar_end(plan, MINUTE, start), *ends])
            if steps and t <= steps[-1][0]:
                t = steps[-1][0] + timedelta(seconds=1)
            steps.append((t, tuple(items)))
        if rng.random() < 0.1 and i:  # a late bar alone in a step of its own
            late = (symbol, _bar(symbol, minutes[rng.randrange(max(0, i - 20), i)], 4))
            steps.append((steps[-1][0] + timedelta(seconds=1) if steps else start, (late,)))
    return steps


def _processor() -> DataProcessor:
    config = config_from_dict(
        {
            "backtest": {"start_date": "2024-11-25", "end_date": "2024-11-26"},
            "streams": {"symbols": list(SYMBOLS), "derived": list(DERIVED)},
            "indicators": [{"name": "sma_3", "kind": "sma", "period": 3, "interval": "5m"}],
        }
    )
    runtime = Runtime(config, SessionData())
    return DataProcessor(runtime, StreamSubscription("data-driven", "processor"))


@settings(
    max_examples=80,
    deadline=None,
)
@given(
    seed=st.integers(0, 2**32 - 1),
    closes=st.sampled_from([("16:10", "16:10"), ("15:57", "16:10"), ("16:10", "15:43")]),
    with_break=st.booleans(),
)
def test_derived_bars_follow_the_rules_bar_by_bar(seed, closes, with_break) -> None:
    rng = random.Random(seed)
    processor = _processor()
    series = {(s, i): processor.runtime.data.series(s, i) for s in SYMBOLS for i in DERIVED}
    rules = {(s, i): _Window(interval_delta(i)) for s in SYMBOLS for i in DERIVED}
    for index, (day, close) in enumerate(
        zip((date(2024, 11, 25), date(2024, 11, 26)), closes, strict=True), 1
    ):
        plan = _plan(index, day, close, with_break and index == 1)
        processor.start_session(plan, {} if index == 1 else None)
        for window in rules.values():
            window.emitted = None  # each session starts its windows afresh
            # and drops the last session's bars (no trailing window) but its last, which
            # stays known when the session carries on
            window.out = window.out[-1:] if plan.carry else []
        for t, items in _steps(plan, rng):
            processor.on_step(StepReady(0, t, t.timestamp(), items))
            known = t.timestamp()
            for name, bar in items:
                for interval in DERIVED:
                    rules[name, interval].feed(plan, bar, known)
            for window in rules.values():
                if window.held and window.bounds is not None and t >= window.bounds[1]:
                    window.emit(known)
            for key, window in rules.items():
                assert series[key].count() == len(window.out), (key, t)
                assert series[key].last() == (window.out[-1][0] if window.out else None), (key, t)
        processor.on_session_end(SessionEnded(0, plan.close))
        for window in rules.values():
            if window.held:
                window.emit(plan.close.timestamp())
        for key, window in rules.items():
            bars, _rows, _history = series[key].window()
            assert bars == [bar for bar, _known in window.out], key
            # Each derived bar is known from the step that emitted it, not before.
            for position, (_bar, at) in enumerate(window.out):
                assert series[key].count(at) > position, (key, position)
                assert series[key].count(at - 0.5) <= position, (key, position)


def _history(
    sessions: tuple[SessionPlan, ...], rng: random.Random
) -> dict[str, list[tuple[SessionPlan, Bar]]]:
    """Random trailing history: regular minutes in time order, some missing, some bars
    30 s off the grid (a database may hold them), never a late or repeated one."""
    out: dict[str, list[tuple[SessionPlan, Bar]]] = {symbol: [] for symbol in SYMBOLS}
    for session in sessions:
        t = session.open
        while t < session.close:
            if not in_break(session, t):
                for symbol in SYMBOLS:
                    if rng.random() < 0.8:
                        out[symbol].append((session, _bar(symbol, t, 0)))
                    if rng.random() < 0.1:  # alone in its minute, or after the grid's bar
                        off = _bar(symbol, t + timedelta(seconds=30), 3)
                        out[symbol].append((session, off))
            t += MINUTE
    return out


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    closes=st.sampled_from(
        [("16:10", "16:10", "16:10"), ("15:57", "16:10", "15:43"), ("16:10", "15:43", "15:57")]
    ),
    with_break=st.booleans(),
)
def test_history_warm_up_follows_the_rules_bar_by_bar(seed, closes, with_break) -> None:
    """A session without a predecessor warms up on its trailing history (a session at a
    time, each window's bars held as slices): every base and derived bar, its known-from
    instant and its indicator value are those of the rules fed one bar at a time."""
    rng = random.Random(seed)
    processor = _processor()
    days = (date(2024, 11, 19), date(2024, 11, 20), date(2024, 11, 21))
    history = tuple(
        _plan(index, day, close, with_break and index == 2)
        for index, (day, close) in enumerate(zip(days, closes, strict=True), 1)
    )
    bars = _history(history, rng)
    today = _plan(4, date(2024, 11, 22), "16:10", False)
    keys = [(symbol, interval) for symbol in SYMBOLS for interval in ("1m", *DERIVED)]
    plan = SessionPlan(
        4,
        today.date,
        today.open,
        today.close,
        False,
        history,
        cutoffs=dict.fromkeys(keys, history[0].open),
    )
    processor.start_session(plan, {s: [bar for _session, bar in bars[s]] for s in SYMBOLS})
    data = processor.runtime.data
    for symbol in SYMBOLS:
        base = data.series(symbol, "1m")
        expected = [bar for _session, bar in bars[symbol]]
        assert base.window()[0] == expected
        assert base.history == len(expected)
        for position, (session, bar) in enumerate(bars[symbol]):  # known from its end
            end = bar_end(session, MINUTE, bar.start).timestamp()
            assert base.count(end) > position and base.count(end - 0.5) <= position
        for interval in DERIVED:
            rules = _Window(interval_delta(interval))
            for session in history:  # each session starts its windows afresh
                rules.emitted = None
                for _session, bar in (pair for pair in bars[symbol] if pair[0] is session):
                    rules.feed(session, bar, 0.0)
                if rules.held:
                    rules.emit(0.0)
            derived = data.series(symbol, interval)
            got, rows, count = derived.window()
            assert got == [bar for bar, _known in rules.out], (symbol, interval)
            assert count == len(got)
            for position, bar in enumerate(got):  # known from its window's end
                session = next(s for s in history if s.open <= bar.start < s.close)
                end = window_bounds(session, interval_delta(interval), bar.start)[1].timestamp()
                assert derived.count(end) > position and derived.count(end - 0.5) <= position
            if interval == "5m":  # sma_3, carried across the history sessions
                for position, row in enumerate(rows):
                    if position >= 2:
                        closes3 = [bar.close for bar in got[position - 2 : position + 1]]
                        assert abs(row[0] - sum(closes3) / 3) < 1e-9
