"""Fault injection helpers: SIGKILL a process at a chosen point, or at a random moment.

Deterministic kills: :class:`KillAtStore` stands in for a shared-memory view (``memoryview``
cast to 64-bit words, or bytes) and SIGKILLs its own process at the Nth store into any of
the views that share its counter -- so a test walks through every stage of an operation
(each store is one step a crash can interrupt). :func:`arm_store_kill` swaps such views into
attributes of objects in the child.

Random kills: :func:`kill_after` kills a process after a random delay.

Cleanliness: :func:`assert_clean` checks that no process of ours is left and that the names
a test's objects used in ``/dev/shm`` are gone (after a sweep of dead owners' names).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from typing import Any

from plait._ipc import shm
from plait._ipc.context import get_context

__all__ = [
    "KillAtStore",
    "arm_store_kill",
    "assert_clean",
    "ctx",
    "kill_after",
    "reap",
    "shm_names",
]

WAIT_S = 20.0


def ctx() -> Any:
    return get_context()


class _Counter:
    __slots__ = ("left",)

    def __init__(self, n: int) -> None:
        self.left = n


class KillAtStore:
    """A view whose Nth store (counted across every view sharing ``counter``) kills us."""

    __slots__ = ("counter", "view")

    def __init__(self, view: Any, counter: _Counter) -> None:
        self.view = view
        self.counter = counter

    def __getitem__(self, key: Any) -> Any:
        return self.view[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        c = self.counter
        c.left -= 1
        if c.left == 0:
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(10)  # (never reached: SIGKILL is not deferred)
        self.view[key] = value

    def __len__(self) -> int:
        return len(self.view)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.view, name)


def arm_store_kill(n: int, targets: list[tuple[object, str]]) -> None:
    """Make the ``n``-th store into any of ``obj.attr`` (for each pair) kill this process.

    Two attributes that hold the same view get the same stand-in.
    """
    counter = _Counter(n)
    made: dict[int, KillAtStore] = {}
    for obj, attr in targets:
        view = getattr(obj, attr)
        stand_in = made.get(id(view))
        if stand_in is None:
            stand_in = made[id(view)] = KillAtStore(view, counter)
        setattr(obj, attr, stand_in)


def kill_after(proc: Any, low: float, high: float, rng: random.Random) -> None:
    """SIGKILL ``proc`` after a random delay in ``[low, high)`` seconds."""
    time.sleep(rng.uniform(low, high))
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def reap(procs: list[Any]) -> None:
    """Wait for (and if need be kill) every process in ``procs``."""
    for p in procs:
        p.join(WAIT_S)
        if p.is_alive():
            p.kill()
            p.join(WAIT_S)


def shm_names(prefix: str) -> list[str]:
    return [n for n in os.listdir(shm.SHM_DIR) if prefix in n]


def assert_clean(prefixes: list[str], pids: list[int]) -> None:
    """No process of ``pids`` alive and no active child; no name of ``prefixes`` left in
    ``/dev/shm`` once dead owners' names are swept."""
    multiprocessing.active_children()  # reaps finished children
    for pid in pids:
        assert shm.start_ticks(pid) is None, f"process {pid} is still alive"
    shm.sweep_dead()
    for prefix in prefixes:
        assert shm_names(prefix) == [], f"left in /dev/shm: {shm_names(prefix)}"
