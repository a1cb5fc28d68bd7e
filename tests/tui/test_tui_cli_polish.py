"""``sessionkit-tui --version`` and its help's metavars (the same style as ``sessionkit``)."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

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


def test_an_unknown_symbol_lists_the_database_symbols(tmp_path, capsys) -> None:
    from sessionkit.sample_db import __file__ as sample

    demo = (Path(sample).parent / "demo.toml").read_text()
    config = tmp_path / "nope.toml"
    config.write_text(
        demo.replace('symbols = ["ACME",', 'symbols = ["NOPE", "ACME",').replace(
            "[backtest]",
            f'database_url = "sqlite:///{Path(sample).parent / "sample.sqlite"}"\n\n[backtest]',
        )
    )
    assert main([str(config)]) == 2
    error = capsys.readouterr().err
    assert "streams.symbols: 'NOPE' not in the database" in error
    assert "(it has: ACME, BOLT, CRUX, DYNA, EMBR, FLUX, SPY)" in error
    assert "Traceback" not in error
