"""Import OHLCV bars from a CSV file with the ``csv`` module: the reference reader.

Used by ``sessionkit db import`` (when pyarrow is not installed, or for a file pyarrow
cannot split into rows) and by the sample database's build script, on the caller's (main)
thread; no engine thread calls it. :mod:`.import_arrow` reads the same files faster with
pyarrow and must give the same rows and the same report (the tests compare them).

The file has a header naming its columns: ``timestamp,open,high,low,close,volume`` in any
order, or common vendor names (``datetime``, ``date`` + ``time``, ``ts_event``, ``Open``,
``Vol``...; see :data:`~.importing.ALIASES`), or any names mapped with ``columns``. Other
columns are ignored (and reported). Timestamps are bar start times in ISO-8601, with a UTC
offset (``2011-01-03T09:30:00-05:00``) or naive together with an IANA zone
(``tz="America/New_York"``). ``.csv.gz`` and ``.zst`` files are decompressed on the fly.
A bad row is rejected, counted under its reason and kept as an example with its line
number; the good rows are imported (see :mod:`.importing` for the rules and the writer).
The text is UTF-8: a byte that is not rejects its row when it is in a column read (the
file's other rows are read), and does not matter in another column. A semicolon-separated
file may have decimal commas (:func:`~.importing.decimal_comma_of`), whose dots then only
group thousands.
"""

from __future__ import annotations

import codecs
import csv
import itertools
from collections.abc import Iterator, Mapping, Sequence
from datetime import tzinfo
from pathlib import Path

from sqlalchemy import Engine

from ..errors import DataImportError
from .importing import (
    BAD_TIMESTAMP,
    CHUNK,
    DUPLICATE,
    FIELDS,
    HEADER,
    HIGH_BELOW_LOW,
    MAX_EXAMPLES,
    MISSING,
    NEGATIVE_VOLUME,
    NON_NUMERIC,
    NONEXISTENT_TIME,
    NOT_FINITE,
    NOT_UTF8,
    NOT_WHOLE_MINUTE,
    OUTSIDE_RANGE,
    WRONG_FIELD_COUNT,
    Ambiguous,
    Batch,
    ImportReport,
    RejectedRow,
    RowRules,
    decimal_comma_of,
    delimiter_of,
    printable,
    read_head,
    resolve_columns,
    run_import,
    text_stream,
    undecodable,
)

__all__ = [
    "BAD_TIMESTAMP",
    "DUPLICATE",
    "HEADER",
    "HIGH_BELOW_LOW",
    "MAX_EXAMPLES",
    "MISSING",
    "NEGATIVE_VOLUME",
    "NONEXISTENT_TIME",
    "NON_NUMERIC",
    "NOT_FINITE",
    "NOT_WHOLE_MINUTE",
    "OUTSIDE_RANGE",
    "WRONG_FIELD_COUNT",
    "ImportReport",
    "RejectedRow",
    "check_text_file",
    "import_csv",
    "read_csv_module",
]


def check_text_file(path: Path) -> None:
    """Check that a (decompressed) file is not empty and not binary.

    Raises
    ------
    DataImportError
        Naming the file.
    """
    head = read_head(path)
    if not head.strip():
        raise DataImportError(f"{path} is empty (expected a CSV header: {','.join(HEADER)})")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataImportError(
            f"{path} is UTF-16 text, not UTF-8: convert it (iconv -f utf-16 -t utf-8)"
        )
    if b"\x00" in head:
        raise DataImportError(f"{path} is a binary file, not a CSV file of bars")


def read_csv_module(
    path: Path, report: ImportReport, rules: RowRules, mapping: Mapping[str, str]
) -> Iterator[Batch]:
    """Read and check every row with the ``csv`` module; yield the valid ones in chunks.

    Raises
    ------
    DataImportError
        If the file is empty, binary, not CSV, or its header lacks a field. (A row with
        bytes that are not UTF-8 in a column read is rejected; in another column, read.)
    """
    check_text_file(path)
    delimiter = delimiter_of(read_head(path))
    report.reader = "csv module"
    check = rules.check
    lines: list[int] = []
    rows: list[tuple[int, float, float, float, float, int]] = []
    # Importing every symbol: each valid row's symbol (else None).
    names: list[str] | None = [] if report.every_symbol else None
    reader = None
    try:
        with text_stream(path) as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise DataImportError(
                    f"{path} is empty (expected a CSV header: {','.join(HEADER)})"
                )
            columns = resolve_columns(path, header, mapping)
            columns.apply(report, rules)
            rules.decimal_comma = decimal_comma_of(path, delimiter, columns)
            width = len(header)
            # The fields' names, for rows with bytes that are not UTF-8.
            fields = ("date", "time", *FIELDS[1:]) if columns.timestamp is None else FIELDS
            split = columns.timestamp is None
            positions = columns.positions
            identity = positions == list(range(6)) and width == 6
            at = columns.names.index(columns.symbol) if columns.symbol is not None else None
            symbol = report.symbol
            wanted = report.wanted  # several symbols' rows (None: one's, or every row)
            others: dict[str, int] = {}
            numbered: Iterator[tuple[int, list[str]]] = ((reader.line_num, row) for row in reader)
            if not columns.header:  # its first line is data
                numbered = itertools.chain([(1, header)], numbered)
            for line, row in numbered:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if at is not None and len(row) == width:
                    name = row[at].strip()
                    if undecodable(name):  # whose row is it? (counted below)
                        pass
                    elif (names is None and name != symbol) or (
                        wanted is not None and name not in wanted
                    ):
                        others[name] = others.get(name, 0) + 1
                        continue  # another symbol's row (counted below)
                report.rows_read += 1
                if len(row) != width:
                    if len(row) < width:
                        report.reject(
                            line,
                            MISSING,
                            f"{len(row)} of {width} fields: {printable(','.join(row)[:60])}",
                        )
                    else:
                        report.reject(
                            line, WRONG_FIELD_COUNT, f"{len(row)} fields, expected {width}"
                        )
                    continue
                cells = row if identity else [row[i] for i in positions]
                if not all(map(str.isascii, cells)) or (at is not None and not row[at].isascii()):
                    read = zip(
                        (*fields, "symbol"),
                        (*cells, row[at] if at is not None else ""),
                        strict=True,
                    )
                    bad = [
                        f"{name}='{printable(cell.strip()[:30])}'"
                        for name, cell in read
                        if undecodable(cell)
                    ]
                    if bad:  # (other text than ASCII is fine)
                        report.reject(line, NOT_UTF8, ", ".join(bad))
                        continue
                if split:
                    d, t, *rest = cells
                    values = [f"{d.strip()} {t.strip()}".strip(), *rest]
                else:
                    values = cells
                valid = check(line, *values)
                if valid is not None:
                    lines.append(line)
                    rows.append(valid)
                    if names is not None:
                        names.append(row[at].strip())  # type: ignore[index]
                    if len(rows) >= CHUNK:
                        yield Batch.from_rows(lines, rows, names)
                        lines, rows = [], []
                        names = None if names is None else []
        report.skip_others(others)
    except csv.Error as exc:
        where = f" (line {reader.line_num})" if reader is not None else ""
        raise DataImportError(f"{path} is not a readable CSV file{where}: {exc}") from None
    except (OSError, EOFError) as exc:
        raise DataImportError(f"cannot read {path}: {exc}") from None
    if rows:
        yield Batch.from_rows(lines, rows, names)


def import_csv(
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
) -> ImportReport:
    """Import the bars of a CSV file (one symbol's, or every symbol's), with the ``csv`` module.

    Parameters
    ----------
    engine
        Engine of a database that has sessionkit's schema.
    path
        The CSV file (``.csv``, ``.csv.gz`` or ``.zst``) with a header row.
    symbol, interval
        The symbol the bars belong to (it must obey the symbol rule) and their interval
        (``1m``, ``5m``, ...). A file with a column of symbols (``symbol``, ``ticker``,
        ``sym``): only that symbol's rows are imported; with ``symbol`` None, every
        symbol's, each row to its own (:attr:`ImportReport.symbols`); with a list of
        symbols, those symbols' rows, each to its own.
    tz
        IANA zone of naive timestamps; timestamps with an offset keep theirs.
    ambiguous
        What to do with a naive time a DST change makes ambiguous: ``reject`` the row,
        or take the ``earliest`` or ``latest`` instant.
    columns
        Field -> column name for columns whose names are not recognised.
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
        no ``tz`` is given, or the interval or zone is invalid.
    InvalidSymbolError
        If the symbol breaks the symbol rule.
    DatabaseError
        If the rows cannot be written.
    """
    return run_import(
        engine,
        Path(path),
        symbol,
        interval,
        read_csv_module,
        tz=tz,
        ambiguous=ambiguous,
        columns=columns,
        description=description,
        source=source,
        synthetic=synthetic,
    )
