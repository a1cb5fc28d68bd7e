"""A libpq connection string given as the database (QA): it was taken for a SQLite file's
name, its password printed twice in the error (``db init`` created the file, the password
in its name). Refused in one line, the password masked, nothing created."""

from __future__ import annotations

from pathlib import Path

import pytest
from sessionkit.engine.cli import main as sessionkit_main
from sessionkit.engine.config import mask_secrets
from sessionkit.tui.cli import main as tui_main

pytestmark = pytest.mark.usefixtures("no_screen")

SECRET = "WrongPW4"
CONNINFO = f"host=127.0.0.1 port=5432 user=qa password={SECRET} dbname=sk"
PROBLEM = "a libpq connection string (key=value ...) is not a database URL"


def status_of(args: list[str]) -> int:
    if args[0] == "sessionkit-tui":
        return tui_main(args[1:])
    with pytest.raises(SystemExit) as ended:
        sessionkit_main(args)
    return ended.value.code


@pytest.mark.parametrize(
    "args",
    [
        ["run", "demo", "--db", CONNINFO],
        ["run", "demo", "--set", f"database_url='{CONNINFO}'"],
        ["sessionkit-tui", "demo", "--db", CONNINFO],
        ["db", "init", "--db", CONNINFO],
        ["db", "info", "--db", CONNINFO],
        ["db", "calendar", "--db", CONNINFO, "--exchange", "XNYS"],
    ],
)
def test_a_libpq_connection_string_is_refused_its_password_masked(
    capsys, tmp_path, monkeypatch, args
) -> None:
    monkeypatch.chdir(tmp_path)
    assert status_of(args) == 2
    out, err = capsys.readouterr()
    assert PROBLEM in err and "password=***" in err
    assert SECRET not in out + err
    assert list(tmp_path.iterdir()) == []  # no SQLite file of that name


def test_in_a_configuration_file(capsys, tmp_path: Path) -> None:
    config = tmp_path / "pg.toml"
    demo = Path(__file__).parents[2] / "sample_db" / "demo.toml"
    lines = [line for line in demo.read_text().splitlines() if "database_url" not in line]
    config.write_text(f'database_url = "{CONNINFO}"\n' + "\n".join(lines), encoding="utf-8")
    assert status_of(["run", str(config)]) == 2
    _out, err = capsys.readouterr()
    assert f"database_url: {PROBLEM}" in err and SECRET not in err


def test_a_file_name_with_an_equals_sign_is_still_a_file() -> None:
    assert mask_secrets("./my=file.sqlite") == "./my=file.sqlite"
    assert mask_secrets(f"host=h password='{SECRET} x' dbname=d") == (
        "host=h password=*** dbname=d"
    )
