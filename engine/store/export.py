"""CSV export of a finished session's bars, derived bars, indicators and quality.

Called on the caller's thread after the engine threads have ended (``sessionkit run
--export DIR``); it reads what the data processor and quality manager recorded.
"""

from __future__ import annotations

import csv
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

from ..core.bar import Bar, interval_delta
from ..errors import SessionkitError


def _fmt(value: float | None) -> str:
    return "" if value is None else repr(round(value, 10))


def write_csv_export(
    directory: Path,
    records: Mapping[tuple[str, str], Sequence[tuple[Bar, tuple]]],
    names: Mapping[tuple[str, str], Sequence[str]],
    quality: Mapping[str, Sequence[tuple[datetime, float]]],
    tz: tzinfo,
    bar_end: Callable[[datetime, timedelta], datetime],
) -> list[Path]:
    """Write ``directory/<symbol>/<interval>.csv`` for every recorded stream.

    Columns: ``start,end,open,high,low,close,volume,quality`` then one per indicator
    output; times in ISO-8601 with the exchange's offset; one row per bar in time order.
    ``quality`` is the stream's quality (percent) when the bar became visible. ``bar_end``
    gives a bar's end from its start and interval (the caller knows the sessions: the
    engine's one rule, :func:`sessionkit.engine.core.windows.bar_end`, cut by a session's
    break start and close).

    Raises
    ------
    SessionkitError
        If the directory cannot be written.
    """
    written = []
    for (symbol, interval), rows in records.items():
        delta = interval_delta(interval)
        path = directory / symbol / f"{interval}.csv"
        history = quality.get(symbol, ())
        times = [t for t, _q in history]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(
                    ["start", "end", "open", "high", "low", "close", "volume", "quality"]
                    + list(names[symbol, interval])
                )
                for bar, values in rows:
                    end = bar_end(bar.start, delta)
                    j = bisect_right(times, end) - 1
                    q = history[j][1] if j >= 0 else None
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
    return written
