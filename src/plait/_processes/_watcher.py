"""One thread watches every plait child process: its result pipe and its exit.

::

    parent                                              child
    ------                                              -----
    Process.start() --pickles--> fork server --forks--> _bootstrap: lifeline, run()
         |                                                   |
         |  watch(popen, reader)                             | result (or error) pickled
         v                                                   v
    watcher thread: wait([self-pipe, readers..., sentinels...])
         |  reader ready   -> read what the pipe holds, never blocking (a large result
         |                    never stalls the child on a full pipe, whether or not
         |                    anyone joins; a stalled child never stalls the others)
         |  sentinel ready -> reap the exit code (the watcher is the only reaper)
         |  kill deadline  -> SIGKILL a child that outlived its grace after SIGTERM
         v
    both in: publish the exit code (join/is_alive see it), then run ``on_done(outcome)``

Other owners of child processes (the pool's workers) do not hand their children over:
they ask to be told when one ends (:meth:`Watcher.on_exit`: a sentinel and a quick
callback, fired once), so a plait program has this one thread watching child processes.
The owner reaps its own child; it calls :meth:`~Watcher.forget` on the sentinel before closing it.

The result pipe carries one message: an 8-byte length, a tag byte (ok / error) and a
pickle. ``on_done`` runs on the watcher thread: it must be quick (set a future, wake a strand).

Why one watcher and not ``join()`` in the caller: a thread per process costs a thread per
process, and reading the exit code of a fork-server child is a read from a socket that two
threads must never race on (the loser sees end-of-file and records exit code 255). So the
watcher is the only one that reaps; :class:`WatchedPopen` answers ``poll``/``wait`` from what
the watcher recorded.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from plait._processes._popen import WatchedPopen
from plait._processes._result import Outcome, ResultReader, decode

__all__ = ["ExitWatch", "Watcher", "get_watcher"]


class ExitWatch:
    """One :meth:`Watcher.on_exit` registration: ``callback`` runs once, on the watcher
    thread, when ``sentinel`` becomes ready (the child exited)."""

    __slots__ = ("callback", "sentinel")

    def __init__(self, sentinel: int, callback: Callable[[], None]) -> None:
        self.sentinel = sentinel
        self.callback = callback


class _Entry:
    __slots__ = ("code", "describe", "kill_at", "on_done", "outcome", "popen", "reader")

    def __init__(
        self,
        popen: WatchedPopen,
        reader: ResultReader,
        describe: str,
        on_done: Callable[[Outcome], None],
    ) -> None:
        self.popen = popen
        self.reader: ResultReader | None = reader
        self.describe = describe
        self.on_done = on_done
        self.outcome: Outcome = None
        self.code: int | None = None
        self.kill_at: float | None = None


class Watcher:
    """The watcher thread and the calls it watches (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}  # by sentinel fd
        self._exits: dict[int, ExitWatch] = {}  # on_exit registrations, by sentinel fd
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="plait-process-watcher", daemon=True)
        self._thread.start()

    def watch(
        self,
        popen: WatchedPopen,
        reader: Connection,
        describe: str,
        on_done: Callable[[Outcome], None],
    ) -> None:
        """Watch a started child; ``on_done`` runs on the watcher thread when it is over."""
        entry = _Entry(popen, ResultReader(reader), describe, on_done)
        with self._lock:
            self._entries[popen.sentinel] = entry
        self._wake()

    def on_exit(self, sentinel: int, callback: Callable[[], None]) -> ExitWatch:
        """Run ``callback`` (quick: set a flag, wake a strand) on the watcher thread once
        ``sentinel`` is ready. The caller reaps the child itself, and calls :meth:`forget`
        before it closes ``sentinel`` (the watcher must never wait on a closed or reused
        descriptor)."""
        watch = ExitWatch(sentinel, callback)
        with self._lock:
            if sentinel in self._exits or sentinel in self._entries:
                raise ValueError(f"descriptor {sentinel} is already watched")
            self._exits[sentinel] = watch
        self._wake()
        return watch

    def forget(self, watch: ExitWatch) -> None:
        """Drop an :meth:`on_exit` registration (a no-op once it fired). Its callback does
        not run after this returns, unless it is running on the watcher thread now."""
        with self._lock:
            if self._exits.get(watch.sentinel) is watch:
                del self._exits[watch.sentinel]
        # No wake: the watcher drops it from its next wait; until then a readiness it
        # reports for this descriptor finds no registration and is ignored.

    def kill_after(self, popen: WatchedPopen, delay: float) -> None:
        """SIGKILL the child ``delay`` seconds from now unless it has exited by then."""
        with self._lock:
            entry = self._entries.get(popen.sentinel)
            if entry is None or entry.popen is not popen:
                return
            deadline = time.monotonic() + max(0.0, delay)
            if entry.kill_at is None or deadline < entry.kill_at:
                entry.kill_at = deadline
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:  # the pipe is full: the watcher is awake anyway
            pass

    def _run(self) -> None:
        while True:
            # One round per call: its locals (a finished child's entry, its Popen and
            # callback) are dropped before the next wait, not kept until another child ends.
            self._run_once()

    def _run_once(self) -> None:
        owners: dict[Any, tuple[_Entry, bool]] = {}  # waitable -> (entry, is_reader)
        with self._lock:
            exits = dict(self._exits)
            deadline = None
            for entry in self._entries.values():
                if entry.reader is not None:
                    owners[entry.reader] = (entry, True)
                if entry.code is None:
                    owners[entry.popen.sentinel] = (entry, False)
                if entry.kill_at is not None and (deadline is None or entry.kill_at < deadline):
                    deadline = entry.kill_at
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            ready: list[Any] = wait([self._wake_r, *owners, *exits], timeout)
        except (OSError, ValueError) as exc:
            # A descriptor was closed under us (it should not be): drop what is broken
            # rather than die, since every join in the program relies on this thread.
            self._report(exc)
            self._drop_broken(owners)
            self._drop_broken_exits(exits)
            return
        for obj in ready:
            if obj is self._wake_r:  # wait() returns the very objects it was given
                self._drain_wake()
                continue
            if obj in exits:
                self._fire_exit(exits[obj])
                continue
            entry, is_reader = owners[obj]
            try:
                if is_reader:
                    if entry.reader is obj:  # not already read while reaping
                        self._read_result(entry)
                elif entry.code is None:
                    self._reap(entry)
            except Exception as exc:  # pragma: no cover - a bug must not kill the watcher
                self._report(exc)
        if deadline is not None:
            self._kill_overdue()
        self._finish_ready()

    def _drop_broken(self, owners: dict[Any, tuple[_Entry, bool]]) -> None:
        for obj, (entry, is_reader) in owners.items():
            try:
                os.fstat(obj if isinstance(obj, int) else obj.fileno())
            except (OSError, ValueError):
                if is_reader:
                    entry.reader = None
                elif entry.code is None:
                    entry.code = 255
                    entry.popen._plait_reaped = True
        self._finish_ready()

    def _fire_exit(self, watch: ExitWatch) -> None:
        with self._lock:
            if self._exits.get(watch.sentinel) is not watch:
                return  # forgotten meanwhile (its owner may have closed the descriptor)
            del self._exits[watch.sentinel]
        try:
            watch.callback()
        except Exception as exc:
            self._report(exc)

    def _drop_broken_exits(self, exits: dict[int, ExitWatch]) -> None:
        for fd, watch in exits.items():
            try:
                os.fstat(fd)
            except OSError:
                self._fire_exit(watch)  # its owner learns of it rather than waiting forever

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _read_result(self, entry: _Entry) -> None:
        reader = entry.reader
        assert reader is not None
        if not reader.pump():
            return  # more to come
        data = reader.message()
        if data is not None:
            entry.outcome = decode(data, entry.describe)
        entry.reader = None
        reader.close()

    def _reap(self, entry: _Entry) -> None:
        entry.code = entry.popen._plait_reap()
        entry.kill_at = None
        # A child that wrote its result and exited may be reported by its sentinel first;
        # what it wrote is in the pipe now, whole or not at all.
        reader = entry.reader
        if reader is not None:
            reader.pump()
            data = reader.message()
            if data is not None:
                entry.outcome = decode(data, entry.describe)
            entry.reader = None
            reader.close()

    def _kill_overdue(self) -> None:
        now = time.monotonic()
        with self._lock:
            overdue = [
                e for e in self._entries.values() if e.kill_at is not None and e.kill_at <= now
            ]
            for entry in overdue:
                entry.kill_at = None
        for entry in overdue:
            if entry.code is None:
                try:
                    os.kill(entry.popen.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def _finish_ready(self) -> None:
        with self._lock:
            done = [e for e in self._entries.values() if e.code is not None and e.reader is None]
            for entry in done:
                del self._entries[entry.popen.sentinel]
        for entry in done:
            assert entry.code is not None
            entry.popen._plait_publish(entry.code)
            try:
                entry.on_done(entry.outcome)
            except Exception as exc:
                self._report(exc)

    @staticmethod
    def _report(exc: BaseException) -> None:
        hook = sys.unraisablehook
        hook(_Unraisable(exc, "plait process watcher"))  # type: ignore[arg-type]


class _Unraisable:
    def __init__(self, exc: BaseException, what: str) -> None:
        self.exc_type = type(exc)
        self.exc_value = exc
        self.exc_traceback = exc.__traceback__
        self.err_msg = f"Exception in {what}"
        self.object = None


_guard = threading.Lock()
_watcher: Watcher | None = None


def get_watcher() -> Watcher:
    """The process-wide watcher, started on first use."""
    global _watcher
    watcher = _watcher
    if watcher is None:
        with _guard:
            watcher = _watcher
            if watcher is None:
                watcher = _watcher = Watcher()
    return watcher


def _after_fork_in_child() -> None:
    # The watcher thread does not exist in a forked child; its pipe belongs to the parent.
    global _watcher, _guard
    old = _watcher
    _watcher = None
    _guard = threading.Lock()
    if old is not None:
        for fd in (old._wake_r, old._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
