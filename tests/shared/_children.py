"""Functions that tests/shared runs in child processes (importable by name there)."""

from __future__ import annotations

import os
import signal
from typing import Any

from plait.shared import _log


def seed_f(d: Any, lst: Any, n: int) -> None:
    d[n] = n
    d["name"] = "alvin"
    lst.append(n)


def add_many(d: Any, key: Any, n: int, atomic: bool) -> None:
    for _ in range(n):
        if atomic:
            d.update_with(key, lambda v: v + 1, 0)
        else:
            with d.locked():
                d[key] += 1


def racy_increment(d: Any, key: Any, read: Any, go: Any) -> None:
    """Read d[key], say so, wait until told, then write it back plus one (a lost update
    when another strand does the same in between)."""
    v = d[key]
    read.set()
    if not go.wait(20):
        raise TimeoutError("never told to go")
    d[key] = v + 1


def set_many(d: Any, who: int, n: int) -> None:
    for j in range(n):
        d[who, j] = j


def set_item(d: Any, key: Any, value: Any) -> Any:
    d[key] = value
    return d.copy()


def read_item(d: Any, key: Any) -> Any:
    return d[key]


def killed_at(d: Any, stage: str, in_block: bool) -> None:
    """SIGKILL this process at ``stage`` of a write (the shared log's test hook)."""

    def hook(at: str) -> None:
        if at == stage:
            os.kill(os.getpid(), signal.SIGKILL)

    if in_block:
        with d.locked():
            d["a"] = "half"
            _log.crash_hook = hook
            d["b"] = "half"
    else:
        _log.crash_hook = hook
        d["a"] = "killed"


def use_manager_objects(v: Any, arr: Any, ns: Any, lock: Any, q: Any) -> None:
    with v.get_lock():
        v.value += 1
    with lock:
        arr[0] = arr[0] + 1
    ns.seen = ns.x + 1
    q.put(("done", list(arr)))


def killed_writing_big(d: Any, stage: str, size: int) -> None:
    """SIGKILL this process at ``stage`` of writing a large value (its segment made)."""

    def hook(at: str) -> None:
        if at == stage:
            os.kill(os.getpid(), signal.SIGKILL)

    _log.crash_hook = hook
    d["a"] = b"k" * size


def double_array(d: Any) -> None:
    """Read a large array, write it back doubled, and a 10 MB bytes value."""
    d["doubled"] = d["array"] * 2
    d["bytes"] = b"y" * 10_000_000


class Counter:
    """A registered type for Manager.register tests (served in the manager's process)."""

    def __init__(self, start: int = 0) -> None:
        self.n = start

    def add(self, k: int) -> int:
        self.n += k
        return self.n

    def get(self) -> int:
        return self.n

    def fail(self) -> None:
        raise ValueError("failed in the server")

    def _private(self) -> int:
        return -1


def add_through_proxy(counter: Any, k: int, times: int) -> None:
    for _ in range(times):
        counter.add(k)
