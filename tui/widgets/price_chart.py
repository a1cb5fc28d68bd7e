"""The price chart: the selected symbol and interval with its overlays and signals.

Used on the UI's event loop only (see :mod:`.chart_base` for when it re-plots). Overlay
indicators (moving averages, VWAP, Bollinger bands) share the price's scale, each in its
own colour and line style (bands dotted, under the lines); ``1`` to ``9`` hide or show
them. The price is a close line or candles (``c``). The analysis's buy and sell signals
are ``▲`` and ``▼`` markers at their bar, in the theme's buy and sell colours; missing
bars are marked ``×`` under the price; the session's open and close are vertical lines.
"""

from __future__ import annotations

from bisect import bisect_right

from sessionkit.tui.charting import base_name, downsample
from sessionkit.tui.format import price
from textual.reactive import reactive

from .chart_base import ChartData, SessionChart, rgb_hex

SIGNAL_GLYPHS = {"buy": "▲", "sell": "▼"}
"""Marker of each signal kind; any other kind is drawn as ``◆`` in the accent colour."""

BAND_KINDS = frozenset({"bollinger"})
"""Overlay kinds drawn as dotted bands under the lines."""


def overlay_names(data: ChartData) -> list[str]:
    """The overlay indicators of ``data`` (base names, in the order they are keyed 1-9)."""
    names: list[str] = []
    for column in data.overlays:
        name = base_name(column)
        if name not in names:
            names.append(name)
    return names


class PriceChart(SessionChart):
    """Close price (or candles) plus overlay indicators and signals over the session."""

    DEFAULT_CSS = """
    PriceChart {
        height: 2fr;
    }
    """

    candles: reactive[bool] = reactive(False, init=False)
    """Draw candles instead of the close line."""

    hidden: reactive[frozenset[str]] = reactive(frozenset, init=False)
    """Overlay indicators (base names) not drawn."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._last: tuple[str | None, float | None] = (None, None)
        """The symbol and last price the symbols table shows (see :meth:`show_last`)."""
        self._drew_candles = False
        """Whether the last plot drew candles (else the close line)."""

    def watch_candles(self) -> None:
        self._redraw()

    def watch_hidden(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        self._drawn = None
        if self.data is not None:
            self.replot()

    def action_toggle_candles(self) -> None:
        """Switch between the close line and candles."""
        self.candles = not self.candles

    def action_toggle_overlay(self, number: int) -> None:
        """Hide or show the ``number``-th overlay (1-based, as the legend shows)."""
        names = overlay_names(self.data) if self.data is not None else []
        if not 1 <= number <= len(names):
            self.app.bell()
            return
        name = names[number - 1]
        self.hidden = self.hidden ^ {name}

    def plot(self, data: ChartData) -> None:
        plt = self.plt
        series = data.series
        history = series.history
        xs = self.x_positions(data)
        buckets = self.buckets
        order: list[str] = []
        legend: list[str] = []
        names = overlay_names(data)
        bands = [n for n in names if data.kinds.get(n) in BAND_KINDS]
        lines = [n for n in names if n not in bands]
        for name in names:  # colours follow the legend's order
            self.overlay_colour(name, order)
        for name in bands + lines:
            if name in self.hidden:
                continue
            colour = self.overlay_colour(name, order)
            marker = "·" if name in bands else "braille"
            for column in (c for c in data.overlays if base_name(c) == name):
                values = series.indicators.get(column)
                if not values:
                    continue
                for segment in downsample(xs, values, buckets):
                    plt.plot(
                        [p[0] for p in segment],
                        [p[1] for p in segment],
                        color=colour,
                        marker=marker,
                    )
        for number, name in enumerate(names, start=1):
            colour = rgb_hex(self.overlay_colour(name, order))
            line = "┄" if name in bands else "━"
            if name in self.hidden:
                legend.append(f"[dim]{number} {name} off[/]")
            else:
                legend.append(f"{number}[{colour}]{line}[/]{name}")
        self._drew_candles = self._plot_price(data, xs)
        self._plot_missing(data, xs)
        self._plot_signals(data, xs)
        self.mark_session(data, history)
        self._show_title()
        self.border_subtitle = " ".join(legend)

    def show_last(self, symbol: str | None, last: float | None) -> None:
        """The symbol's last price as the symbols table shows it (the same snapshot), for
        the title: it changes the title only, never re-plots."""
        self._last = (symbol, last)
        self._show_title()

    def _show_title(self) -> None:
        """``ACME 1m close  99.44``: the stream, what is drawn (``candles: zoom in with ]``
        when candles were asked for but the window holds too many bars for them) and the
        last price the symbols table shows (before it showed one, the charted close)."""
        if self.data is None:
            return
        series = self.data.series
        symbol, last = self._last
        if symbol != series.symbol:
            last = series.close[-1] if series.close else None
        if self._drew_candles:
            drawn = "candles"
        elif self.candles:
            drawn = "close (candles: zoom in with ])"
        else:
            drawn = "close"
        self.border_title = f"{series.symbol} {series.interval} {drawn}  {price(last)}"

    def _plot_price(self, data: ChartData, xs: list[float]) -> bool:
        """The close line, or candles when asked for and the window holds few enough bars
        for them (at most two a column); True if candles were drawn."""
        plt = self.plt
        series = data.series
        if self.candles and len(xs) <= 2 * self.buckets:
            plt.candlestick(
                xs,
                {
                    "Open": list(series.open),
                    "Close": list(series.close),
                    "High": list(series.high),
                    "Low": list(series.low),
                },
                colors=[self.colour("chart-buy"), self.colour("chart-sell")],
            )
            return True
        for segment in downsample(xs, series.close, self.buckets):
            plt.plot(
                [p[0] for p in segment],
                [p[1] for p in segment],
                color=self.colour("chart-price"),
                marker="braille",
            )
        return False

    def _plot_missing(self, data: ChartData, xs: list[float]) -> None:
        """``×`` under the price at each missing bar of the session."""
        if not data.missing or not data.series.low:
            return
        floor = min(data.series.low)
        self.plt.scatter(
            list(data.missing),
            [floor] * len(data.missing),
            marker="×",
            color=self.colour("chart-missing"),
        )

    def _plot_signals(self, data: ChartData, xs: list[float]) -> None:
        """A marker at the bar of each signal of the charted symbol (in the window)."""
        for kind, (px, py) in signal_points(data, xs).items():
            if kind == "other":
                colour = self.colour("chart-session")
                marker = "◆"
            else:
                colour = self.colour(f"chart-{kind}")
                marker = SIGNAL_GLYPHS[kind]
            self.plt.scatter(px, py, marker=marker, color=colour)


def signal_points(data: ChartData, xs: list[float]) -> dict[str, tuple[list[float], list[float]]]:
    """Where each signal of ``data`` is drawn, by kind (``buy``, ``sell``, ``other``): at
    the x of the charted bar holding the signal's bar, at the signal's price (or that bar's
    close). Signals before the first charted bar are left out."""
    series = data.series
    starts = series.starts
    points: dict[str, tuple[list[float], list[float]]] = {}
    if not starts:
        return points
    for signal in data.signals:
        start = signal.bar_start
        if start is None or start < starts[0]:
            continue
        index = bisect_right(starts, start) - 1
        y = signal.price if signal.price is not None else series.close[index]
        kind = signal.kind.lower()
        key = kind if kind in SIGNAL_GLYPHS else "other"
        px, py = points.setdefault(key, ([], []))
        px.append(xs[index])
        py.append(y)
    return points
