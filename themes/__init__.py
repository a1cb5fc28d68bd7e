"""sessionkit.themes: the bundled Textual themes, as TOML files (package data).

Nothing here runs at import time. :func:`sessionkit.tui.themes.load_themes` reads the
``*.toml`` files of this folder (found through :func:`theme_folder`) on the UI's main thread
before the app starts, validates them and registers them as Textual themes.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def theme_folder() -> Traversable:
    """The folder of the bundled theme files."""
    return files(__name__)
