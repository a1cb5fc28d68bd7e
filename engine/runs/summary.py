"""The human summary of one run, as Rich renderables: what ``sessionkit run`` prints.

Pure functions of a :meth:`RunResult.to_dict() <sessionkit.engine.runs.result.RunResult.to_dict>`,
usable from any thread. ``sessionkit run`` prints them; the sweep monitor of
``sessionkit-tui`` shows the same for a finished run of a sweep.
"""

from __future__ import annotations

import math
from typing import Any


def summary_renderables(data: dict[str, Any]) -> list[Any]:
    """The summary of a ``RunResult.to_dict()``: a headline, errors and warnings, the bars
    and quality table, overruns and signals, and the metrics (Rich renderables, in order).

    User text (symbols, messages) is escaped, never read as markup.
    """
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    out: list[Any] = []
    sessions = data["sessions"]
    span = f"{sessions[0]} .. {sessions[-1]}" if sessions else "none"
    out.append(
        Text.from_markup(
            f"[bold]{data['state']}[/]: {len(sessions)} session(s) {span}, "
            f"{data['clock']}"
            + (f" at {data['speed']:g}x" if data["speed"] else "")
            + f", {data['steps']} steps, {data['bars_per_second']:,.0f} bars/s, "
            f"load {data['load_seconds']:.3f}s"
        )
    )
    if data["error"]:
        out.append(Text.from_markup(f"[red]error:[/] {escape(str(data['error']))}"))
    for warning in data["warnings"]:
        out.append(Text.from_markup(f"[yellow]warning:[/] {escape(str(warning))}"))
    table = Table(title="bars and quality")
    intervals = sorted({i for per in data["bars"].values() for i in per}, key=_seconds)
    table.add_column("symbol")
    for interval in intervals:
        table.add_column(f"{interval} bars", justify="right")
    table.add_column("quality %", justify="right")
    table.add_column("gaps", justify="right")
    for symbol, per in data["bars"].items():
        quality = next(iter(data["quality"][symbol].values()), None)
        table.add_row(
            escape(symbol),
            *(f"{per.get(i, 0):,}" for i in intervals),
            "-" if quality is None else f"{quality:.2f}",
            str(data["gaps"].get(symbol, 0)),
        )
    out.append(table)
    overruns = ", ".join(f"{k}: {v}" for k, v in data["overruns"].items())
    out.append(
        Text(
            f"overruns: {overruns or 'none'}; signals: {data['signal_count']}; "
            f"analysis errors: {data['analysis_errors']}"
        )
    )
    kinds = data.get("analysis_error_kinds", [])
    for kind in kinds:
        where = f" ({kind['where']})" if kind["where"] else ""
        first = (
            f", first at {kind['first_time'][:16].replace('T', ' ')}" if kind["first_time"] else ""
        )
        out.append(
            Text(f"  {kind['count']:,} x in on_{kind['hook']}: {kind['error']}{where}{first}")
        )
    shown = sum(kind["count"] for kind in kinds)
    if kinds and shown < data["analysis_errors"]:
        out.append(Text(f"  {data['analysis_errors'] - shown:,} more, of other kinds"))
    if data["metrics"]:
        out.append(
            Text(
                "metrics: "
                + ", ".join(f"{k} {metric_number(k, v)}" for k, v in data["metrics"].items())
            )
        )
    return out


def metric_number(name: str, value: float | None) -> str:
    """An analysis's metric as every table of it shows it (this summary, the sweep's
    table, the monitor's Metrics pane and sweep board): ``trades`` and other whole numbers
    (but percentages) grouped, ``1,234,568``; a ``..._return...`` signed, ``+1.23``; others
    with two decimals, ``1,234,567.89``, ``0.50``, or two significant digits below 0.01,
    ``0.0045`` (never an exponent); ``-`` for none."""
    if value is None:
        return "-"
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if name == "trades" or (value.is_integer() and abs(value) >= 1 and "pct" not in name):
        return f"{value:,.0f}"
    sign = "+" if "return" in name else ""
    decimals = 2
    if 0 < abs(value) < 0.01:
        decimals = min(12, 1 - math.floor(math.log10(abs(value))))
    return f"{value:{sign},.{decimals}f}"


def _seconds(interval: str) -> int:
    from ..core.bar import INTERVAL_SECONDS

    return INTERVAL_SECONDS.get(interval, 0)
