"""A release in flight while another thread shares (promotes) the lock loses nothing.

Promotion swaps the lock's state from an in-process lock to a process-shared semaphore. A
release that had already read the old state when the swap happened releases the old lock;
it must then also free the semaphore, which promotion created taken on the holder's behalf.
The stand-in below performs the promotion exactly inside that window.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import plait


class _PromoteDuringRelease:
    """Wraps the real in-process lock; its release() first shares the plait lock."""

    def __init__(self, owner: Any, real: Any) -> None:
        self.owner = owner
        self.real = real

    def acquire(self, *args: Any) -> bool:
        return bool(self.real.acquire(*args))

    def locked(self) -> bool:
        return bool(self.real.locked())

    def release(self) -> None:
        pickle.dumps(self.owner)  # promotion happens here, mid-release
        self.real.release()


@pytest.mark.parametrize("kind", [plait.Lock, plait.RLock])
def test_release_racing_promotion_frees_the_shared_lock(kind: Any) -> None:
    lock = kind()
    assert lock.acquire()
    lock._inner = _PromoteDuringRelease(lock, lock._inner)
    lock.release()
    assert not lock.locked(), "the shared lock stayed taken after its only holder released"
    assert lock.acquire(timeout=5)
    lock.release()


def test_release_after_promotion_is_not_counted_twice() -> None:
    lock = plait.Lock()
    lock.acquire()
    pickle.dumps(lock)  # promoted while held: the semaphore starts taken
    lock.release()  # an ordinary release of the shared lock
    assert not lock.locked()
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        lock.release()


@pytest.mark.parametrize("kind", ["lock", "semaphore", "event"])
def test_a_wait_moved_by_promotion_keeps_its_deadline(kind: str) -> None:
    import threading
    import time

    from plait.testing import wait_parked

    if kind == "lock":
        obj: Any = plait.Lock()
        obj.acquire()
        wait = lambda: obj.acquire(timeout=1.0)  # noqa: E731
    elif kind == "semaphore":
        obj = plait.Semaphore(0)
        wait = lambda: obj.acquire(timeout=1.0)  # noqa: E731
    else:
        obj = plait.Event()
        wait = lambda: obj.wait(timeout=1.0)  # noqa: E731
    outcome: list[tuple[bool, float]] = []

    def waiter() -> None:
        t0 = time.monotonic()
        got = wait()
        outcome.append((got, time.monotonic() - t0))

    t = threading.Thread(target=waiter)
    t.start()
    wait_parked(obj, count=1)
    time.sleep(0.5)  # a real half of the timeout must pass before the move
    pickle.dumps(obj)  # promotion moves the waiter to the shared state
    t.join(10)
    (got, elapsed) = outcome[0]
    assert got is False
    assert elapsed < 1.45, f"the timeout restarted at the move: waited {elapsed:.2f} s"
