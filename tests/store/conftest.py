"""Fixtures of the store's tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from sessionkit.engine.store.db import init_db
from sqlalchemy import Engine


@pytest.fixture
def db(tmp_path: Path):
    """``db(name)`` makes a new, empty SQLite database (disposed at the end)."""
    engines: list[Engine] = []

    def make(name: str = "db") -> Engine:
        engine = init_db(f"sqlite:///{tmp_path / f'{name}-{len(engines)}.sqlite'}")
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()
