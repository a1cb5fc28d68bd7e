"""CSV export of a run's bars, derived bars, indicators, quality and signals.

Two ways, both on the caller's thread (``sessionkit run --export DIR``,
``run_backtest(..., export=DIR)``): :func:`write_csv_export` writes what the data processor
and quality manager kept once the engine threads have ended; :class:`ExportWriter` writes
as the run goes, taking rows out of the queues (``collections.deque``) that those threads
append to, so a long run's export never holds more than a bounded backlog in memory. Either
way each file appears only when complete (temporary file, then rename).
"""

from __future__ import annotations

import csv
import os
import tempfile
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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


def _volume(value: float) -> int | str:
    """A volume as written: a whole one as an integer (also when the database gave it as a
    float, as PostgreSQL's double column does), a fractional one as a price is."""
    if type(value) is int:
        return value
    return int(value) if value.is_integer() else _fmt(value)


COLUMNS = ("start", "end", "open", "high", "low", "close", "volume", "quality")
"""The first columns of every bars file; the indicator outputs follow."""

SIGNAL_COLUMNS = ("time", "symbol", "kind", "price", "message")
"""The columns of ``signals.csv``."""


def quality_at(times: Sequence[datetime], end: datetime) -> int:
    """The index of the quality known when a bar ending at ``end`` became visible, in the
    quality entries' ``times`` (sorted; -1: none yet): the first entry at ``end``, else
    the last before it. Two entries share an instant when live mode adds one more at the
    close for the bars filled then: the first is the quality with the bar still missing,
    what the export keeps for a filled bar (a bar filled at the close said 100.0)."""
    j = bisect_left(times, end)
    return j if j < len(times) and times[j] == end else j - 1


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
        j = quality_at(times, end)
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


def _file_mode() -> int:
    """The mode a new file gets from ``open()``: 0o666 less the process's umask
    (:func:`tempfile.mkstemp` makes its files 0o600, readable by their owner only)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no other way to read it (the umask is set back at once)
    os.umask(mask)
    return 0o666 & ~mask


def _temporary_for(path: Path, mode: int) -> tuple[int, Path]:
    """A new temporary file next to ``path`` (hidden, ``.tmp``), with ``mode``: its open
    descriptor and its path."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        else:  # pragma: no cover - Windows before Python 3.13
            os.chmod(name, mode)
    except BaseException:
        os.close(fd)
        with suppress(OSError):
            os.unlink(name)
        raise
    return fd, Path(name)


@contextmanager
def _replacing(path: Path) -> Iterator[TextIO]:
    """Write ``path`` through a temporary file renamed over it only when complete, so a
    full disk or an error (or an interrupt: any exception) never leaves a partial file.
    The file gets the usual mode of a new file (0o666 less the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = _temporary_for(path, _file_mode())
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
    _check_folders(directory, records)
    local = _LocalTimes(tz)
    for (symbol, interval), rows in records.items():
        path = _stream_path(directory, symbol, interval)
        try:
            with _replacing(path) as handle:
                writer = csv.writer(handle)
                writer.writerow([*COLUMNS, *names[symbol, interval]])
                for bar, end, q, values in stream_rows(
                    rows, interval, quality.get(symbol, ()), bar_end
                ):
                    writer.writerow(_row(bar, end, q, values, local))
        except OSError as exc:
            raise SessionkitError(f"cannot write export file {path}: {exc}") from None
        written.append(path)
    if signals is not None:
        written.append(_write_signals(directory, signals, tz))
    return written


class _LocalTimes:
    """ISO-8601 text of instants in the exchange's zone, remembered: the streams of a run
    share their instants (every symbol's bars start at the same minutes, a bar's end is the
    next one's start), so most lookups are found. Bounded: forgotten every 50,000."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self._known: dict[datetime, str] = {}

    def __call__(self, t: datetime) -> str:
        text = self._known.get(t)
        if text is None:
            if len(self._known) >= 50_000:
                self._known.clear()
            text = self._known[t] = t.astimezone(self.tz).isoformat()
        return text


def _row(bar: Bar, end: datetime, q: float | None, values: tuple, local: _LocalTimes) -> list:
    """One line of a bars file."""
    row = [
        local(bar.start),
        local(end),
        _fmt(bar.open),
        _fmt(bar.high),
        _fmt(bar.low),
        _fmt(bar.close),
        _volume(bar.volume),
        _fmt(q),
    ]
    row.extend(map(_fmt, values))
    return row


def _stream_path(directory: Path, symbol: str, interval: str) -> Path:
    return directory / symbol_file_name(symbol) / f"{interval}.csv"


def _check_folders(directory: Path, streams: Iterable[tuple[str, str]]) -> None:
    """Refuse symbols whose folders would be one on a case-insensitive file system."""
    folders: dict[str, str] = {}
    for symbol, _interval in streams:
        folder = symbol_file_name(symbol)
        other = folders.setdefault(folder.casefold(), symbol)
        if other != symbol:
            raise SessionkitError(
                f"cannot export {other!r} and {symbol!r} to {directory}: the symbols differ "
                "only in case, and their folders would be one on a case-insensitive file system"
            )


def _write_signals(directory: Path, signals: Sequence[Any], tz: tzinfo) -> Path:
    path = directory / "signals.csv"
    try:
        with _replacing(path) as handle:
            _signal_rows(handle, signals, tz)
    except OSError as exc:
        raise SessionkitError(f"cannot write export file {path}: {exc}") from None
    return path


def _signal_rows(handle: TextIO, signals: Sequence[Any], tz: tzinfo) -> None:
    """``signals.csv``'s header and rows, written to ``handle``."""
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


class ExportWriter:
    """The export written as the run goes (same files as :func:`write_csv_export`).

    The data processor appends ``(bar, values)`` to ``records[symbol, interval]`` and the
    quality manager ``(time, quality)`` to ``quality[symbol]``, each a ``deque`` only its
    thread appends to; :meth:`drain`, on the caller's thread, pops from the left what can
    be written: a bar once its quality is known (a quality entry at or after its end), and
    everything when the run has ended (``final``). Rows go to a temporary file per stream,
    renamed into place by :meth:`finish`; :meth:`abort` removes them.

    Parameters
    ----------
    directory
        The export folder.
    records, names, quality, tz, bar_end
        As for :func:`write_csv_export` (``records`` and ``quality`` hold deques).
    backlog
        :meth:`drain` writes only once this many bars wait (files are opened per drain, so
        thousands of streams are no problem), or when ``final``.

    Raises
    ------
    SessionkitError
        If two symbols differ only in case, or a file cannot be written.
    """

    def __init__(
        self,
        directory: Path,
        records: Mapping[tuple[str, str], deque[tuple[Bar, tuple]]],
        names: Mapping[tuple[str, str], Sequence[str]],
        quality: Mapping[str, deque[tuple[datetime, float]]],
        tz: tzinfo,
        bar_end: BarEnd,
        *,
        backlog: int = 10_000,
    ) -> None:
        _check_folders(directory, records)
        self.directory = directory
        self.records = records
        self.quality = quality
        self.tz = tz
        self._local = _LocalTimes(tz)
        self.bar_end = bar_end
        self.backlog = backlog
        self.written = 0
        """Bars written so far."""
        self._deltas = {key: interval_delta(key[1]) for key in records}
        self._seen: dict[str, tuple[list[datetime], list[float]]] = {
            symbol: ([], []) for symbol in quality
        }
        """Per symbol, the quality entries popped and still needed (times, values)."""
        self._last_end: dict[tuple[str, str], datetime | None] = dict.fromkeys(records)
        self._temporary: dict[tuple[str, str], Path] = {}
        self._extra: list[Path] = []
        """Other temporary files (``signals.csv``'s, while :meth:`finish` writes it)."""
        self._created: list[Path] = []
        """Folders made for the export (removed again by :meth:`abort`), outermost first."""
        self._mode = _file_mode()
        """The files' mode (mkstemp's 0o600 would make them private)."""
        try:
            for key in records:
                path = _stream_path(directory, *key)
                missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
                path.parent.mkdir(parents=True, exist_ok=True)
                self._created.extend(reversed(missing))
                fd, self._temporary[key] = _temporary_for(path, self._mode)
                with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
                    csv.writer(handle).writerow([*COLUMNS, *names[key]])
        except OSError as exc:
            self.abort()
            raise SessionkitError(f"cannot write export files in {directory}: {exc}") from None
        except BaseException:  # an interrupt: no temporary file stays behind
            self.abort()
            raise

    def pending(self) -> int:
        """Bars recorded and not written yet."""
        return sum(len(rows) for rows in self.records.values())

    def drain(self, *, final: bool = False) -> int:
        """Write what can be written now (everything when ``final``); returns the bars
        written. Caller's thread only."""
        if not final and self.pending() < self.backlog:
            return 0
        count = 0
        for symbol, entries in self.quality.items():
            times, values = self._seen[symbol]
            for _ in range(len(entries)):
                t, q = entries.popleft()
                times.append(t)
                values.append(q)
        local = self._local
        for key, rows in self.records.items():
            if not rows:
                continue
            times, values = self._seen[key[0]]
            horizon = times[-1] if times else None
            delta = self._deltas[key]
            end = self.bar_end(rows[0][0].start, delta)
            if not final and (horizon is None or end > horizon):
                continue  # its quality is not known yet
            try:
                with open(self._temporary[key], "a", newline="", encoding="utf-8") as handle:
                    writerow = csv.writer(handle).writerow
                    while True:
                        bar, row = rows.popleft()
                        j = quality_at(times, end)
                        writerow(_row(bar, end, values[j] if j >= 0 else None, row, local))
                        count += 1
                        self._last_end[key] = end
                        if not rows:
                            break
                        end = self.bar_end(rows[0][0].start, delta)
                        if not final and end > horizon:  # type: ignore[operator]
                            break
            except OSError as exc:
                self.abort()
                path = _stream_path(self.directory, *key)
                raise SessionkitError(f"cannot write export file {path}: {exc}") from None
            except BaseException:  # an interrupt: the rows are cut, the export abandoned
                self.abort()
                raise
        self._forget()
        self.written += count
        return count

    def _forget(self) -> None:
        """Drop the quality entries no coming bar can need: the next bar of a stream ends
        after the last one written, so the entry :func:`quality_at` the earliest of those
        ends stays, with those after it."""
        lows: dict[str, datetime | None] = {}
        for key, rows in self.records.items():
            low = self.bar_end(rows[0][0].start, self._deltas[key]) if rows else self._last_end[key]
            symbol = key[0]
            if low is None or lows.get(symbol, low) is None:
                lows[symbol] = None  # a stream with nothing yet: keep every entry
            else:
                lows[symbol] = min(low, lows.get(symbol, low))
        for symbol, (times, values) in self._seen.items():
            low = lows.get(symbol)
            if low is None:
                continue
            cut = quality_at(times, low)
            if cut > 0:
                del times[:cut]
                del values[:cut]

    def finish(self, signals: Sequence[Any] | None = None) -> list[Path]:
        """Write what is left (and ``signals.csv`` with ``signals``), then rename every
        file into place; the paths written. Every file is complete before the first is
        renamed; on any exception (a full disk, an interrupt) the temporary files are
        removed (:meth:`abort`).

        Raises
        ------
        SessionkitError
            If a file cannot be written.
        """
        try:
            self.drain(final=True)
            moves = [
                (temporary, _stream_path(self.directory, *key))
                for key, temporary in self._temporary.items()
            ]
            if signals is not None:
                path = self.directory / "signals.csv"
                try:
                    fd, temporary = _temporary_for(path, self._mode)
                    self._extra.append(temporary)
                    with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
                        _signal_rows(handle, signals, self.tz)
                except OSError as exc:
                    raise SessionkitError(f"cannot write export file {path}: {exc}") from None
                moves.append((temporary, path))
            written = []
            for temporary, path in moves:
                os.replace(temporary, path)
                written.append(path)
        except BaseException:
            self.abort()
            raise
        self._temporary = {}
        self._extra = []
        return written

    def abort(self) -> None:
        """Remove the temporary files (the export is not written)."""
        for temporary in (*self._temporary.values(), *self._extra):
            with suppress(OSError):
                temporary.unlink()  # gone already once renamed into place
        self._temporary = {}
        self._extra = []
        for folder in reversed(self._created):
            with suppress(OSError):
                folder.rmdir()  # only if empty: nothing of the user's goes
        self._created = []
