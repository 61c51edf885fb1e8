"""Strands: every unit of execution plait knows about, and the registry that lists them.

A strand is a coroutine task, a thread, a process or a green task. Each has an id, a kind,
a name, the scope that owns it, and a state (running, parked on *what*, done). Diagnostics
and tracing read only this registry.

``current_strand()`` is on the hot path of every primitive, so it is two C calls and a dict
lookup: the running loop, its current task, and the task's strand. With the C accelerator
(``plait._fastlock``) it is one C call, and on Python 3.11 it skips asyncio's running-loop
lookup, which makes a system call (``getpid``) every time. Threads and tasks that
plait did not start (the main thread, a foreign ``asyncio.create_task``) are adopted on first
sight as *implicit* strands and leave the registry when they end.
"""

from __future__ import annotations

import abc
import asyncio
import itertools
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from plait._core.cancel import CancelScope
    from plait._core.parking import Waiter

__all__ = [
    "Strand",
    "StrandKind",
    "all_strands",
    "current_strand",
    "known_strand",
    "register",
    "thread_key",
    "thread_strand_of",
    "unregister",
]

# The C accelerator of the lock's and current_strand()'s hot paths (plait/_fastlock.c);
# without it (not built, or PLAIT_NO_SPEEDUPS=1) the same code runs in pure Python.
FASTLOCK: Any = None
if not os.environ.get("PLAIT_NO_SPEEDUPS"):
    try:
        from plait import _fastlock
    except ImportError:  # pragma: no cover - depends on the build
        pass
    else:
        if _fastlock.SEAM != 4:  # configure_*()'s arguments, LockCore's members, SharedInner
            raise ImportError(
                f"plait._fastlock ({_fastlock.__file__}) was built from another version of "
                "plait: rebuild it (pip install -e .), or set PLAIT_NO_SPEEDUPS=1"
            )
        FASTLOCK = _fastlock
        from collections.abc import Coroutine as _Coroutine

        # asyncio takes them wherever a coroutine goes (create_task, run, wait_for)
        _Coroutine.register(_fastlock.LockOp)
        _Coroutine.register(_fastlock.Yield)

StrandKind = Literal["async", "thread", "process", "green"]

_get_running_loop = asyncio._get_running_loop
_current_task = asyncio.current_task


class Strand(metaclass=abc.ABCMeta):
    """One unit of execution and its observable state.

    ``state`` is ``"new"``, ``"running"``, ``"parked"`` or ``"done"``; while parked,
    ``parked_on`` is the object it waits for and ``waiter`` its waiter (so a cancellation
    can wake it). ``cancel_scopes`` is the stack of sync cancel scopes of a thread strand.
    """

    __slots__ = (
        "__weakref__",
        "cancel_scopes",
        "ident",
        "implicit",
        "kind",
        "loop",
        "name",
        "parent",
        "parked_on",
        "pid",
        "sid",
        "state",
        "task",
        "waiter",
    )

    sid: int
    kind: StrandKind
    name: str
    parent: Any
    state: str
    parked_on: object | None
    waiter: Waiter | None
    loop: asyncio.AbstractEventLoop | None
    task: asyncio.Task[Any] | None
    ident: int | None
    pid: int | None
    implicit: bool
    cancel_scopes: list[CancelScope] | tuple[()]

    def __init__(
        self,
        kind: StrandKind,
        name: str | None = None,
        parent: Any = None,
        *,
        implicit: bool = False,
    ) -> None:
        self.sid = next(_ids)
        self.kind = kind
        self.name = name if name is not None else f"{kind}-{self.sid}"
        self.parent = parent
        self.state = "new"
        self.parked_on = None
        self.waiter = None
        self.loop = None
        self.task = None
        self.ident = None
        self.pid = None
        self.implicit = implicit
        self.cancel_scopes = ()  # a list once a sync scope is entered

    @property
    def id(self) -> int:
        """The strand's unique id in this process."""
        return self.sid

    def __repr__(self) -> str:
        where = f" on {self.parked_on!r}" if self.state == "parked" else ""
        return f"<Strand #{self.sid} {self.kind} {self.name!r} {self.state}{where}>"


_ids = itertools.count(1)


class _Registry:
    """The live strands of this process, by id.

    Plain dict operations are atomic under the GIL; the lock only guards snapshots
    against concurrent resizing on free-threaded builds.
    """

    __slots__ = ("by_id", "by_ident", "by_task", "local", "lock")

    def __init__(self) -> None:
        self.by_id: dict[int, Strand] = {}
        self.by_ident: dict[int, Strand] = {}  # thread strands by thread_key()
        self.by_task: dict[asyncio.Task[Any], Strand] = {}
        self.local = threading.local()
        self.lock = threading.Lock()


_registry = _Registry()
_by_task = _registry.by_task
_by_id_ref = _registry.by_id
_by_ident_ref = _registry.by_ident
_local = _registry.local


thread_key: Callable[[], int]
"""The calling thread's key for ``thread_strand_of``: with the C accelerator its thread
state's id, never reused; without it the thread ident (reused once a thread ends)."""
thread_key = FASTLOCK.thread_key if FASTLOCK is not None else threading.get_ident


def register(strand: Strand) -> None:
    """Add ``strand`` to the registry: coroutine strands by task, the others by id."""
    if strand.task is not None:
        _by_task[strand.task] = strand
    else:
        _registry.by_id[strand.sid] = strand


def unregister(strand: Strand) -> None:
    """Remove ``strand`` from the registry; it is done."""
    strand.state = "done"
    if strand.task is not None:
        _by_task.pop(strand.task, None)
    else:
        _registry.by_id.pop(strand.sid, None)


def bind_thread(strand: Strand) -> None:
    """Make ``strand`` the current strand of the calling thread."""
    strand.ident = threading.get_ident()
    _local.strand = strand
    _registry.by_ident[thread_key()] = strand


def unbind_thread() -> None:
    """Forget the calling thread's strand (at the end of a thread strand)."""
    strand = _local.__dict__.pop("strand", None)
    key = thread_key()
    if strand is not None and _registry.by_ident.get(key) is strand:
        del _registry.by_ident[key]


def thread_strand_of(key: int, context: int = 0) -> Strand | None:
    """The live strand of the thread whose :data:`thread_key` is ``key``, if plait knows it
    (a lock's fast path records only its taker's key; diagnostics resolve it here, lazily).

    ``context`` is the ``id()`` of the contextvars context the taker ran in, when known:
    a green strand runs in a context of its own (:data:`green_by_context`), which tells
    it apart from the other green strands of its loop's thread."""
    if context and green_by_context:
        green = green_by_context.get(context)
        if green is not None and green.state != "done":
            return green
    return _registry.by_ident.get(key)


#: The live green strands by ``id()`` of the context each runs in (``plait._core.green``).
green_by_context: dict[int, Strand] = {}


class _ThreadReaper:
    """Held in a thread's local storage: when the thread ends, its implicit strand goes."""

    __slots__ = ("key", "strand")

    def __init__(self, strand: Strand, key: int) -> None:
        self.strand = strand
        self.key = key

    def __del__(self) -> None:
        strand = self.strand
        strand.state = "done"
        by_id = _by_id_ref  # a module global may already be None at interpreter exit
        if by_id is not None:
            by_id.pop(strand.sid, None)
        by_ident = _by_ident_ref
        if by_ident is not None and by_ident.get(self.key) is strand:
            del by_ident[self.key]


def _adopt_thread() -> Strand:
    thread = threading.current_thread()
    strand = Strand("thread", thread.name, implicit=True)
    strand.state = "running"
    strand.ident = thread.ident
    _local.strand = strand
    key = thread_key()
    _local.reaper = _ThreadReaper(strand, key)
    _registry.by_ident[key] = strand
    register(strand)
    return strand


def _forget_task(task: asyncio.Task[Any]) -> None:
    strand = _by_task.pop(task, None)
    if strand is not None:
        strand.state = "done"


def _adopt_task(task: asyncio.Task[Any], loop: asyncio.AbstractEventLoop) -> Strand:
    strand = Strand("async", task.get_name(), implicit=True)
    strand.state = "running"
    strand.task = task
    strand.loop = loop
    register(strand)
    task.add_done_callback(_forget_task)
    return strand


# Task types whose instances are their own strand (the coroutine strands a TaskGroup spawns
# on its own loop: see plait._tasks). They are not kept in the registry -- asyncio already
# lists them per loop -- so spawning one costs no registry entry.
_self_strand_types: set[type] = set()
_self_strand_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def register_self_strand_type(cls: type) -> None:
    """Declare that tasks of type ``cls`` carry the strand fields themselves."""
    _self_strand_types.add(cls)
    Strand.register(cls)


def note_self_strand_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Remember ``loop`` as one whose tasks may be self-strands (for :func:`all_strands`)."""
    if loop not in _self_strand_loops:
        _self_strand_loops.add(loop)


def _self_strands() -> list[Strand]:
    found: list[Any] = []
    for loop in list(_self_strand_loops):
        if loop.is_closed():
            continue
        for _ in range(5):
            try:
                tasks = asyncio.all_tasks(loop)
                break
            except RuntimeError:  # the task set changed while it was copied: again
                continue
        else:  # pragma: no cover - only under extreme churn
            tasks = set()
        found.extend(t for t in tasks if type(t) in _self_strand_types)
    return found


def _current_strand_py() -> Strand:
    """The strand that is running this code (a task's strand inside a coroutine)."""
    loop = _get_running_loop()
    if loop is not None:
        task = _current_task(loop)
        if task is not None:
            if type(task) in _self_strand_types:
                return task  # type: ignore[return-value]
            strand = _by_task.get(task)
            if strand is None:
                return _adopt_task(task, loop)
            return strand
    try:
        return _local.strand  # type: ignore[no-any-return]
    except AttributeError:
        return _adopt_thread()


current_strand: Callable[[], Strand]
"""The strand that is running this code (a task's strand inside a coroutine)."""
if FASTLOCK is not None:
    FASTLOCK.configure_strands(
        current_tasks=getattr(asyncio.tasks, "_current_tasks", None),
        by_task=_by_task,
        self_strand_types=_self_strand_types,
        get_running_loop=_get_running_loop,
        local=_local,
        fallback=_current_strand_py,
    )
    os.register_at_fork(after_in_child=FASTLOCK.forked)
    current_strand = FASTLOCK.current_strand
else:
    current_strand = _current_strand_py


def known_strand() -> Strand | None:
    """The running strand, or ``None`` on a thread plait has not adopted yet -- without
    adopting it (an instrument's hook may run on a thread still starting, where adopting
    it would register it with ``threading`` before its own bootstrap does)."""
    if _get_running_loop() is not None:
        return current_strand()
    return getattr(_local, "strand", None)


def current_thread_strand() -> Strand:
    """The strand of the calling thread, ignoring any coroutine running on it."""
    try:
        return _local.strand  # type: ignore[no-any-return]
    except AttributeError:
        return _adopt_thread()


def all_strands() -> list[Strand]:
    """A snapshot of every live strand of this process, oldest first."""
    with _registry.lock:
        for _ in range(5):
            try:
                strands = [*_registry.by_id.values(), *_by_task.values(), *_self_strands()]
                break
            except RuntimeError:  # resized by another thread while we copied: again
                continue
        else:  # pragma: no cover - only under extreme churn
            strands = []
    strands.sort(key=lambda s: s.sid)
    return strands


def iter_parked() -> Iterator[Strand]:
    """The live strands that are parked right now."""
    return (s for s in all_strands() if s.state == "parked")
