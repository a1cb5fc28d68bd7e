"""The oscillator chart below the price: RSI (with its 30/70 guides), MACD ... or volume.

Used on the UI's event loop only (see :mod:`.chart_base` for when it re-plots). It draws
the first oscillator indicator computed on the charted interval (all its columns, e.g.
``macd`` and ``macd.signal``); when the interval has none, it draws the volume.
"""

from __future__ import annotations

from sessionkit.tui import format as fmt
from sessionkit.tui.charting import base_name, downsample

from .chart_base import ChartData, SessionChart, rgb_hex


class OscillatorChart(SessionChart):
    """An oscillator (or the volume) of the charted stream."""

    DEFAULT_CSS = """
    OscillatorChart {
        height: 1fr;
    }
    """

    def plot(self, data: ChartData) -> None:
        plt = self.plt
        series = data.series
        history = series.history
        xs = self.x_positions(data)
        buckets = self.buckets
        chosen = base_name(data.oscillators[0]) if data.oscillators else None
        if chosen is None:
            colour = self.colour("chart-volume")
            for segment in downsample(xs, [float(v) for v in series.volume], buckets):
                plt.plot(
                    [p[0] for p in segment],
                    [p[1] for p in segment],
                    color=colour,
                    marker="braille",
                    fillx=True,
                )
            volumes = series.volume
            if volumes:
                top = max(volumes)
                ticks = [0.0, top / 2, float(top)]
                plt.ylim(0, top * 1.05 or 1)
                plt.yticks(ticks, [f"{tick:,.0f}" for tick in ticks])
            self.border_title = "Volume"
            self.border_subtitle = ""
        else:
            kind = data.kinds.get(chosen) or chosen.split("_", 1)[0]
            columns = [n for n in data.oscillators if base_name(n) == chosen]
            legend = []
            for index, name in enumerate(columns):
                colour = self.colour("chart-oscillator" if index == 0 else f"chart-overlay-{index}")
                values = series.indicators.get(name) or ()
                for segment in downsample(xs, values, buckets):
                    plt.plot(
                        [p[0] for p in segment],
                        [p[1] for p in segment],
                        color=colour,
                        marker="braille",
                    )
                legend.append(f"[{rgb_hex(colour)}]━[/] {name}")
            if kind == "rsi":
                guide = self.colour("chart-guide")
                plt.hline(30, guide)
                plt.hline(70, guide)
                plt.ylim(0, 100)
                plt.yticks([30, 70])
            last = next(
                (v for v in reversed(series.indicators.get(chosen) or ()) if v is not None), None
            )
            self.border_title = f"{kind.upper()} {chosen}" + (
                f"  {fmt.indicator_value(last)}" if last is not None else ""
            )
            self.border_subtitle = "  ".join(legend) if len(columns) > 1 else ""
        self.mark_session(data, history)
