"""Import bars from CSV and Parquet files with pyarrow (the ``sessionkit[arrow]`` extra).

Used by ``sessionkit db import`` on the caller's (main) thread; no engine thread calls it.

pyarrow reads the file in blocks (CSV: ``pyarrow.csv.open_csv``, every column as text;
Parquet: ``ParquetFile.iter_batches``), and vectorised checks pass the rows that are
plainly good: ISO-8601 times on a whole minute, plain decimal numbers, ``low <= open,
close <= high``, a non-negative volume. Every other row is handed, as text, to the
same :class:`~.importing.RowRules` the ``csv``-module reader uses, which accepts or rejects
it with the same reason and detail: the rules live in one place, and both readers give the
same rows and the same report. A CSV file pyarrow cannot split into rows exactly as the
``csv`` module does (blank lines, rows with a wrong number of fields, text that is not
UTF-8 in a column read: the ``csv`` module rejects those rows), or whose rows it cannot
number by their line (a quoted field holding a line break: the ``csv`` module counts the
lines), raises :class:`NeedsReference`, and :func:`~.importing.import_bars` imports it with
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
    EPOCH_UNITS,
    MAX_EPOCH,
    MAX_EXAMPLES,
    MIN_EPOCH,
    NO_OFFSET,
    Batch,
    ImportReport,
    RowRules,
    decimal_comma_of,
    delimiter_of,
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
_DOTTED = r"^(\d{4})\.(\d{2})\.(\d{2})($|[ T])"
_DAY_FIRST = r"^(\d{2})\.(\d{2})\.(\d{4})($|[ T])"
_ZERO_FRACTION = r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})\.0+($|Z$|[+-]\d{2}:\d{2}$)"
_EPOCH = r"^-?\d{1,19}$"  # a Unix epoch (importing.EPOCH_UNITS); above int64: row rules
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,2})?$"
_WHOLE = r"^\d{1,18}$"  # pyarrow casts "+10" to a float, not to an int
_EXACT = 2**53  # floats below this are exact integers


# pyarrow imports pandas (when installed) the first time it converts a Python object or
# makes a numpy array (``pa.array``, ``pa.scalar``, ``to_numpy``): 0.4 s and 50 MB for an
# import that needs none of it. So arrays cross between numpy and Arrow through their
# buffers, and no compute function gets a Python scalar.


_DTYPES = {pa.int32(): np.int32, pa.int64(): np.int64, pa.float64(): np.float64}


def _numpy(values: pa.Array) -> np.ndarray:
    """The values of a boolean or fixed-width numeric array (null slots: any value)."""
    n, offset = len(values), values.offset
    data = values.buffers()[1]
    if pa.types.is_boolean(values.type):
        if data is None or not n:
            return np.zeros(n, dtype=bool)
        bits = np.frombuffer(data, dtype=np.uint8)
        return np.unpackbits(bits, count=offset + n, bitorder="little")[offset:].view(bool)
    dtype = _DTYPES[values.type]
    if data is None or not n:
        return np.zeros(n, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=offset + n)[offset:]


def _valid(values: pa.Array) -> np.ndarray:
    """Which values are not null."""
    n = len(values)
    if not values.null_count:
        return np.ones(n, dtype=bool)
    bits = np.frombuffer(values.buffers()[0], dtype=np.uint8)
    return np.unpackbits(bits, count=values.offset + n, bitorder="little")[values.offset :].view(
        bool
    )


def _bool(mask: pa.Array) -> np.ndarray:
    """A boolean array as numpy, nulls false."""
    return _numpy(mask) & _valid(mask)


def _mask(mask: np.ndarray) -> pa.BooleanArray:
    """A numpy boolean mask as an Arrow one."""
    bits = pa.py_buffer(np.packbits(mask, bitorder="little"))
    return pa.BooleanArray.from_buffers(pa.bool_(), len(mask), [None, bits])


def _indices(index: np.ndarray) -> pa.Array:
    """Numpy row indices as an Arrow array, for ``take``."""
    index = np.ascontiguousarray(index, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(index), [None, pa.py_buffer(index)])


def _parse(
    values: pa.Array, mask: np.ndarray, kind: pa.DataType, dtype: type = np.float64
) -> np.ndarray:
    """Cast the texts ``values[mask]`` to ``kind``; the other rows are 0."""
    out = np.zeros(len(values), dtype=dtype)
    if mask.any():
        parsed = pc.cast(values.filter(_mask(mask)), kind)
        if pa.types.is_timestamp(kind):
            parsed = parsed.cast(pa.int64())
        out[mask] = _numpy(parsed)
    return out


def _floats(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A price column as float64 and the mask of values that surely pass the rules."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        ok = _bool(pc.match_substring_regex(values, _NUMBER))
        return _parse(values, ok, pa.float64()), ok
    kind = values.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        numbers = pc.cast(values, pa.float64(), safe=False)
        valid = _valid(numbers)
        out = np.where(valid, _numpy(numbers), 0.0)
        return out, valid & np.isfinite(out)
    return np.zeros(len(values)), np.zeros(len(values), dtype=bool)


def _volumes(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The volume column and the mask of values that surely pass the rules: ``int64``, or,
    when the block holds fractional volumes, an object array of ``int`` (whole) and
    ``float`` (fractional) volumes, as :func:`~.importing.volume_array` makes them."""
    n = len(values)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        whole = _bool(pc.match_substring_regex(values, _WHOLE))
        out = _parse(values, whole, pa.int64(), np.int64)
        rest = ~whole & _bool(pc.match_substring_regex(values, _NUMBER))
        if not rest.any():
            return out, whole
        f = _parse(values, rest, pa.float64())
        usable = rest & (f >= 0) & (f < _EXACT)
        exact = usable & (np.floor(f) == f)
        out = np.where(exact, np.where(exact, f, 0).astype(np.int64), out)
        return _with_fractions(out, f, usable & ~exact), whole | usable
    if pa.types.is_integer(values.type):
        # Unsigned values above 2^63-1 wrap to negative ones: not ok, like negative ones.
        out = _numpy(pc.cast(values, pa.int64(), safe=False))
        ok = _valid(values) & (out >= 0)
        return np.where(ok, out, 0), ok
    if pa.types.is_floating(values.type) or pa.types.is_decimal(values.type):
        numbers = pc.cast(values, pa.float64(), safe=False)
        f = np.where(_valid(numbers), _numpy(numbers), -1.0)
        usable = (f >= 0) & (f < _EXACT)  # NaN and infinities fail both
        exact = usable & (np.floor(f) == f)
        out = np.where(exact, f, 0).astype(np.int64)
        return _with_fractions(out, f, usable & ~exact), usable
    return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)


def _with_fractions(whole: np.ndarray, numbers: np.ndarray, odd: np.ndarray) -> np.ndarray:
    """``whole`` (int64) with the fractional ``numbers[odd]`` in their rows (an object
    array then), or ``whole`` itself when no row is fractional."""
    if not odd.any():
        return whole
    out = whole.astype(object)
    out[odd] = numbers[odd].tolist()
    return out


def _zone_name(rules: RowRules) -> str | None:
    return getattr(rules.zone, "key", None)


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
"""Units per second of Arrow's timestamp units."""


def _local_epochs(
    naive: pa.Array, mask: np.ndarray, rules: RowRules
) -> tuple[np.ndarray, np.ndarray]:
    """UTC epochs of naive local times in the rules' zone; unambiguous ones only pass
    (an ambiguous or nonexistent time differs between the earliest and latest reading:
    the row rules decide)."""
    zone = _zone_name(rules)
    if zone is None or not mask.any():
        return np.zeros(len(naive), dtype=np.int64), np.zeros(len(naive), dtype=bool)
    factor = _PER_SECOND[naive.type.unit]
    epochs = []
    for choice in ("earliest", "latest"):
        aware = pc.assume_timezone(naive, zone, ambiguous=choice, nonexistent=choice)
        # In the column's own unit, then floored to seconds: the earliest reading of a time
        # in a DST gap is the last instant before it (01:59:59.999999), which a cast to
        # seconds refuses ("would lose data"), failing the whole file.
        raw = pc.cast(aware, pa.int64())
        epochs.append(np.where(_valid(raw), _numpy(raw) // factor, 0))
    early, late = epochs
    return early, mask & (early == late)


def _unix_epochs(raw: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unix epochs in any unit (told by their size, as :func:`epoch_unit` does) as seconds,
    and the mask of the valid ones on a whole minute."""
    size = np.abs(raw)
    per_second = np.full(len(raw), 1_000_000_000, dtype=np.int64)
    for bound, unit in reversed(EPOCH_UNITS):
        per_second = np.where(size < bound, unit, per_second)
    return raw // per_second, valid & (raw % (60 * per_second) == 0)


def _epochs(values: pa.Array, rules: RowRules) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bar starts as UTC epoch seconds, the mask of values that surely pass the rules, and
    the mask of naive times (without a zone, the rules reject them: :data:`NO_OFFSET`)."""
    n = len(values)
    kind = values.type
    none = np.zeros(n, dtype=bool)
    if pa.types.is_integer(kind):  # Unix epochs (a Parquet column of them)
        raw = _numpy(pc.cast(values, pa.int64(), safe=False))
        valid = _valid(values)
        if pa.types.is_unsigned_integer(kind):
            valid &= raw >= 0  # above 2^63-1, wrapped: the row rules reject them
        return *_unix_epochs(np.where(valid, raw, 0), valid), none
    if pa.types.is_timestamp(kind):
        factor = _PER_SECOND[kind.unit]
        raw = _numpy(pc.cast(values, pa.int64()))
        ok = _valid(values) & (raw % (60 * factor) == 0)
        seconds = raw // factor
        if kind.tz is not None:
            return seconds, ok, none
        naive = pc.cast(values, pa.timestamp(kind.unit))
        return *_local_epochs(naive, ok, rules), _valid(values)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return np.zeros(n, dtype=np.int64), none, none
    # Other spellings, as the row rules read them, when the file's first value has one (a
    # file that starts otherwise and has them: the row rules read those rows):
    # 2024.03.05 (MetaTrader) and 05.03.2024 (day first: Dukascopy) as 2024-03-05, and
    # 00:01:00.000 as 00:01:00.
    first = values.slice(0, 1)
    if n and _bool(pc.match_substring_regex(first, _DOTTED))[0]:
        values = pc.replace_substring_regex(values, _DOTTED, r"\1-\2-\3\4")
    elif n and _bool(pc.match_substring_regex(first, _DAY_FIRST))[0]:
        values = pc.replace_substring_regex(values, _DAY_FIRST, r"\3-\2-\1\4")
    if n and _bool(pc.match_substring_regex(values.slice(0, 1), _ZERO_FRACTION))[0]:
        values = pc.replace_substring_regex(values, _ZERO_FRACTION, r"\1\2")
    ok = _bool(pc.match_substring_regex(values, _TS))
    length = _numpy(pc.utf8_length(values))
    naive = ok & (length == 19)
    local_times = naive.copy()
    aware = ok & ~naive
    digits = _bool(pc.match_substring_regex(values, _EPOCH))
    try:
        epochs = _parse(values, aware, pa.timestamp("s", "UTC"), np.int64)
        if digits.any():
            seconds, whole = _unix_epochs(_parse(values, digits, pa.int64(), np.int64), digits)
            epochs[digits] = seconds[digits]
            ok |= whole
        if naive.any():
            local = pc.cast(values.filter(_mask(naive)), pa.timestamp("s"))
            local_epochs, local_ok = _local_epochs(local, np.ones(len(local), dtype=bool), rules)
            epochs[naive] = local_epochs
            ok[naive] = local_ok
    except pa.ArrowInvalid:  # an impossible date (02-30): the row rules decide
        return np.zeros(n, dtype=np.int64), none, none
    return epochs, ok, local_times


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


def _texts(values: pa.Array) -> list[str]:
    """A column's values as the texts the row rules read (:func:`_text`). A nanosecond
    timestamp keeps its nanoseconds (``09:31:00.000000001``: not a whole minute), which a
    Python ``datetime`` would drop."""
    kind = values.type
    if not (pa.types.is_timestamp(kind) and kind.unit == "ns"):
        return [_text(x) for x in values.to_pylist()]
    valid = _valid(values)
    raw = np.where(valid, _numpy(pc.cast(values, pa.int64())), 0)
    micros = pa.Array.from_buffers(
        pa.timestamp("us", kind.tz), len(values), [None, pa.py_buffer(raw // 1000)]
    )
    texts = []
    for value, nanos, ok in zip(
        micros.to_pylist(), (raw % 1000).tolist(), valid.tolist(), strict=True
    ):
        if not ok or not nanos:
            texts.append(_text(value if ok else None))
            continue
        whole = value.replace(microsecond=0).isoformat()
        texts.append(f"{whole[:19]}.{value.microsecond:06d}{nanos:03d}{whole[19:]}")
    return texts


def _vectorised(
    fields: Sequence[pa.Array], rules: RowRules
) -> tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray
]:
    """Starts, OHLC, volumes of a block of rows, the mask of rows that surely pass, and
    the mask of rows the rules surely reject as naive times without a zone
    (:data:`~.importing.NO_OFFSET`: their numbers pass, and a naive time is all the rules
    check of a timestamp before they reject it)."""
    ts, o, h, lo, c, v = fields
    if rules.decimal_comma:
        # 1,0850 as 1.0850, as the row rules read it; a dot (1.000: thousands, or an
        # ambiguous decimal point) makes the row doubtful: the row rules decide.
        o, h, lo, c, v = (
            pc.replace_substring(pc.replace_substring(x, ".", "_"), ",", ".")
            if pa.types.is_string(x.type) or pa.types.is_large_string(x.type)
            else x
            for x in (o, h, lo, c, v)
        )
    epochs, good, naive = _epochs(ts, rules)
    opens, ok_o = _floats(o)
    highs, ok_h = _floats(h)
    lows, ok_l = _floats(lo)
    closes, ok_c = _floats(c)
    volumes, ok_v = _volumes(v)
    numbers = ok_o & ok_h & ok_l & ok_c & ok_v
    good &= numbers
    good &= (epochs >= MIN_EPOCH) & (epochs < MAX_EPOCH) & (epochs % 60 == 0)
    good &= (lows <= highs) & (lows <= opens) & (opens <= highs)
    good &= (lows <= closes) & (closes <= highs)
    unzoned = naive & numbers if rules.zone is None else np.zeros(len(good), dtype=bool)
    return epochs, opens, highs, lows, closes, volumes, good, unzoned


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
    n = len(fields[0])
    report.rows_read += n
    epochs, opens, highs, lows, closes, volumes, good, unzoned = _vectorised(fields, rules)
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
    naive = unzoned[doubtful]
    if naive.all():  # a file of naive times without --tz: rejected at once
        stamps = _texts(fields[0].take(_indices(doubtful[:MAX_EXAMPLES])))
        report.reject_rows(lines[doubtful], NO_OFFSET, [repr(t.strip()) for t in stamps])
        return batch
    take = _indices(doubtful)
    texts = [_texts(col.take(take)) for col in fields]
    checked_lines: list[int] = []
    checked = []
    reject = report.reject
    for line, quick, row in zip(
        lines[doubtful].tolist(), naive.tolist(), zip(*texts, strict=True), strict=True
    ):
        if quick:  # (as the rules would, without reading the numbers again)
            reject(line, NO_OFFSET, repr(row[0].strip()))
            continue
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
    n = len(date)
    offsets = pa.py_buffer(np.arange(n + 1, dtype=np.int32))
    space = pa.StringArray.from_buffers(n, offsets, pa.py_buffer(b" " * n))
    return [pc.binary_join_element_wise(trim(date), trim(time), space), *rest]


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
    delimiter = delimiter_of(head)
    try:
        text = first.decode("utf-8-sig", "surrogateescape")
        header = next(csv.reader(io.StringIO(text), delimiter=delimiter), None)
    except csv.Error:
        raise NeedsReference from None
    if header is None or ("\n" not in head.decode("utf-8", "replace") and len(head) >= 1 << 20):
        raise NeedsReference
    columns = resolve_columns(path, header, mapping)
    report.reader = "pyarrow csv"
    columns.apply(report, rules)
    rules.decimal_comma = decimal_comma_of(path, delimiter, columns)
    width = len(header)
    names = [f"c{i}" for i in range(width)]
    wanted = [names[i] for i in columns.positions]
    if columns.symbol is not None:  # read last, and split off: see _ours
        wanted.append(names[columns.names.index(columns.symbol)])
    split = columns.timestamp is None

    def refuse(_row: Any) -> str:
        return "error"

    read_options = pa_csv.ReadOptions(column_names=names, use_threads=False)
    parse_options = pa_csv.ParseOptions(
        delimiter=delimiter, ignore_empty_lines=False, invalid_row_handler=refuse
    )
    convert_options = pa_csv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        include_columns=wanted,
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    typed_options = pa_csv.ConvertOptions(
        decimal_point="," if rules.decimal_comma else ".",
        column_types={
            **convert_options.column_types,
            **{names[i]: pa.float64() for i in columns.positions[-5:-1]},
            names[columns.positions[-1]]: pa.int64(),
        },
        include_columns=wanted,
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    # Fractional volumes (crypto, FX) fail the int64 parse: such a block is parsed again
    # with float64 volumes, and so is every later block of the file.
    volume_column = names[columns.positions[-1]]
    fractional_options = pa_csv.ConvertOptions(
        decimal_point=typed_options.decimal_point,
        column_types={**typed_options.column_types, volume_column: pa.float64()},
        include_columns=wanted,
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    numbers = typed_options
    mine = report.symbol if columns.symbol is not None else None
    every = report.every_symbol
    line = 2 if columns.header else 1

    def parse(
        buffer: pa.Buffer, options: pa_csv.ConvertOptions
    ) -> tuple[Batch, int, dict[str, int]] | None:
        """The block's clean rows with these number types, or None (see :func:`_clean`)."""
        return _clean(
            buffer,
            read_options,
            parse_options,
            options,
            wanted,
            split,
            rules,
            mine,
            every,
            report.wanted,
        )

    try:
        for block in _blocks(path, columns.header):
            buffer = pa.py_buffer(block)
            parsed = parse(buffer, numbers)
            if parsed is None and numbers is typed_options:
                parsed = parse(buffer, fractional_options)
                if parsed is not None:
                    numbers = fractional_options
            if parsed is not None:
                clean, total, others = parsed
                if not _line_per_row(block, total):
                    raise NeedsReference  # a quoted field holds a line break
                report.skip_others(others)
                rows = len(clean)
                report.rows_read += rows
                for offset in range(0, rows, CHUNK):
                    part = clean.take(np.arange(offset, min(offset + CHUNK, rows)))
                    part.lines += line
                    yield part
                line += total
                continue
            table = pa_csv.read_csv(
                buffer,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
            if not _line_per_row(block, table.num_rows):
                raise NeedsReference  # a quoted field holds a line break
            raw = [table.column(name).combine_chunks() for name in wanted]
            blank = np.ones(table.num_rows, dtype=bool)
            for col in raw:
                blank &= _numpy(pc.utf8_length(col)) == 0
            if blank.any():
                raise NeedsReference  # a blank line or a row of empty fields
            raw, kept, others, named = _ours(raw, mine, every, report.wanted)
            report.skip_others(others)
            fields = _join(raw, split)
            lines = line + (np.arange(table.num_rows) if kept is None else kept)
            for offset in range(0, len(lines), CHUNK):
                part = [col.slice(offset, CHUNK) for col in fields]
                yield _named(
                    check_batch(part, lines[offset : offset + CHUNK], report, rules), named, line
                )
            line += table.num_rows
    except (pa.ArrowInvalid, UnicodeDecodeError):
        raise NeedsReference from None
    except (OSError, EOFError) as exc:
        raise DataImportError(f"cannot read {path}: {exc}") from None


def _ours(
    raw: list[pa.Array],
    symbol: str | None,
    every: bool = False,
    wanted: frozenset[str] | None = None,
) -> tuple[list[pa.Array], np.ndarray | None, dict[str, int], np.ndarray | None]:
    """Split off the symbol column (the last of ``raw``; None: the file has none) and keep
    the rows of ``symbol``: the columns of those rows, their indices (None: every row is
    kept), the rows of each other symbol (to count as skipped) and None. Routing ``every``
    row to its own symbol: the rows of the ``wanted`` symbols (None: every row), and last
    the symbol of each row of the block (kept or not: numbered as the block's rows)."""
    if symbol is None and not every:
        return raw, None, {}, None
    *fields, names = raw
    names = pc.utf8_trim_whitespace(pc.fill_null(pc.cast(names, pa.string()), ""))
    if every and wanted is None:
        return fields, None, {}, names.to_numpy(zero_copy_only=False)
    if every:
        ours = _bool(pc.is_in(names, value_set=pa.array(sorted(wanted or ()), pa.string())))
    else:
        ours = _bool(pc.equal(names, symbol))
    named = names.to_numpy(zero_copy_only=False) if every else None
    kept = np.flatnonzero(ours)
    if len(kept) == len(ours):
        return fields, kept, {}, named
    others = pc.value_counts(names.filter(_mask(~ours)))
    counts = zip(
        others.field("values").to_pylist(), others.field("counts").to_pylist(), strict=True
    )
    take = _indices(kept)
    return [col.take(take) for col in fields], kept, dict(counts), named


def _named(batch: Batch, names: np.ndarray | None, first: int) -> Batch:
    """``batch`` with each row's symbol from ``names`` (those of a block whose first row is
    numbered ``first``), importing every symbol; as it is otherwise."""
    if names is not None:
        batch.symbols = names[batch.lines - first]
    return batch


def _clean(
    buffer: pa.Buffer,
    read_options: pa_csv.ReadOptions,
    parse_options: pa_csv.ParseOptions,
    typed_options: pa_csv.ConvertOptions,
    wanted: Sequence[str],
    split: bool,
    rules: RowRules,
    symbol: str | None,
    every: bool = False,
    picked: frozenset[str] | None = None,
) -> tuple[Batch, int, dict[str, int]] | None:
    """A block of CSV text whose every row (of ``symbol``, if the file has a column of
    symbols: see :func:`_ours`) passes the vectorised checks, with pyarrow parsing the
    numbers (prices as float64, volumes as :func:`_volumes` gives them), the block's number
    of rows and the other symbols' rows (for the caller to count: a block that fails here
    is read again); or None.

    The fast path for clean files: no number is matched against a pattern. pyarrow's number
    parser accepts a subset of what Python's ``float`` and ``int`` accept, with the same
    (correctly rounded) values, so a row that passes here passes the row rules with the
    same values. A block with any doubtful row gives None, and is read again as text, so
    that rejected rows are reported with their text, as the ``csv`` module reads them.
    Row numbers start at 0.
    """
    try:
        table = pa_csv.read_csv(
            buffer,
            read_options=read_options,
            parse_options=parse_options,
            convert_options=typed_options,
        )
    except pa.ArrowInvalid:
        return None
    raw = [table.column(name).combine_chunks() for name in wanted]
    raw, kept, others, named = _ours(raw, symbol, every, picked)
    epochs, opens, highs, lows, closes, volumes, good, _ = _vectorised(_join(raw, split), rules)
    if not good.all():
        return None
    lines = np.arange(table.num_rows) if kept is None else kept
    batch = Batch(
        lines.astype(np.int64),
        epochs,
        opens,
        highs,
        lows,
        closes,
        volumes,
        None if named is None else named[lines],
    )
    return batch, table.num_rows, others


BLOCK = 8 << 20
"""Bytes of CSV text parsed at a time (whole lines): memory stays bounded whatever the size
of the file (pyarrow's own streaming reader reads ahead without limit)."""


def _line_per_row(block: bytes, rows: int) -> bool:
    """Whether the ``rows`` rows pyarrow read from ``block`` are a line each, as this reader
    numbers them: no quoted field holds a line break (the ``csv`` module counts its lines,
    and numbers the rows after it by them). Only a quoted field can hold one, so a block
    without a quote is a line per row (the common case: one fast search)."""
    if b'"' not in block:
        return True
    ends = block.count(b"\n")
    if b"\r" in block:  # a lone \r ends a line too (\r\n is one line end)
        ends += block.count(b"\r") - block.count(b"\r\n")
    if not block.endswith((b"\n", b"\r")):
        ends += 1  # the file's last line, without a line end
    return ends == rows


def _blocks(path: Path, header: bool = True) -> Iterator[bytes]:
    """The file's data lines (the header skipped, if it has one), decompressed, in blocks
    of whole lines."""
    with open_binary(path) as stream:
        rest = b""
        header_done = not header
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

    Row groups are read one at a time (pyarrow's ``iter_batches`` over a whole file
    decodes several ahead), so memory is bounded by the largest row group.

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
    columns.apply(report, rules)
    sources = columns.sources
    mine = report.symbol if columns.symbol is not None else None
    every = report.every_symbol
    if columns.symbol is not None:
        sources = [*sources, columns.symbol]
    split = columns.timestamp is None
    row = 1
    try:
        for group in range(parquet.num_row_groups):  # one at a time: memory bounded
            for record_batch in parquet.iter_batches(
                batch_size=CHUNK, row_groups=[group], columns=sorted(set(sources))
            ):
                raw = [record_batch.column(name) for name in sources]
                if split:
                    raw = [pc.cast(col, pa.string()) for col in raw[:2]] + raw[2:]
                raw, kept, others, named = _ours(raw, mine, every, report.wanted)
                report.skip_others(others)
                lines = row if kept is None else row + kept
                yield _named(check_batch(_join(raw, split), lines, report, rules), named, row)
                row += record_batch.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataImportError(f"cannot read {path}: {exc}") from None
