"""Where a process strand runs: a warm worker process, or a process of its own.

``spawn(f, on="process")`` borrows a warm worker from the elastic set that
:mod:`plait.pool._warm` keeps (the pool's workers, reused: about 0.2 ms a round trip
instead of 10-20 ms for a new process). The pool sits above this layer, so it offers its
warm set here when it is imported (:func:`provide_warm_workers`; ``import plait`` does);
without it, with ``isolated=True``, and when an argument can only be inherited by a starting
process (multiprocessing's ``Value``, ``Lock``, ...), a strand gets a dedicated process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plait._errors import SerializationError

__all__ = ["provide_warm_workers", "start_process_strand"]

# run_warm(fn, args, *, name, start_method) -> a handle with future/pid/terminate/kill
_warm_starter: Callable[..., Any] | None = None


def provide_warm_workers(starter: Callable[..., Any]) -> None:
    """Called by :mod:`plait.pool` on import: process strands run on its warm workers."""
    global _warm_starter
    _warm_starter = starter


def start_process_strand(
    fn: Callable[..., Any], args: tuple[Any, ...], *, name: str, isolated: bool
) -> Any:
    """Start ``fn(*args)`` as a process strand; the handle the task holds (``future``,
    ``pid``, ``terminate(grace)``, ``kill()``)."""
    from plait._processes import Process, start_process_call

    if not isolated and _warm_starter is not None:
        try:
            return _warm_starter(fn, args, name=name, start_method=Process._plait_default_method)
        except SerializationError:
            # What only a starting process may inherit (multiprocessing's Value, Array, Lock,
            # ...) cannot be sent to a running worker: such a strand gets a process of its
            # own (and an argument that pickles nowhere fails there, with the same message).
            pass
    return start_process_call(fn, args, {}, name=name)
