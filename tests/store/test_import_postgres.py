"""Imports into a real PostgreSQL server (psycopg): COPY into a staging table, then
INSERT ... ON CONFLICT DO NOTHING; the same rows and report as SQLite."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sessionkit.engine.store.db import init_db
from sessionkit.engine.store.import_dbn import import_dbn
from sessionkit.engine.store.importing import import_bars
from test_import_csv import HEADER, MIXED
from test_import_dbn import session_bars, write_dbn
from test_import_formats import MIXED_SPLITTABLE, _rows, _same


@pytest.fixture
def pg(postgres_url: str):
    engine = init_db(postgres_url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("text", [MIXED, MIXED_SPLITTABLE], ids=["csv-module", "pyarrow"])
def test_postgres_imports_what_sqlite_imports(pg, tmp_path: Path, text: str) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(text)
    lite = init_db(f"sqlite:///{tmp_path / 'lite.sqlite'}")
    expected = import_bars(lite, path, "BRK.B", "1m")
    report = import_bars(pg, path, "BRK.B", "1m")
    _same(report, expected)
    assert report.imported == expected.imported > 0
    assert _rows(pg) == _rows(lite)
    again = import_bars(pg, path, "BRK.B", "1m")
    assert (again.imported, again.already_present) == (0, expected.imported)
    lite.dispose()


def test_postgres_uses_copy(pg) -> None:
    from sessionkit.engine.store.importing import BarSink, ImportReport

    with pg.connect() as connection:
        sink = BarSink(connection, ImportReport(Path("x"), "SPY", "1m"))
        assert sink._copy is not None and "ON CONFLICT" in (sink._sql or "")


def test_two_imports_at_once_on_postgres(pg, tmp_path: Path) -> None:
    lines = [HEADER.strip()] + [
        f"2011-01-{3 + i // 390:02d}T{9 + (30 + i % 390) // 60:02d}:{(30 + i % 390) % 60:02d}"
        f":00-05:00,1,2,0.5,1.5,{i}"
        for i in range(3000)
    ]
    path = tmp_path / "same.csv"
    path.write_text("\n".join(lines) + "\n")
    reports: list = []
    errors: list = []
    barrier = threading.Barrier(2)

    def work(reader: str) -> None:
        barrier.wait()
        try:
            reports.append(import_bars(pg, path, "SPY", "1m", reader=reader))
        except Exception as exc:  # pragma: no cover - the failure this test guards against
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in ("csv", "arrow")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r.imported for r in reports) == 3000
    assert sum(r.already_present for r in reports) == 3000
    assert len(_rows(pg)) == 3000


def test_dbn_into_postgres(pg, tmp_path: Path) -> None:
    path = write_dbn(tmp_path / "x.dbn", session_bars(5, 30), symbols={"ES=F": 5})
    (report,) = import_dbn(pg, path)
    assert (report.symbol, report.imported) == ("ES=F", 30)
    assert [r.already_present for r in import_dbn(pg, path)] == [30]
