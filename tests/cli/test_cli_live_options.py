"""What only a backtest has, asked of a live configuration (QA): ``--speed``, ``--start``,
``--end`` and ``--set backtest.*`` said "backtest.start_date: Field required"; a sweep of
a live configuration started every run (each failed, exit 1), and its monitor replayed
them live. Each is refused before anything runs, in one line that says what to use."""

from __future__ import annotations

from pathlib import Path

import pytest
from sessionkit.engine.cli import main as sessionkit_main
from sessionkit.tui.cli import main as tui_main
from sessionkit.tui.sweep_cli import main as sweep_monitor_main

pytestmark = pytest.mark.usefixtures("no_screen")

LIVE = """
mode = "live"
exchange_group = "NYSE"

[streams]
symbols = ["SPY"]
interval = "1m"

[analysis]
entry = "sessionkit.engine.examples:SmaCross"

[live]
replay_date = 2011-03-15
replay_start = "15:30"
speed = 60.0
"""

OPTIONS = [
    (["--speed", "10"], "--speed 10: does not apply to a live session: a live session's pace is live.speed"),
    (["--speed", "max"], "--speed max: does not apply to a live session: a live session's pace is live.speed"),
    (["--start", "2011-03-01"], "--start 2011-03-01: does not apply to a live session: a live session replays one day, live.replay_date"),
    (["--end", "2011-03-20"], "--end 2011-03-20: does not apply to a live session: a live session replays one day, live.replay_date"),
    (["--set", "backtest.speed=10"], "--set backtest.speed=10: does not apply to a live session"),
]  # fmt: skip


@pytest.fixture
def live(tmp_path: Path) -> str:
    path = tmp_path / "live.toml"
    path.write_text(LIVE, encoding="utf-8")
    return str(path)


def status_of(program: str, args: list[str]) -> int:
    if program == "sessionkit-tui":
        return tui_main(args)
    if program == "sessionkit-tui sweep":
        return sweep_monitor_main(args)
    with pytest.raises(SystemExit) as ended:
        sessionkit_main([*program.split()[1:], *args])
    return ended.value.code


@pytest.mark.parametrize(("options", "message"), OPTIONS)
@pytest.mark.parametrize("program", ["sessionkit run", "sessionkit-tui"])
def test_backtest_options_are_refused_for_a_live_session(
    capsys, live, program, options, message
) -> None:
    assert status_of(program, [live, *options]) == 2
    out, err = capsys.readouterr()
    assert message in err and "Field required" not in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("program", ["sessionkit sweep", "sessionkit-tui sweep"])
def test_a_live_configuration_is_not_swept(capsys, live, program) -> None:
    assert status_of(program, [live, "--param", "analysis.options.fast=5,10"]) == 2
    out, err = capsys.readouterr()
    assert "a sweep runs backtests, not mode = 'live'" in err, err
    assert "Traceback" not in err
