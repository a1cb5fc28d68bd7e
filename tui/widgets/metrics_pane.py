"""The analysis metrics pane: what the analysis reports (``metrics()``), as of the last
session end (or of the error, or the stop, that ended the run: the caption says which).

Used on the UI's event loop only. The app hands it each snapshot through
:meth:`MetricsPane.show`; it re-renders only when the metrics changed. The engine
publishes the metrics when a session ends (and when the run ends), so the pane follows
the run session by session; before the first session end it says so.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from sessionkit.engine import metric_number
from sessionkit.engine.pipeline.snapshot import Snapshot
from textual.reactive import reactive
from textual.widgets import Static

from .. import format as fmt

CAPTIONS = {
    "error": "as of the error",
    "stopped": "as of the stop",
}
"""What the metrics are as of, by the run's state (else: the last session end)."""


def metrics_caption(state: str) -> str:
    """The pane's caption: when the engine published the metrics shown (at each session
    end, and when the run ends: stopped or in error, perhaps before any session ended)."""
    return CAPTIONS.get(state, "at the last session end")


def metric_text(name: str, value: float) -> str:
    """``trades`` as a whole number; ``..._pct`` with two decimals and a sign for returns:
    as the run's summary and the sweep's tables show them (:func:`metric_number`)."""
    return metric_number(name, value)


class MetricsPane(Static):
    """The analysis's metrics, one per line."""

    DEFAULT_CSS = """
    MetricsPane {
        height: auto;
        max-height: 8;
        background: $surface;
        padding: 0 1;
    }
    """

    metrics: reactive[tuple[tuple[str, float], ...] | None] = reactive(None, init=False)
    """(name, value) pairs shown; None before the snapshot says whether there is an analysis."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._has_analysis = False

    def show(self, snapshot: Snapshot) -> None:
        """Show the metrics of a new snapshot (re-renders only if they changed)."""
        self._has_analysis = any(s.stream == "analysis_engine" for s in snapshot.subscriptions)
        self.border_subtitle = metrics_caption(snapshot.state)
        self.metrics = tuple(sorted(dict(snapshot.analysis_metrics).items()))

    def watch_metrics(
        self,
        old: tuple[tuple[str, float], ...] | None,
        metrics: tuple[tuple[str, float], ...] | None,
    ) -> None:
        # The same names: the same lines, so no layout pass (the values change each session).
        names = [name for name, _ in metrics or ()]
        same_lines = old is not None and names and names == [name for name, _ in old]
        self.update(
            self.render_metrics(dict(metrics or ()), self._has_analysis), layout=not same_lines
        )

    @staticmethod
    def render_metrics(metrics: Mapping[str, float], has_analysis: bool) -> Text:
        if not metrics:
            message = "after the first session end" if has_analysis else "no analysis"
            return Text(f"{fmt.DASH} {message}", style="dim")
        width = max(len(name) for name in metrics) + 2
        return Text(
            "\n".join(
                f"{name:<{width}}{metric_text(name, value):>12}" for name, value in metrics.items()
            )
        )
