"""The Databento live feed: OHLCV bars from Databento's live gateway (``sessionkit[databento]``).

:class:`DatabentoFeed` implements :class:`~sessionkit.engine.feeds.replay.BarFeed` with
Databento's own client (:class:`databento.Live`): it authenticates with the API key read
from an environment variable (never printed), subscribes to the streamed symbols (raw
symbols) in the schema of the streamed interval (``ohlcv-1m`` or ``ohlcv-1h``), from the
session's open (intraday replay), and turns records into steps, so bars go through the
same live path as the replay feed (gaps, backfill, quality).

Threads: the client runs on the feed's own event loop (:class:`_GatewayLoop`), in the
``databento_live`` thread, which calls :meth:`DatabentoFeed._on_record` (it only puts bars
on a queue); the ``databento_connect`` thread connects and authenticates while the thread
that builds the feed waits for it (so that a signal's exception raised in that thread,
Ctrl-C or SIGTERM, leaves it as it came, never as a feed error); the ``databento_watch``
thread waits for the connection to close (it ends when the connection closes:
:meth:`close` closes it, then ends the loop); ``next_step`` and ``notices`` are called by
the ``session_coordinator`` thread, which alone groups bars into steps; ``backfill`` by
the ``data_quality_manager`` thread (it only reads the database).

A gateway that closes the connection, or sends something that is not a gateway message,
before it authenticated the client fails the start at once with a message saying so (the
client would wait for its 30-second authentication timeout); the client's errors never
reach asyncio's default exception handler (which printed a traceback on stderr).

A step holds every symbol's bar of one minute (or hour). It is handed on when every
symbol's bar has come, when a later bar arrives, or :data:`GRACE` seconds after its first
bar (a symbol without a bar then is a gap). A bar for an instant already handed on is
dropped with a warning. If the connection is lost before the session's last bar, the feed
reports it (a warning in the event log) and ends: the session ends cleanly with the bars
received, and the quality manager counts the rest as gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from datetime import UTC, date, datetime, timedelta, tzinfo
from time import monotonic
from typing import Any, Literal, NamedTuple

from ..config import SessionConfig
from ..core.bar import Bar, Step, check_symbol, interval_delta
from ..core.time_manager import TimeManager
from ..core.windows import SessionTimes, bar_end, in_break, next_bar_start
from ..errors import ConfigError, FeedError
from ..store.data_manager import DataManager
from .replay import BarFeed

SCHEMAS = {"1m": "ohlcv-1m", "1h": "ohlcv-1h"}
"""The Databento schema of each streamed interval sessionkit can follow."""

GRACE = 2.0
"""Wall seconds a step waits for the bars of symbols that have not reported yet."""

PRICE_SCALE = 1_000_000_000
UNDEF_PRICE = 2**63 - 1

Level = Literal["info", "warning", "error"]


_CLOSED = object()


def _replay_completed(record: Any, dbn: Any) -> bool:
    """Whether a gateway's system message says an intraday replay caught up with real time
    (code ``REPLAY_COMPLETED``; older gateways only say ``Finished ... replay``)."""
    if getattr(record, "code", None) == dbn.SystemCode.REPLAY_COMPLETED:
        return True
    text = str(getattr(record, "msg", ""))
    return text.startswith("Finished ") and text.endswith(" replay")


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _GatewayLoop(asyncio.SelectorEventLoop):
    """The event loop of one feed's client (``databento.Live(loop=...)``).

    - A connection the gateway ends before it authenticated the client (it closed it, or
      sent something that is not a gateway message) fails the client's wait for the
      authentication at once, with what the gateway did (the client itself notices only
      the authentication's 30-second timeout).
    - An error in the client's protocol (bad data from the gateway) is not printed with
      a traceback by asyncio's default exception handler: the connection ends, and its
      end is reported (a failed start, or the lost connection in the event log); other
      errors go to ``report`` (the feed's notices).
    """

    def __init__(self, where: str, report: Any) -> None:
        super().__init__()
        self._where = where
        self._report = report
        self.protocols: list[Any] = []
        """The client's protocols (one per connection), as they were made."""
        self.failure: str | None = None
        """What the gateway sent that the client could not decode, once authenticated
        (said when the connection's end is reported)."""
        self.set_exception_handler(self._exception)

    async def create_connection(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        def factory() -> Any:
            protocol = protocol_factory()
            self.protocols.append(protocol)
            protocol.disconnected.add_done_callback(lambda done: self._ended(protocol, done))
            return protocol

        return await super().create_connection(factory, *args, **kwargs)

    def _fail_authentication(self, protocol: Any, problem: str) -> None:
        from databento.common.error import BentoError

        authenticated = protocol.authenticated
        if not authenticated.done():
            authenticated.set_exception(BentoError(problem))

    def _ended(self, protocol: Any, disconnected: asyncio.Future[None]) -> None:
        """The connection of ``protocol`` ended: before its authentication, fail it."""
        if protocol.authenticated.done():
            return
        exc = None if disconnected.cancelled() else disconnected.exception()
        if exc is None:
            problem = f"{self._where} closed the connection before authenticating the client"
        else:
            problem = (
                f"the connection to {self._where} was lost before the authentication: "
                f"{_shorten(str(exc) or exc.__class__.__name__)}"
            )
        self._fail_authentication(protocol, problem)

    def _exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        protocol = context.get("protocol")
        exc = context.get("exception")
        if protocol is not None and protocol in self.protocols:
            # The protocol failed on what the gateway sent; asyncio closes the connection.
            if not protocol.authenticated.done():
                detail = f": {_shorten(str(exc))}" if exc is not None and str(exc) else ""
                self._fail_authentication(
                    protocol,
                    f"{self._where} sent something that is not a Databento gateway message{detail}",
                )
            else:  # the connection's end is reported (the watch thread), with this
                self.failure = (
                    "the gateway sent data that could not be decoded: "
                    f"{_shorten(str(exc) or exc.__class__.__name__)}"
                )
            return
        if isinstance(exc, asyncio.CancelledError):
            return
        message = context.get("message") or "error"
        detail = f": {exc}" if exc is not None else ""
        self._report(("warning", f"databento client: {message}{detail}"))

    async def shutdown(self) -> None:
        """Abort the connections and cancel what still runs (then the loop stops)."""
        for protocol in self.protocols:
            with contextlib.suppress(Exception):  # never connected, or closed
                protocol.transport.abort()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks(self) if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.stop()


class _Times(NamedTuple):
    """A session without a break (what the feed reads of one: :class:`SessionTimes`)."""

    open: datetime
    close: datetime
    break_start: datetime | None = None
    break_end: datetime | None = None


class DatabentoFeed(BarFeed):
    """Bars of one session from Databento's live gateway.

    Parameters
    ----------
    session_date, open_, close
        The trading day and its open and close instants (aware).
    symbols, interval
        What is streamed.
    dataset
        Databento dataset (``XNAS.ITCH``...).
    key
        The API key.
    data_manager
        For ``backfill`` (bars already in the database).
    gateway, port
        The live gateway (default: Databento's for the dataset).
    grace
        Seconds a step waits for missing symbols.
    zone
        The exchange's zone (times in notices).
    session
        The session's times with its break, if it has one (default: ``open_`` to
        ``close`` without a break). Each bar is handed on at its end
        (:func:`~sessionkit.engine.core.windows.bar_end`); a bar that no symbol sent is
        handed on as an empty instant, so that the gap filler sees it missing.
    """

    def __init__(
        self,
        session_date: date,
        open_: datetime,
        close: datetime,
        symbols: list[str],
        interval: str,
        dataset: str,
        key: str,
        data_manager: DataManager,
        *,
        gateway: str | None = None,
        port: int = 13000,
        grace: float = GRACE,
        zone: tzinfo = UTC,
        session: SessionTimes | None = None,
    ) -> None:
        import databento

        self.session_date = session_date
        self._zone = zone
        """The exchange's zone: times in notices are in it, like the rest of the UI."""
        self._open = open_
        self._close = close
        self._session: SessionTimes = session or _Times(open_, close)
        """The session's times (its break, if it has one, holds no instant)."""
        self._symbols = list(symbols)
        self._interval = interval
        self._delta = interval_delta(interval)
        self._dm = data_manager
        self._grace = grace
        self._where = f"{gateway}:{port}" if gateway else f"Databento's gateway for {dataset}"
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._notices: queue.SimpleQueue[tuple[Level, str]] = queue.SimpleQueue()
        # Coordinator thread only:
        self._pending: dict[datetime, dict[str, Bar]] = {}
        self._first_seen: dict[datetime, float] = {}
        self._ready: list[Step] = []
        self._last_emitted: datetime | None = None
        self._ended = False
        self._past_close = False
        """A record from after the close came (client's thread)."""
        self._closing = threading.Event()
        self.bars_received = 0
        """Session bars received (written by the client's thread; any thread may read it)."""
        self.dropped_records = 0
        """Records dropped on arrival: invalid or undefined prices, unknown instruments
        (written by the client's thread)."""
        self.late_bars = 0
        """Bars dropped because their instant was already handed on (coordinator's thread)."""
        # Waiting for a live session that has not closed yet: give up a minute after the
        # close if the gateway sends nothing more. A past session (intraday replay) ends
        # with its last bar or with the connection.
        now = datetime.now(UTC)
        self._deadline = close + timedelta(minutes=1) if close > now else None
        self._loop = _GatewayLoop(self._where, self._notices.put)
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="databento_live", daemon=True
        )
        self._loop_thread.start()
        self._client: Any = None
        connected = threading.Event()
        failure: list[BaseException] = []

        def connect() -> None:
            """``databento_connect`` thread: connect, authenticate, subscribe, start."""
            try:
                client = databento.Live(key=key, gateway=gateway, port=port, loop=self._loop)
                self._client = client
                client.add_callback(self._on_record, self._on_callback_error)
                client.subscribe(
                    dataset=dataset,
                    schema=SCHEMAS[interval],
                    symbols=self._symbols,
                    stype_in="raw_symbol",
                    start=int(open_.timestamp()) * 1_000_000_000,
                )
                client.start()
            except BaseException as exc:  # BentoError, ValueError, OSError from the client
                failure.append(exc)
            finally:
                connected.set()

        connecting = threading.Thread(target=connect, name="databento_connect", daemon=True)
        try:
            connecting.start()
            # Interruptible: a signal's exception (KeyboardInterrupt, the commands'
            # Terminated) is raised here, in the thread that builds the feed, and leaves
            # as it came: the command stops as it does for a signal at any other time.
            connected.wait()
        except BaseException:
            self._abandon()
            raise
        if failure:
            self._abandon()
            raise FeedError(
                f"databento feed: cannot start a live session with {self._where} "
                f"(dataset {dataset}): {failure[0]}"
            ) from None
        self._watch = threading.Thread(
            target=self._watch_connection, name="databento_watch", daemon=True
        )
        self._watch.start()

    # -- the client's threads ------------------------------------------------------------

    def _on_record(self, record: Any) -> None:
        """Client thread: queue OHLCV bars of the session (as (symbol, Bar))."""
        import databento_dbn

        if isinstance(record, databento_dbn.ErrorMsg):
            self._notices.put(("error", f"databento gateway error: {record.err}"))
            return
        if isinstance(record, databento_dbn.SystemMsg):
            if self._deadline is None and _replay_completed(record, databento_dbn):
                # A past session's replay is complete: every bar it has has come.
                self._inbox.put(_CLOSED)
            return
        if not isinstance(record, databento_dbn.OHLCVMsg):
            return
        symbol = self._client.symbology_map.get(record.instrument_id)
        prices = (record.open, record.high, record.low, record.close)
        start = datetime.fromtimestamp(record.ts_event // 1_000_000_000, UTC)
        if symbol not in self._symbols or UNDEF_PRICE in prices:
            self.dropped_records += 1
            self._notices.put(
                (
                    "warning",
                    f"databento: dropped a record of instrument {record.instrument_id} "
                    f"({symbol or 'unmapped'}) at {self._local(start)}: "
                    + ("undefined price" if symbol in self._symbols else "not a streamed symbol"),
                )
            )
            return
        o, h, lo, c = (p / PRICE_SCALE for p in prices)
        if record.ts_event % (60 * 1_000_000_000) or not (lo <= min(o, c) and max(o, c) <= h):
            self.dropped_records += 1
            self._notices.put(
                ("warning", f"databento: dropped an invalid {symbol} bar at {self._local(start)}")
            )
            return
        if not (self._open <= start < self._close):
            if start >= self._close and not self._past_close:
                # Records come in time order: every bar of the session has come (the
                # session ends now, also when nobody traded in its last minutes).
                self._past_close = True
                self._inbox.put(_CLOSED)
            return  # outside the regular session
        self.bars_received += 1
        self._inbox.put((symbol, Bar(start, o, h, lo, c, int(record.volume))))

    def _on_callback_error(self, exc: Exception) -> None:
        self._notices.put(("error", f"databento: error handling a record: {exc}"))

    def _watch_connection(self) -> None:
        """``databento_watch`` thread: report the connection's end, then end."""
        problem: str | None = None
        try:
            self._client.block_for_close()
        except Exception as exc:
            problem = str(exc) or exc.__class__.__name__
        problem = self._loop.failure or problem
        if not self._closing.is_set():
            detail = f": {problem}" if problem else ""
            self._notices.put(
                (
                    "warning",
                    f"databento: connection to {self._where} lost after "
                    f"{self.bars_received} bar(s){detail}; the session ends with the bars "
                    "received",
                )
            )
        self._inbox.put(_CLOSED)

    # -- the coordinator's thread ---------------------------------------------------------

    def next_step(self, timeout: float) -> Step | None:
        until = monotonic() + timeout
        while True:
            if self._ready:
                return self._emit()
            if self._ended and not self._pending:
                return None
            now = monotonic()
            wait = until - now
            if self._pending:
                oldest = min(self._pending)
                due = self._first_seen[oldest] + self._grace
                if due <= now:
                    self._release(oldest)
                    continue
                wait = min(wait, due - now)
            if self._deadline is not None and datetime.now(UTC) >= self._deadline:
                self._end()
                continue
            if wait <= 0:
                return None
            try:
                item = self._inbox.get(timeout=wait)
            except queue.Empty:
                continue
            if item is _CLOSED:
                self._end()
                continue
            self._take(*item)

    def _local(self, instant: datetime) -> str:
        """``15:44 EST``: an instant in the exchange's zone, for notices."""
        local = instant.astimezone(self._zone)
        return f"{local:%H:%M} {local.tzname()}"

    def _take(self, symbol: str, bar: Bar) -> None:
        start = bar.start
        if self._last_emitted is not None and start <= self._last_emitted:
            self.late_bars += 1
            self._notices.put(
                (
                    "warning",
                    f"databento: {symbol} bar {self._local(start)} came after that instant was "
                    "handed on; dropped (the gap filler may restore it)",
                )
            )
            return
        bars = self._pending.setdefault(start, {})
        self._first_seen.setdefault(start, monotonic())
        bars.setdefault(symbol, bar)
        for earlier in sorted(s for s in self._pending if s < start):
            self._release(earlier)
        if len(bars) == len(self._symbols):
            self._release(start)

    def _release(self, start: datetime) -> None:
        for earlier in sorted(s for s in self._pending if s <= start):
            self._silent_until(earlier)
            bars = self._pending.pop(earlier)
            self._first_seen.pop(earlier, None)
            items = tuple((s, bars[s]) for s in self._symbols if s in bars)
            self._ready.append((bar_end(self._session, self._delta, earlier), items))
            self._last_emitted = earlier

    def _silent_until(self, start: datetime) -> None:
        """Empty instants for the bars before ``start`` that no symbol sent (a gateway
        sends no bar of a minute without trades), so that the quality manager sees each
        of them missing once its instant has passed and fills it from the database, as
        when only some symbols' bars are missing. The bars are on the grid of the last
        bar handed on (of the open before the first); none falls in the session's break."""
        session, step = self._session, self._delta
        t = (
            session.open
            if self._last_emitted is None
            else next_bar_start(session, step, self._last_emitted)
        )
        if (start - t) % step:
            return  # off the grid (an hourly gateway bar not anchored at the open)
        while t < start:
            if not in_break(session, t):
                self._ready.append((bar_end(session, step, t), ()))
                self._last_emitted = t
            t = next_bar_start(session, step, t)

    def _emit(self) -> Step:
        step = self._ready.pop(0)
        if step[0] >= self._close and not self._pending:
            self._end()
        return step

    def _end(self) -> None:
        if self._pending:
            self._release(max(self._pending))
        self._silent_until(self._close)  # the session's last bars nobody sent
        self._ended = True

    @property
    def exhausted(self) -> bool:
        return self._ended and not self._pending and not self._ready

    def notices(self) -> list[tuple[Level, str]]:
        out = []
        while True:
            try:
                out.append(self._notices.get_nowait())
            except queue.Empty:
                return out

    def backfill(self, symbol: str, start: datetime, end: datetime) -> list[Bar]:
        """Bars already in the database (live gateways do not resend missed bars)."""
        return self._dm.get_bars_between(symbol, self._interval, start, end)

    def close(self) -> None:
        """Close the connection (the watch thread then ends), wake the coordinator and end
        the client's loop."""
        self._closing.set()
        with contextlib.suppress(Exception):  # already closed
            self._client.terminate()
        self._inbox.put(_CLOSED)
        self._watch.join(timeout=1.0)
        self._stop_loop()

    def _abandon(self) -> None:
        """The start failed or was interrupted: end the client's loop, which aborts what
        the client opened and cancels its connection (the connecting thread's wait then
        ends). Not the client's ``terminate``: it waits for the lock the connecting thread
        holds until its connection is made or fails (30 s with a silent gateway)."""
        self._closing.set()
        self._stop_loop()

    def _stop_loop(self, timeout: float = 1.0) -> None:
        loop = self._loop
        if loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # stopped already
            asyncio.run_coroutine_threadsafe(loop.shutdown(), loop)
        self._loop_thread.join(timeout)
        if not self._loop_thread.is_alive():
            loop.close()


def make_databento_feed(config: SessionConfig, dm: DataManager, tm: TimeManager) -> DatabentoFeed:
    """Build the databento feed from ``[live]``: dataset, key from ``key_env``, gateway, port.

    Raises
    ------
    ConfigError
        If the extra is missing, the key's variable is unset, the interval has no Databento
        schema, a symbol breaks the symbol rule or the session date is not a trading day.
    FeedError
        If the gateway cannot be reached or refuses the key.
    """
    live = config.live
    try:
        import databento  # noqa: F401
    except ImportError:
        raise ConfigError(
            config.origin_of("live.feed"),
            "live.feed",
            "\"databento\" needs the databento extra: pip install -e '.[databento]' in the sessionkit checkout",
        ) from None
    interval = config.streams.interval
    if interval not in SCHEMAS:
        raise ConfigError(
            config.origin_of("streams.interval"),
            "streams.interval",
            f"{interval!r} has no Databento OHLCV schema (the databento feed streams "
            f"{', '.join(SCHEMAS)})",
        )
    value = os.environ.get(live.key_env)
    key = (value or "").strip()
    if not key:
        state = "is not set" if value is None else "is empty"
        raise ConfigError(
            config.origin_of("live.key_env"),
            "live.key_env",
            f"the environment variable {live.key_env} holding the Databento API key {state}",
        )
    for symbol in config.streams.symbols:
        check_symbol(symbol)
    day = live.session_date or datetime.now(tm.timezone).date()
    session = tm.get_trading_session(day)
    if session is None:
        raise ConfigError(
            config.origin_of("live.session_date"),
            "live.session_date",
            f"{day} is not a {config.exchange_group} trading day",
        )
    return DatabentoFeed(
        day,
        session.open,
        session.close,
        config.streams.symbols,
        interval,
        live.dataset or "",
        key,
        dm,
        gateway=live.gateway,
        port=live.port,
        zone=tm.timezone,
        session=session,
    )
