"""``sessionkit --version``, ``-h`` like ``--help``, and conventional metavars in help."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

SESSIONKIT = Path(sys.executable).parent / "sessionkit"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SESSIONKIT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "100", "PATH": ""},
    )


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sessionkit {version('sessionkit')}"


@pytest.mark.parametrize("command", [(), ("run",), ("db", "import")])
def test_short_help_and_conventional_metavars(command) -> None:
    short, long = run(*command, "-h"), run(*command, "--help")
    assert short.returncode == 0 and long.returncode == 0, short.stderr
    assert short.stdout == long.stdout
    assert "Usage: sessionkit" in short.stdout
    assert not re.search(r"<(str|bool|int|float|path)>", short.stdout), short.stdout
    if command == ("run",):
        assert re.search(r"--db\s+URL", short.stdout)
        assert re.search(r"--export\s+DIR", short.stdout)
        assert re.search(r"--json\s+Print", short.stdout)  # a flag has no metavar
