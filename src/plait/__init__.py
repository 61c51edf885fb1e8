"""plait: coroutines, threads and processes braided into one API.

This module only re-exports; ``__all__`` is the public API (a test checks it).
"""

from __future__ import annotations

import multiprocessing as _multiprocessing
import threading as _threading

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
    BrokenResourceError,
    BusyResourceError,
    CancellationIgnored,
    Cancelled,
    ClosedError,
    DeadlockError,
    PlaitError,
    RemoteError,
    SerializationError,
    WorkerCrashed,
    WouldBlock,
)
from plait._processes import Process
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
from plait._threads import Thread
from plait.pool import AsyncResult, Pool, PoolClosedError, PoolStatistics, PoolTimeoutError

__version__ = "0.1.0"

# threading's module-level helpers, so that `import plait as threading` keeps working.
active_count = _threading.active_count
current_thread = _threading.current_thread
currentThread = _threading.current_thread
enumerate = _threading.enumerate
get_ident = _threading.get_ident
local = _threading.local
main_thread = _threading.main_thread
TIMEOUT_MAX = _threading.TIMEOUT_MAX

# multiprocessing's module-level helpers, so that `import plait as multiprocessing` works.
active_children = _multiprocessing.active_children
cpu_count = _multiprocessing.cpu_count
current_process = _multiprocessing.current_process
parent_process = _multiprocessing.parent_process
# The stdlib's Manager for now, so the seed's Manager program runs under
# `import plait as multiprocessing`; plait's own shared state (plait.shared) will replace it.
Manager = _multiprocessing.Manager
TimeoutError = PoolTimeoutError

__all__ = [
    "TIMEOUT_MAX",
    "AsyncResult",
    "Barrier",
    "BarrierStatistics",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "BrokenResourceError",
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
    "Empty",
    "Event",
    "EventStatistics",
    "Full",
    "Instrument",
    "LifoQueue",
    "Lock",
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
    "Queue",
    "QueueStatistics",
    "RLock",
    "RemoteError",
    "SelectCase",
    "Selected",
    "Semaphore",
    "SemaphoreStatistics",
    "SerializationError",
    "SimpleQueue",
    "Strand",
    "Task",
    "TaskGroup",
    "Thread",
    "TimeoutError",
    "WorkerCrashed",
    "WouldBlock",
    "__version__",
    "active_children",
    "active_count",
    "add_instrument",
    "all_strands",
    "async_checkpoint",
    "async_select",
    "async_sleep",
    "checkpoint",
    "cpu_count",
    "currentThread",
    "current_process",
    "current_strand",
    "current_thread",
    "enumerate",
    "fail_after",
    "fail_at",
    "get_ident",
    "gil_enabled",
    "local",
    "main_thread",
    "move_on_after",
    "move_on_at",
    "parent_process",
    "remove_instrument",
    "run",
    "select",
    "sleep",
]

# Public objects show as plait.X in reprs, tracebacks and pickles.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("plait."):
        try:
            _obj.__module__ = "plait"
        except (AttributeError, TypeError):
            pass
del _name, _obj

# /dev/shm left by killed plait processes of this user goes when the next plait program
# starts (issue 18 point 6; cheap: one listing, see plait._ipc.shm.sweep_at_start).
from plait._ipc import shm as _shm  # noqa: E402

_shm.sweep_at_start()
del _shm
