"""The databento feed while it connects (QA): a signal, a gateway that sends garbage or
closes the connection, an empty key variable.

The fake gateways below accept the connection and then misbehave. No test depends on how
fast the machine is: each waits for the gateway to have seen the client before acting; the
timeouts only guard against hangs (the client's own authentication timeout is 30 s: a test
that took that long would show that a misbehaving gateway was not noticed at once).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sessionkit.engine.config import config_from_dict
from sessionkit.engine.errors import ConfigError, FeedError
from sessionkit.engine.pipeline.session import Session
from test_databento_feed import KEY, config, db_url, key  # noqa: F401 (fixtures)

HANG_BOUND = 60.0  # seconds: only a hang takes this long
COMMAND = [sys.executable, "-m", "sessionkit.engine.cli"]


class FakeGateway:
    """A gateway on 127.0.0.1 that accepts connections and then, by ``mode``:

    - ``silent``: says nothing (the client waits for its greeting);
    - ``garbage``: sends lines that are not gateway messages;
    - ``close``: closes the connection at once;
    - ``garbage-after-auth``: greets, authenticates any client, reads its subscription
      up to ``start_session``, then sends bytes that are not DBN data.

    ``accepted`` is set once a client connected; ``client_closed`` once a client closed
    (or aborted) its connection.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.accepted = threading.Event()
        self.client_closed = threading.Event()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(HANG_BOUND)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.set()
        try:
            if self.mode == "close":
                writer.close()
                return
            if self.mode == "garbage":
                writer.write(b"hello garbage\n\x00\xff" * 3)
            elif self.mode == "garbage-after-auth":
                writer.write(b"lsg_version=0.0.0-fake\ncram=fake-challenge\n")
                await reader.readline()  # the client's authentication request
                writer.write(b"success=1|session_id=fake-1\n")
                while (line := await reader.readline()) and not line.startswith(b"start_session"):
                    pass
                writer.write(b"this is not DBN data\n" * 4)
            await writer.drain()
            await reader.read()  # until the client closes the connection
        except (ConnectionError, OSError):
            pass
        self.client_closed.set()
        writer.close()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@pytest.fixture
def fakes():
    made: list[FakeGateway] = []

    def make(mode: str) -> FakeGateway:
        gateway = FakeGateway(mode)
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        gateway.close()


def connecting_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "databento_connect"]


class Stop(Exception):
    """What the test's signal handler raises, as the commands' handlers raise
    ``Terminated`` (an ``Exception``) for SIGTERM and SIGHUP."""


def test_a_signal_while_connecting_leaves_as_it_came(db_url, key, fakes) -> None:  # noqa: F811
    """The signal handler's exception, raised in the thread building the feed while it
    waits for a gateway that never answers, is not turned into a feed error ("... cannot
    start a live session ...: 15"); the connection attempt is abandoned (closed, its
    thread ended)."""
    gateway = fakes("silent")

    def handler(_signum, _frame):
        raise Stop

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        threading.Thread(
            target=lambda: (
                gateway.accepted.wait(HANG_BOUND) and os.kill(os.getpid(), signal.SIGUSR1)
            ),
            daemon=True,
        ).start()
        with pytest.raises(Stop):
            Session(config_from_dict(config(db_url, gateway.port)))
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert gateway.client_closed.wait(HANG_BOUND)  # the half-made connection is closed
    for thread in connecting_threads():
        thread.join(HANG_BOUND)
    assert connecting_threads() == []


def test_garbage_from_the_gateway_fails_at_once_without_a_traceback(
    db_url,  # noqa: F811
    key,  # noqa: F811
    fakes,
    capfd,
    caplog,
) -> None:
    gateway = fakes("garbage")
    with pytest.raises(FeedError) as info:
        Session(config_from_dict(config(db_url, gateway.port)))
    message = str(info.value)
    assert f"127.0.0.1:{gateway.port} sent something that is not a Databento gateway" in message
    assert "'hello garbage' is not a parseable gateway message" in message
    assert "timed out" not in message
    assert KEY not in message
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Fatal error" not in err, err
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.records


def test_a_gateway_closing_the_connection_fails_at_once(db_url, key, fakes) -> None:  # noqa: F811
    gateway = fakes("close")
    with pytest.raises(FeedError) as info:
        Session(config_from_dict(config(db_url, gateway.port)))
    message = str(info.value)
    assert (
        f"127.0.0.1:{gateway.port} closed the connection before authenticating the client"
        in message
    )
    assert "timed out" not in message


def test_bad_data_after_the_authentication_is_a_lost_connection_not_a_traceback(
    db_url,  # noqa: F811
    key,  # noqa: F811
    fakes,
    capfd,
    caplog,
) -> None:
    gateway = fakes("garbage-after-auth")
    session = Session(config_from_dict(config(db_url, gateway.port)))
    session.start()
    try:
        assert session.wait(HANG_BOUND), "the live session did not end"
    finally:
        assert session.stop()
    snap = session.snapshot()
    assert snap.state == "completed", snap.error
    lost = [e for e in snap.events if "lost after 0 bar(s)" in e.message]
    assert len(lost) == 1 and lost[0].level == "warning", snap.events
    assert "the gateway sent data that could not be decoded" in lost[0].message
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Fatal error" not in err, err
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.records


def test_an_empty_key_variable_is_said_to_be_empty(db_url, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("SK_TEST_DATABENTO_KEY", "")
    with pytest.raises(ConfigError, match="SK_TEST_DATABENTO_KEY .* is empty"):
        Session(config_from_dict(config(db_url, 1)))
    monkeypatch.setenv("SK_TEST_DATABENTO_KEY", "   ")
    with pytest.raises(ConfigError, match="SK_TEST_DATABENTO_KEY .* is empty"):
        Session(config_from_dict(config(db_url, 1)))
    monkeypatch.delenv("SK_TEST_DATABENTO_KEY")
    with pytest.raises(ConfigError, match="SK_TEST_DATABENTO_KEY .* is not set"):
        Session(config_from_dict(config(db_url, 1)))


def write_config(tmp_path: Path, db_url: str, port: int) -> Path:  # noqa: F811
    path = tmp_path / "live.toml"
    path.write_text(
        f"""mode = "live"
database_url = "{db_url}"

[streams]
symbols = ["AAPL", "BRK.B"]

[live]
feed = "databento"
dataset = "XNAS.ITCH"
key_env = "SK_TEST_DATABENTO_KEY"
gateway = "127.0.0.1"
port = {port}
session_date = 2024-01-02
"""
    )
    return path


def command(tmp_path: Path, db_url: str, port: int, *options: str) -> subprocess.Popen:  # noqa: F811
    env = {**os.environ, "SK_TEST_DATABENTO_KEY": KEY}
    return subprocess.Popen(
        [*COMMAND, "run", str(write_config(tmp_path, db_url, port)), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize(
    ("signum", "status", "said"),
    [
        (signal.SIGTERM, 143, "terminated"),
        (signal.SIGHUP, 129, "hung up"),
        (signal.SIGINT, 130, ""),
    ],
)
def test_sessionkit_run_stopped_while_connecting(
    tmp_path,
    db_url,  # noqa: F811
    fakes,
    signum,
    status,
    said,
) -> None:
    """``kill``, a closed terminal or Ctrl-C while the feed waits for a silent gateway:
    the signal's status, never a feed error (exit 2, "... cannot start a live session
    ...: 15")."""
    gateway = fakes("silent")
    process = command(tmp_path, db_url, gateway.port, "--json")
    try:
        assert gateway.accepted.wait(HANG_BOUND)
        process.send_signal(signum)
        out, err = process.communicate(timeout=HANG_BOUND)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == status, err
    assert "error" not in err and "databento feed" not in err and "Traceback" not in err, err
    assert said in err, err


@pytest.mark.parametrize(
    ("mode", "what"),
    [
        ("garbage", "sent something that is not a Databento gateway message"),
        ("close", "closed the connection before authenticating the client"),
    ],
)
def test_sessionkit_run_with_a_misbehaving_gateway_is_one_message(
    tmp_path,
    db_url,  # noqa: F811
    fakes,
    mode,
    what,
) -> None:
    gateway = fakes(mode)
    process = command(tmp_path, db_url, gateway.port)
    try:
        out, err = process.communicate(timeout=HANG_BOUND)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(
        f"sessionkit: error: databento feed: cannot start a live session with "
        f"127.0.0.1:{gateway.port} (dataset XNAS.ITCH): 127.0.0.1:{gateway.port} {what}"
    ), err
