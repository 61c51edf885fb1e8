"""Where a strand is: its frames (thread, coroutine, or a coroutine blocking its loop's
thread), the first frame outside plait (the user's line), and a name for an object.

Read only when something is reported (a deadlock, a dump), never on a wait's path.
"""

from __future__ import annotations

import os
import sys
from types import FrameType
from typing import Any

from plait._core.strands import Strand

__all__ = ["describe_strand", "frames_of", "name_of", "site_of", "user_frame"]

_PLAIT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _is_plait(frame: FrameType) -> bool:
    return frame.f_code.co_filename.startswith(_PLAIT_DIR)


def _chain(frame: FrameType | None) -> list[FrameType]:
    """``frame`` and its callers, outermost first."""
    out = []
    while frame is not None:
        out.append(frame)
        frame = frame.f_back
    out.reverse()
    return out


def _coro_frames(coro: Any) -> list[FrameType]:
    """A suspended coroutine's frames, outermost first (following what each awaits)."""
    out = []
    for _ in range(1000):
        if coro is None:
            break
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        out.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return out


def _thread_of_loop(loop: Any) -> int | None:
    ident = getattr(loop, "_thread_id", None)
    return ident if isinstance(ident, int) else None


def frames_of(strand: Strand, *, current: FrameType | None = None) -> list[FrameType]:
    """``strand``'s frames, outermost first; ``current`` is the caller's own frame when
    ``strand`` is the calling strand. Empty when they cannot be seen (another process)."""
    if current is not None:
        return _chain(current)
    if strand.kind == "thread":
        ident = strand.ident
        frame = sys._current_frames().get(ident) if ident is not None else None
        return _chain(frame)
    if strand.kind == "green":  # parked: its greenlet's frame is where it switched out
        waiter = strand.waiter
        greenlet = getattr(getattr(waiter, "fut", None), "greenlet", None)
        return _chain(getattr(greenlet, "gr_frame", None))
    if strand.kind == "async":
        waiter = strand.waiter
        if waiter is not None and waiter.fut is None:
            # A blocking call inside a coroutine: the loop's thread shows where it blocks.
            ident = _thread_of_loop(strand.loop)
            if ident is not None:
                return _chain(sys._current_frames().get(ident))
        task: Any = strand if hasattr(strand, "get_coro") else strand.task
        if task is not None and hasattr(task, "get_coro"):
            return _coro_frames(task.get_coro())
    return []


def user_frame(frames: list[FrameType]) -> FrameType | None:
    """The innermost frame outside plait's own package (where the user's code waits)."""
    for frame in reversed(frames):
        if not _is_plait(frame):
            return frame
    return frames[-1] if frames else None


def site_of(frame: FrameType | None) -> str:
    """``file:line (function)`` of ``frame``; ``"?"`` when unknown."""
    if frame is None:
        return "?"
    code = frame.f_code
    return f"{code.co_filename}:{frame.f_lineno} ({code.co_name})"


def name_of(obj: object, frames: list[FrameType]) -> str | None:
    """A name the user's code knows ``obj`` by: a local, an attribute of ``self``, or a
    global of one of ``frames`` (innermost first); ``None`` if none is found."""
    for frame in reversed(frames):
        if _is_plait(frame):
            continue
        for name, value in frame.f_locals.items():
            if value is obj:
                return name
        me = frame.f_locals.get("self")
        if me is not None:
            for name, value in getattr(me, "__dict__", {}).items():
                if value is obj:
                    return f"self.{name}"
        for name, value in frame.f_globals.items():
            if value is obj:
                return name
    return None


def describe_strand(strand: Strand) -> str:
    """``thread 'Thread-1' (#7)``: kind, name and id."""
    return f"{strand.kind} {strand.name!r} (#{strand.sid})"
