"""How values read: an oscillator's title, a metric in every table of it, and the stamp
of an engine event logged before the run's first instant."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime

import pytest
from rich.console import Console
from sessionkit.engine.cli.sweep import _print_table
from sessionkit.engine.pipeline.snapshot import EngineEvent
from sessionkit.engine.runs import summary
from sessionkit.tui import format as fmt
from sessionkit.tui import sweep_board
from sessionkit.tui.app import create_app
from sessionkit.tui.widgets.event_log import EventLog
from sessionkit.tui.widgets.metrics_pane import metric_text
from sessionkit.tui.widgets.oscillator_chart import OscillatorChart
from textual.app import App, ComposeResult
from tui_helpers import drive, wait_for

DAY = date(2024, 12, 2)
BIG = "a_really_long_metric_name_for_testing"


def test_indicator_values_keep_three_significant_digits_below_ten():
    assert fmt.indicator_value(0.0740123) == "0.0740"
    assert fmt.indicator_value(0.268) == "0.268"
    assert fmt.indicator_value(-0.01234) == "-0.0123"
    assert fmt.indicator_value(5.4) == "5.40"
    assert fmt.indicator_value(54.321) == "54.3"  # RSI as before
    assert fmt.indicator_value(1234.56) == "1,234.6"
    assert fmt.indicator_value(0.0) == "0.0"
    assert fmt.indicator_value(None) == fmt.DASH


async def test_the_oscillator_title_quotes_a_small_atr_with_its_digits(make_session):
    atr = {"name": "atr", "kind": "atr", "period": 14, "interval": "1m"}
    session = make_session("demo", backtest={"start_date": DAY, "end_date": DAY}, indicators=[atr])
    drive(session, 60)
    app = create_app(session, frozen_metrics=True)
    async with app.run_test(size=(120, 40)):
        chart = app.query_one(OscillatorChart)
        assert await wait_for(lambda: str(chart.border_title).startswith("ATR atr  "))
        last = next(v for v in reversed(chart.data.series.indicators["atr"]) if v is not None)
        assert last < 1.0  # the demo's ATR: small, as QA saw (0.07 to 0.27)
        shown = str(chart.border_title).removeprefix("ATR atr  ")
        assert float(shown) == pytest.approx(last, rel=0.01)
        assert shown == fmt.indicator_value(last)


def test_a_metric_reads_the_same_in_the_pane_and_the_sweep_monitor():
    metrics = {BIG: 1234567.891, "total_return_pct": 0.1234, "trades": 7.0, "tiny": 0.004567}
    metric_number = summary.metric_number
    expected = {BIG: "1,234,567.89", "total_return_pct": "+0.12", "trades": "7", "tiny": "0.0046"}
    for name, value in metrics.items():
        assert metric_number(name, value) == expected[name]
        assert metric_text(name, value) == expected[name]  # the monitor's Metrics pane
    assert sweep_board.metric_number is metric_number  # the sweep monitor's table


def test_the_run_summary_and_the_sweep_table_print_metrics_as_the_pane(monkeypatch):
    metrics = {BIG: 1234567.891, "total_return_pct": 0.1234, "trades": 7.0, "tiny": 0.004567}
    expected = {BIG: "1,234,567.89", "total_return_pct": "+0.12", "trades": "7", "tiny": "0.0046"}
    # The run's summary (`sessionkit run`, the sweep monitor's `enter`).
    data = {
        "state": "completed",
        "error": None,
        "sessions": ["2024-12-02"],
        "clock": "data-driven",
        "speed": None,
        "steps": 390,
        "bars_per_second": 1000.0,
        "load_seconds": 0.1,
        "signal_count": 0,
        "analysis_errors": 0,
        "bars": {},
        "quality": {},
        "gaps": {},
        "overruns": {},
        "warnings": [],
        "metrics": metrics,
    }
    text = _render(summary.summary_renderables(data))
    for name, value in expected.items():
        assert f"{name} {value}" in text
    assert "e+06" not in text
    # The table of `sessionkit sweep`.
    out = io.StringIO()
    import sessionkit.engine.cli as cli

    original = cli.plain_console
    cli.plain_console = lambda **options: Console(file=out, width=300, highlight=False)
    try:
        header = ["rank", "state", *metrics, "seconds", "error"]
        _print_table(
            header, [[1, "completed", *metrics.values(), 1.5, ""]], "t", frozenset(metrics)
        )
    finally:
        cli.plain_console = original
    cells = re.split(r"\s*[│|]\s*", out.getvalue())
    for value in expected.values():
        assert value in cells


def _render(renderables) -> str:
    console = Console(file=io.StringIO(), width=200, highlight=False)
    for item in renderables:
        console.print(item)
    return console.file.getvalue()


class _LogApp(App):
    def __init__(self, figures: fmt.Figures) -> None:
        super().__init__()
        self.figures = figures

    def compose(self) -> ComposeResult:
        yield EventLog(figures=self.figures)


@pytest.mark.parametrize("dated", [False, True])
async def test_an_event_before_the_first_instant_is_stamped_with_its_wall_time(dated):
    wall = datetime(2026, 11, 30, 0, 57, tzinfo=UTC)
    events = [
        EngineEvent(wall, None, "info", "speed set to max (data-driven)"),
        EngineEvent(wall, datetime(2024, 12, 10, 14, 30, tzinfo=UTC), "info", "session 11/25"),
    ]
    app = _LogApp(fmt.Figures())
    async with app.run_test(size=(100, 10)) as pilot:
        log = app.query_one(EventLog)
        log.show(events, "America/New_York", dated=dated)
        await pilot.pause()
        lines = ["".join(segment.text for segment in strip) for strip in log.lines]
    local = wall.astimezone()
    stamp = f"{local:%m-%d %H:%M}" if dated else f"{local:%H:%M}"
    session = "12-10 09:30" if dated else "09:30"
    assert lines[0].startswith(f"{stamp} speed set to max (data-driven)")
    assert lines[1].startswith(f"{session} session 11/25")
    assert len(stamp) == len(session)  # the messages line up


def test_frozen_figures_hide_the_wall_minute():
    wall = datetime(2026, 11, 30, 0, 57, tzinfo=UTC)
    assert fmt.FrozenFigures().wall_minute(wall) == "##:##"
    assert fmt.FrozenFigures().wall_minute(wall, dated=True) == "##-## ##:##"
