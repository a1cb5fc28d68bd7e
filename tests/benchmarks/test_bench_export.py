"""Peak memory of a long run with and without ``--export`` (written as the run goes).

Run with ``python -m pytest tests/benchmarks/test_bench_export.py --benchmark-only -s``.
A synthetic database of 20 symbols x 60 sessions (468,000 1m bars, 5m and 15m derived:
about 620,000 exported rows); each run is a separate process, so its peak RSS is its own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_bench_pipeline import _synthetic_db

SCRIPT = """
import resource, sys, time
from sessionkit.engine import run_backtest
from sessionkit.engine.config import config_from_dict
url, first, last = sys.argv[1:4]
export = sys.argv[4] if len(sys.argv) > 4 else None
config = config_from_dict({
    "database_url": url,
    "backtest": {"start_date": first, "end_date": last, "clock": "data-driven"},
    "streams": {"symbols": [f"S{i:03d}" for i in range(20)], "derived": ["5m", "15m"]},
    "indicators": [{"name": "sma_20", "kind": "sma", "period": 20, "interval": "1m"},
                   {"name": "ema_5m", "kind": "ema", "period": 10, "interval": "5m"}],
})
began = time.perf_counter()
result = run_backtest(config, export=export)
wall = time.perf_counter() - began
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{peak:.0f} {wall:.2f} {result.state} {len(result.export)}")
"""


def _run(*args: str) -> tuple[float, float]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    peak, wall, state, files = done.stdout.split()
    assert state == "completed"
    assert int(files) == (61 if len(args) > 3 else 0)
    return float(peak), float(wall)


def test_bench_export_memory(benchmark, tmp_path: Path, calendar_db_url: str) -> None:
    url, days = _synthetic_db(tmp_path / "long.sqlite", calendar_db_url, 20, 60)
    first, last = str(days[0]), str(days[-1])
    figures = {}

    def run() -> None:
        figures["without"] = _run(url, first, last)
        figures["with"] = _run(url, first, last, str(tmp_path / "out"))

    benchmark.pedantic(run, rounds=1, iterations=1)
    (peak_without, wall_without), (peak_with, wall_with) = figures["without"], figures["with"]
    rows = sum(1 for path in (tmp_path / "out").rglob("*.csv") for _ in path.open()) - 61
    print(
        f"\n20 symbols x 60 sessions, {rows:,} exported rows: peak RSS {peak_without:.0f} MB "
        f"without export ({wall_without:.1f} s), {peak_with:.0f} MB with --export "
        f"({wall_with:.1f} s): +{peak_with - peak_without:.0f} MB"
    )
    benchmark.extra_info.update(figures)
    # Kept to the end, these rows cost about 300 bytes each (~190 MB here); written as the
    # run goes, the export holds at most EXPORT_BACKLOG rows and a session's.
    assert peak_with - peak_without < 60
