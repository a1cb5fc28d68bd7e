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
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import SessionConfig, config_from_dict, load_config
from ..errors import ConfigError, UsageError
from ..pipeline.snapshot import Snapshot
from ..store.db import safe_url
from ..store.export import ExportWriter, recorded_columns, write_csv_export
from .result import RunResult

if TYPE_CHECKING:
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
    config: ConfigLike | None,
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
    SessionkitError
        Before the run: a configuration, database or export-folder mistake, or a window in
        which a configured symbol has no bar.
    """
    run = BacktestRun(resolve_config(config, overrides), export=export, keep_bars=keep_bars)
    try:
        run.start()
        run.follow(on_progress)
    finally:
        run.stop()
    return run.result()


def window_coverage(session: Session, *, count: bool = True) -> tuple[int | None, tuple[str, ...]]:
    """Check a backtest's window against its database before it starts: the base bars the
    window holds (None with ``count`` false), and warnings for symbols whose bars cover
    only part of it.

    ``sessionkit run``, :func:`run_backtest` and ``sessionkit-tui`` call it (the caller's
    thread). Counting reads every bar of the window's index (0.25 s for 1.7 million bars);
    without it, each symbol's first and last bar in the window are two index look-ups (the
    monitor, which needs no count, opens as soon). A live session, or a window without
    sessions, gives ``(None, ())``.

    Raises
    ------
    ConfigError
        If a configured symbol has no bar in the window, or the first session's trailing
        history reaches before the calendar.
    """
    config = session.config
    if config.mode != "backtest" or not session.sessions:
        return None, ()
    from sqlalchemy import func, select

    from ..store.db import BarRecord

    tm = session.time_manager
    first, last = session.sessions[0], session.sessions[-1]
    _check_history(config, tm, first)
    opens = tm.get_trading_session(first).open
    closes = tm.get_trading_session(last).close
    base = config.streams.interval
    window = (
        BarRecord.interval == base,
        BarRecord.start >= opens,
        BarRecord.start < closes,
    )
    with session.database.connect() as connection:
        if count:
            rows = connection.execute(
                select(
                    BarRecord.symbol,
                    func.count(),
                    func.min(BarRecord.start),
                    func.max(BarRecord.start),
                )
                .where(BarRecord.symbol.in_(config.streams.symbols), *window)
                .group_by(BarRecord.symbol)
            ).all()
        else:
            rows = []
            for symbol in config.streams.symbols:
                where = (BarRecord.symbol == symbol, *window)
                first_bar = connection.execute(
                    select(func.min(BarRecord.start)).where(*where)
                ).scalar()
                if first_bar is not None:
                    last_bar = connection.execute(
                        select(func.max(BarRecord.start)).where(*where)
                    ).scalar()
                    rows.append((symbol, 0, first_bar, last_bar))
    found = {symbol: (bars, lo, hi) for symbol, bars, lo, hi in rows}
    missing = [s for s in config.streams.symbols if s not in found]
    if missing:
        raise ConfigError(
            config.origin_of("backtest"),
            "backtest",
            f"no {base} bar of {', '.join(missing)} in the window {first} to {last} "
            f"(database {safe_url(config.resolved_database_url())})",
        )
    tz = session.runtime.tz
    warnings = []
    for symbol in config.streams.symbols:
        _count, lo, hi = found[symbol]
        lo_day, hi_day = _day(lo, tz), _day(hi, tz)
        if lo_day > first or hi_day < last:
            warnings.append(
                f"{symbol}: {base} bars cover only {lo_day} to {hi_day} of the window "
                f"{first} to {last}"
            )
    total = sum(bars for bars, _lo, _hi in found.values()) if count else None
    return total, tuple(warnings)


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
                config.origin_of(key) if key in config.overrides else config.origin_of("backtest"),
                key,
                f"{entry.trailing_days} trading days of history before the first session "
                f"{first} reach before the {exc.exchange} calendar in the database (it "
                f"starts on {exc.first}): start later or load less history",
            ) from None


def _day(epoch_or_time: Any, tz: Any) -> date:
    if isinstance(epoch_or_time, datetime):
        return epoch_or_time.astimezone(tz).date()
    return datetime.fromtimestamp(epoch_or_time, UTC).astimezone(tz).date()


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
