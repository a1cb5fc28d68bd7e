"""Configuration checks found missing by QA: indicator outputs that share a name, options
an indicator does not take, loose types, repeated list items, where an error is blamed,
``--set`` values that do not parse, dates, and passwords in the options' labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sessionkit.engine.config import (
    SECRET_QUERY_KEYS,
    config_from_dict,
    load_config,
    mask_secrets,
    option_overrides,
    parse_date,
    parse_setting,
    parse_setting_values,
)
from sessionkit.engine.errors import ConfigError
from sessionkit.engine.pipeline.analysis import metric_values
from sessionkit.engine.store import db


def base(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "backtest": {"start_date": "2024-12-09", "end_date": "2024-12-10"},
        "streams": {"symbols": ["ACME", "BOLT"], "interval": "1m", "derived": ["5m"]},
        "historical": [{"apply_to": "all", "intervals": ["1m", "5m"], "trailing_days": 5}],
        "indicators": [],
    }
    data.update(changes)
    return data


def problems(data: dict[str, Any]) -> list[tuple[str | None, str]]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, source="qa.toml")
    return [(key, problem) for _source, key, problem in info.value.problems]


# -- passwords ---------------------------------------------------------------------------

SECRETS = [
    ("postgresql+psycopg://qa:WrongPW@127.0.0.1:1/qadb", "WrongPW"),
    ("postgresql+psycopg://qa@127.0.0.1:1/qadb?sslmode=disable&password=WrongPW", "WrongPW"),
    ("postgresql://qa@h/db?PassWord=WrongPW", "WrongPW"),
    ("postgresql://qa:p@ss@h/db", "p@ss"),
]


@pytest.mark.parametrize(("url", "secret"), SECRETS)
def test_the_labels_of_db_and_set_never_hold_a_password(url: str, secret: str) -> None:
    """``--db URL`` and ``--set database_url=URL`` were named in errors as typed:
    ``invalid configuration from --db postgresql+psycopg://qa:WrongPW@...``."""
    _, origins = option_overrides(db=url)
    assert secret not in origins["database_url"] and "***" in origins["database_url"]
    _, origins = option_overrides(settings=[f'database_url="{url}"'])
    assert secret not in origins["database_url"] and "***" in origins["database_url"]
    with pytest.raises(ConfigError) as info:  # a --set that does not parse
        option_overrides(settings=[f'database_url="{url}'])
    assert secret not in str(info.value) and "--set database_url=" in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse_setting_values(f"database_url=[{url}")
    assert secret not in str(info.value)


def test_mask_secrets_keeps_urls_without_a_password_and_knows_the_stores_keys() -> None:
    for text in ("postgresql://qa@host:5432/db", "sqlite:///x.sqlite", "my.sqlite", "a=b"):
        assert mask_secrets(text) == text
    assert mask_secrets("u://a:b@h/d?pwd=1&x=2") == "u://a:***@h/d?pwd=***&x=2"
    assert SECRET_QUERY_KEYS == db.SECRET_QUERY_KEYS  # config cannot import SQLAlchemy's


# -- indicators --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("indicators", "output"),
    [
        ([{"name": "bb", "kind": "bollinger"}, {"name": "bb.upper", "kind": "sma"}], "bb.upper"),
        ([{"name": "bb.lower", "kind": "sma"}, {"name": "bb", "kind": "bollinger"}], "bb.lower"),
        ([{"name": "m", "kind": "macd"}, {"name": "m.signal", "kind": "ema"}], "m.signal"),
        ([{"name": "m.hist", "kind": "rsi"}, {"name": "m", "kind": "macd"}], "m.hist"),
    ],
)
def test_an_indicator_output_has_one_name(indicators: list, output: str) -> None:
    """A bollinger ``bb`` and an sma ``bb.upper`` were accepted: the export had two
    ``bb.upper`` columns and ``ctx.indicator(..., "bb.upper")`` gave the SMA."""
    [(key, problem)] = problems(base(indicators=indicators))
    assert key == "indicators[1].name"
    assert repr(output) in problem and "indicators[0]" in problem


def test_a_repeated_indicator_name_still_says_it_repeats() -> None:
    same = [{"name": "x", "kind": "sma"}, {"name": "x", "kind": "ema"}]
    assert problems(base(indicators=same)) == [("indicators[1].name", "'x' repeats")]


@pytest.mark.parametrize(
    ("options", "key"),
    [({"fast": 30, "slow": 10}, "fast"), ({"fast": 12, "slow": 12}, "fast"), ({"slow": 5}, "slow")],
)
def test_a_macd_fast_period_is_shorter_than_its_slow(options: dict, key: str) -> None:
    [(where, problem)] = problems(base(indicators=[{"name": "m", "kind": "macd", **options}]))
    assert where == f"indicators[0].{key}" and "must be shorter than its slow period" in problem


@pytest.mark.parametrize(
    ("kind", "option", "value", "takers"),
    [
        ("sma", "std", 2.0, "only bollinger does"),
        ("sma", "fast", 5, "only macd does"),
        ("bollinger", "signal", 9, "only macd does"),
        ("macd", "period", 20, "only sma, ema, rsi, bollinger, atr do"),
        ("vwap", "period", 20, "only sma, ema, rsi, bollinger, atr do"),
    ],
)
def test_an_option_an_indicator_does_not_take_is_refused(kind, option, value, takers) -> None:
    """``std = 2.0`` or ``fast = 5`` on an sma were silently ignored."""
    indicator = {"name": "x", "kind": kind, option: value}
    [(key, problem)] = problems(base(indicators=[indicator]))
    assert key == f"indicators[0].{option}"
    assert f"a {kind} indicator takes no {option}" in problem and takers in problem


def test_a_configuration_dumped_and_validated_again_keeps_its_indicators() -> None:
    """What a sweep does to a loaded configuration: the defaults of options a kind does not
    take are not in the dump, which validates again."""
    indicators = [
        {"name": "s", "kind": "sma", "period": 5},
        {"name": "b", "kind": "bollinger", "std": 1.5},
        {"name": "m", "kind": "macd", "fast": 3, "slow": 7},
    ]
    config = config_from_dict(base(indicators=indicators))
    again = config_from_dict(config.model_dump(mode="python", exclude_none=True))
    assert again == config


# -- types and repeats -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("quality", "enable_session_quality"), "yes"),
        (("quality", "enable_session_quality"), 1),
        (("historical", 0, "trailing_days"), True),
        (("historical", 0, "trailing_days"), "5"),
        (("backtest", "speed"), True),
        (("backtest", "speed"), "60"),
        (("indicators", 0, "period"), "20"),
        (("indicators", 0, "period"), False),
        (("live", "drop_rate"), True),
    ],
)
def test_loose_types_are_refused(path: tuple, value: Any) -> None:
    data = base(indicators=[{"name": "s", "kind": "sma"}], live={}, quality={})
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    [(key, _problem)] = problems(data)
    assert key == ".".join(str(p) for p in path).replace(".0.", "[0].")


def test_an_integer_where_a_number_is_expected_is_fine() -> None:
    data = base(indicators=[{"name": "b", "kind": "bollinger", "std": 2}])
    data["backtest"]["speed"] = 60
    config = config_from_dict(data)
    assert config.backtest.speed == 60.0 and config.indicators[0].std == 2.0


@pytest.mark.parametrize(
    ("key", "value"), [("apply_to", ["ACME", "ACME"]), ("intervals", ["1m", "1m"])]
)
def test_repeated_history_items_are_refused(key: str, value: list) -> None:
    data = base()
    data["historical"][0][key] = value
    assert problems(data) == [(f"historical[0].{key}", f"{value[0]!r} repeats: list each once")]


# -- where an error is blamed ------------------------------------------------------------


def test_a_window_made_by_two_options_names_both(tmp_path: Path) -> None:
    """It named only the longer key's option (``--start``)."""
    with pytest.raises(ConfigError) as info:
        load_config(
            "demo", options={"start": "2024-12-09", "settings": ["backtest.end_date=2024-12-06"]}
        )
    assert info.value.source == "--start 2024-12-09 and --set backtest.end_date=2024-12-06"


@pytest.mark.parametrize(
    ("options", "settings", "taken"),
    [
        ({"end": "2024-12-09"}, ["backtest.end_date=2024-12-06"], "backtest.end_date"),
        ({"start": "2024-12-09"}, ["backtest={start_date=2024-12-02}"], "backtest.start_date"),
        ({"db": "x.sqlite"}, ["database_url=y.sqlite"], "database_url"),
        ({"speed": "60"}, ["backtest.clock=data-driven"], "backtest.clock"),
        ({"speed": "max"}, ["backtest.speed=5"], "backtest.speed"),
    ],
)
def test_an_option_and_a_set_of_its_key_are_refused(options, settings, taken) -> None:
    """``--end 2024-12-09 --set backtest.end_date=2024-12-06``: the --set silently won."""
    with pytest.raises(ConfigError) as info:
        option_overrides(**options, settings=settings)
    assert info.value.source == f"--set {settings[0]}"
    assert f"{taken} is set by --" in str(info.value)


# -- --set values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["[1,", "{fast=5", '"abc', "'abc", "5,", "1 2", "[1, 2]]", "-[", "+{"]
)
def test_a_set_value_that_starts_like_toml_must_parse(text: str) -> None:
    """``--set analysis.options.fast=[1,`` became the string ``'[1,'``."""
    with pytest.raises(ConfigError) as info:
        parse_setting(f"analysis.options.fast={text}")
    assert info.value.source == f"--set analysis.options.fast={text}"
    assert "is not a valid TOML value" in str(info.value)
    if text != "5,":  # (--param splits it: its empty value is refused by the sweep)
        with pytest.raises(ConfigError):
            parse_setting_values(f"analysis.options.fast=1,{text}")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5m", "5m"),
        ("15:30", "15:30"),
        ("pkg.mod:Cls", "pkg.mod:Cls"),
        ("ES=F", "ES=F"),
        ("2024-12-06-x", "2024-12-06-x"),
        ("hello world", "hello world"),
        ("5", 5),
        ('"a, b"', "a, b"),
    ],
)
def test_bare_words_are_still_strings(text: str, value: Any) -> None:
    assert parse_setting(f"k={text}") == ("k", value)


# -- dates -------------------------------------------------------------------------------


def test_a_date_with_a_time_is_told_in_iso_terms() -> None:
    """It said ``(got datetime.datetime(2024, 12, 9, 10, 0))``."""
    from datetime import datetime

    data = base()
    data["backtest"]["start_date"] = datetime(2024, 12, 9, 10, 0)
    [(key, problem)] = problems(data)
    assert key == "backtest.start_date"
    assert "datetime" not in problem and "2024-12-09T10:00:00" in problem


@pytest.mark.parametrize("text", ["20241209", "2024-1-9", "2024-12-09T10:00"])
def test_dates_are_only_yyyy_mm_dd(text: str) -> None:
    """``--start 20241209`` was taken (``date.fromisoformat`` reads the basic format)."""
    with pytest.raises(ConfigError, match="is not a date"):
        parse_date(text, "--start")
    data = base()
    data["backtest"]["start_date"] = text
    [(key, _problem)] = problems(data)
    assert key == "backtest.start_date"


# -- metrics -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("returned", "said"),
    [
        ({"x": "str", "n": 1}, "metrics() returned 'x': 'str', a str, not a number"),
        (None, "metrics() returned None"),
        ([1, 2], "metrics() returned a list"),
    ],
)
def test_metric_values_name_what_is_wrong(returned: Any, said: str) -> None:
    with pytest.raises(TypeError) as info:
        metric_values(returned)
    assert str(info.value).startswith(said)
    assert metric_values({"a": 1, "b": 2.5}) == {"a": 1.0, "b": 2.5}


SECRET_URLS = [
    "postgresql+psycopg://qa:S3cretPW@db.example:5432/runs",
    "postgresql+psycopg://qa@db.example:5432/runs?password=S3cretPW",
]


@pytest.fixture(scope="module")
def a_result():
    from sessionkit.engine.runs.backtest import run_backtest

    return run_backtest("demo", overrides={"backtest.end_date": "2024-11-25"})


@pytest.mark.parametrize("url", SECRET_URLS)
def test_a_swept_or_overridden_database_url_is_shown_without_its_password(a_result, url) -> None:
    """``--param database_url=...`` and ``--db``: the sweep's labels, table cells, progress
    lines and the run's and sweep's JSON showed the URL as given, password and all."""
    from dataclasses import replace

    from sessionkit.engine.cli.sweep import _label, _parameter
    from sessionkit.engine.config import masked, shown_setting
    from sessionkit.engine.runs.sweep import SweepOutcome, SweepRun
    from sessionkit.tui.sweep_board import _value_text

    parameters = {"database_url": url, "streams.symbols": [url]}
    result = replace(a_result, parameters=parameters)
    run = SweepRun(0, parameters, None, None)  # type: ignore[arg-type]
    shown = [
        str(result.to_dict()["parameters"]),
        str(SweepOutcome(run, result, None).to_dict()),
        _label(SweepOutcome(run, result, None)),
        str(_parameter(url)),
        _value_text(url),
        shown_setting(parameters),
        str(masked(parameters)),
    ]
    for text in shown:
        assert "S3cretPW" not in text and "***" in text, text
    assert result.parameters["database_url"] == url  # (the run's own value is kept)
