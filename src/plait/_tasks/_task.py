"""Tasks: the handle to a strand of a group, and the coroutine strand that *is* its task.

A :class:`Task` *is* the strand it runs (a :class:`~plait._core.Strand` subclass), so
diagnostics see the same object the user holds. A coroutine strand spawned on its group's
own loop goes further: it is the asyncio task itself (:class:`_CoroStrand`, registered as a
``Task`` and a ``Strand``), so spawning one costs what ``asyncio.TaskGroup`` pays.
"""


from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import sys
import threading
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from plait._core import (
    CancelScope,
    Strand,
    StrandKind,
    WaitQueue,
    async_park,
    check_timeout,
    hooks,
    new_mutex,
    park,
    unregister,
)
from plait._core import green as _green
from plait._core.strands import (
    _by_task,
    _ids,
    register_self_strand_type,
)
from plait._errors import Cancelled, WorkerCrashed

if TYPE_CHECKING:
    from plait._tasks._group import TaskGroup

__all__ = ["On", "Task", "gil_enabled"]

T = TypeVar("T")
On = Literal["async", "thread", "process", "cpu", "green"]
_KINDS = ("async", "thread", "process", "cpu", "green")

_get_running_loop = asyncio._get_running_loop
_get_ident = threading.get_ident
_CO_COROUTINE = inspect.CO_COROUTINE
# Results that are surely not awaitable: the check after a thread strand skips them cheaply.
_PLAIN = (int, float, str, bytes, list, tuple, dict, set, bool)


async def _probe() -> None:
    return None


_probe_coro = _probe()
_Coroutine = type(_probe_coro)
_probe_coro.close()


def gil_enabled() -> bool:
    """Whether this interpreter runs with the GIL (``on="cpu"`` then means processes)."""
    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else bool(probe())


class Task(Strand, Generic[T]):  # an ABC (via Strand): _CoroStrand registers as one
    """A strand started by :meth:`TaskGroup.spawn`, and the handle to its outcome.

    Await it (``await task``) or wait with ``task.result(timeout=...)``. ``result()``
    without a timeout does not wait: on a task that is not done it raises
    :class:`asyncio.InvalidStateError` saying how to wait.
    """

    __slots__ = (
        "_callbacks",
        "_error",
        "_finished",
        "_green",
        "_group",
        "_mutex",
        "_pcall",
        "_result",
        "_root",
        "_timed_out",
        "_timeout",
        "_waitq",
        "_was_cancelled",
    )

    def __init__(
        self, kind: StrandKind, name: str | None, group: TaskGroup | None, timeout: float | None
    ) -> None:
        # Strand.__init__, inlined: spawning is on the hot path.
        self.sid = next(_ids)
        self.kind = kind
        self.name = name if name is not None else f"{kind}-{self.sid}"
        self.parent = group
        self.state = "new"
        self.parked_on = None
        self.waiter = None
        self.loop = None
        self.task = None
        self.ident = None
        self.pid = None
        self.implicit = False
        self.cancel_scopes = ()
        self._group = group
        # Tasks of a group share its mutex; wait queue and callbacks are made on first use,
        # so a parked task costs little more than asyncio's own.
        self._mutex = group._mutex if group is not None else new_mutex()
        self._waitq: WaitQueue | None = None
        self._finished = False
        self._result: Any = None
        self._error: BaseException | None = None
        self._was_cancelled = False
        self._callbacks: list[Callable[[Task[T]], None]] | None = None
        self._pcall: Any = None
        self._green: Any = None  # a green strand started with no asyncio task: its greenlet
        self._root: CancelScope | None = None
        self._timeout = timeout
        self._timed_out = False

    # -- state ----------------------------------------------------------------------

    def done(self) -> bool:
        """Whether the strand has finished (returned, raised or was cancelled)."""
        return self._finished

    def cancelled(self) -> bool:
        """Whether the strand ended because it was cancelled."""
        return self._finished and self._was_cancelled

    def __repr__(self) -> str:
        if not self._finished:
            state = self.state
        elif self._was_cancelled:
            state = "cancelled"
        elif self._error is not None:
            state = f"failed: {type(self._error).__name__}"
        else:
            state = "done"
        return f"<plait.Task #{self.sid} {self.kind} {self.name!r} {state}>"

    def cancel(self, msg: str | None = None) -> bool:
        """Ask the strand to stop; ``False`` if it already finished. Thread-safe."""
        if self._finished:
            return False
        if self.kind in {"async", "green"}:
            loop = self.loop
            if loop is not None:
                if _get_running_loop() is loop:
                    self._cancel_async(msg)
                else:
                    try:
                        loop.call_soon_threadsafe(self._cancel_async, msg)
                    except RuntimeError:
                        return False
        elif self.kind == "thread":
            assert self._root is not None
            self._root.cancel()
        elif self.kind == "process":
            self._was_cancelled = True
            pcall = self._pcall
            if pcall is not None:
                grace = self._group.grace if self._group is not None else 2.0
                pcall.terminate(grace)
        return True

    def _cancel_async(self, msg: str | None) -> None:
        g = self._green
        if g is not None:  # a green strand with no asyncio task: thrown in at its wait
            _green.cancel(g, msg)
            return
        atask = self.task
        if atask is None:  # not started yet on its loop: it will start cancelled
            self._was_cancelled = True
        elif not atask.done():
            atask.cancel(msg)

    # -- outcome --------------------------------------------------------------------

    def _outcome(self) -> T:
        if self._was_cancelled:
            raise Cancelled(f"{self!r} was cancelled") if self.kind != "async" else (
                asyncio.CancelledError(f"{self!r} was cancelled")
            )
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[no-any-return]

    def result(self, timeout: float | None = 0) -> T:
        """The strand's return value; re-raises its exception.

        ``timeout=0`` (the default) does not wait; ``timeout=None`` waits as long as it
        takes; a number waits that many seconds and then raises :class:`TimeoutError`.
        """
        timeout = check_timeout(timeout)
        if not self._finished:
            if timeout == 0:
                raise asyncio.InvalidStateError(
                    f"{self!r} is not done yet: `await` it, let its TaskGroup exit, "
                    f"or call result(timeout=SECONDS) to wait"
                )
            if not self.wait(timeout):
                raise TimeoutError(f"{self!r} did not finish within {timeout} s")
        return self._outcome()

    def exception(self, timeout: float | None = 0) -> BaseException | None:
        """The exception the strand raised, or ``None``; same waiting rules as ``result``."""
        try:
            self.result(timeout)
        except asyncio.InvalidStateError:
            raise
        except TimeoutError as exc:
            if not self._finished:
                raise
            return exc
        except BaseException as exc:
            if self._was_cancelled:
                raise
            return exc
        return None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the strand is done; ``False`` if ``timeout`` passed first."""
        timeout = check_timeout(timeout)
        loop = _get_running_loop()
        if loop is not None and loop is self.loop and not self._finished:
            raise RuntimeError(
                f"waiting for {self!r} with a blocking call from a coroutine of its own "
                f"event loop would deadlock: use `await task` instead"
            )
        with self._mutex:
            if self._finished:
                return True
            if self._waitq is None:
                self._waitq = WaitQueue(self._mutex)
            waiter = self._waitq.enqueue_current(self)
        return park(waiter, timeout) or self._finished

    async def async_wait(self) -> None:
        """Suspend the calling coroutine until the strand is done."""
        with self._mutex:
            if self._finished:
                return
            if self._waitq is None:
                self._waitq = WaitQueue(self._mutex)
            waiter = self._waitq.async_enqueue_current(self)
        await async_park(waiter, None)

    async def async_result(self) -> T:
        """Await the strand and return its result (the same as ``await task``)."""
        await self.async_wait()
        return self._outcome()

    def __await__(self) -> Generator[Any, None, T]:
        return self.async_result().__await__()

    def add_done_callback(self, fn: Callable[[Task[T]], None]) -> None:
        """Call ``fn(task)`` when the strand finishes (at once if it already has)."""
        with self._mutex:
            if not self._finished:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        fn(self)

    def _finish(self, result: Any, error: BaseException | None, cancelled: bool) -> None:
        """Record the outcome exactly once and wake everything that waits for it."""
        group = self._group
        first_failure = False
        with self._mutex:  # the group's mutex too, when there is a group
            if self._finished:
                return
            self._result = result
            self._error = error
            self._was_cancelled = cancelled or self._was_cancelled
            self._finished = True
            waiters = self._waitq.pop_all() if self._waitq is not None else None
            callbacks, self._callbacks = self._callbacks, None
            if group is not None:
                first_failure, group_waiters = group._child_done_locked(self)
                if group_waiters:
                    waiters = group_waiters if not waiters else waiters + group_waiters
        if waiters:
            for w in waiters:
                w.wake()
        if callbacks:
            for cb in callbacks:
                cb(self)
        if first_failure:
            assert group is not None
            group._abort(stop_body=True)

    # -- kind-specific completion ------------------------------------------------------

    def _on_async_done(self, atask: asyncio.Task[Any]) -> None:
        _by_task.pop(atask, None)
        self.state = "done"
        if atask.cancelled():
            error = None
            cancelled = True
        else:
            error = atask.exception()
            cancelled = False
            if isinstance(error, asyncio.CancelledError):
                error, cancelled = None, True
        if hooks.active:
            hooks.exited(self, error)
        self._finish(None if cancelled or error else atask.result(), error, cancelled)

    def _on_green_done(self, g: Any) -> None:
        """A green strand started by its scheduler's ``start`` ended (called by its loop's hub)."""
        self._green = None
        unregister(self)
        ok, value = g.outcome
        if ok:
            result, error, cancelled = value, None, False
        elif isinstance(value, asyncio.CancelledError):
            result, error, cancelled = None, None, True
        else:
            result, error, cancelled = None, value, False
        if hooks.active:
            hooks.exited(self, error)
        self._finish(result, error, cancelled)

    def _on_thread_done(self, result: Any, error: BaseException | None) -> None:
        cancelled = False
        root = self._root
        if (
            error is None
            and root is not None
            and self._timeout is not None
            and not root.cancel_called
            and root.deadline <= time.monotonic()
        ):
            # It returned, but after its timeout: an overrun is never a success.
            result, error = None, TimeoutError(
                f"{self!r} timed out after {self._timeout} s (its call returned late)"
            )
        if isinstance(error, Cancelled):
            if (
                root is not None
                and not root.cancel_called
                and root.deadline <= time.monotonic()
                and getattr(error, "scope", None) is root
            ):
                error = TimeoutError(f"{self!r} timed out after {self._timeout} s")
            else:
                error, cancelled = None, True
        self._finish(result, error, cancelled)

    def _on_process_done(self, fut: concurrent.futures.Future[Any]) -> None:
        unregister(self)
        if self._timed_out:
            self._was_cancelled = False
            self._finish(None, TimeoutError(f"{self!r} timed out after {self._timeout} s"), False)
            return
        if self._was_cancelled:
            self._finish(None, None, True)
            return
        try:
            result = fut.result()
        except (SystemExit, KeyboardInterrupt) as exc:
            # The child's own exit is not the parent's: it must never end this process.
            code = exc.code if isinstance(exc, SystemExit) else None
            crashed = WorkerCrashed(
                f"process strand {self.name!r} (pid {self.pid}) ended by "
                f"{type(exc).__name__}({code!r}) before returning a result",
                pid=self.pid,
                exitcode=code if isinstance(code, int) else 1,
                task=self.name,
            )
            crashed.__cause__ = exc
            self._finish(None, crashed, False)
        except BaseException as exc:
            self._finish(None, exc, False)
        else:
            self._finish(result, None, False)


class _CoroStrand(asyncio.Task):  # type: ignore[type-arg]
    """A coroutine strand spawned on its group's own loop: the asyncio task *is* the strand.

    This is the fast path of ``spawn``: one object per strand (asyncio's own task, with a
    few slots of plait's), no registry entry (asyncio lists tasks per loop), so spawning a
    coroutine strand costs about what ``asyncio.TaskGroup.create_task`` costs. It has the
    :class:`Task` API (``result(timeout=)``, ``wait``, ``async_wait``, ``kind``, ``name``,
    thread-safe ``cancel``) and is registered as a :class:`Task` and a :class:`Strand`.
    """

    __slots__ = ("_name", "_sid", "parent", "parked_on", "state", "waiter")

    _name: str
    _sid: int
    parent: Any
    parked_on: object | None
    state: str
    waiter: Any
    kind: StrandKind = "async"
    implicit = False
    ident = None
    pid = None
    cancel_scopes: tuple[()] = ()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.get_loop()

    @property
    def task(self) -> asyncio.Task[Any]:
        return self

    @property
    def sid(self) -> int:
        """The strand's id, given on first use (spawning stays as cheap as asyncio's)."""
        try:
            return self._sid
        except AttributeError:
            self._sid = sid = next(_ids)
            return sid

    @property
    def id(self) -> int:
        return self.sid

    @property
    def name(self) -> str:
        try:
            return self._name
        except AttributeError:  # not named at spawn: the coroutine's function names it
            return str(getattr(self.get_coro(), "__qualname__", f"async-{self.sid}"))

    def __repr__(self) -> str:
        if not self.done():
            state = self.state
        elif self.cancelled():
            state = "cancelled"
        elif self.exception() is not None:
            state = f"failed: {type(self.exception()).__name__}"
        else:
            state = "done"
        return f"<plait.Task #{self.sid} async {self.name!r} {state}>"

    def cancel(self, msg: Any = None) -> bool:
        """Ask the strand to stop; ``False`` if it already finished. Thread-safe."""
        if self.done():
            return False
        loop = self.get_loop()
        if _get_running_loop() is loop:
            return super().cancel(msg)
        try:
            loop.call_soon_threadsafe(self._cancel_here, msg)
        except RuntimeError:
            return False
        return True

    def _cancel_here(self, msg: Any) -> None:
        if not self.done():
            super().cancel(msg)

    def result(self, timeout: float | None = 0) -> Any:
        """As :meth:`Task.result`: ``timeout=0`` does not wait."""
        if not self.done():
            timeout = check_timeout(timeout)
            if timeout == 0:
                raise asyncio.InvalidStateError(
                    f"{self!r} is not done yet: `await` it, let its TaskGroup exit, "
                    f"or call result(timeout=SECONDS) to wait"
                )
            if not self.wait(timeout):
                raise TimeoutError(f"{self!r} did not finish within {timeout} s")
        return super().result()

    def exception(self, timeout: float | None = 0) -> BaseException | None:
        """As :meth:`Task.exception`."""
        if not self.done():
            self.result(timeout)  # waits, or raises as result() does
        return super().exception()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the strand is done; ``False`` if ``timeout`` passed first."""
        timeout = check_timeout(timeout)
        if self.done():
            return True
        if _get_running_loop() is self.get_loop():
            raise RuntimeError(
                f"waiting for {self!r} with a blocking call from a coroutine of its own "
                f"event loop would deadlock: use `await task` instead"
            )
        group: TaskGroup = self.parent
        with group._mutex:
            queue = group._task_waitq(self)
            waiter = queue.enqueue_current(self)
            if self.state == "done":  # enqueued first, then looked (see _on_coro_done)
                queue.remove(waiter)
                return True
        return park(waiter, timeout) or self.done()

    async def async_wait(self) -> None:
        """Suspend the calling coroutine (on any loop) until the strand is done."""
        if self.done():
            return
        # (On the task's own loop too: one park path, through the group's wait queue.)
        group: TaskGroup = self.parent
        with group._mutex:
            queue = group._task_waitq(self)
            waiter = queue.async_enqueue_current(self)
            if self.state == "done":  # enqueued first, then looked (see _on_coro_done)
                queue.remove(waiter)
                return
        await async_park(waiter, None)

    async def async_result(self) -> Any:
        """Await the strand and return its result."""
        await self.async_wait()
        return super().result()

    def add_done_callback(self, fn: Any, *, context: Any = None) -> None:
        """Call ``fn(task)`` when the strand finishes; thread-safe."""
        loop = self.get_loop()
        if _get_running_loop() is loop:
            super().add_done_callback(fn, context=context)
        else:
            loop.call_soon_threadsafe(
                functools.partial(super().add_done_callback, fn, context=context)
            )


register_self_strand_type(_CoroStrand)
Task.register(_CoroStrand)
# asyncio's own (C) methods, skipping the overrides above where plait calls them itself.
_add_done = asyncio.Task.add_done_callback
_exception = asyncio.Task.exception


