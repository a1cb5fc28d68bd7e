"""The export is written as the run goes: rows leave memory once written, files appear
complete at the end, and the result equals the export written after the run."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from sessionkit.engine.config import load_config
from sessionkit.engine.pipeline.session import Session
from sessionkit.engine.runs.backtest import BacktestRun
from sessionkit.engine.store.export import ExportWriter

sys.path.insert(0, str(Path(__file__).parents[1] / "pipeline"))
from export_digest import export_digest  # noqa: E402

FIXTURE = Path(__file__).parents[1] / "pipeline" / "fixtures" / "nyse_exports.json"


def writer_of(session: Session, directory: Path, backlog: int) -> ExportWriter:
    names = {key: stream.names for key, stream in session.processor.streams.items()}
    return ExportWriter(
        directory,
        session.processor.record,
        names,
        session.quality.record,
        session.runtime.tz,
        session.bar_end_of(),
        backlog=backlog,
    )


def test_rows_are_written_and_forgotten_while_the_run_goes(tmp_path: Path) -> None:
    expected = json.loads(FIXTURE.read_text(encoding="utf-8"))["runs"]["demo"]
    config = load_config("demo", {"backtest": {"clock": "data-driven"}})
    session = Session(config, record="drain", start_paused=True)
    out = tmp_path / "export"
    writer = writer_of(session, out, backlog=1)
    session.start()
    try:
        assert session.wait_idle(30)
        session.step(2 * 390)  # two whole sessions and the next one's first minutes
        assert session.wait_idle(60)
        assert session.quality.wait_done(session.coordinator.seq, 60)
        recorded = writer.pending()
        assert recorded > 0
        written = writer.drain()
        # Every bar whose quality is known went to disk and left memory; the derived
        # windows still open wait for their end.
        assert written > 0.9 * recorded
        assert writer.pending() == recorded - written
        assert not (out / "ACME" / "1m.csv").exists()  # files appear only when complete
        assert list(out.glob("ACME/.1m.csv.*.tmp"))
        session.resume()
        deadline = time.monotonic() + 120
        while not session.wait(0.01):  # the writer must keep up (or the run waits for it)
            writer.drain()
            assert time.monotonic() < deadline, "the session did not finish in time"
    finally:
        assert session.stop()
    assert session.snapshot().state == "completed"
    writer.finish()
    assert writer.pending() == 0
    assert all(not q for q in session.quality.record.values())
    assert export_digest(out) == expected
    assert not list(out.rglob("*.tmp"))


def test_a_failed_run_leaves_no_export_behind(tmp_path: Path) -> None:
    config = load_config(
        "demo",
        {
            "backtest": {"start_date": "2024-12-02", "end_date": "2024-12-02"},
            "analysis": {
                "entry": "pipeline_analyses:Raiser",
                "on_error": "stop",
                "options": {"after": 5},
            },
        },
    )
    run = BacktestRun(config, export=tmp_path / "a" / "b")
    run.start()
    try:
        run.follow()
    finally:
        run.stop()
    result = run.result()
    assert result.state == "error"
    assert result.export == ()
    assert not (tmp_path / "a").exists()


def test_the_run_waits_for_an_export_that_falls_behind(tmp_path: Path, monkeypatch) -> None:
    """A bounded pipeline: at a session's end the run waits while more than
    ``EXPORT_BACKLOG`` rows wait for the writer, so however long the run, the export never
    holds more than that and a session's rows in memory."""
    from sessionkit.engine.pipeline import coordinator

    monkeypatch.setattr(coordinator, "EXPORT_BACKLOG", 100)
    config = load_config(
        "demo",
        {
            "backtest": {
                "clock": "data-driven",
                "start_date": "2024-12-02",
                "end_date": "2024-12-04",
            }
        },
    )
    session = Session(config, record="drain")
    writer = writer_of(session, tmp_path / "out", backlog=1)
    session.start()
    try:
        # Nobody drains: the first session streams to its close, then the run waits.
        deadline = time.monotonic() + 60
        while session.snapshot().metrics.steps < 390 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        snap = session.snapshot()
        assert snap.metrics.steps == 390 and snap.session_index == 1
        assert snap.state not in ("completed", "error")
        assert writer.pending() > 100
        # Drained, it carries on to the end.
        while not session.wait(0.01):
            writer.drain()
    finally:
        assert session.stop()
    assert session.snapshot().state == "completed"
    writer.finish()
    lines = (tmp_path / "out" / "ACME" / "1m.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 3 * 390
