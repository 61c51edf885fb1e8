"""Deciding, before calling it, whether a callable makes a coroutine strand.

``spawn(fn)`` must pick the strand kind before ``fn`` runs: calling a plain function to see
what it returns would run blocking code on the caller's thread. A callable *returns an
awaitable* when any of these holds:

* it is a coroutine function (``async def``), also through ``functools.partial`` and bound
  methods (what :func:`inspect.iscoroutinefunction` sees);
* it carries a coroutine mark: :func:`inspect.markcoroutinefunction` (3.12+), asyncio's
  legacy ``_is_coroutine`` mark (libraries mark sync wrappers with it on 3.11), or plait's
  own :func:`returns_awaitable` mark;
* it is one of plait's own ``async_*`` methods: the naming rule of the whole library is that
  ``async_X`` returns an awaitable (some return a cheap awaitable that is not a coroutine,
  and the C accelerator's methods cannot carry a mark);
* it is an object whose ``__call__`` is any of the above.

A decorator that hides an ``async def`` behind a plain ``def`` wrapper without a mark cannot
be told from a blocking wrapper (``asgiref``'s ``async_to_sync`` also sets ``__wrapped__``),
so it runs as a thread strand -- and the thread strand fails with :class:`TypeError` naming
the function when it returns an awaitable (:func:`refuse_awaitable`), never silently.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import types
from collections.abc import Callable
from typing import Any, TypeVar

from plait._core.strands import Strand

__all__ = ["describe_callable", "refuse_awaitable", "returns_awaitable", "returns_awaitable_mark"]

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "_plait_returns_awaitable"
_legacy_mark = getattr(asyncio.coroutines, "_is_coroutine", None)
# inspect.markcoroutinefunction's mark (3.12+): named _is_coroutine_marker on 3.12, as the
# attribute it sets; _is_coroutine_mark from 3.13 on.
_inspect_mark = getattr(inspect, "_is_coroutine_mark", None) or getattr(
    inspect, "_is_coroutine_marker", None
)
_CO_COROUTINE = inspect.CO_COROUTINE


def returns_awaitable_mark(fn: F) -> F:
    """Mark a plain ``def`` that returns an awaitable, so that ``spawn`` runs it as a coroutine."""
    setattr(fn, _MARK, True)
    return fn


def _marked(fn: Any) -> bool:
    try:
        if getattr(fn, _MARK, False):
            return True
        if _legacy_mark is not None and getattr(fn, "_is_coroutine", None) is _legacy_mark:
            return True
        return _inspect_mark is not None and (
            getattr(fn, "_is_coroutine_marker", None) is _inspect_mark
        )
    except Exception:  # an object whose __getattr__ misbehaves: not ours to judge
        return False


def _plait_async_method(fn: Any) -> bool:
    """A bound ``async_*`` method of one of plait's own objects (Python or C)."""
    if not isinstance(fn, types.MethodType | types.BuiltinMethodType):
        return False
    owner = getattr(fn, "__self__", None)
    if owner is None or isinstance(owner, types.ModuleType):
        return False
    name = getattr(fn, "__name__", "")
    if not name.startswith("async_"):
        return False
    for klass in type(owner).__mro__:  # a user's subclass of a plait class counts too
        if name in vars(klass):
            module = getattr(klass, "__module__", "") or ""
            return module == "plait" or module.startswith("plait.")
    return False


def returns_awaitable(fn: Any) -> bool:
    """Whether calling ``fn`` gives an awaitable, decided without calling it (see module)."""
    if type(fn) is types.FunctionType:  # the common case, at once (spawn's hot path)
        return bool(fn.__code__.co_flags & _CO_COROUTINE) or _marked(fn)
    for _ in range(8):  # partial of partial of ...: a few levels, never a loop
        code = getattr(fn, "__code__", None)
        if code is not None and code.co_flags & _CO_COROUTINE:
            return True
        if inspect.iscoroutinefunction(fn) or _marked(fn):
            return True
        if isinstance(fn, types.MethodType):
            if _marked(fn.__func__) or _plait_async_method(fn):
                return True
            fn = fn.__func__
            continue
        if _plait_async_method(fn):
            return True
        if isinstance(fn, functools.partial):
            fn = fn.func
            continue
        if isinstance(fn, type) or code is not None or isinstance(fn, types.BuiltinFunctionType):
            return False
        call = getattr(type(fn), "__call__", None)  # noqa: B004 - the method itself
        if call is None or isinstance(call, types.WrapperDescriptorType | types.MethodWrapperType):
            return False
        fn = call
    return False


def describe_callable(fn: Any) -> str:
    """A short name for ``fn`` in an error message: its qualified name, or its repr."""
    base = fn.func if isinstance(fn, functools.partial) else fn
    name = getattr(base, "__qualname__", None) or getattr(base, "__name__", None)
    if name is None:
        return repr(fn)
    module = getattr(base, "__module__", None)
    return f"{module}.{name}" if module and module != "builtins" else str(name)


def refuse_awaitable(fn: Any, result: Any, kind: str) -> TypeError | None:
    """The error for a ``kind`` strand whose ``fn`` returned an awaitable, or ``None``.

    A future or a strand (a handle to work that runs anyway) is a fine result; what is
    refused is an awaitable that does nothing until awaited (a coroutine, plait's queue
    operation). It is closed (when it can be) so that no "never awaited" warning follows.
    """
    if not inspect.isawaitable(result) or asyncio.isfuture(result) or isinstance(result, Strand):
        return None
    close = getattr(result, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # closing is a courtesy; the error below is what matters
            pass
    return TypeError(
        f"{describe_callable(fn)} returned an awaitable ({type(result).__name__}) in a "
        f"{kind} strand, where nothing can await it: spawn it as a coroutine strand "
        f"(leave out on=, or pass on='async'), or give the {kind} a plain function"
    )
