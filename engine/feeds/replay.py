"""Live bar sources: the :class:`BarFeed` interface and the replay feed.

:class:`ReplayFeed` plays one stored session's bars in wall-clock time, so live mode runs
here with no network; a real feed implements :class:`BarFeed`. The feed is read only by
the ``session_coordinator`` thread; ``backfill`` is called by the
``data_quality_manager`` thread (it only reads the database).
"""

from __future__ import annotations

import random
import threading
from abc import ABC, abstractmethod
from datetime import date, datetime, time, timedelta
from itertools import groupby
from time import perf_counter as monotonic
from typing import Literal

from ..config import SessionConfig
from ..core.bar import Bar, Step, interval_delta
from ..core.time_manager import TimeManager
from ..core.windows import (
    SessionTimes,
    bar_end,
    gap_instants,
    in_break,
    trading_time,
    window_end_instants,
)
from ..errors import ConfigError
from ..store.data_manager import DataManager


class BarFeed(ABC):
    """A source of live bars for one session."""

    session_date: date
    """The trading day the feed delivers."""

    @abstractmethod
    def next_step(self, timeout: float) -> Step | None:
        """Block up to ``timeout`` s for the next instant's bars; None if none came yet."""

    @property
    @abstractmethod
    def exhausted(self) -> bool:
        """True when no more bars will come this session."""

    @abstractmethod
    def backfill(self, symbol: str, start: datetime, end: datetime) -> list[Bar]:
        """Bars of ``symbol`` starting in ``[start, end)`` that the feed can still supply."""

    @abstractmethod
    def close(self) -> None:
        """Wake any waiter and release resources."""

    def notices(self) -> list[tuple[Literal["info", "warning", "error"], str]]:
        """What the feed has to report since the last call, as (level, message) pairs.

        A lost connection, dropped records... The coordinator writes them to the event log
        (and so to the snapshot's events). The replay feed has nothing to report.
        """
        return []


class ReplayFeed(BarFeed):
    """Plays a stored session's bars when their end time comes, in wall-clock time.

    Parameters
    ----------
    steps
        The session's instants in order.
    start
        Session time at which the replay starts; earlier instants are delivered at once.
    speed
        Session seconds per wall second (1 = real time; more only to demonstrate).
    drop_rate
        Fraction of bars lost in transit (seeded), to show live gap filling.
    session
        The session replayed: its break takes no wall time (the replay moves from the
        break's start to its end at once).
    """

    def __init__(
        self,
        session_date: date,
        steps: list[Step],
        start: datetime,
        data_manager: DataManager,
        interval: str,
        *,
        speed: float = 1.0,
        drop_rate: float = 0.0,
        seed: int = 7,
        session: SessionTimes | None = None,
    ) -> None:
        self._session = session
        self.session_date = session_date
        self._dm = data_manager
        self._interval = interval
        self._start = start
        self._speed = speed
        self._wall0: float | None = None
        self._position = 0
        self._wake = threading.Event()
        rng = random.Random(seed)
        self.lost: list[tuple[str, Bar]] = []
        """The (symbol, bar) pairs lost in transit on purpose (``drop_rate``), in time
        order; ``backfill`` still supplies them (they are in the database)."""
        if drop_rate > 0:
            kept = []
            for t, items in steps:
                arrive = []
                for item in items:
                    (arrive if rng.random() >= drop_rate else self.lost).append(item)
                kept.append((t, tuple(arrive)))
            steps = kept
        self.dropped = len(self.lost)
        """Bars lost in transit on purpose (``drop_rate``)."""
        self._steps = steps

    def now(self) -> datetime:
        """The feed's current time."""
        if self._wall0 is None:
            return self._start
        now = self._start + timedelta(seconds=(monotonic() - self._wall0) * self._speed)
        session = self._session
        start = session.break_start if session is not None else None
        if start is not None and self._start < start <= now:
            now += session.break_end - start  # the break takes no time
        return now

    def next_step(self, timeout: float) -> Step | None:
        if self._wall0 is None:
            self._wall0 = monotonic()
        if self._position >= len(self._steps):
            return None
        t, items = self._steps[self._position]
        span = t - self._start
        if self._session is not None:
            span = trading_time(self._session, self._start, t)
        wait = span.total_seconds() / self._speed - (monotonic() - self._wall0)
        if wait > 0 and (self._wake.wait(min(timeout, wait)) or wait > timeout):
            return None
        self._position += 1
        return t, items

    @property
    def exhausted(self) -> bool:
        return self._position >= len(self._steps)

    def backfill(self, symbol: str, start: datetime, end: datetime) -> list[Bar]:
        return self._dm.get_bars_between(symbol, self._interval, start, end)

    def close(self) -> None:
        self._wake.set()


def make_feed(config: SessionConfig, dm: DataManager, tm: TimeManager) -> BarFeed:
    """Build the configured feed: ``replay`` for the configured or latest session, or
    ``databento`` (:func:`~sessionkit.engine.feeds.databento.make_databento_feed`).

    Raises
    ------
    ConfigError
        If the replay date is not a trading day or has no bars (replay), or the Databento
        settings are wrong (databento).
    """
    live = config.live
    if live.feed == "databento":
        from .databento import make_databento_feed

        return make_databento_feed(config, dm, tm)
    symbols = config.streams.symbols
    interval = config.streams.interval
    day = live.replay_date or _last_session_with_data(config, dm, tm)
    session = tm.get_trading_session(day)
    if session is None:
        raise ConfigError(
            config.origin_of("live.replay_date"),
            "live.replay_date",
            f"{day} is not a {config.exchange_group} trading day",
        )
    pairs = [
        pair
        for pair in dm.get_step_bars(symbols, interval, session.open, session.close)
        if not in_break(session, pair[1].start)
    ]
    if not pairs:
        raise ConfigError(
            config.origin_of("live.replay_date"),
            "live.replay_date",
            f"no {interval} bars of {symbols} on {day}",
        )
    delta = interval_delta(interval)
    steps: list[Step] = [
        (bar_end(session, delta, start), tuple(group))
        for start, group in groupby(pairs, key=lambda pair: pair[1].start)
    ]
    # As in a backtest: the minutes of a gap in the data are instants (as a live feed's
    # silent minutes), and a derived window whose last bars are missing still ends on time.
    derived = [interval_delta(i) for i in config.streams.derived]
    starts = [items[0][1].start for _t, items in steps]
    times = [t for t, _items in steps]
    # (No instant comes at the break's start in live mode but from the feed.)
    ends = set(window_end_instants(session, delta, derived, starts, break_start=True))
    ends.update(gap_instants(session, delta, times))
    ends.difference_update(times)
    if ends:
        steps = sorted([*steps, *((t, ()) for t in ends)], key=lambda step: step[0])
    start = session.open
    if live.replay_start:
        try:
            hh, mm = (int(x) for x in live.replay_start.split(":"))
            local = datetime.combine(day, time(hh, mm), tm.timezone)
        except ValueError:
            raise ConfigError(
                config.origin_of("live.replay_start"),
                "live.replay_start",
                f"{live.replay_start!r} is not a time like 10:30",
            ) from None
        start = max(session.open, min(local, session.close))
        if in_break(session, start):
            start = session.break_end
    return ReplayFeed(
        day,
        steps,
        start,
        dm,
        interval,
        speed=live.speed,
        drop_rate=live.drop_rate,
        session=session,
    )


def _last_session_with_data(config: SessionConfig, dm: DataManager, tm: TimeManager) -> date:
    from sqlalchemy import BigInteger, func, select, type_coerce

    from ..store.db import BarRecord

    column = type_coerce(BarRecord.__table__.c.start, BigInteger)
    with dm.database.connect() as connection:
        last = connection.execute(
            select(func.max(column)).where(
                BarRecord.symbol.in_(config.streams.symbols),
                BarRecord.interval == config.streams.interval,
            )
        ).scalar_one()
    if last is None:
        raise ConfigError(
            config.origin_of("streams.symbols"),
            "streams.symbols",
            "no bars of the streamed symbols to replay (live mode)",
        )
    moment = datetime.fromtimestamp(last, tm.timezone)
    return tm.count_back_trading_days(moment.date(), 1)
