"""Sessions read by a reader process: the same answers as reading in-process, a reader that
dies mid-run, a stop while waiting for it, and no reader left behind."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from running import run_to_end
from sessionkit.engine.config import load_config
from sessionkit.engine.pipeline import coordinator as coordinator_module
from sessionkit.engine.pipeline import history as history_module
from sessionkit.engine.pipeline.runtime import Runtime
from sessionkit.engine.pipeline.session import Session
from sessionkit.engine.store.column_reader import ColumnReader
from sessionkit.engine.store.data_manager import DataManager, StepStatement

DAYS = {"backtest": {"clock": "data-driven", "start_date": "2024-11-25", "end_date": "2024-12-13"}}


def _run(reader: str, tmp_path: Path, name: str) -> tuple[Session, dict[str, bytes], tuple]:
    session = run_to_end(Session(load_config("demo", DAYS), record=True, reader=reader))
    files = session.export_csv(tmp_path / name)
    exported = {str(f.relative_to(tmp_path / name)): f.read_bytes() for f in files}
    signals = session.signals()
    return session, exported, signals


def test_a_reader_process_gives_the_same_run_as_reading_in_process(tmp_path: Path) -> None:
    read, exported, signals = _run("process", tmp_path, "process")
    inline, expected, expected_signals = _run("inline", tmp_path, "inline")
    reader = read.coordinator._reader
    assert reader is not None and reader.failed == "closed"  # used, then closed at the end
    assert not reader.alive
    assert inline.coordinator._reader is None
    assert len(expected) == 18 and exported == expected
    assert signals == expected_signals and len(signals) > 100
    assert not any(e.level == "warning" for e in read.snapshot().events)
    # The reader process is in the per-thread breakdown: busy reading, waiting otherwise.
    threads = {t.name: t for t in read.snapshot().metrics.threads}
    assert "session_reader" not in {t.name for t in inline.snapshot().metrics.threads}
    stats = threads["session_reader"]
    assert stats.messages == reader.reads >= 2  # the first session is read in-process
    assert 0.0 < stats.busy_seconds == stats.load_seconds
    assert stats.waiting_seconds > 0.0
    assert list(threads)[-1] == "session_reader"
    for run in (read, inline):  # the loads' reading part is measured apart
        coordinator = run.coordinator.stats()
        loads = coordinator.initial_load_seconds + sum(coordinator.subsequent_load_seconds)
        assert 0.0 < coordinator.read_seconds < loads


@pytest.mark.parametrize("head_start", [True, False])
def test_with_a_long_history_the_reader_reads_the_first_session_too(
    tmp_path: Path, monkeypatch, head_start: bool
) -> None:
    """With enough trailing history (the demo's 5 days x 6 symbols are 11,700 bars), the
    reader reads the first session (and some of the history) while the indicators warm
    up: no session is read in-process, and the run is the same."""
    monkeypatch.setattr(
        coordinator_module, "READER_HEAD_START_BARS", 11_700 if head_start else 11_701
    )
    local = _calls(monkeypatch, "get_step_columns")
    read, exported, signals = _run("process", tmp_path, "process")
    assert read.coordinator._history_bars() == 11_700
    assert len(local) == (0 if head_start else 1)  # without: the first session, here
    monkeypatch.undo()
    _inline, expected, expected_signals = _run("inline", tmp_path, "inline")
    assert exported == expected and signals == expected_signals


def test_the_reader_is_asked_for_two_reads_ahead() -> None:
    """The reader reads the read after next while the engine has not taken the next one
    yet: once the first session is loaded, two reads of the sessions that follow it, one
    after the other, are asked for."""
    session = Session(load_config("demo", DAYS), reader="process", start_paused=True)
    session.start()
    try:
        assert session.wait_idle(30)
        coordinator = session.coordinator
        assert coordinator._reader is not None and coordinator._reader.pending == 2
        (first, sessions), (second, _later) = coordinator._pending
        assert first == 2 and second == first + len(sessions)
    finally:
        assert session.stop()


def _calls(monkeypatch, name: str) -> list[tuple]:
    """The arguments of every call of ``DataManager.<name>`` from now on (reads made in
    this process)."""
    calls: list[tuple] = []
    method = getattr(DataManager, name)

    def counted(self, *args, **kwargs):
        calls.append(args)
        return method(self, *args, **kwargs)

    monkeypatch.setattr(DataManager, name, counted)
    return calls


def _logged(monkeypatch) -> list[tuple[str, str]]:
    """Every (level, message) the runs log from now on (their event logs keep 500)."""
    logged: list[tuple[str, str]] = []
    log = Runtime.log

    def keep(self, message, level="info", **kwargs):
        logged.append((level, message))
        return log(self, message, level, **kwargs)

    monkeypatch.setattr(Runtime, "log", keep)
    return logged


def _history_by_reader(monkeypatch, symbols_per_read: int = 2) -> list[list[str]]:
    """Make the demo's history (5 days x 6 symbols) long enough for the reader, read in
    groups of ``symbols_per_read`` symbols, all by the reader; returns the groups made."""
    monkeypatch.setattr(coordinator_module, "READER_HEAD_START_BARS", 11_700)
    monkeypatch.setattr(history_module, "HISTORY_READ_BARS", 1950 * symbols_per_read)
    monkeypatch.setattr(history_module.HistoryReads, "here", staticmethod(lambda h, s: 0))
    groups: list[list[str]] = []
    made = history_module.HistoryReads.__init__

    def init(self, *args, **kwargs):
        made(self, *args, **kwargs)
        groups.extend(self.groups)

    monkeypatch.setattr(history_module.HistoryReads, "__init__", init)
    return groups


def test_the_history_read_by_the_reader_gives_the_same_run(tmp_path: Path, monkeypatch) -> None:
    """The reader reads the history, a few symbols a read, while the processor warms up
    on the symbols before (none is read here), then the first session: the same run as
    reading everything in-process."""
    groups = _history_by_reader(monkeypatch)
    logged = _logged(monkeypatch)
    local = _calls(monkeypatch, "get_bars_between")
    read, exported, signals = _run("process", tmp_path, "process")
    assert groups == [[], ["ACME", "BOLT"], ["CRUX", "DYNA"], ["EMBR", "FLUX"]]
    assert local == []  # no history read in this process
    assert read.coordinator._reader.reads >= 4  # three history reads and the sessions'
    assert any("11694 history bars" in message for _level, message in logged)
    monkeypatch.undo()
    _inline, expected, expected_signals = _run("inline", tmp_path, "inline")
    assert exported == expected and signals == expected_signals


def test_a_reader_that_dies_during_the_history_reads_is_replaced(
    tmp_path: Path, monkeypatch
) -> None:
    """The reader dies after its first history read: the symbols left are read in this
    process, a warning says so, and the run is the same."""
    _history_by_reader(monkeypatch)
    logged = _logged(monkeypatch)
    take = history_module.HistoryReads._take

    def dying(self) -> None:
        if self._taken == 2 and self._reader is not None:
            self._reader.process.kill()
            self._reader.process.wait(5)
        take(self)

    monkeypatch.setattr(history_module.HistoryReads, "_take", dying)
    read, exported, signals = _run("process", tmp_path, "process")
    assert "gone" in read.coordinator._reader.failed
    warnings = [message for level, message in logged if level == "warning"]
    assert any("reader process failed" in m for m in warnings), warnings
    _inline, expected, expected_signals = _run("inline", tmp_path, "inline")
    assert exported == expected and signals == expected_signals


def test_a_reader_that_dies_mid_run_is_replaced_by_in_process_reads(
    tmp_path: Path, monkeypatch
) -> None:
    logged = _logged(monkeypatch)
    config = load_config("demo", DAYS)
    session = Session(config, record=True, start_paused=True, reader="process")
    session.start()
    assert session.wait_idle(30)
    reader = session.coordinator._reader
    assert reader is not None and reader.alive
    reader.process.kill()
    session.resume()
    assert session.wait(60)
    assert session.stop()
    assert session.snapshot().state == "completed", session.snapshot().error
    warnings = [message for level, message in logged if level == "warning"]
    assert [m for m in warnings if "reader process failed" in m], warnings
    assert "gone" in session.coordinator._reader.failed  # in-process from then on
    files = session.export_csv(tmp_path / "after")
    _inline, expected, _signals = _run("inline", tmp_path, "inline")
    assert {str(f.relative_to(tmp_path / "after")): f.read_bytes() for f in files} == expected


@pytest.mark.parametrize("waiting_for", ["a session", "a history read"])
def test_a_stop_while_waiting_for_the_reader(waiting_for: str, monkeypatch) -> None:
    """Every read the reader is asked for runs for ever: the first session to read from it
    (or, with the history read by it, the warm-up) waits on it, and a stop ends the run
    within a second."""
    if waiting_for == "a history read":
        _history_by_reader(monkeypatch)

    def endless(self, *args, **kwargs):
        sql = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
            "SELECT 'A', i, 1.0, 1.0, 1.0, 1.0, 1 FROM n WHERE i < 0 AND ? < ?"
        )
        return StepStatement(sql, (0, 0), ("lo", "hi"))

    monkeypatch.setattr(DataManager, "step_statement", endless)
    waiting = threading.Event()
    result = ColumnReader.result

    def waited_for(self, stopping):
        waiting.set()
        return result(self, stopping)

    monkeypatch.setattr(ColumnReader, "result", waited_for)
    session = Session(load_config("demo", DAYS), reader="process")
    session.start()
    try:  # a failed assert must not leave the endless read running
        deadline = time.monotonic() + 30
        while session.coordinator._reader is None or not session.coordinator._reader.pending:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        reader = session.coordinator._reader
        # The coordinator (or the warm-up) waits for the reader's answer: loading the second
        # session (the first was read here and streamed, however long that takes), or the
        # first one's history.
        assert waiting.wait(30)
        assert session.snapshot().state == "initializing"
        asked = time.monotonic()
        assert session.stop(timeout=1.0)
        assert time.monotonic() - asked < 1.0
        assert session.snapshot().state == "stopped"
        assert not reader.alive
    finally:
        session.stop(timeout=1.0)


def test_reader_choices() -> None:
    config = load_config("demo", DAYS)
    with pytest.raises(ValueError, match="reader must be one of"):
        Session(config, reader="threads")  # type: ignore[arg-type]
    # auto: a reader process from the main process of a machine with 2 cores or more, on a
    # SQLite file, for a run long enough to be worth starting it (the demo's 58,000 bars)
    session = Session(load_config("demo"), start_paused=True)
    session.start()
    try:
        assert session.wait_idle(30)
        assert (session.coordinator._reader is not None) == (len(os.sched_getaffinity(0)) >= 2)
    finally:
        assert session.stop()
    # ... and in-process for a short run (two days)
    short = {"backtest": {**DAYS["backtest"], "end_date": "2024-11-26"}}
    assert run_to_end(Session(load_config("demo", short))).coordinator._reader is None


def test_fractional_volumes_come_through_the_reader_as_read_in_process(
    tmp_path: Path, monkeypatch
) -> None:
    """Crypto volumes are fractional (SQLite stores them as doubles beside whole ones as
    integers): the reader gives them as reading in-process does, values and types, for
    the sessions and for the history it reads."""
    import sqlite3

    from sessionkit.engine.config import config_from_dict
    from test_exchanges import CASES, build_world
    from test_exchanges import config as exchange_config

    path = tmp_path / "mixed.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE bars (symbol, start, o, h, l, c, volume BIGINT)")
        db.executemany(
            "INSERT INTO bars VALUES ('BTC', ?, 1.0, 2.0, 0.5, 1.5, ?)",
            [(60, 10), (120, 7.5), (180, 2**62 + 1), (240, 0.00123)],
        )
    reader = ColumnReader(path)
    try:
        reader.submit("SELECT * FROM bars ORDER BY start")
        *_, volumes = reader.result(lambda: False)
    finally:
        reader.close()
    assert volumes == [10, 7.5, 2**62 + 1, 0.00123]  # exact beside fractional ones
    assert [type(v) for v in volumes] == [int, float, int, float]

    world = build_world(next(c for c in CASES if c.code == "24/7"), tmp_path)
    monkeypatch.setattr(coordinator_module, "READER_HEAD_START_BARS", 0)  # history too
    monkeypatch.setattr(history_module.HistoryReads, "here", staticmethod(lambda h, s: 0))
    runs = {}
    for mode in ("process", "inline"):
        config = config_from_dict(exchange_config(world))
        session = run_to_end(Session(config, record=True, reader=mode))
        runs[mode] = {key: list(rows) for key, rows in session.processor.record.items()}
        if mode == "process":
            assert session.coordinator._reader.reads >= 2  # the history, the next sessions
    assert runs["process"] == runs["inline"]
    bars = [bar for bar, _row in runs["process"]["AAA", "1m"]]
    assert [type(b.volume) for b in bars] == [
        type(b.volume) for b, _ in runs["inline"]["AAA", "1m"]
    ]
    assert {type(b.volume) for b in bars} == {int, float}  # 13 (104 / 8) and 12.5
