"""Task groups: scopes that own strands of every kind.

``TaskGroup.spawn(fn, *args)`` starts ``fn`` as a coroutine strand (coroutine function),
a thread strand (plain function) or a process strand (``on="process"``); the group does not
exit until they are all done. The first failure cancels the siblings and the body; all
failures come out as one ``ExceptionGroup``. An outer cancellation is never swallowed: the
group takes back only the cancellation it caused itself (the lesson of CPython gh-116720).

How cancellation reaches each kind:

* coroutine -- ``task.cancel()`` on its loop, seen at its next ``await``;
* thread    -- its root :class:`CancelScope` is cancelled: a plait wait wakes at once, plain
  code sees it at its next plait call or ``plait.checkpoint()``; a thread that ignores it
  for ``grace`` seconds is abandoned and reported by name (:class:`CancellationIgnored`);
* process   -- SIGTERM, then SIGKILL after ``grace`` seconds.

A :class:`Task` *is* the strand it runs (a :class:`~plait._core.Strand` subclass), so
diagnostics see the same object the user holds. A coroutine strand spawned on its group's
own loop goes further: it is the asyncio task itself (:class:`_CoroStrand`, registered as a
``Task`` and a ``Strand``), so spawning one costs what ``asyncio.TaskGroup`` pays.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import math
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

from plait._core import (
    WOKEN,
    CancelScope,
    Strand,
    StrandKind,
    Waiter,
    WaitQueue,
    async_park,
    check_timeout,
    checkpoint,
    current_strand,
    hooks,
    new_mutex,
    park,
    register,
    runtime,
    unregister,
)
from plait._core.strands import (
    _by_task,
    _ids,
    note_self_strand_loop,
    register_self_strand_type,
)
from plait._errors import CancellationIgnored, Cancelled, WorkerCrashed

__all__ = ["On", "Task", "TaskGroup", "gil_enabled"]

T = TypeVar("T")
On = Literal["async", "thread", "process", "cpu", "green"]
_KINDS = ("async", "thread", "process", "cpu", "green")

_get_running_loop = asyncio._get_running_loop
_get_ident = threading.get_ident
_CO_COROUTINE = inspect.CO_COROUTINE


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
        if self.kind == "async":
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
        atask = self.task
        if atask is None:  # not started yet on its loop: it will start cancelled
            self._was_cancelled = True
        elif not atask.done():
            atask.cancel(msg)

    # -- outcome --------------------------------------------------------------------

    def _outcome(self) -> T:
        if self._was_cancelled:
            raise (
                Cancelled(f"{self!r} was cancelled")
                if self.kind != "async"
                else (asyncio.CancelledError(f"{self!r} was cancelled"))
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

    def _on_thread_done(self, result: Any, error: BaseException | None) -> None:
        cancelled = False
        root = self._root
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
        if _get_running_loop() is self.get_loop():
            await asyncio.wait((self,))
            return
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


async def _run_with_timeout(coro: Awaitable[T], seconds: float, task: Task[T]) -> T:
    scope = CancelScope(deadline=time.monotonic() + seconds, raise_on_timeout=True)
    try:
        async with scope:
            return await coro
        raise AssertionError("unreachable: this scope raises on timeout")  # pragma: no cover
    except TimeoutError:
        raise TimeoutError(f"{task!r} timed out after {seconds} s") from None


class TaskGroup:
    """A scope that owns strands of every kind: ``async with`` or plain ``with``.

    ``grace`` is how long a cancelled thread or process strand gets before it is
    abandoned (thread) or killed (process).
    """

    def __init__(self, *, name: str | None = None, grace: float = 2.0) -> None:
        self.name = name
        self.grace = check_timeout(grace) or 0.0
        self._mutex = new_mutex()
        self._waitq = WaitQueue(self._mutex)
        self._pending: set[Task[Any]] = set()
        # Coroutine children spawned on the fast path (_CoroStrand) are counted, not kept in
        # _pending: asyncio already lists them per loop (see _fast_children), and a set
        # entry per child costs.
        self._n_fast = 0
        self._errors: list[BaseException] = []
        self._state = "new"
        self._aborting = False
        self._abort_time = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None
        self._parent_task: asyncio.Task[Any] | None = None
        self._parent_cancel_requested = False
        self._body: CancelScope | None = None
        self._loop_ident = 0
        # One bound method for every coroutine child, not one per spawn.
        self._coro_done = self._on_coro_done
        self._waits: dict[_CoroStrand, WaitQueue] = {}  # blocking waits on coroutine children

    def _task_waitq(self, task: _CoroStrand) -> WaitQueue:
        """The wait queue of ``task`` (mutex held), made on first use."""
        q = self._waits.get(task)
        if q is None:
            q = self._waits[task] = WaitQueue(self._mutex)
        return q

    def _on_coro_done(self, t: _CoroStrand) -> None:
        """A coroutine child finished (on the group's loop thread)."""
        try:
            error = _exception(t)
        except asyncio.CancelledError:
            error = None
        # State first, then look for waiters: a waiter enqueues first, then looks at the
        # state (see _CoroStrand.wait), so one of the two always sees the other.
        t.state = "done"
        self._n_fast -= 1  # only this thread changes it
        if error is None and not self._waits and (self._n_fast or self._pending or not self._waitq):
            if hooks.active:
                hooks.exited(t, None)  # type: ignore[arg-type]
            return  # the common case: nobody to wake, nothing to report
        first_failure = False
        with self._mutex:
            if error is not None:
                self._errors.append(error)
                if not self._aborting:
                    first_failure = self._aborting = True
            q = self._waits.pop(t, None) if self._waits else None
            woken = q.pop_all() if q else []
            idle = not self._n_fast and not self._pending
            if (first_failure or idle) and self._waitq:
                woken += self._waitq.pop_all()
        for w in woken:
            w.wake()
        if hooks.active:
            hooks.exited(t, error)  # type: ignore[arg-type]
        if first_failure:
            self._abort(stop_body=True)

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        running = len(self._pending) + self._n_fast
        return f"<plait.TaskGroup{name} {self._state}, {running} running>"

    # -- spawning ---------------------------------------------------------------------

    def _kind_of(self, fn: Any, on: str | None) -> StrandKind:
        if on is not None and on not in _KINDS:
            raise ValueError(
                f"unknown on={on!r}: use one of {', '.join(map(repr, _KINDS))} "
                f"or leave it out (coroutine function -> 'async', plain function -> 'thread')"
            )
        if on == "green":
            raise NotImplementedError(
                "green strands (on='green') are not available yet; "
                "use on='async' or on='thread' for now"
            )
        if on == "cpu":
            return "process" if gil_enabled() else "thread"
        if on is None:
            return "async" if inspect.iscoroutinefunction(fn) else "thread"
        return on  # type: ignore[return-value]

    def spawn(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on: On | None = None,
        name: str | None = None,
        timeout: float | None = None,
    ) -> Task[Any]:
        """Start ``fn(*args)`` as a strand owned by this group and return its :class:`Task`.

        ``on`` picks the kind: ``"async"``, ``"thread"``, ``"process"``, or ``"cpu"``
        (processes with the GIL, threads on a free-threaded build); by default a coroutine
        function becomes a coroutine strand and a plain function a thread strand.
        ``timeout`` fails the strand with :class:`TimeoutError` after that many seconds.
        """
        try:
            flags = fn.__code__.co_flags
        except AttributeError:
            flags = None
        # The common case decides at once: a coroutine function spawned on the group's own
        # loop (``_loop_ident`` is 0 outside ``async with``, so never equal there).
        fast = (
            flags is not None
            and flags & _CO_COROUTINE
            and on is None
            and timeout is None
            and _get_ident() == self._loop_ident
            and self._state == "open"
            and not self._aborting
        )
        if not fast:
            if on is None and flags is not None:  # a plain function, without inspect's help
                kind: StrandKind = "async" if flags & _CO_COROUTINE else "thread"
            else:
                if inspect.iscoroutine(fn):
                    raise TypeError(
                        "spawn() takes a function and its arguments, not a coroutine object: "
                        "write tg.spawn(fetch, url) instead of tg.spawn(fetch(url))"
                    )
                if not callable(fn):
                    raise TypeError(f"spawn() needs a callable to run, got {fn!r}")
                kind = self._kind_of(fn, on)
            if timeout is not None:
                timeout = check_timeout(timeout)
            if self._state != "open" or self._aborting:
                self._refuse()
            fast = (
                kind == "async"
                and timeout is None
                and _get_ident() == self._loop_ident
                and inspect.iscoroutinefunction(fn)  # e.g. a partial of one
            )
        if fast:
            # The coroutine strand is the asyncio task itself. (No name= for asyncio:
            # setting one costs more than the task.)
            strand = _CoroStrand(fn(*args), loop=self._loop)
            strand.parent = self
            if name is not None:
                strand._name = name
            strand.state = "running"
            # (parked_on and waiter stay unset until the strand first parks: nothing reads
            # them before, and every store here counts.)
            # Only this loop's thread changes _n_fast (here and in _on_coro_done): no mutex.
            self._n_fast += 1
            _add_done(strand, self._coro_done)
            if hooks.active:
                hooks.spawned(strand)  # type: ignore[arg-type]
            return strand  # type: ignore[return-value]
        task: Task[Any] = Task(kind, name or getattr(fn, "__qualname__", None), self, timeout)
        with self._mutex:
            self._pending.add(task)
        try:
            if kind == "async":
                self._start_async(task, fn, args)
            elif kind == "thread":
                self._start_thread(task, fn, args)
            else:
                self._start_process(task, fn, args)
        except BaseException:
            with self._mutex:
                self._pending.discard(task)
            raise
        return task

    def _refuse(self) -> None:
        if self._state != "open":
            what = "has not been entered" if self._state == "new" else "has exited"
            raise RuntimeError(
                f"cannot spawn into {self!r}: it {what}; spawn inside its `with` block"
            )
        raise RuntimeError(
            f"cannot spawn into {self!r}: it is shutting down after a failure or cancellation"
        )

    def _start_async(self, task: Task[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        loop = self._loop if self._loop is not None else runtime.loop()
        task.loop = loop
        coro = fn(*args)
        if type(coro) is not _Coroutine and not inspect.isawaitable(coro):
            raise TypeError(
                f"on='async' needs a coroutine function; {fn!r} returned {type(coro).__name__}"
            )
        if task._timeout is not None:
            coro = _run_with_timeout(coro, task._timeout, task)
        if _get_running_loop() is loop:
            self._create_atask(task, coro, loop)
        else:
            context = contextvars.copy_context()
            loop.call_soon_threadsafe(self._create_atask, task, coro, loop, context)

    @staticmethod
    def _create_atask(
        task: Task[Any],
        coro: Any,
        loop: asyncio.AbstractEventLoop,
        context: contextvars.Context | None = None,
    ) -> None:
        if task._was_cancelled:  # cancelled before it could start
            coro.close()
            task._finish(None, None, True)
            return
        atask = loop.create_task(coro, context=context)
        task.task = atask
        task.state = "running"
        register(task)
        if hooks.active:
            hooks.spawned(task)
        atask.add_done_callback(task._on_async_done)

    def _start_thread(self, task: Task[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        from plait._threads import run_in_thread

        root = CancelScope(
            deadline=math.inf if task._timeout is None else time.monotonic() + task._timeout
        )
        root._strand = task
        task._root = root
        task.cancel_scopes = [root]
        run_in_thread(task, fn, args, {}, contextvars.copy_context(), task._on_thread_done)

    def _start_process(
        self, task: Task[Any], fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        from plait._processes import start_process_call

        pcall = start_process_call(fn, args, {}, name=task.name)
        task._pcall = pcall
        task.pid = pcall.pid
        task.state = "running"
        register(task)
        if hooks.active:
            hooks.spawned(task)
        if task._timeout is not None:
            self._arm_process_timeout(task, task._timeout)
        pcall.future.add_done_callback(task._on_process_done)

    def _arm_process_timeout(self, task: Task[Any], seconds: float) -> None:
        def expire() -> None:
            if not task._finished:
                task._timed_out = True
                task.cancel()

        timer = threading.Timer(seconds, expire)
        timer.daemon = True
        timer.start()
        task.add_done_callback(lambda _t: timer.cancel())

    # -- completion and abort ---------------------------------------------------------

    def _child_done_locked(self, task: Task[Any]) -> tuple[bool, list[Waiter] | None]:
        """Account for a finished child (mutex held); says whether it is the first failure."""
        pending = self._pending
        pending.discard(task)
        first_failure = False
        if task._error is not None:
            self._errors.append(task._error)
            if not self._aborting:
                first_failure = True
                self._aborting = True
        # The exit waits for the last child; after the first failure it also needs a
        # wake-up to start counting the grace period of stuck threads.
        if (first_failure or (not pending and not self._n_fast)) and self._waitq:
            return first_failure, self._waitq.pop_all()
        return first_failure, None

    def _abort(self, *, stop_body: bool) -> None:
        """Cancel every running child; with ``stop_body`` also the code inside ``with``."""
        with self._mutex:
            self._aborting = True
            if self._abort_time == math.inf:
                self._abort_time = time.monotonic()
            children = list(self._pending)
        if self._n_fast:
            children.extend(self._fast_children())
        for child in children:
            child.cancel()
        if not stop_body or self._state != "open":
            return
        if self._body is not None:
            self._body.cancel()
        elif self._parent_task is not None and not self._parent_cancel_requested:
            self._parent_cancel_requested = True
            loop = self._loop
            assert loop is not None
            if _get_running_loop() is loop:
                self._parent_task.cancel()
            else:
                loop.call_soon_threadsafe(self._parent_task.cancel)

    def _fast_children(self) -> list[Any]:
        """The running coroutine children that are not in _pending (asyncio lists them)."""
        loop = self._loop
        if loop is None:
            return []
        for _ in range(5):
            try:
                tasks = asyncio.all_tasks(loop)
                break
            except RuntimeError:  # the task set changed while it was copied: again
                continue
        else:  # pragma: no cover - only under extreme churn
            return []
        return [t for t in tasks if type(t) is _CoroStrand and t.parent is self]

    def cancel(self) -> None:
        """Cancel every strand of the group and the code in its body. Thread-safe."""
        self._abort(stop_body=True)

    def _abandoned(self) -> list[BaseException]:
        """Thread strands still running ``grace`` s after the abort: report them by name."""
        with self._mutex:
            stuck = [t for t in self._pending if t.kind == "thread"]
            for t in stuck:
                self._pending.discard(t)
                t._group = None
        return [CancellationIgnored(t.name, self.grace) for t in stuck]

    def _wait_deadline(self) -> float | None:
        if not self._aborting:
            return None
        with self._mutex:
            has_threads = any(t.kind == "thread" for t in self._pending)
        if not has_threads:
            return None
        return max(0.0, self._abort_time + self.grace + 0.5 - time.monotonic())

    def _finish_exit(self, body_error: BaseException | None) -> None:
        if body_error is not None:
            self._errors.append(body_error)
        errors, self._errors = self._errors, []
        for error in errors:
            # Ctrl-C and sys.exit() stay themselves, as with asyncio.TaskGroup, so that
            # `except KeyboardInterrupt` still works around a group.
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise error
        if errors:
            raise BaseExceptionGroup(f"unhandled errors in {self!r}", errors)

    # -- async with -------------------------------------------------------------------

    async def __aenter__(self) -> TaskGroup:
        if self._state != "new":
            raise RuntimeError(f"{self!r} can be entered only once")
        self._loop = asyncio.get_running_loop()
        self._loop_ident = _get_ident()
        note_self_strand_loop(self._loop)
        self._parent_task = asyncio.current_task()
        if self._parent_task is None:
            raise RuntimeError("`async with TaskGroup()` needs to run inside a task")
        self._state = "open"
        return self

    async def __aexit__(
        self,
        et: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        propagate: BaseException | None = None
        if et is not None and issubclass(et, asyncio.CancelledError):
            propagate = exc
        if et is not None and not self._aborting:
            self._abort(stop_body=False)
        self._state = "exiting"
        while True:
            with self._mutex:
                if not self._pending and not self._n_fast:
                    break
                waiter = self._waitq.async_enqueue_current(self)
            try:
                await async_park(waiter, self._wait_deadline())
            except asyncio.CancelledError as cancel:
                if not self._aborting:
                    propagate = cancel
                    self._abort(stop_body=False)
            else:
                if (self._pending or self._n_fast) and self._wait_deadline() == 0.0:
                    self._errors.extend(self._abandoned())
        self._state = "exited"
        parent = self._parent_task
        assert parent is not None
        if self._parent_cancel_requested and parent.uncancel() == 0:
            propagate = None  # we caused that cancellation; nothing else is pending
            # Before 3.13, uncancel() leaves a cancellation that was requested but not yet
            # delivered armed: it would fire at the parent's next await. Take it here.
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                if parent.cancelling():
                    raise
        if propagate is not None and not self._errors:
            raise propagate
        body_error = exc if et is not None and not issubclass(et, asyncio.CancelledError) else None
        if self._errors or body_error is not None:
            if parent.cancelling():
                # An outer cancellation is pending: keep its count stable.
                parent.uncancel()
                parent.cancel()
            self._finish_exit(body_error)
        return False

    # -- plain with -------------------------------------------------------------------

    def __enter__(self) -> TaskGroup:
        if self._state != "new":
            raise RuntimeError(f"{self!r} can be entered only once")
        if current_strand().kind == "async":
            raise RuntimeError("inside a coroutine use `async with TaskGroup()`, not `with`")
        self._body = CancelScope()
        self._body.__enter__()
        self._state = "open"
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        body = self._body
        assert body is not None
        own_cancel = bool(body.__exit__(et, exc, tb))
        propagate: BaseException | None = None
        if et is not None and not own_cancel:
            if isinstance(exc, Cancelled):
                propagate = exc
            if not self._aborting:
                self._abort(stop_body=False)
        self._state = "exiting"
        strand = current_strand()
        scopes, strand.cancel_scopes = strand.cancel_scopes, ()  # shield the wait
        try:
            while True:
                with self._mutex:
                    if not self._pending and not self._n_fast:
                        break
                    waiter = self._waitq.enqueue_current(self)
                try:
                    park(waiter, self._wait_deadline(), interruptible=True)
                except BaseException:
                    # Ctrl-C (or another signal's exception) while we wait for children:
                    # cancel them all and leave; nothing keeps running unowned for long.
                    self._abort(stop_body=False)
                    raise
                if waiter.state != WOKEN:  # not woken: interrupted by an outer cancel, or timed out
                    outer = next((s for s in scopes if s.cancel_called), None)
                    if outer is not None and not self._aborting:
                        self._abort(stop_body=False)
                    if (self._pending or self._n_fast) and self._wait_deadline() == 0.0:
                        self._errors.extend(self._abandoned())
        finally:
            strand.cancel_scopes = scopes
        self._state = "exited"
        if propagate is not None and not self._errors:
            return False
        if not self._errors:
            checkpoint()  # an outer scope cancelled while we waited: never swallow it
        body_error = None if own_cancel or et is None or propagate is not None else exc
        if self._errors or body_error is not None:
            self._finish_exit(body_error)
        return own_cancel
