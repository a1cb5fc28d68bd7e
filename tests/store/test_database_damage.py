"""A damaged database is a user's problem said in one line (QA: a traceback, exit 1)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from importlib.resources import as_file, files

import pytest
from sessionkit.engine.config import load_config
from sessionkit.engine.errors import DatabaseError
from sessionkit.engine.pipeline.runtime import describe_error
from sessionkit.engine.pipeline.session import Session
from sqlalchemy.exc import OperationalError


@pytest.fixture
def damaged(tmp_path):
    """A copy of the bundled database whose index of bars has its root page is overwritten."""
    with as_file(files("sessionkit.sample_db") / "sample.sqlite") as source:
        path = tmp_path / "damaged.sqlite"
        shutil.copy(source, path)
    db = sqlite3.connect(path)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    (root,) = db.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_bars_1'"
    ).fetchone()
    db.close()
    with open(path, "r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\xa5" * page_size)
    return path


def test_a_damaged_database_is_refused_with_what_to_do(damaged) -> None:
    config = load_config("demo", {"database_url": f"sqlite:///{damaged}"})
    with pytest.raises(DatabaseError) as caught:
        Session(config)
    message = str(caught.value)
    assert message.startswith(f"cannot read database sqlite:///{damaged}: ")
    assert "malformed" in message and "PRAGMA integrity_check" in message


def test_the_command_says_it_in_one_line_exit_2(damaged) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sessionkit.engine.cli", "run", "demo", "--db", str(damaged)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        f"sessionkit: error: cannot read database sqlite:///{damaged}: database disk image is "
        "malformed (the file is damaged: sqlite3 FILE 'PRAGMA integrity_check' says where)"
    ]


def test_a_database_error_that_ends_a_run_is_said_without_its_sql() -> None:
    locked = OperationalError(
        "SELECT bars.symbol FROM bars WHERE bars.start >= ?",
        (1,),
        sqlite3.OperationalError("database is locked"),
    )
    assert describe_error(locked) == (
        "database error: OperationalError: database is locked (another program was writing "
        "to the database, e.g. an import)"
    )
    assert describe_error(ValueError("x")) == "ValueError: x"


def test_damage_found_while_counting_the_windows_bars_is_said_too(monkeypatch) -> None:
    """QA: damage met by the window's bar count (before the run) raised a traceback."""
    from sessionkit.engine.runs import backtest

    def damaged_count(*_args, **_kwargs):
        raise OperationalError(
            "SELECT count(*) FROM bars",
            (),
            sqlite3.DatabaseError("database disk image is malformed"),
        )

    monkeypatch.setattr(backtest, "_bars_per_session", damaged_count)
    session = Session(load_config("demo"))
    with pytest.raises(
        DatabaseError, match=r"^cannot read database sqlite:///.*malformed \(the file"
    ):
        backtest.window_coverage(session)
