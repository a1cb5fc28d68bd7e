"""The CSV export (QA): no temporary file outlives an exception, an interrupt included,
and the files get the mode any new file gets (0o666 less the umask), not mkstemp's 0o600.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sessionkit.engine.core.bar import Bar
from sessionkit.engine.store.export import ExportWriter, write_csv_export

T0 = datetime(2024, 12, 2, 14, 30, tzinfo=UTC)
STREAMS = [("ACME", "1m"), ("BOLT", "1m")]


def bar_end(start: datetime, delta: timedelta) -> datetime:
    return start + delta


def bars(n: int = 5) -> list[tuple[Bar, tuple]]:
    return [
        (Bar(T0 + timedelta(minutes=i), 10.0, 11.0, 9.0, 10.5, 100 + i), (float(i),))
        for i in range(n)
    ]


def quality(n: int = 5) -> list[tuple[datetime, float]]:
    return [(T0 + timedelta(minutes=i + 1), 100.0) for i in range(n)]


def writer(folder: Path, **options) -> ExportWriter:
    return ExportWriter(
        folder,
        {key: deque(bars()) for key in STREAMS},
        dict.fromkeys(STREAMS, ("sma",)),
        {symbol: deque(quality()) for symbol, _interval in STREAMS},
        UTC,
        bar_end,
        **options,
    )


def signals() -> list[SimpleNamespace]:
    return [SimpleNamespace(sim_time=T0, symbol="ACME", kind="buy", price=10.5, message="x")]


def files_in(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


class Interrupting:
    """A sequence of signals whose iteration is interrupted (Ctrl-C while ``signals.csv``
    is written)."""

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[SimpleNamespace]:
        yield signals()[0]
        raise KeyboardInterrupt


def test_an_interrupt_while_the_export_is_finished_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "export"
    export = writer(out)
    with pytest.raises(KeyboardInterrupt):
        export.finish(Interrupting())
    assert files_in(out) == []  # no .tmp file, and no file renamed before the interrupt
    assert not out.exists()  # the folders it made are gone too (they are empty)


def test_an_interrupt_while_rows_are_written_leaves_no_temporary_file(tmp_path: Path) -> None:
    out = tmp_path / "export"
    calls = 0

    def interrupted_end(start: datetime, delta: timedelta) -> datetime:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise KeyboardInterrupt
        return start + delta

    export = writer(out)
    export.bar_end = interrupted_end
    with pytest.raises(KeyboardInterrupt):
        export.drain(final=True)
    assert files_in(out) == []


def test_an_interrupt_while_the_files_are_created_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    class Names(dict):
        def __getitem__(self, key: object) -> tuple[str, ...]:
            if key == STREAMS[1]:
                raise KeyboardInterrupt
            return ("sma",)

    out = tmp_path / "export"
    with pytest.raises(KeyboardInterrupt):
        ExportWriter(
            out,
            {key: deque(bars()) for key in STREAMS},
            Names(),
            {symbol: deque(quality()) for symbol, _interval in STREAMS},
            UTC,
            bar_end,
        )
    assert files_in(out) == []


def test_a_finished_export_is_complete(tmp_path: Path) -> None:
    out = tmp_path / "export"
    written = writer(out).finish(signals())
    assert sorted(str(p.relative_to(out)) for p in written) == [
        "ACME/1m.csv",
        "BOLT/1m.csv",
        "signals.csv",
    ]
    assert files_in(out) == ["ACME/1m.csv", "BOLT/1m.csv", "signals.csv"]
    lines = (out / "ACME" / "1m.csv").read_text().splitlines()
    assert lines[0] == "start,end,open,high,low,close,volume,quality,sma"
    assert len(lines) == 6


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_written_as_the_run_goes_get_the_usual_mode(tmp_path: Path, umask_022) -> None:
    out = tmp_path / "export"
    writer(out).finish(signals())
    for name in files_in(out):
        assert mode_of(out / name) == 0o644, name


def test_files_written_after_the_run_get_the_usual_mode(tmp_path: Path, umask_022) -> None:
    out = tmp_path / "export"
    write_csv_export(
        out,
        {key: bars() for key in STREAMS},
        dict.fromkeys(STREAMS, ("sma",)),
        {symbol: quality() for symbol, _interval in STREAMS},
        UTC,
        bar_end,
        signals=signals(),
    )
    assert files_in(out) == ["ACME/1m.csv", "BOLT/1m.csv", "signals.csv"]
    for name in files_in(out):
        assert mode_of(out / name) == 0o644, name


def test_the_mode_follows_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        out = tmp_path / "export"
        writer(out).finish(signals())
    finally:
        os.umask(previous)
    for name in files_in(out):
        assert mode_of(out / name) == 0o600, name
