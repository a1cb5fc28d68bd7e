"""The analysis API's edges: a read-only context, a view's ``n``, ``emit``'s price (QA)."""

from __future__ import annotations

from sessionkit.engine.config import config_from_dict
from sessionkit.engine.pipeline.session import Session


class Probe:
    """Tries the API's edges at the run's third step and records what happened."""

    seen: list = []

    def __init__(self) -> None:
        self.steps = 0

    def on_step(self, ctx) -> None:
        import numpy as np

        self.steps += 1
        if self.steps != 3:
            return
        record = Probe.seen
        honest = ctx.last_bar("SPY")
        for name, value in (("time", None), ("epoch", None), ("items", ()), ("plan", None)):
            try:
                setattr(ctx, name, value)
            except AttributeError:
                record.append(("read-only", name))
        record.append(("same view", ctx.last_bar("SPY") == honest, ctx.epoch is not None))
        for n in (2.0, None, True, "3", float("nan")):
            for view in (
                lambda n: ctx.bars("SPY", n=n),
                lambda n: ctx.closes("SPY", n),
                lambda n: ctx.indicators("SPY", "sma", n),
            ):
                try:
                    view(n)
                    record.append(("accepted", repr(n)))
                except TypeError as exc:
                    record.append(("n refused", "n must be an int" in str(exc)))
        closes, bars = ctx.closes("SPY", np.int64(2)), ctx.bars("SPY", n=np.int32(2))
        record.append(("numpy n", len(closes), len(bars)))
        ctx.emit("SPY", "np32", np.float32(1.5))
        ctx.emit("SPY", "np64", np.int64(2))
        try:
            ctx.emit("SPY", "huge", 10**400)
        except ValueError as exc:
            record.append(("huge", str(exc)))


def test_the_context_is_read_only_and_checks_n_and_prices() -> None:
    Probe.seen.clear()
    config = config_from_dict(
        {
            "backtest": {
                "start_date": "2011-01-03",
                "end_date": "2011-01-03",
                "clock": "data-driven",
            },
            "streams": {"symbols": ["SPY"]},
            "indicators": [{"name": "sma", "kind": "sma", "period": 5}],
            "analysis": {"entry": "test_analysis_edges:Probe"},
        }
    )
    session = Session(config)
    session.start()
    try:
        assert session.wait(30)
    finally:
        session.stop()
    snap = session.snapshot()
    assert snap.state == "completed", snap.error
    assert snap.metrics.analysis_errors == 0
    seen = Probe.seen
    assert [s for s in seen if s[0] == "read-only"] == [
        ("read-only", "time"),
        ("read-only", "epoch"),
        ("read-only", "items"),
        ("read-only", "plan"),
    ]
    assert ("same view", True, True) in seen
    assert [s for s in seen if s[0] == "accepted"] == []
    assert [s for s in seen if s[0] == "n refused"] == [("n refused", True)] * 15
    assert ("numpy n", 2, 2) in seen
    assert ("huge", f"ctx.emit: price must be finite, not {10**400!r}") in seen
    prices = {s.kind: s.price for s in snap.signals}
    assert prices == {"np32": 1.5, "np64": 2.0}
    assert all(type(p) is float for p in prices.values())
