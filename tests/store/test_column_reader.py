"""The reader process: the same bars as an in-process read, errors, stop and its lifetime."""

from __future__ import annotations

import importlib.resources
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sessionkit.engine.store.column_reader import ColumnReader, ReaderFailed, StopWaiting
from sessionkit.engine.store.data_manager import DataManager
from sessionkit.engine.store.db import open_db, sqlite_file


def columns_from_reader(raw):
    """A reader's answer as in-process columns: symbol names instead of indexes."""
    symbols, index, *rest = raw
    return (list(map(symbols.__getitem__, index)), *rest)


SAMPLE = Path(str(importlib.resources.files("sessionkit.sample_db") / "sample.sqlite"))
SYMBOLS = ["ACME", "BOLT", "CRUX", "DYNA", "EMBR", "FLUX"]
START = int(datetime(2024, 11, 25, tzinfo=UTC).timestamp())
END = int(datetime(2024, 12, 4, tzinfo=UTC).timestamp())


@pytest.fixture
def manager() -> DataManager:
    return DataManager(open_db(f"sqlite:///{SAMPLE}"))


@pytest.fixture
def reader():
    reader = ColumnReader(SAMPLE)
    yield reader
    reader.close()


def _statement(manager: DataManager, symbols: list[str], lo: int, hi: int) -> tuple[str, tuple]:
    statement = manager.step_statement(symbols, "1m")
    return statement.sql, statement.params(lo, hi)


def _never() -> bool:
    return False


def test_the_reader_gives_the_same_bars_as_an_in_process_read(manager, reader) -> None:
    reader.submit(*_statement(manager, SYMBOLS, START, END))
    reader.submit(*_statement(manager, ["BOLT"], START, START + 86_400 * 2))
    first = columns_from_reader(reader.result(_never))
    second = columns_from_reader(reader.result(_never))  # answered in order
    local = manager.get_step_columns(SYMBOLS, "1m", START, END)
    assert len(local[0]) > 10_000
    assert [list(column) for column in first] == [list(column) for column in local]
    pairs, expected = manager.step_pairs(first), manager.step_pairs(local)
    assert pairs == expected
    # bit for bit, and of the same types (floats stay floats, volumes ints)
    assert [tuple(map(repr, b)) for _s, b in pairs] == [tuple(map(repr, b)) for _s, b in expected]
    assert set(second[0]) == {"BOLT"}
    assert list(second[1]) == sorted(second[1])
    assert manager.step_pairs(second) == manager.get_step_bars(
        ["BOLT"],
        "1m",
        datetime.fromtimestamp(START, UTC),
        datetime.fromtimestamp(START + 86_400 * 2, UTC),
    )


def test_an_empty_result_and_a_failing_query(manager, reader) -> None:
    reader.submit(*_statement(manager, ["NOPE"], START, END))
    assert [list(c) for c in columns_from_reader(reader.result(_never))] == [[]] * 7
    reader.submit("SELECT no_such_column FROM bars")
    with pytest.raises(ReaderFailed, match="no such column"):
        reader.result(_never)
    # a failed query leaves the reader usable
    reader.submit(*_statement(manager, ["ACME"], START, START + 86_400))
    assert len(reader.result(_never)[1]) > 0
    assert reader.alive


def test_a_stop_ends_a_wait_and_the_process(reader) -> None:
    # A query that runs for minutes: the wait must still end at once on a stop.
    reader.submit(ENDLESS)
    asked = time.monotonic()
    with pytest.raises(StopWaiting):
        reader.result(lambda: time.monotonic() - asked > 0.2)
    assert not reader.alive
    with pytest.raises(ReaderFailed):
        reader.submit("SELECT 1")


def test_a_dead_reader_is_reported(reader) -> None:
    reader.process.kill()
    reader.process.wait(5)
    with pytest.raises(ReaderFailed, match="gone"):
        reader.submit("SELECT 1")
        reader.result(_never)


ENDLESS = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
    "SELECT 'A', i, 1.0, 1.0, 1.0, 1.0, 1 FROM n WHERE i < 0"
)
"""A query that never ends (and never returns a row)."""


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "inside-a-query"])
def test_the_reader_does_not_outlive_the_engine_process(tmp_path: Path, busy: bool) -> None:
    """The engine's process dies without closing it: the reader exits on its own, even in
    the middle of a query that never ends (it ran on until the query's end, and its next
    use of the socket)."""
    script = (
        "import os, sys, time\n"
        "from sessionkit.engine.store.column_reader import ColumnReader\n"
        f"reader = ColumnReader({str(SAMPLE)!r})\n"
        + (
            f"reader.submit({ENDLESS!r})\n"
            # the reader is inside the query once it has been at it for a while
            "time.sleep(0.5)\n"
            if busy
            else ""
        )
        + "print(reader.process.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    pid = int(out.stdout)
    for _ in range(100):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":  # exited, not yet reaped by its new parent
            return
        time.sleep(0.05)
    pytest.fail(f"the reader process {pid} outlived the engine's process")


def test_sqlite_file_is_none_for_other_databases(tmp_path: Path) -> None:
    assert sqlite_file(open_db(f"sqlite:///{SAMPLE}")) == SAMPLE
    from sqlalchemy import create_engine

    assert sqlite_file(create_engine("sqlite://")) is None
    assert sqlite_file(create_engine("sqlite:///file:x?mode=ro&uri=true")) is None
