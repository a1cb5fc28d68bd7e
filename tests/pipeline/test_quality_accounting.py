"""The quality manager's fast path (every symbol's bar where every track expects it) gives
exactly what its general path gives: the same present counts, the same gaps, the same
quality, whatever bars are missing and whether the session has a break."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from sessionkit.engine.config import config_from_dict
from sessionkit.engine.core.bar import Bar
from sessionkit.engine.pipeline.runtime import SessionPlan
from sessionkit.engine.pipeline.session import Session

SYMBOLS = ["ACME", "BOLT", "CRUX"]
OPEN = datetime(2024, 12, 2, 14, 30, tzinfo=UTC)
MINUTES = 40


def _manager(*, general: bool):
    session = Session(
        config_from_dict(
            {
                "backtest": {"start_date": "2024-12-02", "end_date": "2024-12-02"},
                "streams": {"symbols": SYMBOLS},
            }
        )
    )
    quality = session.quality  # driven here: its thread is never started
    if general:  # never take the fast path

        def realign(plan) -> None:
            quality._aligned = None

        quality._realign = realign
    return session, quality


def _plan(with_break: bool) -> SessionPlan:
    close = OPEN + timedelta(minutes=MINUTES)
    pause = OPEN + timedelta(minutes=15) if with_break else None
    resume = OPEN + timedelta(minutes=25) if with_break else None
    return SessionPlan(
        1, date(2024, 12, 2), OPEN, close, False, (), break_start=pause, break_end=resume
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sets(st.sampled_from(SYMBOLS)), min_size=MINUTES, max_size=MINUTES),
    st.booleans(),
)
def test_fast_path_equals_general_path(present, with_break) -> None:
    plan = _plan(with_break)
    results = []
    for general in (False, True):
        session, quality = _manager(general=general)
        quality.start_session(plan)
        for minute, symbols in enumerate(present):
            start = OPEN + timedelta(minutes=minute)
            if with_break and plan.break_start <= start < plan.break_end:
                continue  # no step in the break
            items = tuple((s, Bar(start, 1.0, 1.0, 1.0, 1.0, 1)) for s in SYMBOLS if s in symbols)
            quality.refresh(start + timedelta(minutes=1), items)
        quality.end_session(plan.close)
        results.append(
            (
                {s: (t.present, list(t.gaps)) for s, t in quality.tracks.items()},
                {s: session.runtime.data.quality_metrics(s) for s in SYMBOLS},
                dict(quality.totals),
            )
        )
        session.database.dispose()
    assert results[0] == results[1]
