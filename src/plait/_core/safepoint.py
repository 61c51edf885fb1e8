"""Safe points: where an asynchronous cancellation (a signal) may land, and where it may not.

A process strand is cancelled by SIGTERM, whose Python handler runs between two bytecodes of
the main thread. Landing between a shared semaphore's acquire and its release would leave the
object taken in every process for ever. So plait's own critical sections -- a shared lock's
bookkeeping, a ring's push or pop -- are bracketed by :func:`enter`/:func:`leave` (or ``with
critical():``), and a signal handler hands its exception to :func:`deliver`, which raises at
once outside a critical section and otherwise defers it to the moment the outermost section
ends.

Only the main thread runs signal handlers, so only its depth matters; other threads pay one
``get_ident`` comparison. Waits inside a critical section are forbidden: a deferred
cancellation would wait with them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["critical", "deliver", "enter", "in_critical", "leave", "pending"]

_main_ident = threading.main_thread().ident


class _State:
    """The main thread's critical depth and the cancellation waiting for it to reach 0."""

    __slots__ = ("depth", "pending")

    def __init__(self) -> None:
        self.depth = 0
        self.pending: Callable[[], None] | None = None


_state = _State()
_get_ident = threading.get_ident


def enter() -> None:
    """Start a critical section (nestable); no signal-raised cancellation lands inside."""
    if _get_ident() == _main_ident:
        _state.depth += 1


def leave() -> None:
    """End a critical section; the outermost one raises a cancellation deferred meanwhile."""
    if _get_ident() != _main_ident:
        return
    state = _state
    state.depth -= 1
    if state.depth == 0 and state.pending is not None:
        raise_it, state.pending = state.pending, None
        raise_it()


@contextmanager
def critical() -> Iterator[None]:
    """``with critical():`` -- :func:`enter` and :func:`leave` around a block."""
    enter()
    try:
        yield
    finally:
        leave()


def in_critical() -> bool:
    """Whether the main thread is inside a critical section now."""
    return _state.depth > 0


def deliver(raise_it: Callable[[], None]) -> None:
    """From a signal handler: run ``raise_it`` now, or when the critical section ends."""
    if _state.depth > 0:
        _state.pending = raise_it
        return
    raise_it()


def pending() -> bool:
    """Whether a cancellation waits for the current critical section to end."""
    return _state.pending is not None


def _after_fork() -> None:
    global _main_ident
    _main_ident = threading.main_thread().ident
    _state.depth = 0
    _state.pending = None


os.register_at_fork(after_in_child=_after_fork)
