"""The blocked-loop watchdog: an event loop stuck in one callback is reported *while* it is
stuck, with the stack of the code that blocks it at that moment.

One daemon thread (a bare one: it does not show in ``threading.enumerate()``) sends each
watched loop a heartbeat with ``call_soon_threadsafe`` and notes when it ran. A heartbeat
still waiting after ``threshold`` seconds means one callback (one step of one coroutine) has
held the loop that long: the watchdog reads the loop thread's stack right then and reports
it once per blocking episode. Watched loops are the ones plait knows: loops of plait's
coroutine strands and task groups, and any passed to :meth:`Watchdog.watch`.
"""

from __future__ import annotations

import _thread
import asyncio
import sys
import time
import weakref
from typing import IO, Any

from plait._core.strands import all_strands
from plait.diagnostics import _asleep, _stacks

__all__ = ["Watchdog", "watch_loops"]


class _Beat:
    __slots__ = ("blocked_since", "reported", "sent_at")

    def __init__(self) -> None:
        self.sent_at: float | None = None  # a heartbeat is pending since then
        self.blocked_since: float | None = None
        self.reported = False


class Watchdog:
    """Watches event loops; ``stop()`` ends it. Made by :func:`watch_loops`."""

    def __init__(self, threshold: float, interval: float, file: IO[str] | None) -> None:
        self.threshold = threshold
        self.interval = interval
        self.file = file
        self.reports: list[str] = []
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Beat] = (
            weakref.WeakKeyDictionary()
        )
        self._stopped = False
        self._lock = _thread.allocate_lock()

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch ``loop`` too (plait's own loops are found by themselves)."""
        with self._lock:
            self._loops.setdefault(loop, _Beat())

    def stop(self) -> None:
        """Stop watching (the thread ends within one interval)."""
        self._stopped = True

    def _known_loops(self) -> None:
        for strand in all_strands():
            loop = strand.loop
            if loop is not None and strand.kind == "async":
                self.watch(loop)

    def _run(self) -> None:
        _asleep.note_service_thread()  # it never wakes a program's waits
        while not self._stopped:
            time.sleep(self.interval)
            try:
                self._known_loops()
                self._tick()
            except Exception:
                continue

    def _tick(self) -> None:
        now = time.monotonic()
        with self._lock:
            items = list(self._loops.items())
        for loop, beat in items:
            if loop.is_closed():
                with self._lock:
                    self._loops.pop(loop, None)
                continue
            if beat.sent_at is None:
                if loop.is_running():
                    beat.sent_at = now
                    try:
                        loop.call_soon_threadsafe(self._beat_arrived, beat)
                    except RuntimeError:  # closed meanwhile
                        beat.sent_at = None
                continue
            waited = now - beat.sent_at
            if waited >= self.threshold and not beat.reported:
                beat.reported = True
                self._report(loop, waited)

    def _beat_arrived(self, beat: _Beat) -> None:
        beat.sent_at = None
        beat.reported = False

    def _report(self, loop: asyncio.AbstractEventLoop, waited: float) -> None:
        ident = getattr(loop, "_thread_id", None)
        frame = sys._current_frames().get(ident) if isinstance(ident, int) else None
        frames = _stacks._chain(frame)
        task = asyncio.current_task(loop)  # what runs on it right now (a dict read)
        who = f"task {task.get_name()!r}" if task is not None else "a callback"
        lines = [
            f"plait watchdog: event loop {loop!r} has been blocked for {waited * 1000:.0f} ms "
            f"(threshold {self.threshold * 1000:.0f} ms) by {who}; it is now at:"
        ]
        lines.extend(f"    {_stacks.site_of(f)}" for f in frames)
        text = "\n".join(lines) + "\n"
        self.reports.append(text)
        out: Any = sys.stderr if self.file is None else self.file
        try:
            out.write(text)
            out.flush()
        except (OSError, ValueError):
            pass


def watch_loops(
    threshold: float = 0.1, *, interval: float | None = None, file: IO[str] | None = None
) -> Watchdog:
    """Start a watchdog that reports an event loop blocked for more than ``threshold``
    seconds (100 ms by default), with the blocking code's stack while it blocks, to
    ``file`` (``sys.stderr``). Returns it: ``watch(loop)`` adds a loop, ``stop()`` ends it."""
    from plait._core.parking import check_timeout

    limit = check_timeout(threshold, "threshold")
    if limit is None or limit <= 0:
        raise ValueError(f"threshold must be a positive number of seconds, not {threshold!r}")
    step = check_timeout(interval, "interval") if interval is not None else None
    dog = Watchdog(limit, step if step else min(limit / 4, 0.05), file)
    _thread.start_new_thread(dog._run, ())
    return dog
