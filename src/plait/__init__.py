"""plait: coroutines, threads and processes braided into one API.

This module only re-exports; ``__all__`` is the public API (a test checks it).
"""

from __future__ import annotations

import builtins as _builtins
import multiprocessing as _multiprocessing
import sys as _sys
import threading as _threading
import types as _types
from typing import Any as _Any

from plait._channels import (
    Connection,
    ConnectionStatistics,
    Empty,
    Full,
    LifoQueue,
    Pipe,
    PriorityQueue,
    Queue,
    QueueStatistics,
    SelectCase,
    Selected,
    SimpleQueue,
    async_select,
    select,
)
from plait._core import (
    CancelScope,
    Instrument,
    Strand,
    add_instrument,
    all_strands,
    async_checkpoint,
    async_sleep,
    await_,
    checkpoint,
    current_strand,
    fail_after,
    fail_at,
    move_on_after,
    move_on_at,
    remove_instrument,
    run,
    sleep,
)
from plait._errors import (
    AuthenticationError,
    BrokenResourceError,
    BufferTooShort,
    BusyResourceError,
    CancellationIgnored,
    Cancelled,
    ClosedError,
    DeadlockError,
    DeserializationError,
    LockOrderWarning,
    PlaitError,
    ProcessError,
    RemoteError,
    SerializationError,
    ShutDown,
    ThreadError,
    TraceOutputError,
    WorkerCrashed,
    WouldBlock,
)
from plait._processes import Process
from plait._processes._start import (
    Array,
    RawArray,
    RawValue,
    Value,
    get_context,
    get_start_method,
    set_start_method,
)
from plait._sync import (
    Barrier,
    BarrierStatistics,
    BoundedSemaphore,
    BrokenBarrierError,
    CapacityLimiter,
    CapacityLimiterStatistics,
    Condition,
    ConditionStatistics,
    Event,
    EventStatistics,
    Lock,
    LockStatistics,
    RLock,
    Semaphore,
    SemaphoreStatistics,
)
from plait._tasks import Task, TaskGroup, gil_enabled
from plait._threads import Thread, Timer
from plait.diagnostics import debug, detect_deadlocks, dump, ignore_deadlocks
from plait.pool import AsyncResult, Pool, PoolClosedError, PoolStatistics, PoolTimeoutError
from plait.shared import Manager  # multiprocessing's API, no server process (plait.shared)
from plait.trace import trace, trace_span

__version__ = "0.1.0"

# threading's module-level helpers, so that `import plait as threading` keeps working.
# These are threading's own: they act on every thread, plait's included.
active_count = _threading.active_count
current_thread = _threading.current_thread
currentThread = _threading.current_thread
enumerate = _threading.enumerate
get_ident = _threading.get_ident
get_native_id = _threading.get_native_id
local = _threading.local
main_thread = _threading.main_thread
settrace = _threading.settrace
setprofile = _threading.setprofile
gettrace = _threading.gettrace
getprofile = _threading.getprofile
stack_size = _threading.stack_size
ExceptHookArgs = _threading.ExceptHookArgs
TIMEOUT_MAX = _threading.TIMEOUT_MAX
# `excepthook` is threading's, read and written through (see _PlaitModule below): there is
# one hook per process, and plait.Thread reports through it as threading.Thread does.

# multiprocessing's module-level helpers, so that `import plait as multiprocessing` works.
# The stdlib's own, where plait has nothing of its own to add.
active_children = _multiprocessing.active_children
allow_connection_pickling = _multiprocessing.allow_connection_pickling
cpu_count = _multiprocessing.cpu_count
current_process = _multiprocessing.current_process
freeze_support = _multiprocessing.freeze_support
get_all_start_methods = _multiprocessing.get_all_start_methods
get_logger = _multiprocessing.get_logger
log_to_stderr = _multiprocessing.log_to_stderr
parent_process = _multiprocessing.parent_process
reducer = _multiprocessing.reducer
set_executable = _multiprocessing.set_executable
set_forkserver_preload = _multiprocessing.set_forkserver_preload
# The builtin itself: `except plait.TimeoutError` catches fail_after's, select(timeout=)'s
# and the pool's (PoolTimeoutError subclasses it and multiprocessing.TimeoutError).
TimeoutError = _builtins.TimeoutError
# plait's Queue has task_done() and join(), in threads and processes alike.
JoinableQueue = Queue

__all__ = [
    "TIMEOUT_MAX",
    "Array",
    "AsyncResult",
    "AuthenticationError",
    "Barrier",
    "BarrierStatistics",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "BrokenResourceError",
    "BufferTooShort",
    "BusyResourceError",
    "CancelScope",
    "CancellationIgnored",
    "Cancelled",
    "CapacityLimiter",
    "CapacityLimiterStatistics",
    "ClosedError",
    "Condition",
    "ConditionStatistics",
    "Connection",
    "ConnectionStatistics",
    "DeadlockError",
    "DeserializationError",
    "Empty",
    "Event",
    "EventStatistics",
    "ExceptHookArgs",
    "Full",
    "Instrument",
    "JoinableQueue",
    "LifoQueue",
    "Lock",
    "LockOrderWarning",
    "LockStatistics",
    "Manager",
    "Pipe",
    "PlaitError",
    "Pool",
    "PoolClosedError",
    "PoolStatistics",
    "PoolTimeoutError",
    "PriorityQueue",
    "Process",
    "ProcessError",
    "Queue",
    "QueueStatistics",
    "RLock",
    "RawArray",
    "RawValue",
    "RemoteError",
    "SelectCase",
    "Selected",
    "Semaphore",
    "SemaphoreStatistics",
    "SerializationError",
    "ShutDown",
    "SimpleQueue",
    "Strand",
    "Task",
    "TaskGroup",
    "Thread",
    "ThreadError",
    "TimeoutError",
    "Timer",
    "TraceOutputError",
    "Value",
    "WorkerCrashed",
    "WouldBlock",
    "__version__",
    "active_children",
    "active_count",
    "add_instrument",
    "all_strands",
    "allow_connection_pickling",
    "async_checkpoint",
    "async_select",
    "async_sleep",
    "await_",
    "checkpoint",
    "cpu_count",
    "currentThread",
    "current_process",
    "current_strand",
    "current_thread",
    "debug",
    "detect_deadlocks",
    "dump",
    "enumerate",
    "excepthook",
    "fail_after",
    "fail_at",
    "freeze_support",
    "get_all_start_methods",
    "get_context",
    "get_ident",
    "get_logger",
    "get_native_id",
    "get_start_method",
    "getprofile",
    "gettrace",
    "gil_enabled",
    "ignore_deadlocks",
    "local",
    "log_to_stderr",
    "main_thread",
    "move_on_after",
    "move_on_at",
    "parent_process",
    "reducer",
    "remove_instrument",
    "run",
    "select",
    "set_executable",
    "set_forkserver_preload",
    "set_start_method",
    "setprofile",
    "settrace",
    "sleep",
    "stack_size",
    "trace",
    "trace_span",
]

# Names the running Python's stdlib has and older ones lack (typed as the oldest we support).
_threading_now: _Any = _threading
if hasattr(_threading_now, "settrace_all_threads"):  # 3.12+
    settrace_all_threads = _threading_now.settrace_all_threads
    setprofile_all_threads = _threading_now.setprofile_all_threads
    __all__ += ["setprofile_all_threads", "settrace_all_threads"]
del _threading_now

# Public objects show as plait.X in reprs, tracebacks and pickles.
for _name in __all__:
    _obj = globals().get(_name)
    if getattr(_obj, "__module__", "").startswith("plait."):
        try:
            _obj.__module__ = "plait"
        except (AttributeError, TypeError):
            pass
del _name, _obj


def __getattr__(name: str) -> _Any:
    if name == "excepthook":
        return _threading.excepthook
    raise AttributeError(f"module 'plait' has no attribute {name!r}")


class _PlaitModule(_types.ModuleType):
    """``plait.excepthook = hook`` sets threading's hook: one hook per process, the one
    that ``plait.Thread`` (a ``threading.Thread``) reports uncaught exceptions to."""

    def __setattr__(self, name: str, value: _Any) -> None:
        if name == "excepthook":
            _threading.excepthook = value
            return
        super().__setattr__(name, value)

    def __reduce__(self) -> tuple[_Any, tuple[str]]:
        # A module pickles by name (cloudpickle matches ModuleType exactly, not a subclass):
        # a __main__ function that uses `plait.` still crosses to a process.
        import importlib

        return importlib.import_module, ("plait",)

    def __delattr__(self, name: str) -> None:
        if name == "excepthook":
            raise AttributeError("plait.excepthook cannot be deleted (threading's cannot)")
        super().__delattr__(name)


_sys.modules[__name__].__class__ = _PlaitModule
# /dev/shm left by killed plait processes of this user goes when the next plait program
# starts (issue 18 point 6; cheap: one listing, see plait._ipc.shm.sweep_at_start).
from plait._ipc import shm as _shm  # noqa: E402

_shm.sweep_at_start()
del _shm
