"""Shared pytest fixtures."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def calendar_db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a SQLite database holding the NYSE calendar 2010-01-01..2030-12-31.

    Built once per test run from ``exchange_calendars`` (XNYS), with the ``exchanges`` row
    NYSE / America/New_York. Tests must not write to it.
    """
    import warnings

    import exchange_calendars as xcals
    from sessionkit.engine.store.db import CalendarDay, Exchange, init_db
    from sqlalchemy import insert

    path = tmp_path_factory.mktemp("calendar") / "calendar.sqlite"
    url = f"sqlite:///{path}"
    engine = init_db(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exchange_calendars' own pandas deprecations
        calendar = xcals.get_calendar("XNYS", start="2010-01-01", end="2030-12-31")
    schedule = calendar.schedule
    early = set(calendar.early_closes)
    rows = [
        {
            "exchange": "NYSE",
            "session_date": session.date(),
            "open": opens.to_pydatetime(),
            "close": closes.to_pydatetime(),
            "early_close": session in early,
        }
        for session, opens, closes in zip(
            schedule.index, schedule["open"], schedule["close"], strict=True
        )
    ]
    with engine.begin() as connection:
        connection.execute(insert(Exchange), [{"name": "NYSE", "timezone": "America/New_York"}])
        connection.execute(insert(CalendarDay), rows)
    engine.dispose()
    return url


class PostgresServer:
    """A real PostgreSQL server started for the test run (Debian's ``postgresql`` package).

    ``url`` is its ``postgres`` database; :meth:`new_database` creates an empty one.
    """

    def __init__(self, root: Path, port: int, as_postgres: list[str], pg_bin: Path) -> None:
        self.root = root
        self.port = port
        self._as_postgres = as_postgres
        self._pg_bin = pg_bin
        self._count = 0
        self.url = self.url_of("postgres")

    def url_of(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "test") -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        import psycopg

        self._count += 1
        name = f"{prefix}_{self._count}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url_of(name)

    def stop(self) -> None:
        subprocess.run(
            [
                *self._as_postgres,
                str(self._pg_bin / "pg_ctl"),
                "-D",
                str(self.root / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
            check=False,
            timeout=60,
        )


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return candidates[-1].parent if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on a free port for the whole test run, stopped at the end.

    Fails (never skips) when it cannot start: ``.ci/run`` installs Debian's ``postgresql``
    package when ``pg_ctl`` is missing. ``initdb`` and ``pg_ctl`` refuse to run as root, so
    as root they run as the ``postgres`` user (``runuser -u postgres --``). Durability is
    off (``fsync=off``): the data lives only as long as the tests.
    """
    pg_bin = _pg_bin()
    if pg_bin is None:
        pytest.fail("PostgreSQL is not installed (pg_ctl not found): apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="sessionkit-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    run = functools.partial(subprocess.run, capture_output=True, text=True, timeout=120)
    done = run(
        [
            *as_postgres,
            str(pg_bin / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]
    )
    if done.returncode:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {done.stderr or done.stdout}")
    port = _free_port()
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    done = run(
        [
            *as_postgres,
            str(pg_bin / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        ]
    )
    server = PostgresServer(root, port, as_postgres, pg_bin)
    if done.returncode:
        log = (
            (root / "server.log").read_text(errors="replace")[-2000:]
            if (root / "server.log").exists()
            else ""
        )
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {done.stderr or done.stdout}\n{log}")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database on the test run's PostgreSQL server."""
    return postgres_server.new_database()
