"""User-facing error types of sessionkit.

Any thread may raise these. A :class:`SessionkitError` is a user's mistake (configuration,
data, database, arguments): the command line prints its message, exits with status 2 and
shows no traceback. Every subclass is also a ``ValueError`` where the mistake is a bad value,
following exchange_calendars' typed errors: they keep their context as attributes and build
their message in ``__str__``.
"""

from __future__ import annotations

from collections.abc import Sequence


class SessionkitError(Exception):
    """A user's mistake: printed as one clear message, exit status 2."""


Problem = tuple[str, str | None, str]
"""One configuration problem: (source, key, what is wrong)."""


class ConfigError(SessionkitError, ValueError):
    """A configuration value is wrong; the message names where it came from and the key.

    Parameters
    ----------
    source
        Where the value came from: a configuration file's path, ``<config>`` for a mapping,
        or a command-line option (``--start 2030-01-01``, ``--set backtest.speed=0``).
    key
        The dotted key (``backtest.speed``, ``historical[0].trailing_days``), or None when
        the problem concerns the whole source (a missing file, a TOML syntax error).
    problem
        What is wrong. When it is None, ``source`` is taken as the whole message.
    more
        Further ``(source, key, problem)`` triples found together with this one.

    Examples
    --------
    >>> print(ConfigError("demo.toml", "backtest.speed", "must be > 0 (got 0)"))
    invalid configuration in demo.toml:
      backtest.speed: must be > 0 (got 0)
    >>> print(ConfigError("--speed", None, "'fast' is not a speed"))
    --speed: 'fast' is not a speed
    """

    def __init__(
        self,
        source: str,
        key: str | None = None,
        problem: str | None = None,
        more: Sequence[Problem] = (),
    ) -> None:
        super().__init__(source, key, problem, tuple(more))
        self.source = source
        self.key = key
        self.problem = problem
        self.more = tuple(more)

    @property
    def problems(self) -> tuple[Problem, ...]:
        """Every (source, key, problem) triple this error reports."""
        if self.problem is None:
            return ()
        return ((self.source, self.key, self.problem), *self.more)

    def __reduce__(self) -> tuple:
        return (type(self), (self.source, self.key, self.problem, self.more))

    def __str__(self) -> str:
        if self.problem is None:
            return self.source
        sections: dict[str, list[str]] = {}
        whole: list[str] = []
        for source, key, problem in self.problems:
            if key is None:
                whole.append(f"{source}: {problem}")
            else:
                line = f"  {key}: {problem}"
                lines = sections.setdefault(source, [])
                if line not in lines:
                    lines.append(line)
        parts = whole[:]
        for source, lines in sections.items():
            where = "from" if source.startswith("-") else "in"
            parts.append(f"invalid configuration {where} {source}:\n" + "\n".join(lines))
        return "\n".join(parts)


class UsageError(SessionkitError, ValueError):
    """An argument has a wrong value: a command-line option's (reported like argparse's
    errors, exit 2) or a library call's (``run_backtest(..., export="")``)."""


class SessionControlError(UsageError):
    """A :class:`~sessionkit.engine.pipeline.session.Session` was given a value it cannot
    use: a control's (``set_speed(0)``, ``step(1.5)``, ``set_clock("fast")``), the
    constructor's (``reader="bogus"``), or one this session cannot take (a speed for a live
    session). A ``ValueError`` too, so ``except ValueError`` keeps catching it.

    Parameters
    ----------
    argument
        The argument's name (``speed``, ``n``, ``clock``, ``reader``, ``first_session``).
    value
        The value given.
    problem
        The whole message: what is wrong and what is expected.

    Examples
    --------
    >>> error = SessionControlError("n", 0, "step needs a whole number n >= 1, not 0")
    >>> isinstance(error, ValueError), error.argument, error.value
    (True, 'n', 0)
    >>> print(error)
    step needs a whole number n >= 1, not 0
    """

    def __init__(self, argument: str, value: object, problem: str) -> None:
        super().__init__(argument, value, problem)
        self.argument = argument
        self.value = value
        self.problem = problem

    def __reduce__(self) -> tuple:
        return (type(self), (self.argument, self.value, self.problem))

    def __str__(self) -> str:
        return self.problem


class DatabaseError(SessionkitError):
    """The database cannot be opened, or lacks the schema or the rows that are needed."""


class DataImportError(SessionkitError, ValueError):
    """A file to import is not a usable bars file."""


class NothingImportedError(DataImportError):
    """A file to import has no valid row of bars (all rejected, or none): nothing of it was
    imported. An import of several files reports it and goes on with the others."""


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


class CalendarFillError(SessionkitError, ValueError):
    """The exchange or the date range given to ``fill_calendar`` is unusable."""
