"""``sessionkit-tui`` checks the backtest's window against the database before the screen
opens, as ``sessionkit run`` does (:func:`sessionkit.engine.window_coverage`)."""

from __future__ import annotations

import pytest
from sessionkit.engine import Session, load_config, window_coverage
from sessionkit.tui import cli


def test_a_window_without_data_is_refused_before_the_screen_opens(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """February 2011 is not in the spy-2011 data: the monitor played 19 empty sessions and
    said "completed"; ``sessionkit run`` refused the same window (exit 2)."""
    opened = []
    monkeypatch.setattr("sessionkit.tui.app.create_app", lambda *a, **k: opened.append(a))
    code = cli.main(["spy-2011", "--start", "2011-02-01", "--end", "2011-02-28"])
    error = capsys.readouterr().err
    assert (code, opened) == (2, [])
    assert error.strip().endswith(
        "backtest: no 1m bar of SPY in the window 2011-02-01 to 2011-02-28 (database "
        + load_config("spy-2011").resolved_database_url()
        + ")"
    )
    assert "Traceback" not in error


def test_a_partly_covered_window_is_said_in_the_event_log() -> None:
    """The demo's bars end on 2024-12-31: a window into January is played (its sessions
    show as gaps), and the event log says which symbols' bars cover only part of it."""
    config = load_config("demo", options={"start": "2024-12-30", "end": "2025-01-03"})
    session = Session(config, start_paused=True)
    try:
        expected, warnings = window_coverage(session)
        assert 0 < expected <= 2 * 6 * 390  # two sessions of six symbols (with their gaps)
        assert warnings == tuple(
            f"{s}: 1m bars cover only 2024-12-30 to 2024-12-31 of the window 2024-12-30 to "
            "2025-01-03"
            for s in config.streams.symbols
        )
        # Without the count (the monitor's check: two index look-ups a symbol).
        assert window_coverage(session, count=False) == (None, warnings)
        session.log(warnings[0], "warning")
        (event,) = [e for e in session.snapshot().events if e.message == warnings[0]]
        assert event.level == "warning"
    finally:
        assert session.stop()
