"""The tree's architecture, checked from the source: folders and the one-way import rule.

DESIGN.md ("Layout"): imports point one way, ``cli -> runs -> pipeline -> {core, feeds,
store}``, ``feeds -> {core, store}``, ``core -> store``; any module may use ``config``,
``errors`` and ``core/bar``. ``engine`` never imports Textual; the TUI sees the engine only
through its public API (``sessionkit.engine``), the snapshot types and, for the sweep
monitor, the sweep module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS = ("cli", "runs", "pipeline", "feeds", "core", "store")
"""The engine's folders; each may import those listed in ALLOWED for it."""

ALLOWED: dict[str, set[str]] = {
    "cli": {"runs", "pipeline", "feeds", "core", "store"},
    "runs": {"pipeline", "feeds", "core", "store"},
    "pipeline": {"feeds", "core", "store"},
    "feeds": {"core", "store"},
    "core": {"store"},
    "store": set(),
}
SHARED = {"config", "errors", "core.bar"}
"""Modules any engine module may import."""

TOP_LEVEL_ALLOWED: dict[str, set[str]] = {
    "config": {"errors", "core.bar"},
    "errors": set(),
    "examples": {"errors", "core.bar", "config"},
}
"""What the top-level modules may import (``__init__`` re-exports the public API lazily)."""

TUI_MAY_IMPORT = {
    "sessionkit.engine",
    "sessionkit.engine.pipeline.snapshot",
    "sessionkit.engine.runs.sweep",  # the sweep monitor: plan, run, progress records
}


def _imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """Absolute dotted names of what ``path`` (a module of ``package``) imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if node.module is None:
                # ``from . import x``: x may be a module of that package
                found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, name))
    return found


def _part_of(name: str) -> str | None:
    """The engine part a dotted name belongs to: a layer, or a shared/top-level module."""
    if not name.startswith("sessionkit.engine."):
        return None
    rest = name.removeprefix("sessionkit.engine.")
    if rest == "core.bar" or rest.startswith("core.bar."):
        return "core.bar"
    head = rest.split(".")[0]
    return head


def import_violations(engine_root: Path) -> list[str]:
    """Every import in ``engine_root`` (an ``engine/`` tree) that breaks the one-way rule."""
    problems = []
    for path in sorted(engine_root.rglob("*.py")):
        relative = path.relative_to(engine_root)
        parts = relative.with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
            package = ".".join(("sessionkit", "engine", *parts))
        else:
            package = ".".join(("sessionkit", "engine", *parts[:-1]))
        here = parts[0] if parts else "__init__"
        for line, name in _imported_modules(path, package):
            if name.split(".")[0] == "textual":
                problems.append(f"{relative}:{line}: imports {name} (engine never imports textual)")
                continue
            target = _part_of(name)
            if target is None or here == "__init__":
                continue
            if here in ALLOWED:
                if target in (here, *SHARED) or target in ALLOWED[here]:
                    continue
            elif here in TOP_LEVEL_ALLOWED and (
                target == here or target in TOP_LEVEL_ALLOWED[here]
            ):
                continue
            problems.append(f"{relative}:{line}: {here} imports {name}")
    return problems


def test_engine_tree_matches_the_design() -> None:
    engine = ROOT / "engine"
    for folder in LAYERS:
        assert (engine / folder / "__init__.py").is_file(), folder
    for module in ("__init__.py", "config.py", "errors.py", "examples.py"):
        assert (engine / module).is_file(), module
    flat = sorted(p.name for p in engine.glob("*.py"))
    assert flat == ["__init__.py", "config.py", "errors.py", "examples.py"], flat
    for path in engine.rglob("*.py"):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        if path.name != "__main__.py":
            assert doc, f"{path.relative_to(ROOT)} has no module docstring"


def test_engine_imports_point_one_way() -> None:
    assert import_violations(ROOT / "engine") == []


def test_the_rule_catches_a_wrong_way_import(tmp_path: Path) -> None:
    """A fixture tree: a store module importing the pipeline, core importing feeds."""
    engine = tmp_path / "engine"
    for folder in LAYERS:
        (engine / folder).mkdir(parents=True)
        (engine / folder / "__init__.py").write_text('"""x."""\n')
    (engine / "config.py").write_text("from .core.bar import Bar\n")
    (engine / "store" / "db.py").write_text("from ..pipeline.session import Session\n")
    (engine / "core" / "clock.py").write_text(
        "from . import bar\nfrom ..feeds import replay\nfrom ..store.db import x\n"
    )
    (engine / "feeds" / "ok.py").write_text("from ..config import SessionConfig\n")
    (engine / "pipeline" / "ui.py").write_text("import textual.app\n")
    (engine / "runs" / "cli_use.py").write_text("from sessionkit.engine.cli import main\n")
    (engine / "config2.py").write_text("")
    assert import_violations(engine) == [
        "core/clock.py:2: core imports sessionkit.engine.feeds",
        "pipeline/ui.py:1: imports textual.app (engine never imports textual)",
        "runs/cli_use.py:1: runs imports sessionkit.engine.cli",
        "store/db.py:1: store imports sessionkit.engine.pipeline.session",
    ]


def test_tui_sees_the_engine_only_through_its_public_api() -> None:
    for path in sorted((ROOT / "tui").rglob("*.py")):
        relative = path.relative_to(ROOT)
        package = ".".join(("sessionkit", *relative.with_suffix("").parts[:-1]))
        for line, name in _imported_modules(path, package):
            if name.startswith("sessionkit.engine"):
                assert name in TUI_MAY_IMPORT, f"{relative}:{line}: imports {name}"


def test_public_api_is_exactly_the_documented_one() -> None:
    import sessionkit.engine as engine

    assert sorted(engine.__all__) == sorted(
        [
            "Bar",
            "CalendarCoverageError",
            "ConfigError",
            "DataImportError",
            "DatabaseError",
            "FeedError",
            "InvalidSymbolError",
            "RunResult",
            "Session",
            "SessionConfig",
            "SessionControlError",
            "SessionkitError",
            "UsageError",
            "load_config",
            "run_backtest",
            "window_coverage",
        ]
    )
    for name in engine.__all__:
        assert getattr(engine, name).__name__ == name
    with pytest.raises(AttributeError):
        _ = engine.SessionData
