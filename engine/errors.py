"""User-facing error types of sessionkit.

Any thread may raise these. A :class:`SessionkitError` is a user's mistake (configuration,
data, database, arguments): the command line prints its message, exits with status 2 and
shows no traceback. Every subclass is also a ``ValueError`` where the mistake is a bad value,
following exchange_calendars' typed errors.
"""

from __future__ import annotations


class SessionkitError(Exception):
    """A user's mistake: printed as one clear message, exit status 2."""


class ConfigError(SessionkitError, ValueError):
    """A configuration file or option is wrong; the message names the file and the key."""


class DatabaseError(SessionkitError):
    """The database cannot be opened, or lacks the schema or the rows that are needed."""


class DataImportError(SessionkitError, ValueError):
    """A file to import is not a usable bars file."""


class CalendarCoverageError(SessionkitError, ValueError):
    """A date lies outside the trading calendar's coverage in the database."""

    def __init__(self, exchange: str, requested: object, first: object, last: object) -> None:
        super().__init__(exchange, requested, first, last)
        self.exchange = exchange
        self.requested = requested
        self.first = first
        self.last = last

    def __str__(self) -> str:
        if self.first is None:
            return (
                f"the database has no trading calendar for exchange {self.exchange!r}; "
                f"fill it with: sessionkit db calendar --exchange {self.exchange} "
                "--from YYYY-MM-DD --to YYYY-MM-DD"
            )
        return (
            f"{self.requested} is outside the {self.exchange} calendar's coverage "
            f"({self.first} to {self.last}) in the database"
        )


class InvalidSymbolError(SessionkitError, ValueError):
    """A symbol breaks sessionkit's symbol rule (see :func:`~sessionkit.engine.core.bar.check_symbol`).

    Parameters
    ----------
    symbol
        The offending value, as given.
    problem
        What is wrong with it, in a few words.
    """

    def __init__(self, symbol: object, problem: str) -> None:
        super().__init__(symbol, problem)
        self.symbol = symbol
        self.problem = problem

    def __str__(self) -> str:
        return (
            f"invalid symbol {self.symbol!r}: {self.problem} (a symbol has 1 to 32 letters, "
            "digits or . - _ / ^ = :, with no '..' and no leading '/', e.g. BRK.B, ES=F, "
            "^GSPC, EUR/USD)"
        )


class FeedError(SessionkitError):
    """A live feed cannot connect to, or authenticate with, its gateway."""
