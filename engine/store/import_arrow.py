"""Import bars from CSV and Parquet files with pyarrow (the ``sessionkit[arrow]`` extra).

Used by ``sessionkit db import`` on the caller's (main) thread; no engine thread calls it.

pyarrow reads the file in blocks (CSV: ``pyarrow.csv.open_csv``, every column as text;
Parquet: ``ParquetFile.iter_batches``), and vectorised checks pass the rows that are
plainly good: ISO-8601 times on a whole minute, plain decimal numbers, ``low <= open,
close <= high``, a whole non-negative volume. Every other row is handed, as text, to the
same :class:`~.importing.RowRules` the ``csv``-module reader uses, which accepts or rejects
it with the same reason and detail: the rules live in one place, and both readers give the
same rows and the same report. A CSV file pyarrow cannot split into rows exactly as the
``csv`` module does (blank lines, rows with a wrong number of fields, text that is not
UTF-8) raises :class:`NeedsReference`, and :func:`~.importing.import_bars` imports it with
the ``csv`` module instead (the transaction is rolled back first).

Row numbers: CSV rows are numbered by their line (the header is line 1); Parquet rows by
their position (the first row is row 1).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from ..errors import DataImportError
from .import_csv import check_text_file
from .importing import (
    CHUNK,
    MAX_EPOCH,
    MAX_VOLUME,
    MIN_EPOCH,
    Batch,
    ImportReport,
    RowRules,
    open_binary,
    read_head,
    resolve_columns,
)


class NeedsReference(Exception):
    """pyarrow cannot read this CSV file row for row like the ``csv`` module: use that."""


_TS = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?$"
)
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,2})?$"
_WHOLE = r"^\+?\d{1,18}$"
_EXACT = 2**53  # floats below this are exact integers


def _bool(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _floats(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A price column as float64 and the mask of values that surely pass the rules."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        ok = pc.match_substring_regex(values, _NUMBER)
        numbers = pc.cast(pc.if_else(ok, values, "0"), pa.float64())
        return numbers.to_numpy(zero_copy_only=False), _bool(ok)
    kind = values.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        numbers = pc.cast(values, pa.float64(), safe=False)
        out = pc.fill_null(numbers, 0.0).to_numpy(zero_copy_only=False)
        return out, _bool(pc.is_valid(numbers)) & np.isfinite(out)
    return np.zeros(len(values)), np.zeros(len(values), dtype=bool)


def _volumes(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The volume column as int64 and the mask of values that surely pass the rules."""
    n = len(values)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        whole = _bool(pc.match_substring_regex(values, _WHOLE))
        out = pc.cast(pc.if_else(pa.array(whole), values, "0"), pa.int64())
        out = out.to_numpy(zero_copy_only=False)
        rest = ~whole & _bool(pc.match_substring_regex(values, _NUMBER))
        if rest.any():
            floats = pc.cast(pc.if_else(pa.array(rest), values, "0"), pa.float64())
            f = floats.to_numpy(zero_copy_only=False)
            exact = rest & (f >= 0) & (f < _EXACT) & (np.floor(f) == f)
            out = np.where(exact, np.where(exact, f, 0).astype(np.int64), out)
            whole = whole | exact
        return out, whole
    if pa.types.is_integer(values.type):
        valid = pc.is_valid(values)
        if pa.types.is_unsigned_integer(values.type):
            valid = pc.and_(valid, pc.less_equal(values, MAX_VOLUME))
        ok = _bool(valid)
        safe = pc.if_else(pa.array(ok), values, pa.scalar(0, values.type))
        out = pc.cast(safe, pa.int64()).to_numpy(zero_copy_only=False)
        return out, ok & (out >= 0)
    if pa.types.is_floating(values.type):
        f = pc.fill_null(pc.cast(values, pa.float64()), -1.0).to_numpy(zero_copy_only=False)
        ok = (f >= 0) & (f < _EXACT) & (np.floor(f) == f)
        return np.where(ok, f, 0).astype(np.int64), ok
    return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)


def _zone_name(rules: RowRules) -> str | None:
    return getattr(rules.zone, "key", None)


def _local_epochs(
    naive: pa.Array, mask: np.ndarray, rules: RowRules
) -> tuple[np.ndarray, np.ndarray]:
    """UTC epochs of naive local times in the rules' zone; unambiguous ones only pass."""
    zone = _zone_name(rules)
    if zone is None or not mask.any():
        return np.zeros(len(naive), dtype=np.int64), np.zeros(len(naive), dtype=bool)
    early = pc.assume_timezone(naive, zone, ambiguous="earliest", nonexistent="earliest")
    late = pc.assume_timezone(naive, zone, ambiguous="latest", nonexistent="latest")
    e = pc.fill_null(pc.cast(pc.cast(early, pa.timestamp("s", "UTC")), pa.int64()), 0)
    lt = pc.fill_null(pc.cast(pc.cast(late, pa.timestamp("s", "UTC")), pa.int64()), 0)
    e, lt = e.to_numpy(zero_copy_only=False), lt.to_numpy(zero_copy_only=False)
    return e, mask & (e == lt)


def _epochs(values: pa.Array, rules: RowRules) -> tuple[np.ndarray, np.ndarray]:
    """Bar starts as UTC epoch seconds and the mask of values that surely pass the rules."""
    n = len(values)
    kind = values.type
    if pa.types.is_timestamp(kind):
        factor = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[kind.unit]
        raw = pc.fill_null(pc.cast(values, pa.int64()), 1).to_numpy(zero_copy_only=False)
        ok = _bool(pc.is_valid(values)) & (raw % (60 * factor) == 0)
        seconds = raw // factor
        if kind.tz is not None:
            return seconds, ok
        naive = pc.cast(values, pa.timestamp(kind.unit))
        epochs, local_ok = _local_epochs(naive, ok, rules)
        return epochs, local_ok
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    ok = _bool(pc.match_substring_regex(values, _TS))
    length = pc.utf8_length(values).to_numpy(zero_copy_only=False)
    naive = ok & (length == 19)
    aware = ok & ~naive
    epochs = np.zeros(n, dtype=np.int64)
    if aware.any():
        try:
            stamps = pc.cast(
                pc.if_else(pa.array(aware), values, "2000-01-01T00:00:00Z"),
                pa.timestamp("s", "UTC"),
            )
        except pa.ArrowInvalid:  # an impossible date (02-30): the row rules decide
            return epochs, np.zeros(n, dtype=bool)
        epochs = np.where(aware, stamps.cast(pa.int64()).to_numpy(zero_copy_only=False), 0)
    if naive.any():
        try:
            local = pc.cast(
                pc.if_else(pa.array(naive), values, "2000-01-01T00:00:00"), pa.timestamp("s")
            )
        except pa.ArrowInvalid:
            return epochs, np.zeros(n, dtype=bool)
        local_epochs, local_ok = _local_epochs(local, naive, rules)
        epochs = np.where(naive, local_epochs, epochs)
        ok = np.where(naive, local_ok, ok)
    return epochs, ok


def _text(value: Any) -> str:
    """A value as the text the row rules read (what a CSV file would hold)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def check_batch(
    fields: Sequence[pa.Array],
    first_line: int | np.ndarray,
    report: ImportReport,
    rules: RowRules,
) -> Batch:
    """Check one block of rows (timestamp, open, high, low, close, volume columns).

    Rows the vectorised checks pass are kept; every other row goes, as text, through
    ``rules.check`` (which rejects it or accepts it). ``first_line`` numbers the first row
    (the others follow), or is an array of every row's number.
    """
    ts, o, h, lo, c, v = fields
    n = len(ts)
    report.rows_read += n
    epochs, good = _epochs(ts, rules)
    opens, ok_o = _floats(o)
    highs, ok_h = _floats(h)
    lows, ok_l = _floats(lo)
    closes, ok_c = _floats(c)
    volumes, ok_v = _volumes(v)
    good &= ok_o & ok_h & ok_l & ok_c & ok_v
    good &= (epochs >= MIN_EPOCH) & (epochs < MAX_EPOCH) & (epochs % 60 == 0)
    good &= (lows <= highs) & (lows <= opens) & (opens <= highs)
    good &= (lows <= closes) & (closes <= highs)
    if isinstance(first_line, np.ndarray):
        lines = first_line.astype(np.int64)
    else:
        lines = np.arange(first_line, first_line + n, dtype=np.int64)
    index = np.flatnonzero(good)
    batch = Batch(
        lines[index],
        epochs[index],
        opens[index],
        highs[index],
        lows[index],
        closes[index],
        volumes[index],
    )
    doubtful = np.flatnonzero(~good)
    if not len(doubtful):
        return batch
    take = pa.array(doubtful)
    texts = [[_text(x) for x in pc.take(col, take).to_pylist()] for col in fields]
    checked_lines: list[int] = []
    checked = []
    for line, row in zip(lines[doubtful].tolist(), zip(*texts, strict=True), strict=True):
        valid = rules.check(line, *row)
        if valid is not None:
            checked_lines.append(line)
            checked.append(valid)
    if not checked:
        return batch
    return Batch.concat([batch, Batch.from_rows(checked_lines, checked)])


def _join(columns: Sequence[pa.Array], split: bool) -> list[pa.Array]:
    if not split:
        return list(columns)
    date, time, *rest = columns  # joined as the csv reader joins them: "date time"
    trim = pc.utf8_trim_whitespace
    return [pc.binary_join_element_wise(trim(date), trim(time), " "), *rest]


def read_csv_arrow(
    path: Path, report: ImportReport, rules: RowRules, mapping: Mapping[str, str]
) -> Iterator[Batch]:
    """Read a CSV file (``.csv``, ``.csv.gz``, ``.zst``) with pyarrow, block by block.

    Raises
    ------
    DataImportError
        If the file is empty, binary or its header lacks a field.
    NeedsReference
        If pyarrow cannot split the file into rows like the ``csv`` module.
    """
    check_text_file(path)
    head = read_head(path, 1 << 20)
    first = head.split(b"\n", 1)[0]
    try:
        header = next(csv.reader(io.StringIO(first.decode("utf-8-sig"))), None)
    except (UnicodeDecodeError, csv.Error):
        raise NeedsReference from None
    if header is None or ("\n" not in head.decode("utf-8", "replace") and len(head) >= 1 << 20):
        raise NeedsReference
    columns = resolve_columns(path, header, mapping)
    report.reader = "pyarrow csv"
    report.columns = columns.used
    report.ignored_columns = columns.ignored
    width = len(header)
    names = [f"c{i}" for i in range(width)]
    wanted = [names[i] for i in columns.positions]
    split = columns.timestamp is None

    def refuse(_row: Any) -> str:
        return "error"

    read_options = pa_csv.ReadOptions(column_names=names, use_threads=True)
    parse_options = pa_csv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=refuse)
    convert_options = pa_csv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        include_columns=wanted,
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    line = 2
    try:
        for block in _blocks(path):
            table = pa_csv.read_csv(
                pa.py_buffer(block),
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
            raw = [table.column(name).combine_chunks() for name in wanted]
            blank = pc.equal(pc.utf8_length(raw[0]), 0)
            for col in raw[1:]:
                blank = pc.and_(blank, pc.equal(pc.utf8_length(col), 0))
            if _bool(blank).any():
                raise NeedsReference  # a blank line or a row of empty fields
            fields = _join(raw, split)
            for offset in range(0, table.num_rows, CHUNK):
                part = [col.slice(offset, CHUNK) for col in fields]
                yield check_batch(part, line + offset, report, rules)
            line += table.num_rows
    except (pa.ArrowInvalid, UnicodeDecodeError):
        raise NeedsReference from None
    except (OSError, EOFError) as exc:
        raise DataImportError(f"cannot read {path}: {exc}") from None


BLOCK = 8 << 20
"""Bytes of CSV text parsed at a time (whole lines): memory stays bounded whatever the size
of the file (pyarrow's own streaming reader reads ahead without limit)."""


def _blocks(path: Path) -> Iterator[bytes]:
    """The file's data lines (the header skipped), decompressed, in blocks of whole lines."""
    with open_binary(path) as stream:
        rest = b""
        header_done = False
        while True:
            data = stream.read(BLOCK)
            if not data:
                break
            data = rest + data
            if not header_done:
                end = data.find(b"\n")
                if end < 0:
                    rest = data
                    continue
                data = data[end + 1 :]
                header_done = True
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            rest = data[cut + 1 :]
            if cut >= 0 and data[: cut + 1]:
                yield data[: cut + 1]
        if header_done and rest.strip(b"\r"):
            yield rest


def read_parquet(
    path: Path, report: ImportReport, rules: RowRules, mapping: Mapping[str, str]
) -> Iterator[Batch]:
    """Read a Parquet file with pyarrow, :data:`~.importing.CHUNK` rows at a time.

    Raises
    ------
    DataImportError
        If the file is not Parquet or lacks a field's column.
    """
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(str(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataImportError(f"{path} is not a readable Parquet file: {exc}") from None
    names = parquet.schema_arrow.names
    columns = resolve_columns(path, names, mapping)
    report.reader = "pyarrow parquet"
    report.columns = columns.used
    report.ignored_columns = columns.ignored
    sources = columns.sources
    split = columns.timestamp is None
    row = 1
    try:
        for record_batch in parquet.iter_batches(batch_size=CHUNK, columns=sorted(set(sources))):
            raw = [record_batch.column(name) for name in sources]
            if split:
                raw = [pc.cast(col, pa.string()) for col in raw[:2]] + raw[2:]
            yield check_batch(_join(raw, split), row, report, rules)
            row += record_batch.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataImportError(f"cannot read {path}: {exc}") from None
