"""What may not cross to a cluster task, and the pickling that says so.

plait's shared objects (queues, locks, events, semaphores, shared dicts and lists, pipes)
cross to another process *on this machine* as a handle to shared memory or to a file
descriptor. On a cluster the task may run on another machine, where such a handle names
nothing -- or worse, something else. So a cluster backend pickles its calls with
:func:`cluster_dumps`, which refuses them by name, at the call, and says what to use
instead. The local pool keeps pickling them normally (there they work).
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any

from plait._ipc.serialize import PROTOCOL, _CloudPickler, _Pickler, dumps

__all__ = ["cluster_dumps", "crossing_error"]

# Modules whose objects are tied to this machine (shared memory, descriptors, semaphores).
# plait's public classes say ``plait`` as their module (``plait.Queue``, ``plait.Lock``):
# every one that pickles at all does so as a handle to this machine's shared memory.
_MACHINE_BOUND: tuple[str, ...] = (
    "plait",
    "plait._sync",
    "plait._channels",
    "plait.shared",
    "plait._ipc",
    "multiprocessing.synchronize",
    "multiprocessing.queues",
    "multiprocessing.shared_memory",
    "multiprocessing.sharedctypes",
    "multiprocessing.connection",
)

_ALTERNATIVES = {
    "dask": {
        "queue": "distributed.Queue",
        "lock": "distributed.Lock (or distributed.MultiLock)",
        "semaphore": "distributed.Semaphore",
        "event": "distributed.Event",
        "value": "distributed.Variable, or return the value from the task",
    },
    "ray": {
        "queue": "ray.util.queue.Queue",
        "lock": "a Ray actor that owns the state",
        "semaphore": "a Ray actor that owns the state",
        "event": "a Ray actor that owns the state",
        "value": "a Ray actor, or return the value from the task",
    },
}


def _is_machine_bound(obj: Any) -> bool:
    module = getattr(type(obj), "__module__", "") or ""
    if (
        isinstance(obj, BaseException)
        or module == "plait._ipc.serialize"
        or dataclasses.is_dataclass(obj)
    ):
        return False
    return module in _MACHINE_BOUND or module.startswith(_MACHINE_BOUND[1:])


def crossing_error(obj: Any, backend: str) -> TypeError:
    """The error for ``obj`` sent to a ``backend`` task: what it is and what to use."""
    name = type(obj).__qualname__
    lowered = name.lower()
    kinds = _ALTERNATIVES.get(backend, _ALTERNATIVES["dask"])
    kind = next((k for k in ("queue", "semaphore", "lock", "event") if k in lowered), "value")
    if "pipe" in lowered or "connection" in lowered:
        kind = "queue"
    return TypeError(
        f"cannot send {type(obj).__module__}.{name} to a {backend} task: it is shared "
        f"through this machine's memory, and a cluster task may run on another machine. "
        f"Use {kinds[kind]} instead, or run this work on a local plait.Pool "
        f"(backend='local'), where it works"
    )


class _Refused(Exception):
    def __init__(self, obj: Any) -> None:
        super().__init__()
        self.obj = obj


class _ClusterPickler(_Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if _is_machine_bound(obj):
            raise _Refused(obj)
        return super().reducer_override(obj)


class _ClusterCloudPickler(_CloudPickler):
    def reducer_override(self, obj: Any) -> Any:
        if _is_machine_bound(obj):
            raise _Refused(obj)
        return super().reducer_override(obj)


def cluster_dumps(obj: Any, *, what: str = "object", backend: str = "dask") -> bytes:
    """:func:`plait._ipc.serialize.dumps` that refuses machine-bound objects (see above)."""
    for pickler in (_ClusterPickler, _ClusterCloudPickler):
        buf = io.BytesIO()
        try:
            pickler(buf, protocol=PROTOCOL).dump(obj)
        except _Refused as refused:
            raise crossing_error(refused.obj, backend) from None
        except Exception:
            continue
        return buf.getvalue()
    return dumps(obj, what=what)  # neither would: raises the error that names the culprit
