"""multiprocessing's start-method API (``set_start_method``, ``get_start_method``,
``get_context``) over ``plait.Process``.

A program that says ``multiprocessing.set_start_method("spawn")`` means "start my processes
this way": under ``import plait as multiprocessing`` that must reach ``plait.Process``, whose
default is plait's own (``forkserver``, see ``plait._ipc.context``), not the stdlib's.
The choice lives on :class:`Process` (a class attribute), the one place that reads it.
"""

from __future__ import annotations

import multiprocessing
from typing import Any, cast

from plait._ipc.context import StartMethod, default_start_method
from plait._ipc.context import get_context as _stdlib_context
from plait._processes._process import Process

__all__ = [
    "Array",
    "ForkProcess",
    "ForkServerProcess",
    "ProcessContext",
    "RawArray",
    "RawValue",
    "SpawnProcess",
    "Value",
    "get_context",
    "get_start_method",
    "set_start_method",
]

_METHODS = ("forkserver", "spawn", "fork")


def _check_method(method: object) -> StartMethod:
    if method not in _METHODS:
        raise ValueError(f"cannot find context for {method!r}: use one of {', '.join(_METHODS)}")
    return cast(StartMethod, method)


def set_start_method(method: str | None, force: bool = False) -> None:
    """Choose how :class:`plait.Process` (and ``on="process"`` strands) start children.

    As multiprocessing's: setting it twice without ``force=True`` raises ``RuntimeError``;
    ``None`` with ``force=True`` goes back to plait's default.
    """
    if Process._plait_default_method is not None and not force:
        raise RuntimeError("context has already been set")
    if method is None and not force:
        raise ValueError("set_start_method(None) needs force=True")
    Process._plait_default_method = None if method is None else _check_method(method)


def get_start_method(allow_none: bool = False) -> str | None:
    """The start method :class:`plait.Process` uses (``allow_none``: ``None`` if unset)."""
    chosen = Process._plait_default_method
    if chosen is None and not allow_none:
        return default_start_method()
    return chosen


class ForkServerProcess(Process):
    """:class:`plait.Process` that starts its child from the fork server."""

    _plait_default_method = "forkserver"


class SpawnProcess(Process):
    """:class:`plait.Process` that starts its child in a fresh interpreter."""

    _plait_default_method = "spawn"


class ForkProcess(Process):
    """:class:`plait.Process` that forks the caller (only safe with no other threads)."""

    _plait_default_method = "fork"


_PROCESS_CLASSES: dict[str, type[Process]] = {
    "forkserver": ForkServerProcess,
    "spawn": SpawnProcess,
    "fork": ForkProcess,
}


class ProcessContext:
    """What ``multiprocessing.get_context(method)`` returns, over plait's classes.

    ``Process`` starts children with ``method``; plait's primitives, queues, ``Pipe`` and
    ``Pool`` are plait's; everything else (``Value``, ``Array``, ``Manager``, ...) is the
    stdlib context's for the same method.
    """

    def __init__(self, method: StartMethod) -> None:
        self._method = method
        self.Process: type[Process] = _PROCESS_CLASSES[method]

    def get_start_method(self, allow_none: bool = False) -> str:
        return self._method

    def __getattr__(self, name: str) -> Any:
        import plait

        if name in multiprocessing.__all__ and name in plait.__all__:
            return getattr(plait, name)
        return getattr(_stdlib_context(self._method), name)

    def __repr__(self) -> str:
        return f"<plait.ProcessContext {self._method!r}>"


_contexts: dict[str, ProcessContext] = {}


def get_context(method: str | None = None) -> ProcessContext:
    """A context whose ``Process`` starts children with ``method`` (default: the current
    start method), as ``multiprocessing.get_context``."""
    chosen = _check_method(method if method is not None else get_start_method())
    context = _contexts.get(chosen)
    if context is None:
        context = _contexts.setdefault(chosen, ProcessContext(chosen))
    return context


# -- shared ctypes: multiprocessing's, made in the context plait.Process starts children with
# (a lock made in another context refuses to cross). plait.shared will bring its own.


def Value(typecode_or_type: Any, *args: Any, lock: Any = True) -> Any:
    """``multiprocessing.Value`` (the stdlib's, for the current start method)."""
    return _stdlib_context(_current()).Value(typecode_or_type, *args, lock=lock)


def Array(typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True) -> Any:
    """``multiprocessing.Array`` (the stdlib's, for the current start method)."""
    return _stdlib_context(_current()).Array(typecode_or_type, size_or_initializer, lock=lock)


def RawValue(typecode_or_type: Any, *args: Any) -> Any:
    """``multiprocessing.RawValue`` (the stdlib's)."""
    return _stdlib_context(_current()).RawValue(typecode_or_type, *args)


def RawArray(typecode_or_type: Any, size_or_initializer: Any) -> Any:
    """``multiprocessing.RawArray`` (the stdlib's)."""
    return _stdlib_context(_current()).RawArray(typecode_or_type, size_or_initializer)


def _current() -> StartMethod:
    return cast(StartMethod, get_start_method())
