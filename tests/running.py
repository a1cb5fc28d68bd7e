"""Run an engine session to its end from a test (on the test's thread; the engine's own
threads do the work)."""

from __future__ import annotations

from sessionkit.engine.pipeline.session import Session


def run_to_end(session: Session, timeout: float = 60) -> Session:
    """Start ``session``, wait for it to finish, stop it and check that it completed."""
    session.start()
    try:
        assert session.wait(timeout), "the session did not finish in time"
    finally:
        assert session.stop()
    assert session.snapshot().state == "completed", session.snapshot().error
    return session
