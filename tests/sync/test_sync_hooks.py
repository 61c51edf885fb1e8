"""Introspection: statistics() snapshots and the kernel's instrument hooks."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import Any

import pytest
from _sync_helpers import start_thread

from plait._core import Instrument, add_instrument, current_strand, remove_instrument
from plait._sync import (
    Barrier,
    BoundedSemaphore,
    CapacityLimiter,
    Condition,
    Event,
    Lock,
    RLock,
    Semaphore,
)
from plait.testing import wait_parked


class Recorder(Instrument):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any, Any]] = []
        self._lock = threading.Lock()

    def _add(self, *event: Any) -> None:
        with self._lock:
            self.events.append(event)

    def acquired(self, strand: Any, resource: object) -> None:
        self._add("acquired", strand, resource)

    def released(self, strand: Any, resource: object) -> None:
        self._add("released", strand, resource)

    def strand_parked(self, strand: Any, on: object) -> None:
        self._add("parked", strand, on)

    def strand_unparked(self, strand: Any, on: object, outcome: str) -> None:
        self._add("unparked", strand, (on, outcome))


@pytest.fixture
def recorder() -> Any:
    rec = Recorder()
    add_instrument(rec)
    yield rec
    remove_instrument(rec)


def test_lock_reports_acquire_release_park_unpark(recorder: Recorder) -> None:
    lock = Lock()
    me = current_strand()
    with lock:
        t = start_thread(lambda: lock.acquire() and lock.release())
        wait_parked(on=lock, count=1)
    t.join(10)
    kinds = [(e[0], e[1] is me) for e in recorder.events if e[2] is lock or e[0] == "unparked"]
    assert kinds[0] == ("acquired", True)
    names = [e[0] for e in recorder.events]
    assert names.count("acquired") == 2
    assert names.count("released") == 2
    assert "parked" in names and "unparked" in names
    assert lock.statistics().owner is None


def test_owner_is_recorded_with_instruments(recorder: Recorder) -> None:
    lock = Lock()
    with lock:
        assert lock.statistics().owner is current_strand()

    async def main() -> Any:
        async with lock:
            return lock.statistics().owner

    owner = asyncio.run(main())
    assert owner is not None and owner.kind == "async"


@pytest.mark.parametrize(
    "make", [Lock, RLock, Semaphore, BoundedSemaphore, lambda: CapacityLimiter(1)]
)
def test_every_acquire_and_release_is_seen(recorder: Recorder, make: Any) -> None:
    obj = make()

    async def main() -> None:
        async with obj:
            pass

    with obj:
        pass
    asyncio.run(main())
    names = [e[0] for e in recorder.events if e[2] is obj]
    assert names == ["acquired", "released", "acquired", "released"]


def test_statistics_are_frozen_snapshots() -> None:
    objs = [
        Lock(),
        RLock(),
        Condition(),
        Semaphore(2),
        BoundedSemaphore(2),
        Event(),
        Barrier(2),
        CapacityLimiter(2),
    ]
    for obj in objs:
        stats = obj.statistics()
        assert dataclasses.is_dataclass(stats)
        field = dataclasses.fields(stats)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(stats, field, None)


def test_statistics_count_waiters_by_kind() -> None:
    rlock = RLock()
    rlock.acquire()
    rlock.acquire()
    stats = rlock.statistics()
    assert (stats.locked, stats.owner, stats.count) == (True, current_strand(), 2)
    sem = Semaphore(0)
    t = start_thread(sem.acquire)

    async def main() -> None:
        task = asyncio.create_task(sem.async_acquire())
        await asyncio.to_thread(wait_parked, on=sem, count=2)
        stats = sem.statistics()
        assert dict(stats.waiting_by_kind) == {"thread": 1, "async": 1}
        assert stats.waiting == 2 and stats.value == 0
        sem.release(2)
        await task

    asyncio.run(main())
    t.join(10)
    rlock.release()
    rlock.release()
    barrier = Barrier(2)
    t = start_thread(barrier.wait)
    wait_parked(count=1)
    assert barrier.statistics().n_waiting == 1
    assert barrier.statistics().state == "filling"
    barrier.wait()
    t.join(10)
    ev = Event()
    assert ev.statistics().is_set is False
    limiter = CapacityLimiter(3)
    limiter.acquire_on_behalf_of("a")
    assert limiter.statistics().borrowers == ("a",)
    assert limiter.statistics().borrowed_tokens == 1
    limiter.release_on_behalf_of("a")
