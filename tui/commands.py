"""Command palette provider: every monitor control, each speed preset and each theme.

Used on the UI's event loop only (Textual runs providers as tasks on it). The commands
come from :meth:`sessionkit.tui.app.SessionkitApp.palette_commands`, so the palette, the
footer and the help screen name the same actions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from .app import SessionkitApp


class SessionCommands(Provider):
    """Session controls for the command palette (pause, step, speed, clock, theme ...)."""

    @property
    def _app(self) -> SessionkitApp:
        return cast("SessionkitApp", self.app)

    async def discover(self) -> Hits:
        for title, help_text, callback in self._app.palette_commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._app.palette_commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
