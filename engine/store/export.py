"""CSV export of a finished session's bars, derived bars, indicators and quality.

Called on the caller's thread after the engine threads have ended (``sessionkit run
--export DIR``, ``run_backtest(..., export=DIR)``); it reads what the data processor and
quality manager recorded, and the run's signals.
"""

from __future__ import annotations

import csv
import os
import tempfile
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, TextIO

from ..core.bar import Bar, interval_delta, symbol_file_name
from ..errors import SessionkitError

BarEnd = Callable[[datetime, timedelta], datetime]
"""A bar's end from its start and interval: the engine's one rule,
:func:`sessionkit.engine.core.windows.bar_end`, cut by its session's break start or close
(the caller knows the sessions)."""


def _fmt(value: float | None) -> str:
    return "" if value is None else repr(round(value, 10))


COLUMNS = ("start", "end", "open", "high", "low", "close", "volume", "quality")
"""The first columns of every bars file; the indicator outputs follow."""

SIGNAL_COLUMNS = ("time", "symbol", "kind", "price", "message")
"""The columns of ``signals.csv``."""


def stream_rows(
    rows: Sequence[tuple[Bar, tuple]],
    interval: str,
    quality: Sequence[tuple[datetime, float]],
    bar_end: BarEnd,
) -> Iterator[tuple[Bar, datetime, float | None, tuple]]:
    """Each recorded bar with its end (cut by the close), its quality then and its values.

    ``bar_end`` gives a bar's end from its start and interval. The quality is the stream's quality (percent) when the bar
    became visible.
    """
    delta = interval_delta(interval)
    times = [t for t, _q in quality]
    for bar, values in rows:
        end = bar_end(bar.start, delta)
        j = bisect_right(times, end) - 1
        yield bar, end, (quality[j][1] if j >= 0 else None), values


def recorded_columns(
    records: Mapping[tuple[str, str], Sequence[tuple[Bar, tuple]]],
    names: Mapping[tuple[str, str], Sequence[str]],
    quality: Mapping[str, Sequence[tuple[datetime, float]]],
    tz: tzinfo,
    bar_end: BarEnd,
) -> dict[tuple[str, str], dict[str, list]]:
    """The recorded bars as column lists per stream (the export's columns, typed)."""
    out: dict[tuple[str, str], dict[str, list]] = {}
    for (symbol, interval), rows in records.items():
        indicator_names = list(names[symbol, interval])
        columns: dict[str, list] = {name: [] for name in (*COLUMNS, *indicator_names)}
        for bar, end, q, values in stream_rows(rows, interval, quality.get(symbol, ()), bar_end):
            columns["start"].append(bar.start.astimezone(tz))
            columns["end"].append(end.astimezone(tz))
            for name in ("open", "high", "low", "close", "volume"):
                columns[name].append(getattr(bar, name))
            columns["quality"].append(q)
            for name, value in zip(indicator_names, values, strict=False):
                columns[name].append(value)
            for name in indicator_names[len(values) :]:
                columns[name].append(None)
        out[symbol, interval] = columns
    return out


@contextmanager
def _replacing(path: Path) -> Iterator[TextIO]:
    """Write ``path`` through a temporary file renamed over it only when complete, so a
    full disk or an error never leaves a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            yield handle
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise


def write_csv_export(
    directory: Path,
    records: Mapping[tuple[str, str], Sequence[tuple[Bar, tuple]]],
    names: Mapping[tuple[str, str], Sequence[str]],
    quality: Mapping[str, Sequence[tuple[datetime, float]]],
    tz: tzinfo,
    bar_end: BarEnd,
    *,
    signals: Sequence[Any] | None = None,
) -> list[Path]:
    """Write ``directory/<symbol>/<interval>.csv`` for every recorded stream.

    ``<symbol>`` is :func:`~sessionkit.engine.core.bar.symbol_file_name` of the symbol
    (``BRK/B`` -> ``BRK%2FB``): no symbol can leave ``directory`` or share a folder with
    another, even on a case-insensitive file system (symbols that differ only in case are
    refused). ``<interval>`` is one of the known intervals.

    Columns: ``start,end,open,high,low,close,volume,quality`` then one per indicator
    output; times in ISO-8601 with the exchange's offset; one row per bar in time order.
    ``quality`` is the stream's quality (percent) when the bar became visible. With
    ``signals`` (objects with ``sim_time``, ``symbol``, ``kind``, ``price``, ``message``),
    ``directory/signals.csv`` too. Each file is written to a temporary file first and
    renamed when complete.

    Raises
    ------
    SessionkitError
        If the directory cannot be written, or two symbols differ only in case.
    InvalidSymbolError
        If a symbol breaks the symbol rule.
    """
    written = []
    folders: dict[str, str] = {}
    for symbol, _interval in records:
        folder = symbol_file_name(symbol)
        other = folders.setdefault(folder.casefold(), symbol)
        if other != symbol:
            raise SessionkitError(
                f"cannot export {other!r} and {symbol!r} to {directory}: the symbols differ "
                "only in case, and their folders would be one on a case-insensitive file system"
            )
    for (symbol, interval), rows in records.items():
        path = directory / symbol_file_name(symbol) / f"{interval}.csv"
        try:
            with _replacing(path) as handle:
                writer = csv.writer(handle)
                writer.writerow([*COLUMNS, *names[symbol, interval]])
                for bar, end, q, values in stream_rows(
                    rows, interval, quality.get(symbol, ()), bar_end
                ):
                    writer.writerow(
                        [
                            bar.start.astimezone(tz).isoformat(),
                            end.astimezone(tz).isoformat(),
                            _fmt(bar.open),
                            _fmt(bar.high),
                            _fmt(bar.low),
                            _fmt(bar.close),
                            bar.volume,
                            _fmt(q),
                        ]
                        + [_fmt(v) for v in values]
                    )
        except OSError as exc:
            raise SessionkitError(f"cannot write export file {path}: {exc}") from None
        written.append(path)
    if signals is not None:
        path = directory / "signals.csv"
        try:
            with _replacing(path) as handle:
                writer = csv.writer(handle)
                writer.writerow(SIGNAL_COLUMNS)
                for signal in signals:
                    writer.writerow(
                        [
                            signal.sim_time.astimezone(tz).isoformat(),
                            signal.symbol,
                            signal.kind,
                            _fmt(signal.price),
                            signal.message,
                        ]
                    )
        except OSError as exc:
            raise SessionkitError(f"cannot write export file {path}: {exc}") from None
        written.append(path)
    return written
