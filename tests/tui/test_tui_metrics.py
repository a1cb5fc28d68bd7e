"""The analysis metrics pane: the analysis's ``metrics()`` as of the last session end."""

from __future__ import annotations

from datetime import date

from rich.console import Console
from sessionkit.tui.widgets.metrics_pane import MetricsPane, metric_text
from tui_helpers import drive, run_to_end, settle, snapshot_app

DAY = date(2024, 11, 26)


def text_of(renderable) -> str:
    console = Console(width=60, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_metric_texts():
    assert metric_text("trades", 7.0) == "7"
    assert metric_text("total_return_pct", 1.234) == "+1.23"
    assert metric_text("max_drawdown_pct", 0.5) == "0.50"


async def test_metrics_appear_at_the_session_end(make_session):
    session = make_session(
        "demo",
        paused=False,
        backtest={"start_date": DAY, "end_date": DAY, "clock": "data-driven"},
    )
    run_to_end(session)
    metrics = dict(session.snapshot().analysis_metrics)
    assert {"total_return_pct", "max_drawdown_pct", "trades"} <= set(metrics)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        pane = app.query_one(MetricsPane)
        assert pane.metrics == tuple(sorted(metrics.items()))
        text = text_of(pane.render_metrics(metrics, True))
        for name, value in metrics.items():
            assert name in text and metric_text(name, value) in text


async def test_before_the_first_session_end_the_pane_says_so(make_session):
    session = make_session("demo", backtest={"start_date": DAY, "end_date": DAY})
    drive(session, 30)
    app = snapshot_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        pane = app.query_one(MetricsPane)
        assert pane.metrics == ()
        assert "after the first session end" in text_of(pane.render_metrics({}, True))
