"""An import into PostgreSQL looks stored rows up through the index, whatever the table's
statistics (QA: 200,000 one-minute rows took 224 s: without statistics on the table
being filled, the planner took a list of 400 starts for the whole table and read all of
it for every list; after the fix, 7.5 s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sessionkit.engine.store.db import init_db
from sessionkit.engine.store.importing import BarSink, ImportReport
from sqlalchemy import text

ROWS = 200_000
START = 1_420_122_600  # 2015-01-01 14:30 UTC


def test_the_lookup_of_stored_rows_reads_only_those_rows(postgres_server) -> None:
    engine = init_db(postgres_server.new_database("lookup"))
    try:
        with engine.begin() as connection:  # one transaction: the table is never analysed
            connection.execute(
                text(
                    "INSERT INTO bars (symbol, interval, start, open, high, low, close, volume) "
                    "SELECT 'BENCH', '1m', :start + 60 * g, 1, 1, 1, 1, 1 "
                    "FROM generate_series(0, :rows - 1) AS g"
                ),
                {"start": START, "rows": ROWS},
            )
            sink = BarSink(connection, ImportReport(Path("bars.csv"), "BENCH", "1m"))
            # Sparse starts (one an hour, as a file's weekends and nights make them): they
            # are looked up start by start, not as the span; many times, as the chunks of
            # a file do (psycopg prepares a statement run five times, and PostgreSQL then
            # plans it once for any values: that plan read every row of the symbol).
            starts = np.arange(START, START + 60 * ROWS, 3600, dtype=np.int64)
            for _chunk in range(12):
                before = touched(connection)
                stored = sink._stored(starts, int(starts[0]), int(starts[-1]))
                assert sorted(row[0] for row in stored) == starts.tolist()
                assert touched(connection) - before <= 2 * len(starts)
    finally:
        engine.dispose()


def touched(connection) -> int:
    """Rows of ``bars`` this transaction has read so far (by scans and through indexes)."""
    seq, fetched = connection.exec_driver_sql(
        "SELECT coalesce(seq_tup_read, 0), coalesce(idx_tup_fetch, 0) "
        "FROM pg_stat_xact_user_tables WHERE relname = 'bars'"
    ).one()
    return seq + fetched


def test_init_of_a_database_that_does_not_exist_says_so_in_the_drivers_words(
    postgres_server,
) -> None:
    """QA: the message named the exception's class (``OperationalError: ...``), unlike the
    other commands'; it says what to do now."""
    from sessionkit.engine.errors import DatabaseError

    with pytest.raises(DatabaseError) as raised:
        init_db(postgres_server.url_of("nosuch"))
    message = str(raised.value)
    assert message.startswith("cannot create the schema in postgresql+psycopg://")
    assert 'database "nosuch" does not exist' in message and "createdb" in message
    assert "Error:" not in message
