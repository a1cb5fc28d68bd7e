"""The options ``sessionkit-tui`` and its sweep monitor share with ``sessionkit run``
(``--db``, ``--set``): a password in a database URL is never printed, an empty ``--db`` is
refused. Both fail before the screen opens, so they run in-process here."""

from __future__ import annotations

import pytest
from sessionkit.tui.cli import main as tui_main
from sessionkit.tui.sweep_cli import main as sweep_monitor_main

pytestmark = pytest.mark.usefixtures("no_screen")

SECRET = "WrongPW"
URLS = [  # nothing listens on port 1: the connection is refused at once
    f"postgresql+psycopg://qa:{SECRET}@127.0.0.1:1/qadb",
    f"postgresql+psycopg://qa@127.0.0.1:1/qadb?password={SECRET}",
]
SWEEP = ["--param", "analysis.options.fast=5,6"]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("form", ["--db", "--set"])
@pytest.mark.parametrize("program", ["monitor", "sweep monitor"])
def test_a_database_password_is_never_printed(capsys, url, form, program) -> None:
    args = ["--db", url] if form == "--db" else ["--set", f'database_url="{url}"']
    if program == "monitor":
        status = tui_main(["spy-2011", *args])
    else:
        status = sweep_monitor_main(["spy-2011", *SWEEP, *args])
    out, err = capsys.readouterr()
    assert status == 2
    assert SECRET not in out + err
    assert f"invalid configuration from {form} " in err and "***" in err


@pytest.mark.parametrize("program", ["monitor", "sweep monitor"])
def test_an_empty_db_is_refused(capsys, program) -> None:
    """``--db ""`` was ignored: the run used the configuration's database."""
    if program == "monitor":
        status = tui_main(["demo", "--db", ""])
    else:
        status = sweep_monitor_main(["demo", *SWEEP, "--db", ""])
    assert status == 2
    assert "--db: the value is empty" in capsys.readouterr().err
