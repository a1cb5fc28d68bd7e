"""A session's instants grouped from columns (engine/pipeline/steps.py) against the rule
stated row by row: one instant per distinct start at its bar's end (``bar_end``), none in
the break, plus the gap and derived-window-end instants; and their bars built block by
block equal to the bars built all at once."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sessionkit.engine.core.bar import Bar
from sessionkit.engine.core.windows import bar_end, gap_instants, window_end_instants
from sessionkit.engine.pipeline import steps as steps_module
from sessionkit.engine.pipeline.steps import SessionSteps, chunk_of_columns, session_steps
from sessionkit.engine.store.data_manager import DataManager
from sqlalchemy import create_engine

MINUTE = timedelta(minutes=1)
OPEN = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Times:
    open: datetime
    close: datetime
    break_start: datetime | None = None
    break_end: datetime | None = None


def reference(session: Times, delta: timedelta, derived, rows) -> list[tuple]:
    """The instants of ``rows`` (``(symbol, start epoch, o, h, l, c, v)``, ordered by start
    then symbol), row by row: what the coordinator built before the grouping was
    vectorized."""
    pause = session.break_start
    resume = session.break_end
    steps: list[tuple] = []
    position = 0
    while position < len(rows):
        t = rows[position][1]
        after = position
        while after < len(rows) and rows[after][1] == t:
            after += 1
        start = datetime.fromtimestamp(t, UTC)
        if not (pause is not None and pause <= start < resume):
            items = tuple(
                (r[0], Bar(datetime.fromtimestamp(r[1], UTC), *r[2:])) for r in rows[position:after]
            )
            steps.append((bar_end(session, delta, start), items))
        position = after
    if not steps:
        return steps
    times = [t for t, _items in steps]
    extra = set(gap_instants(session, delta, times))
    if derived:
        starts = [items[0][1].start for _t, items in steps]
        extra.update(window_end_instants(session, delta, derived, starts))
    extra.difference_update(times)
    steps.extend((t, ()) for t in extra)
    steps.sort(key=lambda step: step[0])
    return steps


@pytest.fixture(scope="module")
def manager() -> DataManager:
    return DataManager(create_engine("sqlite://"))


def columns(rows):
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * 7


@st.composite
def sessions_and_rows(draw):
    minutes = draw(st.integers(10, 120))
    close = OPEN + minutes * MINUTE
    times = Times(OPEN, close)
    if draw(st.booleans()):
        pause = draw(st.integers(2, minutes - 4))
        length = draw(st.integers(1, minutes - pause - 2))
        times = Times(OPEN, close, OPEN + pause * MINUTE, OPEN + (pause + length) * MINUTE)
    symbols = draw(st.lists(st.sampled_from("ABCDE"), min_size=1, max_size=4, unique=True))
    rows = []
    starts = draw(st.sets(st.integers(0, minutes - 1), max_size=minutes))
    off_grid = draw(st.sets(st.integers(0, minutes * 60 - 1), max_size=5))
    epochs = sorted(
        {int(OPEN.timestamp()) + 60 * m for m in starts}
        | {int(OPEN.timestamp()) + s for s in off_grid}
    )
    for epoch in epochs:
        for symbol in sorted(draw(st.sets(st.sampled_from(symbols), min_size=1))):
            price = draw(st.floats(1, 500, allow_nan=False))
            rows.append(
                (symbol, epoch, price, price + 1, price - 1, price, draw(st.integers(0, 9)))
            )
    derived = draw(st.sampled_from([(), (5 * MINUTE,), (5 * MINUTE, 15 * MINUTE)]))
    return times, rows, derived


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=sessions_and_rows(), block=st.integers(1, 50), symbols_as_indexes=st.booleans())
def test_grouped_instants_equal_the_row_by_row_rule(
    manager, case, block, symbols_as_indexes
) -> None:
    times, rows, derived = case
    saved = steps_module.BLOCK_ROWS
    steps_module.BLOCK_ROWS = block
    try:
        check_grouping(manager, times, rows, derived, symbols_as_indexes)
    finally:
        steps_module.BLOCK_ROWS = saved


def check_grouping(manager, times, rows, derived, symbols_as_indexes) -> None:
    if symbols_as_indexes:  # a reader process's answer: indexes into its symbols
        names = sorted({r[0] for r in rows})
        indexed = [(names.index(r[0]), *r[1:]) for r in rows]
        chunk = chunk_of_columns(columns(indexed), manager, names)
    else:
        chunk = chunk_of_columns(columns(rows), manager)
    got = session_steps(chunk, 0, len(rows), times, MINUTE, derived)
    expected = reference(times, MINUTE, derived, rows)
    assert list(got) == expected
    assert len(got) == len(expected)
    assert got.bars == sum(len(items) for _t, items in expected)
    assert got.times == [t for t, _items in expected]
    for index in {0, len(expected) // 2, len(expected) - 1} if expected else ():
        assert got[index] == expected[index]
        assert got[index - len(expected)] == expected[index]
    if expected:
        morning = bisect_right(got.times, expected[len(expected) // 3][0])
        assert [*got.iterate(0, morning), *got.iterate(morning)] == expected


def test_a_slice_of_a_chunk_is_one_sessions_rows_only(manager) -> None:
    """Rows before and after the session's (the day before, the evening) take no part."""
    session = Times(OPEN, OPEN + 5 * MINUTE)
    epoch = int(OPEN.timestamp())
    rows = [("A", epoch - 60, 1.0, 1.0, 1.0, 1.0, 1)]
    rows += [("A", epoch + 60 * m, 2.0, 2.0, 2.0, 2.0, 1) for m in range(5)]
    rows += [("A", epoch + 3600, 3.0, 3.0, 3.0, 3.0, 1)]
    got = session_steps(chunk_of_columns(columns(rows), manager), 1, 6, session, MINUTE, ())
    assert list(got) == reference(session, MINUTE, (), rows[1:6])
    assert got.bars == 5 and got.times[-1] == OPEN + 5 * MINUTE


def test_no_rows_no_instants(manager) -> None:
    got = session_steps(chunk_of_columns(columns([]), manager), 0, 0, Times(OPEN, OPEN), MINUTE, ())
    assert list(got) == [] and len(got) == 0 and got.bars == 0
    assert list(SessionSteps()) == []
    with pytest.raises(IndexError):
        SessionSteps()[0]


def test_bars_are_built_a_block_at_a_time_as_the_stream_reaches_them(manager) -> None:
    """Nothing is built at the grouping; each block's bars are built when the iteration
    reaches its first instant."""
    built: list[int] = []

    class Counting(DataManager):
        def bars_of(self, starts, values):
            built.append(len(starts))
            return super().bars_of(starts, values)

    counting = Counting(create_engine("sqlite://"))
    epoch = int(OPEN.timestamp())
    rows = [(s, epoch + 60 * m, 1.0, 2.0, 0.5, 1.5, 3) for m in range(100) for s in "AB"]
    saved = steps_module.BLOCK_ROWS
    steps_module.BLOCK_ROWS = 20
    try:
        got = session_steps(
            chunk_of_columns(columns(rows), counting),
            0,
            len(rows),
            Times(OPEN, OPEN + 100 * MINUTE),
            MINUTE,
            (),
        )
        assert built == [] and got.block == 10
        iterator = iter(got)
        next(iterator)
        assert built == [20]
        for _ in range(9):
            next(iterator)
        assert built == [20]
        next(iterator)
        assert built == [20, 20]
        assert len(list(iterator)) == 89 and sum(built) == 200
    finally:
        steps_module.BLOCK_ROWS = saved
