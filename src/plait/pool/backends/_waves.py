"""Finding a cluster's finished tasks in waves, not one by one (the Dask and Ray engines).

A done-callback per engine task costs the engine about as much as a tiny task itself: Dask
runs each callback in a coroutine of its own and then on a thread pool, Ray's
``ObjectRef.future()`` makes a future and a callback per task. One watcher thread per pool
looks at the oldest tasks in flight instead, in waves: while results come, about every
:data:`WAVE_GATHER_S`; after a wave that found none, as soon as the oldest one ends (or
after :data:`WAVE_IDLE_S`); and it hands every task that finished to the result thread in
one go. How one wave waits is the engine's (its ``wave`` function).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from itertools import islice
from typing import Any

from plait.pool._tasks import Task

__all__ = ["WAVE_GATHER_S", "WAVE_IDLE_S", "WAVE_TASKS", "Wave", "WaveWatcher"]

log = logging.getLogger("plait.pool")

WAVE_TASKS = 256  # the oldest tasks in flight that one wave looks at, at most
WAVE_GATHER_S = 0.01  # a wave waits this long for all of them, and takes what finished
WAVE_IDLE_S = 0.05  # after a wave that found none: it waits for the first, this long at most

# ``wave(handles, idle)``: wait (up to WAVE_IDLE_S for the first of ``handles`` when
# ``idle``, else up to WAVE_GATHER_S for all of them) and return those that finished.
Wave = Callable[[list[Any], bool], list[Any]]


class WaveWatcher:
    """The watcher thread of one pool: engine handles in, finished tasks out."""

    def __init__(self, name: str, wave: Wave, found: Callable[[list[Task]], None]) -> None:
        self.wave = wave
        self.found = found
        self.cond = threading.Condition()
        self.watching: dict[Any, Task] = {}  # engine handle -> its task, oldest first
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def add(self, tasks: list[Task]) -> None:
        """Watch ``tasks`` (just submitted: each one's ``worker`` is its engine handle)."""
        with self.cond:
            for task in tasks:
                self.watching[task.worker] = task
            self.cond.notify()

    def stop(self, timeout: float = 5.0) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
        thread = self.thread
        if thread.ident is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        idle = False
        while True:
            with self.cond:
                while not self.watching and not self.stopping:
                    self.cond.wait()
                if self.stopping:
                    return
                handles = list(islice(self.watching, WAVE_TASKS))
            try:
                ready = self.wave(handles, idle)
            except Exception:  # the watcher must outlive any error: log it, go on
                log.exception("plait.Pool: a wave of the %s failed", self.thread.name)
                time.sleep(WAVE_IDLE_S)
                continue
            idle = not ready
            if ready:
                with self.cond:
                    pop = self.watching.pop
                    tasks = [task for task in (pop(h, None) for h in ready) if task is not None]
                self.found(tasks)
