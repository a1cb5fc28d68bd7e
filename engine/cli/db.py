"""The ``sessionkit db`` commands: ``init``, ``import``, ``calendar`` and ``info``.

Runs on the main thread of the ``sessionkit`` command line (:mod:`sessionkit.engine.cli`
adds :data:`db_app` as the ``db`` group). Every user mistake is raised as a
:class:`~sessionkit.engine.errors.SessionkitError`, which the command line prints as one
line with exit status 2. Database URLs are only ever shown through
:func:`~sessionkit.engine.store.db.safe_url`, so a password never reaches the terminal.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from sqlalchemy import BigInteger, Engine, case, func, select, type_coerce
from sqlalchemy.exc import SQLAlchemyError

from ..config import bundled_database_path, database_option, parse_date
from ..errors import DatabaseError, NothingImportedError, UsageError
from ..store.db import (
    BarRecord,
    CalendarDay,
    Exchange,
    SymbolInfo,
    init_or_upgrade_db,
    open_db,
    safe_url,
    sqlite_path,
)

db_app = typer.Typer(
    name="db",
    help="Create a database, import bars, fill the trading calendar, describe what is there.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLAlchemy URL or path of a SQLite file (db info: default the bundled sample database; init, import and calendar: required).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def writable_url(db: str | None, command: str) -> str:
    """The URL for a command that writes: ``--db`` is required.

    The bundled sample database lives inside the installed package (replaced on upgrade,
    perhaps read-only), so nothing writes to it by default.

    Raises
    ------
    UsageError
        If ``--db`` is missing, or names the bundled sample database's file.
    """
    if db is None or not db.strip():
        raise UsageError(
            f"sessionkit db {command} writes to a database: pass --db URL or --db FILE.sqlite "
            "(the bundled sample database is never written; create your own with: "
            "sessionkit db init --db my.sqlite)"
        )
    url = database_option(db)
    path = sqlite_path(url)
    sample = bundled_database_path()
    with contextlib.suppress(OSError):  # (a file that does not exist is not the sample)
        if path is not None and path.exists() and path.samefile(sample):
            raise UsageError(
                f"sessionkit db {command} would write to the bundled sample database "
                f"({db.strip()}), which is never written (it is part of the installed "
                f"package): copy it first (cp {sample} my.sqlite) and pass --db my.sqlite"
            )
    return url


def _console() -> Any:
    from . import plain_console

    return plain_console()


def _unwrapped(renderable: Any, console: Any) -> Any:
    """``renderable`` (a report's tables) as ``console`` prints it whole: not on a terminal,
    a table's caption follows it as lines of its own (``rich`` wraps a caption at its
    table's width, whatever the console's)."""
    if console.is_terminal:
        return renderable
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    shown = renderable.__rich__() if hasattr(renderable, "__rich__") else renderable
    out: list[Any] = []
    for part in shown.renderables if isinstance(shown, Group) else [shown]:
        out.append(part)
        if isinstance(part, Table) and part.caption is not None:
            caption = part.caption
            part.caption = None
            out.append(caption if isinstance(caption, Text) else Text(str(caption)))
    return Group(*out)


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


@db_app.command("init")
def init_command(db: DbOption = None) -> None:
    """Create sessionkit's tables in a database (those missing; existing data is kept)."""
    url = writable_url(db, "init")
    engine, added = init_or_upgrade_db(url)
    try:
        notes = (
            _fill_upgraded_breaks(engine) if any(t == "trading_calendar" for t, _c in added) else []
        )
    finally:
        engine.dispose()
    if added:
        widened = {("bars", "volume"), ("bars", "id")}
        columns = [f"{t}.{c}" for t, c in added if (t, c) not in widened]
        changes = [f"added {', '.join(columns)}"] if columns else []
        if ("bars", "volume") in added:
            changes.append("bars.volume now takes fractional volumes")
        if ("bars", "id") in added:
            changes.append("bars.id is 64-bit")
        typer.echo(f"upgraded {safe_url(url)}: {', '.join(changes)}; every row kept")
        for note in notes:
            typer.echo(note)
    typer.echo(f"schema ready in {safe_url(url)}")


def _fill_upgraded_breaks(engine: Engine) -> list[str]:
    """After the break columns were added: fill them for every stored exchange."""
    from ..store.calendar_fill import CalendarFillError, fill_breaks

    with engine.connect() as connection:
        groups = list(connection.execute(select(CalendarDay.exchange).distinct()).scalars())
    notes = []
    for group in sorted(groups):
        try:
            count = fill_breaks(engine, group)
        except CalendarFillError as exc:
            notes.append(f"{group}: breaks not filled ({exc})")
            continue
        notes.append(f"{group}: {count:,} sessions with a break filled from exchange_calendars")
    return notes


@db_app.command("import")
def import_command(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Bars files: CSV (.csv, .csv.gz, .zst), Parquet (.parquet) or Databento DBN "
            "(.dbn, .dbn.zst); several (a month per file...) are imported one after the "
            "other, each in its own transaction.",
            show_default=False,
            metavar="FILE...",
        ),
    ],
    symbol: Annotated[
        str | None,
        typer.Option(
            "--symbol",
            help="Symbol of the bars (required for a CSV or Parquet file of one symbol's "
            "bars). A file of many symbols (a DBN file, or a column of symbols: symbol, "
            "ticker, sym): only this symbol's rows, or these symbols' (AAPL,MSFT); without "
            "--symbol, every symbol's, in one pass.",
            show_default=False,
        ),
    ] = None,
    interval: Annotated[
        str | None,
        typer.Option("--interval", help="Interval of the bars (default 1m; DBN: from the schema)."),
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz",
            help="IANA time zone of naive timestamps (e.g. America/New_York).",
            show_default=False,
        ),
    ] = None,
    ambiguous: Annotated[
        str,
        typer.Option(
            "--ambiguous",
            help="Naive times made ambiguous by a DST change: reject (the row), earliest or "
            "latest.",
        ),
    ] = "reject",
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            help="Map fields to the file's columns: timestamp=Time,volume=Qty (fields: "
            "timestamp, date, time, open, high, low, close, volume, and symbol: a column "
            "of symbols; symbol= reads every row as --symbol's).",
            show_default=False,
        ),
    ] = None,
    reader: Annotated[
        str,
        typer.Option(
            "--reader",
            help="CSV reader: auto (pyarrow when installed), arrow or csv (the csv module).",
        ),
    ] = "auto",
    description: Annotated[
        str | None,
        typer.Option(
            "--description",
            help="Description stored for the symbol (default: keep the stored one).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import bars from CSV, Parquet or DBN files; rejected rows are reported, valid rows imported.

    Rows already in the database are counted as already present and left as stored, so
    importing a file twice changes nothing.
    """
    from ..store.importing import file_format, import_bars, parse_column_mapping

    if ambiguous not in ("reject", "earliest", "latest"):
        raise UsageError(f"--ambiguous: {ambiguous!r} is not reject, earliest or latest")
    if reader not in ("auto", "arrow", "csv"):
        raise UsageError(f"--reader: {reader!r} is not auto, arrow or csv")
    mapping = parse_column_mapping(columns)
    # A comma is no symbol character: AAPL,MSFT names two.
    picked: str | list[str] | None = symbol
    if symbol is not None and "," in symbol:
        picked = [s.strip() for s in symbol.split(",") if s.strip()]
    kinds = {file: file_format(file) for file in files}
    url = writable_url(db, "import")
    engine = open_db(url)
    console = None if as_json else _console()
    reports = []
    refused: list[NothingImportedError] = []
    try:
        zone = _display_zone(_calendar_coverage(engine))
        for file, kind in kinds.items():
            try:
                if kind == "dbn":
                    from ..store.import_dbn import import_dbn

                    done = import_dbn(
                        engine, file, symbol=picked, interval=interval, description=description
                    )
                else:
                    done = [
                        import_bars(
                            engine,
                            file,
                            picked,
                            interval or "1m",
                            tz,
                            ambiguous=ambiguous,  # type: ignore[arg-type]
                            columns=mapping,
                            description=description,
                            reader=reader,  # type: ignore[arg-type]
                        )
                    ]
            except KeyboardInterrupt:
                # Each file is one transaction: this one's rows were rolled back.
                before = "; the files before it are imported" if reports else ""
                typer.echo(
                    f"sessionkit: interrupted: nothing of {file} was imported (rolled back)"
                    + before,
                    err=True,
                )
                raise typer.Exit(130) from None
            except NothingImportedError as exc:
                if len(kinds) == 1:
                    raise
                # One of several files (a holiday's empty day file): said, and the others
                # are imported all the same; the command then fails (exit 2).
                refused.append(exc)
                typer.echo(f"sessionkit: error: {exc}", err=True)
                continue
            for report in done:
                report.display_zone = zone
                if console is not None:  # as each file is done
                    console.print(_unwrapped(report, console))
                    console.print(report.summary(), soft_wrap=True, markup=False)
                    for warning in report.warnings():
                        console.print(
                            f"warning: {warning}", soft_wrap=True, markup=False, style="yellow"
                        )
            reports += done
    finally:
        engine.dispose()
    if as_json:
        if len(files) > 1 or "dbn" in kinds.values():
            _echo_json(
                {
                    "database": safe_url(url),
                    "imports": [r.to_dict() for r in reports],
                    **({"refused": [str(e) for e in refused]} if refused else {}),
                }
            )
            _fail_refused(refused, len(files))
            return
        data = reports[0].to_dict()
        data["database"] = safe_url(url)
        _echo_json(data)
        return
    assert console is not None
    if len(reports) > 1:
        imported = sum(r.imported for r in reports)
        rejected = sum(r.rejected_total for r in reports)
        console.print(
            f"{len(files)} file(s): {sum(r.rows_read for r in reports):,} rows read, "
            f"{imported:,} imported, {sum(r.already_present for r in reports):,} already "
            f"present, {rejected:,} rejected",
            markup=False,
        )
    console.print(f"database: {safe_url(url)}", markup=False)
    _fail_refused(refused, len(files))


def _fail_refused(refused: list[NothingImportedError], files: int) -> None:
    """Exit 2 if some of the files imported nothing (each was named as it came)."""
    if refused:
        typer.echo(
            f"sessionkit: error: {len(refused)} of {files} files imported nothing (above); "
            "the others were imported",
            err=True,
        )
        raise SystemExit(2)


def _count(n: int, noun: str) -> str:
    """``1 session``, ``2 sessions``, ``1,234 early closes``."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


@db_app.command("calendar")
def calendar_command(
    exchange: Annotated[
        str,
        typer.Option(
            "--exchange", help="Exchange group (NYSE, NASDAQ, ...) or exchange_calendars code."
        ),
    ] = "NYSE",
    from_: Annotated[str, typer.Option("--from", help="First date, YYYY-MM-DD.")] = "2000-01-01",
    to: Annotated[str, typer.Option("--to", help="Last date, YYYY-MM-DD.")] = "2030-12-31",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fill the trading calendar of an exchange from exchange_calendars (replaces the range)."""
    from ..store.calendar_fill import fill_calendar, resolve_exchange

    start = parse_date(from_, "--from")
    end = parse_date(to, "--to")
    url = writable_url(db, "calendar")
    engine = open_db(url)
    try:
        count = fill_calendar(engine, exchange, start, end)
        coverage = [
            c for c in _calendar_coverage(engine) if c["exchange"] == exchange.strip().upper()
        ]
        for c in coverage:
            c["holes"] = _holes(engine, c["exchange"])
    finally:
        engine.dispose()
    group = exchange.strip().upper()
    if as_json:
        _echo_json(
            {
                "database": safe_url(url),
                "exchange": group,
                "code": resolve_exchange(exchange),
                "from": start.isoformat(),
                "to": end.isoformat(),
                "sessions_written": count,
                "coverage": coverage[0] if coverage else None,
            }
        )
        return
    text = f"{group}: {count:,} sessions written for {start} to {end} into {safe_url(url)}"
    if coverage:
        c = coverage[0]
        text += (
            f"\ncalendar now covers {c['first_session']} to {c['last_session']} "
            f"({_count(c['sessions'], 'session')}, {_count(c['early_closes'], 'early close')}, "
            f"{c['sessions_with_break']:,} with a break, zone {c['timezone']})"
        )
        holes = c["holes"]
        if holes:
            spans = ", ".join(f"{h['from']} to {h['to']}" for h in holes[:3])
            more = f" and {len(holes) - 3} more" if len(holes) > 3 else ""
            first = holes[0]
            text += (
                f"\nbut not between: no session from {spans}{more} (fill it: sessionkit db "
                f"calendar --exchange {group} --from {first['from']} --to {first['to']})"
            )
    typer.echo(text)


def _calendar_coverage(engine: Engine) -> list[dict[str, Any]]:
    """Per exchange: zone, session count, first and last session, early closes.

    Raises
    ------
    DatabaseError
        If the database cannot be read.
    """
    try:
        with engine.connect() as connection:
            zones = dict(connection.execute(select(Exchange.name, Exchange.timezone)).all())
            rows = connection.execute(
                select(
                    CalendarDay.exchange,
                    func.count(),
                    func.min(CalendarDay.session_date),
                    func.max(CalendarDay.session_date),
                    # portable SQL: PostgreSQL has no sum() of booleans
                    func.sum(case((CalendarDay.early_close, 1), else_=0)),
                    func.count(CalendarDay.break_start),
                ).group_by(CalendarDay.exchange)
            ).all()
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"cannot read the calendar of "
            f"{safe_url(engine.url.render_as_string(hide_password=False))}: "
            f"{getattr(exc, 'orig', exc)}"
        ) from None
    coverage: dict[str, dict[str, Any]] = {}
    for exchange, count, first, last, early, breaks in rows:
        coverage[exchange] = {
            "exchange": exchange,
            "timezone": zones.get(exchange),
            "sessions": count,
            "first_session": _iso_date(first),
            "last_session": _iso_date(last),
            "early_closes": int(early or 0),
            "sessions_with_break": int(breaks or 0),
        }
    for exchange, zone in zones.items():
        coverage.setdefault(
            exchange,
            {
                "exchange": exchange,
                "timezone": zone,
                "sessions": 0,
                "first_session": None,
                "last_session": None,
                "early_closes": 0,
                "sessions_with_break": 0,
            },
        )
    return [coverage[name] for name in sorted(coverage)]


HOLE_DAYS = 14
"""Calendar days without a session after which a calendar has a hole (no exchange closes
that long; two fills far apart leave one)."""


def _holes(engine: Engine, exchange: str) -> list[dict[str, str]]:
    """The spans of more than :data:`HOLE_DAYS` days without a session inside the stored
    calendar of ``exchange`` (``from`` and ``to``, the first and last day of each): what
    two fills with a gap between them leave, which "covers A to B" alone would hide."""
    with engine.connect() as connection:
        days = [
            d if isinstance(d, date) else date.fromisoformat(str(d))
            for d in connection.execute(
                select(CalendarDay.session_date)
                .where(CalendarDay.exchange == exchange)
                .order_by(CalendarDay.session_date)
            ).scalars()
        ]
    return [
        {"from": (a + timedelta(days=1)).isoformat(), "to": (b - timedelta(days=1)).isoformat()}
        for a, b in zip(days, days[1:], strict=False)
        if (b - a).days > HOLE_DAYS
    ]


def _iso_date(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _display_zone(calendars: list[dict[str, Any]]) -> ZoneInfo:
    """The zone bar times are shown in: the exchanges' zone when the database's calendars
    share one, else UTC (a database of Hong Kong and New York bars: no exchange's zone is
    right for every symbol's; the headings name the zone)."""
    zones = {c["timezone"] for c in calendars if c["timezone"]}
    name = next(iter(zones)) if len(zones) == 1 else None
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def database_info(engine: Engine, url: str) -> dict[str, Any]:
    """Describe a database: symbols and their bars, and the calendar of each exchange.

    Parameters
    ----------
    engine
        Engine of a database with sessionkit's schema.
    url
        Its URL, shown with any password masked.

    Returns
    -------
    dict
        JSON-ready: ``database``, ``timezone`` (of the bar times shown), ``symbols`` (each
        with its description, ``synthetic`` flag, source and per-interval ``bars``,
        ``first``, ``last``), ``calendars`` (per exchange: zone, session count, first and
        last session, early closes, ``holes``: spans without a session inside it) and
        ``total_bars``.
    """
    start = type_coerce(BarRecord.start, BigInteger)
    try:
        calendars = _calendar_coverage(engine)
        for c in calendars:
            c["holes"] = _holes(engine, c["exchange"])
        with engine.connect() as connection:
            infos = connection.execute(
                select(
                    SymbolInfo.symbol,
                    SymbolInfo.description,
                    SymbolInfo.synthetic,
                    SymbolInfo.source,
                )
            ).all()
            stats = connection.execute(
                select(
                    BarRecord.symbol,
                    BarRecord.interval,
                    func.count(),
                    func.min(start),
                    func.max(start),
                ).group_by(BarRecord.symbol, BarRecord.interval)
            ).all()
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"cannot read database {safe_url(url)}: {getattr(exc, 'orig', exc)}"
        ) from None
    zone = _display_zone(calendars)
    symbols: dict[str, dict[str, Any]] = {
        symbol: {
            "symbol": symbol,
            "description": description or "",
            "synthetic": bool(synthetic),
            "source": source or "",
            "intervals": [],
        }
        for symbol, description, synthetic, source in infos
    }

    def stamp(epoch: int) -> str:
        return datetime.fromtimestamp(epoch, UTC).astimezone(zone).isoformat()

    total = 0
    for symbol, interval, count, first, last in stats:
        entry = symbols.setdefault(
            symbol,
            {
                "symbol": symbol,
                "description": "",
                "synthetic": False,
                "source": "",
                "intervals": [],
            },
        )
        entry["intervals"].append(
            {"interval": interval, "bars": count, "first": stamp(first), "last": stamp(last)}
        )
        total += count
    from ..core.bar import INTERVAL_SECONDS

    for entry in symbols.values():
        entry["intervals"].sort(
            key=lambda i: (INTERVAL_SECONDS.get(i["interval"], 0), i["interval"])
        )
    return {
        "database": safe_url(url),
        "timezone": zone.key,
        "symbols": [symbols[name] for name in sorted(symbols)],
        "calendars": calendars,
        "total_bars": total,
    }


def _render_info(info: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    zone = info["timezone"]
    parts: list[Any] = [Text(f"database: {info['database']}", style="bold")]
    if info["symbols"]:
        symbols = Table(title="Symbols", min_width=60)
        symbols.add_column("symbol", style="bold", no_wrap=True)
        symbols.add_column("data", no_wrap=True)
        symbols.add_column("description", overflow="fold")
        symbols.add_column("source", overflow="fold")
        bars = Table(title=f"Bars (times in {zone})", min_width=60)
        bars.add_column("symbol", style="bold", no_wrap=True)
        bars.add_column("interval", no_wrap=True)
        bars.add_column("bars", justify="right", no_wrap=True)
        bars.add_column("first bar", no_wrap=True)
        bars.add_column("last bar", no_wrap=True)
        for entry in info["symbols"]:
            kind = Text("SYNTHETIC", style="bold magenta") if entry["synthetic"] else Text("real")
            # Symbols, descriptions and sources are user text: Text, never rich markup.
            name = Text(entry["symbol"])
            symbols.add_row(name, kind, Text(entry["description"]), Text(entry["source"]))
            if not entry["intervals"]:
                bars.add_row(name, "-", "0", "-", "-")
            for item in entry["intervals"]:
                bars.add_row(
                    name,
                    item["interval"],
                    f"{item['bars']:,}",
                    item["first"][:16].replace("T", " "),
                    item["last"][:16].replace("T", " "),
                )
        bars.caption = f"{info['total_bars']:,} bars in all"
        parts += [symbols, bars]
    else:
        parts.append(Text("no symbols or bars yet (import some: sessionkit db import FILE ...)"))
    calendars = Table(title="Trading calendars", min_width=60)
    calendars.add_column("exchange", style="bold", no_wrap=True)
    calendars.add_column("time zone", overflow="fold")
    calendars.add_column("sessions", justify="right", no_wrap=True)
    calendars.add_column("first", no_wrap=True)
    calendars.add_column("last", no_wrap=True)
    calendars.add_column("early closes", justify="right")
    for c in info["calendars"]:
        calendars.add_row(
            c["exchange"],
            c["timezone"] or "?",
            f"{c['sessions']:,}",
            c["first_session"] or "-",
            c["last_session"] or "-",
            str(c["early_closes"]),
        )
    holes = [
        f"{c['exchange']}: no session from {h['from']} to {h['to']}"
        for c in info["calendars"]
        for h in c.get("holes", ())
    ]
    if holes:
        calendars.caption = Text("; ".join(holes))
    if info["calendars"]:
        parts.append(calendars)
    else:
        parts.append(
            Text(
                "no trading calendar yet (fill one: sessionkit db calendar --exchange NYSE "
                "--from 2000-01-01 --to 2030-12-31)"
            )
        )
    return Group(*parts)


@db_app.command("info")
def info_command(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Describe a database: symbols, intervals, bar counts and ranges, calendar coverage."""
    url = database_option(db)
    engine = open_db(url)
    try:
        info = database_info(engine, url)
    finally:
        engine.dispose()
    if as_json:
        _echo_json(info)
        return
    console = _console()
    console.print(_unwrapped(_render_info(info), console))
