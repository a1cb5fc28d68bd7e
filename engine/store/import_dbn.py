"""Import OHLCV bars from Databento DBN files (the ``sessionkit[databento]`` extra).

Used by ``sessionkit db import FILE.dbn`` on the caller's (main) thread; no engine thread
calls it. The file is read with Databento's own client (:class:`databento.DBNStore`,
``.dbn`` or zstd-compressed ``.dbn.zst``), :data:`~.importing.CHUNK` records at a time.

- Schemas ``ohlcv-1m`` and ``ohlcv-1h`` (sessionkit's ``1m`` and ``1h``); ``ohlcv-1s`` and
  ``ohlcv-1d`` have no sessionkit interval and are refused with a clear message.
- Symbols come from the file's symbology mappings (raw symbol -> instrument id, per date).
  Each symbol gets its own report. Records no mapping covers (an instrument id without
  one, or outside its dates) are rejected as :data:`~.importing.NO_MAPPING`; records of a
  symbol that breaks the symbol rule (OPRA's ``SPY   240119C00470000``) as
  :data:`~.importing.BAD_SYMBOL`, or, importing only some symbols, skipped like the other
  symbols' records; they are counted in one more report, for the records of no imported
  symbol (its ``symbol`` is empty). A file none of whose records is valid is refused.
- Prices are fixed point (units of 1e-9), converted exactly as a decimal text would be;
  an undefined price is a missing value. ``ts_event`` is the bar's start.
- Rows go through the same rules, writer and report as CSV and Parquet files
  (:mod:`.importing`, :func:`.import_arrow.check_batch`); rows are numbered by their
  record's position in the file (the first record is record 1).
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..core.bar import check_symbol
from ..errors import DatabaseError, DataImportError, InvalidSymbolError
from .import_arrow import check_batch
from .importing import (
    BAD_SYMBOL,
    CHUNK,
    MAX_EXAMPLES,
    NO_MAPPING,
    BarSink,
    ImportReport,
    RowRules,
    SessionGrid,
    check_file,
    nothing_imported,
    prepare,
    safe_url,
    upsert_symbol,
)

SCHEMA_INTERVALS = {"ohlcv-1m": "1m", "ohlcv-1h": "1h"}
"""DBN schemas sessionkit imports, and the interval of their bars."""

PRICE_SCALE = 1_000_000_000
"""DBN prices are integers in units of 1e-9."""

UNDEF_PRICE = 2**63 - 1
"""DBN's undefined price."""


def _store(path: Path) -> Any:
    try:
        import databento
    except ImportError:
        raise DataImportError(
            f"{path}: reading Databento DBN files needs the databento package: "
            "pip install -e '.[databento]' in the sessionkit checkout"
        ) from None
    try:
        return databento.DBNStore.from_file(path)
    except Exception as exc:  # the client raises ValueError/BentoError/DBNError
        raise DataImportError(f"{path} is not a readable DBN file: {exc}") from None


def _symbol_intervals(path: Path, mappings: dict[str, list[dict[str, Any]]]) -> list[tuple]:
    """(instrument id, first date, end date (excluded), symbol) from the file's mappings."""
    out = []
    for raw_symbol, intervals in mappings.items():
        for item in intervals:
            try:
                instrument = int(item["symbol"])
            except ValueError:
                raise DataImportError(
                    f"{path}: symbol mapping {raw_symbol} -> {item['symbol']!r} is not an "
                    "instrument id (expected a file with stype_out instrument_id)"
                ) from None
            out.append((instrument, item["start_date"], item["end_date"], raw_symbol))
    return out


def _days(values: np.ndarray) -> np.ndarray:
    return values.astype("datetime64[ns]").astype("datetime64[D]")


def import_dbn(
    engine: Engine,
    path: str | Path,
    *,
    symbol: str | Sequence[str] | None = None,
    interval: str | None = None,
    description: str | None = None,
) -> list[ImportReport]:
    """Import the OHLCV bars of a DBN file, one report per symbol.

    Parameters
    ----------
    engine
        Engine of a database that has sessionkit's schema.
    path
        The ``.dbn`` or ``.dbn.zst`` file.
    symbol
        Import only this symbol of the file, or these symbols (default: all of them).
    interval
        The interval the bars must have (default: the schema's).
    description
        Description for the symbols' rows (None keeps the stored ones).

    Returns
    -------
    list of ImportReport
        One per imported symbol, in name order; then, if the file has records of no
        symbol imported (no mapping covers them, their symbol breaks the symbol rule, or
        another symbol's when ``symbol`` is given), one for those (``symbol`` empty).

    Raises
    ------
    DataImportError
        If the file is not DBN (or cannot be read), its schema is not an OHLCV schema
        sessionkit has an interval for, the symbol is not in the file, the interval does
        not match, or no record is valid (nothing is written then).
    InvalidSymbolError
        If ``symbol`` breaks the symbol rule.
    DatabaseError
        If the rows cannot be written.
    """
    started = _time.perf_counter()
    path = Path(path)
    check_file(path)
    store = _store(path)
    schema = str(store.schema) if store.schema is not None else None
    if schema not in SCHEMA_INTERVALS:
        raise DataImportError(
            f"{path}: DBN schema {schema!r} is not one sessionkit imports "
            f"({', '.join(SCHEMA_INTERVALS)}; ohlcv-1s and ohlcv-1d have no sessionkit interval)"
        )
    bar_interval = SCHEMA_INTERVALS[schema]
    if interval is not None and interval != bar_interval:
        raise DataImportError(
            f"{path}: --interval {interval} does not match the file's schema {schema} "
            f"({bar_interval} bars)"
        )
    mapping = _symbol_intervals(path, store.mappings)
    names = sorted({m[3] for m in mapping})
    if not names:
        raise DataImportError(f"{path}: the file has no symbol mappings (nothing to import)")
    invalid: dict[str, str] = {}
    """The file's symbols that break the symbol rule, and why."""
    for name in names:
        try:
            check_symbol(name)
        except InvalidSymbolError as exc:
            invalid[name] = f"{name!r}: {exc.problem}"
    every = symbol is None
    if symbol is not None:
        asked = [symbol] if isinstance(symbol, str) else list(dict.fromkeys(symbol))
        for name in asked:
            prepare(name, bar_interval)
        absent = [name for name in asked if name not in names]
        if absent:
            raise DataImportError(
                f"{path}: symbol {', '.join(map(repr, absent))} is not in the file (it has: "
                f"{', '.join(names)})"
            )
        symbols = sorted(asked)
    else:
        symbols = [name for name in names if name not in invalid]
    columns = {
        "timestamp": "ts_event",
        "open": "open",
        "high": "high",
        "low": "low",
        "close": "close",
        "volume": "volume",
    }

    def new_report(name: str) -> ImportReport:
        report = ImportReport(
            path=path,
            symbol=name,
            interval=bar_interval,
            reader="databento dbn",
            line_label="record",
        )
        report.columns = dict(columns)
        return report

    reports = {s: new_report(s) for s in symbols}
    rest = new_report("")  # the records of no symbol imported
    rest.columns = {}
    url = safe_url(engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as connection:
            grid = SessionGrid.of(connection, bar_interval)
            sinks = {s: BarSink(connection, r, "record", grid) for s, r in reports.items()}
            rules = {s: RowRules(r, path, UTC, "reject") for s, r in reports.items()}
            record = 1
            for chunk in _records(store, path):
                n = len(chunk)
                numbers = np.arange(record, record + n, dtype=np.int64)
                record += n
                owner = np.full(n, "", dtype=object)
                mapped = np.zeros(n, dtype=bool)
                days = _days(chunk["ts_event"])
                ids = chunk["instrument_id"]
                for instrument, first, end, name in mapping:
                    hit = (ids == instrument) & (days >= np.datetime64(_iso(first)))
                    hit &= days < np.datetime64(_iso(end))
                    owner[hit] = name
                    mapped |= hit
                for name in names:
                    index = np.flatnonzero(owner == name)
                    if not len(index):
                        continue
                    if name not in reports:  # another symbol's, or an invalid one
                        if every:
                            rest.rows_read += len(index)
                            why = [invalid[name]] * min(len(index), MAX_EXAMPLES)
                            rest.reject_rows(numbers[index], BAD_SYMBOL, why)
                        else:
                            rest.skip_others({name: len(index)})
                        continue
                    part = chunk[index]
                    fields = [
                        pa.array(part["ts_event"].astype(np.int64), pa.timestamp("ns", "UTC")),
                        *(_prices(part[column]) for column in ("open", "high", "low", "close")),
                        pa.array(part["volume"], pa.uint64()),
                    ]
                    sinks[name].add(check_batch(fields, numbers[index], reports[name], rules[name]))
                lost = np.flatnonzero(~mapped)
                if len(lost):
                    rest.rows_read += len(lost)
                    rest.reject_rows(
                        numbers[lost],
                        NO_MAPPING,
                        [f"instrument {ids[i]} on {days[i]}" for i in lost[:MAX_EXAMPLES]],
                    )
            for sink in sinks.values():
                sink.finish()
            if not any(r.valid for r in reports.values()):
                raise nothing_imported([*reports.values(), rest])  # (rolled back)
            for name, report in reports.items():
                if report.valid:
                    upsert_symbol(connection, name, path, description, None, None)
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"cannot import {path} into {url}: {getattr(exc, 'orig', exc)}"
        ) from None
    seconds = _time.perf_counter() - started
    done = [reports[s] for s in symbols] + ([rest] if rest.rows_read else [])
    for report in done:
        report.seconds = seconds
    return done


def _records(store: Any, path: Path) -> Iterator[np.ndarray]:
    """The file's records, :data:`~.importing.CHUNK` at a time.

    Raises
    ------
    DataImportError
        Naming the file, if it cannot be read (a truncated or corrupt file).
    """
    try:
        chunks = iter(store.to_ndarray(count=CHUNK))
    except Exception as exc:  # the client raises ValueError/BentoError/DBNError
        raise DataImportError(f"cannot read {path}: {exc}") from None
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        except Exception as exc:
            raise DataImportError(f"cannot read {path}: {exc}") from None
        yield chunk


def _iso(day: date | str) -> str:
    return day.isoformat() if isinstance(day, date | datetime) else str(day)


def _prices(raw: np.ndarray) -> pa.Array:
    """Fixed-point prices as floats (the nearest double, like a decimal text); undefined: null."""
    raw = raw.astype(np.int64)
    return pa.array(raw / PRICE_SCALE, pa.float64(), mask=raw == UNDEF_PRICE)
