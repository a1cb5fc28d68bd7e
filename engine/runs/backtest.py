"""run_backtest: one whole run as a library call, and :class:`BacktestRun`, its steps.

Runs on the caller's thread (a script, ``sessionkit run``, a sweep's worker process); the
engine runs in its own threads, which this module starts, follows through
:meth:`~sessionkit.engine.pipeline.session.Session.snapshot` and stops. A run is headless:
data-driven unless the overrides set ``backtest.speed`` or ``backtest.clock`` (the
configuration file's clock is the monitor's).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from ..config import SessionConfig, config_from_dict, load_config
from ..errors import ConfigError, UsageError
from ..pipeline.snapshot import Snapshot
from ..store.db import cannot_read, safe_url
from ..store.export import ExportWriter, recorded_columns, write_csv_export
from .result import RunResult

if TYPE_CHECKING:
    from ..core.time_manager import TradingSession
    from ..pipeline.runtime import Recording
    from ..pipeline.session import Session

ConfigLike = SessionConfig | str | os.PathLike[str]
"""A validated configuration, a TOML file's path or a bundled configuration's name."""


def resolve_config(
    config: ConfigLike | None,
    overrides: Mapping[str, Any] | None = None,
    origins: Mapping[str, str] | None = None,
    *,
    headless: bool = True,
) -> SessionConfig:
    """The validated configuration of a run, overrides applied.

    Parameters
    ----------
    config
        A :class:`SessionConfig`, a TOML path or a bundled name (None: the demo).
    overrides
        Dotted keys (``{"analysis.options.fast": 10}``) validated exactly like the file.
    origins
        The option that set each override, for messages.
    headless
        Run data-driven unless the overrides set ``backtest.speed`` (clock-driven at it)
        or ``backtest.clock``.

    Raises
    ------
    ConfigError
        Naming the key, and the file or option its value came from.
    """
    if isinstance(config, SessionConfig):
        if overrides:
            earlier = config.overrides
            data = config.model_dump(mode="python", exclude_none=True)
            resolved = config_from_dict(
                data,
                source=config.source,
                overrides=overrides,
                origins=origins,
                base=config.folder,
            )
            resolved._origins = {**earlier, **resolved._origins}
        else:
            resolved = config
    else:
        resolved = load_config(config, overrides, origins=origins)
    if headless and resolved.mode == "backtest":
        assert resolved.backtest is not None
        keys = resolved.overrides
        if "backtest.clock" not in keys:
            clock = "clock-driven" if "backtest.speed" in keys else "data-driven"
            if clock != resolved.backtest.clock:
                backtest = resolved.backtest.model_copy(update={"clock": clock})
                resolved = resolved.model_copy(update={"backtest": backtest})
    return resolved


class BacktestRun:
    """One run, step by step: build and check, start, follow, stop, result.

    :func:`run_backtest` is these steps in order; ``sessionkit run`` uses them to show a
    progress bar and to stop on Ctrl-C or SIGTERM and still print and export what ran.

    Parameters
    ----------
    config
        The validated configuration (see :func:`resolve_config`).
    export
        A folder for the CSV export (checked to be writable before the run).
    keep_bars
        Keep every bar for :meth:`RunResult.bars_frame`.

    Raises
    ------
    SessionkitError
        Before any thread starts: a configuration, database or export-folder mistake, or
        a window in which a configured symbol has no bar at all.
    """

    def __init__(
        self, config: SessionConfig, *, export: str | Path | None = None, keep_bars: bool = False
    ) -> None:
        from ..pipeline.session import Session

        self.config = config
        self.export = None if export is None else Path(export)
        self.keep_bars = keep_bars
        self._began = time.perf_counter()
        if self.export is not None:
            _check_writable(self.export)
        # An export alone is written as the run goes; kept bars stay in memory anyway.
        record: Recording = keep_bars or ("drain" if self.export is not None else False)
        self.session = Session(config, record=record)
        self.expected_bars, self.warnings = window_coverage(self.session)
        self._ended: float | None = None
        self._writer: ExportWriter | None = None

    def start(self) -> BacktestRun:
        """Start the engine threads; returns at once."""
        if self.export is not None and not self.keep_bars:
            # Written as the run goes (the session records into deques it empties).
            self._writer = ExportWriter(self.export, *_recorded(self.session))
        self.session.start()
        return self

    def follow(
        self, on_progress: Callable[[Snapshot], None] | None = None, poll: float = 0.1
    ) -> None:
        """Block until the run ends, calling ``on_progress(snapshot)`` every ``poll`` s."""
        session = self.session
        writer = self._writer
        while not session.wait(poll):
            if writer is not None:
                writer.drain()  # the export, as the run goes (bounded backlog)
            if on_progress is not None:
                on_progress(session.snapshot())

    def abandon_export(self) -> None:
        """Write no export (a second signal while it was written, or the run interrupted):
        the writer's temporary files and the folders it made are removed."""
        self.export = None
        if self._writer is not None:
            self._writer.abort()
            self._writer = None

    def streamed_bars(self) -> int:
        """Base bars streamed so far (for a progress bar against :attr:`expected_bars`)."""
        return self.session.coordinator.metrics.bars

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop the engine threads (a finished run is left as it ended)."""
        if self._ended is None:
            self._ended = time.perf_counter()
        return self.session.stop(timeout)

    def result(self) -> RunResult:
        """The run's :class:`RunResult`; writes the export if the run did not fail.

        Call after :meth:`stop`.

        Raises
        ------
        SessionkitError
            If the export cannot be written.
        """
        export: tuple[str, ...] = ()
        session = self.session
        state = session.snapshot().state
        recorded = _recorded(session) if self.export is not None or self.keep_bars else None
        if self.export is not None and state in ("completed", "stopped"):
            assert recorded is not None
            signals = session.analysis.all_signals() if session.analysis else ()
            if self._writer is not None:
                paths = self._writer.finish(signals)
            else:
                paths = write_csv_export(self.export, *recorded, signals=signals)
            export = tuple(str(p) for p in paths)
        elif self._writer is not None:
            self._writer.abort()
        frames: dict[str, Any] = {}
        if self.keep_bars and recorded is not None:
            for (symbol, interval), columns in recorded_columns(*recorded).items():
                frames[f"{symbol}/{interval}"] = columns
        ended = self._ended if self._ended is not None else time.perf_counter()
        return result_of(
            session,
            parameters=self._parameters(),
            warnings=(*self.warnings, *session.left_running),
            wall_seconds=round(ended - self._began, 3),
            export=export,
            frames=frames,
        )

    def _parameters(self) -> dict[str, Any]:
        """The overridden keys and their values, for comparing runs of a sweep."""
        data = self.config.model_dump(mode="python")
        out = {}
        for key in self.config.overrides:
            value: Any = data
            for part in key.replace("[", ".").replace("]", "").split("."):
                value = value[int(part)] if isinstance(value, list) else value.get(part)
            if key == "database_url" and isinstance(value, str):
                value = safe_url(value)
            out[key] = value.isoformat() if isinstance(value, date) else value
        return out


def result_of(
    session: Any,
    *,
    parameters: Mapping[str, Any] | None = None,
    warnings: tuple[str, ...] = (),
    wall_seconds: float = 0.0,
    export: tuple[str, ...] = (),
    frames: Mapping[str, Any] | None = None,
) -> RunResult:
    """The :class:`RunResult` of a session whose threads ended (or were stopped).

    The keyword arguments fill the fields a session does not know (see
    :class:`RunResult`).
    """
    snap = session.snapshot()
    processor, quality = session.processor, session.quality
    bars: dict[str, dict[str, int]] = {}
    qual: dict[str, dict[str, float | None]] = {}
    for (symbol, interval), count in processor.totals.items():
        bars.setdefault(symbol, {})[interval] = count
        overall = quality.overall_quality(symbol)
        qual.setdefault(symbol, {})[interval] = None if overall is None else round(overall, 4)
    metrics = snap.metrics
    loads = session.coordinator.metrics
    analysis = session.analysis
    signals = analysis.all_signals() if analysis else ()
    return RunResult(
        source=session.config.source,
        parameters=dict(parameters or {}),
        state=snap.state,
        error=snap.error,
        mode=snap.mode,
        clock=snap.clock,
        speed=snap.speed,
        timezone=snap.timezone,
        sessions=tuple(d.isoformat() for d in snap.sessions[: snap.session_index]),
        bars=bars,
        quality=qual,
        gaps={s: quality.run_gap_count(s) for s in snap.symbols},
        overruns={s.stream: s.overruns for s in snap.subscriptions},
        steps=metrics.steps,
        bars_per_second=round(metrics.bars_per_second, 1),
        load_seconds=round((loads.initial_load or 0.0) + sum(loads.subsequent_loads), 4),
        load={
            "initial_seconds": metrics.initial_load_seconds,
            "subsequent_mean_seconds": metrics.subsequent_load_seconds,
            "read_seconds": round(loads.read_seconds, 4),
        },
        step_latency_ms=metrics.step_latency_ms,
        analysis_errors=metrics.analysis_errors,
        analysis_error_kinds=metrics.analysis_error_kinds,
        signals=signals,
        metrics=dict(analysis.metrics) if analysis else {},
        warnings=warnings,
        wall_seconds=wall_seconds,
        threads=metrics.threads,
        export=export,
        frames=dict(frames or {}),
    )


def run_backtest(
    config: ConfigLike,
    *,
    overrides: Mapping[str, Any] | None = None,
    export: str | Path | None = None,
    keep_bars: bool = False,
    on_progress: Callable[[Snapshot], None] | None = None,
) -> RunResult:
    """Run one backtest to its end and return its :class:`RunResult`.

    Parameters
    ----------
    config
        A :class:`SessionConfig`, a TOML path or a bundled configuration's name (``demo``).
    overrides
        Dotted keys validated exactly like the file, e.g. ``{"analysis.options.fast": 10,
        "backtest.end_date": "2024-12-06"}``. The run is data-driven unless they set
        ``backtest.speed`` or ``backtest.clock``.
    export
        A folder for the CSV export (bars, derived bars, indicators, quality, signals).
    keep_bars
        Keep every bar in the result (:meth:`RunResult.bars_frame`).
    on_progress
        Called with a :class:`~sessionkit.engine.pipeline.snapshot.Snapshot` about ten
        times a second, on the caller's thread.

    Returns
    -------
    RunResult
        Also when the run ended in state ``error`` (see ``RunResult.error``).

    Raises
    ------
    TypeError
        Before the run: an argument of the wrong type (``config`` None or a number,
        ``overrides`` not a mapping, ``on_progress`` not callable, ``keep_bars`` not a
        bool, ``export`` not a path).
    ConfigError
        Before the run: a configuration mistake, naming the key; a live configuration
        (``mode = "live"``: run it with :class:`Session`).
    UsageError
        Before the run: ``config`` empty; ``export`` empty, a file, or not writable.
    SessionkitError
        Before the run: a database mistake, or a window in which a configured symbol has
        no bar.
    """
    _check_arguments(config, overrides, export, keep_bars, on_progress)
    resolved = resolve_config(config, overrides)
    if resolved.mode != "backtest":
        raise ConfigError(
            resolved.origin_of("mode"),
            "mode",
            f"run_backtest runs backtests, not mode = {resolved.mode!r} (a live session runs "
            "in wall-clock time: use Session, or sessionkit-tui)",
        )
    run = BacktestRun(resolved, export=export, keep_bars=keep_bars)
    try:
        run.start()
        run.follow(on_progress)
    except BaseException:  # Ctrl-C in the caller's program, or on_progress raised
        run.stop()
        run.abandon_export()  # no temporary file is left behind
        raise
    finally:
        run.stop()
    return run.result()


def _check_arguments(
    config: Any, overrides: Any, export: Any, keep_bars: Any, on_progress: Any
) -> None:
    """The arguments of :func:`run_backtest`, checked before anything is read or run.

    Raises
    ------
    TypeError
        Naming the argument of a wrong type.
    UsageError
        If ``config`` is empty, or ``export`` is empty (it would write into the current
        folder) or a file.
    """
    if not isinstance(config, SessionConfig | str | os.PathLike):
        raise TypeError(
            "run_backtest: config must be a SessionConfig, a TOML file's path or a bundled "
            f"configuration's name (e.g. 'demo'), not {_kind(config)}"
        )
    if not isinstance(config, SessionConfig) and not os.fspath(config):
        raise UsageError(
            "config: the value is empty: give a TOML file's path or a bundled "
            "configuration's name (e.g. 'demo')"
        )
    if overrides is not None and not isinstance(overrides, Mapping):
        raise TypeError(
            "run_backtest: overrides must be a mapping of dotted keys to values "
            f"(e.g. {{'analysis.options.fast': 5}}), not {_kind(overrides)}"
        )
    if export is not None:
        if not isinstance(export, str | os.PathLike):
            raise TypeError(
                f"run_backtest: export must be a folder's path (str or Path), not {_kind(export)}"
            )
        if not os.fspath(export):
            raise UsageError("export: the value is empty: give the folder to write the files to")
        if Path(export).is_file():
            raise UsageError(f"export: {export} is a file: give the folder to write the files to")
    if not isinstance(keep_bars, bool):
        raise TypeError(f"run_backtest: keep_bars must be True or False, not {_kind(keep_bars)}")
    if on_progress is not None and not callable(on_progress):
        raise TypeError(
            "run_backtest: on_progress must be a callable taking a Snapshot (or None), "
            f"not {_kind(on_progress)}"
        )


def _kind(value: Any) -> str:
    """``value`` for a message: its type and a short repr."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}" if value is not None else "None"


def window_coverage(session: Session, *, count: bool = True) -> tuple[int | None, tuple[str, ...]]:
    """Check a backtest's window against its database before it starts: the base bars the
    run will stream (None with ``count`` false), and warnings for symbols whose bars cover
    only part of the window or leave sessions of it without a bar.

    Only the bars a run streams count: those inside each session's regular hours, outside
    its break (pre- and post-market, overnight and break bars are never streamed). One
    query joins the calendar's sessions of the window with each symbol's bars, one index
    range per (symbol, session part): it counts them (reading the index entries of the
    streamed bars, about 0.1 s per million), or without ``count`` only asks whether each
    range holds a bar (one index look-up each: the monitor, which needs no count, opens
    as soon). The sessions of a symbol without a bar between its first and last are
    listed as ranges (``2011-02-01 to 2011-02-28``). ``sessionkit run``, :func:`run_backtest` and ``sessionkit-tui`` call it (the
    caller's thread). A live session, or a window without sessions, gives ``(None, ())``.

    Raises
    ------
    ConfigError
        If a configured symbol has no bar inside the trading hours of the window's
        sessions (with a hint at a wrong time zone when it has bars on those days, all
        outside trading hours), or the first session's trailing history reaches before the
        calendar.
    """
    config = session.config
    if config.mode != "backtest" or not session.sessions:
        return None, ()
    tm = session.time_manager
    first, last = session.sessions[0], session.sessions[-1]
    _check_history(config, tm, first)
    base = config.streams.interval
    symbols = config.streams.symbols
    with session.database.connect() as connection:
        trading = [tm.get_trading_session(day) for day in session.sessions]
        try:
            days = _bars_per_session(connection, tm.exchange, trading, base, symbols, count)
        except SQLAlchemyError as exc:  # a damaged file, for one
            raise cannot_read(config.resolved_database_url(), exc) from None
        missing = [s for s in symbols if not days.get(s)]
        if missing:
            raise ConfigError(  # the window, or the symbols, may come from an option
                config.origin_of(("backtest", "streams.symbols")),
                "backtest",
                f"no {base} bar of {', '.join(missing)} in the window {first} to {last} "
                f"(database {safe_url(config.resolved_database_url())})"
                + _outside_hours_hint(connection, session, missing, base, first, last),
            )
    planned = session.sessions
    position = {day: index for index, day in enumerate(planned)}
    warnings = []
    for symbol in symbols:
        held = sorted(days[symbol])  # sessions, in order
        lo_day, hi_day = held[0], held[-1]
        if lo_day > first or hi_day < last:
            warnings.append(
                f"{symbol}: {base} bars cover only {lo_day} to {hi_day} of the window "
                f"{first} to {last}"
            )
        span = planned[position[lo_day] : position[hi_day] + 1]
        if len(held) < len(span):
            holes = [day for day in span if day not in days[symbol]]
            warnings.append(
                f"{symbol}: no {base} bar in {len(holes)} of the {len(span)} sessions from "
                f"{lo_day} to {hi_day}: {_day_ranges(holes, position)}"
            )
    total = sum(n for per_day in days.values() for n in per_day.values()) if count else None
    return total, tuple(warnings)


def _bars_per_session(
    connection: Any,
    exchange: str,
    sessions: list[TradingSession],
    base: str,
    symbols: list[str],
    count: bool,
) -> dict[str, dict[date, int]]:
    """The ``sessions`` (in order) in which each symbol has a ``base`` bar inside regular
    hours (outside the break), with how many (1 each without ``count``).

    One statement: the calendar's sessions of the window times the symbols, and for each
    pair the bars of its session, an index range of ``bars`` (two when the window has
    breaks: ``[open, break start)`` and ``[break end, close)``, the second empty on a day
    without one). Rows give a session by its open (an integer on every backend: no date
    to parse), and without ``count`` only the pairs that hold a bar.
    """
    from sqlalchemy import (
        BigInteger,
        String,
        column,
        exists,
        func,
        or_,
        select,
        true,
        type_coerce,
        values,
    )

    from ..store.db import BarRecord, CalendarDay

    day_of = {int(s.open.timestamp()): s.date for s in sessions}
    breaks = any(s.break_start is not None for s in sessions)
    calendar = (
        select(
            CalendarDay.open,
            CalendarDay.close,
            func.coalesce(CalendarDay.break_start, CalendarDay.close).label("pause"),
            func.coalesce(CalendarDay.break_end, CalendarDay.close).label("resume"),
        )
        .where(
            CalendarDay.exchange == exchange,
            CalendarDay.session_date >= sessions[0].date,
            CalendarDay.session_date <= sessions[-1].date,
        )
        .subquery("sessions")
    )
    wanted = values(column("symbol", String), name="wanted").data([(s,) for s in symbols]).cte()

    def within(lo: Any, hi: Any) -> tuple[Any, ...]:
        return (
            BarRecord.symbol == wanted.c.symbol,
            BarRecord.interval == base,
            BarRecord.start >= lo,
            BarRecord.start < hi,
        )

    c = calendar.c
    parts = ((c.open, c.pause), (c.resume, c.close)) if breaks else ((c.open, c.close),)
    pairs = (wanted.c.symbol, type_coerce(c.open, BigInteger))
    if count:
        counts = [select(func.count()).where(*within(lo, hi)).scalar_subquery() for lo, hi in parts]
        query = select(*pairs, sum(counts[1:], counts[0]))
    else:
        held = or_(*(exists().where(*within(lo, hi)) for lo, hi in parts))
        query = select(*pairs, 1).where(held)
    rows = connection.execute(query.select_from(wanted.join(calendar, true()))).all()
    out: dict[str, dict[date, int]] = {}
    for symbol, opens, n in rows:
        day = day_of.get(opens)
        if n and day is not None:
            out.setdefault(symbol, {})[day] = n
    return out


def _outside_hours_hint(
    connection: Any, session: Session, symbols: list[str], base: str, first: date, last: date
) -> str:
    """For symbols without a bar in the window's trading hours: a hint at a wrong time zone
    for those that have bars on the window's days all the same (a look-up each)."""
    from datetime import time as clock
    from datetime import timedelta

    from sqlalchemy import func, select

    from ..store.db import BarRecord

    tz = session.runtime.tz
    lo = datetime.combine(first, clock(), tz)
    hi = datetime.combine(last + timedelta(days=1), clock(), tz)
    found = [
        symbol
        for symbol in symbols
        if connection.execute(
            select(func.min(BarRecord.start)).where(
                BarRecord.symbol == symbol,
                BarRecord.interval == base,
                BarRecord.start >= lo,
                BarRecord.start < hi,
            )
        ).scalar()
        is not None
    ]
    if not found:
        return ""
    exchange = session.config.exchange_group
    return (
        f"; {', '.join(found)} {'has' if len(found) == 1 else 'have'} {base} bars on those "
        f"days, but none inside {exchange}'s trading hours ({tz}): were they imported with "
        "the wrong time zone (sessionkit db import --tz)?"
    )


def _day_ranges(days: list[date], position: dict[date, int], shown: int = 3) -> str:
    """``days`` (sessions, in order) as ranges of consecutive sessions: ``2011-02-01 to
    2011-02-28, 2011-03-04``; past ``shown`` ranges, the first ones, how many more, and
    the last one."""
    ranges: list[list[date]] = []
    for day in days:
        if ranges and position[day] == position[ranges[-1][1]] + 1:
            ranges[-1][1] = day
        else:
            ranges.append([day, day])
    text = [f"{a}" if a == b else f"{a} to {b}" for a, b in ranges]
    if len(text) > shown:
        more = len(text) - shown
        text = [*text[: shown - 1], f"{more} more range{'s' if more > 1 else ''}", text[-1]]
    return ", ".join(text)


def _check_history(config: SessionConfig, tm: Any, first: date) -> None:
    """The trailing history of the first session must lie inside the calendar.

    Raises
    ------
    ConfigError
        Naming the ``historical`` entry whose ``trailing_days`` reach before the calendar.
    """
    from ..errors import CalendarCoverageError

    for index, entry in enumerate(config.historical):
        if not entry.trailing_days:
            continue
        try:
            tm.get_previous_trading_date(first, entry.trailing_days)
        except CalendarCoverageError as exc:
            key = f"historical[{index}].trailing_days"
            raise ConfigError(
                # (the first session is the start date's doing, with the trailing days)
                config.origin_of(key)
                if key in config.overrides
                else config.origin_of("backtest.start_date"),
                key,
                f"{entry.trailing_days} trading days of history before the first session "
                f"{first} reach before the {exc.exchange} calendar in the database (it "
                f"starts on {exc.first}): start later or load less history",
            ) from None


def _recorded(session: Any) -> tuple:
    """What the session recorded, as the arguments of the export functions."""
    processor = session.processor
    names = {key: stream.names for key, stream in processor.streams.items()}
    return (
        processor.record or {},
        names,
        session.quality.record or {},
        session.runtime.tz,
        session.bar_end_of(),
    )


def _check_writable(directory: Path) -> None:
    """Prove, before the run, that ``directory`` can be created and written.

    A file is created and removed at once in the folder, or in its nearest existing
    parent when the folder does not exist yet (nothing is left behind).

    Raises
    ------
    UsageError
        If it cannot.
    """
    probe = directory
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(f"{probe} is not a folder")
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".sessionkit-check-"):
            pass
    except OSError as exc:
        raise UsageError(f"export folder {directory} is not writable: {exc}") from None
