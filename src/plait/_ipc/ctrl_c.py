"""Ctrl-C while a child process starts: kept until the child says who handles it.

A terminal's Ctrl-C signals the whole process group, so a child plait is starting gets it
too, often before its own code runs (the interpreter starting under spawn, the unpickling
in a fork server's child). Python's default handler would raise ``KeyboardInterrupt``
there, and the child would end as a crash of its own (``WorkerCrashed``) instead of the
user's Ctrl-C. So until the child *takes over* (:func:`take_over`) no Ctrl-C acts in it:

* under spawn and fork the parent starts it with SIGINT blocked in the starting thread
  (:func:`held`): the mask crosses fork and exec, and a Ctrl-C stays pending (the stdlib
  starts its resource tracker the same way, bpo-33613);
* under forkserver the server preloads this module first, which installs a handler that
  only notes the Ctrl-C; the server restores that handler in every child it forks.

Each child then takes over as what it is: a process strand (the Ctrl-C is its parent's:
nothing happens), a drop-in ``plait.Process`` (Python's ``KeyboardInterrupt``; one that
came during start-up is raised as its code begins, as multiprocessing's child would have
had it), a pool worker (ignored). A child of someone else's that the same fork server
forks (multiprocessing's own ``Process``) gets Python's handler back, and its missed
Ctrl-C, as its bootstrap begins.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from multiprocessing import process as mp_process
from multiprocessing import util
from types import FrameType
from typing import Literal, TypeVar

__all__ = ["Owner", "held", "parents_ctrl_c", "take_over", "takes_ctrl_c"]

Owner = Literal["parent", "own", "ignored"]
_F = TypeVar("_F", bound=Callable[..., object])
_MARK = "_plait_takes_ctrl_c"

_noted_in = 0  # the pid in which a Ctrl-C came before anyone took over


def parents_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """SIGINT in a process strand: nothing happens here.

    A process strand gets the same Ctrl-C as its parent, often first. Raising
    ``KeyboardInterrupt`` here would end the strand with an error of its own
    (``WorkerCrashed``) before the parent could act on its copy. The parent's
    ``KeyboardInterrupt`` cancels the group, which stops this process (SIGTERM, then
    SIGKILL after the grace). A handler, not ``SIG_IGN``: programs this one ``exec``s get
    the default action back, so a Ctrl-C still ends them.
    """


def _noted(signum: int, frame: FrameType | None) -> None:
    """SIGINT before the child took over: kept for :func:`take_over` to decide."""
    global _noted_in
    _noted_in = os.getpid()


@contextlib.contextmanager
def held(method: str | None) -> Iterator[None]:
    """Block SIGINT in this thread while it starts a child by ``method`` (spawn or fork:
    the child inherits the block). A Ctrl-C meanwhile is not lost: another thread takes
    it, or it is delivered when the block ends.

    Nothing for forkserver: its children start with the handler the server preloaded, and
    the server itself, shared with multiprocessing's own children, must not start blocked.
    """
    if method == "forkserver":
        yield
        return
    if method != "fork":  # (starting the tracker unblocks SIGINT here: it must run first)
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def takes_ctrl_c(fn: _F) -> _F:
    """Mark a child's entry point (a pool worker's ``main``) that calls :func:`take_over`
    itself: a fork server's child running it is plait's, not someone else's."""
    setattr(fn, _MARK, True)
    return fn


def take_over(owner: Owner) -> None:
    """In a starting child's main thread: say who handles its Ctrl-C from now on.

    ``"parent"``: a process strand's (:func:`parents_ctrl_c`); ``"own"``: Python's
    ``KeyboardInterrupt`` (raised here for a Ctrl-C that came during start-up);
    ``"ignored"``: a pool worker's. A Ctrl-C held back since the start reaches the new
    handler.
    """
    global _noted_in
    current = signal.getsignal(signal.SIGINT)
    missed = current is _noted and _noted_in == os.getpid()
    _noted_in = 0
    if owner == "parent":
        signal.signal(signal.SIGINT, parents_ctrl_c)
    elif owner == "ignored":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    elif current is _noted:  # (else: what the child inherited, as multiprocessing leaves it)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if missed and owner == "own":
        raise KeyboardInterrupt


def _give_back_if_not_ours(anchor: object) -> None:
    """An after-fork hook, run as every fork-server child's bootstrap begins: a child that
    is not plait's gets Python's handler back, and a Ctrl-C it missed."""
    if signal.getsignal(signal.SIGINT) is not _noted:
        return  # (taken over already)
    process = mp_process.current_process()
    if getattr(process, _MARK, False) or getattr(getattr(process, "_target", None), _MARK, False):
        return  # plait's: it takes over itself
    take_over("own")


class _Anchor:
    """What the after-fork hook hangs on (multiprocessing keeps it by weak reference)."""


_anchor = _Anchor()


def _in_fork_server_preload() -> bool:
    forkserver = sys.modules.get("multiprocessing.forkserver")
    if forkserver is None:
        return False
    code = forkserver.main.__code__
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


if _in_fork_server_preload():
    signal.signal(signal.SIGINT, _noted)
    util.register_after_fork(_anchor, _give_back_if_not_ours)
