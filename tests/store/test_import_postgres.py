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
from test_import_formats import MIXED_SPLITTABLE, _polygon, _rows, _same


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


def test_every_symbol_of_a_file_into_postgres(pg, tmp_path: Path) -> None:
    """Each symbol's sink stages its rows in the one temporary table of the connection:
    every symbol of a file gives the rows and counts SQLite gives."""
    path = _polygon(tmp_path / "day.csv", bad_line=True)
    lite = init_db(f"sqlite:///{tmp_path / 'lite.sqlite'}")
    expected = import_bars(lite, path, None, "1m")
    report = import_bars(pg, path, None, "1m")
    _same(report, expected)
    assert _rows(pg) == _rows(lite) and report.imported == 13
    again = import_bars(pg, path, None, "1m", reader="csv")
    assert (again.imported, again.already_present) == (0, 13)
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


def test_fractional_volumes_on_postgres(pg, tmp_path: Path) -> None:
    """Crypto and FX volumes are fractional: PostgreSQL stores them in a double column,
    as SQLite does, whichever reader read the file."""
    lines = [HEADER.strip()] + [
        f"2024-03-05T00:{m:02d}:00+00:00,1,2,0.5,1.5,{v}"
        for m, v in enumerate(["0.00123", "1271.034", "12", "7.5"])
    ]
    path = tmp_path / "btc.csv"
    path.write_text("\n".join(lines) + "\n")
    for reader in ("csv", "arrow"):
        report = import_bars(pg, path, f"BTC-{reader}", "1m", reader=reader)
        assert (report.imported, report.rejected_total) == (4, 0)
    volumes = {}
    for row in _rows(pg):
        volumes.setdefault(row[0], []).append(row[-1])
    assert volumes == {
        "BTC-csv": [0.00123, 1271.034, 12, 7.5],
        "BTC-arrow": [0.00123, 1271.034, 12, 7.5],
    }


def test_an_older_postgres_database_is_widened_by_db_init(pg, postgres_url, tmp_path: Path) -> None:
    """A database created before fractional volumes has an integer volume column, which
    PostgreSQL would round 7.5 into: the import refuses, naming the row and the upgrade,
    and keeps nothing; ``db init`` widens the column, keeping every row."""
    from sessionkit.engine.errors import DataImportError
    from sessionkit.engine.store.db import init_or_upgrade_db

    with pg.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE bars ALTER COLUMN volume TYPE bigint")
    whole = tmp_path / "whole.csv"
    whole.write_text(HEADER + "2024-03-04T00:00:00+00:00,1,2,0.5,1.5,10\n")
    assert import_bars(pg, whole, "BTC", "1m").imported == 1
    path = tmp_path / "btc.csv"
    path.write_text(
        HEADER
        + "2024-03-05T00:00:00+00:00,1,2,0.5,1.5,10\n"
        + "2024-03-05T00:01:00+00:00,1,2,0.5,1.5,7.5\n"
    )
    for reader in ("csv", "arrow"):
        with pytest.raises(DataImportError) as failure:
            import_bars(pg, path, "BTC", "1m", reader=reader)
        message = str(failure.value)
        assert "btc.csv, line 3: volume 7.5 is fractional" in message
        assert "sessionkit db init --db URL" in message
        assert [r[-1] for r in _rows(pg)] == [10]  # nothing of the file was kept
    engine, changed = init_or_upgrade_db(postgres_url)
    assert changed == [("bars", "volume")]
    assert init_or_upgrade_db(postgres_url)[1] == []  # once
    report = import_bars(engine, path, "BTC", "1m")
    assert report.imported == 2
    assert [r[-1] for r in _rows(engine)] == [10, 10, 7.5]
    engine.dispose()


def test_bar_ids_are_64_bit_and_an_older_database_is_widened(
    pg, postgres_url, tmp_path: Path
) -> None:
    """QA: ``bars.id`` was a 32-bit SERIAL: about 2.1 billion bars, and every import's
    conflicting rows use up sequence numbers too (a second import of a million rows used
    a million). New databases have a 64-bit key; ``db init`` widens an older one."""
    from sessionkit.engine.store.db import init_or_upgrade_db

    def kinds(engine) -> tuple[str, str]:
        with engine.connect() as connection:
            column = connection.exec_driver_sql(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = 'bars' AND column_name = 'id'"
            ).scalar()
            sequence = connection.exec_driver_sql(
                "SELECT data_type FROM information_schema.sequences "
                "WHERE sequence_name = 'bars_id_seq'"
            ).scalar()
        return column, sequence

    assert kinds(pg) == ("bigint", "bigint")
    with pg.begin() as connection:  # as an older sessionkit made it
        connection.exec_driver_sql("ALTER TABLE bars ALTER COLUMN id TYPE integer")
        connection.exec_driver_sql("ALTER SEQUENCE bars_id_seq AS integer")
        connection.exec_driver_sql("SELECT setval('bars_id_seq', 2147483000)")
    assert kinds(pg) == ("integer", "integer")
    engine, changed = init_or_upgrade_db(postgres_url)
    assert changed == [("bars", "id")]
    assert kinds(engine) == ("bigint", "bigint")
    assert init_or_upgrade_db(postgres_url)[1] == []  # once
    with engine.begin() as connection:  # past the 32-bit limit
        connection.exec_driver_sql("SELECT setval('bars_id_seq', 3000000000)")
    path = tmp_path / "late.csv"
    path.write_text(
        HEADER + "".join(f"2024-03-05T00:0{m}:00+00:00,1,2,0.5,1.5,10\n" for m in range(3))
    )
    assert import_bars(engine, path, "BTC", "1m").imported == 3
    with engine.connect() as connection:
        ids = [r[0] for r in connection.exec_driver_sql("SELECT id FROM bars ORDER BY id")]
    assert len(ids) == 3 and min(ids) > 2**31
    engine.dispose()


def test_postgres_checks_the_session_grid_and_refuses_a_file_of_no_valid_row(
    pg, tmp_path: Path
) -> None:
    from datetime import date

    from sessionkit.engine.errors import DataImportError
    from sessionkit.engine.store.calendar_fill import fill_calendar

    fill_calendar(pg, "NYSE", date(2011, 1, 1), date(2011, 1, 31))
    path = tmp_path / "hours.csv"
    path.write_text(
        HEADER + "".join(f"2011-01-03T{h:02d}:00:00-05:00,1,2,0.5,1.5,10\n" for h in (9, 10, 11))
    )
    report = import_bars(pg, path, "CLK", "1h")
    assert (report.imported, report.grid_exchanges, report.off_grid) == (3, ("NYSE",), 2)
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "2011-01-03T09:30:00-05:00,1,0.2,0.5,1,10\n")
    with pytest.raises(DataImportError, match="nothing imported"):
        import_bars(pg, bad, "BAD", "1m")
    with pg.connect() as connection:
        assert connection.exec_driver_sql("SELECT symbol FROM symbols").scalars().all() == ["CLK"]


def test_rows_out_of_order_on_postgres(pg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows out of time order look stored rows up start by start (QA: reading each chunk's
    span back cost time growing with the square of the rows): on PostgreSQL too."""
    import random

    from sessionkit.engine.store import import_csv

    monkeypatch.setattr(import_csv, "CHUNK", 40)
    stamps = [
        f"2011-01-03T{9 + (30 + i) // 60:02d}:{(30 + i) % 60:02d}:00-05:00" for i in range(300)
    ]
    order = list(range(300))
    random.Random(5).shuffle(order)
    path = tmp_path / "shuffled.csv"
    path.write_text(HEADER + "".join(f"{stamps[i]},1,2,0.5,1.5,{i}\n" for i in order))
    assert import_bars(pg, path, "SPY", "1m", reader="csv").imported == 300
    path.write_text(
        HEADER + "".join(f"{stamps[i]},1,2,0.5,1.5,{i + (i % 100 == 0)}\n" for i in order)
    )
    again = import_bars(pg, path, "SPY", "1m", reader="csv")
    assert (again.imported, again.already_present, again.conflicting) == (0, 300, 3)
