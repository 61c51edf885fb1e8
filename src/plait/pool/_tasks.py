"""A task (one message to a worker: one or more items) and the sinks its results go to.

A *sink* is whoever waits for the items: a :class:`concurrent.futures.Future` (``apply``,
``submit``), a list being filled (``map``), or an ``imap`` iterator. Sinks are called from
the pool's result thread, outside the pool's lock; a sink never blocks.
"""

from __future__ import annotations

import logging
import reprlib
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Protocol

from plait.pool._progress import Progress
from plait.pool._results import IMapIterator

__all__ = ["FutureSink", "IterSink", "ListSink", "Sink", "Task", "all_failed"]

log = logging.getLogger("plait.pool")


Errors = dict[int, BaseException] | None


def all_failed(n: int, error: BaseException) -> tuple[list[Any], dict[int, BaseException]]:
    """``(values, errors)`` for ``n`` items that all failed with ``error``."""
    return [None] * n, dict.fromkeys(range(n), error)


class Sink(Protocol):
    def deliver(self, indices: Sequence[int], values: list[Any], errors: Errors) -> None:
        """Item ``indices[k]`` ended with ``values[k]``, or raised ``errors[k]``."""

    def cancel(self) -> bool:
        """Drop work that has not started; ``False`` if the sink no longer wants that."""

    def fail_all(self, error: BaseException) -> None:
        """The caller's wait was cancelled: resolve now; later deliveries are ignored."""


class Task:
    """One message's worth of work: ``payload`` is the header plus the pickled call."""

    __slots__ = (
        "_label",
        "cancelled",
        "id",
        "indices",
        "payload",
        "requeues",
        "retries",
        "sent_ns",
        "sink",
        "timeout",
        "worker",
    )

    def __init__(
        self,
        task_id: int,
        payload: bytes,
        indices: Sequence[int],
        sink: Sink,
        *,
        label: str | None,
        retries: int,
        timeout: float | None,
    ) -> None:
        self.id = task_id
        self.payload = payload
        self.indices = indices
        self.sink = sink
        self._label = label
        self.retries = retries
        self.timeout = timeout
        self.requeues = 0
        self.cancelled = False  # its caller's wait was cancelled: its result is not wanted
        self.worker: Any = None
        self.sent_ns = 0

    @property
    def label(self) -> str:
        """What ran, for messages: ``crunch()``. Never worked out by unpickling the
        payload: nothing sent to a worker is ever unpickled in the parent (an argument's
        ``__reduce__`` may crash or exit the process that loads it)."""
        return self._label if self._label is not None else f"task #{self.id}"

    @label.setter
    def label(self, text: str) -> None:
        self._label = text

    def __repr__(self) -> str:
        return f"<Task #{self.id} {self.label} x{len(self.indices)}>"


_repr = reprlib.Repr()
_repr.maxlevel = 2
_repr.maxlist = _repr.maxtuple = _repr.maxdict = 4
_repr.maxstring = _repr.maxother = 24


def describe_call(fn: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    """``fn(arg, ..., key=value)`` with long values shortened."""
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    try:
        parts = [_repr.repr(a) for a in args[:4]]
        if len(args) > 4:
            parts.append("...")
        parts += [f"{k}={_repr.repr(v)}" for k, v in list(kwargs.items())[:3]]
        return f"{name}({', '.join(parts)})"
    except Exception:
        return f"{name}(...)"


def _run_callback(cb: Callable[[Any], object], value: Any, what: str) -> None:
    try:
        cb(value)
    except Exception:
        log.exception("plait.Pool: the %s raised; the pool goes on", what)


class FutureSink:
    """One item resolves one future (``apply_async``, ``submit``), callbacks first."""

    __slots__ = ("callback", "error_callback", "finished", "future", "on_done")

    def __init__(
        self,
        future: Future[Any],
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self.future = future
        self.callback = callback
        self.error_callback = error_callback
        self.on_done = on_done
        self.finished = False

    def _done(self) -> None:
        if not self.finished:
            self.finished = True
            if self.on_done is not None:
                self.on_done()

    def fail_all(self, error: BaseException) -> None:
        if not self.future.cancel() and not self.future.done():
            try:
                self.future.set_exception(error)
            except Exception:  # resolved meanwhile
                pass
        self._done()

    def deliver(self, indices: Sequence[int], values: list[Any], errors: Errors) -> None:
        if self.finished:
            return
        ok = not errors
        value = values[0] if ok else errors[0]  # type: ignore[index]
        if ok:
            if self.callback is not None:
                _run_callback(self.callback, value, "callback")
        elif self.error_callback is not None:
            _run_callback(self.error_callback, value, "error_callback")
        if not self.future.done():  # cancelled futures stay cancelled
            try:
                if ok:
                    self.future.set_result(value)
                else:
                    self.future.set_exception(value)
            except Exception:  # InvalidStateError: cancelled meanwhile
                pass
        self._done()

    def cancel(self) -> bool:
        cancelled = self.future.cancel()
        if cancelled:
            self._done()
        return cancelled

    def start(self) -> bool:
        """Called when the task is handed to a worker; ``False`` if it was cancelled."""
        if self.future.set_running_or_notify_cancel():
            return True
        self._done()
        return False


class ListSink:
    """``map``: fill a list; the first failure fails the whole call (as the stdlib does)."""

    def __init__(
        self,
        length: int,
        future: Future[Any],
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.values: list[Any] = [None] * length
        self.remaining = length
        self.future = future
        self.callback = callback
        self.error_callback = error_callback
        self.progress = progress
        self._lock = threading.Lock()
        self._failed = False
        if length == 0:
            self._finish()

    def deliver(self, indices: Sequence[int], values: list[Any], errors: Errors) -> None:
        error: BaseException | None = None
        with self._lock:
            if self._failed:
                return
            if errors:
                self._failed = True
                error = errors[min(errors)]
            elif isinstance(indices, range) and indices.step == 1:
                self.values[indices.start : indices.stop] = values
            else:
                mine = self.values
                for index, value in zip(indices, values, strict=True):
                    mine[index] = value
            self.remaining -= len(indices)
            done = self.remaining == 0 and error is None
        if self.progress is not None:
            self.progress.update(len(indices))
        if error is not None:
            if self.error_callback is not None:
                _run_callback(self.error_callback, error, "error_callback")
            self._close_progress()
            if not self.future.done():
                self.future.set_exception(error)
        elif done:
            self._finish()

    def _finish(self) -> None:
        if self.callback is not None:
            _run_callback(self.callback, self.values, "callback")
        self._close_progress()
        if not self.future.done():
            self.future.set_result(self.values)

    def _close_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()

    def cancel(self) -> bool:
        with self._lock:
            self._failed = True
        self._close_progress()
        return self.future.cancel() or True

    def fail_all(self, error: BaseException) -> None:
        self.cancel()
        if not self.future.done():
            self.future.set_exception(error)


class IterSink:
    """``imap``/``imap_unordered``: hand each item to the iterator as it arrives."""

    def __init__(self, iterator: IMapIterator[Any], progress: Progress | None = None) -> None:
        # Weakly: an iterator its caller dropped (``break`` out of the loop) is collected,
        # and the pool stops reading its input (see Engine.drop_source).
        self.iterator = weakref.ref(iterator)
        self.progress = progress
        self.delivered = 0
        self.length: int | None = None
        self._lock = threading.Lock()

    def deliver(self, indices: Sequence[int], values: list[Any], errors: Errors) -> None:
        iterator = self.iterator()
        if iterator is not None:
            iterator._put_many(indices, values, errors)
        if self.progress is not None:
            self.progress.update(len(indices))
            with self._lock:
                self.delivered += len(indices)
            self._maybe_close()

    def set_length(self, length: int) -> None:
        self.length = length
        self._maybe_close()

    def _maybe_close(self) -> None:
        if self.progress is not None and self.length is not None:
            with self._lock:
                done = self.delivered >= self.length
            if done:
                self.progress.close()

    def cancel(self) -> bool:
        return True

    def fail_all(self, error: BaseException) -> None:
        self.iterator = _gone  # type: ignore[assignment] # the caller stopped: drop the rest


def _gone() -> None:
    return None
