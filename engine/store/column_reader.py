"""A reader process: reads bars from a SQLite file while the engine streams, hands back columns.

Used by the ``session_coordinator`` thread (one :class:`ColumnReader` per running
session). Reading a session's bars in the engine's own process costs about 3 us per bar,
nearly all of it the DBAPI building a Python tuple and objects per row, and all of it
holding the GIL the streaming threads need. Here another process runs the query (the SQL
compiled once from the SQLAlchemy Core query of
:meth:`~sessionkit.engine.store.data_manager.DataManager.step_statement`) while the engine
streams the session before, and sends the result back as one byte string per column
(:mod:`array`), so the engine builds its bars from columns without per-row Python work
(:class:`~sessionkit.engine.store.data_manager.StepColumns`): measured at about 0.5 us
per bar instead of 3 (see ``tests/benchmarks/test_bench_pipeline.py -k scaling``).

The process is a plain ``python -I -S`` running this file (it imports nothing but the
standard library, so it answers its first request 45-75 ms after it is spawned, and never
re-imports the caller's ``__main__`` as :mod:`multiprocessing` would); it talks over a
socket pair with :class:`multiprocessing.connection.Connection` frames. It never outlives
its session: :meth:`ColumnReader.close` kills it (the coordinator calls it when the run
ends, fails or is stopped), and if the engine's process dies first, a thread of the reader
waiting for the socket's hang-up exits it at once, even in the middle of a query. Every
wait for a result checks for a stop. A reader that fails (it died, or the query raised)
makes the caller read in its own process instead (:class:`ReaderFailed`).

This module is run as a script in the reader process: keep its imports to the standard
library.
"""

from __future__ import annotations

import gc
import os
import queue
import select
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable
from contextlib import suppress
from multiprocessing.connection import Connection
from pathlib import Path

__all__ = ["ColumnReader", "RawColumns", "ReaderFailed", "StopWaiting"]

RawColumns = tuple[list[str], array, array, array, array, array, array, array | list]
"""What a read returns: the distinct symbols, then the columns: each row's symbol (an
index into the symbols), start (epoch seconds), open, high, low, close and volume (a
list of ``int`` and ``float`` when some volume is fractional)."""

POLL_SECONDS = 0.05
"""How often a wait for a result checks for a stop."""

CLOSE_SECONDS = 0.5
"""How long :meth:`ColumnReader.close` waits for the killed process to be reaped."""


class ReaderFailed(RuntimeError):
    """The reader could not give this result (it died, or its query raised): read in-process."""


class StopWaiting(Exception):  # noqa: N818 - a signal, not an error
    """A stop was requested while waiting for a result."""


class ColumnReader:
    """The engine's side of a reader process reading one SQLite file.

    Parameters
    ----------
    path
        The SQLite database file (opened read-only by the reader).

    Requests are answered in order; :meth:`submit` does not wait, :meth:`result` waits for
    the oldest unanswered request.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    str(Path(__file__)),
                    str(Path(path)),
                    str(theirs.fileno()),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._connection = Connection(ours.detach())
        self.started = time.monotonic()
        self.ended: float | None = None
        """When the process was closed (monotonic seconds)."""
        self.reads = 0
        """Reads answered."""
        self.read_seconds = 0.0
        """Seconds the process spent answering them (its own measure)."""
        self.pending = 0
        """Requests submitted and not yet taken with :meth:`result`."""
        self.failed: str | None = None
        """Why the reader stopped being usable (None while it is)."""

    def submit(self, sql: str, params: tuple = ()) -> None:
        """Ask for the rows of ``sql`` with ``params`` (selecting symbol, start, open,
        high, low, close, volume, in that order). Raises :class:`ReaderFailed` if the
        reader is gone."""
        if self.failed is not None:
            raise ReaderFailed(self.failed)
        try:
            self._connection.send((sql, params))
        except OSError as exc:
            self._fail(f"the reader process is gone ({exc.__class__.__name__})")
        self.pending += 1

    def result(self, stopping: Callable[[], bool]) -> RawColumns:
        """The columns of the oldest request not yet taken.

        Raises
        ------
        StopWaiting
            ``stopping()`` became true while waiting (checked every
            :data:`POLL_SECONDS`); the reader is closed.
        ReaderFailed
            The reader died or its query raised (read in-process instead).
        """
        if self.failed is not None or not self.pending:
            raise ReaderFailed(self.failed or "no request is pending")
        connection = self._connection
        try:
            while not connection.poll(POLL_SECONDS):
                if stopping():
                    self.close()
                    raise StopWaiting
            answer = connection.recv()
        except (OSError, EOFError) as exc:
            self._fail(f"the reader process is gone ({exc.__class__.__name__})")
        self.pending -= 1
        if answer[0] == "error":
            raise ReaderFailed(answer[1])
        _ok, seconds, symbols, *raw = answer
        self.reads += 1
        self.read_seconds += seconds
        columns: list = []
        for code, data in zip(_CODES, raw, strict=True):
            if isinstance(data, list):  # volumes, some fractional
                columns.append(data)
            else:
                column = array(code)
                column.frombytes(data)
                columns.append(column)
        return (symbols, *columns)  # type: ignore[return-value]

    def _fail(self, why: str) -> None:
        self.close()
        self.failed = why
        raise ReaderFailed(why)

    def close(self) -> None:
        """Kill the reader process and reap it (idempotent, never waits long)."""
        if self.failed is None:
            self.failed = "closed"
        if self.ended is None:
            self.ended = time.monotonic()
        with suppress(OSError):  # closing a closed socket
            self._connection.close()
        process = self.process
        if process.poll() is None:
            process.kill()
            with suppress(subprocess.TimeoutExpired):  # the kernel reaps it later
                process.wait(CLOSE_SECONDS)

    @property
    def idle_seconds(self) -> float:
        """Seconds the process has been (or was) running and not reading."""
        end = self.ended if self.ended is not None else time.monotonic()
        return max(0.0, end - self.started - self.read_seconds)

    @property
    def alive(self) -> bool:
        """Whether the reader process is running."""
        return self.process.poll() is None


_CODES = ("H", "q", "d", "d", "d", "d", "q")
"""array type codes of the columns after the symbols: symbol index, start, open, high,
low, close, volume. A volume column with a fractional volume (SQLite gives those as
floats, whole ones as ints) is sent as the list it is, so that both stay exact."""


def _answer(database: sqlite3.Connection, sql: str, params: tuple) -> tuple:
    started = time.perf_counter()
    rows = database.execute(sql, params).fetchall()
    if not rows:
        return ("ok", time.perf_counter() - started, [], *(b"" for _ in _CODES))
    names, starts, *prices, volumes = zip(*rows, strict=True)
    symbols = list(dict.fromkeys(names))
    index = {name: i for i, name in enumerate(symbols)}
    columns = [array("H", map(index.__getitem__, names)), array("q", starts)]
    columns += [array("d", values) for values in prices]
    data: list = [column.tobytes() for column in columns]
    try:
        data.append(array("q", volumes).tobytes())
    except TypeError:  # a fractional volume (a float)
        data.append(list(volumes))
    return ("ok", time.perf_counter() - started, symbols, *data)


def _send_all(connection: Connection, outbox: queue.SimpleQueue) -> None:  # pragma: no cover
    """The reader process's sender thread: sends the answers in order (None: stop)."""
    while (answer := outbox.get()) is not None:
        try:
            connection.send(answer)
        except OSError:
            return


def _watch_engine(fd: int) -> None:  # pragma: no cover - runs in the reader process
    """The reader process's watchdog thread: exits the process as soon as the engine's end
    of the socket is closed (the engine died, or closed it), even while a query runs; a
    wait on the socket's hang-up, never a poll loop."""
    hang_up = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)
    watcher = select.poll()
    watcher.register(fd, hang_up)
    while True:
        if any(events & hang_up for _fd, events in watcher.poll()):
            os._exit(0)


def _serve(path: str, fd: int) -> None:  # pragma: no cover - runs in the reader process
    """Answer requests in order. Answers are sent by a thread of their own: an answer is
    larger than the socket's buffer, and sending it blocks until the engine takes it, so
    sending from this loop would keep the next request (asked for ahead) waiting."""
    gc.disable()  # rows are short-lived: nothing here needs the cycle collector
    connection = Connection(fd)
    database = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    outbox: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_send_all, args=(connection, outbox), daemon=True).start()
    threading.Thread(target=_watch_engine, args=(fd,), daemon=True).start()
    while True:
        try:
            sql, params = connection.recv()
        except (EOFError, OSError):
            outbox.put(None)
            return  # the engine closed its end, or died
        try:
            answer = _answer(database, sql, params)
        except Exception as exc:  # noqa: BLE001 - reported to the engine, which reads itself
            answer = ("error", f"{exc.__class__.__name__}: {exc}")
        outbox.put(answer)


if __name__ == "__main__":  # pragma: no cover - the reader process
    _serve(sys.argv[1], int(sys.argv[2]))
