"""The price chart: the close of the selected symbol and interval with its overlays.

Used on the UI's event loop only (see :mod:`.chart_base` for when it re-plots). Overlay
indicators (moving averages, VWAP, Bollinger bands) share the price's scale; the
session's open and close are marked with vertical lines.
"""

from __future__ import annotations

from sessionkit.tui.charting import downsample
from sessionkit.tui.format import price

from .chart_base import ChartData, SessionChart, rgb_hex


class PriceChart(SessionChart):
    """Close price plus overlay indicators over the current session."""

    DEFAULT_CSS = """
    PriceChart {
        height: 2fr;
    }
    """

    def plot(self, data: ChartData) -> None:
        plt = self.plt
        series = data.series
        history = series.history
        xs = self.x_positions(data)
        buckets = self.buckets
        order: list[str] = []
        legend: list[str] = []
        for name in data.overlays:
            values = series.indicators.get(name)
            if not values:
                continue
            colour = self.overlay_colour(name, order)
            for segment in downsample(xs, values, buckets):
                plt.plot(
                    [p[0] for p in segment], [p[1] for p in segment], color=colour, marker="braille"
                )
            if "." not in name:
                legend.append(f"[{rgb_hex(colour)}]━[/] {name}")
        for segment in downsample(xs, series.close, buckets):
            plt.plot(
                [p[0] for p in segment],
                [p[1] for p in segment],
                color=self.colour("chart-price"),
                marker="braille",
            )
        self.mark_session(data, history)
        last = series.close[-1] if series.close else None
        self.border_title = f"{series.symbol} {series.interval}  {price(last)}"
        self.border_subtitle = "  ".join(legend)
