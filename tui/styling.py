"""Rich styles of component classes, for text that widgets build themselves.

Used on the UI's event loop by the tables and logs. Textual resolves a component class's
colour against the widget's background (so ``$foreground-muted``, which has an alpha,
becomes a real colour); the background itself is dropped, so that a table's cursor row or
a log's own background shows through the text.
"""

from __future__ import annotations

from rich.style import Style
from textual.widget import Widget


def component_foreground(widget: Widget, name: str) -> Style:
    """The colour and text style of component class ``name``, without its background."""
    style = widget.get_component_rich_style(name)
    return Style(
        color=style.color,
        bold=style.bold,
        dim=style.dim,
        italic=style.italic,
        underline=style.underline,
        reverse=style.reverse,
    )
