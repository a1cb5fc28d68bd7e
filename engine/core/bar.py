"""The bar record and interval helpers, shared by every thread.

A :class:`Bar` is immutable, so any thread may hold and read one without locks. Bars are
stamped with their *start* time (timezone-aware, UTC in the engine) and become visible at
their end time, ``bar.start + interval`` unless the session's close or break cuts them
(:func:`sessionkit.engine.core.windows.bar_end`, the one statement of that rule).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Literal, NamedTuple, get_args

from ..errors import InvalidSymbolError

Interval = Literal["1m", "5m", "15m", "30m", "1h"]
"""The bar intervals sessionkit knows."""

INTERVALS: tuple[str, ...] = get_args(Interval)

INTERVAL_SECONDS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600}
"""Length of each interval in seconds."""


def interval_delta(interval: str) -> timedelta:
    """Return the length of ``interval`` as a timedelta.

    Raises
    ------
    ValueError
        If ``interval`` is not one of :data:`INTERVALS`.
    """
    try:
        return timedelta(seconds=INTERVAL_SECONDS[interval])
    except KeyError:
        raise ValueError(f"unknown interval {interval!r} (known: {', '.join(INTERVALS)})") from None


SYMBOL_MAX_LENGTH = 32
"""The longest symbol (the ``symbols`` and ``bars`` tables store 32 characters)."""

_SYMBOL_CHARS = re.compile(r"[A-Za-z0-9._/^=:-]+")


def check_symbol(symbol: object) -> str:
    """Return ``symbol`` if it obeys the symbol rule, else raise.

    The one rule for every symbol, wherever it comes from (an import, a configuration, a
    feed): 1 to :data:`SYMBOL_MAX_LENGTH` characters, each an ASCII letter, a digit or one
    of ``. - _ / ^ = :`` (real tickers: ``BRK.B``, ``BRK/B``, ``ES=F``, ``^GSPC``,
    ``EUR/USD``, ``BTC-USD``); no ``..`` and no leading ``/``. A symbol never chooses
    where a file goes: paths are built with :func:`symbol_file_name`.

    Raises
    ------
    InvalidSymbolError
        Naming the symbol and what is wrong with it.
    """
    if not isinstance(symbol, str):
        raise InvalidSymbolError(symbol, "not a string")
    if not symbol:
        raise InvalidSymbolError(symbol, "empty")
    if len(symbol) > SYMBOL_MAX_LENGTH:
        raise InvalidSymbolError(symbol, f"{len(symbol)} characters, at most {SYMBOL_MAX_LENGTH}")
    if not _SYMBOL_CHARS.fullmatch(symbol):
        bad = sorted({c for c in symbol if not _SYMBOL_CHARS.fullmatch(c)})
        raise InvalidSymbolError(symbol, f"characters not allowed: {''.join(bad)!r}")
    if ".." in symbol:
        raise InvalidSymbolError(symbol, "contains '..'")
    if symbol.startswith("/"):
        raise InvalidSymbolError(symbol, "starts with '/'")
    return symbol


def symbol_file_name(symbol: str) -> str:
    """A file or folder name for ``symbol`` that stays inside its folder and is unique.

    Letters, digits, ``-`` and ``_`` are kept; every other allowed character becomes
    ``%`` and its two hex digits (``BRK/B`` -> ``BRK%2FB``, ``BRK.B`` -> ``BRK%2EB``), so
    the name never contains a separator or starts with a dot, and two symbols never share
    a name (``%`` is not allowed in symbols, so the encoding is reversible).

    Raises
    ------
    InvalidSymbolError
        If ``symbol`` breaks :func:`check_symbol`'s rule.
    """
    check_symbol(symbol)
    return "".join(c if c.isalnum() or c in "-_" else f"%{ord(c):02X}" for c in symbol)


class Bar(NamedTuple):
    """One OHLCV bar, stamped with its start time.

    A NamedTuple: immutable, compact (about 290 bytes with its objects) and fast to build.
    """

    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    """An ``int`` when whole (shares, contracts), a ``float`` when fractional (crypto, FX)."""


Step = tuple[datetime, tuple[tuple[str, Bar], ...]]
"""One simulated instant: its time and the ``(symbol, bar)`` pairs that become visible then."""
