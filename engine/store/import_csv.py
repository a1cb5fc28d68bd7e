"""Import OHLCV bars from a CSV file into the ``bars`` table, with a report of rejected rows.

Used by the ``sessionkit db import`` command and the sample database's build script, on the
caller's (main) thread; no engine thread calls it.

The file has the header ``timestamp,open,high,low,close,volume``. Timestamps are bar start
times in ISO-8601, with a UTC offset (``2011-01-03T09:30:00-05:00``) or naive together with
an IANA zone (``tz="America/New_York"``). A bad row is rejected, counted under its reason
and kept as an example with its line number; the good rows are imported. Rows whose
(symbol, interval, start) is already stored are counted as already present and left as
they are, so importing a file twice changes nothing.

Parsing uses the ``csv`` module and :meth:`datetime.fromisoformat`; rows are written with
one bulk Core ``executemany`` in one transaction (never an ORM object per row).
"""

from __future__ import annotations

import csv
import math
import time as _time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import BigInteger, Engine, Float, String, column, insert, select, table, update
from sqlalchemy.exc import SQLAlchemyError

from ..core.bar import INTERVALS
from ..errors import DatabaseError, DataImportError
from .db import SymbolInfo, safe_url

HEADER = ("timestamp", "open", "high", "low", "close", "volume")
"""The columns a bars CSV must have (in any order; names are case-insensitive)."""

MAX_EXAMPLES = 5
"""How many example rows are kept per rejection reason."""

_CHUNK = 50_000

# The bars table as plain Core columns: ``start`` is raw UTC epoch seconds, so inserting
# needs no per-row type conversion. Same table and column names as db.BarRecord.
_BARS = table(
    "bars",
    column("symbol", String),
    column("interval", String),
    column("start", BigInteger),
    column("open", Float),
    column("high", Float),
    column("low", Float),
    column("close", Float),
    column("volume", BigInteger),
)

# Rejection reasons, in the order a row is checked.
MISSING = "missing value"
NON_NUMERIC = "non-numeric value"
NOT_FINITE = "NaN or infinite value"
FRACTIONAL_VOLUME = "volume is not a whole number"
BAD_TIMESTAMP = "unparseable timestamp"
NOT_WHOLE_MINUTE = "timestamp not on a whole minute"
NONEXISTENT_TIME = "local time does not exist (DST change)"
HIGH_BELOW_LOW = "high < low"
OUTSIDE_RANGE = "open or close outside [low, high]"
NEGATIVE_VOLUME = "negative volume"
DUPLICATE = "duplicate timestamp"
WRONG_FIELD_COUNT = "wrong number of fields"


@dataclass(frozen=True)
class RejectedRow:
    """One rejected row: its line number in the file, the reason and a detail."""

    line: int
    reason: str
    detail: str


@dataclass
class ImportReport:
    """What :func:`import_csv` did with a file.

    Attributes
    ----------
    path
        The file imported.
    symbol, interval
        Where its bars went.
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
    """

    path: Path
    symbol: str
    interval: str
    rows_read: int = 0
    imported: int = 0
    already_present: int = 0
    conflicting: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[RejectedRow]] = field(default_factory=dict)
    first_start: datetime | None = None
    last_start: datetime | None = None
    seconds: float = 0.0

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

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "path": str(self.path),
            "symbol": self.symbol,
            "interval": self.interval,
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
                        {"line": ex.line, "detail": ex.detail} for ex in self.examples[reason]
                    ],
                }
                for reason, count in self.rejected.items()
            ],
            "first_start": self.first_start.isoformat() if self.first_start else None,
            "last_start": self.last_start.isoformat() if self.last_start else None,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """A one-line plain-text summary."""
        text = (
            f"{self.path}: {self.rows_read:,} rows read, {self.imported:,} imported, "
            f"{self.already_present:,} already present, {self.rejected_total:,} rejected "
            f"({self.symbol} {self.interval})"
        )
        if self.conflicting:
            text += f"; {self.conflicting:,} already-present rows differ from the stored values"
        return text

    def __rich__(self) -> Any:
        """Readable tables for ``rich``: the totals, then the rejections with examples."""
        from rich.console import Group
        from rich.table import Table

        totals = Table(
            title=f"Import of {self.path.name} as {self.symbol} {self.interval}", min_width=60
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
        span = "-"
        if self.first_start and self.last_start:
            span = f"{self.first_start:%Y-%m-%d %H:%M} .. {self.last_start:%Y-%m-%d %H:%M} UTC"
        totals.caption = f"bars {span}; {self.seconds:.2f} s"
        if not self.rejected:
            return totals
        rejected = Table(title="Rejected rows", min_width=60)
        rejected.add_column("reason", style="red")
        rejected.add_column("count", justify="right")
        rejected.add_column("first examples (line: detail)", overflow="fold")
        for reason, count in self.rejected.items():
            examples = "\n".join(f"{ex.line}: {ex.detail}" for ex in self.examples[reason])
            rejected.add_row(reason, f"{count:,}", examples)
        return Group(totals, rejected)


def _read_header(path: Path) -> None:
    """Check that ``path`` is a readable, non-empty text file (before the csv module reads it)."""
    if not path.exists():
        raise DataImportError(f"file {path} does not exist")
    if not path.is_file():
        raise DataImportError(f"{path} is not a file")
    try:
        with path.open("rb") as handle:
            head = handle.read(8192)
    except OSError as exc:
        raise DataImportError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not head.strip():
        raise DataImportError(f"{path} is empty (expected a CSV header: {','.join(HEADER)})")
    if b"\x00" in head:
        raise DataImportError(f"{path} is a binary file, not a CSV file of bars")


def _column_order(path: Path, header: list[str] | None) -> list[int]:
    expected = ",".join(HEADER)
    if header is None:
        raise DataImportError(f"{path} is empty (expected a CSV header: {expected})")
    names = [name.strip().lower().lstrip("\ufeff") for name in header]
    missing = [name for name in HEADER if name not in names]
    extra = [name for name in names if name not in HEADER]
    if missing or extra or len(set(names)) != len(names):
        shown = ",".join(header)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if extra:
            problems.append(f"unexpected {', '.join(repr(n) for n in extra)}")
        if not problems:
            problems.append("repeated columns")
        raise DataImportError(
            f"{path} is not a CSV file of bars: its header {shown!r} does not match "
            f"{expected!r} ({'; '.join(problems)})"
        )
    return [names.index(name) for name in HEADER]


def _zone(tz: str | ZoneInfo | None) -> ZoneInfo | None:
    if tz is None or isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataImportError(
            f"unknown time zone {tz!r} (use an IANA name such as America/New_York)"
        ) from None


def _parse_rows(
    path: Path, report: ImportReport, zone: ZoneInfo | None
) -> dict[int, tuple[float, float, float, float, int]]:
    """Parse and check every row; return the valid ones by UTC start (epoch seconds)."""
    valid: dict[int, tuple[float, float, float, float, int]] = {}
    first_line: dict[int, int] = {}
    fromiso = datetime.fromisoformat
    isfinite = math.isfinite
    reject = report.reject
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            order = _column_order(path, next(reader, None))
            identity = order == [0, 1, 2, 3, 4, 5]
            for row in reader:
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                report.rows_read += 1
                if len(row) != 6:
                    if len(row) < 6:
                        reject(line, MISSING, f"{len(row)} of 6 fields: {','.join(row)[:60]}")
                    else:
                        reject(line, WRONG_FIELD_COUNT, f"{len(row)} fields, expected 6")
                    continue
                if identity:
                    ts_text, o_text, h_text, l_text, c_text, v_text = row
                else:
                    ts_text, o_text, h_text, l_text, c_text, v_text = (row[i] for i in order)
                # numbers
                try:
                    o = float(o_text)
                    h = float(h_text)
                    lo = float(l_text)
                    c = float(c_text)
                    try:
                        volume = int(v_text)
                        vol_f = 0.0
                    except ValueError:
                        vol_f = float(v_text)
                        volume = None
                except ValueError:
                    texts = (o_text, h_text, l_text, c_text, v_text)
                    names = HEADER[1:]
                    empty = [n for n, t in zip(names, texts, strict=True) if not t.strip()]
                    if empty:
                        reject(line, MISSING, f"empty {', '.join(empty)}")
                    else:
                        bad = []
                        for n, t in zip(names, texts, strict=True):
                            try:
                                float(t)
                            except ValueError:
                                bad.append(f"{n}={t.strip()[:20]!r}")
                        reject(line, NON_NUMERIC, ", ".join(bad))
                    continue
                if not (
                    isfinite(o) and isfinite(h) and isfinite(lo) and isfinite(c) and isfinite(vol_f)
                ):
                    reject(line, NOT_FINITE, f"{o_text},{h_text},{l_text},{c_text},{v_text}")
                    continue
                if volume is None:
                    if not vol_f.is_integer():
                        reject(line, FRACTIONAL_VOLUME, f"volume={v_text.strip()}")
                        continue
                    volume = int(vol_f)
                # timestamp
                try:
                    start = fromiso(ts_text.strip())
                except ValueError:
                    if ts_text.strip():
                        reject(line, BAD_TIMESTAMP, repr(ts_text.strip()[:40]))
                    else:
                        reject(line, MISSING, "empty timestamp")
                    continue
                if start.tzinfo is None:
                    if zone is None:
                        raise DataImportError(
                            f"{path}, line {line}: timestamp {ts_text.strip()!r} has no UTC "
                            "offset; give the file's time zone (--tz ZONE, e.g. "
                            "--tz America/New_York)"
                        )
                    local = start
                    start = local.replace(tzinfo=zone)
                    epoch = int(start.timestamp())
                    if datetime.fromtimestamp(epoch, zone).replace(tzinfo=None) != local:
                        reject(line, NONEXISTENT_TIME, f"{ts_text.strip()} in {zone.key}")
                        continue
                else:
                    epoch = int(start.timestamp())
                if start.second or start.microsecond:
                    reject(line, NOT_WHOLE_MINUTE, ts_text.strip())
                    continue
                # bar consistency
                if h < lo:
                    reject(line, HIGH_BELOW_LOW, f"high {h_text} < low {l_text}")
                    continue
                if not (lo <= o <= h and lo <= c <= h):
                    reject(
                        line,
                        OUTSIDE_RANGE,
                        f"open {o_text}, close {c_text}, low {l_text}, high {h_text}",
                    )
                    continue
                if volume < 0:
                    reject(line, NEGATIVE_VOLUME, f"volume={v_text.strip()}")
                    continue
                if epoch in valid:
                    reject(
                        line,
                        DUPLICATE,
                        f"{ts_text.strip()} (first at line {first_line[epoch]}; that one is kept)",
                    )
                    continue
                valid[epoch] = (o, h, lo, c, volume)
                first_line[epoch] = line
    except UnicodeDecodeError:
        raise DataImportError(f"{path} is not a UTF-8 text CSV file of bars") from None
    except csv.Error as exc:
        raise DataImportError(
            f"{path} is not a readable CSV file (line {reader.line_num}): {exc}"
        ) from None
    except OSError as exc:
        raise DataImportError(f"cannot read {path}: {exc.strerror or exc}") from None
    return valid


def import_csv(
    engine: Engine,
    path: str | Path,
    symbol: str,
    interval: str,
    tz: str | ZoneInfo | None = None,
    *,
    description: str | None = None,
    source: str | None = None,
    synthetic: bool | None = None,
) -> ImportReport:
    """Import the bars of a CSV file for one symbol and interval.

    Parameters
    ----------
    engine
        Engine of a database that has sessionkit's schema.
    path
        The CSV file (header ``timestamp,open,high,low,close,volume``).
    symbol, interval
        The symbol the bars belong to and their interval (``1m``, ``5m``, ...).
    tz
        IANA zone of naive timestamps; timestamps with an offset keep theirs.
    description, source, synthetic
        Values for the ``symbols`` row. ``None`` keeps the stored value (a new row gets an
        empty description, ``source`` naming the file and ``synthetic`` false).

    Returns
    -------
    ImportReport
        Counts of imported, already present and rejected rows, with examples.

    Raises
    ------
    DataImportError
        If the file is missing, empty, binary or not a bars CSV, a timestamp is naive and
        no ``tz`` is given, or the symbol, interval or zone is invalid.
    DatabaseError
        If the rows cannot be written.
    """
    started = _time.perf_counter()
    path = Path(path)
    symbol = symbol.strip()
    if not symbol or len(symbol) > 32:
        raise DataImportError(f"invalid symbol {symbol!r} (1 to 32 characters)")
    if interval not in INTERVALS:
        raise DataImportError(f"unknown interval {interval!r} (known: {', '.join(INTERVALS)})")
    zone = _zone(tz)
    _read_header(path)
    report = ImportReport(path=path, symbol=symbol, interval=interval)
    valid = _parse_rows(path, report, zone)

    url = safe_url(engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as connection:
            if valid:
                lo, hi = min(valid), max(valid)
                report.first_start = datetime.fromtimestamp(lo, UTC)
                report.last_start = datetime.fromtimestamp(hi, UTC)
                stored = connection.execute(
                    select(
                        _BARS.c.start,
                        _BARS.c.open,
                        _BARS.c.high,
                        _BARS.c.low,
                        _BARS.c.close,
                        _BARS.c.volume,
                    )
                    .where(_BARS.c.symbol == symbol)
                    .where(_BARS.c.interval == interval)
                    .where(_BARS.c.start >= lo)
                    .where(_BARS.c.start <= hi)
                )
                for start, *values in stored:
                    row = valid.pop(start, None)
                    if row is not None:
                        report.already_present += 1
                        if tuple(values) != row:
                            report.conflicting += 1
                rows = [
                    {
                        "symbol": symbol,
                        "interval": interval,
                        "start": start,
                        "open": o,
                        "high": h,
                        "low": lo_,
                        "close": c,
                        "volume": v,
                    }
                    for start, (o, h, lo_, c, v) in sorted(valid.items())
                ]
                statement = insert(_BARS)
                for offset in range(0, len(rows), _CHUNK):
                    connection.execute(statement, rows[offset : offset + _CHUNK])
                report.imported = len(rows)
            _upsert_symbol(connection, symbol, path, description, source, synthetic)
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"cannot import {path} into {url}: {getattr(exc, 'orig', exc)}"
        ) from None
    report.seconds = _time.perf_counter() - started
    return report


def _upsert_symbol(
    connection: Any,
    symbol: str,
    path: Path,
    description: str | None,
    source: str | None,
    synthetic: bool | None,
) -> None:
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
    connection.execute(
        insert(SymbolInfo).values(
            symbol=symbol,
            description=values.get("description", ""),
            source=values.get("source", f"imported from {path.name}"),
            synthetic=values.get("synthetic", False),
        )
    )
