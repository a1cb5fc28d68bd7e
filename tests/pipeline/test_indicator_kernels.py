"""Indicator kernels: the indicators of a stream compiled together give, bar for bar, the
values each gives compiled alone (same operations, same order: equal, not just close), and
session-anchored indicators restart at each session. The values themselves are checked
against an independent pandas computation in ``test_pipeline_correctness.py``."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from sessionkit.engine.config import IndicatorConfig
from sessionkit.engine.core.bar import Bar
from sessionkit.engine.pipeline.indicators import compile_kernel, make_indicator, output_names

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)

CONFIGS = [
    IndicatorConfig(name="sma", kind="sma", period=3),
    IndicatorConfig(name="ema", kind="ema", period=4),
    IndicatorConfig(name="rsi", kind="rsi", period=3),
    IndicatorConfig(name="vwap", kind="vwap"),
    IndicatorConfig(name="bb", kind="bollinger", period=4, std=1.5),
    IndicatorConfig(name="atr", kind="atr", period=3),
    IndicatorConfig(name="macd", kind="macd", fast=2, slow=4, signal=3),
    IndicatorConfig(name="sma1", kind="sma", period=1),
]


def _bars(moves: list[tuple[float, int]]) -> list[Bar]:
    bars, price = [], 100.0
    for index, (move, volume) in enumerate(moves):
        price = max(1.0, price + move)
        bars.append(
            Bar(T0 + timedelta(minutes=index), price, price + 0.5, price - 0.5, price, volume)
        )
    return bars


moves = st.lists(
    st.tuples(st.floats(-3, 3, allow_nan=False) | st.just(0.0), st.integers(0, 1000)),
    min_size=1,
    max_size=80,
)


def _same(a: tuple, b: tuple) -> bool:
    return all(
        (x is None and y is None) or x == y or (math.isnan(x) and math.isnan(y))
        for x, y in zip(a, b, strict=True)
    )


@settings(max_examples=60, deadline=None)
@given(moves, st.permutations(range(len(CONFIGS))), st.integers(1, 40))
def test_compiled_together_equals_compiled_alone(moves, order, session_length) -> None:
    configs = [CONFIGS[i] for i in order]
    together = compile_kernel([make_indicator(c) for c in configs])
    alone = [compile_kernel([make_indicator(c)]) for c in configs]
    for index, bar in enumerate(_bars(moves)):
        if index % session_length == 0:
            together.new_session()
            for kernel in alone:
                kernel.new_session()
        row = together.update(bar)
        expected = tuple(value for kernel in alone for value in kernel.update(bar))
        assert len(row) == sum(len(output_names(c)) for c in configs)
        assert _same(row, expected), (index, configs)


def test_each_kind_against_its_definition() -> None:
    bars = _bars([((-1) ** i * (i % 5) * 0.3, 10 + i) for i in range(60)])
    closes = [b.close for b in bars]
    update = compile_kernel([make_indicator(c) for c in CONFIGS[:5]]).update
    sma, ema, rsi, vwap, bb = [], [], [], [], []
    for bar in bars:
        s, e, r, v, mid, up, low = update(bar)
        sma.append(s)
        ema.append(e)
        rsi.append(r)
        vwap.append(v)
        bb.append((mid, up, low))
    # SMA 3: None, None, then the mean of the last three closes
    assert sma[:2] == [None, None]
    for i in range(2, len(bars)):
        assert math.isclose(sma[i], sum(closes[i - 2 : i + 1]) / 3, rel_tol=1e-12)
    # EMA 4: seeded with the mean of the first four, then alpha = 2 / 5
    value = sum(closes[:4]) / 4
    assert ema[3] == value
    for i in range(4, len(bars)):
        value = value + 0.4 * (closes[i] - value)
        assert math.isclose(ema[i], value, rel_tol=1e-12)
    # VWAP: cumulative typical price x volume over volume (one session here)
    pv = vol = 0.0
    for i, bar in enumerate(bars):
        pv += (bar.high + bar.low + bar.close) / 3 * bar.volume
        vol += bar.volume
        assert math.isclose(vwap[i], pv / vol, rel_tol=1e-12)
    # Bollinger 4 x 1.5: mean +/- 1.5 population standard deviations
    for i in range(3, len(bars)):
        window = closes[i - 3 : i + 1]
        mean = sum(window) / 4
        std = math.sqrt(sum((x - mean) ** 2 for x in window) / 4)
        mid, up, low = bb[i]
        assert math.isclose(mid, mean, rel_tol=1e-12)
        assert math.isclose(up, mean + 1.5 * std, rel_tol=1e-9, abs_tol=1e-9)
        assert math.isclose(low, mean - 1.5 * std, rel_tol=1e-9, abs_tol=1e-9)
    assert all(r is None or 0.0 <= r <= 100.0 for r in rsi)
    assert rsi[2] is None and rsi[3] is not None  # RSI 3 needs three changes


def test_vwap_restarts_at_each_session() -> None:
    kernel = compile_kernel([make_indicator(IndicatorConfig(name="vwap", kind="vwap"))])
    bars = _bars([(1.0, 100), (1.0, 300), (-2.0, 50)])
    kernel.update(bars[0])
    kernel.update(bars[1])
    kernel.new_session()
    (value,) = kernel.update(bars[2])
    assert value == (bars[2].high + bars[2].low + bars[2].close) / 3


def test_no_indicators_give_an_empty_row() -> None:
    kernel = compile_kernel([])
    kernel.new_session()
    assert kernel.update(_bars([(0.0, 1)])[0]) == ()
