"""The database layer: SQLAlchemy 2.0 typed models for bars and the trading calendar.

Any SQLAlchemy URL works; the default is the bundled SQLite sample database. Instants are
stored as UTC epoch seconds (integers) through :class:`UTCDateTime`, so every backend
stores the same thing, ordering is numeric and bulk reads need no string parsing.

Thread use: an :class:`~sqlalchemy.engine.Engine` is shared; each thread opens its own
connection or ORM session per unit of work (SQLAlchemy's rule). Nothing here keeps state
between calls.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Double,
    Engine,
    Float,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..errors import DatabaseError

EXPECTED_TABLES = ("bars", "trading_calendar", "exchanges", "symbols")

UPGRADE_COLUMNS: dict[str, tuple[str, ...]] = {"trading_calendar": ("break_start", "break_end")}
"""Nullable columns added to a table after the first release, per table: :func:`init_db`
adds those missing (``ALTER TABLE ... ADD COLUMN``), keeping every row."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware instant stored as integer UTC epoch seconds.

    Naive datetimes are refused: an instant without a zone is a bug waiting to happen.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> int | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: sessionkit stores aware instants only")
        return int(value.timestamp())

    def process_result_value(self, value: int | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return datetime.fromtimestamp(value, UTC)


VOLUME_TYPE = Double().with_variant(BigInteger(), "sqlite")
"""The volume column's type: ``DOUBLE PRECISION`` (fractional volumes: crypto, FX), and on
SQLite ``BIGINT``, whose integer affinity stores a whole volume as an exact 64-bit integer
and a fractional one as a double. A database created before fractional volumes has an
integer column on every backend: :func:`upgrade_schema` widens it where that matters."""


ID_TYPE = BigInteger().with_variant(Integer(), "sqlite")
"""The bars' key: ``BIGINT`` (``BIGSERIAL`` on PostgreSQL: a shared store holds billions
of bars, and every import's conflicting rows use up numbers of its sequence too); on
SQLite ``INTEGER``, the rowid (64-bit already). A database created with a 32-bit key is
widened by :func:`upgrade_schema`."""


class Base(DeclarativeBase):
    """Declarative base of sessionkit's schema."""


class BarRecord(Base):
    """One stored bar: symbol, interval, start instant (UTC) and OHLCV."""

    __tablename__ = "bars"
    __table_args__ = (
        UniqueConstraint("symbol", "interval", "start", name="uq_bars_symbol_interval_start"),
    )

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(32))
    interval: Mapped[str] = mapped_column(String(8))
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    volume: Mapped[float] = mapped_column(VOLUME_TYPE)
    """An ``int`` when whole, else a ``float`` (crypto and FX volumes); see
    :data:`VOLUME_TYPE`."""


class Exchange(Base):
    """An exchange group whose calendar is in the database, with its time zone."""

    __tablename__ = "exchanges"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))


class CalendarDay(Base):
    """One trading session of an exchange. Dates without a row are not trading days.

    ``break_start`` and ``break_end`` were added after the first release: :func:`init_db`
    adds them to an older database (see :data:`UPGRADE_COLUMNS`).
    """

    __tablename__ = "trading_calendar"

    exchange: Mapped[str] = mapped_column(String(16), primary_key=True)
    session_date: Mapped[date] = mapped_column(Date, primary_key=True)
    open: Mapped[datetime] = mapped_column(UTCDateTime)
    close: Mapped[datetime] = mapped_column(UTCDateTime)
    early_close: Mapped[bool] = mapped_column(Boolean, default=False)
    break_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, default=None)
    """Start of the session's break (lunch), UTC; None when the session has none."""
    break_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, default=None)
    """End of the session's break, UTC; None when the session has none."""


class SymbolInfo(Base):
    """What a symbol is and where its data comes from (``synthetic`` marks made-up data)."""

    __tablename__ = "symbols"

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(Text, default="")


SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword", "passfile"})
"""URL query parameters whose value is a secret (``?password=...`` works with libpq)."""


def safe_url(url: str) -> str:
    """Return ``url`` with any password masked (in its user part or its query), for messages."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        return "<unparseable database URL>"
    secret = {k: "***" for k in parsed.query if k.lower() in SECRET_QUERY_KEYS}
    if secret:
        parsed = parsed.update_query_dict(secret)
    return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def _parse(url: str) -> URL:
    """Parse a SQLAlchemy URL.

    Raises
    ------
    DatabaseError
        If it cannot be parsed (without repeating it: it may hold a password).
    """
    try:
        return make_url(url)
    except (ArgumentError, ValueError, TypeError) as exc:
        raise DatabaseError(
            f"cannot parse the database URL ({exc.__class__.__name__}); expected a "
            "SQLAlchemy URL such as postgresql+psycopg://user@host:5432/name or "
            "sqlite:///path/to/file.sqlite, or a SQLite file's path"
        ) from None


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite database URL names, or None (another backend, an in-memory
    database, or a ``file:`` URI)."""
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite database opened by ``engine``, or None (another backend, an
    in-memory database, or a ``file:`` URI)."""
    if engine.dialect.name != "sqlite" or engine.url.query:
        return None
    return sqlite_path(engine.url.render_as_string(hide_password=False))


def _create_engine(url: str) -> Engine:
    try:
        engine = create_engine(url)
    except (ArgumentError, SQLAlchemyError, ImportError, ValueError) as exc:
        raise DatabaseError(f"cannot use database URL {safe_url(url)}: {exc}") from None
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    return engine


def missing_columns(engine: Engine) -> list[tuple[str, str]]:
    """Return the (table, column) pairs of :data:`UPGRADE_COLUMNS` the database lacks.

    Tables that do not exist are not listed (creating them creates their columns).
    """
    with engine.connect() as connection:
        inspector = inspect(connection)
        tables = set(inspector.get_table_names())
        missing = []
        for table, columns in UPGRADE_COLUMNS.items():
            if table not in tables:
                continue
            present = {column["name"] for column in inspector.get_columns(table)}
            missing.extend((table, name) for name in columns if name not in present)
    return missing


def whole_volumes_only(connection: Connection) -> bool:
    """Whether the database's ``bars.volume`` column cannot hold a fractional volume: an
    integer column (created before fractional volumes) outside SQLite (whose integer
    affinity keeps a fractional value as a double)."""
    if connection.dialect.name == "sqlite":
        return False
    inspector = inspect(connection)
    if "bars" not in inspector.get_table_names():
        return False
    kinds = {column["name"]: column["type"] for column in inspector.get_columns("bars")}
    return isinstance(kinds.get("volume"), Integer)


def narrow_bar_ids(connection: Connection) -> bool:
    """Whether the database's ``bars.id`` is a 32-bit integer (PostgreSQL databases made
    before :data:`ID_TYPE`: about 2.1 billion bars, sequence numbers included)."""
    if connection.dialect.name != "postgresql":
        return False
    inspector = inspect(connection)
    if "bars" not in inspector.get_table_names():
        return False
    kinds = {column["name"]: column["type"] for column in inspector.get_columns("bars")}
    kind = kinds.get("id")
    return isinstance(kind, Integer) and not isinstance(kind, BigInteger)


def upgrade_schema(engine: Engine) -> list[tuple[str, str]]:
    """Upgrade an older database in place, keeping every row: add the columns of
    :data:`UPGRADE_COLUMNS` it lacks (empty, NULL, in existing rows), widen an integer
    ``bars.volume`` to :data:`VOLUME_TYPE` (see :func:`whole_volumes_only`) and a 32-bit
    ``bars.id`` (and its sequence) to :data:`ID_TYPE` (PostgreSQL, see
    :func:`narrow_bar_ids`).

    Returns
    -------
    list of (str, str)
        The (table, column) pairs added or widened.
    """
    added = missing_columns(engine)
    with engine.connect() as connection:
        widen = whole_volumes_only(connection)
        wide_ids = narrow_bar_ids(connection)
    if not added and not widen and not wide_ids:
        return []
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as connection:
        for table, name in added:
            column = Base.metadata.tables[table].c[name]
            kind = column.type.compile(dialect=engine.dialect)
            connection.exec_driver_sql(
                f"ALTER TABLE {quote(table)} ADD COLUMN {quote(name)} {kind}"
            )
        if widen:
            kind = VOLUME_TYPE.compile(dialect=engine.dialect)
            bars, volume = quote("bars"), quote("volume")
            if engine.dialect.name in ("mysql", "mariadb"):
                connection.exec_driver_sql(f"ALTER TABLE {bars} MODIFY {volume} {kind}")
            else:  # PostgreSQL and the standard's other followers
                connection.exec_driver_sql(f"ALTER TABLE {bars} ALTER COLUMN {volume} TYPE {kind}")
        if wide_ids:
            connection.exec_driver_sql("ALTER TABLE bars ALTER COLUMN id TYPE BIGINT")
            sequence = connection.exec_driver_sql(
                "SELECT pg_get_serial_sequence('bars', 'id')"
            ).scalar()
            if sequence:  # a serial column's sequence is 32-bit too (PostgreSQL 10+)
                connection.exec_driver_sql(f"ALTER SEQUENCE {sequence} AS BIGINT")
    return [
        *added,
        *([("bars", "volume")] if widen else []),
        *([("bars", "id")] if wide_ids else []),
    ]


def init_db(url: str) -> Engine:
    """Create sessionkit's tables at ``url`` (those missing) and return the engine.

    An older database is upgraded in place: the columns it lacks are added (see
    :func:`upgrade_schema`) and every row is kept.

    Raises
    ------
    DatabaseError
        If the URL is malformed or the database cannot be opened or written.
    """
    return init_or_upgrade_db(url)[0]


def init_or_upgrade_db(url: str) -> tuple[Engine, list[tuple[str, str]]]:
    """Like :func:`init_db`, and also return the (table, column) pairs it added.

    Raises
    ------
    DatabaseError
        If the URL is malformed or the database cannot be opened or written.
    """
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = _create_engine(url)
    try:
        added = upgrade_schema(engine)
        Base.metadata.create_all(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", exc)).strip()  # the driver's words, as open_db's
        if engine.dialect.name == "postgresql" and "does not exist" in reason:
            reason += " (sessionkit db init creates the tables, not the database: createdb it)"
        raise DatabaseError(f"cannot create the schema in {safe_url(url)}: {reason}") from None
    return engine, added


def _cannot_open(url: str, exc: SQLAlchemyError) -> DatabaseError:
    """The error of a database that cannot be opened: the driver's reason, and what to do
    when another program holds it ("database is locked": a write in progress)."""
    reason = str(getattr(exc, "orig", exc))
    if "database is locked" in reason:
        reason += " (another program is writing to it, e.g. an import: try again when it is done)"
    return DatabaseError(f"cannot open database {safe_url(url)}: {reason}")


def cannot_read(url: str, exc: SQLAlchemyError) -> DatabaseError:
    """The error of a database that opened but cannot be read: the driver's reason, and
    what to do when the file is damaged."""
    reason = str(getattr(exc, "orig", exc))
    if "malformed" in reason or "decode" in reason or "not a database" in reason:
        reason += " (the file is damaged: sqlite3 FILE 'PRAGMA integrity_check' says where)"
    return DatabaseError(f"cannot read database {safe_url(url)}: {reason}")


def open_db(url: str) -> Engine:
    """Open an existing sessionkit database and check its schema.

    Raises
    ------
    DatabaseError
        If the URL is malformed, the SQLite file does not exist, the server cannot be
        reached, or the database lacks sessionkit's tables.
    """
    path = sqlite_path(url)
    if path is not None and path.is_dir():
        raise DatabaseError(f"{path} is a folder, not a database file (give the .sqlite file)")
    if path is not None and not path.is_file():
        raise DatabaseError(
            f"database file {path} does not exist (create one with: sessionkit db init "
            f"--db {safe_url(url)})"
        )
    engine = _create_engine(url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
    except SQLAlchemyError as exc:
        engine.dispose()
        raise _cannot_open(url, exc) from None
    missing = [name for name in EXPECTED_TABLES if name not in tables]
    if missing:
        engine.dispose()
        raise DatabaseError(
            f"database {safe_url(url)} lacks sessionkit's schema (missing tables: "
            f"{', '.join(missing)}); create it with: sessionkit db init --db URL"
        )
    try:
        old = missing_columns(engine)
    except SQLAlchemyError as exc:  # pragma: no cover - the tables were just listed
        engine.dispose()
        raise _cannot_open(url, exc) from None
    if old:
        engine.dispose()
        raise DatabaseError(
            f"database {safe_url(url)} has an older schema (missing columns: "
            f"{', '.join(f'{t}.{c}' for t, c in old)}); upgrade it, keeping its data, with: "
            f"sessionkit db init --db URL"
        )
    return engine
