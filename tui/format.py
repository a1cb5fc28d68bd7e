"""Formatting of the figures the panes show, in one place.

Used on the UI's event loop only. Most figures are functions of the simulated session
(prices, counts, simulated time) and always render the same way. A few are measured in
*wall-clock* time (bars per second, subscription waits, load times quoted in engine log
lines): they differ on every run, so they go through a :class:`Figures` object that the app
receives from its factory. :class:`FrozenFigures` renders them as fixed placeholders so
snapshot tests produce the same frame on every run.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, tzinfo

from .progress import duration

DASH = "-"
"""What a missing value looks like in every pane."""

_DURATION = re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s)\b")


class Figures:
    """Renders wall-clock-dependent figures as measured."""

    frozen = False

    def rate(self, bars_per_second: float | None) -> str:
        """Engine throughput: ``12.3k bars/s``, ``6.0 bars/s`` (a decimal below 10, for the
        slow speeds: ``0.1 bars/s`` at 1x), ``0 bars/s`` (paused), ``- bars/s`` unknown."""
        if bars_per_second is None or not math.isfinite(bars_per_second):
            return f"{DASH} bars/s"
        if bars_per_second <= 0:
            return "0 bars/s"
        if bars_per_second < 9.95:
            return f"{bars_per_second:.1f} bars/s"
        return f"{compact_number(bars_per_second)} bars/s"

    def eta(self, seconds: float | None) -> str:
        """Wall time left at the measured pace: ``ETA 3m 05s`` (``ETA -`` unknown)."""
        return f"ETA {duration(seconds)}"

    def seconds(self, value: float | None) -> str:
        """A wall-clock duration: ``1.234 s``."""
        return DASH if value is None else f"{value:,.3f} s"

    def milliseconds(self, value: float | None) -> str:
        """A wall-clock duration given in milliseconds: ``0.42 ms``."""
        return DASH if value is None else f"{value:,.2f} ms"

    def share(self, value: float | None) -> str:
        """A share of wall-clock time in percent: ``37.5``."""
        return DASH if value is None else f"{value:.1f}"

    def wait_ms(self, seconds: float | None) -> str:
        """A subscription wait in milliseconds."""
        if seconds is None:
            return DASH
        return f"{seconds * 1000.0:.1f}"

    def message(self, text: str) -> str:
        """An engine log line (which may quote durations)."""
        return text

    def wall_minute(self, instant: datetime, *, dated: bool = False) -> str:
        """When an engine event without a simulated time (logged before the run's first
        instant: a control restored after a seek) happened, in this machine's zone, as
        wide as :func:`sim_minute`: ``00:57``, ``11-30 00:57`` when ``dated``."""
        local = instant.astimezone()
        return f"{local:%m-%d %H:%M}" if dated else f"{local:%H:%M}"


class FrozenFigures(Figures):
    """Renders wall-clock-dependent figures as fixed placeholders (for snapshot tests)."""

    frozen = True

    def rate(self, bars_per_second: float | None) -> str:
        return "### bars/s"

    def eta(self, seconds: float | None) -> str:
        return "ETA #m ##s"

    def seconds(self, value: float | None) -> str:
        return DASH if value is None else "#.### s"

    def milliseconds(self, value: float | None) -> str:
        return DASH if value is None else "#.## ms"

    def share(self, value: float | None) -> str:
        return DASH if value is None else "##.#"

    def wait_ms(self, seconds: float | None) -> str:
        # Whether a wait happened at all depends on thread timing too.
        return "#.#"

    def message(self, text: str) -> str:
        return _DURATION.sub("#s", text)

    def wall_minute(self, instant: datetime, *, dated: bool = False) -> str:
        return "##-## ##:##" if dated else "##:##"


def compact_number(value: float) -> str:
    """``950`` -> ``950``, ``12_345`` -> ``12.3k``, ``2_500_000`` -> ``2.5M``."""
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1_000:.1f}k"
    return f"{value:,.0f}"


def price(value: float | None) -> str:
    """A price with two decimals (four below 1)."""
    if value is None:
        return DASH
    return f"{value:,.4f}" if abs(value) < 1 else f"{value:,.2f}"


def percent(value: float | None, *, signed: bool = False, digits: int = 1) -> str:
    """A percentage without the sign of the unit (the column header says %)."""
    if value is None:
        return DASH
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def speed(clock: str, value: float | None) -> str:
    """``max`` when data-driven, ``60x`` when clock-driven, ``live``."""
    if clock == "live":
        return "live"
    if clock == "data-driven" or value is None:
        return "max"
    return f"{value:g}x"


def plural(count: float, noun: str) -> str:
    """``1 simulated second``, ``60 simulated seconds``, ``0.5 simulated seconds``: the
    count (as ``:g``) and the noun, with an ``s`` unless the count is exactly one."""
    return f"{count:g} {noun}" if count == 1 else f"{count:g} {noun}s"


def sim_clock(instant: datetime | None, zone: tzinfo, day: date | None = None) -> str:
    """Simulated time in the exchange's zone: ``10:31:00 EST``; with its date, ``03-05
    00:00:00 UTC``, when that is not ``day`` (the session's: a 24-hour session ends at the
    next day's midnight, and some sessions open the evening before their date)."""
    if instant is None:
        return "--:--:--"
    local = instant.astimezone(zone)
    if day is not None and local.date() != day:
        return f"{local:%m-%d %H:%M:%S} {local.tzname()}"
    return f"{local:%H:%M:%S} {local.tzname()}"


def sim_minute(instant: datetime | None, zone: tzinfo, *, dated: bool = False) -> str:
    """Simulated time of an event: ``10:31``, or ``11-26 10:31`` when ``dated`` (a run of
    several sessions, where times alone would read as unsorted); blanks before the first
    session."""
    if instant is None:
        return " " * (11 if dated else 5)
    return (
        f"{instant.astimezone(zone):%m-%d %H:%M}" if dated else f"{instant.astimezone(zone):%H:%M}"
    )


def indicator_value(value: float | None) -> str:
    """An indicator's value, as a chart's title quotes it: one decimal from 10 up
    (``54.3``, ``1,234.5``), three significant digits below (``5.43``, ``0.0740``),
    ``0.0`` for zero; ``-`` for none."""
    if value is None:
        return DASH
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 9.95 or magnitude == 0:
        return f"{value:,.1f}"
    decimals = max(1, min(12, 2 - math.floor(math.log10(magnitude))))
    return f"{value:.{decimals}f}"
