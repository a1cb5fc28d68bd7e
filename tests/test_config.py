"""Configuration validation: every good and bad case of the foundation issue."""

from __future__ import annotations

import pickle
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from sessionkit.engine.config import (
    SPEED_RULE,
    config_from_dict,
    default_database_url,
    load_config,
    parse_date,
    parse_setting,
    parse_speed,
    resolve_config_path,
)
from sessionkit.engine.errors import ConfigError
from sessionkit.engine.store.data_manager import check_against_database
from sessionkit.engine.store.db import open_db

GOOD = """
mode = "backtest"
exchange_group = "NYSE"

[backtest]
start_date = 2024-11-25
end_date = 2024-12-31
clock = "clock-driven"
speed = 60

[streams]
symbols = ["ACME", "BOLT"]
interval = "1m"
derived = ["5m", "15m"]

[[historical]]
apply_to = "all"
intervals = ["1m"]
trailing_days = 5

[[indicators]]
name = "sma_20"
kind = "sma"
period = 20
interval = "5m"

[quality]
enable_session_quality = true

[analysis]
entry = "sessionkit.engine.examples:SmaCross"
"""


def write(tmp_path: Path, text: str, name: str = "session.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str, overrides: dict | None = None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    message = str(info.value)
    assert str(path) in message, message  # every error names the file
    return message


def test_good_config_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.mode == "backtest"
    assert config.backtest.start_date == date(2024, 11, 25)
    assert config.backtest.speed == 60
    assert config.streams.symbols == ["ACME", "BOLT"]
    assert config.intervals == ["1m", "5m", "15m"]
    assert config.historical[0].trailing_days == 5
    assert config.indicators[0].name == "sma_20"
    assert config.clock == "clock-driven"
    assert config.analysis.entry == "sessionkit.engine.examples:SmaCross"


def test_overrides_replace_fields(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, GOOD),
        {"backtest": {"speed": 600, "start_date": date(2024, 12, 2), "end_date": None}},
    )
    assert config.backtest.speed == 600
    assert config.backtest.start_date == date(2024, 12, 2)
    assert config.backtest.end_date == date(2024, 12, 31)  # None leaves the file's value


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (("speed = 60", "speed = 0"), "backtest.speed", "a speed is a finite number > 0"),
        (("speed = 60", "speed = -3"), "backtest.speed", "a speed is a finite number > 0"),
        (("speed = 60", "speed = inf"), "backtest.speed", "a speed is a finite number > 0"),
        (("speed = 60", "speed = nan"), "backtest.speed", "a speed is a finite number > 0"),
        (("speed = 60", 'speed = "fast"'), "backtest.speed", "number"),
        (('interval = "1m"', 'interval = "2m"'), "streams.interval", "'1m'"),
        (('derived = ["5m", "15m"]', 'derived = ["7m"]'), "streams.derived[0]", "'5m'"),
        (("trailing_days = 5", "trailing_days = -1"), "historical[0].trailing_days", "0"),
        (('symbols = ["ACME", "BOLT"]', "symbols = []"), "streams.symbols", "at least 1"),
        (("end_date = 2024-12-31", "end_date = 2024-11-01"), "backtest", "before start_date"),
        (('clock = "clock-driven"', 'clock = "wall"'), "backtest.clock", "data-driven"),
        (('kind = "sma"', 'kind = "smma"'), "indicators[0].kind", "'sma'"),
        (("period = 20", "perod = 20"), "indicators[0].perod", "unknown key"),
        (("[quality]", "[qualty]"), "qualty", "unknown key"),
        (('mode = "backtest"', 'mode = "paper"'), "mode", "'backtest'"),
    ],
)
def test_bad_values_name_file_key_and_problem(
    tmp_path: Path, change: tuple[str, str], key: str, words: str
) -> None:
    old, new = change
    assert old in GOOD
    message = error_of(tmp_path, GOOD.replace(old, new, 1))
    assert f"  {key}:" in message, message
    assert words in message, message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = error_of(tmp_path, 'exchange_grup = "NYSE"\n' + GOOD)
    assert "exchange_grup: unknown key" in message


def test_toml_syntax_error(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace("speed = 60", "speed = = 60"))
    assert "invalid TOML" in message
    assert "line" in message


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(missing)


def test_bundled_names_resolve() -> None:
    assert resolve_config_path("demo").name == "demo.toml"
    assert resolve_config_path(None).name == "demo.toml"
    assert resolve_config_path("spy-2011").is_file()
    load_config("demo")
    load_config("spy-2011")


def test_derived_must_be_longer_than_base(tmp_path: Path) -> None:
    text = GOOD.replace('interval = "1m"\nderived', 'interval = "15m"\nderived').replace(
        'interval = "5m"', 'interval = "15m"'
    )
    message = error_of(tmp_path, text)
    assert "derived interval '5m' must be longer than the base interval '15m'" in message
    # The base itself as a derived interval: "not a multiple" said before, which 1m is.
    message = error_of(tmp_path, GOOD.replace('derived = ["5m", "15m"]', 'derived = ["1m"]'))
    assert "derived interval '1m' must be longer than the base interval '1m'" in message


def test_indicator_interval_must_be_streamed(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace('interval = "5m"', 'interval = "1h"'))
    assert "neither the streamed interval nor a derived one" in message


def test_analysis_entry_form(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace("examples:SmaCross", "examples.SmaCross"))
    assert "analysis.entry" in message and "package.module:ClassName" in message


@pytest.mark.parametrize("name", ["close", "Close", "VOLUME", "quality", "start", "v", "ticker"])
def test_an_indicator_may_not_take_a_bar_columns_name(tmp_path: Path, name: str) -> None:
    """An indicator named ``close`` made the export's header ``...,close,...,close``: csv and
    pandas then read the indicator as the close, and the export did not import back."""
    message = error_of(tmp_path, GOOD.replace('name = "sma_20"', f'name = "{name}"', 1))
    assert message.endswith(
        "indicators[0].name: the name of a bar's column in exports and imports (an "
        "export's column of that name would be read as the bar's own): name the indicator "
        f"after what it is (sma_20, rsi_14) (got {name!r})"
    )


def test_the_reserved_names_are_every_export_column_and_import_alias() -> None:
    from sessionkit.engine.config import RESERVED_INDICATOR_NAMES
    from sessionkit.engine.store import export, importing

    names = {*export.COLUMNS, *importing.SYMBOL_ALIASES, "date", "time"}
    names |= {alias for aliases in importing.ALIASES.values() for alias in aliases}
    assert RESERVED_INDICATOR_NAMES == {importing._normal(n) for n in names}


def test_symbol_not_in_database_and_unknown_exchange() -> None:
    engine = open_db(default_database_url())
    good = config_from_dict(
        {
            "backtest": {"start_date": "2024-11-25", "end_date": "2024-11-26"},
            "streams": {"symbols": ["ACME"]},
        }
    )
    check_against_database(good, engine, source="s.toml")
    bad_symbol = config_from_dict(
        {
            "backtest": {"start_date": "2024-11-25", "end_date": "2024-11-26"},
            "streams": {"symbols": ["ACME", "ZZZZ"]},
        }
    )
    with pytest.raises(ConfigError, match=r"s\.toml[\s\S]*streams\.symbols: 'ZZZZ' not in"):
        check_against_database(bad_symbol, engine, source="s.toml")
    bad_exchange = config_from_dict(
        {
            "exchange_group": "LSE",
            "backtest": {"start_date": "2024-11-25", "end_date": "2024-11-26"},
            "streams": {"symbols": ["ACME"]},
        }
    )
    with pytest.raises(ConfigError, match="exchange_group: unknown exchange group 'LSE'"):
        check_against_database(bad_exchange, engine, source="s.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("speed = 60", "speed = 0"), "backtest.speed"),
        (GOOD.replace('"BOLT"]', '"NOPE"]'), "streams.symbols: 'NOPE'"),
        (GOOD.replace("[quality]", "[qualty]"), "qualty: unknown key"),
    ],
)
def test_cli_prints_one_message_and_exits_2(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    result = subprocess.run(
        [sys.executable, "-m", "sessionkit.engine.cli", "run", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_relative_database_path_is_relative_to_the_configuration_file(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    demo = load_config("demo")
    path = folder / "run.toml"
    text = 'database_url = "data/bars.sqlite"\n' + _demo_without_database_url(demo)
    path.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    config = load_config(path)
    assert config.database_url == f"sqlite:///{(folder / 'data' / 'bars.sqlite').resolve()}"
    assert config.source == str(path)
    # An override's path, bare or in a URL, is relative to the working folder.
    assert load_config(path, {"database_url": "sqlite:///x.db"}).database_url == (
        f"sqlite:///{(tmp_path / 'x.db').resolve()}"
    )
    assert load_config(path, {"database_url": "y.db"}).database_url == (
        f"sqlite:///{(tmp_path / 'y.db').resolve()}"
    )


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        # relative files in a URL: as a bare path is (the README's own example)
        ("sqlite:///my.sqlite", "sqlite:///{folder}/my.sqlite"),
        ("sqlite:///data/../my.sqlite?timeout=5", "sqlite:///{folder}/my.sqlite?timeout=5"),
        ("sqlite+pysqlite:///my.sqlite", "sqlite+pysqlite:///{folder}/my.sqlite"),
        # kept as written
        ("sqlite:////abs/my.sqlite", "sqlite:////abs/my.sqlite"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///file:my.sqlite?mode=ro&uri=true", "sqlite:///file:my.sqlite?mode=ro&uri=true"),
        ("postgresql+psycopg://me@db:5432/bars", "postgresql+psycopg://me@db:5432/bars"),
    ],
)
def test_a_relative_sqlite_url_in_a_file_is_relative_to_its_folder(
    tmp_path, monkeypatch, written: str, expected: str
) -> None:
    """``database_url = "sqlite:///my.sqlite"`` (the README's example) opened my.sqlite in
    the working folder: a run from another folder said the database did not exist. A
    relative file in a SQLite URL now follows the rule of a relative path."""
    folder = tmp_path / "project"
    folder.mkdir()
    path = folder / "run.toml"
    demo = load_config("demo")
    path.write_text(f"database_url = {written!r}\n" + _demo_without_database_url(demo))
    monkeypatch.chdir(tmp_path)
    got = load_config(path).database_url
    assert got == expected.format(folder=folder.resolve())


def _demo_without_database_url(config) -> str:
    from importlib.resources import files

    text = files("sessionkit.sample_db").joinpath("demo.toml").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.startswith("database_url"))


# -- one parser for speeds, dates and --set; one ConfigError form ---------------------------


@pytest.mark.parametrize(
    ("text", "expected"), [("max", None), ("MAX", None), ("60", 60.0), ("60x", 60.0), ("0.5", 0.5)]
)
def test_parse_speed_accepts(text: str, expected: float | None) -> None:
    assert parse_speed(text) == expected


@pytest.mark.parametrize("text", ["0", "-5", "fast", "inf", "-inf", "nan", "infx", "1e400", ""])
def test_parse_speed_refuses_with_the_one_rule(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_speed(text)
    assert str(info.value) == f"--speed: {text!r}: {SPEED_RULE} (or 'max': data-driven)"


def test_parse_date() -> None:
    assert parse_date(" 2024-12-02 ", "--start") == date(2024, 12, 2)
    assert parse_date(date(2024, 12, 2), "--start") == date(2024, 12, 2)
    with pytest.raises(ConfigError, match=r"^--from: '2024-13-01' is not a date \(YYYY-MM-DD\)$"):
        parse_date("2024-13-01", "--from")


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("backtest.speed=600", "backtest.speed", 600),
        ("backtest.end_date=2024-12-06", "backtest.end_date", date(2024, 12, 6)),
        ('streams.symbols=["ACME", "BOLT"]', "streams.symbols", ["ACME", "BOLT"]),
        ("analysis.entry=pkg.mod:Cls", "analysis.entry", "pkg.mod:Cls"),
        ("analysis.options.fee_bps = 2.5", "analysis.options.fee_bps", 2.5),
        ("quality.enable_session_quality=false", "quality.enable_session_quality", False),
        ("historical[0].trailing_days=3", "historical[0].trailing_days", 3),
        ('database_url="a=b"', "database_url", "a=b"),
    ],
)
def test_parse_setting(text: str, key: str, value: object) -> None:
    assert parse_setting(text) == (key, value)


@pytest.mark.parametrize("text", ["novalue", "=5", "a..b=1", "a.[0]=1", "a b=1"])
def test_parse_setting_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--set "):
        parse_setting(text)


def test_dotted_overrides_reach_any_key(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    config = load_config(
        path,
        {
            "analysis.options.fast": 5,
            "historical.0.trailing_days": 2,
            "indicators[0].period": 7,
            "backtest.end_date": "2024-12-06",
        },
    )
    assert config.analysis.options == {"fast": 5}
    assert config.historical[0].trailing_days == 2
    assert config.indicators[0].period == 7
    assert config.backtest.end_date == date(2024, 12, 6)
    assert set(config.overrides) == {
        "analysis.options.fast",
        "historical[0].trailing_days",
        "indicators[0].period",
        "backtest.end_date",
    }


def test_an_override_error_names_the_option_not_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    options = {"settings": ["backtest.speed=0", "historical[3].trailing_days=1"]}
    with pytest.raises(ConfigError) as info:
        load_config(path, options=options)
    message = str(info.value)
    assert message.startswith("invalid configuration from --set historical[3].trailing_days=1:")
    assert "  historical[3]: there is no item 3 (the list has 1)" in message
    with pytest.raises(ConfigError) as info:
        load_config(path, options={"settings": ["backtest.speed=0"]})
    assert str(info.value).startswith(
        "invalid configuration from --set backtest.speed=0:\n  backtest.speed: a speed is"
    )
    # end_date (in the file) before the --start date: blamed on --start, not on the file
    with pytest.raises(ConfigError) as info:
        load_config(path, options={"start": "2030-01-01"})
    message = str(info.value)
    assert message.startswith("invalid configuration from --start 2030-01-01:\n  backtest: end_d")
    assert str(path) not in message


def test_the_config_names_where_each_value_came_from(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    config = load_config(path, options={"start": "2024-12-02", "settings": ["mode=backtest"]})
    assert config.origin_of("backtest.start_date") == "--start 2024-12-02"
    assert config.origin_of("backtest") == "--start 2024-12-02"
    assert config.origin_of("backtest.end_date") == str(path)
    assert config.origin_of("streams.symbols") == str(path)
    assert config.origin_of("mode") == "--set mode=backtest"


def test_config_error_builds_its_message_and_pickles() -> None:
    error = ConfigError("a.toml", "backtest.speed", "bad", [("--set x=1", "x", "unknown key")])
    assert str(error) == (
        "invalid configuration in a.toml:\n  backtest.speed: bad\n"
        "invalid configuration from --set x=1:\n  x: unknown key"
    )
    assert isinstance(error, ValueError)
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.problems == error.problems
    assert str(ConfigError("--speed", None, "'x' is wrong")) == "--speed: 'x' is wrong"


def test_deeply_nested_toml_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_a_config_pickles_with_its_source_and_origins(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), options={"start": "2024-12-02"})
    again = pickle.loads(pickle.dumps(config))
    assert again == config
    assert again.source == config.source and again.overrides == config.overrides


@pytest.mark.parametrize("start", ["99:99", "23:59999999999", "9:30", "10:30:00"])
def test_a_replay_start_must_be_a_time_of_day(start: str) -> None:
    data = {"mode": "live", "streams": {"symbols": ["SPY"]}, "live": {"replay_start": start}}
    with pytest.raises(ConfigError, match=r"live\.replay_start: String should match pattern"):
        config_from_dict(data)
    data["live"]["replay_start"] = "15:30"
    assert config_from_dict(data).live.replay_start == "15:30"


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            'historical[0].intervals=["5m"]',
            "  historical[0].intervals: must include the base interval '1m'",
        ),
        ("indicators[0].interval=1h", "  indicators[0].interval: '1h' ("),
    ],
)
def test_a_whole_config_check_names_its_key_and_the_option(setting: str, expected: str) -> None:
    """Checks across keys report the key they are about (not "(top level)") and blame the
    option that set it, not the file."""
    with pytest.raises(ConfigError) as info:
        load_config("demo", options={"settings": [setting]})
    message = str(info.value)
    assert message.startswith(f"invalid configuration from --set {setting}:\n{expected}")


def test_a_configuration_knows_its_folder_through_overrides_and_pickling(tmp_path: Path) -> None:
    """The folder an analysis module is looked up in (next to the file) survives what
    sweeps do to a configuration: overrides on a loaded one, a copy, a pickle to a worker."""
    from sessionkit.engine.runs.backtest import resolve_config

    path = tmp_path / "mine.toml"
    path.write_text(GOOD, encoding="utf-8")
    config = load_config(path)
    assert config.folder == tmp_path.resolve()
    swept = resolve_config(config, {"analysis.options.fast": 3})
    assert swept.folder == tmp_path.resolve() and swept.overrides
    assert pickle.loads(pickle.dumps(swept)).folder == tmp_path.resolve()
    assert config_from_dict({"streams": {"symbols": ["ACME"]}, "mode": "live"}).folder is None


def test_set_with_a_table_replaces_it_and_errors_name_the_option(tmp_path: Path) -> None:
    """``--set analysis.options={what="x"}`` makes the options exactly that table (it was
    merged into the file's, so a file option could not be dropped, and ``{}`` alone
    replaced); an error inside such a table names the ``--set`` that gave it, not
    ``overrides['analysis.options.what']``. A nested mapping given to the API still
    changes only the keys it names."""
    text = GOOD.replace(
        'entry = "sessionkit.engine.examples:SmaCross"',
        'entry = "sessionkit.engine.examples:SmaCross"\noptions = { fast = 10, slow = 30 }',
    )
    path = write(tmp_path, text)
    config = load_config(path, options={"settings": ["analysis.options={fast=5}"]})
    assert config.analysis.options == {"fast": 5}
    assert load_config(path, options={"settings": ["analysis.options={}"]}).analysis.options == {}
    merged = load_config(path, {"analysis": {"options": {"fast": 5}}})
    assert merged.analysis.options == {"fast": 5, "slow": 30}
    with pytest.raises(ConfigError) as info:
        load_config(path, options={"settings": ["historical.0={trailing_days=-1}"]})
    message = str(info.value)
    assert "from --set historical.0={trailing_days=-1}" in message, message
    assert "historical[0].trailing_days" in message and "overrides[" not in message
    with pytest.raises(ConfigError) as info:
        load_config(path, {"historical": [{"trailing_days": -1}]}, origins={"historical": "mine"})
    assert "invalid configuration in mine:" in str(info.value), str(info.value)


def test_the_exchange_group_has_one_spelling(tmp_path: Path) -> None:
    """``sessionkit db calendar --exchange us_futures`` stores ``US_FUTURES``; the same
    name in a configuration was "no trading calendar for exchange 'us_futures'"."""
    config = load_config(write(tmp_path, GOOD.replace('"NYSE"', '" us_futures "')))
    assert config.exchange_group == "US_FUTURES"
    message = error_of(tmp_path, GOOD.replace('exchange_group = "NYSE"', 'exchange_group = " "'))
    assert "exchange_group" in message and "an exchange group is needed" in message
