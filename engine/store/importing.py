"""What every bars importer shares: the row rules, the column names, the report, the writer.

One module per file format reads rows (:mod:`.import_csv` with the ``csv`` module,
:mod:`.import_arrow` with pyarrow for CSV and Parquet, :mod:`.import_dbn` for Databento
DBN files); they all check rows with :class:`RowRules`, write them with :class:`BarSink`
and describe what they did in an :class:`ImportReport`, so every format rejects the same
rows for the same reasons and imports the same way. :func:`import_bars` picks the reader.

Used on the caller's (main) thread by ``sessionkit db import`` and the sample database's
build script; no engine thread imports.

Rows are streamed in chunks: a reader hands :class:`BarSink` at most :data:`CHUNK` valid
rows at a time, and the sink inserts them with ``ON CONFLICT DO NOTHING`` (SQLite and
PostgreSQL), so memory stays bounded (the starts written, kept to find duplicates, are
kept as runs: a few bytes per run of regular bars, whatever the number of rows) and two
imports of the same bars at once both succeed: rows the other import wrote first are
counted as already present.

Nothing read is dropped without a word: a row is imported, or rejected (counted under its
reason, the first ones kept as examples with their line), or skipped as another symbol's
(counted). A file none of whose rows is valid is refused (:func:`nothing_imported`: its
commonest reason, with an example), and its symbol is not created: a symbol is registered
by the import that stores its first row. Valid rows whose start is off the session grid
of the calendars stored (:class:`SessionGrid`) are imported with a warning
(:meth:`ImportReport.warnings`): the database does not say which exchange a symbol
trades on, so the grid of every stored calendar is tried.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import math
import queue
import re
import threading
import time as _time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from itertools import repeat
from pathlib import Path
from typing import IO, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Float,
    String,
    bindparam,
    column,
    insert,
    select,
    table,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from ..core.bar import INTERVAL_SECONDS, INTERVALS, check_symbol
from ..errors import DatabaseError, DataImportError, InvalidSymbolError, NothingImportedError
from .db import SymbolInfo, safe_url, whole_volumes_only

Ambiguous = Literal["reject", "earliest", "latest"]
"""What to do with a naive local time that a DST change makes ambiguous (01:30 on the
night clocks go back happens twice): reject the row (the default), or take the earlier
(daylight time) or the later (standard time) instant, like pandas' ``ambiguous``."""

FIELDS = ("timestamp", "open", "high", "low", "close", "volume")
"""The fields of a bar, in file order; the CSV header names them."""

HEADER = FIELDS
"""The canonical CSV header (any order; names are case-insensitive; aliases accepted)."""

ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": (
        "timestamp",
        "datetime",
        "ts_event",  # Databento
        "ts",
        "time",
        "start",  # sessionkit's own exports
        "start_time",  # Bybit (startTime)
        "open_time",  # Binance klines with a header
        "window_start",  # Polygon flat files
        "gmt_time",  # Dukascopy (UTC: naive times need no --tz)
    ),
    "open": ("open", "o", "open_price"),
    "high": ("high", "h", "high_price"),
    "low": ("low", "l", "low_price"),
    "close": ("close", "c", "close_price", "last"),
    "volume": ("volume", "vol", "v"),
}
"""Header names accepted for each field, compared as :func:`_normal` makes them: case,
``<DATE>`` style brackets and the separators ``_``, ``-`` and spaces do not count
(``startTime``, ``Start Time`` and ``start_time`` are one name). A file with separate
``date`` and ``time`` columns has them joined."""

SYMBOL_ALIASES = ("symbol", "ticker", "sym")
"""Names of a column holding each row's symbol (compared as :data:`ALIASES` are)."""

MAPPABLE = (*FIELDS, "date", "time", "symbol")
"""Keys of a ``--columns`` mapping."""

MAX_EXAMPLES = 5
"""How many example rows are kept per rejection reason (and other symbols named in a
summary)."""
MAX_OTHER_SYMBOLS = 100
"""How many of the other symbols skipped the JSON report lists (the most rows first)."""

CHUNK = 100_000
"""Most rows a reader hands the database at a time."""

ROWS_PER_STATEMENT = 100
"""Rows per ``INSERT`` on SQLite (a multi-row ``VALUES``: 602 parameters, below the
smallest limit SQLite builds have, 999)."""

MIN_START = datetime(1900, 1, 1, tzinfo=UTC)
MAX_START = datetime(2200, 1, 1, tzinfo=UTC)
MIN_EPOCH = int(MIN_START.timestamp())
MAX_EPOCH = int(MAX_START.timestamp())
"""Bar starts must lie in ``[1900-01-01, 2200-01-01)`` UTC."""
MAX_VOLUME = 2**63 - 1
"""The largest volume the database stores (a signed 64-bit integer)."""

EPOCH_UNITS: tuple[tuple[int, int], ...] = (
    (10**10, 1),
    (10**13, 1_000),
    (10**16, 1_000_000),
)
"""A Unix epoch timestamp's unit, told by its size (``(bound, units per second)``): below
1e10 seconds (1e10 s is the year 2286), below 1e13 milliseconds, below 1e16 microseconds,
else nanoseconds. Bars between 1900 and 2199 are never mistaken (a millisecond epoch below
1e10 is within 116 days of 1970)."""

_DOTTED_DATE = re.compile(r"\d{4}\.\d{2}\.\d{2}(?=$|[ T])")
"""``2024.03.05`` (MetaTrader)."""
_COMPACT = re.compile(
    r"(\d{4})(\d{2})(\d{2})[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s+([A-Za-z][\w+\-]*(?:/[\w+\-]+)*))?"
)
"""``20110103  09:30:00``, optionally followed by a zone name (Interactive Brokers'
``20231106 09:30:00 US/Eastern``): date without separators, then the time."""

_DAY_FIRST_DATE = re.compile(r"\d{2}\.\d{2}\.\d{4}(?=$|[ T])")
"""``05.03.2024``: day first, as dotted dates with the year last always are (Dukascopy,
European exports)."""

_EPOCH_TEXT = re.compile(r"-?\d{1,19}")
"""A timestamp written as a whole number: a Unix epoch (see :data:`EPOCH_UNITS`)."""


def epoch_unit(value: int) -> int:
    """Units per second of the Unix epoch ``value`` (1, 1e3, 1e6 or 1e9), by its size."""
    size = abs(value)
    for bound, per_second in EPOCH_UNITS:
        if size < bound:
            return per_second
    return 1_000_000_000


# Rejection reasons, in the order a row is checked.
MISSING = "missing value"
NON_NUMERIC = "non-numeric value"
NOT_FINITE = "NaN or infinite value"
VOLUME_TOO_LARGE = "volume too large (at most 2^63-1)"
BAD_TIMESTAMP = "unparseable timestamp"
NO_OFFSET = "timestamp without a UTC offset (give the zone with --tz)"
TIME_OUT_OF_RANGE = "timestamp outside 1900-2199"
NOT_WHOLE_MINUTE = "timestamp not on a whole minute"
NONEXISTENT_TIME = "local time does not exist (DST change)"
AMBIGUOUS_TIME = "local time is ambiguous (DST change; see --ambiguous)"
HIGH_BELOW_LOW = "high < low"
OUTSIDE_RANGE = "open or close outside [low, high]"
NEGATIVE_VOLUME = "negative volume"
BAD_SYMBOL = "invalid symbol"
NO_MAPPING = "no symbol mapping"
DUPLICATE = "duplicate timestamp"
WRONG_FIELD_COUNT = "wrong number of fields"
NOT_UTF8 = "not UTF-8 text"
DECIMAL_DOT = "dot in a decimal-comma number"

REASONS = (
    WRONG_FIELD_COUNT,
    NOT_UTF8,
    MISSING,
    NON_NUMERIC,
    DECIMAL_DOT,
    NOT_FINITE,
    VOLUME_TOO_LARGE,
    BAD_TIMESTAMP,
    NO_OFFSET,
    NONEXISTENT_TIME,
    AMBIGUOUS_TIME,
    TIME_OUT_OF_RANGE,
    NOT_WHOLE_MINUTE,
    HIGH_BELOW_LOW,
    OUTSIDE_RANGE,
    NEGATIVE_VOLUME,
    NO_MAPPING,
    BAD_SYMBOL,
    DUPLICATE,
)
"""Every rejection reason, in the order reports list them."""

TIMESTAMP_FORMATS = (
    "accepted timestamps: ISO 8601 (2011-01-03T09:30:00-05:00, or naive 2011-01-03 09:30 "
    "with --tz), 2011.01.03 09:30, day first 03.01.2011 09:30, 20110103 09:30:00 (with a "
    "zone name after it, or --tz), a Unix epoch (1294065000, in s, ms, us or ns), or date "
    "and time columns of those"
)
"""The timestamps the row rules read, for messages about the ones they cannot."""


@functools.lru_cache(maxsize=64)
def _zone_named(name: str) -> tzinfo | None:
    """The IANA zone ``name`` (``US/Eastern``, ``America/New_York``, ``UTC``), or None."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


_GROUPED = re.compile(r"\s*[+-]?\d{1,3}(?:\.\d{3})+(?:,\d*)?\s*")
"""A number of a decimal-comma file whose dots group thousands: ``1.000``, ``12.345,5``."""


def comma_number(text: str) -> str | None:
    """A number of a decimal-comma file (``1,0850``) as Python reads numbers (``1.0850``):
    dots may only group thousands, by three digits (``1.000`` is 1000, ``1.234,5``
    1234.5); None for any other dot (``1.5``: a decimal point, which such a file does not
    use, so the number is ambiguous)."""
    if "." in text:
        if not _GROUPED.fullmatch(text):
            return None
        text = text.replace(".", "")
    return text.replace(",", ".")


def printable(text: str) -> str:
    """Text read with ``surrogateescape`` with its undecodable bytes as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def undecodable(text: str) -> bool:
    """Whether text read with ``surrogateescape`` held bytes that are not UTF-8."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# The bars table as plain Core columns: ``start`` is raw UTC epoch seconds, so inserting
# needs no per-row type conversion. Same table and column names as db.BarRecord.
BARS = table(
    "bars",
    column("symbol", String),
    column("interval", String),
    column("start", BigInteger),
    column("open", Float),
    column("high", Float),
    column("low", Float),
    column("close", Float),
    column("volume", Float),
)


CALENDAR = table(
    "trading_calendar",
    column("exchange", String),
    column("open", BigInteger),
    column("close", BigInteger),
    column("break_start", BigInteger),
    column("break_end", BigInteger),
)
"""The sessions of the trading calendar, as raw UTC epoch seconds (db.CalendarDay's table)."""

_COLUMNS = ("symbol", "interval", "start", "open", "high", "low", "close", "volume")

_STORED = (
    select(BARS.c.start, BARS.c.open, BARS.c.high, BARS.c.low, BARS.c.close, BARS.c.volume)
    .where(BARS.c.symbol == bindparam("symbol"))
    .where(BARS.c.interval == bindparam("interval"))
    .where(BARS.c.start >= bindparam("lo"))
    .where(BARS.c.start <= bindparam("hi"))
)
"""The stored bars of a symbol and interval starting in ``[lo, hi]``: built once (an
import of every symbol of a file asks it once per symbol and chunk)."""
LOOKUPS = 400
"""Starts asked per statement looking up stored rows start by start (SQLite builds take
999 parameters at least)."""
SPARSE = 4
"""A chunk whose span holds more than this many times its rows' count of bars (of its
interval) is looked up start by start, not by its span (:meth:`BarSink._stored`)."""
_STAGE = "sessionkit_import_stage"
"""The temporary table PostgreSQL imports COPY into (dropped at commit)."""


@dataclass(frozen=True)
class RejectedRow:
    """One rejected row: its line (CSV) or row (Parquet, DBN) number, reason and detail."""

    line: int
    reason: str
    detail: str


@dataclass(frozen=True)
class OffGrid:
    """The first valid row (of a file) whose start is off the session grid: its line (or
    row, record), start and the start of the session part it is in (UTC epoch seconds),
    the exchange of that session, and its symbol."""

    line: int
    start: int
    anchor: int
    exchange: str
    symbol: str


@dataclass(frozen=True)
class NonPositive:
    """The first valid row (of a file) with a price at or below zero: its line (or row,
    record), symbol and prices."""

    line: int
    symbol: str
    open: float
    high: float
    low: float
    close: float


@dataclass
class ImportReport:
    """What an import did with a file (for one symbol).

    Attributes
    ----------
    path
        The file imported.
    symbol, interval
        Where its bars went.
    reader
        What read the file: ``csv module``, ``pyarrow csv``, ``pyarrow parquet``,
        ``databento dbn``.
    columns
        The file's column used for each field (``timestamp`` may be ``date+time``).
    ignored_columns
        The file's other columns.
    rows_read
        Data rows read (the header excluded; blank lines ignored).
    imported
        Rows inserted.
    already_present
        Valid rows whose (symbol, interval, start) was already stored; left as stored.
    conflicting
        Of those, rows whose stored prices or volume differ from the file's.
    rejected
        Rejected rows per reason.
    examples
        The first :data:`MAX_EXAMPLES` rejected rows of each reason.
    first_start, last_start
        First and last bar start (UTC) among the valid rows, or None.
    seconds
        Wall time the import took.
    display_zone
        Zone the rendered report shows times in (the exchange's, like ``db info``).
    other_symbols
        Rows of other symbols (a file with a symbol column, many tickers in one file),
        per symbol: skipped, not rejected.
    symbols
        None for an import of one symbol. An import of every symbol of a file with a
        column of symbols (no ``--symbol``), or of several (``--symbol A,B``): the report
        of each symbol, by name (its valid rows, what became of them, its duplicates); this
        report then holds the file's totals, and :attr:`symbol` is empty (or lists the
        symbols asked for).
    wanted
        The symbols asked for, importing several (the file's other symbols are skipped);
        None: one symbol, or every symbol of the file.
    grid_exchanges
        The exchanges whose stored calendar the valid rows' starts were checked against
        (:class:`SessionGrid`); empty: not checked (``1m`` bars, or no calendar stored).
    off_grid
        Valid rows that start inside a session of those calendars but not on its grid of
        :attr:`interval` windows (anchored at the open and at a break's end, as
        ``exchange_calendars``' ``trading_index``), on no calendar's grid: imported, with a
        warning (:meth:`warnings`).
    off_grid_example
        The first of them.
    nonpositive
        Valid rows with a price at or below zero: imported (negative prices exist, for some
        futures and spreads), with a warning (:meth:`warnings`).
    nonpositive_example
        The first of them (the smallest line).
    """

    path: Path
    symbol: str
    interval: str
    reader: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    rows_read: int = 0
    imported: int = 0
    already_present: int = 0
    conflicting: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[RejectedRow]] = field(default_factory=dict)
    first_start: datetime | None = None
    last_start: datetime | None = None
    seconds: float = 0.0
    display_zone: tzinfo = UTC
    line_label: str = "line"
    other_symbols: dict[str, int] = field(default_factory=dict)
    symbols: dict[str, ImportReport] | None = None
    wanted: frozenset[str] | None = None
    grid_exchanges: tuple[str, ...] = ()
    off_grid: int = 0
    off_grid_example: OffGrid | None = None
    nonpositive: int = 0
    nonpositive_example: NonPositive | None = None

    @property
    def every_symbol(self) -> bool:
        """Whether this import routes each row to its own symbol (every symbol of the
        file, or those :attr:`wanted`; see :attr:`symbols`)."""
        return self.symbols is not None

    @property
    def missing_symbols(self) -> list[str]:
        """Symbols asked for (:attr:`wanted`) that no valid row of the file has."""
        if self.wanted is None:
            return []
        return sorted(self.wanted - {s for s, r in (self.symbols or {}).items() if r.valid})

    def _what(self) -> str:
        """``SPY 1m``, or ``3 symbols 1m`` for an import of every symbol (the records of no
        symbol imported, of a DBN file: ``records of no imported symbol, 1m``)."""
        if self.symbols is None:
            if not self.symbol:
                return f"records of no imported symbol, {self.interval}"
            return f"{self.symbol} {self.interval}"
        count = len(self.symbols)
        return f"{count:,} {'symbol' if count == 1 else 'symbols'} {self.interval}"

    def symbols_ranked(self) -> list[ImportReport]:
        """The symbols' reports (an import of every symbol), the most valid rows first."""
        return sorted((self.symbols or {}).values(), key=lambda r: (-r.valid, r.symbol))

    def symbols_listed(self) -> str:
        """The first :data:`MAX_EXAMPLES` symbols imported with their valid rows, and how
        many more: ``AAPL 390, MSFT 390, +1 more``."""
        ranked = self.symbols_ranked()
        listed = ", ".join(f"{r.symbol} {r.valid:,}" for r in ranked[:MAX_EXAMPLES])
        more = len(ranked) - MAX_EXAMPLES
        return listed + (f", +{more:,} more" if more > 0 else "")

    @property
    def other_symbol_rows(self) -> int:
        """Rows of other symbols, skipped."""
        return sum(self.other_symbols.values())

    def skip_others(self, symbols: Mapping[str, int]) -> None:
        """Count rows of other symbols (symbol -> rows), read and skipped."""
        other = self.other_symbols
        for symbol, rows in symbols.items():
            other[symbol] = other.get(symbol, 0) + rows
        self.rows_read += sum(symbols.values())

    def others_ranked(self) -> list[tuple[str, int]]:
        """The other symbols skipped and their rows, the most rows first."""
        return sorted(self.other_symbols.items(), key=lambda item: (-item[1], item[0]))

    def others_listed(self, form: str = "{symbol} {rows:,}") -> str:
        """The first :data:`MAX_EXAMPLES` other symbols in ``form``, and how many more:
        ``AAPL 390, MSFT 390, +1 more``."""
        ranked = self.others_ranked()
        listed = ", ".join(
            form.format(symbol=s or "(empty)", rows=r) for s, r in ranked[:MAX_EXAMPLES]
        )
        more = len(ranked) - MAX_EXAMPLES
        return listed + (f", +{more:,} more" if more > 0 else "")

    def _others_text(self) -> str:
        """``1,170 rows of 3 other symbols skipped (AAPL 390, MSFT 390, +1 more)``."""
        count = len(self.other_symbols)
        return (
            f"{self.other_symbol_rows:,} rows of {count:,} other "
            f"{'symbol' if count == 1 else 'symbols'} skipped ({self.others_listed()})"
        )

    @property
    def rejected_total(self) -> int:
        """Number of rejected rows, all reasons together."""
        return sum(self.rejected.values())

    @property
    def valid(self) -> int:
        """Number of valid rows (imported or already present)."""
        return self.imported + self.already_present

    def reject(self, line: int, reason: str, detail: str) -> None:
        """Count a rejected row and keep it as an example if there are few yet."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(RejectedRow(line, reason, detail))

    def reject_rows(self, lines: Sequence[int], reason: str, details: Sequence[str]) -> None:
        """Count rejected rows of one reason at once: ``lines`` theirs, in order, and
        ``details`` the details of the first (at least :data:`MAX_EXAMPLES` of them, or all)."""
        self.rejected[reason] = self.rejected.get(reason, 0) + len(lines)
        examples = self.examples.setdefault(reason, [])
        for line, detail in zip(lines[: MAX_EXAMPLES - len(examples)], details, strict=False):
            examples.append(RejectedRow(int(line), reason, detail))

    def reasons(self) -> list[tuple[str, int]]:
        """(reason, count) of the rejections, in :data:`REASONS` order."""
        rank = {reason: i for i, reason in enumerate(REASONS)}
        return sorted(self.rejected.items(), key=lambda item: rank.get(item[0], len(rank)))

    def note_off_grid(self, count: int, example: OffGrid) -> None:
        """Count valid rows off the session grid, keeping the first (smallest line)."""
        self.off_grid += count
        first = self.off_grid_example
        if first is None or example.line < first.line:
            self.off_grid_example = example

    def note_nonpositive(self, count: int, example: NonPositive) -> None:
        """Count valid rows with a price at or below zero, keeping the first (smallest
        line)."""
        self.nonpositive += count
        first = self.nonpositive_example
        if first is None or example.line < first.line:
            self.nonpositive_example = example

    def _nonpositive_warning(self) -> list[str]:
        """The warning of the rows with a price at or below zero (none: no warning)."""
        example = self.nonpositive_example
        if not self.nonpositive or example is None:
            return []
        if self.symbols is None:
            bars = f"{self.nonpositive:,} of the {self.valid:,} bars of {self._what()}"
            where = f"{self.line_label} {example.line}"
        else:
            bars = f"{self.nonpositive:,} {self.interval} bars"
            where = f"{example.symbol} {self.line_label} {example.line}"
        prices = ", ".join(
            f"{name} {value!r}"
            for name, value in zip(
                ("open", "high", "low", "close"),
                (example.open, example.high, example.low, example.close),
                strict=True,
            )
        )
        return [
            f"{bars} have a price at or below zero, e.g. {where}: {prices}; they are kept "
            "(negative prices exist, for some futures and spreads): check the file if its "
            "prices cannot be"
        ]

    def _off_grid_symbols(self) -> list[tuple[str, int]]:
        """(symbol, rows off the grid), the most first: an import of every symbol."""
        counts = [(s, r.off_grid) for s, r in (self.symbols or {}).items() if r.off_grid]
        return sorted(counts, key=lambda item: (-item[1], item[0]))

    def warnings(self) -> list[str]:
        """What was imported but may not be what was meant: bars off the session grid,
        prices at or below zero."""
        return self._off_grid_warning() + self._nonpositive_warning()

    def _off_grid_warning(self) -> list[str]:
        """The warning of the bars off the session grid (none: no warning)."""
        example = self.off_grid_example
        if not self.off_grid or example is None:
            return []
        zone = self.display_zone
        start = datetime.fromtimestamp(example.start, UTC).astimezone(zone)
        anchor = datetime.fromtimestamp(example.anchor, UTC).astimezone(zone)
        exchanges = self.grid_exchanges
        grid = (
            f"on {exchanges[0]}'s {self.interval} session grid"
            if len(exchanges) == 1
            else f"on the {self.interval} session grid of any stored calendar "
            f"({', '.join(exchanges)})"
        )
        session = "a session" if len(exchanges) == 1 else f"a {example.exchange} session"
        if self.symbols is None:
            bars = f"{self.off_grid:,} of the {self.valid:,} bars of {self._what()}"
            where = f"{self.line_label} {example.line}"
        else:
            counts = self._off_grid_symbols()
            listed = ", ".join(f"{s} {n:,}" for s, n in counts[:MAX_EXAMPLES])
            more = len(counts) - MAX_EXAMPLES
            listed += f", +{more:,} more" if more > 0 else ""
            bars = f"{self.off_grid:,} {self.interval} bars of {len(counts):,} " + (
                f"{'symbol' if len(counts) == 1 else 'symbols'} ({listed})"
            )
            where = f"{example.symbol} {self.line_label} {example.line}"
        return [
            f"{bars} do not start {grid} (windows from each session's open, as "
            f"exchange_calendars' trading_index), e.g. {where}: {start:%Y-%m-%d %H:%M}, in "
            f"{session} whose windows start at {anchor:%H:%M} ({zone}); they are imported, "
            "but the engine will treat them as off-grid (they may count as missing, and its "
            "derived windows are the exchange's)"
        ]

    def _stamp(self, moment: datetime | None) -> str | None:
        return None if moment is None else moment.astimezone(self.display_zone).isoformat()

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (times in :attr:`display_zone`). An import of
        every symbol has ``symbol`` null and ``symbols``: each symbol's counts and span."""
        data = {
            "path": str(self.path),
            "symbol": (self.symbol or None) if self.symbols is None else None,
            "interval": self.interval,
            "reader": self.reader,
            "columns": dict(self.columns),
            "ignored_columns": list(self.ignored_columns),
            "rows_read": self.rows_read,
            "imported": self.imported,
            "already_present": self.already_present,
            "conflicting": self.conflicting,
            "rejected_total": self.rejected_total,
            "rejected": [
                {
                    "reason": reason,
                    "count": count,
                    "examples": [
                        {self.line_label: ex.line, "detail": ex.detail}
                        for ex in self.examples[reason]
                    ],
                }
                for reason, count in self.reasons()
            ],
            "other_symbols": {
                "rows": self.other_symbol_rows,
                "symbols": len(self.other_symbols),
                "rows_per_symbol": dict(self.others_ranked()[:MAX_OTHER_SYMBOLS]),
            },
            "first_start": self._stamp(self.first_start),
            "last_start": self._stamp(self.last_start),
            "timezone": str(self.display_zone),
            "seconds": round(self.seconds, 3),
            "off_grid": self._off_grid_dict(),
            "nonpositive_prices": self._nonpositive_dict(),
            "warnings": self.warnings(),
        }
        if self.symbols is not None:
            data["symbols"] = [
                {
                    "symbol": name,
                    "valid": each.valid,
                    "imported": each.imported,
                    "already_present": each.already_present,
                    "conflicting": each.conflicting,
                    "duplicates": each.rejected.get(DUPLICATE, 0),
                    "off_grid": each.off_grid,
                    "nonpositive_prices": each.nonpositive,
                    "first_start": self._stamp(each.first_start),
                    "last_start": self._stamp(each.last_start),
                }
                for name, each in sorted(self.symbols.items())
            ]
        if self.wanted is not None:
            data["missing_symbols"] = self.missing_symbols
        return data

    def _nonpositive_dict(self) -> dict[str, Any]:
        """The valid rows with a price at or below zero, for JSON."""
        example = self.nonpositive_example
        return {
            "bars": self.nonpositive,
            "example": None
            if example is None
            else {
                self.line_label: example.line,
                "symbol": example.symbol,
                "open": example.open,
                "high": example.high,
                "low": example.low,
                "close": example.close,
            },
        }

    def _off_grid_dict(self) -> dict[str, Any] | None:
        """The rows off the session grid, for JSON (None: not checked)."""
        if not self.grid_exchanges:
            return None
        example = self.off_grid_example
        data: dict[str, Any] = {
            "bars": self.off_grid,
            "exchanges": list(self.grid_exchanges),
            "example": None,
        }
        if example is not None:
            data["example"] = {
                self.line_label: example.line,
                "symbol": example.symbol,
                "start": self._stamp(datetime.fromtimestamp(example.start, UTC)),
                "session_part_start": self._stamp(datetime.fromtimestamp(example.anchor, UTC)),
                "exchange": example.exchange,
            }
        return data

    def summary(self) -> str:
        """A one-line plain-text summary."""
        text = (
            f"{self.path}: {self.rows_read:,} rows read, {self.imported:,} imported, "
            f"{self.already_present:,} already present, {self.rejected_total:,} rejected "
            f"({self._what()})"
        )
        if self.symbols:
            text += f"; rows per symbol: {self.symbols_listed()}"
        if self.missing_symbols:
            text += f"; no row of {', '.join(self.missing_symbols)}"
        if self.conflicting:
            text += f"; {self.conflicting:,} already-present rows differ from the stored values"
        if self.other_symbols:
            text += f"; {self._others_text()}"
        if self.off_grid:
            text += f"; {self.off_grid:,} bar{'' if self.off_grid == 1 else 's'} off the session grid (see the warning)"
        if self.nonpositive:
            text += (
                f"; {self.nonpositive:,} bar{'' if self.nonpositive == 1 else 's'} with a "
                "price at or below zero (see the warning)"
            )
        return text

    def __rich__(self) -> Any:
        """Readable tables for ``rich``: the totals, then the rejections with examples
        (:meth:`summary` and :meth:`warnings` follow them, as lines of their own).

        Every text from the file or the user is a :class:`rich.text.Text`, never markup.
        """
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        totals = Table(
            title=Text(f"Import of {self.path.name} as {self._what()}"),
            min_width=60,
        )
        totals.add_column("", style="bold")
        totals.add_column("rows", justify="right")
        totals.add_row("read", f"{self.rows_read:,}")
        totals.add_row("imported", f"{self.imported:,}", style="green" if self.imported else "")
        totals.add_row("already present", f"{self.already_present:,}")
        if self.conflicting:
            totals.add_row(
                "  of which differ (stored kept)", f"{self.conflicting:,}", style="yellow"
            )
        totals.add_row(
            "rejected", f"{self.rejected_total:,}", style="red" if self.rejected_total else ""
        )
        if self.other_symbols:
            totals.add_row("other symbols, skipped", f"{self.other_symbol_rows:,}")
        span = "-"
        if self.first_start and self.last_start:
            zone = self.display_zone
            span = (
                f"{self.first_start.astimezone(zone):%Y-%m-%d %H:%M} .. "
                f"{self.last_start.astimezone(zone):%Y-%m-%d %H:%M} {zone}"
            )
        used = ", ".join(f"{name}={source}" for name, source in self.columns.items())
        caption = f"bars {span}; {self.seconds:.2f} s; read by {self.reader}"
        if used:
            caption += f"\ncolumns: {used}"
        if self.ignored_columns:
            caption += f"; ignored: {', '.join(self.ignored_columns)}"
        if self.symbols:
            caption += f"\nvalid rows per symbol: {self.symbols_listed()}"
        totals.caption = Text(caption)
        if not self.rejected:
            return totals
        rejected = Table(title="Rejected rows", min_width=60)
        rejected.add_column("reason", style="red")
        rejected.add_column("count", justify="right")
        rejected.add_column(f"first examples ({self.line_label}: detail)", overflow="fold")
        for reason, count in self.reasons():
            examples = "\n".join(f"{ex.line}: {ex.detail}" for ex in self.examples[reason])
            # (Text: a reason is no markup; "[low, high]" would be read as a tag)
            rejected.add_row(Text(reason), f"{count:,}", Text(examples))
        if BAD_TIMESTAMP in self.rejected:
            rejected.caption = Text(TIMESTAMP_FORMATS)
        return Group(totals, rejected)


# ---------------------------------------------------------------------------------------
# Columns


@dataclass(frozen=True)
class Columns:
    """Which of a file's columns hold each field.

    ``timestamp`` is one column, or None when ``date`` and ``time`` are two columns to join
    with a space. ``positions`` are the columns' indices in the file, in the order
    timestamp (or date, time), open, high, low, close, volume.
    """

    names: tuple[str, ...]
    timestamp: str | None
    date: str | None
    time: str | None
    open: str
    high: str
    low: str
    close: str
    volume: str
    header: bool = True
    """False: the file has no header line; its first line is data (see :func:`headerless`)."""
    symbol: str | None = None
    """The column naming each row's symbol (``ticker``: many symbols in one file), if any:
    only the rows of the imported symbol are read, the others counted and skipped (or,
    importing every symbol, each row goes to its own symbol)."""

    @property
    def sources(self) -> list[str]:
        """The file's columns read, in field order (date and time for a split timestamp)."""
        stamp = [self.timestamp] if self.timestamp is not None else [self.date, self.time]
        return [*stamp, self.open, self.high, self.low, self.close, self.volume]  # type: ignore[list-item]

    @property
    def positions(self) -> list[int]:
        return [self.names.index(name) for name in self.sources]

    @property
    def used(self) -> dict[str, str]:
        """Field -> column, for the report (bytes of a name that are not UTF-8 as ``\\xNN``)."""
        stamp = self.timestamp if self.timestamp is not None else f"{self.date}+{self.time}"
        used = {
            "timestamp": stamp,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
        }
        if self.symbol is not None:
            used["symbol"] = self.symbol
        return {key: printable(name) for key, name in used.items()}

    @property
    def ignored(self) -> list[str]:
        """The columns not read, for the report (as :attr:`used` shows them)."""
        read = {*self.sources, self.symbol}
        return [printable(name) for name in self.names if name not in read]

    @property
    def utc(self) -> bool:
        """Whether the timestamp column's name says its times are UTC (``Gmt time``)."""
        return self.timestamp is not None and _normal(self.timestamp) == "gmttime"

    def apply(self, report: ImportReport, rules: RowRules) -> None:
        """Note the columns in ``report``; a ``Gmt time`` column's naive times are UTC
        unless a zone was given.

        Raises
        ------
        DataImportError
            If every symbol is to be imported and the file has no column of symbols.
        """
        if report.every_symbol and self.symbol is None:
            if report.wanted is not None:
                raise DataImportError(
                    f"{report.path} has no column of symbols ({', '.join(SYMBOL_ALIASES)}): "
                    f"--symbol {report.symbol} names several, and a file of one symbol's "
                    "bars takes one"
                )
            raise DataImportError(
                f"{report.path} has no column of symbols ({', '.join(SYMBOL_ALIASES)}): give "
                "the symbol of its bars with --symbol"
            )
        report.columns = self.used
        report.ignored_columns = self.ignored
        if self.utc and rules.zone is None:
            rules.zone = ZoneInfo("UTC")  # (an IANA zone, as --tz gives: pyarrow needs its name)


def _normal(name: str) -> str:
    """A column name as names are compared: no BOM, brackets, case or separators."""
    bare = name.strip().lstrip("\ufeff").strip().strip("<>").strip().lower()
    return _SEPARATORS.sub("", bare)


_SEPARATORS = re.compile(r"[\s_-]+")
_ALIASES = {key: {_normal(name) for name in names} for key, names in ALIASES.items()}


def parse_column_mapping(text: str | None) -> dict[str, str]:
    """Parse ``--columns`` (``timestamp=Date Time,volume=Qty``) into field -> column.
    ``symbol=`` (no column) reads no symbol column: every row is the imported symbol's.

    Raises
    ------
    DataImportError
        If an item is not ``FIELD=COLUMN`` or names an unknown field.
    """
    if text is None or not text.strip():
        return {}
    mapping: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if key == "symbol" and sep and not value.strip():
            mapping[key] = ""
            continue
        if not sep or not value.strip() or key not in MAPPABLE:
            raise DataImportError(
                f"--columns: {item.strip()!r} is not FIELD=COLUMN with FIELD one of "
                f"{', '.join(MAPPABLE)}"
            )
        mapping[key] = value.strip()
    return mapping


def headerless(first: Sequence[str]) -> bool:
    """Whether a file's first line is data, not a header: a timestamp (a Unix epoch or an
    ISO 8601 time) and five numbers, then anything (Binance's kline files: open time in ms
    or us, open, high, low, close, volume, close time ...). No header names are numbers."""
    if len(first) < 6:
        return False
    stamp = first[0].strip().lstrip("\ufeff")
    if not _EPOCH_TEXT.fullmatch(stamp):
        try:
            datetime.fromisoformat(stamp)
        except ValueError:
            return False
    try:
        for text in first[1:6]:
            float(text)
    except ValueError:
        return False
    return True


def resolve_columns(
    path: Path, names: Sequence[str], mapping: Mapping[str, str] | None = None
) -> Columns:
    """Find each field's column among a file's column ``names``.

    An explicit ``mapping`` (field -> column name, case-insensitive) wins; other fields are
    found by :data:`ALIASES`; a file with ``date`` and ``time`` columns and no timestamp
    column has them joined. Columns that are not used are ignored (and reported). A file
    without a header (its first line is data, :func:`headerless`) has the fields in its
    first six columns, in order; its columns are called ``column 1`` ...

    Raises
    ------
    DataImportError
        Naming the file, its header and the fields that are missing or ambiguous.
    """
    mapping = dict(mapping or {})
    names = tuple(str(n) for n in names)
    if headerless(names):
        if mapping:
            raise DataImportError(
                f"{path} has no header line (its first line is data), so --columns cannot "
                "name its columns; add a header line, or drop --columns to read the first "
                "six columns as timestamp, open, high, low, close, volume"
            )
        numbered = tuple(f"column {i}" for i in range(1, len(names) + 1))
        return Columns(numbered, *numbered[:1], None, None, *numbered[1:6], header=False)
    normal = [_normal(n) for n in names]
    if len(set(normal)) != len(normal):
        repeated = sorted({n for n in normal if normal.count(n) > 1})
        raise _header_error(path, names, f"repeated columns {', '.join(repeated)}")
    found: dict[str, str] = {}
    no_symbol = mapping.get("symbol") == ""  # symbol= : no column of symbols
    if no_symbol:
        del mapping["symbol"]
    for key, wanted in mapping.items():
        if _normal(wanted) not in normal:
            raise _header_error(path, names, f"--columns {key}={wanted}: no such column")
        found[key] = names[normal.index(_normal(wanted))]
    taken = set(found.values())
    problems = []
    for key in FIELDS:
        if key in found or (key == "timestamp" and ("date" in found or "time" in found)):
            continue
        hits = [
            names[i] for i, n in enumerate(normal) if n in _ALIASES[key] and names[i] not in taken
        ]
        if key == "timestamp" and "date" in normal and "time" in [_normal(h) for h in hits]:
            hits = [h for h in hits if _normal(h) != "time"]  # date + time: joined below
        if len(hits) > 1:
            problems.append(f"{key} could be any of {', '.join(hits)} (use --columns {key}=NAME)")
        elif hits:
            found[key] = hits[0]
            taken.add(hits[0])
    if "timestamp" not in found:
        date_col = found.get("date") or next(
            (names[i] for i, n in enumerate(normal) if n == "date" and names[i] not in taken),
            None,
        )
        time_col = found.get("time") or next(
            (names[i] for i, n in enumerate(normal) if n == "time" and names[i] not in taken),
            None,
        )
        if date_col and time_col:
            found["date"], found["time"] = date_col, time_col
        elif date_col and not time_col:
            # One date column with the time in it (Interactive Brokers' "date": 20110103
            # 09:30:00; an Excel export's "Date"): it is the timestamp.
            found["timestamp"] = date_col
            found.pop("date", None)
    missing = [
        key
        for key in FIELDS
        if key not in found and not (key == "timestamp" and "date" in found and "time" in found)
    ]
    if missing:
        problems.insert(0, f"missing {', '.join(missing)}")
    if problems:
        raise _header_error(path, names, "; ".join(problems))
    return Columns(
        names=names,
        timestamp=found.get("timestamp"),
        date=found.get("date") if "timestamp" not in found else None,
        time=found.get("time") if "timestamp" not in found else None,
        open=found["open"],
        high=found["high"],
        low=found["low"],
        close=found["close"],
        volume=found["volume"],
        symbol=None if no_symbol else found.get("symbol") or _symbol_column(names, found),
    )


def _symbol_column(names: Sequence[str], found: Mapping[str, str]) -> str | None:
    """The column of symbols (:data:`SYMBOL_ALIASES`) among ``names``, if one is not taken."""
    taken = set(found.values())
    return next(
        (n for n in names if _normal(n) in SYMBOL_ALIASES and n not in taken),
        None,
    )


def _header_error(path: Path, names: Sequence[str], problem: str) -> DataImportError:
    shown = ",".join(names)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    quoted = repr(shown)
    if undecodable(shown):
        quoted = f"'{printable(shown)}'"
        problem += "; the header is not UTF-8 text"
    return DataImportError(
        f"{path} is not a file of bars: its header {quoted} does not match "
        f"{','.join(FIELDS)!r} ({problem}; other names are accepted case-insensitively, "
        "e.g. datetime, date+time, ts_event, Vol; or map them with --columns FIELD=NAME)"
    )


# ---------------------------------------------------------------------------------------
# The row rules (the reference: every reader asks it about any row it has doubts about)


def zone_of(tz: str | tzinfo | None) -> tzinfo | None:
    """The zone of naive timestamps, from an IANA name.

    Raises
    ------
    DataImportError
        If the name is unknown.
    """
    if tz is None or isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataImportError(
            f"unknown time zone {tz!r} (use an IANA name such as America/New_York)"
        ) from None


Valid = tuple[int, float, float, float, float, float]
"""A checked row: start (UTC epoch seconds), open, high, low, close, volume (an ``int``
when it is a whole number, else a ``float``)."""


class RowRules:
    """The rules a bar row must pass, checked on the row's text, in a fixed order.

    The reference for every reader: the ``csv`` reader asks it about every row; the
    vectorised readers about every row their fast checks do not pass, so all readers
    reject the same rows for the same reasons, with the same details.

    Parameters
    ----------
    report
        Where rejections are counted.
    path
        The file, for the naive-timestamp error.
    zone
        Zone of naive timestamps (None: a naive timestamp is an error).
    ambiguous
        What to do with an ambiguous naive local time.
    """

    def __init__(
        self, report: ImportReport, path: Path, zone: tzinfo | None, ambiguous: Ambiguous
    ) -> None:
        self.report = report
        self.path = path
        self.zone = zone
        self.ambiguous = ambiguous
        self.decimal_comma = False
        """Numbers may have a decimal comma (``1,0850``: a semicolon-separated file), set
        by the reader."""

    def check(
        self,
        line: int,
        ts_text: str,
        o_text: str,
        h_text: str,
        l_text: str,
        c_text: str,
        v_text: str,
    ) -> Valid | None:
        """Return the row's values, or count its rejection in the report and return None.

        A naive timestamp without a zone is rejected (:data:`NO_OFFSET`): a file of them
        only is refused as one that needs ``--tz`` (:func:`nothing_imported`).
        """
        reject = self.report.reject
        texts = (o_text, h_text, l_text, c_text, v_text)
        # numbers (read with a decimal point; the details show them as written)
        if self.decimal_comma:
            numbers = tuple("?" if (n := comma_number(t)) is None else n for t in texts)
        else:
            numbers = texts
        try:
            o = float(numbers[0])
            h = float(numbers[1])
            lo = float(numbers[2])
            c = float(numbers[3])
            try:
                volume: float | None = int(numbers[4])
                vol_f = 0.0
            except ValueError:
                vol_f = float(numbers[4])
                volume = None
        except ValueError:
            names = FIELDS[1:]
            empty = [n for n, t in zip(names, texts, strict=True) if not t.strip()]
            if empty:
                reject(line, MISSING, f"empty {', '.join(empty)}")
            else:
                bad, dotted = [], []
                for n, t, number in zip(names, texts, numbers, strict=True):
                    try:
                        float(number)
                    except ValueError:
                        shown = f"{n}={t.strip()[:20]!r}"
                        (dotted if _dot_decimal(t) else bad).append(shown)
                if bad:
                    reject(line, NON_NUMERIC, ", ".join(bad))
                else:
                    reject(
                        line,
                        DECIMAL_DOT,
                        f"{', '.join(dotted)} (the file's numbers have decimal commas; a dot "
                        "may only group thousands: 1.000 or 1.234,5)",
                    )
            return None
        isfinite = math.isfinite
        if not (isfinite(o) and isfinite(h) and isfinite(lo) and isfinite(c) and isfinite(vol_f)):
            reject(line, NOT_FINITE, f"{o_text},{h_text},{l_text},{c_text},{v_text}")
            return None
        if volume is None:
            # a whole number is stored as an integer, any other (crypto and FX volumes,
            # Binance's 0.00123) as a double
            volume = int(vol_f) if vol_f.is_integer() else vol_f
        if volume > MAX_VOLUME:
            reject(line, VOLUME_TOO_LARGE, f"volume={v_text.strip()[:30]}")
            return None
        # timestamp
        ts = ts_text.strip()
        if _EPOCH_TEXT.fullmatch(ts):  # a Unix epoch in s, ms, us or ns
            raw = int(ts)
            per_second = epoch_unit(raw)
            epoch = raw // per_second
            if not MIN_EPOCH <= epoch < MAX_EPOCH:
                reject(line, TIME_OUT_OF_RANGE, ts[:40])
                return None
            if raw % (60 * per_second):
                reject(line, NOT_WHOLE_MINUTE, ts)
                return None
            return self._consistent(line, epoch, o, h, lo, c, volume, texts)
        zone = self.zone
        if _DOTTED_DATE.match(ts):
            iso = f"{ts[:4]}-{ts[5:7]}-{ts[8:]}"
        elif _DAY_FIRST_DATE.match(ts):
            iso = f"{ts[6:10]}-{ts[3:5]}-{ts[:2]}{ts[10:]}"
        elif compact := _COMPACT.fullmatch(ts):
            year, month, day, hour, minute, second, named = compact.groups()
            iso = f"{year}-{month}-{day} {int(hour):02d}:{minute}:{second or '00'}"
            if named:
                zone = _zone_named(named)
                if zone is None:
                    reject(line, BAD_TIMESTAMP, f"{ts[:40]!r}: unknown time zone {named!r}")
                    return None
        else:
            iso = ts
        try:
            start = datetime.fromisoformat(iso)
        except ValueError:
            if ts:
                reject(line, BAD_TIMESTAMP, repr(ts[:40]))
            else:
                reject(line, MISSING, "empty timestamp")
            return None
        if start.tzinfo is None:
            if zone is None:
                reject(line, NO_OFFSET, repr(ts))
                return None
            local = start
            early = local.replace(tzinfo=zone, fold=0)
            late = local.replace(tzinfo=zone, fold=1)
            if early.utcoffset() != late.utcoffset():
                # Ambiguous (clocks go back) or nonexistent (clocks go forward).
                if _round_trips(early, local) and _round_trips(late, local):
                    if self.ambiguous == "reject":
                        reject(line, AMBIGUOUS_TIME, f"{ts} in {zone}")
                        return None
                    start = early if self.ambiguous == "earliest" else late
                else:
                    reject(line, NONEXISTENT_TIME, f"{ts} in {zone}")
                    return None
            else:
                start = early
        try:
            epoch = int(start.timestamp())
        except (OverflowError, ValueError):
            epoch = MAX_EPOCH
        if not MIN_EPOCH <= epoch < MAX_EPOCH:
            reject(line, TIME_OUT_OF_RANGE, ts[:40])
            return None
        if start.second or start.microsecond or below_microsecond(iso):
            reject(line, NOT_WHOLE_MINUTE, ts)
            return None
        return self._consistent(line, epoch, o, h, lo, c, volume, texts)

    def _consistent(
        self,
        line: int,
        epoch: int,
        o: float,
        h: float,
        lo: float,
        c: float,
        volume: float,
        texts: tuple[str, str, str, str, str],
    ) -> Valid | None:
        """The bar consistency rules, the last ones (``texts``: the prices and volume as
        read, for the details)."""
        reject = self.report.reject
        o_text, h_text, l_text, c_text, v_text = texts
        if h < lo:
            reject(line, HIGH_BELOW_LOW, f"high {h_text} < low {l_text}")
            return None
        if not (lo <= o <= h and lo <= c <= h):
            reject(
                line, OUTSIDE_RANGE, f"open {o_text}, close {c_text}, low {l_text}, high {h_text}"
            )
            return None
        if volume < 0:
            reject(line, NEGATIVE_VOLUME, f"volume={v_text.strip()}")
            return None
        return epoch, o, h, lo, c, volume


_FRACTION = re.compile(r":\d\d[.,](\d{7,})")
"""A fraction of a second of more than six digits (``09:32:00.0000001``)."""


def below_microsecond(iso: str) -> bool:
    """Whether the ISO time ``iso`` has a fraction of a second below a microsecond
    (``09:32:00.0000001``), which ``datetime.fromisoformat`` drops without a word."""
    if "." not in iso and "," not in iso:
        return False
    fraction = _FRACTION.search(iso)
    return fraction is not None and fraction.group(1)[6:].strip("0") != ""


def _dot_decimal(text: str) -> bool:
    """Whether ``text`` is a number with a decimal point (``1.5``)."""
    if "." not in text:
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


def _round_trips(aware: datetime, local: datetime) -> bool:
    back = datetime.fromtimestamp(aware.timestamp(), aware.tzinfo)
    return back.replace(tzinfo=None, fold=0) == local.replace(fold=0)


# ---------------------------------------------------------------------------------------
# The writer


@dataclass
class Batch:
    """Valid rows of one chunk, in file order: line numbers, starts (UTC epoch s), OHLCV."""

    lines: np.ndarray
    starts: np.ndarray
    opens: np.ndarray
    highs: np.ndarray
    lows: np.ndarray
    closes: np.ndarray
    volumes: np.ndarray
    symbols: np.ndarray | None = None
    """Each row's symbol (an import of every symbol of a file), else None."""

    @classmethod
    def from_rows(
        cls, lines: list[int], rows: list[Valid], symbols: list[str] | None = None
    ) -> Batch:
        """A batch from checked rows (``RowRules.check`` results), their line numbers and
        (importing every symbol) their symbols."""
        named = None if symbols is None else np.array(symbols, dtype=object)
        if not rows:
            empty = np.empty(0, dtype=np.int64)
            return cls(empty, empty, *(np.empty(0) for _ in range(4)), empty, named)
        starts, o, h, lo, c, v = zip(*rows, strict=True)
        return cls(
            np.asarray(lines, dtype=np.int64),
            np.asarray(starts, dtype=np.int64),
            np.asarray(o, dtype=np.float64),
            np.asarray(h, dtype=np.float64),
            np.asarray(lo, dtype=np.float64),
            np.asarray(c, dtype=np.float64),
            volume_array(v),
            named,
        )

    def __len__(self) -> int:
        return len(self.starts)

    def take(self, index: np.ndarray) -> Batch:
        return Batch(
            self.lines[index],
            self.starts[index],
            self.opens[index],
            self.highs[index],
            self.lows[index],
            self.closes[index],
            self.volumes[index],
            None if self.symbols is None else self.symbols[index],
        )

    @staticmethod
    def concat(parts: Sequence[Batch]) -> Batch:
        """One batch of several, ordered by line (symbols kept if every part has them)."""
        batch = Batch(
            *(np.concatenate(cols) for cols in zip(*(_columns(p) for p in parts), strict=True))
        )
        if all(p.symbols is not None for p in parts):
            batch.symbols = np.concatenate([p.symbols for p in parts])  # type: ignore[misc]
        return batch.take(np.argsort(batch.lines, kind="stable"))


def volume_array(volumes: Sequence[float]) -> np.ndarray:
    """Checked volumes (an ``int`` each when whole, else a ``float``) as an array:
    ``int64`` when every one is whole, else an object array of both (so that a whole
    volume beside fractional ones stays an exact integer, as a float64 would not keep it
    above 2^53)."""
    whole = all(type(v) is int for v in volumes)
    return np.asarray(volumes, dtype=np.int64 if whole else object)


def fractional(volumes: np.ndarray) -> np.ndarray:
    """Which of ``volumes`` (as :func:`volume_array` makes them) are not whole numbers."""
    if volumes.dtype != object:
        return np.zeros(len(volumes), dtype=bool)
    return np.fromiter((type(v) is float for v in volumes), dtype=bool, count=len(volumes))


def _arrays(batch: Batch) -> tuple[np.ndarray, ...]:
    """A batch's stored values: starts, OHLC, volumes."""
    return (batch.starts, batch.opens, batch.highs, batch.lows, batch.closes, batch.volumes)


def _values(batch: Batch) -> tuple[list, ...]:
    """A batch's stored values as lists of Python ints and floats."""
    return tuple(col.tolist() for col in _arrays(batch))


def _count(result: Any, rows: int) -> int:
    """Rows an INSERT ... ON CONFLICT DO NOTHING inserted (``rows`` if the driver cannot
    tell)."""
    count = result.rowcount
    return rows if count is None or count < 0 else int(count)


def _columns(batch: Batch) -> tuple[np.ndarray, ...]:
    return (
        batch.lines,
        batch.starts,
        batch.opens,
        batch.highs,
        batch.lows,
        batch.closes,
        batch.volumes,
    )


@dataclass(frozen=True)
class _Runs:
    """The starts of one chunk's written rows and their line numbers, as runs.

    A run is rows whose minute numbers (start // 60) follow each other by ``step`` minutes
    and whose lines follow each other by 1: a file in time order of regular bars is a run
    per session (or per gap), so the few runs of a chunk stand for its 100,000 rows. A file
    out of order costs at most 12 bytes per row (runs of one row).

    Attributes
    ----------
    heads, lines, counts
        Each run's first minute (ascending), first line and number of rows.
    step
        Minutes between a run's rows (the chunk's most common one).
    first, last
        The chunk's first and last minute.
    """

    heads: np.ndarray
    lines: np.ndarray
    counts: np.ndarray
    step: int
    first: int
    last: int

    @classmethod
    def of(cls, minutes: np.ndarray, lines: np.ndarray) -> _Runs:
        """Runs of rows given by their minutes (strictly ascending) and lines."""
        steps = np.diff(minutes)
        step = 1
        if len(steps):
            values, counts = np.unique(steps, return_counts=True)
            step = int(values[np.argmax(counts)])
        cuts = np.flatnonzero((steps != step) | (np.diff(lines) != 1)) + 1
        heads = np.concatenate(([0], cuts))
        counts = np.diff(np.concatenate((heads, [len(minutes)])))
        return cls(
            minutes[heads].astype(np.int32),  # 1900-2199 in minutes fits 32 bits
            lines[heads].astype(np.uint32),
            counts.astype(np.uint32),
            step,
            int(minutes[0]),
            int(minutes[-1]),
        )

    def find(self, minutes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which of ``minutes`` are in these runs, and the line of each (where found)."""
        run = np.searchsorted(self.heads, minutes, side="right") - 1
        inside = run >= 0
        run = np.maximum(run, 0)
        offset = minutes.astype(np.int64) - self.heads[run]
        k = offset // self.step
        hit = inside & (offset % self.step == 0) & (k < self.counts[run])
        return hit, self.lines[run].astype(np.int64) + k


class SessionGrid:
    """Where the bars of an interval start in the sessions of the calendars a database
    holds, to tell which of an import's rows do not (:attr:`ImportReport.off_grid`).

    A symbol's exchange is not stored (a configuration names it, at run time), so a start
    is checked against every calendar stored: it is on the grid when it is a whole number
    of intervals from the start of its session part (the open, or a break's end: the
    windows of :func:`~sessionkit.engine.core.windows.session_windows`) in some calendar
    whose session holds it; off the grid when a session of a stored calendar holds it and
    none puts it on its grid. Starts outside every session (extended hours, another
    exchange's bars) are not counted. Sessions are read from the database for the span of
    the rows checked, in the import's transaction.
    """

    MARGIN = 7 * 86_400
    """Seconds of sessions read beyond the span of the rows checked."""

    def __init__(self, connection: Connection, interval: str, exchanges: Sequence[str]):
        self.connection = connection
        self.step = INTERVAL_SECONDS[interval]
        self.exchanges = tuple(exchanges)
        self._span: tuple[int, int] | None = None
        self._sessions: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    @classmethod
    def of(cls, connection: Connection, interval: str) -> SessionGrid | None:
        """The grid of ``interval`` bars in the calendars stored, or None: ``1m`` bars (a
        whole minute is always on it) or no calendar stored (nothing to check against)."""
        if INTERVAL_SECONDS.get(interval, 60) <= 60:
            return None
        exchanges = sorted(connection.execute(select(CALENDAR.c.exchange).distinct()).scalars())
        return cls(connection, interval, exchanges) if exchanges else None

    def _load(self, low: int, high: int) -> None:
        low, high = low - self.MARGIN, high + self.MARGIN
        cal = CALENDAR.c
        rows = self.connection.execute(
            select(cal.exchange, cal.open, cal.close, cal.break_start, cal.break_end)
            .where(cal.open <= high)
            .where(cal.close > low)
            .order_by(cal.exchange, cal.open)
        ).all()
        by_exchange: dict[str, list[tuple[int, int, int, int]]] = {}
        for exchange, opens, close, break_start, break_end in rows:
            if break_start is None or break_end is None:
                break_start = break_end = close  # no break: an empty one at the close
            by_exchange.setdefault(exchange, []).append(
                (int(opens), int(close), int(break_start), int(break_end))
            )
        self._sessions = [
            (name, *(np.asarray(col, dtype=np.int64) for col in zip(*days, strict=True)))
            for name, days in sorted(by_exchange.items())
        ]
        self._span = (low, high)

    def check(self, report: ImportReport, batch: Batch) -> None:
        """Count the rows of ``batch`` (valid, for ``report``'s symbol) off the grid."""
        if not len(batch):
            return
        starts = batch.starts
        low, high = int(starts.min()), int(starts.max())
        span = self._span
        if span is None or low < span[0] or high > span[1]:
            self._load(low, high)
        inside_any = np.zeros(len(starts), dtype=bool)
        on_any = np.zeros(len(starts), dtype=bool)
        anchors = np.zeros(len(starts), dtype=np.int64)
        owner = np.full(len(starts), -1, dtype=np.int64)
        for k, (_name, opens, closes, break_starts, break_ends) in enumerate(self._sessions):
            i = np.searchsorted(opens, starts, side="right") - 1
            held = i >= 0
            i = np.maximum(i, 0)
            held &= (starts < closes[i]) & ~((starts >= break_starts[i]) & (starts < break_ends[i]))
            anchor = np.where(starts >= break_ends[i], break_ends[i], opens[i])
            on = held & ((starts - anchor) % self.step == 0)
            first = held & (owner < 0)
            anchors[first] = anchor[first]
            owner[first] = k
            inside_any |= held
            on_any |= on
        off = inside_any & ~on_any
        if not off.any():
            return
        index = np.flatnonzero(off)
        j = int(index[np.argmin(batch.lines[index])])
        report.note_off_grid(
            len(index),
            OffGrid(
                int(batch.lines[j]),
                int(starts[j]),
                int(anchors[j]),
                self._sessions[int(owner[j])][0],
                report.symbol,
            ),
        )


class BarSink:
    """Writes checked rows of one (symbol, interval), chunk by chunk, inside a transaction.

    The first row of a start time wins; later ones are rejected as duplicates (naming the
    first one's line). Rows already stored are counted as already present (and as
    conflicting when their values differ) and left as stored. New rows are inserted in
    start order (the unique index's), with ``ON CONFLICT DO NOTHING``: on SQLite
    :data:`ROWS_PER_STATEMENT` rows per ``INSERT`` (``executemany`` of one-row statements
    takes three times as long); on PostgreSQL with psycopg ``COPY`` into a temporary table,
    then ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``; so a row another import wrote
    meanwhile is counted as already present instead of failing. The import's transaction,
    journal and synchronous settings are the database's own: a failed import leaves
    nothing behind, a finished one is as durable as any other write.
    """

    def __init__(
        self,
        connection: Connection,
        report: ImportReport,
        label: str = "line",
        grid: SessionGrid | None = None,
    ):
        self.connection = connection
        self.report = report
        self.label = label
        self.grid = grid
        """The session grid the valid rows are checked against (None: no check)."""
        if grid is not None:
            report.grid_exchanges = grid.exchanges
        # Starts written so far and their lines, one part per chunk, as runs: a few bytes
        # per run of regular bars, whatever the number of rows.
        self._seen: list[_Runs] = []
        self._first: int | None = None
        self._last: int | None = None
        self._staged = False
        self._whole_only: bool | None = None
        """Whether the database rounds fractional volumes (None: not asked yet)."""
        dialect = connection.dialect
        quote = dialect.identifier_preparer.quote
        names = ", ".join(quote(c) for c in _COLUMNS)
        conflict = f"ON CONFLICT ({quote('symbol')}, {quote('interval')}, {quote('start')})"
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self._lookup = (
            f"SELECT {quote('start')}, {quote('open')}, {quote('high')}, {quote('low')}, "
            f"{quote('close')}, {quote('volume')} FROM {quote('bars')} WHERE "
            f"{quote('symbol')} = {mark} AND {quote('interval')} = {mark} AND "
            f"{quote('start')} IN ",
            mark,
        )
        """The stored rows at some starts: the statement's head and its parameter mark."""
        self._lookup_array: str | None = None
        """PostgreSQL: the stored rows at the starts of one array parameter. Its planner,
        once the statement was prepared, looked a list of 400 starts up by reading every
        stored row of the symbol (the starts only filtered them): a 200,000-row import
        took 224 s (``start = ANY(array)`` read all of them too, in a table without
        statistics); here each start of one ``bigint`` array is looked up in the index."""
        if dialect.name == "postgresql":
            # Each start looked up in the unique index (the subquery, kept apart by its
            # OFFSET, is one index lookup per start whatever the planner knows).
            self._lookup_array = (
                f"SELECT found.* FROM unnest(CAST({mark} AS BIGINT[])) AS wanted(at), LATERAL "
                f"(SELECT {quote('start')}, {quote('open')}, {quote('high')}, {quote('low')}, "
                f"{quote('close')}, {quote('volume')} FROM {quote('bars')} WHERE "
                f"{quote('symbol')} = {mark} AND {quote('interval')} = {mark} AND "
                f"{quote('start')} = wanted.at OFFSET 0) AS found"
            )
        self._sql: str | None = None
        self._copy: str | None = None
        self._many: tuple[str, str] | None = None
        if dialect.name == "postgresql" and dialect.driver == "psycopg":
            # COPY into a temporary table, then one INSERT ... SELECT ... ON CONFLICT.
            self._copy = names
            self._sql = (
                f"INSERT INTO {quote('bars')} ({names}) SELECT {names} FROM {_STAGE} "
                f"{conflict} DO NOTHING"
            )
        elif dialect.name == "sqlite":
            self._many = (
                f"INSERT INTO {quote('bars')} ({names}) SELECT ?, ?, * FROM (VALUES ",
                f") WHERE true {conflict} DO NOTHING",
            )
        elif dialect.name == "postgresql" and dialect.paramstyle in ("format", "pyformat"):
            self._sql = (
                f"INSERT INTO {quote('bars')} ({names}) "
                f"VALUES ({', '.join([mark] * len(_COLUMNS))}) {conflict} DO NOTHING"
            )

    def add(self, batch: Batch) -> None:
        """Write one chunk of checked rows (in file order)."""
        if not len(batch):
            return
        starts = batch.starts
        # Duplicates within the chunk: keep each start's first row (smallest line).
        if len(starts) > 1 and not (np.diff(starts) > 0).all():
            order = np.lexsort((batch.lines, starts))
            sorted_starts = starts[order]
            first_of_run = np.ones(len(order), dtype=bool)
            first_of_run[1:] = sorted_starts[1:] != sorted_starts[:-1]
            keep = order[first_of_run]
            dup_index = order[~first_of_run]
            if len(dup_index):
                firsts = dict(
                    zip(
                        sorted_starts[first_of_run].tolist(),
                        batch.lines[keep].tolist(),
                        strict=True,
                    )
                )
                self._duplicates(batch, dup_index, firsts)
                batch = batch.take(np.sort(keep))
        # Duplicates of rows of earlier chunks (only parts whose range overlaps are searched:
        # for a file in time order, at most the last one).
        minutes = batch.starts // 60
        low, high = int(minutes.min()), int(minutes.max())
        again = np.zeros(len(minutes), dtype=bool)
        firsts: dict[int, int] = {}
        # Searched in ascending order (rows out of time order: a search of sorted minutes
        # takes a fifth of the time), as 32-bit numbers like the runs' heads (a search of
        # 64-bit ones converts the heads each time).
        order = None if (np.diff(minutes) >= 0).all() else np.argsort(minutes, kind="stable")
        probe = (minutes if order is None else minutes[order]).astype(np.int32)
        for part in self._seen:
            if part.last < low or part.first > high:
                continue
            hit, lines = part.find(probe)
            if order is not None:  # back in the batch's order
                hit[order], lines[order] = hit.copy(), lines.copy()
            hit &= ~again
            if hit.any():
                index = np.flatnonzero(hit)
                firsts.update(zip(batch.starts[index].tolist(), lines[index].tolist(), strict=True))
                again |= hit
        if again.any():
            self._duplicates(batch, np.flatnonzero(again), firsts)
            batch = batch.take(np.flatnonzero(~again))
            minutes = minutes[~again]
        if not len(batch):
            return
        if len(batch) > 1 and not (np.diff(batch.starts) > 0).all():
            order = np.argsort(batch.starts, kind="stable")  # insert in the index's order
            batch = batch.take(order)
            minutes = minutes[order]
        lo, hi = int(batch.starts[0]), int(batch.starts[-1])
        if self.grid is not None:
            self.grid.check(self.report, batch)
        self._note_nonpositive(batch)
        self._seen.append(_Runs.of(minutes, batch.lines))
        self._first = lo if self._first is None else min(self._first, lo)
        self._last = hi if self._last is None else max(self._last, hi)
        self._write(batch, lo, hi)

    def _note_nonpositive(self, batch: Batch) -> None:
        """Count the rows with a price at or below zero (valid rows: low is the least)."""
        odd = np.flatnonzero(batch.lows <= 0)
        if not len(odd):
            return
        j = int(odd[np.argmin(batch.lines[odd])])
        self.report.note_nonpositive(
            len(odd),
            NonPositive(
                int(batch.lines[j]),
                self.report.symbol,
                float(batch.opens[j]),
                float(batch.highs[j]),
                float(batch.lows[j]),
                float(batch.closes[j]),
            ),
        )

    def _duplicates(self, batch: Batch, index: np.ndarray, firsts: dict[int, int]) -> None:
        for i in sorted(index.tolist(), key=lambda i: batch.lines[i]):
            start = int(batch.starts[i])
            stamp = datetime.fromtimestamp(start, UTC).isoformat()
            self.report.reject(
                int(batch.lines[i]),
                DUPLICATE,
                f"{stamp} (first at {self.label} {firsts[start]}; that one is kept)",
            )

    def _write(self, batch: Batch, lo: int, hi: int) -> None:
        report = self.report
        symbol, interval = report.symbol, report.interval
        stored = self._stored(batch.starts, lo, hi)
        if stored:
            present = {start: tuple(values) for start, *values in stored}
            known = np.fromiter(
                (start in present for start in batch.starts.tolist()), dtype=bool, count=len(batch)
            )
            if known.any():
                again = batch.take(np.flatnonzero(known))
                for start, *values in zip(*_values(again), strict=True):
                    report.already_present += 1
                    if present[start] != tuple(values):
                        report.conflicting += 1
                batch = batch.take(np.flatnonzero(~known))
        if not len(batch):
            return
        if self._whole_only is None or self._whole_only:
            self._check_volumes(batch)
        if self._many is not None:
            inserted = self._insert_many(batch)
        else:
            fresh = list(zip(repeat(symbol), repeat(interval), *_values(batch)))
            if self._copy is not None:
                inserted = self._copy_rows(fresh)
            elif self._sql is not None:
                inserted = _count(self.connection.exec_driver_sql(self._sql, fresh), len(fresh))
            else:  # other databases: a plain insert of the rows not stored a moment ago
                self.connection.execute(
                    insert(BARS), [dict(zip(_COLUMNS, r, strict=True)) for r in fresh]
                )
                inserted = len(fresh)
        report.imported += inserted
        report.already_present += len(batch) - inserted

    def _stored(self, starts: np.ndarray, lo: int, hi: int) -> list[Any]:
        """The stored rows (start, OHLCV) at ``starts`` (ascending, in ``[lo, hi]``); perhaps
        others of that span too.

        The span's rows in one query, when the starts fill it; else start by start: rows
        out of time order make chunks that each span most of the file, and reading every row
        of the span (this import's earlier chunks among them) for each chunk cost time and
        memory growing with the square of the file's rows (2M shuffled rows: 80 s, 1.2 GB).
        """
        report = self.report
        key = {"symbol": report.symbol, "interval": report.interval}
        step = INTERVAL_SECONDS.get(report.interval, 60)
        if (hi - lo) // step + 1 <= SPARSE * len(starts):
            return self.connection.execute(_STORED, {**key, "lo": lo, "hi": hi}).all()
        wanted = starts.tolist()
        if self._lookup_array is not None:
            params = (wanted, report.symbol, report.interval)
            return self.connection.exec_driver_sql(self._lookup_array, params).all()
        head, mark = self._lookup
        rows: list[Any] = []
        statements: dict[int, str] = {}
        for at in range(0, len(wanted), LOOKUPS):
            part = wanted[at : at + LOOKUPS]
            sql = statements.get(len(part))
            if sql is None:
                sql = statements[len(part)] = f"{head}({', '.join([mark] * len(part))})"
            params = (report.symbol, report.interval, *part)
            rows += self.connection.exec_driver_sql(sql, params).all()
        return rows

    def _check_volumes(self, batch: Batch) -> None:
        """Refuse fractional volumes that the database would round (an integer
        ``bars.volume`` column of an older database, outside SQLite).

        Raises
        ------
        DataImportError
            Naming the first such row and how to upgrade the database.
        """
        odd = fractional(batch.volumes)
        if not odd.any():
            return
        if self._whole_only is None:
            self._whole_only = whole_volumes_only(self.connection)
        if self._whole_only:
            first = int(np.flatnonzero(odd)[0])
            url = safe_url(self.connection.engine.url.render_as_string(hide_password=False))
            raise DataImportError(
                f"{self.report.path}, {self.label} {int(batch.lines[first])}: volume "
                f"{float(batch.volumes[first])!r} is fractional, and {url} stores whole "
                "volumes only (its bars.volume column is an integer, from before sessionkit "
                "took fractional volumes); upgrade it, keeping its data, with: sessionkit "
                "db init --db URL"
            )

    def _insert_many(self, batch: Batch) -> int:
        """SQLite: insert the rows, :data:`ROWS_PER_STATEMENT` per statement (one multi-row
        ``VALUES`` costs a third of as many one-row statements); returns how many were
        inserted."""
        head, tail = self._many  # type: ignore[misc]
        symbol, interval = self.report.symbol, self.report.interval
        n = len(batch)
        whole = n - n % ROWS_PER_STATEMENT
        inserted = 0
        for lo, hi in ((0, whole), (whole, n)):  # full statements, then the rest in one
            if hi == lo:
                continue
            rows = min(ROWS_PER_STATEMENT, hi - lo)
            count = (hi - lo) // rows
            # One statement's parameters per line: symbol, interval, then the rows' values,
            # made Python ints and floats by numpy column by column.
            params = np.empty((count, 2 + 6 * rows), dtype=object)
            params[:, 0], params[:, 1] = symbol, interval
            for j, col in enumerate(_arrays(batch)):
                params[:, 2 + j :: 6] = col[lo:hi].reshape(count, rows)
            sql = head + ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows) + tail
            result = self.connection.exec_driver_sql(sql, list(map(tuple, params.tolist())))
            inserted += _count(result, hi - lo)
        return inserted

    def _copy_rows(self, rows: list[tuple]) -> int:
        """PostgreSQL (psycopg): COPY the rows into a temporary table, then insert the new
        ones; returns how many were inserted."""
        if not self._staged:
            self.connection.exec_driver_sql(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (symbol varchar(32), "
                '"interval" varchar(8), start bigint, open double precision, high double '
                "precision, low double precision, close double precision, volume double precision) "
                "ON COMMIT DROP"
            )
            self._staged = True
        # (every symbol of a file: the sinks of one connection share the table)
        self.connection.exec_driver_sql(f"TRUNCATE {_STAGE}")
        raw = self.connection.connection.driver_connection
        statement = f"COPY {_STAGE} ({self._copy}) FROM STDIN"
        with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(row)
        return int(self.connection.exec_driver_sql(self._sql or "").rowcount)

    def finish(self) -> None:
        """Record the first and last start in the report."""
        if self._first is not None and self._last is not None:
            self.report.first_start = datetime.fromtimestamp(self._first, UTC)
            self.report.last_start = datetime.fromtimestamp(self._last, UTC)


class SymbolRouter:
    """Writes the checked rows of a file of many symbols, each to its own symbol: an import
    of every symbol (no ``--symbol``), in one pass over the file.

    Each symbol has its own :class:`BarSink` (duplicates, rows already present) and its
    own report (:attr:`ImportReport.symbols`); a row whose symbol breaks the symbol rule
    (empty, a space, too long...) is rejected as :data:`BAD_SYMBOL`. A file in time order
    holds every symbol in every chunk: rows are held per symbol until
    :data:`ROUTED_ROWS` rows wait, then each symbol's are written at once (a statement
    per symbol and chunk would cost more than the rows themselves).
    """

    def __init__(
        self,
        connection: Connection,
        report: ImportReport,
        label: str = "line",
        grid: SessionGrid | None = None,
    ):
        self.connection = connection
        self.report = report
        self.label = label
        self.grid = grid
        if grid is not None:
            report.grid_exchanges = grid.exchanges
        self.sinks: dict[str, BarSink] = {}
        """Each symbol's sink."""
        self.invalid: dict[str, str] = {}
        """Symbols that break the symbol rule, and why (their rows are rejected)."""
        self._held: dict[str, list[Batch]] = {}
        self._waiting = 0

    def add(self, batch: Batch) -> None:
        """Route one chunk of checked rows (with their symbols) to their symbols."""
        if not len(batch):
            return
        assert batch.symbols is not None  # the readers name each row's symbol
        names, inverse = np.unique(batch.symbols.astype(str), return_inverse=True)
        if len(names) == 1:
            parts = [(str(names[0]), batch)]
        else:
            order = np.argsort(inverse, kind="stable")
            bounds = np.cumsum(np.bincount(inverse, minlength=len(names)))
            parts = []
            low = 0
            for name, high in zip(names.tolist(), bounds.tolist(), strict=True):
                parts.append((name, batch.take(order[low:high])))
                low = high
        held = self._held
        bad: list[tuple[int, str]] = []
        for name, part in parts:
            if name not in self.sinks and not self._open(name):
                why = self.invalid[name]
                bad += ((line, why) for line in part.lines.tolist())
                continue
            held.setdefault(name, []).append(part)
            self._waiting += len(part)
        for line, why in sorted(bad):
            self.report.reject(line, BAD_SYMBOL, why)
        if self._waiting >= ROUTED_ROWS:
            self._write()

    def _open(self, name: str) -> bool:
        """Give ``name`` a sink and a report, if it is a valid symbol (else note why not)."""
        if name in self.invalid:
            return False
        try:
            check_symbol(name)
        except InvalidSymbolError as exc:
            self.invalid[name] = f"{name!r}: {exc.problem}"
            return False
        parent = self.report
        report = ImportReport(
            path=parent.path,
            symbol=name,
            interval=parent.interval,
            reader=parent.reader,
            line_label=parent.line_label,
        )
        assert parent.symbols is not None
        parent.symbols[name] = report
        self.sinks[name] = BarSink(self.connection, report, self.label, self.grid)
        return True

    def _write(self) -> None:
        for name, parts in self._held.items():
            sink = self.sinks[name]
            batch = parts[0] if len(parts) == 1 else Batch.concat(parts)
            sink.report.rows_read += len(batch)
            sink.add(batch)
        self._held = {}
        self._waiting = 0

    def finish(self) -> list[str]:
        """Write what is held, total the symbols' reports into the file's; returns the
        symbols imported (valid rows), in name order."""
        self._write()
        report = self.report
        assert report.symbols is not None
        examples: list[RejectedRow] = list(report.examples.get(DUPLICATE, []))
        for name, each in sorted(report.symbols.items()):
            sink = self.sinks[name]
            sink.finish()
            report.imported += each.imported
            report.already_present += each.already_present
            report.conflicting += each.conflicting
            if each.off_grid_example is not None:
                report.note_off_grid(each.off_grid, each.off_grid_example)
            if each.nonpositive_example is not None:
                report.note_nonpositive(each.nonpositive, each.nonpositive_example)
            for reason, count in each.rejected.items():  # duplicates
                report.rejected[reason] = report.rejected.get(reason, 0) + count
                examples += (
                    RejectedRow(ex.line, ex.reason, f"{name} {ex.detail}")
                    for ex in each.examples[reason]
                )
            if each.first_start is not None and (
                report.first_start is None or each.first_start < report.first_start
            ):
                report.first_start = each.first_start
            if each.last_start is not None and (
                report.last_start is None or each.last_start > report.last_start
            ):
                report.last_start = each.last_start
        if examples:
            report.examples[DUPLICATE] = sorted(examples, key=lambda ex: ex.line)[:MAX_EXAMPLES]
        report.symbols = dict(sorted(report.symbols.items()))
        return [name for name, each in report.symbols.items() if each.valid]


ROUTED_ROWS = 500_000
"""Rows an import of every symbol holds before writing them, symbol by symbol."""


# ---------------------------------------------------------------------------------------
# Files


def check_file(path: Path) -> None:
    """Check that ``path`` is an existing, readable, non-empty regular file.

    Raises
    ------
    DataImportError
        Naming the file and what is wrong.
    """
    if not path.exists():
        raise DataImportError(f"file {path} does not exist")
    if not path.is_file():
        raise DataImportError(f"{path} is not a file")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise DataImportError(f"cannot read {path}: {exc.strerror or exc}") from None


def compression_of(path: Path) -> Literal["gzip", "zstd"] | None:
    """The compression of a file, from its name (``.gz``, ``.zst``)."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return "gzip"
    if suffix in (".zst", ".zstd"):
        return "zstd"
    return None


def open_binary(path: Path) -> IO[bytes]:
    """Open a file for reading, decompressing ``.gz`` and ``.zst`` files.

    Raises
    ------
    DataImportError
        If the file cannot be read, or a ``.zst`` file needs a package that is missing.
    """
    compression = compression_of(path)
    try:
        if compression == "gzip":
            return gzip.open(path, "rb")
        if compression == "zstd":
            try:
                import zstandard
            except ImportError:
                try:
                    import pyarrow as pa
                except ImportError:
                    raise DataImportError(
                        f"{path}: reading .zst files needs pyarrow or zstandard "
                        "(the arrow extra: pip install -e '.[arrow]' in the sessionkit checkout)"
                    ) from None
                return pa.input_stream(str(path), compression="zstd")
            return zstandard.ZstdDecompressor().stream_reader(path.open("rb"), closefd=True)
        return path.open("rb")
    except OSError as exc:
        raise DataImportError(f"cannot read {path}: {exc.strerror or exc}") from None


def delimiter_of(head: bytes) -> str:
    """The field delimiter of a CSV file whose first bytes are ``head``: a comma, unless
    its header line has none and has tabs (MetaTrader's exports) or semicolons."""
    first = head.split(b"\n", 1)[0]
    if b"," in first:
        return ","
    for delimiter in ("\t", ";"):
        if delimiter.encode() in first:
            return delimiter
    return ","


NUMBER_STYLE_BYTES = 1 << 16
"""Bytes at the start of a semicolon-separated file that tell whether its numbers have
decimal commas (both readers look at the same ones)."""


_COMMA_DECIMAL = re.compile(r"\s*[+-]?(?:\d*,(?:\d{0,2}|\d{4,})|\d{1,3}(?:\.\d{3})+,\d*)\s*")
"""A number that has a decimal comma, not a thousands one: ``1,5``, ``1,0850``, ``1.234,5``."""
_POINT_DECIMAL = re.compile(
    r"\s*[+-]?(?:\d*\.(?:\d{0,2}|\d{4,})|\d{1,3}(?:,\d{3})+\.\d*)(?:[eE][+-]?\d+)?\s*"
)
"""A number that has a decimal point, not a thousands one: ``1.5``, ``1.0850``."""


def decimal_comma_of(path: Path, delimiter: str, columns: Columns) -> bool:
    """Whether a CSV file's numbers have decimal commas (``1,0850``): a semicolon-separated
    file whose first rows (its first :data:`NUMBER_STYLE_BYTES`) have more prices and
    volumes with a decimal comma than with a decimal point (``1,000`` and ``1.000`` tell
    neither: with as many of each, any comma says decimal commas). Its dots then only group
    thousands (see :func:`comma_number`); in any other file a comma is no part of a number.

    Raises
    ------
    DataImportError
        If the file cannot be read.
    """
    if delimiter != ";":
        return False
    head = read_head(path, NUMBER_STYLE_BYTES)
    lines = head.decode("utf-8", "replace").splitlines()
    if len(head) >= NUMBER_STYLE_BYTES:
        lines = lines[:-1]  # (perhaps cut)
    width = len(columns.names)
    numbers = columns.positions[-5:]
    comma = point = 0
    commas = False
    for row in csv.reader(lines[1 if columns.header else 0 :], delimiter=delimiter):
        if len(row) != width:
            continue
        for i in numbers:
            text = row[i]
            if "," in text:
                commas = True
                comma += _COMMA_DECIMAL.fullmatch(text) is not None
            if "." in text:
                point += _POINT_DECIMAL.fullmatch(text) is not None
    return comma > point or (comma == point and commas)


def read_head(path: Path, size: int = 8192) -> bytes:
    """The first ``size`` bytes of a file, decompressed.

    Raises
    ------
    DataImportError
        If the file cannot be read or decompressed.
    """
    try:
        with open_binary(path) as handle:
            return handle.read(size)
    except DataImportError:
        raise
    except (OSError, EOFError, ValueError) as exc:
        raise DataImportError(f"cannot read {path}: {exc}") from None
    except Exception as exc:  # zstandard / pyarrow errors for corrupt data
        raise DataImportError(f"cannot decompress {path}: {exc}") from None


def text_stream(path: Path) -> io.TextIOWrapper:
    """The file as UTF-8 text (BOM removed), decompressed, for the ``csv`` module: a byte
    that is not UTF-8 is read as a lone surrogate (``surrogateescape``), so that the row
    holding it can be rejected (:func:`undecodable`) and the others read."""
    return io.TextIOWrapper(
        open_binary(path), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )


# ---------------------------------------------------------------------------------------
# The import


Reader = Callable[[Path, ImportReport, RowRules, Mapping[str, str]], Iterator[Batch]]
"""A format's reader: yields checked batches; sets the report's reader and columns."""


def prepare(symbol: str, interval: str) -> str:
    """Check a symbol and interval for import; return the symbol.

    Raises
    ------
    InvalidSymbolError, DataImportError
        If the symbol breaks the symbol rule or the interval is unknown.
    """
    check_symbol(symbol)
    if interval not in INTERVALS:
        raise DataImportError(f"unknown interval {interval!r} (known: {', '.join(INTERVALS)})")
    return symbol


def run_import(
    engine: Engine,
    path: Path,
    symbol: str | Sequence[str] | None,
    interval: str,
    reader: Reader,
    *,
    tz: str | tzinfo | None = None,
    ambiguous: Ambiguous = "reject",
    columns: Mapping[str, str] | None = None,
    description: str | None = None,
    source: str | None = None,
    synthetic: bool | None = None,
    line_label: str = "line",
) -> ImportReport:
    """Import one file with ``reader``, in one transaction: the rows of ``symbol``, or
    (``symbol`` None) every symbol of a file with a column of symbols, each row to its own
    (a list of symbols: those symbols' rows, each to its own).

    Raises
    ------
    DataImportError, InvalidSymbolError
        For a bad file, symbol, interval, zone or column mapping; with ``symbol`` None, for
        a file without a column of symbols.
    DatabaseError
        If the rows cannot be written.
    """
    started = _time.perf_counter()
    wanted: frozenset[str] | None = None
    if symbol is not None and not isinstance(symbol, str):
        wanted = frozenset(prepare(s, interval) for s in symbol)
        if not wanted:
            raise DataImportError("no symbol given (an empty list)")
        symbol = None
    if symbol is not None:
        prepare(symbol, interval)
    elif interval not in INTERVALS:
        raise DataImportError(f"unknown interval {interval!r} (known: {', '.join(INTERVALS)})")
    if ambiguous not in ("reject", "earliest", "latest"):
        raise DataImportError(f"ambiguous={ambiguous!r}: use reject, earliest or latest")
    zone = zone_of(tz)
    check_file(path)
    report = ImportReport(
        path=path,
        symbol=symbol or ",".join(sorted(wanted or ())),
        interval=interval,
        line_label=line_label,
        symbols=None if symbol is not None else {},
        wanted=wanted,
    )
    rules = RowRules(report, path, zone, ambiguous)
    url = safe_url(engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as connection:
            grid = SessionGrid.of(connection, interval)
            sink: BarSink | SymbolRouter = (
                BarSink(connection, report, line_label, grid)
                if symbol is not None
                else SymbolRouter(connection, report, line_label, grid)
            )
            for batch in prefetched(reader(path, report, rules, columns or {})):
                sink.add(batch)
            if report.other_symbols and report.rows_read == report.other_symbol_rows:
                raise _no_row_of(report)  # (rolled back: nothing was written anyway)
            names = sink.finish() if isinstance(sink, SymbolRouter) else [report.symbol]
            if isinstance(sink, BarSink):
                sink.finish()
            if not report.valid:  # (rolled back: nothing was written, no symbol made)
                raise nothing_imported([report])
            for name in names:
                upsert_symbol(connection, name, path, description, source, synthetic)
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"cannot import {path} into {url}: {getattr(exc, 'orig', exc)}"
        ) from None
    report.seconds = _time.perf_counter() - started
    return report


def nothing_imported(reports: Sequence[ImportReport]) -> DataImportError:
    """The error of an import of a file none of whose rows is valid (``reports``: the
    file's, one per symbol for a DBN file): its commonest rejection with an example, or
    that it has no rows at all (a :class:`NothingImportedError`: an import of several
    files goes on with the others). When the commonest is a naive time without ``--tz``
    (:data:`NO_OFFSET`), a plain :class:`DataImportError` saying to give ``--tz``, which
    stops an import of several files, as the command's mistake."""
    first = reports[0]
    path, label = first.path, first.line_label
    rows = sum(r.rows_read - r.other_symbol_rows for r in reports)
    skipped = sum(r.other_symbol_rows for r in reports)
    noun = {"line": "rows of bars", "row": "rows", "record": "records"}.get(label, "rows")
    if not rows:
        if skipped:
            return NothingImportedError(
                f"{path}: nothing imported: its {skipped:,} {noun} are of other symbols"
            )
        only = " (only a header line)" if label == "line" else ""
        return NothingImportedError(f"{path} has no {noun}{only}: nothing imported")
    counts: dict[str, int] = {}
    examples: dict[str, RejectedRow] = {}
    for each in reports:
        for reason, count in each.rejected.items():
            counts[reason] = counts.get(reason, 0) + count
            ex = each.examples.get(reason)
            if ex and (reason not in examples or ex[0].line < examples[reason].line):
                examples[reason] = ex[0]
    rank = {reason: i for i, reason in enumerate(REASONS)}
    reason = min(counts, key=lambda r: (-counts[r], rank.get(r, len(rank))))
    example = examples[reason]
    rest = sum(counts.values()) - counts[reason]
    text = (
        f"{path}: nothing imported: all {rows:,} {noun} rejected, "
        f"{'all' if not rest else f'{counts[reason]:,}'} as {reason!r} (e.g. {label} "
        f"{example.line}: {example.detail})"
    )
    if rest:
        text += f", {rest:,} for other reasons"
    if reason == NO_OFFSET:
        # Naive times and no --tz: the command's mistake more than the file's (as it was
        # when the first naive time stopped the import), and it stops the command.
        return DataImportError(
            f"{path}, {label} {example.line}: timestamp {example.detail} has no UTC offset; "
            "give the file's time zone (--tz ZONE, e.g. --tz America/New_York)"
        )
    if reason == BAD_TIMESTAMP:
        text += f"; {TIMESTAMP_FORMATS}"
    elif reason == NOT_UTF8:
        text += "; convert the file to UTF-8 (iconv -f latin1 -t utf-8 if it is Latin-1)"
    return NothingImportedError(text)


def _no_row_of(report: ImportReport) -> DataImportError:
    """The error of an import whose ``--symbol`` is in none of the file's rows."""
    listed = report.others_listed("{symbol} ({rows:,} rows)")
    column = report.columns.get("symbol", "symbol")
    if report.wanted is not None:
        return DataImportError(
            f"{report.path}: --symbol {report.symbol} names none of its rows: its "
            f"{column!r} column holds {listed}"
        )
    return DataImportError(
        f"{report.path}: --symbol {report.symbol} names none of its rows: its {column!r} "
        f"column holds {listed}; give one of those, or --columns symbol= to read every row "
        f"as {report.symbol}'s"
    )


def prefetched(batches: Iterator[Batch], depth: int = 2) -> Iterator[Batch]:
    """Run a reader in its own thread, ``depth`` batches ahead of the database writes.

    Reading and checking (pyarrow, numpy) and ``executemany`` (SQLite) release the GIL,
    so they overlap. The ``import_reader`` thread lives only during one import: it ends when
    the reader is exhausted or fails (its exception is raised here), or within a block's
    parsing time after the consumer stops early. Report fields have one writer each: the
    reader counts rows read and rejections by the row rules, the writer everything else.
    """
    channel: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                channel.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
        finally:
            batches.close()  # type: ignore[attr-defined]

    thread = threading.Thread(target=produce, name="import_reader", daemon=True)
    thread.start()
    try:
        while True:
            item = channel.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def upsert_symbol(
    connection: Connection,
    symbol: str,
    path: Path,
    description: str | None,
    source: str | None,
    synthetic: bool | None,
) -> None:
    """Create the symbol's row, or update the given fields of the stored one."""
    exists = connection.execute(
        select(SymbolInfo.symbol).where(SymbolInfo.symbol == symbol)
    ).first()
    values: dict[str, Any] = {}
    if description is not None:
        values["description"] = description
    if source is not None:
        values["source"] = source
    if synthetic is not None:
        values["synthetic"] = synthetic
    if exists:
        if values:
            connection.execute(
                update(SymbolInfo).where(SymbolInfo.symbol == symbol).values(**values)
            )
        return
    if connection.dialect.name in ("sqlite", "postgresql"):
        module = __import__(f"sqlalchemy.dialects.{connection.dialect.name}", fromlist=["insert"])
        statement = module.insert(SymbolInfo).on_conflict_do_nothing()
    else:  # pragma: no cover - other databases
        statement = insert(SymbolInfo)
    connection.execute(
        statement.values(
            symbol=symbol,
            description=values.get("description", ""),
            source=values.get("source", f"imported from {path.name}"),
            synthetic=values.get("synthetic", False),
        )
    )


Engine_ = Literal["auto", "arrow", "csv"]


def file_format(path: Path) -> Literal["csv", "parquet", "dbn"]:
    """The format of a bars file, from its name (``.csv[.gz|.zst]``, ``.parquet``, ``.dbn[.zst]``)."""
    name = path.name.lower()
    for suffix in (".gz", ".zst", ".zstd"):
        name = name.removesuffix(suffix)
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".dbn"):
        return "dbn"
    return "csv"


def arrow_available() -> bool:
    """True when pyarrow (the ``sessionkit[arrow]`` extra) is installed."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.csv  # noqa: F401
    except ImportError:
        return False
    return True


def import_bars(
    engine: Engine,
    path: str | Path,
    symbol: str | Sequence[str] | None,
    interval: str,
    tz: str | tzinfo | None = None,
    *,
    ambiguous: Ambiguous = "reject",
    columns: Mapping[str, str] | None = None,
    description: str | None = None,
    source: str | None = None,
    synthetic: bool | None = None,
    reader: Engine_ = "auto",
) -> ImportReport:
    """Import a CSV (``.csv``, ``.csv.gz``, ``.zst``) or Parquet file of bars: one
    symbol's, or (``symbol`` None) every symbol of a file with a column of symbols, or (a
    list) those symbols of it.

    CSV files are read with pyarrow when it is installed (``reader="auto"``), else (or with
    ``reader="csv"``) with the ``csv`` module; both give the same rows and report. Parquet
    files need pyarrow. Parameters are those of
    :func:`~sessionkit.engine.store.import_csv.import_csv`.

    Raises
    ------
    DataImportError, InvalidSymbolError, DatabaseError
        As :func:`~sessionkit.engine.store.import_csv.import_csv`; also when a Parquet file
        or ``reader="arrow"`` needs pyarrow and it is missing.
    """
    path = Path(path)
    kind = file_format(path)
    if kind == "dbn":
        raise DataImportError(f"{path} is a Databento DBN file: import it with import_dbn")
    options: dict[str, Any] = {
        "tz": tz,
        "ambiguous": ambiguous,
        "columns": columns,
        "description": description,
        "source": source,
        "synthetic": synthetic,
    }
    use_arrow = reader == "arrow" or (reader == "auto" and arrow_available())
    if (kind == "parquet" or reader == "arrow") and not arrow_available():
        raise DataImportError(
            f"{path}: reading {'Parquet' if kind == 'parquet' else 'CSV with pyarrow'} needs "
            "pyarrow: pip install -e '.[arrow]' in the sessionkit checkout"
        )
    if kind == "parquet":
        from .import_arrow import read_parquet

        return run_import(engine, path, symbol, interval, read_parquet, line_label="row", **options)
    from .import_csv import read_csv_module

    if use_arrow:
        from .import_arrow import NeedsReference, read_csv_arrow

        try:
            return run_import(engine, path, symbol, interval, read_csv_arrow, **options)
        except NeedsReference:
            pass  # rolled back; the csv module reads what pyarrow cannot
    return run_import(engine, path, symbol, interval, read_csv_module, **options)
