"""Green strands: blocking-style code that runs many-per-loop and switches at every wait.

A green strand is an asyncio task (so it is a coroutine strand to the loop, its TaskGroup
and cancellation) whose body is a plain function running in a greenlet. The task's
coroutine is :func:`drive`: it switches into the greenlet, and whenever the green code has
to wait, the greenlet switches back to the driver with the awaitable to wait on; the driver
awaits it on the loop and switches back in with the outcome::

    loop ── task step ── drive() ──switch──► greenlet: fn(*args) ... lock.acquire()
                                                        │ park(): await_(waiter)
              await waiter ◄──────switch(_Await)─────────┘
              (other tasks run)
              woken ──────────────switch(result)───────► ... acquire returns

So every plait wait works unchanged in a green strand: ``WaitQueue.enqueue_current``
makes the waiter a loop waiter (a future) when the current strand is green, and
:func:`plait._core.parking.park` hands it to :func:`await_` instead of blocking the thread.
Cancellation arrives as it does for a coroutine strand (the task is cancelled), and the
green code sees it at its wait as a thread strand does (:class:`plait.Cancelled`, a
``CancelledError``); sync cancel scopes (``with move_on_after``)
work as they do in a thread strand.

``greenlet`` is an optional dependency (``pip install 'plait[green]'``): this module
imports it only when a green strand is started.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

from plait._errors import Cancelled

__all__ = ["await_", "drive", "greenlet_module", "in_green_strand", "wait_fd"]

_GreenT: Any = None  # the greenlet subclass of green strands, made on first use
_getcurrent: Any = None  # greenlet.getcurrent, once a green strand was started


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
            """The greenlet that runs one green strand's function."""

        global _getcurrent
        _getcurrent = greenlet.getcurrent
        _GreenT = GreenStrandGreenlet
    return _GreenT


class _Await:
    """What a green strand hands its driver: one awaitable to wait on."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        self.awaitable = awaitable


def in_green_strand() -> bool:
    """Whether the calling code runs in a green strand's greenlet."""
    return _GreenT is not None and type(_getcurrent()) is _GreenT


def await_(awaitable: Awaitable[Any]) -> Any:
    """Wait for ``awaitable`` from a green strand, letting its loop run meanwhile; return its
    result (or raise its exception).

    It is how blocking-style code calls coroutine code: ``data = plait.await_(fetch(url))``.
    """
    if _GreenT is not None:
        current = _getcurrent()
        if type(current) is _GreenT:
            return current.parent.switch(_Await(awaitable))
    close = getattr(awaitable, "close", None)
    if close is not None:  # (a coroutine object: no "never awaited" warning on top)
        close()
    raise RuntimeError(
        "plait.await_() waits from a green strand (tg.spawn(fn, on='green')); in a "
        "coroutine write `await ...`, in a thread use plait.run(...) or a plait queue"
    )


async def drive(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """The coroutine of a green strand: run ``fn(*args)`` in a greenlet, awaiting for it."""
    greenlet = greenlet_module()
    strand = _green_type()(fn)
    strand.gr_context = contextvars.copy_context()  # the task's context vars, as a copy
    here = greenlet.getcurrent()
    strand.parent = here
    message = strand.switch(*args)
    while not strand.dead:
        if not isinstance(message, _Await):  # pragma: no cover - only a foreign switch
            raise RuntimeError(
                f"a green strand switched out with {message!r}: switch only through plait"
            )
        try:
            value = await message.awaitable
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) and not isinstance(exc, Cancelled):
                exc = Cancelled(*exc.args)  # blocking-style code sees what a thread sees
            here = greenlet.getcurrent()
            strand.parent = here
            message = strand.throw(exc)
        else:
            here = greenlet.getcurrent()
            strand.parent = here
            message = strand.switch(value)
    return message


def wait_fd(fd: int, *, write: bool, timeout: float | None, on: object) -> bool:
    """From a green strand: park (through the kernel, so scopes, cancellation and
    instruments see it, parked on ``on``) until the loop sees ``fd`` readable (or
    writable); ``False`` after ``timeout`` seconds."""
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

    if write:
        loop.add_writer(fd, ready)
    else:
        loop.add_reader(fd, ready)
    try:
        return park(waiter, timeout)
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
