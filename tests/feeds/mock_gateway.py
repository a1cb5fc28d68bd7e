"""A mock of Databento's live subscription gateway (LSG) on 127.0.0.1, for offline tests.

It speaks the real protocol to the real ``databento.Live`` client: greeting
(``lsg_version``), CRAM challenge (``cram``), checks the client's ``auth`` (SHA-256 of
``challenge|key`` plus the key's last five characters, as ``databento.common.cram``
computes it), answers ``success=1|session_id=...``, reads the subscription requests until
``start_session``, then plays a DBN file (written with ``databento_dbn``, read with
``databento.DBNStore``): the metadata, one symbol mapping per subscribed symbol (from the
file's symbology), and the file's records (then, with ``replay_completed``, the system
message a real gateway sends once an intraday replay caught up with real time). Then it
keeps the connection open until the client closes it, or drops it after ``drop_after``
records to test a lost connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

import databento
import databento_dbn as dbn

CHALLENGE = "mock-challenge-7"


def parse_line(line: bytes) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in line.decode().strip().split("|"))


@dataclass
class MockGateway:
    """Play the DBN file ``path`` to a client presenting ``key``."""

    key: str
    path: Path
    drop_after: int | None = None
    replay_completed: bool = False
    auth: dict[str, str] = field(default_factory=dict)
    subscriptions: list[dict[str, str]] = field(default_factory=list)
    sent: int = 0
    closed_by_client: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mock-gateway", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"lsg_version=0.0.0-mock\n" + f"cram={CHALLENGE}\n".encode())
        self.auth = parse_line(await reader.readline())
        digest = hashlib.sha256(f"{CHALLENGE}|{self.key}".encode()).hexdigest()
        if self.auth.get("auth") != f"{digest}-{self.key[-5:]}":
            writer.write(b"success=0|error=Authentication failed.\n")
            await writer.drain()
            writer.close()
            return
        writer.write(b"success=1|session_id=mock-session-1\n")
        while (line := await reader.readline()) and not line.startswith(b"start_session"):
            self.subscriptions.append(parse_line(line))
        writer.write(self._dbn())
        await writer.drain()
        if self.drop_after is not None:
            writer.transport.abort()  # the connection is lost mid-session
            return
        await reader.read()  # until the client closes the connection
        self.closed_by_client.set()
        writer.close()

    def _dbn(self) -> bytes:
        store = databento.DBNStore.from_file(self.path)
        records: list = []
        store.replay(records.append)
        subscription = self.subscriptions[0]
        symbols = subscription["symbols"].split(",")
        start = store.metadata.start
        data = bytes(
            dbn.Metadata(
                dataset=self.auth["dataset"],
                start=start,
                stype_in=dbn.SType.RAW_SYMBOL,
                stype_out=dbn.SType.INSTRUMENT_ID,
                schema=dbn.Schema.from_str(subscription["schema"]),
                symbols=symbols,
            )
        )
        for symbol, intervals in store.mappings.items():
            if symbol in symbols:
                iid = int(intervals[0]["symbol"])
                data += bytes(
                    dbn.SymbolMappingMsg(
                        1, iid, start, dbn.SType.RAW_SYMBOL, symbol, dbn.SType.RAW_SYMBOL,
                        symbol, start, start + 86_400 * 10**9,
                    )
                )  # fmt: skip
        if self.drop_after is not None:
            records = records[: self.drop_after]
        for record in records:
            data += bytes(record)
            self.sent += 1
        if self.replay_completed:
            last = records[-1].ts_event if records else start
            message = f"Finished {subscription['schema']} replay"
            data += bytes(dbn.SystemMsg(last, message, code=dbn.SystemCode.REPLAY_COMPLETED))
        return data

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
