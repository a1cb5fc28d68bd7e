"""Configuration: pydantic v2 models for everything configurable, loaded from TOML.

Used on the caller's thread before the engine starts; the validated :class:`SessionConfig`
is frozen, so every engine thread may read it without locks.

Every mistake becomes a :class:`~sessionkit.engine.errors.ConfigError` whose message names
the file, the key and what is wrong. Unknown keys are errors: a typo must not pass silently.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import tomllib
from collections.abc import Mapping
from datetime import date, datetime, time
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    Strict,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from .core.bar import INTERVAL_SECONDS, Interval, check_symbol
from .errors import ConfigError, Problem

ClockMode = Literal["data-driven", "clock-driven"]
"""How a backtest is paced: as fast as the consumers allow, or by the simulated clock."""
RunClock = Literal[ClockMode, "live"]
"""How a running session is paced: a backtest's :data:`ClockMode`, or ``live`` (wall clock)."""
IndicatorKind = Literal["sma", "ema", "rsi", "vwap", "bollinger", "atr", "macd"]

BUNDLED_CONFIGS = ("demo", "spy-2011")
"""Names of the configurations shipped in ``sessionkit.sample_db``."""

SPEED_RULE = "a speed is a finite number > 0 of simulated seconds per wall second"
"""The one wording of what a speed may be (configuration files, ``--speed``, ``--set``)."""


def _finite_speed(value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{SPEED_RULE}, not {value!r}")
    return value


StrictFloat = Annotated[float, Strict()]
"""A number: an integer or a float, never a boolean or a string (``speed = true`` and
``std = "2"`` are mistakes, not 1.0 and 2.0)."""

Speed = Annotated[StrictFloat, AfterValidator(_finite_speed)]
"""A clock speed: finite and > 0."""


def parse_speed(text: str, source: str = "--speed") -> float | None:
    """Parse a speed option: ``max`` -> None (data-driven); ``60`` or ``60x`` -> 60.0.

    Parameters
    ----------
    text
        What the user typed.
    source
        The option it came from, for the message.

    Raises
    ------
    ConfigError
        If it is neither ``max`` nor a finite number > 0 (``inf`` and ``nan`` are refused).
    """
    value = text.strip().lower()
    if value == "max":
        return None
    try:
        speed = float(value.removesuffix("x"))
    except ValueError:
        speed = math.nan
    if not (math.isfinite(speed) and speed > 0):
        raise ConfigError(source, None, f"{text!r}: {SPEED_RULE} (or 'max': data-driven)")
    return speed


def exchange_group_name(name: str) -> str:
    """The one spelling of an exchange group, as ``sessionkit db calendar`` stores it and
    everything looks it up: ``us_futures`` and ``US_FUTURES`` name the same calendar."""
    return name.strip().upper()


def parse_date(value: str | date, source: str) -> date:
    """Parse a date written ``YYYY-MM-DD`` (the one date parser of options and ``--set``).

    Raises
    ------
    ConfigError
        Naming ``source`` (the option) and the value, if it is not such a date.
    """
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = value.strip() if isinstance(value, str) else ""
    try:
        if not _ISO_DATE.fullmatch(text):  # fromisoformat takes 20241209 too
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(source, None, f"{_shown(value)} is not a date (YYYY-MM-DD)") from None


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _shown(value: Any) -> str:
    """``value`` as a user wrote it, for messages: TOML's dates and times in ISO-8601
    (``2024-12-09T10:00:00``, not Python's ``datetime.datetime(2024, 12, 9, 10, 0)``),
    booleans as ``true``/``false``, strings quoted."""
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return mask_secrets(repr(value))


def _config_date(value: Any) -> Any:
    """A date of a configuration: a TOML date, or a ``YYYY-MM-DD`` string (an override
    given in code); a date with a time of day, or anything else, is refused."""
    if isinstance(value, datetime):
        raise ValueError(f"a date (YYYY-MM-DD) without a time of day: {value.date().isoformat()}")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("not a valid date (YYYY-MM-DD)") from None
    raise ValueError("expected a date, YYYY-MM-DD")


ConfigDate = Annotated[date, BeforeValidator(_config_date)]
"""A date: a TOML date (``2024-12-06``) or the string ``"2024-12-06"``."""


class WholeTable(dict):
    """A table given whole as a value (``--set analysis.options={fast=5}``): it replaces
    the table at its key, as TOML would, where a nested mapping of overrides
    (``{"analysis": {"options": {"fast": 5}}}``) changes only the keys it names."""


SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword", "passfile"})
"""URL query parameters whose value is a secret (as ``store.db``'s, which masks URLs with
SQLAlchemy: loading a configuration does not import it)."""

_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:\"']*:)[^\s\"']*@")
_QUERY_SECRET = re.compile(
    r"([?&;](?:" + "|".join(sorted(SECRET_QUERY_KEYS)) + r")=)[^&;\s\"']*", re.IGNORECASE
)


_CONNINFO_SECRET = re.compile(r"((?:^|\s)password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
"""The password of a libpq connection string (``host=h password=pw dbname=d``)."""

_CONNINFO = re.compile(r"\s*(?:[A-Za-z_]+\s*=\s*(?:'[^']*'|[^\s']*)\s*)+")
_CONNINFO_KEYS = re.compile(r"(?:^|\s)(?:host|hostaddr|dbname|user|password|port)\s*=")


def mask_secrets(text: str) -> str:
    """``text`` (an option as typed, a URL) with the password of every database URL in it
    masked, in the user part (``user:***@``) or the query (``?password=***``), and of a
    libpq connection string (``password=***``): what echoes an option or a URL given by
    the user goes through it (passwords are never printed)."""
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _CONNINFO_SECRET.sub(r"\1***", text)
    return _QUERY_SECRET.sub(r"\1***", text)


def _conninfo(value: str) -> bool:
    """Whether ``value`` is a libpq connection string (``host=... dbname=...``), not a URL."""
    return "://" not in value and bool(_CONNINFO.fullmatch(value) and _CONNINFO_KEYS.search(value))


_CONNINFO_PROBLEM = (
    "a libpq connection string (key=value ...) is not a database URL: write it as "
    "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DBNAME"
)


def database_option(db: str | None) -> str:
    """The database URL of a ``--db`` option of the ``sessionkit db`` commands
    (:func:`database_url_of`).

    Raises
    ------
    ConfigError
        If it is a libpq connection string (it became a SQLite file of that name, its
        password in the name and in the message).
    """
    if db is not None and _conninfo(db.strip()):
        raise ConfigError(f"--db {mask_secrets(db.strip())}", None, _CONNINFO_PROBLEM)
    return database_url_of(db)


def _setting_parts(text: str, option: str, form: str) -> tuple[str, str]:
    """The checked key and the raw value text of ``KEY=...`` given to ``option``.

    Raises
    ------
    ConfigError
        If there is no ``=`` or the key is empty or malformed.
    """
    key, equals, raw = text.partition("=")
    key = key.strip()
    if not equals or not key:
        raise ConfigError(f"{option} {mask_secrets(text)}", None, f"expected {form}")
    try:
        _key_parts(key)
    except ValueError as exc:
        raise ConfigError(f"{option} {mask_secrets(text)}", None, str(exc)) from None
    return key, raw.strip()


def _setting_value(value: Any) -> Any:
    """A parsed TOML value as a setting: a table is a :class:`WholeTable`."""
    return WholeTable(value) if isinstance(value, dict) else value


def parse_setting(text: str) -> tuple[str, Any]:
    """Parse ``--set KEY=VALUE``: a dotted key and a TOML value (a bare word is a string).

    ``backtest.speed=600`` gives 600, ``backtest.end_date=2024-12-06`` a date,
    ``streams.symbols=["ACME","BOLT"]`` a list, ``analysis.entry=pkg.mod:Cls`` a string,
    ``analysis.options={fast=5}`` a :class:`WholeTable` (the options become exactly these).

    Raises
    ------
    ConfigError
        If there is no ``=`` or the key is empty or malformed.
    """
    key, raw = _setting_parts(text, "--set", "KEY=VALUE, e.g. backtest.speed=600")
    return key, _setting_value(_toml_value(raw, f"--set {mask_secrets(text)}"))


_BARE_WORD = re.compile(r"[^\s\[\]{}\"',#]+")
"""A value read as a string when it is no TOML value (``5m``, ``pkg.mod:Cls``, ``ES=F``)."""

_TOML_START = re.compile(r"[\[{\"'0-9+-]")
"""How a TOML value that is no bare word starts: a list, a table, a string, a number."""


def _toml_value(raw: str, option: str) -> Any:
    """``raw`` as a TOML value; a bare word that is none is a string (``5m``, ``SPY``).

    Raises
    ------
    ConfigError
        Naming ``option`` and TOML's complaint, for text that starts like a TOML value
        (a list, a table, a quoted string, a number) and is no bare word, but does not
        parse (``[1,``): it was meant as TOML, and is not read as a string.
    """
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except RecursionError:
        raise ConfigError(option, None, "the value is nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        if _TOML_START.match(raw) and not _BARE_WORD.fullmatch(raw):
            reason = re.sub(r" \((at line \d+, column \d+|at end of document)\)$", "", str(exc))
            raise ConfigError(
                option,
                None,
                f"{mask_secrets(repr(raw))} is not a valid TOML value: {reason.lower()}",
            ) from None
        return raw


def parse_setting_values(text: str) -> tuple[str, list[Any]]:
    """Parse ``--param KEY=V1,V2,...``: a dotted key and its values, each read as
    :func:`parse_setting` reads a value. A value may be a table or a list with commas of its
    own (``analysis.options={fast=5,slow=20},{fast=10,slow=30}``): the values are read as
    one TOML array, unless they are bare words (then split at every comma).

    Raises
    ------
    ConfigError
        If there is no ``=`` or the key is empty or malformed.
    """
    key, raw = _setting_parts(text, "--param", "KEY=V1,V2,..., e.g. analysis.options.fast=5,10")
    try:  # commas inside tables and lists stay theirs
        values = tomllib.loads(f"value = [{raw}]")["value"] if raw else None
    except (tomllib.TOMLDecodeError, RecursionError):
        values = None
    if values is not None and not raw.endswith(","):  # (TOML allows a trailing comma)
        return key, [_setting_value(value) for value in values]
    option = f"--param {mask_secrets(text)}"
    return key, [_setting_value(_toml_value(piece, option)) for piece in raw.split(",")]


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def setting_text(value: Any, *, nested: bool = False) -> str:
    """``value`` as it is written after ``--set KEY=`` (and read back by
    :func:`parse_setting`): ``{fast = 5, slow = 20}``, ``["ACME", "BOLT"]``, ``true``,
    ``2024-12-06``, a string bare (quoted inside a table or a list)."""
    if isinstance(value, Mapping):
        items = (
            f"{k if _BARE_KEY.fullmatch(str(k)) else json.dumps(str(k))} = "
            f"{setting_text(v, nested=True)}"
            for k, v in value.items()
        )
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(setting_text(v, nested=True) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value) if nested else value
    return str(value)


def shown_setting(value: Any) -> str:
    """:func:`setting_text` as shown to a user (a table's cell, a run's label): with the
    passwords of database URLs masked (:func:`mask_secrets`)."""
    return mask_secrets(setting_text(value))


def masked(value: Any) -> Any:
    """``value`` (a setting: a string, or tables and lists of them) with the passwords of
    the database URLs in its strings masked, for output (``--json``)."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, Mapping):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value


_KEY_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]")


def _key_parts(key: str) -> list[str | int]:
    """``historical[0].trailing_days`` or ``historical.0.trailing_days`` -> parts."""
    parts: list[str | int] = []
    for piece in key.split("."):
        if piece.isdigit():
            parts.append(int(piece))
            continue
        pos = 0
        while pos < len(piece):
            match = _KEY_PART.match(piece, pos)
            if match is None or (pos == 0 and match.group(1) is None):
                raise ValueError(f"{key!r} is not a dotted configuration key")
            parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
            pos = match.end()
        if not piece:
            raise ValueError(f"{key!r} is not a dotted configuration key")
    return parts


class KeyProblem(ValueError):
    """A check of the whole configuration that is about one dotted key (reported under
    that key, and blamed on the option that set it, not on the file)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BacktestConfig(_Model):
    """The backtest window and its clock."""

    start_date: ConfigDate
    """First date of the backtest (the first trading day on or after it is used)."""
    end_date: ConfigDate
    """Last date of the backtest, inclusive."""
    clock: ClockMode = "clock-driven"
    """``data-driven`` runs as fast as the consumers allow; ``clock-driven`` at ``speed``."""
    speed: Speed = 60.0
    """Simulated seconds per wall second in clock-driven mode (1 = real time); a headless
    ``sessionkit run`` is data-driven unless ``--speed`` is given (this is the monitor's)."""

    @model_validator(mode="after")
    def _end_after_start(self) -> BacktestConfig:
        if self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        return self


class StreamsConfig(_Model):
    """What is streamed: symbols, the base interval and the derived intervals."""

    symbols: list[str] = Field(min_length=1)
    """Symbols to stream; each must be in the database and obey the symbol rule
    (:func:`~sessionkit.engine.core.bar.check_symbol`)."""
    interval: Interval = "1m"
    """Base interval read from the database."""
    derived: list[Interval] = Field(default_factory=list)
    """Intervals built from the base interval by the data processor."""

    @field_validator("symbols")
    @classmethod
    def _distinct_symbols(cls, symbols: list[str]) -> list[str]:
        for symbol in symbols:
            check_symbol(symbol)  # the one symbol rule (InvalidSymbolError is a ValueError)
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"symbols repeat: {symbols}")
        return symbols

    @model_validator(mode="after")
    def _derived_multiple_of_base(self) -> StreamsConfig:
        base = INTERVAL_SECONDS[self.interval]
        for interval in self.derived:
            seconds = INTERVAL_SECONDS[interval]
            if seconds <= base:
                raise ValueError(
                    f"derived interval {interval!r} must be longer than the base interval "
                    f"{self.interval!r} (it is built from the base bars)"
                )
            if seconds % base:
                raise ValueError(
                    f"derived interval {interval!r} is not a multiple of the base interval "
                    f"{self.interval!r}"
                )
        if len(set(self.derived)) != len(self.derived):
            raise ValueError(f"derived intervals repeat: {self.derived}")
        return self


class HistoricalConfig(_Model):
    """Trailing history loaded at the start of every session."""

    apply_to: Literal["all"] | list[str] = "all"
    """``"all"`` streamed symbols, or a list of them."""
    intervals: list[Interval] | None = None
    """The streamed intervals whose trailing history is kept (``ctx.bars`` before the
    session's open, the charts' history); default: all of them. History is read in the base
    interval and every derived interval is built from it, so the base must be listed; an
    interval left out still warms its indicators up, but keeps no bars from before the
    session."""
    trailing_days: StrictInt = Field(default=5, ge=0)
    """Number of trading days before the session to load."""

    @field_validator("apply_to", "intervals")
    @classmethod
    def _no_repeats(cls, values: Any) -> Any:
        if isinstance(values, list):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(
                    f"{', '.join(map(repr, repeated))} repeat{'s' * (len(repeated) == 1)}: list each once"
                )
        return values


RESERVED_INDICATOR_NAMES = frozenset(
    # an export's bar columns
    {"start", "end", "open", "high", "low", "close", "volume", "quality"}
    # what an import reads as a bar's field or a row's symbol (store.importing's aliases,
    # compared as it compares them: tests/test_config.py keeps the two lists in step)
    | {"timestamp", "datetime", "tsevent", "ts", "time", "date", "starttime", "opentime"}
    | {"windowstart", "gmttime", "o", "openprice", "h", "highprice", "l", "lowprice", "c"}
    | {"closeprice", "last", "vol", "v", "symbol", "ticker", "sym"}
)
"""Names an indicator may not have, compared without case, ``_``, ``-`` and spaces: an
export's column of that name would be read as the bar's own (by ``csv``, pandas, or an
import of the export), not as the indicator."""


INDICATOR_OPTIONS: dict[str, tuple[str, ...]] = {
    "period": ("sma", "ema", "rsi", "bollinger", "atr"),
    "std": ("bollinger",),
    "fast": ("macd",),
    "slow": ("macd",),
    "signal": ("macd",),
}
"""The kinds of indicator that take each option (the others refuse it: it would be
ignored)."""

INDICATOR_SUFFIXES: dict[str, tuple[str, ...]] = {
    "bollinger": ("", ".upper", ".lower"),
    "macd": ("", ".signal", ".hist"),
}
"""The outputs of the indicators of several outputs, as suffixes of their names (the
others have one output: their name)."""


class IndicatorConfig(_Model):
    """One indicator, computed for every streamed symbol on ``interval``."""

    name: str = Field(min_length=1)
    """Name shown in the UI and used as the export column (not one of
    :data:`RESERVED_INDICATOR_NAMES`)."""
    kind: IndicatorKind
    """Which indicator."""
    period: StrictInt = Field(default=14, ge=1)
    """Look-back period in bars (the slow period for MACD is ``slow``)."""
    interval: Interval = "1m"
    """Interval of the bars it is computed on (the base or a derived interval)."""
    std: StrictFloat = Field(default=2.0, gt=0, allow_inf_nan=False)
    """Bollinger band width in standard deviations."""
    fast: StrictInt = Field(default=12, ge=1)
    """MACD fast EMA period."""
    slow: StrictInt = Field(default=26, ge=1)
    """MACD slow EMA period."""
    signal: StrictInt = Field(default=9, ge=1)
    """MACD signal EMA period."""

    @property
    def outputs(self) -> tuple[str, ...]:
        """The names of its outputs (``bb_20``, ``bb_20.upper``, ``bb_20.lower``)."""
        return tuple(self.name + suffix for suffix in INDICATOR_SUFFIXES.get(self.kind, ("",)))

    @model_serializer(mode="wrap")
    def _taken_options_only(self, handler: SerializerFunctionWrapHandler) -> Any:
        # The options this kind does not take are left out of a dump (their defaults), so
        # that the dump validates again (a sweep re-validates a loaded configuration).
        data = handler(self)
        if isinstance(data, dict):
            for option, kinds in INDICATOR_OPTIONS.items():
                if self.kind not in kinds:
                    data.pop(option, None)
        return data

    @field_validator(*INDICATOR_OPTIONS)
    @classmethod
    def _taken_by_kind(cls, value: Any, info: ValidationInfo) -> Any:
        # Runs only for options given (defaults are not validated): one that this kind
        # does not take would be silently ignored.
        kind = info.data.get("kind")
        option = info.field_name
        assert option is not None
        takes = INDICATOR_OPTIONS[option]
        if kind is not None and kind not in takes:
            raise ValueError(
                f"a {kind} indicator takes no {option} (only {', '.join(takes)} "
                f"{'does' if len(takes) == 1 else 'do'}): remove it"
            )
        return value

    @field_validator("name")
    @classmethod
    def _not_a_bar_column(cls, name: str) -> str:
        if re.sub(r"[\s_-]+", "", name.strip().lower()) in RESERVED_INDICATOR_NAMES:
            raise ValueError(
                "the name of a bar's column in exports and imports (an export's column of "
                "that name would be read as the bar's own): name the indicator after what "
                "it is (sma_20, rsi_14)"
            )
        return name


class QualityConfig(_Model):
    """Data-quality settings."""

    enable_session_quality: StrictBool = True
    """``false`` assigns 100% to every new bar."""


class AnalysisConfig(_Model):
    """The user's analysis (strategy) code."""

    entry: str | None = None
    """``package.module:ClassName`` of the analysis class, or none."""
    on_error: Literal["continue", "stop"] = "continue"
    """What an exception in the analysis does to the session."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments passed to the analysis class."""

    @field_validator("entry")
    @classmethod
    def _entry_form(cls, entry: str | None) -> str | None:
        if entry is not None and (entry.count(":") != 1 or not all(entry.split(":"))):
            raise ValueError(f"entry {entry!r} must have the form 'package.module:ClassName'")
        return entry


class LiveConfig(_Model):
    """Live mode: the feed and what it plays."""

    feed: Literal["replay", "databento"] = "replay"
    """The bar feed. ``replay`` plays database bars in wall-clock time (no network);
    ``databento`` follows Databento's live gateway (extra ``sessionkit[databento]``)."""
    replay_date: ConfigDate | None = None
    """Session whose bars the replay feed plays (default: the last session with data)."""
    replay_start: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    """Exchange time (``HH:MM``, 24-hour) at which the replay starts (default: the open)."""
    speed: Speed = 1.0
    """Replay pace in session seconds per wall second: 1 is real time (use more only to
    demonstrate or test)."""
    drop_rate: StrictFloat = Field(default=0.0, ge=0, lt=1)
    """Fraction of replayed bars lost in transit (seeded), to demonstrate gap filling."""
    # Databento (feed = "databento"); the streamed symbols are subscribed as raw symbols,
    # in the schema of the streamed interval (1m: ohlcv-1m, 1h: ohlcv-1h).
    dataset: str | None = None
    """Databento dataset, e.g. ``XNAS.ITCH`` (required with ``feed = "databento"``)."""
    key_env: str = "DATABENTO_API_KEY"
    """Name of the environment variable holding the Databento API key (the key itself is
    never written in a configuration file, nor printed)."""
    gateway: str | None = None
    """Live gateway host (default: Databento's gateway for the dataset; set for tests)."""
    port: StrictInt = Field(default=13000, ge=1, le=65535)
    """Live gateway port."""
    session_date: ConfigDate | None = None
    """Trading day followed by the databento feed (default: today in the exchange's zone);
    the gateway replays it from the open (intraday replay covers the last 24 hours)."""

    @model_validator(mode="after")
    def _databento_needs_dataset(self) -> LiveConfig:
        if self.feed == "databento" and not (self.dataset or "").strip():
            raise ValueError('feed "databento" needs live.dataset (e.g. "XNAS.ITCH")')
        return self


class SessionConfig(_Model):
    """Everything configurable about a session."""

    mode: Literal["backtest", "live"] = "backtest"
    """``backtest`` replays stored sessions; ``live`` follows a feed in wall-clock time."""
    exchange_group: str = "NYSE"
    """Exchange whose calendar (in the database) defines sessions (any case: it is
    upper-cased, as ``sessionkit db calendar`` stores it)."""
    database_url: str | None = None
    """SQLAlchemy URL; default: the bundled sample database."""
    backtest: BacktestConfig | None = None
    streams: StreamsConfig
    historical: list[HistoricalConfig] = Field(default_factory=list)
    indicators: list[IndicatorConfig] = Field(default_factory=list)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    live: LiveConfig = Field(default_factory=LiveConfig)
    _source: str = PrivateAttr(default="<config>")
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)
    _folder: Path | None = PrivateAttr(default=None)

    @field_validator("exchange_group")
    @classmethod
    def _one_spelling(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("an exchange group is needed (e.g. NYSE or XNYS)")
        return exchange_group_name(value)

    @property
    def folder(self) -> Path | None:
        """The folder of the configuration's file (None: built in code): a relative SQLite
        path is relative to it, and the module ``analysis.entry`` names may live in it."""
        return self._folder

    @property
    def source(self) -> str:
        """Where this configuration came from (its file, or ``<config>``), for messages."""
        return self._source

    @property
    def overrides(self) -> dict[str, str]:
        """The dotted keys replaced after reading the file, each with the option that did it
        (``{"backtest.start_date": "--start 2024-12-02"}``)."""
        return dict(self._origins)

    def origin_of(self, key: str | tuple[str, ...], source: str | None = None) -> str:
        """Where the value of dotted ``key`` came from: the option that set it (or the
        options that set keys inside it: ``--start ... and --end ...`` for ``backtest``),
        else the configuration's file. For messages. Several keys (a problem of their
        combination, like symbols missing at an interval): the options that set any of
        them, else the file. A ``source`` other than the configuration's own (the whole
        configuration came from elsewhere) is the origin."""
        if source is not None and source != self.source:
            return source
        return _origin(key, self._origins, self._source)

    @model_validator(mode="after")
    def _consistent(self) -> SessionConfig:
        if self.mode == "backtest" and self.backtest is None:
            raise KeyProblem("backtest", "mode 'backtest' needs a [backtest] table")
        streamed = set(self.streams.symbols)
        known = {self.streams.interval, *self.streams.derived}
        names: dict[str, int] = {}  # every indicator output so far -> its indicator
        for index, indicator in enumerate(self.indicators):
            if indicator.interval not in known:
                raise KeyProblem(
                    f"indicators[{index}].interval",
                    f"{indicator.interval!r} ({indicator.name!r}) is neither the streamed "
                    f"interval nor a derived one ({sorted(known)})",
                )
            key = f"indicators[{index}]"
            if indicator.kind == "macd" and indicator.fast >= indicator.slow:
                raise KeyProblem(
                    f"{key}.fast" if "fast" in indicator.model_fields_set else f"{key}.slow",
                    f"a macd's fast period ({indicator.fast}) must be shorter than its slow "
                    f"period ({indicator.slow})",
                )
            for output in indicator.outputs:
                other = names.get(output)
                if other is None:
                    continue
                if self.indicators[other].name == indicator.name:
                    raise KeyProblem(f"{key}.name", f"{indicator.name!r} repeats")
                taken = self.indicators[other]
                raise KeyProblem(
                    f"{key}.name",
                    f"{indicator.name!r} ({indicator.kind}) has an output {output!r}, an "
                    f"output of indicators[{other}] too ({taken.name!r}, {taken.kind}: "
                    f"{', '.join(taken.outputs)}): each output needs a name of its own "
                    "(an export's column, ctx.indicator)",
                )
            for output in indicator.outputs:
                names[output] = index
        for index, hist in enumerate(self.historical):
            if isinstance(hist.apply_to, list):
                unknown = [s for s in hist.apply_to if s not in streamed]
                if unknown:
                    raise KeyProblem(
                        f"historical[{index}].apply_to", f"{unknown} are not streamed symbols"
                    )
            if hist.intervals is not None:
                key = f"historical[{index}].intervals"
                extra = [i for i in hist.intervals if i not in known]
                if extra:
                    raise KeyProblem(key, f"{extra} are not streamed intervals ({self.intervals})")
                if self.streams.interval not in hist.intervals:
                    raise KeyProblem(
                        key,
                        f"must include the base interval {self.streams.interval!r} (history "
                        "is read in it, and the derived intervals are built from it)",
                    )
        return self

    def trailing_days(self) -> dict[tuple[str, str], int]:
        """Trading days of history kept per (symbol, interval) (0: none), from every
        ``[[historical]]`` entry that applies (the longest wins)."""
        days = {(s, i): 0 for s in self.streams.symbols for i in self.intervals}
        for hist in self.historical:
            symbols = self.streams.symbols if hist.apply_to == "all" else hist.apply_to
            intervals = self.intervals if hist.intervals is None else hist.intervals
            for symbol in symbols:
                for interval in intervals:
                    key = symbol, interval
                    days[key] = max(days[key], hist.trailing_days)
        return days

    @property
    def clock(self) -> RunClock:
        """The clock mode: ``live`` in live mode, else the backtest's clock."""
        if self.mode == "live":
            return "live"
        assert self.backtest is not None
        return self.backtest.clock

    @property
    def intervals(self) -> list[str]:
        """The base interval followed by the derived ones."""
        return [self.streams.interval, *self.streams.derived]

    def resolved_database_url(self) -> str:
        """The configured database URL, or the bundled sample database's."""
        return database_url_of(self.database_url)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "literal[")) or "[" in part:
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _normal_key(key: str) -> str:
    """One spelling of a dotted key: ``historical.0.x`` -> ``historical[0].x``."""
    out = ""
    for part in _key_parts(key):
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _origin(key: str | tuple[str, ...], origins: Mapping[str, str], source: str) -> str:
    """The option that set ``key`` (or the table holding it), else the options that set
    keys inside it (``--start ... and --end ...`` for ``backtest``), else ``source``.
    Several keys (a problem of their combination): the options that set any of them."""
    found: list[str] = []
    for one in (key,) if isinstance(key, str) else key:
        covering = None
        inside: list[str] = []
        for overridden, origin in origins.items():
            if one == overridden or one.startswith((f"{overridden}.", f"{overridden}[")):
                if covering is None or len(overridden) > len(covering[0]):
                    covering = (overridden, origin)
            elif overridden.startswith((f"{one}.", f"{one}[")) and origin not in inside:
                inside.append(origin)
        for origin in [covering[1]] if covering else inside:
            if origin not in found:
                found.append(origin)
    return " and ".join(found) or source


def validation_problems(
    source: str, error: ValidationError, origins: Mapping[str, str] | None = None
) -> list[Problem]:
    """A pydantic error as (source, key, problem) triples; a key set by an option is
    blamed on that option."""
    problems: list[Problem] = []
    for item in error.errors(include_url=False):
        raised = item.get("ctx", {}).get("error")
        key = raised.key if isinstance(raised, KeyProblem) else _loc(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling)"
        elif (
            "input" in item
            and item["type"] not in ("missing",)
            and not isinstance(item["input"], dict | list)
        ):
            message += f" (got {_shown(item['input'])})"
        problem = (_origin(key, origins or {}, source), key, message)
        if problem not in problems:
            problems.append(problem)
    return problems


def config_error(problems: list[Problem]) -> ConfigError:
    """One :class:`ConfigError` reporting every problem."""
    (source, key, problem), *more = problems
    return ConfigError(source, key, problem, more)


def _flatten(overrides: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value and not isinstance(value, WholeTable):
            flat.update(_flatten(value, dotted))
        elif value is not None:
            flat[dotted] = value
    return flat


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` in nested ``data`` (tables are created; list items must exist)."""
    parts = _key_parts(key)
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = _normal_key(".".join(str(p) for p in parts[: depth + 1]))
        if isinstance(part, int):
            if not isinstance(node, list) or not -len(node) <= part < len(node):
                size = len(node) if isinstance(node, list) else 0
                raise ValueError(f"{where}: there is no item {part} (the list has {size})")
        elif not isinstance(node, dict):
            raise ValueError(f"{where}: its parent is not a table")
        if last:
            node[part] = dict(value) if isinstance(value, WholeTable) else value
        else:
            child = node[part] if isinstance(part, int) else node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, dict | list):
                child = node[part] = (dict if isinstance(child, dict) else list)(child)
            node = child


def config_from_dict(
    data: Mapping[str, Any],
    *,
    source: str = "<config>",
    overrides: Mapping[str, Any] | None = None,
    origins: Mapping[str, str] | None = None,
    base: Path | None = None,
) -> SessionConfig:
    """Validate a configuration mapping after applying ``overrides``.

    Parameters
    ----------
    data
        The configuration as read from TOML.
    source
        Where ``data`` came from (its file), for messages.
    overrides
        Values replacing ``data``'s, by dotted key (``{"analysis.options.fast": 10,
        "historical[0].trailing_days": 3}``) or as nested mappings; ``None`` values are
        ignored. They are validated exactly like the file.
    origins
        For each dotted key of ``overrides``, the option that set it (``--set
        backtest.speed=0``), named by errors about that key; default ``overrides[KEY]``.
    base
        The folder a relative SQLite ``database_url`` in ``data`` is relative to (the
        configuration file's); one in ``overrides`` is relative to the working folder.
        Kept as the configuration's :attr:`~SessionConfig.folder`.

    Raises
    ------
    ConfigError
        Naming, for each wrong key, where its value came from and what is wrong.
    """
    data = _deep_copy(data)
    problems: list[Problem] = []
    if isinstance(data.get("database_url"), str):
        if _conninfo(data["database_url"]):
            problems.append((source, "database_url", _CONNINFO_PROBLEM))
        else:
            data["database_url"] = database_url_of(data["database_url"], base)
    flat = _flatten(overrides or {})
    known: dict[str, str] = {}
    for key, origin in (origins or {}).items():
        with contextlib.suppress(ValueError):  # a malformed key is reported below
            known[_normal_key(key)] = origin
    named: dict[str, str] = {}
    for key, value in flat.items():
        try:
            normal = _normal_key(key)
        except ValueError as exc:
            problems.append(((origins or {}).get(key, "overrides"), None, str(exc)))
            continue
        # The option that set this key, or the table holding it (a nested mapping).
        origin = (origins or {}).get(key) or _origin(normal, known, "") or f"overrides[{key!r}]"
        named[normal] = origin
        if normal == "database_url" and isinstance(value, str):
            if _conninfo(value):
                problems.append((origin, None, _CONNINFO_PROBLEM))
                continue
            value = database_url_of(value)
        try:
            _set(data, normal, value)
        except ValueError as exc:
            where, _, problem = str(exc).partition(": ")
            problems.append((origin, where, problem))
    if data.get("mode") == "live":
        problems += _not_live(named)
    if problems:
        raise config_error(problems)
    try:
        config = SessionConfig.model_validate(data)
    except ValidationError as exc:
        raise config_error(validation_problems(source, exc, named)) from None
    except RecursionError:
        raise ConfigError(source, None, "the configuration is nested too deeply") from None
    config._source = source
    config._origins = named
    config._folder = base
    return config


_LIVE_HINTS = {
    "backtest.speed": "a live session's pace is live.speed (--set live.speed=60)",
    "backtest.clock": "a live session's pace is live.speed (--set live.speed=60)",
    "backtest.start_date": "a live session replays one day, live.replay_date "
    "(--set live.replay_date=YYYY-MM-DD)",
    "backtest.end_date": "a live session replays one day, live.replay_date "
    "(--set live.replay_date=YYYY-MM-DD)",
}


def _not_live(named: Mapping[str, str]) -> list[Problem]:
    """The overrides of a live configuration (``mode = "live"``) that only a backtest has
    (``--speed``, ``--start``, ``--end``, ``--set backtest.*``): one problem per option,
    saying what sets it in live mode (QA: they made the configuration a backtest's without
    its window, "backtest.start_date: Field required")."""
    problems: list[Problem] = []
    told: set[str] = set()
    for key, origin in named.items():
        if (key == "backtest" or key.startswith("backtest.")) and origin not in told:
            told.add(origin)
            hint = _LIVE_HINTS.get(key, "it has no [backtest] table")
            problems.append((origin, None, f"does not apply to a live session: {hint}"))
    return problems


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def resolve_config_path(name_or_path: str | Path | None) -> Path:
    """Find a configuration: a file path, or the name of a bundled one (``demo``).

    Raises
    ------
    ConfigError
        If it is neither an existing file nor a bundled configuration's name.
    """
    if name_or_path is None:
        name_or_path = "demo"
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path)
    if name in BUNDLED_CONFIGS:
        return Path(str(files("sessionkit.sample_db").joinpath(f"{name}.toml")))
    if path.exists():
        raise ConfigError(str(path), None, "the configuration is not a file")
    raise ConfigError(
        str(path),
        None,
        "the configuration file does not exist, and it is not the name of a bundled "
        f"configuration ({', '.join(BUNDLED_CONFIGS)})",
    )


def load_config(
    path: str | Path | None,
    overrides: Mapping[str, Any] | None = None,
    *,
    origins: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> SessionConfig:
    """Read and validate a TOML configuration.

    Parameters
    ----------
    path
        A TOML file, the name of a bundled configuration (``demo``, ``spy-2011``), or None
        for the default demo.
    overrides
        Values that replace the file's, by dotted key or as nested mappings (see
        :func:`config_from_dict`); ``None`` values are ignored.
    origins
        The option that set each override, named by errors about it.
    options
        The command-line options the programs share, applied after ``overrides``: ``db``,
        ``start``, ``end``, ``speed`` (strings as typed) and ``settings`` (the ``--set
        KEY=VALUE`` texts); see :func:`option_overrides`.

    Raises
    ------
    ConfigError
        For a missing file, a TOML syntax error or any invalid value; the message names
        the file and the key.
    """
    if options:
        extra, extra_origins = option_overrides(**options)
        overrides = {**_flatten(overrides or {}), **extra}
        origins = {**(origins or {}), **extra_origins}
    resolved = resolve_config_path(path)
    try:
        text = resolved.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(resolved), None, f"cannot read the configuration: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(resolved), None, f"invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(str(resolved), None, "invalid TOML: nested too deeply") from None
    return config_from_dict(
        data,
        source=str(resolved),
        overrides=overrides,
        origins=origins,
        base=resolved.resolve().parent,
    )


def bundled_database_path() -> Path:
    """Path of the bundled sample database file inside the installed package."""
    return Path(str(files("sessionkit.sample_db").joinpath("sample.sqlite")))


def default_database_url() -> str:
    """SQLAlchemy URL of the bundled sample database (the default of ``database_url``)."""
    return f"sqlite:///{bundled_database_path()}"


_SQLITE_URL = re.compile(r"(sqlite(?:\+\w+)?:///)([^?]*)(\?.*)?", re.DOTALL)
"""A SQLite URL: its scheme and slashes, its database file, its query (read here without
SQLAlchemy, which loading a configuration does not import; the files it leaves alone are
those ``store.db``'s ``sqlite_path`` does not call files)."""


def database_url_of(value: str | None, base: Path | None = None) -> str:
    """A SQLAlchemy URL from a ``database_url`` value or a ``--db`` option.

    Parameters
    ----------
    value
        A SQLAlchemy URL (``sqlite:///x.sqlite``, ``postgresql+psycopg://...``), a path to a
        SQLite file, or None (or blank) for the bundled sample database.
    base
        The folder a relative file path (also in a ``sqlite:///`` URL) is relative to
        (default: the working folder): the result names the file absolutely, so that it
        means the same file in a sweep's or Dask's workers.
    """
    if value is None or not value.strip():
        return default_database_url()
    value = value.strip()
    if "://" in value:
        # A SQLite URL's relative file (sqlite:///my.sqlite) follows the same rule as a
        # path; an absolute one (four slashes), :memory:, a URI filename and any other
        # database's URL are kept as written.
        match = _SQLITE_URL.fullmatch(value)
        if match is None:
            return value
        prefix, database, query = match.groups()
        if not database or database.startswith(("/", ":memory:", "file:")):
            return value
        return f"{prefix}{((base or Path.cwd()) / database).resolve()}{query or ''}"
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return f"sqlite:///{path.resolve()}"


def option_overrides(
    *,
    db: str | None = None,
    start: str | date | None = None,
    end: str | date | None = None,
    speed: str | None = None,
    settings: list[str] | tuple[str, ...] = (),
) -> tuple[dict[str, Any], dict[str, str]]:
    """The configuration overrides of the common command-line options, with their origins.

    Shared by ``sessionkit run``, ``sessionkit sweep`` and ``sessionkit-tui``: ``--db``,
    ``--start``, ``--end``, ``--speed`` (``max`` -> data-driven; a number or ``60x`` ->
    clock-driven at it) and any number of ``--set KEY=VALUE`` (applied last).

    Returns
    -------
    overrides, origins
        Dotted keys and values for :func:`load_config`, and the option that set each.

    Raises
    ------
    ConfigError
        Naming the option, for a value that cannot be parsed.
    """
    overrides: dict[str, Any] = {}
    origins: dict[str, str] = {}

    def put(key: str, value: Any, origin: str) -> None:
        overrides[key] = value
        origins[key] = origin

    if db is not None:
        if not db.strip():
            raise ConfigError(
                "--db", None, "the value is empty: give a database URL or a SQLite file's path"
            )
        put("database_url", db, f"--db {mask_secrets(db)}")
    if start is not None:
        put("backtest.start_date", parse_date(start, "--start"), f"--start {start}")
    if end is not None:
        put("backtest.end_date", parse_date(end, "--end"), f"--end {end}")
    if speed is not None:
        value = parse_speed(speed)
        if value is None:
            put("backtest.clock", "data-driven", f"--speed {speed}")
        else:
            put("backtest.clock", "clock-driven", f"--speed {speed}")
            put("backtest.speed", value, f"--speed {speed}")
    by_options = dict(origins)  # an explicit option and a --set of its key: refused
    if speed is not None:  # --speed decides both
        by_options["backtest.speed"] = by_options["backtest.clock"]
    for text in settings:
        label = f"--set {mask_secrets(text)}"
        key, value = parse_setting(text)
        key = _normal_key(key)
        for taken, option in by_options.items():
            if key == taken or taken.startswith((f"{key}.", f"{key}[")):
                raise ConfigError(
                    label,
                    None,
                    f"{taken} is set by {option} too: give it once (the option, or the --set)",
                )
        if key == "backtest.speed" and isinstance(value, str):
            parsed = parse_speed(value, label)
            if parsed is None:
                put("backtest.clock", "data-driven", label)
                continue
            value = parsed
        put(key, value, label)
    return overrides, origins
