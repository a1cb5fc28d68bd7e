"""Behaviours fixed after a QA pass: the monitor's own event lines, a broken theme named
on the command line, sort directions, the diagnostics' names, and more (one section each).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sessionkit.tui import cli
from sessionkit.tui.sweep_cli import main as sweep_main
from sessionkit.tui.widgets.event_log import EventLog
from textual.app import App, ComposeResult

BROKEN_THEME = 'name = "broken"\n[chart\nfoo=1\n'
"""The tester's theme file: invalid TOML (line 2, column 7)."""


# -- the monitor's own event lines wrap and say whose they are ------------------------------


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield EventLog()


async def test_a_long_note_wraps_whole_and_says_it_is_the_monitors():
    message = (
        "invalid TOML in /tmp/qaB/themes/broken.toml: Expected ']' at the end of a table "
        "declaration (at line 2, column 7)"
    )
    app = LogApp()
    async with app.run_test(size=(80, 12)) as pilot:
        log = app.query_one(EventLog)
        log.note(message, "warning")
        await pilot.pause()
        lines = [line.text.rstrip() for line in log.lines]
    assert len(lines) > 1  # wrapped, not cut
    assert " ".join(lines) == f"monitor: {message}"
    assert not lines[0].startswith(" ")  # no label padded into the time column


# -- a theme whose file is broken is named with its error -----------------------------------


@pytest.mark.parametrize("as_sweep", [False, True])
def test_a_broken_theme_file_is_reported_as_invalid_not_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], as_sweep
):
    (tmp_path / "broken.toml").write_text(BROKEN_THEME)
    monkeypatch.setenv(cli.THEME_DIR_ENV, str(tmp_path))
    if as_sweep:
        status = sweep_main(["demo", "--param", "analysis.options.fast=5", "--theme", "broken"])
    else:
        status = cli.main(["--theme", "broken"])
    assert status == 2
    err = capsys.readouterr().err
    assert "unknown theme" not in err
    assert "theme 'broken' cannot be used: invalid TOML in" in err
    assert "broken.toml" in err and "(at line 2, column 7)" in err
    assert "Traceback" not in err
