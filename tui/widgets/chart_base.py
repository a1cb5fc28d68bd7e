"""Base class of the two session charts (price and oscillator): data hand-off and colours.

Used on the UI's event loop only. The app builds one :class:`ChartData` when the charted
stream changed and hands it to each chart through :meth:`SessionChart.show`; a chart
re-plots only when the data's key, its size or the theme changed. Drawing (plotext's
matrix) happens in ``render``, once per re-plot, size and theme; the matrix becomes Textual
content directly (:func:`matrix_content`), without plotext's ANSI text and Rich's parsing
of it, which took more time than the drawing.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field, replace
from typing import Any

from plotext._utility import colors_to_ansi
from rich.terminal_theme import TerminalTheme
from rich.text import Text
from sessionkit.engine.pipeline.snapshot import AnalysisSignal, Series
from textual.app import RenderResult
from textual.color import Color
from textual.content import Content, Span
from textual.reactive import reactive
from textual.style import Style
from textual_plotext import PlotextPlot

from ..charting import SessionAxis, base_name
from ..themes import OVERLAY_COLOURS, chart_colours


@dataclass(frozen=True, slots=True)
class ChartData:
    """Everything a chart draws for one stream at one moment."""

    series: Series
    axis: SessionAxis | None
    """The session's open and close on the x axis (None before the first session)."""
    timezone: str
    overlays: tuple[str, ...] = ()
    """Indicator columns drawn over the price."""
    oscillators: tuple[str, ...] = ()
    """Indicator columns drawn in the oscillator chart."""
    kinds: dict[str, str] = field(default_factory=dict)
    """Indicator name -> kind, where the configuration says."""
    key: tuple[Any, ...] = ()
    """Changes whenever what is drawn changes (stream, bars, session)."""
    signals: tuple[AnalysisSignal, ...] = ()
    """The analysis's signals for the charted symbol (the same the signals log lists)."""
    missing: tuple[float, ...] = ()
    """X positions of the session's missing bars (from the engine's gaps)."""


class SessionChart(PlotextPlot):
    """A plotext chart of one stream over the current session."""

    DEFAULT_CSS = """
    SessionChart {
        background: $surface;
        border: round $foreground 30%;
        border-title-color: $accent;
        border-title-style: bold;
        border-subtitle-color: $foreground-muted;
        min-height: 5;
    }
    """

    ZOOM_LEVELS = 5
    """0: the session and its history; 1: the session; 2-4: a half, quarter, eighth of it
    ending at the latest bar."""

    zoom: reactive[int] = reactive(0, init=False)
    """The time window shown (see :attr:`ZOOM_LEVELS`)."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.data: ChartData | None = None
        """The data drawn last."""
        self.replots = 0
        """How many times the chart was re-plotted (for tests and benchmarks)."""
        self._drawn: tuple[Any, ...] | None = None
        self._rendered: tuple[tuple[Any, ...], RenderResult] | None = None
        self._styles: dict[str, Style | None] = {}
        """Style of each plotext colour code (for :func:`matrix_content`), this theme's."""

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._theme_changed())

    def watch_zoom(self) -> None:
        self._drawn = None
        if self.data is not None:
            self.replot()

    def window(self, data: ChartData) -> tuple[float, float] | None:
        """The x range shown at the current zoom (None: everything, the default)."""
        axis = data.axis
        if axis is None or self.zoom <= 0:
            return None
        slots = float(axis.slots)
        if self.zoom == 1:
            return (-0.5, slots + 0.5)
        width = slots / 2 ** (self.zoom - 1)
        xs = self.x_positions(data)
        last = xs[-1] if xs else 0.0
        hi = min(slots, max(width, last + 1 + width * 0.05))
        return (hi - width - 0.5, hi + 0.5)

    def zoomed(self, data: ChartData) -> ChartData:
        """``data`` cut to the zoom's window (the bars outside it are left out)."""
        window = self.window(data)
        if window is None:
            return data
        xs = self.x_positions(data)
        first, last = bisect_left(xs, window[0]), bisect_right(xs, window[1])
        series = data.series
        cut = slice(first, last)
        return replace(
            data,
            series=replace(
                series,
                starts=series.starts[cut],
                open=series.open[cut],
                high=series.high[cut],
                low=series.low[cut],
                close=series.close[cut],
                volume=series.volume[cut],
                indicators={k: v[cut] for k, v in series.indicators.items()},
                history=max(0, min(series.history, last) - first),
            ),
            missing=tuple(x for x in data.missing if window[0] <= x <= window[1]),
        )

    def on_resize(self) -> None:
        self._drawn = None
        if self.data is not None:
            self.replot()

    def _theme_changed(self) -> None:
        if not self.is_running:
            return
        self._styles = {}
        self._drawn = None
        if self.data is not None:
            self.replot()

    def show(self, data: ChartData) -> bool:
        """Show new data; re-plots only if it differs from what is drawn. True if it did."""
        self.data = data
        drawn = (data.key, self.size.width, self.size.height, self.app.theme, self.zoom)
        if drawn == self._drawn:
            return False
        self._drawn = drawn
        self.replot()
        return True

    def replot(self) -> None:
        """Clear the data, plot :attr:`data` again and refresh.

        ``clear_figure`` rather than ``clear_data``: it also resets limits and ticks, which
        differ between an RSI and a volume plot; ``render`` sets the size and theme again.
        """
        self.plt.clear_figure()
        if self.data is not None:
            self.plot(self.zoomed(self.data))
        self.replots += 1
        self.refresh()

    def render(self) -> RenderResult:
        """plotext's drawing, built once per re-plot, size and theme (a layout pass or a
        border title change re-renders the widget without changing the drawing)."""
        key = (self.replots, self.size, self.app.theme)
        if self._rendered is None or self._rendered[0] != key:
            self._rendered = (key, self._draw())
        return self._rendered[1]

    def _draw(self) -> Content:
        """What ``PlotextPlot.render`` draws (the same size and theme settings), as content
        made from plotext's matrix rather than from the ANSI text plotext would make of it."""
        width, height = self.size
        plot = self._plot
        plot.plotsize(width, height)
        plot._set_size(width, height)  # as PlotextPlot.render does (textual-plotext issue 5)
        plot.theme(self._get_plotext_theme_name(self.app.theme))
        plot._set_sizes()
        plot._build_matrix()
        return matrix_content(plot.monitor.matrix, self._styles, self.app.ansi_theme)

    def plot(self, data: ChartData) -> None:
        """Draw ``data`` with ``self.plt``: subclasses draw their lines, this marks the
        session's open and close."""
        self.mark_session(data, data.series.history)

    @staticmethod
    def x_positions(data: ChartData) -> list[float]:
        """X of each point: on the session's time axis, or simply by index."""
        series = data.series
        if data.axis is not None:
            return data.axis.positions(series.starts, series.history)
        return [float(k) for k in range(len(series.starts))]

    # -- helpers ------------------------------------------------------------------------

    @property
    def buckets(self) -> int:
        """Downsampling buckets: about one per column of the plotting area."""
        return max(10, (self.size.width or 80) - 10)

    def colour(self, variable: str) -> tuple[int, int, int]:
        """An RGB colour from the app's theme variables (``chart-price`` ...); one the
        theme lacks is derived from its colours (:func:`~sessionkit.tui.themes.chart_colours`:
        the app gives every theme its chart colours, so this is a fallback)."""
        variables = self.app.theme_variables
        value = variables.get(variable)
        if value is None:
            derived = chart_colours(variables, dark=self.app.current_theme.dark)
            value = derived.get(variable, variables.get("foreground", "white"))
        try:
            return Color.parse(value).rgb
        except Exception:
            return (200, 200, 200)

    def overlay_colour(self, name: str, order: list[str]) -> tuple[int, int, int]:
        """The colour of an overlay: one per indicator (bands share their middle's)."""
        base = base_name(name)
        if base not in order:
            order.append(base)
        index = order.index(base) % OVERLAY_COLOURS + 1
        return self.colour(f"chart-overlay-{index}")

    def mark_session(self, data: ChartData, shown_history: int) -> None:
        """Vertical markers at the session's open and close, and the x axis ticks."""
        plt = self.plt
        axis = data.axis
        if axis is None:
            return
        session = self.colour("chart-session")
        window = self.window(data)
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(data.timezone)
        if window is None:
            plt.vline(0, session)
            plt.vline(axis.slots, session)
            plt.xlim(-shown_history - 0.5 if shown_history else -0.5, axis.slots + 0.5)
            history_start = data.series.starts[0] if shown_history and data.series.starts else None
            ticks, labels = axis.ticks(zone, self.size.width or 80, history_start, shown_history)
        else:
            lo, hi = window
            for x in (0, axis.slots):
                if lo <= x <= hi:
                    plt.vline(x, session)
            plt.xlim(lo, hi)
            ticks, labels = axis.window_ticks(zone, self.size.width or 80, lo, hi)
        plt.xticks(ticks, labels)


def matrix_content(
    matrix: Any, styles: dict[str, Style | None], ansi_theme: TerminalTheme | None = None
) -> Content:
    """plotext's character matrix as Textual content, equal to
    ``Content.from_rich_text(Text.from_ansi(matrix.set_canvas()))`` (the top row first, a
    line break after each row) but without writing and parsing the ANSI text.

    Each run of cells of one colour becomes a span whose style is what Rich makes of that
    run's ANSI codes (parsed once per code and kept in ``styles``).
    """
    lines: list[str] = []
    spans: list[Span] = []
    offset = 0
    for row in range(matrix.rows - 1, -1, -1):
        markers = matrix.marker[row]
        fore, look, back = matrix.fullground[row], matrix.style[row], matrix.background[row]
        cols = len(markers)
        start = 0
        for col in range(1, cols + 1):
            if (
                col < cols
                and fore[col] == fore[start]
                and look[col] == look[start]
                and back[col] == back[start]
            ):
                continue
            code = colors_to_ansi(fore[start], look[start], back[start])
            if code:
                if code not in styles:
                    parsed = Text.from_ansi(code + "x")
                    styles[code] = (
                        Style.from_rich_style(parsed.spans[0].style, ansi_theme)  # type: ignore[arg-type]
                        if parsed.spans
                        else None
                    )
                style = styles[code]
                if style is not None:
                    spans.append(Span(offset + start, offset + col, style))
            start = col
        lines.append("".join(markers))
        offset += cols + 1
    lines.append("")
    return Content("\n".join(lines), spans)


def rgb_hex(rgb: tuple[int, int, int]) -> str:
    """``(255, 0, 0)`` -> ``#ff0000`` (for Rich markup in border subtitles)."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)
