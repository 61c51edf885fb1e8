"""Green strands: blocking-style code that runs many-per-loop and switches at every wait.

A green strand is a plain function running in a greenlet on an event loop. To its
TaskGroup it is a coroutine strand whose coroutine, :func:`drive`, starts the greenlet and
then waits for it to finish. The greenlet runs until its first wait, then switches back to
the loop; from then on it is resumed straight from loop callbacks, with no task step in
between (which is what makes a wait cheap)::

    drive() ── start: ready ──► hub ─switch─► greenlet: fn(*args) ... q.get(): park()
       await done                 hub ◄──switch── (parked: a _Resume in the waiter's
                                                   place of a future)
    (other callbacks run)
    waker: q.put() ── waiter.wake() ── _Resume.set_result ── ready (+ call_soon(hub))
    hub ─────────────────switch───► ... get returns; ... next wait switches back, or the
                                    function returns: the hub resolves ``done``

So every plait wait works unchanged in a green strand: ``WaitQueue.enqueue_current`` gives
a green strand's waiter a :class:`_Resume` where a coroutine's has a future, and
:func:`plait._core.parking.park` switches out (:func:`switch_out`) instead of blocking the
thread. While it runs, the thread's current strand is the green strand (the hub sets it),
so ``current_strand()`` and every wait see the right strand. Cancelling the strand's task
throws :class:`plait.Cancelled` into the greenlet at its wait, as a thread strand sees it;
sync cancel scopes (``with move_on_after``) work as they do in a thread strand.

``greenlet`` is an optional dependency (``pip install 'plait[green]'``): this module
imports it only when a green strand is started.

The switch step -- :class:`_Resume` and :class:`_Scheduler`, the hub's loop -- has a C
accelerator (``plait._core._greenpark``, :data:`GREENPARK`) that does the same with no
Python frame per switch; these Python classes are the reference and the fallback (not
built, or ``PLAIT_NO_SPEEDUPS=1``).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from plait._core import strands as _strands
from plait._core.fdwatch import fd_watch
from plait._errors import Cancelled

__all__ = [
    "await_",
    "cancel",
    "current_green",
    "drive",
    "greenlet_module",
    "in_green_strand",
    "resume_for",
    "scheduler_for",
    "switch_out",
    "wait_fd",
    "wait_fds",
]

_GreenT: Any = None  # the greenlet subclass of green strands, made on first use
_getcurrent: Any = None  # greenlet.getcurrent, once a green strand was started

# The C switch step (plait/_core/_greenpark.c); None: the Python classes below run.
GREENPARK: Any = None
# Its green wait (``WaitQueue.enqueue_current``'s green branch, and ``parking.park``'s
# untimed, unscoped green case), once a green strand was started; None: Python runs it.
enqueue: Any = None
park: Any = None
if not os.environ.get("PLAIT_NO_SPEEDUPS"):
    try:
        from plait._core import _greenpark
    except ImportError:  # pragma: no cover - depends on the build
        pass
    else:
        if _greenpark.SEAM != 6:  # the C types' members, configure*()'s args, start()
            raise ImportError(
                f"plait._core._greenpark ({_greenpark.__file__}) was built from another "
                "version of plait: rebuild it (pip install -e .), or set PLAIT_NO_SPEEDUPS=1"
            )
        GREENPARK = _greenpark


def greenlet_module() -> Any:
    """The ``greenlet`` module, or an ImportError that says which extra to install."""
    try:
        import greenlet
    except ImportError:
        raise ImportError(
            "green strands (on='green') need the greenlet package: "
            "pip install 'plait[green]' (or pip install greenlet)"
        ) from None
    return greenlet


def _green_type() -> Any:
    global _GreenT
    if _GreenT is None:
        greenlet = greenlet_module()

        class GreenStrandGreenlet(greenlet.greenlet):  # type: ignore[misc,name-defined]
            """The greenlet that runs one green strand's function (``strand``: its plait
            strand; ``done``: the future its driver waits on). Slots, not an instance
            dict: a parked strand costs less memory, and the hub reads them faster."""

            __slots__ = ("done", "end", "outcome", "scheduler", "strand", "waiting")

            strand: Any
            done: Any  # (drive()'s; None when start() started it)
            end: Any  # start()'s ``end(strand, g)``, until the hub calls it; else None
            waiting: Any
            outcome: tuple[bool, Any] | None
            scheduler: Any  # a _Scheduler (or the C one)

        global _getcurrent
        _getcurrent = greenlet.getcurrent
        if GREENPARK is not None:
            from plait._core import instruments, parking

            GREENPARK.configure(
                greenlet=greenlet.greenlet, getcurrent=greenlet.getcurrent, local=_strands._local
            )
            GREENPARK.configure_park(
                Waiter=parking.Waiter,
                WaitQueue=parking.WaitQueue,
                green_type=GreenStrandGreenlet,
                QUEUED=parking.QUEUED,
                WOKEN=parking.WOKEN,
                hooks=instruments.hooks,
                abandon=parking._green_abandon,
                done=parking._wait_done,
            )
            global enqueue, park
            enqueue, park = GREENPARK.enqueue, GREENPARK.park
            # From now on a green strand's waiter is queued with no Python frame at all.
            queue_type: Any = parking.WaitQueue
            queue_type.enqueue_current = GREENPARK.enqueue_current_for(
                queue_type, parking.python_enqueue_current
            )
        _GreenT = GreenStrandGreenlet
    return _GreenT


class _Scheduler:
    """The green strands of one loop that are ready to go on, and the *hub* that runs them.

    One loop callback switches to the hub, a greenlet of its own with a short stack (so
    switching between it and a green strand copies little), which steps the ready strands
    in turn -- and those they wake meanwhile -- up to :data:`_BATCH` steps, then switches
    back: a wake-up costs no turn of the event loop of its own, yet I/O and other callbacks
    still get theirs. Every switch into a green strand happens in the hub.
    """

    __slots__ = ("hub", "ident", "loop", "ready", "run", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.ident = threading.get_ident()  # (made on the loop's thread, by drive())
        self.ready: deque[_Resume] = deque()
        self.scheduled = False
        self.run = self._run  # (bound once: call_soon'd at every wake-up batch)
        self.hub = greenlet_module().greenlet(self._hub)

    def wake(self, resume: _Resume) -> None:
        self.ready.append(resume)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.run)

    def start(self, fn: Any, strand: Any, end: Any, by_context: dict[int, Any]) -> Any:
        """``fn()`` in a new green strand greenlet, ready to run, in a copy of the caller's
        context (``by_context``: where it is recorded); ``end(strand, g)`` once it ended."""
        g = _GreenT(fn, self.hub)
        g.gr_context = context = contextvars.copy_context()  # the spawner's vars, as a copy
        by_context[id(context)] = strand  # (a lock's fast path records it)
        g.strand = strand
        g.done = None
        g.outcome = None
        g.scheduler = self
        g.end = end
        g.waiting = first = _Resume(g)
        first.set_result(None)
        return g

    def _run(self) -> None:
        hub = self.hub
        if hub.dead:  # pragma: no cover - only if the hub itself failed
            hub = self.hub = greenlet_module().greenlet(self._hub)
        hub.parent = _getcurrent()  # (it comes back here after its batch)
        hub.switch()

    def _hub(self) -> None:
        ready = self.ready
        popleft = ready.popleft
        # The thread's strand (``current_strand()`` in a green strand) is set by hand in
        # the loop thread's own dict of ``_strands._local``: one dict store per step.
        local = _strands._local.__dict__
        while True:
            before = local.get("strand", _MISSING)
            for _ in range(_BATCH):
                if not ready:
                    break
                resume = popleft()
                g = resume.greenlet
                if g.waiting is not resume:
                    continue  # it left that wait already: it was cancelled
                g.waiting = None
                local["strand"] = g.strand
                error = resume.error
                try:  # run it until its next wait (or its end)
                    out = g.throw(error) if error is not None else g.switch()
                except BaseException as exc:  # the strand's outcome, for its task
                    g.outcome = (False, exc)
                else:
                    if not g.dead:
                        continue
                    g.outcome = (True, out)
                end = g.end
                if end is not None:  # started by start(): no future in between
                    g.end = None
                    _strands.green_by_context.pop(id(g.gr_context), None)
                    end(g.strand, g)
                elif not g.done.done():
                    g.done.set_result(None)
            if before is _MISSING:
                local.pop("strand", None)
            else:
                local["strand"] = before
            if ready:
                self.loop.call_soon(self.run)
            else:
                self.scheduled = False
            self.hub.parent.switch()


_BATCH = 256
_schedulers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def _scheduler(loop: asyncio.AbstractEventLoop) -> Any:
    """The loop's scheduler (made on the loop's thread, by :func:`drive` or
    :func:`scheduler_for`)."""
    scheduler = _schedulers.get(loop)
    if scheduler is None:
        _green_type()  # (greenlet imported, the C step configured)
        if GREENPARK is not None:
            scheduler = GREENPARK.Scheduler(loop, threading.get_ident(), _BATCH)
        else:
            scheduler = _Scheduler(loop)
        _schedulers[loop] = scheduler
    return scheduler


class _Resume:
    """What a green strand's waiter holds where a coroutine's holds its future: the waker's
    ``set_result`` (on the loop's thread: ``Waiter.wake`` hops there) makes the strand
    ready to go on, once. ``error``: thrown in instead (its cancellation)."""

    __slots__ = ("_done", "error", "greenlet")

    def __init__(self, greenlet: Any, error: BaseException | None = None) -> None:
        self._done = False
        self.greenlet = greenlet
        self.error = error

    def done(self) -> bool:
        return self._done

    def set_result(self, _value: object) -> None:
        if not self._done:
            self._done = True
            scheduler = self.greenlet.scheduler
            scheduler.ready.append(self)  # (Scheduler.wake, inline: once per wake-up)
            if not scheduler.scheduled:
                scheduler.scheduled = True
                scheduler.loop.call_soon(scheduler.run)


new_resume: Any = GREENPARK.Resume if GREENPARK is not None else _Resume
"""``new_resume(greenlet, error=None)``: a :class:`_Resume` (or the C one) for ``greenlet``'s
next wait (what ``WaitQueue.enqueue_current`` gives a green strand's waiter)."""


def resume_for(loop: asyncio.AbstractEventLoop) -> Any:
    """A resume handle for the calling green strand's next wait (on ``loop``, its own)."""
    return new_resume(_getcurrent())


def current_green() -> Any:
    """The calling green strand's greenlet, or ``None`` outside green strands (cheap: what
    ``WaitQueue.enqueue_current`` asks first)."""
    if _getcurrent is None:
        return None
    g = _getcurrent()
    return g if type(g) is _GreenT else None


def switch_out(resume: Any) -> None:
    """Leave the loop to other work until ``resume`` brings the calling green strand back
    (an exception thrown in -- its cancellation -- is raised here)."""
    g = resume.greenlet
    g.waiting = resume
    try:
        g.parent.switch()
    finally:
        g.waiting = None


_MISSING: Any = object()


def _ended(g: Any) -> bool:
    return g.outcome is not None


def in_green_strand() -> bool:
    """Whether the calling code runs in a green strand's greenlet."""
    return _GreenT is not None and type(_getcurrent()) is _GreenT


def await_(awaitable: Awaitable[Any]) -> Any:
    """Wait for ``awaitable`` from a green strand, letting its loop run meanwhile; return its
    result (or raise its exception).

    It is how blocking-style code calls coroutine code: ``data = plait.await_(fetch(url))``.
    The awaitable runs as a task of the strand's loop, on behalf of the green strand.
    """
    if not in_green_strand():
        close = getattr(awaitable, "close", None)
        if close is not None:  # (a coroutine object: no "never awaited" warning on top)
            close()
        raise RuntimeError(
            "plait.await_() waits from a green strand (tg.spawn(fn, on='green')); in a "
            "coroutine write `await ...`, in a thread use plait.run(...) or a plait queue"
        )
    loop = asyncio.get_running_loop()
    fut = asyncio.ensure_future(awaitable, loop=loop)
    strand = _getcurrent().strand
    if isinstance(fut, asyncio.Task):
        _strands._by_task[fut] = strand  # (its waits are the green strand's)
    resume = resume_for(loop)
    fut.add_done_callback(lambda _f: resume.set_result(None))
    try:
        switch_out(resume)
    except BaseException:
        fut.cancel()  # the strand is cancelled: so is what it waited for
        raise
    finally:
        if isinstance(fut, asyncio.Task):
            _strands._by_task.pop(fut, None)
    return fut.result()


async def drive(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """The coroutine of a green strand: start ``fn(*args)`` in a greenlet, wait for its end.

    A cancellation of this task is thrown into the greenlet at its wait; if the function
    lets it through, the task ends cancelled.
    """
    loop = asyncio.get_running_loop()
    scheduler = _scheduler(loop)
    g = _green_type()(lambda: fn(*args), scheduler.hub)
    g.gr_context = context = contextvars.copy_context()  # the spawner's vars, as a copy
    g.strand = _strands.current_strand()
    _strands.green_by_context[id(context)] = g.strand  # (a lock's fast path records it)
    g.done = loop.create_future()
    g.outcome = None  # (True, result) or (False, error) once it has ended
    g.scheduler = scheduler
    g.end = None  # (the hub resolves ``done`` instead)
    g.waiting = start = new_resume(g)  # (waiting: the _Resume of its wait while it is parked)
    start.set_result(None)
    try:
        while g.outcome is None:
            try:
                await g.done
            except asyncio.CancelledError as exc:
                if _ended(g):
                    break  # it ended first: its outcome stands (a result is never dropped)
                g.done = loop.create_future()
                error = exc if isinstance(exc, Cancelled) else Cancelled(*exc.args)
                # Thrown in at its wait (a wake-up already on its way is dropped), by the
                # hub: blocking-style code sees what a thread strand sees.
                g.waiting = throw = new_resume(g, error)
                throw.set_result(None)
    finally:
        _strands.green_by_context.pop(id(context), None)
    outcome: Any = g.outcome  # (set: the loop above ended)
    ok, value = outcome
    if ok:
        return value
    raise value


def scheduler_for(loop: asyncio.AbstractEventLoop) -> Any:
    """The green scheduler of ``loop`` (asked on its thread). Its ``start(fn, strand, end,
    green_by_context)`` starts ``fn()`` as green strand ``strand`` with no asyncio task to
    drive it, in a copy of the caller's context: the hub calls ``end(strand, g)`` once it
    has ended (``g.outcome``: ``(True, result)`` or ``(False, error)``); :func:`cancel`
    takes the greenlet. (:func:`drive` is the same as a coroutine, for the strands that
    need one: a timeout, a start from another thread.)"""
    return _scheduler(loop)


def cancel(g: Any, msg: str | None = None) -> None:
    """Cancel the green strand that a scheduler's ``start`` started (on its loop's thread): throw
    :class:`plait.Cancelled` in at its wait (a wake-up already on its way is dropped and
    its hand-over given back), as a thread strand sees it. From the strand itself, at its
    next wait."""
    if g.outcome is not None:
        return
    if g is _getcurrent():  # running: its next wait sets ``waiting``; throw in after it
        g.scheduler.loop.call_soon(cancel, g, msg)
        return
    g.waiting = throw = new_resume(g, Cancelled(msg) if msg is not None else Cancelled())
    throw.set_result(None)


def wait_fd(fd: int, *, write: bool, timeout: float | None, on: object) -> bool:
    """From a green strand: park (through the kernel, so scopes, cancellation and
    instruments see it, parked on ``on``) until the loop sees ``fd`` readable (or
    writable); ``False`` after ``timeout`` seconds."""
    return wait_fds([(fd, write)], timeout=timeout, on=on)


def wait_fds(fds: list[tuple[int, bool]], *, timeout: float | None, on: object) -> bool:
    """:func:`wait_fd` for several ``(fd, write)`` at once: until any of them is ready."""
    from plait._core.parking import WaitQueue, new_mutex, park

    loop = asyncio.get_running_loop()
    queue = WaitQueue(new_mutex())
    with queue.mutex:
        waiter = queue.enqueue_current(on)

    def ready() -> None:
        with queue.mutex:
            woken = queue.pop()
        if woken is not None:
            woken.wake()

    watch = fd_watch(loop)
    for fd, write in fds:
        watch.add(fd, write, ready)
    try:
        return park(waiter, timeout)
    finally:
        for fd, write in fds:
            watch.remove(fd, write, ready)
