"""The built wheel holds every package and its data, and works outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (path,) = out.glob("sessionkit-*.whl")
    return path


def test_wheel_contains_packages_and_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    # Every module of every package, sub-packages included (a forgotten one fails here).
    for folder in ("engine", "tui"):
        for module in (ROOT / folder).rglob("*.py"):
            inside = module.relative_to(ROOT / folder).as_posix()
            assert f"sessionkit/{folder}/{inside}" in names, inside
    for required in (
        "sessionkit/engine/pipeline/session.py",
        "sessionkit/tui/app.py",
        "sessionkit/tui/app.tcss",
        "sessionkit/themes/__init__.py",
        "sessionkit/themes/dark.toml",
        "sessionkit/themes/light.toml",
        "sessionkit/themes/high-contrast.toml",
        "sessionkit/sample_db/__init__.py",
        "sessionkit/sample_db/sample.sqlite",
        "sessionkit/sample_db/demo.toml",
        "sessionkit/sample_db/spy-2011.toml",
        "sessionkit/sample_db/SPY-LICENSE",
        "sessionkit/sample_db/README.md",
    ):
        assert required in names, required
    assert not any(name.startswith(("engine/", "tui/", "tests/")) for name in names)


def test_installed_wheel_finds_its_data(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    code = (
        "import sessionkit.engine.store.db as db, sessionkit.engine.config as c;"
        "p = c.bundled_database_path(); assert p.is_file(), p;"
        f"assert str(p).startswith({str(target)!r}), p;"
        "c.load_config('demo'); c.load_config('spy-2011');"
        "from importlib.resources import files;"
        "assert files('sessionkit.themes').joinpath('dark.toml').is_file();"
        "import sys; assert 'textual' not in sys.modules; print('ok')"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
