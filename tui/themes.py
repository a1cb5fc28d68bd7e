"""Theme files: TOML validated by pydantic, converted to Textual :class:`~textual.theme.Theme`.

Used on the main thread (by the command line and the app factory) before the app runs, and
by the app when it registers the themes. A theme file that cannot be read or is invalid is
collected as a :class:`ThemeFailure` (the app reports it) and skipped: never a crash.

A theme file holds Textual's theme colours plus a ``[chart]`` table, which becomes the
``chart-*`` theme variables the charts draw with::

    name = "dark"
    dark = true
    primary = "#4C9BE8"
    # ... the other Textual colours ...
    [chart]
    price = "#E6EDF3"
    overlays = ["#4C9BE8", "#F0A640"]

A chart colour the theme does not give (all of them for Textual's built-in themes, which
the app gives theirs with :func:`with_chart_colours`) is derived from the theme's own
colours (:func:`chart_colours`): the price is the foreground, the overlays the primary,
warning, secondary and success colours ..., each moved towards black or white until it
stands out from the charts' background (``surface``) by a contrast ratio of at least
:data:`LINE_CONTRAST`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sessionkit.themes import theme_folder
from textual.color import Color, ColorParseError
from textual.theme import Theme

OVERLAY_COLOURS = 4
"""How many ``chart-overlay-N`` variables there are."""

CHART_SOURCES: dict[str, tuple[str, float]] = {
    "chart-price": ("foreground", 4.5),
    "chart-overlay-1": ("primary", 3.0),
    "chart-overlay-2": ("warning", 3.0),
    "chart-overlay-3": ("secondary", 3.0),
    "chart-overlay-4": ("success", 3.0),
    "chart-oscillator": ("accent", 3.0),
    "chart-volume": ("primary", 1.8),
    "chart-session": ("warning", 3.0),
    "chart-guide": ("foreground", 1.8),
    "chart-buy": ("success", 3.0),
    "chart-sell": ("error", 3.0),
    "chart-missing": ("warning", 3.0),
}
"""Each chart variable: the theme colour it is derived from where the theme gives none, and
the contrast ratio it gets at least against the charts' background (WCAG's 3 for lines,
4.5 for the price; the volume's filled area and the guides are meant to be faint)."""

CHART_VARIABLES = tuple(CHART_SOURCES)
"""The ``chart-*`` theme variables the charts draw with."""

MUTED = {"chart-volume": 0.45, "chart-guide": 0.55}
"""Faint chart colours: their theme colour blended this far into the background first."""

LINE_CONTRAST = 3.0
"""The contrast ratio a derived line colour has at least against the charts' background."""

ANSI_CHART: dict[bool, dict[str, str]] = {
    True: {
        "chart-price": "#E6EDF3",
        "chart-overlay-1": "#4C9BE8",
        "chart-overlay-2": "#F0A640",
        "chart-overlay-3": "#B48EDA",
        "chart-overlay-4": "#5CC486",
        "chart-oscillator": "#D98AE0",
        "chart-volume": "#4C6A8A",
        "chart-session": "#E8B341",
        "chart-guide": "#5A6675",
        "chart-buy": "#3FD07A",
        "chart-sell": "#FF5C7A",
        "chart-missing": "#E8B341",
    },
    False: {
        "chart-price": "#1E2630",
        "chart-overlay-1": "#1F6FB8",
        "chart-overlay-2": "#B65F00",
        "chart-overlay-3": "#7B3FB0",
        "chart-overlay-4": "#1E8A4C",
        "chart-oscillator": "#8E2C9E",
        "chart-volume": "#9FB4CC",
        "chart-session": "#A86A00",
        "chart-guide": "#A0AAB6",
        "chart-buy": "#128A3E",
        "chart-sell": "#C8102E",
        "chart-missing": "#A86A00",
    },
}
"""Chart colours of a theme in the terminal's own ANSI colours (Textual's ``ansi-dark`` and
``ansi-light``), whose background is unknown: by the theme's ``dark`` flag (the bundled
dark and light themes' charts)."""


def luminance(colour: Color) -> float:
    """WCAG relative luminance of an opaque colour, 0 (black) to 1 (white)."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = colour.rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: Color, b: Color) -> float:
    """WCAG contrast ratio of two opaque colours, 1 to 21."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def standing_out(colour: Color, background: Color, ratio: float) -> Color:
    """``colour``, or the least blend of it towards black or white (whichever contrasts
    more with ``background``) that has a contrast ratio of ``ratio`` with it."""
    if contrast(colour, background) >= ratio:
        return colour
    white, black = Color(255, 255, 255), Color(0, 0, 0)
    target = white if contrast(white, background) >= contrast(black, background) else black
    for step in range(1, 21):
        blended = colour.blend(target, step / 20)
        if contrast(blended, background) >= ratio:
            return blended
    return target


def chart_colours(colours: Mapping[str, str], *, dark: bool) -> dict[str, str]:
    """The ``chart-*`` variables derived from a theme's generated colours (its
    ``ColorSystem.generate()``, or an app's ``theme_variables``): see :data:`CHART_SOURCES`.
    A theme in ANSI colours gets :data:`ANSI_CHART` by its ``dark`` flag."""
    try:
        parsed = {name: Color.parse(colours[name]) for name, _ in CHART_SOURCES.values()}
        surface = Color.parse(colours["surface"])
        background = Color.parse(colours["background"])
    except (KeyError, ColorParseError):
        return dict(ANSI_CHART[dark])
    if any(c.ansi is not None for c in (*parsed.values(), surface, background)):
        return dict(ANSI_CHART[dark])
    surface = background + surface  # a translucent surface over the background
    out: dict[str, str] = {}
    for variable, (name, ratio) in CHART_SOURCES.items():
        colour = surface + parsed[name]
        if variable in MUTED:
            colour = colour.blend(surface, MUTED[variable])
        out[variable] = standing_out(colour, surface, ratio).hex
    return out


def with_chart_colours(theme: Theme) -> Theme:
    """``theme`` with every ``chart-*`` variable: those it lacks derived from its own
    colours (:func:`chart_colours`)."""
    if all(variable in theme.variables for variable in CHART_VARIABLES):
        return theme
    derived = chart_colours(theme.to_color_system().generate(), dark=theme.dark)
    return replace(theme, variables={**derived, **theme.variables})


def _check_colour(value: str) -> str:
    try:
        Color.parse(value)
    except ColorParseError as exc:
        raise ValueError(f"{value!r} is not a colour ({exc})") from None
    return value


class ChartColours(BaseModel):
    """Colours of the charts (``[chart]`` table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    price: str | None = None
    """The price line."""
    overlays: list[str] = Field(default_factory=list, max_length=OVERLAY_COLOURS)
    """Indicators drawn over the price, in order."""
    oscillator: str | None = None
    """The oscillator (RSI, MACD ...) line."""
    volume: str | None = None
    """Volume bars (when there is no oscillator)."""
    session: str | None = None
    """The session's open and close markers."""
    guide: str | None = None
    """Guide lines (RSI 30/70)."""
    buy: str | None = None
    """Buy signal markers (``▲``)."""
    sell: str | None = None
    """Sell signal markers (``▼``)."""
    missing: str | None = None
    """Marks of missing bars (gaps) under the price."""

    @field_validator("price", "oscillator", "volume", "session", "guide", "buy", "sell", "missing")
    @classmethod
    def _colour(cls, value: str | None) -> str | None:
        return None if value is None else _check_colour(value)

    @field_validator("overlays")
    @classmethod
    def _colours(cls, values: list[str]) -> list[str]:
        return [_check_colour(value) for value in values]

    def variables(self) -> dict[str, str]:
        """The ``chart-*`` theme variables these colours define."""
        out = {
            f"chart-{key}": value
            for key, value in (
                ("price", self.price),
                ("oscillator", self.oscillator),
                ("volume", self.volume),
                ("session", self.session),
                ("guide", self.guide),
                ("buy", self.buy),
                ("sell", self.sell),
                ("missing", self.missing),
            )
            if value is not None
        }
        for index, colour in enumerate(self.overlays, start=1):
            out[f"chart-overlay-{index}"] = colour
        return out


class ThemeFile(BaseModel):
    """One theme file: Textual's theme colours plus chart colours."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    """The name ``--theme`` and the theme switcher use."""
    dark: bool = True
    """Whether this is a dark theme."""
    primary: str
    secondary: str | None = None
    accent: str | None = None
    warning: str | None = None
    error: str | None = None
    success: str | None = None
    foreground: str | None = None
    background: str | None = None
    surface: str | None = None
    panel: str | None = None
    boost: str | None = None
    luminosity_spread: float = Field(default=0.15, ge=0, le=1)
    text_alpha: float = Field(default=0.95, ge=0, le=1)
    chart: ChartColours = Field(default_factory=ChartColours)
    """Chart colours; missing ones are derived from the theme's colours
    (:func:`with_chart_colours`)."""
    variables: dict[str, str] = Field(default_factory=dict)
    """Extra Textual theme variables."""

    @field_validator(
        "primary", "secondary", "accent", "warning", "error", "success",
        "foreground", "background", "surface", "panel", "boost",
    )  # fmt: skip
    @classmethod
    def _colour(cls, value: str | None) -> str | None:
        return None if value is None else _check_colour(value)

    def to_theme(self) -> Theme:
        """The Textual theme, with every chart colour."""
        theme = Theme(
            name=self.name,
            primary=self.primary,
            secondary=self.secondary,
            accent=self.accent,
            warning=self.warning,
            error=self.error,
            success=self.success,
            foreground=self.foreground,
            background=self.background,
            surface=self.surface,
            panel=self.panel,
            boost=self.boost,
            dark=self.dark,
            luminosity_spread=self.luminosity_spread,
            text_alpha=self.text_alpha,
            variables={**self.chart.variables(), **self.variables},
        )
        return with_chart_colours(theme)


class ThemeError(ValueError):
    """A theme file cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class ThemeFailure:
    """A theme file that was skipped, and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return self.message if self.path in self.message else f"{self.path}: {self.message}"


@dataclass(slots=True)
class ThemeSet:
    """The themes that loaded, in order, and the files that did not."""

    themes: list[Theme] = field(default_factory=list)
    failures: list[ThemeFailure] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [theme.name for theme in self.themes]

    def get(self, name: str) -> Theme | None:
        """The theme called ``name``, if it loaded."""
        return next((theme for theme in self.themes if theme.name == name), None)

    def failure_of(self, name: str) -> ThemeFailure | None:
        """The failed file that would have been the theme ``name`` (named after it)."""
        return next((f for f in self.failures if Path(f.path).stem == name), None)

    def refusal(self, name: str, available: Iterable[str]) -> str:
        """Why the theme ``name`` cannot be used: its file's error, or that there is no such
        theme and which are ``available``."""
        failure = self.failure_of(name)
        if failure is not None:
            return f"theme {name!r} cannot be used: {failure}"
        return f"unknown theme {name!r} (available: {', '.join(available)})"

    def add(self, theme: Theme) -> None:
        """Add a theme, replacing one of the same name (a user's file overrides)."""
        self.themes = [t for t in self.themes if t.name != theme.name] + [theme]


BUNDLED_ORDER = ("dark", "light", "high-contrast")
"""The order the bundled themes cycle in (others follow, sorted by name)."""


def parse_theme(text: str, *, source: str) -> Theme:
    """Validate a theme file's text.

    Raises
    ------
    ThemeError
        Naming ``source``, the key and what is wrong.
    """
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ThemeError(f"invalid TOML in {source}: {exc}") from None
    try:
        return ThemeFile.model_validate(data).to_theme()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or '(top level)'}: "
            + item["msg"].removeprefix("Value error, ")
            for item in exc.errors(include_url=False)
        )
        raise ThemeError(f"invalid theme {source}: {problems}") from None


def load_theme_file(path: str | Path) -> Theme:
    """Read and validate one theme file.

    Raises
    ------
    ThemeError
        If the file cannot be read or is not a valid theme.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ThemeError(f"cannot read theme {path}: {exc}") from None
    return parse_theme(text, source=str(path))


def _sort_key(theme: Theme) -> tuple[int, str]:
    try:
        return (BUNDLED_ORDER.index(theme.name), "")
    except ValueError:
        return (len(BUNDLED_ORDER), theme.name)


def load_themes(folders: Iterable[str | Path] = (), *, bundled: bool = True) -> ThemeSet:
    """Load the bundled themes, then every ``*.toml`` of ``folders`` (which override).

    Never raises for a bad file: it is recorded in :attr:`ThemeSet.failures`.
    """
    result = ThemeSet()
    if bundled:
        folder = theme_folder()
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".toml"):
                continue
            source = f"sessionkit.themes/{entry.name}"
            try:
                result.add(parse_theme(entry.read_text(encoding="utf-8"), source=source))
            except (ThemeError, OSError, UnicodeDecodeError) as exc:
                result.failures.append(ThemeFailure(source, str(exc)))
    for folder in folders:
        path = Path(folder)
        if not path.is_dir():
            result.failures.append(ThemeFailure(str(path), "not a folder"))
            continue
        for file in sorted(path.glob("*.toml")):
            try:
                result.add(load_theme_file(file))
            except ThemeError as exc:
                result.failures.append(ThemeFailure(str(file), str(exc)))
    result.themes.sort(key=_sort_key)
    return result
