"""``sessionkit-tui --version`` and its help's metavars (the same style as ``sessionkit``)."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest
from sessionkit.tui.cli import main


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"sessionkit-tui {version('sessionkit')}"


def test_help_metavars(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["-h"])
    text = capsys.readouterr().out
    assert "--db URL" in text and "--start DATE" in text and "--theme NAME" in text
    assert re.search(r"--paused\s+start paused", text)  # a flag has no metavar
    assert not re.search(r"<(str|bool|int|float|path)>", text)
