"""NYSE runs export byte for byte what they exported before sessions had breaks.

The digests in ``fixtures/nyse_exports.json`` were computed with main's code, which knows
no breaks (the file says how and at which commit); the runs here use the current code on the
(rebuilt) bundled sample database.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from export_digest import export_digest
from sessionkit.engine.config import load_config
from sessionkit.engine.pipeline.session import Session

FIXTURE = Path(__file__).parent / "fixtures" / "nyse_exports.json"
DEMO = Path(__file__).parents[2] / "sample_db" / "demo.toml"


def _config(name: str, tmp_path: Path):
    if name != "demo-30m-1h":
        return load_config(name, {"backtest": {"clock": "data-driven"}})
    text = (
        DEMO.read_text(encoding="utf-8")
        .replace('derived = ["5m", "15m"]', 'derived = ["30m", "1h"]')
        .replace('intervals = ["1m", "5m", "15m"]', 'intervals = ["1m", "30m", "1h"]')
        .replace("end_date = 2024-12-31", "end_date = 2024-12-03")
        .replace('interval = "5m"', 'interval = "30m"')
    )
    path = tmp_path / "demo-30m-1h.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, {"backtest": {"clock": "data-driven"}})


@pytest.mark.parametrize("name", ["demo", "spy-2011", "demo-30m-1h"])
def test_nyse_export_is_unchanged(name: str, tmp_path: Path) -> None:
    expected = json.loads(FIXTURE.read_text(encoding="utf-8"))["runs"][name]
    session = Session(_config(name, tmp_path), record=True)
    session.start()
    try:
        assert session.wait(120)
    finally:
        session.stop()
    assert session.snapshot().state == "completed"
    out = tmp_path / "export"
    session.export_csv(out)
    assert export_digest(out) == expected
