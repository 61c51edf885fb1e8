"""plait: coroutines, threads and processes braided into one API.

This module only re-exports; ``__all__`` is the public API (a test checks it).
"""

from __future__ import annotations

from plait._errors import (
    BrokenResourceError,
    BusyResourceError,
    Cancelled,
    ClosedError,
    DeadlockError,
    PlaitError,
    RemoteError,
    SerializationError,
    WorkerCrashed,
    WouldBlock,
)

__version__ = "0.1.0"

__all__ = [
    "BrokenResourceError",
    "BusyResourceError",
    "Cancelled",
    "ClosedError",
    "DeadlockError",
    "PlaitError",
    "RemoteError",
    "SerializationError",
    "WorkerCrashed",
    "WouldBlock",
    "__version__",
]
