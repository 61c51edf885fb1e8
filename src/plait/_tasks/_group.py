"""TaskGroup: the scope that owns strands of every kind (the package docstring says how
cancellation reaches each kind and why a Task is the strand it runs)."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import math
import threading
import time
from collections.abc import Awaitable, Callable
from collections.abc import Coroutine as _CoroutineABC
from functools import partial
from types import FunctionType as _FunctionType
from types import TracebackType
from typing import Any

from plait._core import (
    WOKEN,
    CancelScope,
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
    safepoint,
)
from plait._core.awaitables import describe_callable, refuse_awaitable, returns_awaitable
from plait._core.green import drive, greenlet_module, scheduler_for
from plait._core.runtime import add_hurry_listener, hurried
from plait._core.strands import (
    green_by_context,
    note_self_strand_loop,
)
from plait._errors import CancellationIgnored, Cancelled
from plait._tasks._on_pool import OnPool, SupportsApply, check_pool
from plait._tasks._task import (
    _CO_COROUTINE,
    _KINDS,
    _PLAIN,
    On,
    T,
    Task,
    _add_done,
    _CoroStrand,
    _Coroutine,
    _exception,
    _get_ident,
    _get_running_loop,
    gil_enabled,
)

__all__ = ["TaskGroup"]

_green_ended = Task._on_green_done  # (what a green strand's hub calls at its end: (task, g))

def _go_green(
    task: Task[Any], loop: Any, scheduler: Any, fn: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    """(On ``loop``'s thread) The loop's hub starts ``fn(*args)`` as ``task``'s greenlet and
    reports its end to the task, with no asyncio task in between (what makes a spawn cheap)."""
    task.loop = loop
    task.state = "running"
    task._green = scheduler.start(
        partial(fn, *args) if args else fn, task, _green_ended, green_by_context
    )
    register(task)
    if hooks.active:
        hooks.spawned(task)


# Groups waiting for their children in ``__aexit__``: a second Ctrl-C under plait.run
# (the loop is "hurried") ends their grace at once.
_exiting: set[TaskGroup] = set()


def _on_hurry(loop: asyncio.AbstractEventLoop) -> None:
    for group in [g for g in _exiting if g._loop is loop]:
        group._hurry()


add_hurry_listener(_on_hurry)


def _only_abandoned(errors: list[BaseException]) -> bool:
    """Whether every error is a thread strand abandoned after a cancellation."""
    return all(isinstance(e, CancellationIgnored) for e in errors)


def _note_abandoned(exc: BaseException, abandoned: list[BaseException]) -> None:
    for error in abandoned:
        exc.add_note(f"abandoned: {error}")


def _earliest(timeout: float | None, scopes: Any) -> float | None:
    """``timeout``, or less if an enclosing scope's deadline comes first."""
    deadline = min((s.deadline for s in scopes), default=math.inf)
    if deadline == math.inf:
        return timeout
    left = max(0.0, deadline - time.monotonic())
    return left if timeout is None else min(timeout, left)


def _outer_cancelled(scopes: Any) -> bool:
    now = time.monotonic()
    return any(s.cancel_called or s.deadline <= now for s in scopes)


def _as_coroutine(fn: Callable[..., Any], awaitable: Any) -> Any:
    """What asyncio can run as a task: ``awaitable`` itself, or a coroutine awaiting it."""
    if isinstance(awaitable, _CoroutineABC):  # a coroutine, or plait's C QueueOp
        return awaitable
    if inspect.isawaitable(awaitable):
        return _await(awaitable)
    raise TypeError(
        f"a coroutine strand needs a callable that returns an awaitable; "
        f"{describe_callable(fn)} returned {type(awaitable).__name__}: spawn a plain "
        f"function with on='thread' (or leave out on=)"
    )


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


class _RefuseAwaitable:
    """A process strand's target: calls ``fn`` and fails if it returned an awaitable."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.fn(*args, **kwargs)
        error = refuse_awaitable(self.fn, result, "process")
        if error is not None:
            raise error
        return result


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
        if name is not None and not isinstance(name, str):
            raise TypeError(f"TaskGroup name must be a str or None, not {name!r}")
        self.name = name
        limit = check_timeout(grace, "grace")
        # (None: no grace at all, as before; math.inf: wait for every thread however long)
        self.grace = limit if limit is not None else (0.0 if grace is None else math.inf)
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
        self._green_scheduler: Any = None  # its loop's green hub, once a green strand started
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
        if (
            error is None
            and not self._waits
            and (self._n_fast or self._pending or not self._waitq)
        ):
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
            greenlet_module()  # (an ImportError naming the extra, at the call)
        if on is None:
            return "async" if returns_awaitable(fn) else "thread"
        if on != "async" and returns_awaitable(fn):
            raise TypeError(
                f"{describe_callable(fn)} returns an awaitable, which a {on} strand cannot "
                f"await: leave out on= (or pass on='async') to run it as a coroutine strand"
            )
        if on == "cpu":
            return "process" if gil_enabled() else "thread"
        return on  # type: ignore[return-value]

    def spawn(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on: On | SupportsApply | None = None,
        name: str | None = None,
        timeout: float | None = None,
        isolated: bool = False,
    ) -> Task[Any]:
        """Start ``fn(*args)`` as a strand owned by this group and return its :class:`Task`.

        ``on`` picks the kind: ``"async"``, ``"thread"``, ``"process"``, or ``"cpu"``
        (processes with the GIL, threads on a free-threaded build); by default a coroutine
        function becomes a coroutine strand and a plain function a thread strand.
        ``timeout`` fails the strand with :class:`TimeoutError` after that many seconds.
        A process strand runs on a warm worker process that later strands reuse (see
        :mod:`plait.pool._warm`); ``isolated=True`` gives it a fresh process of its own.
        ``on=pool`` (a :class:`plait.Pool`, local or on a cluster) runs it as one task
        on that pool (see :mod:`plait._tasks._on_pool`).
        """
        if on is not None and not isinstance(on, str):
            pool = check_pool(on, fn, isolated)
            if not callable(fn):
                raise TypeError(f"spawn() needs a callable to run, got {fn!r}")
            return self.spawn(
                OnPool(pool, fn), *args, on="thread", name=name, timeout=timeout
            )
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
        if (
            on == "green"
            and self._green_scheduler is not None  # (greenlet imported, the hub made)
            and flags is not None
            and not flags & _CO_COROUTINE
            and timeout is None
            and not isolated
            and (name is None or type(name) is str)
            and _get_ident() == self._loop_ident
            and self._state == "open"
            and not self._aborting
            # (a plain def with no attributes carries no coroutine mark: no need to ask)
            and (not fn.__dict__ if type(fn) is _FunctionType else not returns_awaitable(fn))
        ):
            # A green strand on the group's loop: the hub starts its greenlet and reports its
            # end to the task, with no asyncio task in between (what makes a spawn cheap).
            task: Task[Any] = Task("green", name or getattr(fn, "__qualname__", None), self, None)
            with self._mutex:
                self._pending.add(task)
            try:
                _go_green(task, self._loop, self._green_scheduler, fn, args)
            except BaseException:
                with self._mutex:
                    self._pending.discard(task)
                raise
            return task
        if not fast:
            if on is None and flags is not None:  # a plain function, without inspect's help
                kind: StrandKind = (
                    "async" if flags & _CO_COROUTINE or returns_awaitable(fn) else "thread"
                )
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
            if name is not None and not isinstance(name, str):
                raise TypeError(f"spawn() name must be a str or None, not {name!r}")
            if self._state != "open" or self._aborting:
                self._refuse()
            fast = kind == "async" and timeout is None and _get_ident() == self._loop_ident
            if isolated and kind != "process":
                raise ValueError(
                    f"isolated=True gives a process strand a process of its own; this is a "
                    f"{kind} strand: pass on='process' (or on='cpu' with the GIL)"
                )
        if fast:
            # The coroutine strand is the asyncio task itself. (No name= for asyncio:
            # setting one costs more than the task.) A callable that returns an awaitable
            # (``ev.async_wait``, a partial of an async function) goes this way too.
            if name is not None and not isinstance(name, str):
                raise TypeError(f"spawn() name must be a str or None, not {name!r}")
            coro = fn(*args)
            if type(coro) is not _Coroutine:
                coro = _as_coroutine(fn, coro)
            strand = _CoroStrand(coro, loop=self._loop)
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
        task = Task(kind, name or getattr(fn, "__qualname__", None), self, timeout)
        with self._mutex:
            self._pending.add(task)
        try:
            if kind == "async":
                self._start_async(task, fn, args)
            elif kind == "green":
                self._start_green(task, fn, args)
            elif kind == "thread":
                self._start_thread(task, fn, args)
            else:
                self._start_process(task, fn, args, isolated)
        except BaseException:
            if task._pcall is None:  # (a child that started stays: the group stops it)
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
        if type(coro) is not _Coroutine:
            coro = _as_coroutine(fn, coro)
        if task._timeout is not None:
            coro = _run_with_timeout(coro, task._timeout, task)
        if _get_running_loop() is loop:
            self._create_atask(task, coro, loop)
        else:
            context = contextvars.copy_context()
            loop.call_soon_threadsafe(self._create_atask, task, coro, loop, context)

    def _start_green(self, task: Task[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        loop = self._loop if self._loop is not None else runtime.loop()
        if task._timeout is not None or _get_running_loop() is not loop:
            # A coroutine strand whose body runs in a greenlet (its timeout, its start on
            # the loop from another thread: what coroutine strands have already).
            self._start_async(task, drive, (fn, args))
            return
        # The group keeps its loop's hub: from now on spawn() starts green strands inline.
        scheduler = scheduler_for(loop)
        if loop is self._loop:
            self._green_scheduler = scheduler
        _go_green(task, loop, scheduler, fn, args)

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
        if task._timeout is not None:
            self._arm_thread_overrun(task, task._timeout + self.grace)

        def done(result: Any, error: BaseException | None) -> None:
            if error is None and result is not None and not isinstance(result, _PLAIN):
                refused = refuse_awaitable(fn, result, "thread")
                if refused is not None:
                    result, error = None, refused
            task._on_thread_done(result, error)

        run_in_thread(task, fn, args, {}, contextvars.copy_context(), done)

    def _arm_thread_overrun(self, task: Task[Any], seconds: float) -> None:
        """A thread strand still running ``grace`` s after its timeout fails with
        :class:`TimeoutError` (its thread is abandoned, as a cancelled one is), so that
        neither the group nor a surrounding ``fail_after`` waits for a blocking call."""

        def expire() -> None:
            if not task._finished:
                error = TimeoutError(
                    f"{task!r} timed out after {task._timeout} s and ignored it for "
                    f"{self.grace} s more: abandoned while still running"
                )
                error.__cause__ = CancellationIgnored(task.name, self.grace)
                task._finish(None, error, False)

        loop = runtime.loop()
        loop.call_soon_threadsafe(loop.call_later, seconds, expire)

    def _start_process(
        self, task: Task[Any], fn: Callable[..., Any], args: tuple[Any, ...], isolated: bool
    ) -> None:
        from plait._tasks._process_strands import start_process_strand

        # The child starts before it is recorded here: a Ctrl-C (plait.run raises it where
        # main runs) or a process strand's own SIGTERM that landed in between left a child
        # nobody would stop. It waits until the child is recorded (safepoint), and a
        # cancel() that found no child yet is carried out now.
        with safepoint.critical():
            pcall = start_process_strand(
                _RefuseAwaitable(fn), args, name=task.name, isolated=isolated
            )
            task._pcall = pcall
            task.pid = pcall.pid
            task.state = "running"
            register(task)
            if hooks.active:
                hooks.spawned(task)
            if task._timeout is not None:
                self._arm_process_timeout(task, task._timeout)
            pcall.future.add_done_callback(task._on_process_done)
            if task._was_cancelled:
                pcall.terminate(self.grace)

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
            loop = self._loop
            assert loop is not None
            if _get_running_loop() is loop:
                self._cancel_parent()
            else:
                try:
                    loop.call_soon_threadsafe(self._cancel_parent)
                except RuntimeError:  # the loop is closed: nothing left to stop
                    pass

    def _cancel_parent(self) -> None:
        """Stop the body (on the group's loop): only while it still runs, and only once.

        Decided here, on the loop's thread, where the body's state changes: a request from
        a thread strand that arrives after the body reached ``__aexit__`` would otherwise
        cancel the parent after the group took its cancellation back.
        """
        if self._state == "open" and not self._parent_cancel_requested:
            self._parent_cancel_requested = True
            assert self._parent_task is not None
            self._parent_task.cancel()

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
        """Thread strands still running ``grace`` s after the abort (or when a second
        Ctrl-C ended the grace early): report them by name."""
        with self._mutex:
            stuck = [t for t in self._pending if t.kind == "thread"]
            for t in stuck:
                self._pending.discard(t)
                t._group = None
        grace = self.grace
        if hurried(self._loop) and self._abort_time != math.inf:
            grace = min(grace, round(time.monotonic() - self._abort_time, 2))
        return [CancellationIgnored(t.name, grace) for t in stuck]

    def _wait_deadline(self) -> float | None:
        if not self._aborting:
            return None
        with self._mutex:
            has_threads = any(t.kind == "thread" for t in self._pending)
        if not has_threads:
            return None
        if hurried(self._loop):
            return 0.0
        return max(0.0, self._abort_time + self.grace + 0.5 - time.monotonic())

    def _hurry(self) -> None:
        """A second Ctrl-C: no more grace. Kill the process strands now (not after
        ``grace``) and wake ``__aexit__``, which then abandons the thread strands."""
        with self._mutex:
            processes = [t for t in self._pending if t.kind == "process"]
            woken = self._waitq.pop_all() if self._waitq else []
        for t in processes:
            if t._pcall is not None:
                t._pcall.kill()
        for w in woken:
            w.wake()

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
        try:
            while True:
                with self._mutex:
                    if not self._pending and not self._n_fast:
                        break
                    waiter = self._waitq.async_enqueue_current(self)
                if self not in _exiting:
                    _exiting.add(self)
                    if hurried(self._loop):  # (a second Ctrl-C came before we got here)
                        self._hurry()
                try:
                    await async_park(waiter, self._wait_deadline())
                except asyncio.CancelledError as cancel:
                    if not self._aborting:
                        propagate = cancel
                        self._abort(stop_body=False)
                else:
                    if (self._pending or self._n_fast) and self._wait_deadline() == 0.0:
                        self._errors.extend(self._abandoned())
        finally:
            _exiting.discard(self)
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
        if propagate is not None and _only_abandoned(self._errors):
            # An outer cancellation (Ctrl-C through asyncio.Runner, an enclosing scope's
            # deadline) goes on as itself: threads that ignored it are named in a note,
            # never turned into an ExceptionGroup that hides the KeyboardInterrupt.
            _note_abandoned(propagate, self._errors)
            self._errors = []
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
                    park(waiter, _earliest(self._wait_deadline(), scopes), interruptible=True)
                except BaseException:
                    # Ctrl-C (or another signal's exception) while we wait for children:
                    # cancel them all and leave; nothing keeps running unowned for long.
                    self._abort(stop_body=False)
                    raise
                if waiter.state != WOKEN:  # not woken: interrupted by an outer cancel, or timed out
                    now = time.monotonic()
                    outer = next(
                        (s for s in scopes if s.cancel_called or s.deadline <= now), None
                    )
                    if outer is not None and not self._aborting:
                        self._abort(stop_body=False)
                    if (self._pending or self._n_fast) and self._wait_deadline() == 0.0:
                        self._errors.extend(self._abandoned())
        finally:
            strand.cancel_scopes = scopes
        self._state = "exited"
        if propagate is not None and not self._errors:
            return False
        if _only_abandoned(self._errors) and _outer_cancelled(scopes):
            # An enclosing scope was cancelled or reached its deadline: its cancellation
            # goes on (fail_after raises TimeoutError after the grace, not after the
            # blocking call); the threads that ignored it are named in a note.
            abandoned, self._errors = self._errors, []
            try:
                checkpoint()
            except Cancelled as cancel:
                _note_abandoned(cancel, abandoned)
                raise
        if not self._errors:
            checkpoint()  # an outer scope cancelled while we waited: never swallow it
        body_error = None if own_cancel or et is None or propagate is not None else exc
        if self._errors or body_error is not None:
            self._finish_exit(body_error)
        return own_cancel
