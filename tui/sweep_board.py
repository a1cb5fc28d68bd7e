"""What the sweep monitor knows of each run of a sweep, and the table's rows and sort order.

Used on the UI's event loop only (the messages that feed it are posted from the sweep's
threads). No Textual here: the board is a plain model of the runs, testable without Pilot.
Each run has its plan (parameters, date window), the newest
:class:`~sessionkit.engine.runs.sweep.RunProgress` its worker posted, and, once it ended,
its :class:`~sessionkit.engine.runs.sweep.SweepOutcome` (the last word: a progress record
arriving after it is ignored).
"""

from __future__ import annotations

import heapq
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from sessionkit.engine import metric_number
from sessionkit.engine.runs.sweep import (
    RunProgress,
    SweepOutcome,
    SweepRun,
    mask_secrets,
    run_quality,
    shown_setting,
)

from . import format as fmt

FINAL = frozenset({"completed", "stopped", "error", "failed", "cancelled"})
"""States after which a run changes no more."""

STATE_ORDER = {
    "failed": 0,
    "error": 1,
    "stopped": 2,
    "cancelled": 3,
    "pending": 4,
    "initializing": 5,
    "session-ended": 6,
    "paused": 6,
    "streaming": 6,
    "completed": 7,
}
"""How states sort (ascending: trouble first, done last)."""

BAR_CELLS = 8
"""Width of the progress column's bar, in cells."""

BLOCKS = " ▏▎▍▌▋▊▉█"

PACE_FRACTION = 0.02
"""The done fraction from which a running run's pace is trusted (before it, a run still
loading its first session says little of how long it will take)."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the runs table."""

    key: str
    title: str
    width: int
    numeric: bool = True
    """Right-aligned; the first sort by it puts the best first."""
    lower_is_better: bool = False
    """Best first is lowest first (overruns, a drawdown, a loss, seconds); otherwise
    highest first."""

    @property
    def best_first_descending(self) -> bool:
        """Whether the first sort by this column is descending (the plan index and the
        texts sort ascending)."""
        return self.numeric and self.key != "index" and not self.lower_is_better


@dataclass
class RunEntry:
    """One run as the monitor knows it."""

    run: SweepRun
    record: RunProgress | None = None
    outcome: SweepOutcome | None = None
    cancelled: bool = False
    began: float | None = None
    """When its first record arrived (monotonic seconds): the run had started."""
    ended: float | None = None
    """When its outcome arrived (monotonic seconds)."""

    @property
    def state(self) -> str:
        if self.outcome is not None:
            return self.outcome.state
        if self.cancelled:
            return "cancelled"
        return self.record.state if self.record is not None else "pending"

    @property
    def finished(self) -> bool:
        return self.state in FINAL

    @property
    def fraction(self) -> float | None:
        if self.outcome is not None and self.outcome.state == "completed":
            return 1.0
        return None if self.record is None else self.record.fraction

    def metric(self, name: str) -> float | None:
        result = self.outcome.result if self.outcome is not None else None
        if result is not None:
            return result.metrics.get(name)
        return None if self.record is None else self.record.metrics.get(name)


LOWER_IS_BETTER_WORDS = frozenset(
    {
        "drawdown", "drawdowns", "dd", "mdd", "loss", "losses", "losing", "error", "errors",
        "fail", "failed", "failures", "cost", "costs", "fee", "fees", "commission",
        "commissions", "slippage", "latency", "overrun", "overruns", "seconds", "secs", "sec",
        "ms", "duration", "elapsed", "wait", "waits", "waiting",
    }
)  # fmt: skip
"""Words of a metric's name that make its lowest value the best (``max_drawdown_pct``,
``avg_loss``, ``errors``, ``wall_seconds``)."""


def lower_is_better(name: str) -> bool:
    """Whether the metric ``name`` is best at its lowest (see :data:`LOWER_IS_BETTER_WORDS`:
    the words of the name, split at ``_``, ``-``, ``.``, spaces and camel case)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    words = set(re.split(r"[^a-z0-9]+", spaced))
    return bool(words & LOWER_IS_BETTER_WORDS) or "drawdown" in spaced


def metric_title(name: str) -> str:
    """A metric's column title: ``total_return_pct`` -> ``total_return%``."""
    return name[: -len("_pct")] + "%" if name.endswith("_pct") else name


def progress_bar(fraction: float | None) -> str:
    """``██████▌   82%``: a bar of :data:`BAR_CELLS` cells and the percentage (empty when
    unknown)."""
    if fraction is None:
        return ""
    eighths = round(max(0.0, min(1.0, fraction)) * BAR_CELLS * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (BLOCKS[part] if part else "")
    return f"{bar:<{BAR_CELLS}} {fraction * 100:>3.0f}%"


def _window(run: SweepRun) -> str:
    if run.window is None:
        return ""
    first, last = run.window
    if first == last:
        return first.isoformat()
    if first.year == last.year:
        return f"{first.isoformat()}..{last:%m-%d}"
    return f"{first.isoformat()}..{last.isoformat()}"


def _value_text(value: Any) -> str:
    """A parameter's cell: a table, list, boolean or date as ``--param`` takes it."""
    if isinstance(value, float):
        return fmt.price(value) if not value.is_integer() else f"{value:g}"
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return shown_setting(value)


def _orderable(value: Any) -> tuple[str, Any]:
    """A parameter's sort key, which any two values have: numbers by their value (ints
    and floats together), then words, dates, booleans each by theirs; tables and lists
    (which have no order of their own) item by item."""
    if isinstance(value, Mapping):
        return ("table", tuple((str(k), _orderable(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("list", tuple(_orderable(v) for v in value))
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str | date):
        return (type(value).__name__, value)
    return (type(value).__name__, str(value))


class SweepBoard:
    """Every run of one sweep: their state, the columns and the sort order."""

    def __init__(self, runs: Sequence[SweepRun]) -> None:
        self.entries = {run.index: RunEntry(run) for run in runs}
        self.parameter_keys: list[str] = []
        for run in runs:
            for key in run.parameters:
                if key not in self.parameter_keys:
                    self.parameter_keys.append(key)
        self.sharded = any(run.window is not None for run in runs)
        self.metric_names: list[str] = []
        """Metric names in the order the analysis reports them (learnt from the records)."""
        self._plan_columns: list[Column] | None = None
        self.most_running = 0
        """The most runs seen running at once by :meth:`eta` (the workers, when their
        count is unknown)."""

    # -- updates ------------------------------------------------------------------------

    def progress(self, record: RunProgress, now: float | None = None) -> bool:
        """Take a worker's record (arrived at ``now``, monotonic seconds; default: now);
        False if it changes nothing (the run has ended)."""
        entry = self.entries.get(record.index)
        if entry is None or entry.outcome is not None or entry.cancelled:
            return False
        if entry.began is None:
            entry.began = time.monotonic() if now is None else now
        entry.record = record
        self._learn(record.metrics)
        return True

    def finish(self, outcome: SweepOutcome, now: float | None = None) -> None:
        """Take a run's outcome (arrived at ``now``, monotonic seconds; default: now)."""
        entry = self.entries[outcome.run.index]
        entry.outcome = outcome
        entry.ended = time.monotonic() if now is None else now
        result = outcome.result
        if result is not None:
            self._learn(result.metrics)
            # The outcome may arrive before the worker's last record: the bars come from
            # the result (per symbol, the base interval has the most bars).
            # So do the whole run's quality, rate and overruns (the last record, with them,
            # may never be read: on Dask it often comes after the outcome).
            streamed = sum(max(per.values(), default=0) for per in result.bars.values())
            quality = run_quality(result, outcome.run.config.streams.interval)
            if quality is None and entry.record is not None:
                # A run that ended before a session's end has no quality in its result:
                # its last record's (of the session so far) is what is known.
                quality = entry.record.quality
            final = {
                "bars": streamed,
                "quality": quality,
                "bars_per_second": round(result.bars_per_second, 1),
                "overruns": sum(result.overruns.values()),
                "metrics": dict(result.metrics),
            }
            if entry.record is not None:
                entry.record = replace(entry.record, **final)
            else:  # no record arrived at all
                entry.record = RunProgress(
                    index=outcome.run.index,
                    state=result.state,
                    expected_bars=streamed if result.state == "completed" else None,
                    **final,
                )

    def cancel_unfinished(self) -> None:
        """Mark every run that has not ended as cancelled."""
        for entry in self.entries.values():
            if not entry.finished:
                entry.cancelled = True

    def _learn(self, metrics: Any) -> None:
        for name in metrics:
            if name not in self.metric_names:
                self.metric_names.append(name)

    # -- figures --------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Runs per group: ``done`` (ended), ``running``, ``pending``, ``failed``
        (failed or error)."""
        out = {"done": 0, "running": 0, "pending": 0, "failed": 0}
        for entry in self.entries.values():
            state = entry.state
            if state in FINAL:
                out["done"] += 1
                if state in ("failed", "error"):
                    out["failed"] += 1
            elif state == "pending":
                out["pending"] += 1
            else:
                out["running"] += 1
        return out

    def bars(self) -> tuple[int, int | None]:
        """Base bars streamed by every run so far, and of every run together (None until
        each run has said how many its window holds)."""
        done = 0
        total: int | None = 0
        for entry in self.entries.values():
            record = entry.record
            if record is not None:
                done += record.bars
            if record is None or record.expected_bars is None:
                total = None
            elif total is not None:
                total += record.expected_bars
        return done, total

    def work_done(self) -> float:
        """Runs done plus the done fraction of the running ones (for the ETA)."""
        return sum(
            1.0 if entry.finished else (entry.fraction or 0.0) for entry in self.entries.values()
        )

    def eta(self, now: float, workers: int | None = None) -> float | None:
        """Wall seconds until the last run ends, at ``now`` (monotonic seconds); None until
        a run's length can be told.

        A run is taken to last as long as the runs seen so far: those completed (from their
        first record to their outcome) and the running ones at their own pace (once
        :data:`PACE_FRACTION` done). Each running run ends at its own pace; the pending
        ones queue behind them, each starting when one of the ``workers`` is free
        (:func:`eta_seconds`). ``workers`` None: the most runs seen running at once.
        """
        lengths: list[float] = []
        running: list[RunEntry] = []
        pending = 0
        for entry in self.entries.values():
            if entry.state == "pending":
                pending += 1
            elif not entry.finished:
                running.append(entry)
            elif entry.outcome is not None and entry.outcome.state == "completed":
                if entry.began is not None and entry.ended is not None:
                    lengths.append(entry.ended - entry.began)
                elif entry.outcome.result is not None:
                    lengths.append(entry.outcome.result.wall_seconds)
        paced: dict[int, float] = {}  # a running run's fraction done, when its pace is known
        for entry in running:
            fraction = entry.fraction
            if entry.began is not None and fraction is not None and fraction >= PACE_FRACTION:
                paced[entry.run.index] = fraction
                lengths.append((now - entry.began) / fraction)
        self.most_running = max(self.most_running, len(running))
        if not lengths:
            return None
        length = sum(lengths) / len(lengths)
        left = []
        for entry in running:
            elapsed = 0.0 if entry.began is None else now - entry.began
            fraction = paced.get(entry.run.index)
            if fraction is not None:
                left.append(elapsed * (1.0 - fraction) / fraction)
            else:
                left.append(max(0.0, length - elapsed))
        return eta_seconds(left, pending, workers or self.most_running or 1, length)

    # -- the table ------------------------------------------------------------------------

    def columns(self) -> list[Column]:
        """The table's columns: the plan's (fixed), then state and figures, then one per
        metric the analysis has reported so far."""
        if self._plan_columns is None:
            self._plan_columns = self._columns_of_the_plan()
        cols = list(self._plan_columns)
        cols += [
            Column("state", "state", 12, numeric=False),
            Column("progress", "progress", BAR_CELLS + 5),
            Column("rate", "bars/s", 6),
            Column("quality", "Q%", 5),
            Column("overruns", "Ovr", 3, lower_is_better=True),
        ]
        for name in self.metric_names:
            title = metric_title(name)
            cols.append(
                Column(
                    f"metric:{name}",
                    title,
                    max(len(title), 7),
                    lower_is_better=lower_is_better(name),
                )
            )
        return cols

    def _columns_of_the_plan(self) -> list[Column]:
        cols = [Column("index", "#", max(2, len(str(len(self.entries)))))]
        for key in self.parameter_keys:
            title = key.rsplit(".", 1)[-1]
            width = max(
                len(title),
                *(len(_value_text(e.run.parameters.get(key, ""))) for e in self.entries.values()),
            )
            cols.append(Column(f"param:{key}", title, width, numeric=False))
        if self.sharded:
            width = max(len(_window(e.run)) for e in self.entries.values())
            cols.append(Column("window", "window", max(6, width), numeric=False))
        return cols

    def cells(self, index: int, figures: fmt.Figures) -> tuple[tuple[str, str], ...]:
        """The row of run ``index``: (text, style) per column; style is ``""``, ``done``,
        ``failed``, ``pending`` or ``warning``."""
        entry = self.entries[index]
        record = entry.record
        state = entry.state
        style = {"completed": "done", "failed": "failed", "error": "failed", "pending": "pending"}
        out: list[tuple[str, str]] = [(str(index + 1), "")]
        for key in self.parameter_keys:
            out.append((_value_text(entry.run.parameters.get(key, "")), ""))
        if self.sharded:
            out.append((_window(entry.run), ""))
        out.append((state, style.get(state, "pending" if state == "cancelled" else "")))
        out.append((progress_bar(entry.fraction), ""))
        if record is None:
            out += [(fmt.DASH, ""), (fmt.DASH, ""), (fmt.DASH, "")]
        else:
            rate = record.bars_per_second
            out.append(("###" if figures.frozen and rate else _rate(rate), ""))
            quality = record.quality
            low = quality is not None and quality < 100.0
            out.append((fmt.percent(quality), "warning" if low else ""))
            out.append((str(record.overruns), "warning" if record.overruns else ""))
        for name in self.metric_names:
            value = entry.metric(name)
            out.append((metric_number(name, value), ""))
        return tuple(out)

    def sort_value(self, index: int, key: str) -> Any:
        """The value run ``index`` sorts by in column ``key`` (None: unknown)."""
        entry = self.entries[index]
        record = entry.record
        if key == "index":
            return index
        if key.startswith("param:"):
            value = entry.run.parameters.get(key.removeprefix("param:"))
            return None if value is None else _orderable(value)
        if key == "window":
            return entry.run.window
        if key == "state":
            return STATE_ORDER.get(entry.state, 5)
        if key == "progress":
            return entry.fraction
        if key.startswith("metric:"):
            if entry.state in ("error", "failed"):
                return None  # ranked last, as ``sessionkit sweep --rank-by`` ranks them
            return entry.metric(key.removeprefix("metric:"))
        if record is None:
            return None
        return {
            "rate": record.bars_per_second,
            "quality": record.quality,
            "overruns": record.overruns,
        }.get(key)

    def order(self, key: str, descending: bool) -> list[int]:
        """Run indexes sorted by column ``key``; unknown values last either way, ties in
        plan order."""

        def missing(value: Any) -> bool:
            return value is None or (isinstance(value, float) and math.isnan(value))

        indexes = list(self.entries)
        known = [i for i in indexes if not missing(self.sort_value(i, key))]
        unknown = [i for i in indexes if missing(self.sort_value(i, key))]
        known.sort(
            key=lambda i: (self.sort_value(i, key), -i if descending else i), reverse=descending
        )
        return known + unknown


def eta_seconds(left: Sequence[float], pending: int, workers: int, run_seconds: float) -> float:
    """Wall seconds until the last run of a sweep ends.

    Parameters
    ----------
    left
        The seconds each running run still needs (each holds a worker).
    pending
        Runs not started yet: each takes ``run_seconds`` once a worker is free, the first
        free first (they queue behind the running ones when every worker is busy).
    workers
        How many runs run at once (at least the running ones).
    run_seconds
        How long a run takes.
    """
    free = sorted(max(0.0, seconds) for seconds in left)
    free += [0.0] * max(0, max(1, workers) - len(free))
    heapq.heapify(free)
    for _ in range(pending):
        heapq.heapreplace(free, free[0] + run_seconds)
    return max(free)


def _rate(value: float) -> str:
    return fmt.DASH if not value else fmt.compact_number(value)
