"""Going to a date: what a typed date means for a run (pure, no Textual).

Used on the UI's event loop by :class:`~sessionkit.tui.screens.seek.SeekScreen`, on every
change of its input (cheap: a date parse and a bisection). The run's sessions come from
the exchange's calendar (the snapshot's ``sessions``): a trading day of the run is taken as
it is; a day without a session inside the run offers the next one; a date still being
typed asks for the rest; anything else is refused with the run's range.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

DATE_PREFIX = re.compile(r"\d{0,4}(-\d{0,2}(-\d{0,2})?)?")
"""What the start of a ``YYYY-MM-DD`` date can look like while it is typed."""


@dataclass(frozen=True, slots=True)
class SeekAnswer:
    """What a typed date resolves to."""

    day: date | None
    """The session to go to (None: nothing to go to)."""
    exact: bool
    """True if ``day`` is the date typed (no adjustment was needed)."""
    message: str
    """What to tell the user."""
    partial: bool = False
    """True if the text could still become a date (``2024-12-1``): not a mistake yet."""


def resolve(text: str, sessions: Sequence[date]) -> SeekAnswer:
    """Resolve ``text`` (``YYYY-MM-DD``) against the run's ``sessions`` (sorted)."""
    text = text.strip()
    try:
        wanted: date | None = date.fromisoformat(text)
    except ValueError:
        wanted = None
    if wanted is None:
        if len(text) < 10 and DATE_PREFIX.fullmatch(text):
            return SeekAnswer(None, False, "type the date: YYYY-MM-DD", partial=True)
        return SeekAnswer(None, False, f"{text!r} is not a date: type YYYY-MM-DD")
    if not sessions:
        return SeekAnswer(None, False, "this run has no sessions to go to")
    first, last = sessions[0], sessions[-1]
    if not first <= wanted <= last:
        return SeekAnswer(None, False, f"{wanted} is outside this run ({first} to {last})")
    index = bisect_left(sessions, wanted)
    day = sessions[index]
    if day == wanted:
        return SeekAnswer(day, True, f"go to {day} (session {index + 1}/{len(sessions)})")
    return SeekAnswer(
        day,
        False,
        f"{wanted} is not a trading day; the next is {day} "
        f"(session {index + 1}/{len(sessions)}): enter to go there",
    )
