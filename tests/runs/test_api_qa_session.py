"""Session's controls and life cycle, as a QA tester used them (Python API).

A refused control value is a typed error, a ``SessionkitError`` and a ``ValueError`` at
once (``except ValueError`` keeps working); a session runs once: ``start()`` on a session
stopped before it started raises, on a started one it does nothing.
"""

from __future__ import annotations

import math
import pickle

import pytest
from sessionkit.engine import Session, SessionkitError, UsageError, load_config
from sessionkit.engine.errors import SessionControlError

DAY = {
    "backtest.start_date": "2024-12-09",
    "backtest.end_date": "2024-12-09",
    "backtest.clock": "data-driven",
}


@pytest.fixture
def session():
    built = Session(load_config("demo", DAY), start_paused=True)
    yield built
    built.stop()


def _controls(session: Session) -> list:
    return [
        ("speed", lambda: session.set_speed(0)),
        ("speed", lambda: session.set_speed(-1)),
        ("speed", lambda: session.set_speed(math.nan)),
        ("speed", lambda: session.set_speed("10")),  # type: ignore[arg-type]
        ("n", lambda: session.step(0)),
        ("n", lambda: session.step(1.5)),  # type: ignore[arg-type]
        ("clock", lambda: session.set_clock("fast")),  # type: ignore[arg-type]
        ("clock", lambda: session.set_clock(None)),  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize("started", [False, True])
def test_refused_controls_are_typed_errors_and_value_errors(session, started) -> None:
    if started:
        session.start()
        assert session.wait_idle(30)
    for argument, control in _controls(session):
        with pytest.raises(SessionControlError) as caught:
            control()
        error = caught.value
        assert isinstance(error, SessionkitError) and isinstance(error, ValueError)
        assert isinstance(error, UsageError)
        assert error.argument == argument
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is SessionControlError and str(again) == str(error)
    # Nothing moved.
    assert session.snapshot().metrics.steps == 0


def test_an_unknown_reader_is_a_typed_error() -> None:
    with pytest.raises(SessionControlError, match="reader must be one of") as caught:
        Session(load_config("demo", DAY), reader="bogus")  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError) and caught.value.value == "bogus"


def test_start_after_stop_before_start_raises(session) -> None:
    session.stop()
    with pytest.raises(RuntimeError, match="runs once"):
        session.start()
    assert session.snapshot().state == "stopped"
    with pytest.raises(RuntimeError, match="runs once"):
        session.start()  # again: still refused, still nothing started
    assert session.wait(0.0)  # it has ended: nothing to wait for (nor to start)


def test_start_on_a_started_session_does_nothing(session) -> None:
    """Running or ended: the monitor starts the session it is given, which its caller may
    have started already (and run to its end)."""
    assert session.start() is session
    assert session.wait_idle(30)
    session.step(3)
    assert session.wait_idle(30)
    assert session.start() is session  # running (paused): nothing happens
    assert session.snapshot().metrics.steps == 3
    session.resume()
    assert session.wait(60)
    ended = session.snapshot()
    assert ended.state == "completed"
    assert session.start() is session  # ended: it is not run again
    assert session.snapshot().metrics.steps == ended.metrics.steps
    assert session.snapshot().state == "completed"


def test_an_analysis_whose_init_raises_blames_its_entry(tmp_path, monkeypatch) -> None:
    """QA: an analysis raising in ``__init__`` (no options given) was reported as refusing
    its options, blamed on the bundled file's ``analysis.options``."""
    from sessionkit.engine.config import load_config
    from sessionkit.engine.errors import ConfigError
    from sessionkit.engine.pipeline.session import load_analysis

    (tmp_path / "initraise.py").write_text(
        "class InitRaise:\n    def __init__(self):\n        raise RuntimeError('boom in init')\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = load_config("demo", {"analysis": {"entry": "initraise:InitRaise", "options": {}}})
    with pytest.raises(ConfigError) as caught:
        load_analysis(config, "--set analysis.entry=initraise:InitRaise")
    assert caught.value.key == "analysis.entry"
    assert "initraise:InitRaise raised RuntimeError as it was built (without options): " in str(
        caught.value
    )
    assert "boom in init" in str(caught.value)
    with_options = load_config(
        "demo", {"analysis": {"entry": "initraise:InitRaise", "options": {"x": 1}}}
    )
    with pytest.raises(ConfigError) as refused:
        load_analysis(with_options)
    assert refused.value.key == "analysis.options"
    assert "refused them: TypeError" in str(refused.value)
