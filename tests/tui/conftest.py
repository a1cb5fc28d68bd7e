"""Fixtures of the TUI tests: real sessions on the bundled sample data.

Every session a test builds is stopped (and its threads joined) at teardown, whatever the
test did. Helpers that drive sessions to fixed points live in ``tui_helpers``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sessionkit.engine.config import config_from_dict, load_config
from sessionkit.engine.pipeline.session import Session


@pytest.fixture(autouse=True)
def _colour_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots are in colour, whatever the developer's environment says."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("SESSIONKIT_THEME_DIR", raising=False)
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")


@pytest.fixture
def make_session() -> Iterator[Callable[..., Session]]:
    """Build real sessions on the bundled sample database: ``make_session(name, **overrides)``.

    ``paused`` (default True) starts paused. Sessions are started by the app (or by
    :func:`drive`); all are stopped at teardown.
    """
    sessions: list[Session] = []

    def make(name: str = "demo", *, paused: bool = True, **overrides: Any) -> Session:
        config = load_config(name, overrides)
        session = Session(config, start_paused=paused, source=name)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        assert session.stop(2.0), "an engine thread did not end within 2 s"


@pytest.fixture(scope="session")
def universe_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 500-symbol synthetic database (see ``universe``), built once per test run."""
    from universe import make_universe

    return make_universe(tmp_path_factory.mktemp("universe") / "universe.sqlite")


@pytest.fixture
def universe_session(universe_url: str) -> Iterator[Session]:
    """A paused session on the 500-symbol universe (drive it first), stopped at teardown."""
    from universe import universe_config

    session = Session(config_from_dict(universe_config(universe_url)), start_paused=True)
    yield session
    assert session.stop(2.0), "an engine thread did not end within 2 s"
