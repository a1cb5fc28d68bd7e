"""Pure helpers for the charts: the session's x axis, downsampling, indicator roles.

Used on the UI's event loop by :mod:`sessionkit.tui.widgets.price_chart` and
:mod:`sessionkit.tui.widgets.oscillator_chart`. Nothing here touches Textual or plotext,
so it is tested directly.

The x axis counts bar slots from the session's open: the bar starting at the open is at 0,
the close is at ``slots`` (390 one-minute slots on a regular NYSE day, 210 on an early
close). Trailing history bars from earlier sessions sit at -1, -2, ... to the left (the
night between sessions takes no room). A session's break (Tokyo's lunch) takes no room
either: the afternoon follows the morning, and a tick marks where the break was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from sessionkit.engine.pipeline.snapshot import Snapshot

OVERLAY_KINDS = frozenset({"sma", "ema", "vwap", "bollinger", "wma", "kama"})
"""Indicator kinds drawn over the price (same scale as the price)."""
OSCILLATOR_KINDS = frozenset({"rsi", "macd", "atr", "stoch", "cci", "adx"})
"""Indicator kinds drawn in the oscillator chart below the price."""


def base_name(name: str) -> str:
    """``bb_20.upper`` -> ``bb_20``: the indicator a value column belongs to."""
    return name.split(".", 1)[0]


def indicator_kinds(config: object) -> dict[str, str]:
    """Indicator name -> kind, from a session configuration (empty if it has none)."""
    out: dict[str, str] = {}
    for indicator in getattr(config, "indicators", None) or ():
        name = getattr(indicator, "name", None)
        kind = getattr(indicator, "kind", None)
        if isinstance(name, str) and isinstance(kind, str):
            out[name] = kind
    return out


def _guess_kind(name: str) -> str | None:
    prefix = base_name(name).split("_", 1)[0].lower()
    aliases = {"bb": "bollinger", "boll": "bollinger"}
    prefix = aliases.get(prefix, prefix)
    if prefix in OVERLAY_KINDS or prefix in OSCILLATOR_KINDS:
        return prefix
    return None


def classify(
    columns: Mapping[str, Sequence[float | None]],
    kinds: Mapping[str, str],
    price_low: float | None,
    price_high: float | None,
) -> tuple[list[str], list[str]]:
    """Split indicator columns into (overlays, oscillators), keeping their order.

    The configured kind decides; an unknown name is judged by its prefix (``sma_``,
    ``rsi_`` ...), then by its values: on the price's scale means overlay.
    """
    overlays: list[str] = []
    oscillators: list[str] = []
    for name, values in columns.items():
        kind = kinds.get(base_name(name)) or _guess_kind(name)
        if kind in OVERLAY_KINDS:
            overlays.append(name)
        elif kind in OSCILLATOR_KINDS:
            oscillators.append(name)
        else:
            present = [v for v in values if v is not None and math.isfinite(v)]
            on_scale = (
                bool(present)
                and price_low is not None
                and price_high is not None
                and min(present) >= price_low * 0.5
                and max(present) <= price_high * 1.5
            )
            (overlays if on_scale else oscillators).append(name)
    return overlays, oscillators


@dataclass(frozen=True, slots=True)
class SessionAxis:
    """Where bars sit on the x axis of one session."""

    open: datetime
    close: datetime
    interval: str
    break_start: datetime | None = None
    """The session's break, left out of the axis (None: no break)."""
    break_end: datetime | None = None

    @classmethod
    def of(cls, snapshot: Snapshot, interval: str) -> SessionAxis | None:
        """The axis of the snapshot's session (None before the first session)."""
        if snapshot.market_open is None or snapshot.market_close is None:
            return None
        return cls(
            snapshot.market_open,
            snapshot.market_close,
            interval,
            snapshot.break_start,
            snapshot.break_end,
        )

    @property
    def step(self) -> timedelta:
        return Snapshot.interval_length(self.interval)

    @property
    def _pause(self) -> timedelta:
        if self.break_start is None or self.break_end is None:
            return timedelta(0)
        return self.break_end - self.break_start

    def x(self, t: datetime) -> float:
        """X of an instant of the session: slots from the open, the break left out."""
        offset = t - self.open
        if self.break_start is not None and self.break_end is not None and t > self.break_start:
            offset -= min(t, self.break_end) - self.break_start
        return offset / self.step

    @property
    def slots(self) -> int:
        """Number of bar slots from the open to the close (the close's x position)."""
        return max(1, math.ceil((self.close - self.open - self._pause) / self.step))

    def positions(self, starts: Sequence[datetime], history: int) -> list[float]:
        """X of each bar: history bars at -h..-1, session bars by their slot."""
        out: list[float] = [float(k - history) for k in range(history)]
        x = self.x
        for start in starts[history:]:
            out.append(x(start))
        return out

    def ticks(
        self, zone: tzinfo, width: int, history_start: datetime | None = None, shown: int = 0
    ) -> tuple[list[float], list[str]]:
        """Tick positions and labels: the open, whole hours, the close (and history's day)."""
        to_local = self.open.astimezone(zone)
        close_local = self.close.astimezone(zone)
        candidates: list[tuple[float, str]] = [(0.0, f"{to_local:%H:%M}")]
        hour = to_local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        start, end = self.break_start, self.break_end
        marked = start is None or end is None
        while hour < close_local:
            if not marked and hour >= start:
                # The break: one tick where morning and afternoon meet.
                label = f"{start.astimezone(zone):%H:%M}|{end.astimezone(zone):%H:%M}"
                candidates.append((self.x(start), label))
                marked = True
            if marked and start is not None and start <= hour < end:
                hour += timedelta(hours=1)
                continue  # an hour inside the break has no place on the axis
            if not (candidates and candidates[-1][0] == self.x(hour)):
                candidates.append((self.x(hour), f"{hour:%H:%M}"))
            hour += timedelta(hours=1)
        if not marked:
            label = f"{start.astimezone(zone):%H:%M}|{end.astimezone(zone):%H:%M}"
            candidates.append((self.x(start), label))
        candidates.append((float(self.slots), f"{close_local:%H:%M}"))
        if history_start is not None and shown > 0:
            candidates.insert(0, (float(-shown), f"{history_start.astimezone(zone):%m-%d}"))
        # Keep labels at least 7 columns apart.
        span = self.slots + shown
        columns_per_slot = max(width - 8, 10) / max(span, 1)
        kept: list[tuple[float, str]] = []
        for position, label in candidates:
            if kept and (position - kept[-1][0]) * columns_per_slot < 7:
                is_close = position == float(self.slots)
                if is_close and len(kept) > 1:
                    kept[-1] = (position, label)
                continue
            kept.append((position, label))
        return [p for p, _ in kept], [label for _, label in kept]

    def window_ticks(
        self, zone: tzinfo, width: int, lo: float, hi: float
    ) -> tuple[list[float], list[str]]:
        """Ticks of a zoomed window ``lo..hi`` (slots): round times about 10 columns apart."""
        span = max(hi - lo, 1.0)
        step_minutes = self.step.total_seconds() / 60.0
        wanted = span * step_minutes / max(2, (width - 8) // 10)
        every = next((m for m in (1, 2, 5, 10, 15, 30, 60, 120) if m >= wanted), 240)
        open_local = self.open.astimezone(zone)
        first = math.ceil(max(lo, 0.0) * step_minutes / every) * every
        ticks: list[float] = []
        labels: list[str] = []
        minute = first
        while minute / step_minutes <= hi:
            ticks.append(minute / step_minutes)
            labels.append(f"{open_local + timedelta(minutes=minute):%H:%M}")
            minute += every
        return ticks, labels


def downsample(
    xs: Sequence[float], ys: Sequence[float | None], buckets: int
) -> list[list[tuple[float, float]]]:
    """Reduce a line to about ``2 * buckets`` points, keeping each bucket's min and max.

    Missing values (None, NaN) split the line into segments, returned separately so a
    warming-up indicator is not joined across its gap.
    """
    segments: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for x, y in zip(xs, ys, strict=False):
        if y is None or not math.isfinite(y):
            if current:
                segments.append(current)
                current = []
            continue
        current.append((x, y))
    if current:
        segments.append(current)
    if buckets <= 0:
        return segments
    total = sum(len(s) for s in segments)
    if total <= 2 * buckets:
        return segments
    x_lo = min(s[0][0] for s in segments)
    x_hi = max(s[-1][0] for s in segments)
    width = (x_hi - x_lo) / buckets or 1.0
    return [_reduce(segment, x_lo, width) for segment in segments]


def _reduce(
    points: list[tuple[float, float]], x_lo: float, width: float
) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    bucket: list[tuple[float, float]] = []
    index = None
    for point in points:
        b = int((point[0] - x_lo) / width)
        if b != index and bucket:
            out.extend(_extremes(bucket))
            bucket = []
        index = b
        bucket.append(point)
    if bucket:
        out.extend(_extremes(bucket))
    return out


def _extremes(bucket: list[tuple[float, float]]) -> Iterable[tuple[float, float]]:
    if len(bucket) <= 2:
        return bucket
    low = min(bucket, key=lambda p: p[1])
    high = max(bucket, key=lambda p: p[1])
    if low is high:
        return [low]
    return sorted((low, high), key=lambda p: p[0])
