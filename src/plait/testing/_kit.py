"""Helpers that read the strand registry to know when every strand is parked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from plait._core import Strand, all_strands, check_timeout, current_strand, new_mutex, sleep
from plait._core.parking import WaitQueue, async_park, park

__all__ = ["Sequencer", "async_wait_parked", "parked_on", "wait_parked"]

_POLL = 0.0005


def _blocked(s: Strand) -> bool:
    """Parked in a plait wait, or a coroutine suspended on any future (asyncio.sleep...)."""
    if s.state == "parked":
        return True
    task = s.task
    return (
        s.kind == "async"
        and task is not None
        and not task.done()
        and getattr(task, "_fut_waiter", None) is not None
    )


def parked_on(obj: object) -> list[Strand]:
    """The live strands parked on ``obj`` right now."""
    return [s for s in all_strands() if s.state == "parked" and s.parked_on is obj]


def _condition(on: object | None, count: int | None, strands: list[Strand] | None) -> bool:
    if strands is not None:
        return all(s.state == "done" or _blocked(s) for s in strands)
    me = current_strand()
    parked = [
        s
        for s in all_strands()
        # plait's own service threads (plait-loop, plait-doorbell, plait-pool-...) may
        # park too; they are never the strands a test is waiting for.
        if s is not me and _blocked(s) and (on is not None or not s.name.startswith("plait-"))
    ]
    if on is not None:
        parked = [s for s in parked if getattr(s, "parked_on", None) is on]
    if count is None:
        return bool(parked)
    return len(parked) >= count


def _check(count: int | None, timeout: float) -> float:
    """The arguments of wait_parked: a count >= 1 (or None) and a finite timeout >= 0."""
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"count must be an int >= 1 or None, not {count!r}")
    wait = check_timeout(timeout)
    if wait is None:
        raise ValueError("wait_parked needs a finite timeout, so that a test fails, never hangs")
    return wait


def _describe(on: object | None, count: int | None) -> str:
    target = f"on {on!r}" if on is not None else "anywhere"
    return f"{count if count is not None else 'some'} strand(s) parked {target}"


def wait_parked(
    on: object | None = None,
    *,
    count: int | None = None,
    strands: list[Strand] | None = None,
    timeout: float = 10.0,
) -> None:
    """Block until ``count`` strands are parked on ``on`` (or the given ``strands`` are).

    Without ``on``, a coroutine strand suspended on any future counts as parked too.

    Raises :class:`TimeoutError` after ``timeout`` seconds, describing what it waited for,
    so a test that goes wrong fails instead of hanging.
    """
    deadline = time.monotonic() + _check(count, timeout)
    while not _condition(on, count, strands):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout}s waiting for {_describe(on, count)}")
        sleep(_POLL)  # (plait.sleep: a green caller lets its loop run meanwhile)


async def async_wait_parked(
    on: object | None = None,
    *,
    count: int | None = None,
    strands: list[Strand] | None = None,
    timeout: float = 10.0,
) -> None:
    """Coroutine form of :func:`wait_parked`; lets the loop run while it waits."""
    deadline = time.monotonic() + _check(count, timeout)
    await asyncio.sleep(0)
    while not _condition(on, count, strands):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout}s waiting for {_describe(on, count)}")
        await asyncio.sleep(_POLL)


class Sequencer:
    """Run numbered steps of several strands in order: ``with seq(0): ...`` then ``seq(1)``.

    Works from threads and coroutines (``async with seq.async_step(1)``).
    """

    def __init__(self) -> None:
        self._mutex = new_mutex()
        self._queue = WaitQueue(self._mutex)
        self._next = 0

    def _ready(self, n: int) -> Callable[[], bool]:
        return lambda: self._next == n

    def __call__(self, n: int) -> _Step:
        return _Step(self, n)

    def _advance(self) -> None:
        with self._mutex:
            self._next += 1
            woken = self._queue.pop_all()
        for w in woken:
            w.wake()

    def _wait(self, n: int) -> None:
        while True:
            with self._mutex:
                if self._next == n:
                    return
                waiter = self._queue.enqueue_current(self, n)
            park(waiter, None)

    async def _async_wait(self, n: int) -> None:
        while True:
            with self._mutex:
                if self._next == n:
                    return
                waiter = self._queue.async_enqueue_current(self, n)
            await async_park(waiter, None)


class _Step:
    def __init__(self, seq: Sequencer, n: int) -> None:
        self._seq = seq
        self._n = n

    def __enter__(self) -> None:
        self._seq._wait(self._n)

    def __exit__(self, *exc: object) -> None:
        self._seq._advance()

    async def __aenter__(self) -> None:
        await self._seq._async_wait(self._n)

    async def __aexit__(self, *exc: object) -> None:
        self._seq._advance()
