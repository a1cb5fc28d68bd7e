"""DataManager.instants: one shared datetime per epoch, and a cache that another thread's
call may renew at any moment (QA: it was cleared in place, so a call in progress on
another thread could find its own entries gone: a KeyError)."""

from __future__ import annotations

from datetime import UTC, datetime

from sessionkit.engine.store.data_manager import DataManager
from sqlalchemy import create_engine


def test_instants_share_one_datetime_per_epoch() -> None:
    manager = DataManager(create_engine("sqlite://"))
    first = manager.instants([60, 120, 60])
    assert first == [datetime.fromtimestamp(t, UTC) for t in (60, 120, 60)]
    assert first[0] is first[2] is manager.instants(iter([60]))[0]
    bar = next(manager.bars_of([120], [[1.0], [2.0], [0.5], [1.5], [7]]))
    assert bar.start is first[1]


def test_a_call_that_renews_the_cache_leaves_one_in_progress_whole() -> None:
    manager = DataManager(create_engine("sqlite://"))

    class Interleaved(dict):
        """The cache of a call in progress, in which another call (as from another
        thread) runs at the first lookup, once the cache is full."""

        armed = True

        def __getitem__(self, key):
            if Interleaved.armed:
                Interleaved.armed = False
                assert manager.instants([3600]) == [datetime.fromtimestamp(3600, UTC)]
            return dict.__getitem__(self, key)

    full = Interleaved(dict.fromkeys(range(-500_000, 0)))  # full once this call adds
    manager._times = full
    assert manager.instants([60, 120]) == [
        datetime.fromtimestamp(60, UTC),
        datetime.fromtimestamp(120, UTC),
    ]
    assert not Interleaved.armed and manager._times is not full
