"""Configuration: pydantic v2 models for everything configurable, loaded from TOML.

Used on the caller's thread before the engine starts; the validated :class:`SessionConfig`
is frozen, so every engine thread may read it without locks.

Every mistake becomes a :class:`~sessionkit.engine.errors.ConfigError` whose message names
the file, the key and what is wrong. Unknown keys are errors: a typo must not pass silently.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import date
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .core.bar import INTERVAL_SECONDS, Interval
from .errors import ConfigError

ClockMode = Literal["data-driven", "clock-driven"]
"""How a backtest is paced: as fast as the consumers allow, or by the simulated clock."""
RunClock = Literal[ClockMode, "live"]
"""How a running session is paced: a backtest's :data:`ClockMode`, or ``live`` (wall clock)."""
IndicatorKind = Literal["sma", "ema", "rsi", "vwap", "bollinger", "atr", "macd"]

BUNDLED_CONFIGS = ("demo", "spy-2011")
"""Names of the configurations shipped in ``sessionkit.sample_db``."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BacktestConfig(_Model):
    """The backtest window and its clock."""

    start_date: date
    """First date of the backtest (the first trading day on or after it is used)."""
    end_date: date
    """Last date of the backtest, inclusive."""
    clock: ClockMode = "clock-driven"
    """``data-driven`` runs as fast as the consumers allow; ``clock-driven`` at ``speed``."""
    speed: float = Field(default=60.0, gt=0)
    """Simulated seconds per wall second in clock-driven mode (1 = real time)."""

    @model_validator(mode="after")
    def _end_after_start(self) -> BacktestConfig:
        if self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        return self


class StreamsConfig(_Model):
    """What is streamed: symbols, the base interval and the derived intervals."""

    symbols: list[str] = Field(min_length=1)
    """Symbols to stream; each must be in the database."""
    interval: Interval = "1m"
    """Base interval read from the database."""
    derived: list[Interval] = Field(default_factory=list)
    """Intervals built from the base interval by the data processor."""

    @field_validator("symbols")
    @classmethod
    def _distinct_symbols(cls, symbols: list[str]) -> list[str]:
        for symbol in symbols:
            if not symbol.strip():
                raise ValueError("a symbol is empty")
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"symbols repeat: {symbols}")
        return symbols

    @model_validator(mode="after")
    def _derived_multiple_of_base(self) -> StreamsConfig:
        base = INTERVAL_SECONDS[self.interval]
        for interval in self.derived:
            seconds = INTERVAL_SECONDS[interval]
            if seconds <= base or seconds % base:
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
    intervals: list[Interval] = Field(default_factory=lambda: ["1m"])
    """Intervals to load."""
    trailing_days: int = Field(default=5, ge=0)
    """Number of trading days before the session to load."""


class IndicatorConfig(_Model):
    """One indicator, computed for every streamed symbol on ``interval``."""

    name: str = Field(min_length=1)
    """Name shown in the UI and used as the export column."""
    kind: IndicatorKind
    """Which indicator."""
    period: int = Field(default=14, ge=1)
    """Look-back period in bars (the slow period for MACD is ``slow``)."""
    interval: Interval = "1m"
    """Interval of the bars it is computed on (the base or a derived interval)."""
    std: float = Field(default=2.0, gt=0)
    """Bollinger band width in standard deviations."""
    fast: int = Field(default=12, ge=1)
    """MACD fast EMA period."""
    slow: int = Field(default=26, ge=1)
    """MACD slow EMA period."""
    signal: int = Field(default=9, ge=1)
    """MACD signal EMA period."""


class QualityConfig(_Model):
    """Data-quality settings."""

    enable_session_quality: bool = True
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

    feed: Literal["replay"] = "replay"
    """The bar feed. ``replay`` plays database bars in wall-clock time (no network)."""
    replay_date: date | None = None
    """Session whose bars the replay feed plays (default: the last session with data)."""
    replay_start: str | None = None
    """Exchange time (``HH:MM``) at which the replay starts (default: the open)."""
    speed: float = Field(default=1.0, gt=0)
    """Replay pace in session seconds per wall second: 1 is real time (use more only to
    demonstrate or test)."""
    drop_rate: float = Field(default=0.0, ge=0, lt=1)
    """Fraction of replayed bars lost in transit (seeded), to demonstrate gap filling."""


class SessionConfig(_Model):
    """Everything configurable about a session."""

    mode: Literal["backtest", "live"] = "backtest"
    """``backtest`` replays stored sessions; ``live`` follows a feed in wall-clock time."""
    exchange_group: str = "NYSE"
    """Exchange whose calendar (in the database) defines sessions."""
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

    @property
    def source(self) -> str:
        """Where this configuration came from (its file, or ``<config>``), for messages."""
        return self._source

    @model_validator(mode="after")
    def _consistent(self) -> SessionConfig:
        if self.mode == "backtest" and self.backtest is None:
            raise ValueError("mode 'backtest' needs a [backtest] table")
        streamed = set(self.streams.symbols)
        known = {self.streams.interval, *self.streams.derived}
        names: set[str] = set()
        for index, indicator in enumerate(self.indicators):
            if indicator.interval not in known:
                raise ValueError(
                    f"indicators[{index}] ({indicator.name!r}): interval {indicator.interval!r}"
                    f" is neither the streamed interval nor a derived one ({sorted(known)})"
                )
            if indicator.name in names:
                raise ValueError(f"indicators[{index}]: name {indicator.name!r} repeats")
            names.add(indicator.name)
        for index, hist in enumerate(self.historical):
            if isinstance(hist.apply_to, list):
                unknown = [s for s in hist.apply_to if s not in streamed]
                if unknown:
                    raise ValueError(
                        f"historical[{index}].apply_to: {unknown} are not streamed symbols"
                    )
        return self

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


def format_validation_error(source: str, error: ValidationError) -> str:
    """Turn a pydantic error into lines that name the file, the key and what is wrong."""
    lines = []
    seen: set[str] = set()
    for item in error.errors(include_url=False):
        key = _loc(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling)"
        elif (
            "input" in item
            and item["type"] not in ("missing",)
            and not isinstance(item["input"], dict | list)
        ):
            message += f" (got {item['input']!r})"
        line = f"  {key}: {message}"
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return f"invalid configuration in {source}:\n" + "\n".join(lines)


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_from_dict(
    data: Mapping[str, Any],
    *,
    source: str = "<config>",
    overrides: Mapping[str, Any] | None = None,
    base: Path | None = None,
) -> SessionConfig:
    """Validate a configuration mapping (after applying ``overrides``).

    A ``database_url`` that is a file path in ``data`` is relative to ``base`` (the
    configuration file's folder); one in ``overrides`` is relative to the working folder.

    Raises
    ------
    ConfigError
        Naming ``source``, each wrong key and what is wrong with it.
    """
    data = dict(data)
    if isinstance(data.get("database_url"), str):
        data["database_url"] = database_url_of(data["database_url"], base)
    overrides = dict(overrides or {})
    if isinstance(overrides.get("database_url"), str):
        overrides["database_url"] = database_url_of(overrides["database_url"])
    merged = _merge(data, overrides)
    try:
        config = SessionConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None
    config._source = source
    return config


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
        raise ConfigError(f"configuration {path} is not a file")
    raise ConfigError(
        f"configuration file {path} does not exist, and it is not the name of a bundled "
        f"configuration ({', '.join(BUNDLED_CONFIGS)})"
    )


def load_config(
    path: str | Path | None, overrides: Mapping[str, Any] | None = None
) -> SessionConfig:
    """Read and validate a TOML configuration.

    Parameters
    ----------
    path
        A TOML file, the name of a bundled configuration (``demo``, ``spy-2011``), or None
        for the default demo.
    overrides
        Nested mapping of values that replace the file's (from command-line options);
        ``None`` values are ignored.

    Raises
    ------
    ConfigError
        For a missing file, a TOML syntax error or any invalid value; the message names
        the file and the key.
    """
    resolved = resolve_config_path(path)
    try:
        text = resolved.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration {resolved}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {resolved}: {exc}") from None
    return config_from_dict(
        data, source=str(resolved), overrides=overrides, base=resolved.resolve().parent
    )


def bundled_database_path() -> Path:
    """Path of the bundled sample database file inside the installed package."""
    return Path(str(files("sessionkit.sample_db").joinpath("sample.sqlite")))


def default_database_url() -> str:
    """SQLAlchemy URL of the bundled sample database (the default of ``database_url``)."""
    return f"sqlite:///{bundled_database_path()}"


def database_url_of(value: str | None, base: Path | None = None) -> str:
    """A SQLAlchemy URL from a ``database_url`` value or a ``--db`` option.

    Parameters
    ----------
    value
        A SQLAlchemy URL (``sqlite:///x.sqlite``, ``postgresql+psycopg://...``), a path to a
        SQLite file, or None (or blank) for the bundled sample database.
    base
        The folder a relative file path is relative to (default: the working folder).
    """
    if value is None or not value.strip():
        return default_database_url()
    value = value.strip()
    if "://" in value:
        return value
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return f"sqlite:///{path.resolve()}"
